"""The LLM side of two_hop: templated two-hop prompts with K chains, evaluated on a local checkpoint, and
the few-step fine-tuning on K=2 that fixes random guessing (paper §3.2; v2 abstract).

Metric (as the authors' notebook): the next-token probability, at the last prompt position, of the first
token of the correct end entity, against the mean over the distractor chains' end entities. Entity names are
fictional (generated from syllables) so no model can know the answer without the context.

The authors fine-tune with LoRA (r=16) on 7B–70B models on GPUs; we fine-tune all parameters with AdamW for
a few steps (LoRA is not built here), which is what a CPU-sized checkpoint allows.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import hf_import, transformer
from lib.metrics import write_json_atomic

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


def _last_logprobs(params, ids, mask, *, config):
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    b = ids.shape[0]
    logits = transformer.forward(params, ids, config=config, positions=positions, attention_mask=mask,
                                 select=jnp.full((b,), ids.shape[1] - 1))["logits"]
    return jax.nn.log_softmax(logits, axis=-1)


def evaluate(params, config, enc: dict, *, batch: int = 16) -> dict[str, float]:
    """Mean P(target end's first token) and mean over distractor chains of P(their end's first token)."""
    fn = jax.jit(lambda p, i, m: jnp.exp(_last_logprobs(p, i, m, config=config)))
    pt, pd = [], []
    for s in range(0, len(enc["ids"]), batch):
        probs = np.asarray(fn(params, enc["ids"][s:s + batch], enc["mask"][s:s + batch]))
        t = enc["target"][s:s + batch]
        d = enc["distractors"][s:s + batch]
        pt.extend(probs[np.arange(len(t)), t])
        valid = d >= 0
        pdist = np.where(valid, np.take_along_axis(probs, np.maximum(d, 0), axis=1), 0.0)
        pd.extend(np.where(valid.any(1), pdist.sum(1) / np.maximum(valid.sum(1), 1), np.nan))
    return {"p_target": float(np.mean(pt)), "p_distractor": float(np.nanmean(pd)) if np.isfinite(pd).any() else None}


def finetune(params, config, enc: dict, *, steps: int, lr: float, batch: int, seed: int):
    """AdamW on −log P(target first token | prompt), all parameters, `steps` minibatch steps."""
    tx = optax.adamw(lr, weight_decay=0.01)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, ids, mask, target):
        def loss(p):
            lp = _last_logprobs(p, ids, mask, config=config)
            return -jnp.take_along_axis(lp, target[:, None], axis=1).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(enc["ids"]), size=min(batch, len(enc["ids"])), replace=False)
        params, opt, value = step(params, opt, enc["ids"][idx], enc["mask"][idx], enc["target"][idx])
        losses.append(float(value))
    return params, losses


def run(llm_config, workdir: str, *, seed: int) -> dict:
    """Evaluates K = 1..max_k before and after fine-tuning on K = 2; writes workdir/llm_results.json."""
    model = hf_import.load_model(llm_config.checkpoint)
    tok = hf_import.load_tokenizer(llm_config.checkpoint)
    if model.config.head != "lm":
        raise ValueError(f"config.llm.checkpoint={llm_config.checkpoint!r} is a reward model: expected a causal LM")
    ks = list(range(1, llm_config.max_k + 1))
    encs = {k: encode(tok, make_prompts(k=k, n=llm_config.prompts_per_k, seed=seed + 100 * k)) for k in ks}
    before = {k: evaluate(model.params, model.config, encs[k]) for k in ks}
    train_enc = encode(tok, make_prompts(k=2, n=llm_config.prompts_per_k, seed=seed + 7))  # held-out from eval
    params, losses = finetune(model.params, model.config, train_enc, steps=llm_config.finetune_steps,
                              lr=llm_config.finetune_lr, batch=llm_config.batch_size, seed=seed)
    after = {k: evaluate(params, model.config, encs[k]) for k in ks}
    res = {"checkpoint": os.path.abspath(os.path.expanduser(llm_config.checkpoint)), "before": before,
           "after": after, "finetune_losses": losses}
    write_json_atomic(os.path.join(workdir, "llm_results.json"), res)
    return json.loads(json.dumps(res))
