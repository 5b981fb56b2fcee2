"""Self-reward (spec §4.3): a pretrained generator scored by its own −perplexity, Best-of-N against Speculative
Rejection on a fixed set of real instructions.

    python -m projects.speculative_rejection.main --config=configs/speculative_rejection/self_reward.py:quick \
        --workdir=runs/spr_self_reward

The generator is anything `lib.models.resolve_model` accepts (a known name such as `smollm2-135m-instruct`, a
`.gguf` file or a Hugging Face checkpoint directory). Prompts are the lines of `self_reward.prompts_file`, rendered
through the model's chat template (raw text when the checkpoint has none), left-padded to one length so that every
prompt shares one compilation.

The reward of a (partial or complete) response is −exp(mean token cross-entropy of prompt + response), the official
code's `self_evaluate`: the whole sequence, the prompt included, scored by the generator itself. Ours is one jitted
batched forward per chunk of rows (`neg_perplexity`), equal to the one-sequence-at-a-time definition
(`neg_perplexity_reference`, tested); after EOS nothing is scored (the official code also scores post-EOS junk).

Costs: FLOPs with the checkpoint's own sizes; the roofline in the paper's setting (`config.cost`: an 8B generator
that also does the scoring, lengths ×2048/T_max, rows ×120/N0); CPU wall time from a second, compiled pass over
`experiment.wall_prompts` prompts (one Best-of-N device against Speculative Rejection per α).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from harness import validation
from lib import compute_cost, decoding, models, transformer
from lib.metrics import read_json, write_json_atomic
from projects.speculative_rejection import evaluation, real


def validate(config) -> None:
    validation.require_pretrained(config, "self_reward.model")
    validation.require_existing_path(config, "self_reward.prompts_file", kind="file")
    for f in ("num_prompts", "max_prompt_tokens", "score_chunk", "length_bucket"):
        validation.require_int(config, f"self_reward.{f}", min_value=1)
    shared = config.self_reward.prompt_kv_shared
    validation.require(isinstance(shared, bool), "self_reward.prompt_kv_shared", shared, "True or False")


def b0_bound(config) -> int:
    """The largest b0 any prompt can get: min(b_cap, ⌊M/τ_min⌋) with a shared prompt KV (M = N0·T_max response
    slots), else the one-token-prompt case of ⌊N0·(P + T_max)/(P + τ_min)⌋."""
    e, T = config.experiment, config.max_new_tokens
    b_cap = e.b_cap_multiple * e.device_batch
    if config.self_reward.prompt_kv_shared:
        return min(b_cap, e.device_batch * T // e.tau_min)
    return min(b_cap, e.device_batch * (T + 1) // (1 + e.tau_min))


def neg_perplexity(params: dict, seq: jnp.ndarray, mask: jnp.ndarray, *, config) -> jnp.ndarray:
    """−exp(mean cross-entropy) per row `[b]` of `seq` `[b, L]` with `mask` `[b, L]` (1 on real tokens; left and
    right padding both allowed): token t counts when it and token t−1 are real, as in one unpadded sequence."""
    mask = mask.astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    logits = transformer.forward(params, seq, config=config, positions=positions, attention_mask=mask)["logits"]
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    tok = jnp.take_along_axis(logp, seq[:, 1:, None], axis=-1)[..., 0]
    valid = (mask[:, 1:] > 0) & (mask[:, :-1] > 0)
    ce = -jnp.where(valid, tok, 0.0).sum(1) / jnp.maximum(valid.sum(1), 1)
    return -jnp.exp(ce)


def neg_perplexity_reference(params: dict, seq: np.ndarray, mask: np.ndarray, *, config) -> np.ndarray:
    """The official definition: one sequence at a time, its real tokens only, no padding, no cache."""
    out = []
    for s, m in zip(np.asarray(seq), np.asarray(mask), strict=True):
        ids = jnp.asarray(s[m > 0][None])
        logp = jax.nn.log_softmax(transformer.forward(params, ids, config=config)["logits"][0, :-1], axis=-1)
        ce = -jnp.take_along_axis(logp, ids[0, 1:, None], axis=-1).mean()
        out.append(-float(jnp.exp(ce)))
    return np.asarray(out)


def make_scorer(params: dict, config, *, chunk: int, length_bucket: int):
    """`score(seq [n, L], mask [n, L]) -> [n]` numpy: `neg_perplexity` over chunks of `chunk` rows, lengths padded
    up to a multiple of `length_bucket` (masked), so a whole run compiles a handful of shapes."""
    fn = jax.jit(lambda p, s, m: neg_perplexity(p, s, m, config=config))

    def score(seq, mask) -> np.ndarray:
        seq, mask = np.asarray(seq, np.int32), np.asarray(mask, np.int32)
        n, L = seq.shape
        Lb = -(-L // length_bucket) * length_bucket
        out = []
        for i in range(0, n, chunk):
            s, m = np.zeros((chunk, Lb), np.int32), np.zeros((chunk, Lb), np.int32)
            k = min(chunk, n - i)
            s[:k, :L], m[:k, :L] = seq[i:i + k], mask[i:i + k]
            out.append(np.asarray(fn(params, jnp.asarray(s), jnp.asarray(m)))[:k])
        return np.concatenate(out).astype(np.float64)

    return score


def prompts(config, lm: models.Pretrained) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Left-padded prompt ids and masks `[num_prompts, P]` (P a multiple of 8) and the instructions."""
    s = config.self_reward
    with open(os.path.expanduser(s.prompts_file), encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip()][: s.num_prompts]
    texts = [lm.chat_prompt([{"role": "user", "content": ln}]) if lm.chat_template else ln for ln in lines]
    ids = [lm.tokenizer.encode(t).ids[-s.max_prompt_tokens:] for t in texts]
    P = -(-max(len(x) for x in ids) // 8) * 8
    pad = lm.model.hf_config.get("pad_token_id") or 0
    out, mask = np.full((len(ids), P), pad, np.int32), np.zeros((len(ids), P), np.int32)
    for i, x in enumerate(ids):
        out[i, P - len(x):], mask[i, P - len(x):] = x, 1
    return out, mask, lines


class Setup:
    def __init__(self, config):
        self.config = config
        self.lm = models.load_pretrained(config.self_reward.model)
        gen = self.lm.model
        self.params, self.mc = gen.params, gen.config
        self.eos = self.lm.eos_id
        self.pad = gen.hf_config.get("pad_token_id") or 0
        self.dims = real._dims(gen)
        cc, e = config.cost, config.experiment
        self.hw = compute_cost.Roofline(weight_bytes_gen=cc.weight_bytes_gen, weight_bytes_rm=cc.weight_bytes_gen,
                                        params_gen=cc.params_gen, params_rm=cc.params_gen,
                                        kv_bytes_per_token=cc.kv_bytes_per_token, bandwidth=cc.bandwidth,
                                        flops_per_s=cc.flops_per_s)
        # new tokens ×2048/T_max, rows ×120/N0; the prompt (tens of tokens, as the paper's) is not scaled
        self.scale = dict(length_scale=cc.paper_max_new_tokens / config.max_new_tokens,
                          batch_scale=cc.paper_device_batch / e.device_batch, scale_prompt=False)
        s = config.self_reward
        self.score = make_scorer(self.params, self.mc, chunk=s.score_chunk, length_bucket=s.length_bucket)
        self.memory = e.device_batch * config.max_new_tokens  # + N0·P per prompt when the prompt KV is not shared

    def sample(self, ids, mask, key, n: int) -> tuple[np.ndarray, np.ndarray]:
        e = self.config.experiment
        rep = lambda x: jnp.broadcast_to(jnp.asarray(x), (n, len(x)))
        out = decoding.generate(self.params, rep(ids), rep(mask), key, config=self.mc,
                                max_new_tokens=self.config.max_new_tokens, temperature=e.temperature, top_k=e.top_k,
                                eos_id=self.eos, pad_id=self.pad)
        return np.asarray(out["tokens"]), np.asarray(out["lengths"])

    def score_samples(self, ids, mask, toks, lengths) -> np.ndarray:
        n, T = toks.shape
        seq = np.concatenate([np.broadcast_to(ids, (n, len(ids))), toks], 1)
        m = np.concatenate([np.broadcast_to(mask, (n, len(ids))), np.arange(T)[None] < lengths[:, None]], 1)
        return self.score(seq, m)

    def spr(self, ids, mask, key, alpha: float) -> dict:
        shared = self.config.self_reward.prompt_kv_shared
        M = self.memory + (0 if shared else self.config.experiment.device_batch * int(mask.sum()))
        return decoding.speculative_rejection(
            self.params, ids, key, config=self.mc, score_fn=lambda s, m, rows: self.score(s, m), alpha=alpha,
            memory_slots=M, max_new_tokens=self.config.max_new_tokens, eos_id=self.eos, pad_id=self.pad,
            cost=dict(gen=self.dims, rm=self.dims, hw=self.hw, **self.scale), prompt_mask=mask,
            prompt_kv_shared=shared, **evaluation.spr_options(self.config))

    def device_cost(self, lengths: np.ndarray, prompt_len: int) -> dict:
        n0 = self.config.experiment.device_batch
        kw = dict(device_batch=n0, prompt_len=prompt_len, gen=self.dims, rm=self.dims, hw=self.hw)
        devs = [int(d.max()) for d in lengths.reshape(-1, n0)]
        return {"flops": float(np.mean([compute_cost.best_of_n_cost(n0, max_new_tokens=L, **kw)["flops"]
                                        for L in devs])),
                "roofline": float(np.mean([compute_cost.best_of_n_cost(n0, max_new_tokens=L, **kw, **self.scale)
                                           ["roofline_seconds"] for L in devs]))}


def evaluate_prompt(setup: Setup, ids, mask, j: int) -> dict:
    e = setup.config.experiment
    key = evaluation.prompt_key(setup.config, j)
    toks, lengths = setup.sample(ids, mask, key, e.device_batch * e.bon_multiples[-1])
    scores = setup.score_samples(ids, mask, toks, lengths)
    rec = {"prompt": ids[mask > 0].tolist(), "rm": scores.tolist(), "lengths": lengths.tolist(),
           "device_cost": setup.device_cost(lengths, int(mask.sum())), "spr": {}}
    for alpha in e.alphas:
        res = setup.spr(ids, mask, key, alpha)
        c = res["chosen"]
        same = bool(c < len(toks) and np.array_equal(res["chosen_tokens"], toks[c, :lengths[c]]))
        rec["spr"][str(alpha)] = {
            "chosen": c, "b0": res["b0"], "rm": float(scores[c]) if same else res["chosen_score"],
            "spr_score": res["chosen_score"], "length": len(res["chosen_tokens"]), "chosen_is_bon_sample": same,
            "rounds": res["rounds"], "rm_calls": res["rm_calls"], "wall_first_pass": res["wall_seconds"],
            "cost": {"flops": res["flops"], "roofline": res["roofline_seconds"]}}
    return rec


def time_prompts(setup: Setup, ids, mask, workdir: str) -> list[dict]:
    """CPU wall seconds after compilation (Speculative Rejection's shapes were compiled by the first pass, the
    device's by one untimed call): one Best-of-N device (N0 rows to completion + scoring), SpR per α."""
    path = os.path.join(workdir, "wall.json")
    if os.path.exists(path):
        return read_json(path)
    import time

    e = setup.config.experiment
    walls = []
    for j in range(-1, min(e.wall_prompts, len(ids))):
        jj = max(j, 0)
        key = evaluation.prompt_key(setup.config, jj)
        t0 = time.perf_counter()
        toks, lengths = setup.sample(ids[jj], mask[jj], jax.random.fold_in(key, 99), e.device_batch)
        setup.score_samples(ids[jj], mask[jj], toks, lengths)
        out = {"device": time.perf_counter() - t0}
        if j < 0:
            continue  # the warm-up call
        for alpha in e.alphas:
            out[str(alpha)] = setup.spr(ids[jj], mask[jj], key, alpha)["wall_seconds"]
        walls.append(out)
    write_json_atomic(path, walls)
    return walls


def aggregate(records: list[dict], walls: list[dict], config) -> dict:
    """`real.aggregate` (improvement score, relative compute and speedups under FLOPs and the roofline, with the
    −perplexity as the reward) plus perplexities, CPU wall time and schedule diagnostics."""
    e = config.experiment
    n0, mult = e.device_batch, list(e.bon_multiples)
    m = real.aggregate(records, config)
    m["max_new_tokens"] = config.max_new_tokens
    m["prompt_tokens_mean"] = float(np.mean([len(r["prompt"]) for r in records]))
    m["mean_length"] = float(np.mean([np.mean(r["lengths"]) for r in records]))
    m["eos_rate"] = float(np.mean([np.mean(np.asarray(r["lengths"]) < config.max_new_tokens) for r in records]))
    for k in mult:
        m[f"bon/N{n0 * k}/ppl"] = float(np.mean([-decoding.expected_best_of(np.asarray(r["rm"]), n0 * k)
                                                 for r in records]))
    m["bon/ppl_mean_sample"] = float(np.mean([-np.mean(r["rm"]) for r in records]))
    bon = [m[f"bon/N{n0 * k}/score"] for k in mult]
    wall_dev = float(np.sum([w["device"] for w in walls])) if walls else float("nan")
    for alpha in e.alphas:
        s = [r["spr"][str(alpha)] for r in records]
        p = f"spr/{alpha:g}"
        m[f"{p}/ppl"] = float(np.mean([-x["rm"] for x in s]))
        m[f"{p}/b0"] = float(np.mean([x["b0"] for x in s]))
        m[f"{p}/rounds"] = float(np.mean([len(x["rounds"]) for x in s]))
        m[f"{p}/batches_prompt0"] = [rd["batch"] for rd in s[0]["rounds"]]
        m[f"{p}/decision_tokens_prompt0"] = [rd["end"] - len(records[0]["prompt"]) for rd in s[0]["rounds"]]
        for c in ("flops", "roofline"):
            m[f"{p}/speedup_{c}"], m[f"{p}/speedup_{c}_extrapolated"] = evaluation.speedup_or_nan(
                mult, bon, m[f"{p}/rel_{c}"], m[f"{p}/score"])
        if walls:
            m[f"{p}/rel_wall"] = float(np.sum([w[str(alpha)] for w in walls])) / wall_dev
            m[f"{p}/speedup_wall"], m[f"{p}/speedup_wall_extrapolated"] = evaluation.speedup_or_nan(
                mult, bon, m[f"{p}/rel_wall"], m[f"{p}/score"])
    m["wall_prompts"] = len(walls)
    return m


def run(config, workdir: str) -> dict:
    validate(config)
    setup = Setup(config)
    ids, mask, _ = prompts(config, setup.lm)
    m = setup.mc
    records = evaluation.per_prompt_records(workdir, list(range(len(ids))),
                                            lambda j, _: evaluate_prompt(setup, ids[j], mask[j], j))
    walls = time_prompts(setup, ids, mask, workdir)
    out = aggregate(records, walls, config)
    out.update({"gen_params": transformer.count_params(setup.params), "n_layers": m.n_layers, "d_model": m.d_model,
                "prompt_padded_length": int(ids.shape[1])})
    return out
