"""Real checkpoints: Best-of-N against Speculative Rejection with a local generator and a local reward model.

    python -m projects.speculative_rejection.main \
        --config=configs/speculative_rejection/real_models.py:quick --workdir=runs/speculative_rejection_real \
        --config.real.generator_dir=/path/to/gpt2-or-llama --config.real.reward_dir=/path/to/llama-rm

The generator is any `lib.hf_import` model (gpt2, llama, mistral, qwen2); the reward model a Llama-family
`*ForSequenceClassification` checkpoint with one label (a scalar head pooled at the last real token). Both read
local safetensors only; nothing is downloaded. They must share a vocabulary (token ids go from one to the
other unchanged; the paper's pairs re-tokenise text, which we do not). Prompts are the lines of
`real.prompts_file` tokenised with the generator's tokenizer.json, or, when no tokenizer is present (e.g. the
tests' random checkpoints), `real.num_prompts` random-token prompts.

There is no gold reward here: the improvement score and the speedups are under the reward model that selects,
as in the paper. Costs use the checkpoints' own sizes (bf16 weights on the configured accelerator, lengths and
rows unscaled).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from harness import validation
from lib import compute_cost, decoding, hf_import, transformer
from projects.speculative_rejection import evaluation


def validate(config) -> None:
    r = config.real
    for f in ("generator_dir", "reward_dir"):
        d = os.path.expanduser(r[f])
        validation.require(os.path.isfile(os.path.join(d, "config.json")), f"real.{f}", r[f],
                           "a local checkpoint directory holding config.json and *.safetensors")
    validation.require_existing_path(config, "real.prompts_file", kind="file", optional=True)  # "": random tokens
    validation.require_int(config, "real.num_prompts", min_value=1)
    validation.require_int(config, "real.max_prompt_tokens", min_value=1)


def _dims(model: hf_import.Model) -> compute_cost.ModelDims:
    c = model.config
    emb = c.vocab_size * c.d_model
    return compute_cost.ModelDims(params_nonemb=float(sum(x.size for x in jax.tree.leaves(model.params)) - emb),
                                  d_model=c.d_model, n_layers=c.n_layers, vocab=c.vocab_size)


def load(config):
    r = config.real
    gen = hf_import.load_model(os.path.expanduser(r.generator_dir))
    rm = hf_import.load_model(os.path.expanduser(r.reward_dir))
    if rm.config.head != "scalar":
        raise validation.ConfigError(f"real.reward_dir={r.reward_dir!r} is a language model: expected a "
                                     "*ForSequenceClassification checkpoint with num_labels=1 (a scalar head)")
    if rm.config.vocab_size != gen.config.vocab_size:
        raise validation.ConfigError(
            f"real.reward_dir={r.reward_dir!r} has vocab_size {rm.config.vocab_size}, the generator "
            f"{gen.config.vocab_size}: expected one shared vocabulary (ids are passed unchanged)")
    return gen, rm


def prompt_ids(config, gen: hf_import.Model) -> list[np.ndarray]:
    r = config.real
    rng = np.random.default_rng(config.experiment.prompt_seed)
    if r.prompts_file:
        tok = hf_import.load_tokenizer(os.path.expanduser(r.generator_dir))
        with open(os.path.expanduser(r.prompts_file), encoding="utf-8") as f:
            lines = [ln.strip() for ln in f if ln.strip()][: r.num_prompts]
        return [np.asarray(tok.encode(ln).ids[-r.max_prompt_tokens:], np.int32) for ln in lines]
    return [rng.integers(3, gen.config.vocab_size, r.max_prompt_tokens).astype(np.int32) for _ in range(r.num_prompts)]


def run(config, workdir: str) -> dict:
    """Per prompt: Best-of-N samples once, Speculative Rejection per α (same per-row keys), records on disk."""
    validate(config)
    gen, rm = load(config)
    eos = gen.hf_config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    pad = gen.hf_config.get("pad_token_id") or 0
    e, T = config.experiment, config.max_new_tokens
    n0 = e.device_batch
    hw = compute_cost.Roofline(weight_bytes_gen=2.0 * sum(x.size for x in jax.tree.leaves(gen.params)),
                               weight_bytes_rm=2.0 * sum(x.size for x in jax.tree.leaves(rm.params)),
                               params_gen=float(sum(x.size for x in jax.tree.leaves(gen.params))),
                               params_rm=float(sum(x.size for x in jax.tree.leaves(rm.params))),
                               kv_bytes_per_token=2.0 * 2 * gen.config.n_layers * gen.config.kv_heads
                               * gen.config.head_dim, bandwidth=config.cost.bandwidth,
                               flops_per_s=config.cost.flops_per_s)
    gdims, rdims = _dims(gen), _dims(rm)
    score = jax.jit(lambda p, s, m: transformer.forward(p, s, config=rm.config, attention_mask=m)["score"])

    def evaluate(j: int, prompt: np.ndarray) -> dict:
        P = len(prompt)
        M = n0 * (P + T)
        key = evaluation.prompt_key(config, j)
        n_bon = n0 * e.bon_multiples[-1]
        rep = jnp.broadcast_to(jnp.asarray(prompt), (n_bon, P))
        out = decoding.generate(gen.params, rep, jnp.ones_like(rep), key, config=gen.config, max_new_tokens=T,
                                temperature=e.temperature, top_k=e.top_k, eos_id=eos, pad_id=pad)
        toks, lengths = np.asarray(out["tokens"]), np.asarray(out["lengths"])
        seq = np.concatenate([np.broadcast_to(prompt, (n_bon, P)), toks], 1)
        mask = (np.arange(P + T)[None] < (P + lengths)[:, None]).astype(np.int32)
        rm_scores = np.asarray(score(rm.params, jnp.asarray(seq), jnp.asarray(mask)))
        kw = dict(prompt_len=P, gen=gdims, rm=rdims, hw=hw)
        dev = [compute_cost.best_of_n_cost(n0, device_batch=n0, max_new_tokens=int(d.max()), **kw)
               for d in lengths.reshape(-1, n0)]
        rec = {"prompt": prompt.tolist(), "rm": rm_scores.tolist(), "lengths": lengths.tolist(),
               "device_cost": {"flops": float(np.mean([d["flops"] for d in dev])),
                               "roofline": float(np.mean([d["roofline_seconds"] for d in dev]))}, "spr": {}}
        for alpha in e.alphas:
            res = decoding.speculative_rejection(
                gen.params, prompt, key, config=gen.config, alpha=alpha, memory_slots=M, max_new_tokens=T,
                score_fn=lambda s, m, ids: score(rm.params, s, m), eos_id=eos, pad_id=pad,
                cost=dict(gen=gdims, rm=rdims, hw=hw), **evaluation.spr_options(config))
            c = res["chosen"]
            flops, sim = res["flops"], res["roofline_seconds"]
            rec["spr"][str(alpha)] = {
                "chosen": c, "b0": res["b0"], "rm": float(rm_scores[c]) if c < n_bon else res["chosen_score"],
                "chosen_is_bon_sample": bool(c < n_bon and np.array_equal(res["chosen_tokens"],
                                                                          toks[c, :lengths[c]])),
                "rounds": res["rounds"], "rm_calls": res["rm_calls"], "cost": {"flops": flops, "roofline": sim},
                "wall_seconds": res["wall_seconds"]}
        return rec

    return aggregate(evaluation.per_prompt_records(workdir, prompt_ids(config, gen), evaluate), config)


def aggregate(records: list[dict], config) -> dict:
    """Improvement score, relative compute and speedup per cost model under the selecting reward model."""
    e = config.experiment
    n0, mult = e.device_batch, list(e.bon_multiples)
    imp = evaluation.improvement_fn(records, n0)

    m = {"num_prompts": len(records), "device_batch": n0, "bon/multiples": mult}
    bon = [imp([decoding.expected_best_of(np.asarray(r["rm"]), n0 * k) for r in records]) for k in mult]
    for k, s in zip(mult, bon, strict=True):
        m[f"bon/N{n0 * k}/score"] = s
    dev = {c: float(np.sum([r["device_cost"][c] for r in records])) for c in ("flops", "roofline")}
    for alpha in e.alphas:
        s = [r["spr"][str(alpha)] for r in records]
        p = f"spr/{alpha:g}"
        m[f"{p}/score"] = imp([x["rm"] for x in s])
        m[f"{p}/chosen_is_bon_sample"] = float(np.mean([x["chosen_is_bon_sample"] for x in s]))
        for c in ("flops", "roofline"):
            m[f"{p}/rel_{c}"] = float(np.sum([x["cost"][c] for x in s])) / dev[c]
            m[f"{p}/speedup_{c}"] = evaluation.speedup_or_nan(mult, bon, m[f"{p}/rel_{c}"], m[f"{p}/score"])[0]
    return m
