"""autoprm, step 1: the domain (`lib/arith_domain.py`) and the SFT-CoT baseline that calibrates it.

SFT-CoT = one decoder-only transformer (`lib/transformer.py`) trained by masked next-token NLL on
`<BOS> <COT> p <SEP> s <ANS> c <EOS>` (the gold chain, ε = 0), evaluated by greedy KV-cached generation
(`lib/decoding.generate`) with exact-match final answers. Seeds are a vmap axis of the training state.

Importable pieces: `validate`, `build_data`, `model_config`, `create_train_state`, `train_step`, `make_train_chunk`,
`evaluate_cot`, `train_and_evaluate`.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import outputs, validation
from lib import arith_domain as ad
from lib import decoding, losses, stats, transformer
from lib.checkpoint import Checkpointer
from lib.metrics import MetricWriter, check_finite, progress
from projects.autoprm import claims as claims_lib


def validate(config) -> None:
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    validation.require_int(config, "num_seeds", min_value=1)
    for split in ("n_train", "n_val", "n_test", "n_ood"):
        validation.require_int(config, f"data.{split}", min_value=1)
    lo_hi = validation.require_sequence(config, "data.n_distractors", item_ok=lambda v: isinstance(v, int) and v >= 0,
                                        item_desc="integers >= 0", min_len=2)
    validation.require(len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1] <= 19 - 2 * max(ad.OOD_LENGTHS),
                       "data.n_distractors", lo_hi, f"(lo, hi) with 0 <= lo <= hi <= {19 - 2 * max(ad.OOD_LENGTHS)}")
    validation.require_probability(config, "data.restate_prob")
    validation.require_int(config, "data.max_value", min_value=10, max_value=ad.MAX_VALUE)
    validation.require_int(config, "data.max_literal", min_value=2, max_value=20)
    d = validation.require_int(config, "model.d_model", min_value=1)
    h = validation.require_int(config, "model.n_heads", min_value=1)
    validation.require(d % h == 0, "model.n_heads", h, f"a divisor of model.d_model={d}")
    validation.require_int(config, "model.n_layers", min_value=1)
    validation.require_int(config, "model.max_len", min_value=64)
    steps = validation.require_int(config, "train.steps", min_value=1)
    validation.require_int(config, "train.batch_size", min_value=1)
    validation.require_float(config, "train.learning_rate", min_value=0.0, strict=True)
    validation.require_int(config, "train.warmup_steps", min_value=0, max_value=steps)
    validation.require_float(config, "train.weight_decay", min_value=0.0)
    log_every = validation.require_int(config, "train.log_every", min_value=1)
    validation.require(steps % log_every == 0, "train.log_every", log_every, f"a divisor of train.steps={steps}")
    ck = validation.require_int(config, "train.checkpoint_every", min_value=1)
    validation.require(ck % log_every == 0, "train.checkpoint_every", ck, f"a multiple of train.log_every={log_every}")
    validation.require_int(config, "eval.batch_size", min_value=1)


def build_data(config) -> dict:
    """Splits (problems) and the SFT-CoT training pool: ids/loss_mask `[n_train, L]` int32."""
    kw = {"n_distractors": tuple(config.data.n_distractors), "restate_prob": config.data.restate_prob,
          "max_value": config.data.max_value, "max_literal": config.data.max_literal}
    splits = {name: ad.make_split(config.seed, name, getattr(config.data, f"n_{name}"), **kw)
              for name in ("train", "val", "test", "ood")}
    rows = [ad.cot_tokens(p) for p in splits["train"]]
    L = stats.round_up(max(len(t) for t, _ in rows), 16)
    validation.require(L <= config.model.max_len, "model.max_len", config.model.max_len,
                       f">= {L} (the longest SFT-CoT training sequence)")
    pool = {"ids": ad.pad([ad.encode(t) for t, _ in rows], L), "loss_mask": ad.pad([m for _, m in rows], L, value=0)}
    return {"splits": splits, "pool": pool}


def model_config(config) -> transformer.TransformerConfig:
    m = config.model
    return transformer.TransformerConfig(vocab_size=len(ad.VOCAB), d_model=m.d_model, n_layers=m.n_layers,
                                         n_heads=m.n_heads, max_len=m.max_len)


def optimizer(config):
    """AdamW, linear warm-up then cosine decay to 10 % (spec §3 [S]: warm-up, cosine, weight decay 0.05)."""
    t = config.train
    lr = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, max(t.warmup_steps, 1), t.steps,
                                            end_value=0.1 * t.learning_rate)
    return optax.adamw(lr, weight_decay=t.weight_decay)


def seed_keys(config) -> jax.Array:
    return stats.seed_keys(config.seed, config.num_seeds)


def create_train_state(config, mc: transformer.TransformerConfig) -> dict:
    """{"step", "params" [S, ...], "opt" [S, ...]}."""
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(seed_keys(config))
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": jax.vmap(optimizer(config).init)(params)}


def lm_loss(params, ids, loss_mask, *, mc):
    """Masked next-token NLL (mean over target tokens)."""
    inputs, labels, lm = losses.shift_for_next_token(ids, loss_mask)
    return losses.token_cross_entropy(transformer.forward(params, inputs, config=mc)["logits"], labels, lm)


def train_step(state: dict, keys: jax.Array, pool: dict, *, config, mc) -> tuple[dict, dict]:
    """One AdamW step per seed on a batch drawn (with replacement) from the pool (`keys` `[S]`)."""
    tx = optimizer(config)
    n = pool["ids"].shape[0]

    def one(params, opt, key):
        idx = jax.random.randint(key, (config.train.batch_size,), 0, n)
        loss, grads = jax.value_and_grad(lm_loss)(params, pool["ids"][idx], pool["loss_mask"][idx], mc=mc)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss, optax.global_norm(grads)

    params, opt, loss, gnorm = jax.vmap(one)(state["params"], state["opt"], keys)
    return {"step": state["step"] + 1, "params": params, "opt": opt}, {"train_loss": loss, "grad_norm": gnorm}


def make_train_chunk(config, mc):
    """`chunk(state, pool) -> (state, last metrics)`: `train.log_every` steps in one jitted `lax.scan`."""
    skeys = seed_keys(config)

    @functools.partial(jax.jit, donate_argnums=0)
    def chunk(state, pool):
        def body(st, _):
            keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), st["step"]))(skeys)
            return train_step(st, keys, pool, config=config, mc=mc)

        state, metrics = jax.lax.scan(body, state, None, length=config.train.log_every)
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return chunk


def cot_prompts(problems, P: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded `<BOS> <COT> p <SEP>` prompts `[n, P]` and their masks."""
    ids = np.zeros((len(problems), P), np.int32)
    for i, p in enumerate(problems):
        toks, mask = ad.cot_tokens(p)
        prompt = ad.encode(toks[:mask.index(1)])
        ids[i, P - len(prompt):] = prompt
    return ids, (ids != ad.PAD).astype(np.int32)


def evaluate_cot(params, problems, *, mc, batch_size: int, prompt_len: int, max_new: int) -> dict:
    """Greedy SFT-CoT answers of one model: per-problem correct, first-error index and parse failure."""
    ids, mask = cot_prompts(problems, prompt_len)
    n = len(problems)
    n_pad = stats.round_up(n, batch_size) - n  # one shape per call: the last chunk is padded with copies of row 0
    ids, mask = np.concatenate([ids, np.repeat(ids[:1], n_pad, 0)]), np.concatenate([mask, np.repeat(mask[:1],
                                                                                                        n_pad, 0)])
    out = []
    for s in range(0, len(ids), batch_size):
        g = decoding.generate(params, jnp.asarray(ids[s:s + batch_size]), jnp.asarray(mask[s:s + batch_size]),
                              jax.random.key(0), config=mc, max_new_tokens=max_new, temperature=0.0, eos_id=ad.EOS)
        out.append(np.asarray(g["tokens"]))
    tokens = np.concatenate(out)[:n]
    correct = np.array([ad.final_answer_correct(t, p) for t, p in zip(tokens, problems, strict=True)])
    first_err = np.array([ad.cot_first_error(t, p) for t, p in zip(tokens, problems, strict=True)])
    parse_fail = np.array([ad.final_answer(t) is None for t in tokens])
    return {"correct": correct, "first_error": first_err, "parse_fail": parse_fail,
            "n_steps": np.array([p.n_steps for p in problems]), "tokens": tokens}


def train_and_evaluate(config, workdir: str) -> dict:
    validate(config)
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    mc = model_config(config)
    data = build_data(config)
    pool = jax.tree.map(jnp.asarray, data["pool"])
    state = create_train_state(config, mc)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=config.train.checkpoint_every, keep=2)
    restored = ckpt.restore_latest(state)
    start = 0
    if restored is not None:
        start, state = restored
        print(f"autoprm: resuming from step {start} in {workdir}")
    writer = MetricWriter(workdir, resume_step=start if restored is not None else None)
    chunk = make_train_chunk(config, mc)
    every = config.train.log_every
    with progress(config.train.steps, desc="autoprm sft-cot", initial=start) as bar:
        for step in range(start + every, config.train.steps + 1, every):
            state, metrics = chunk(state, pool)
            check_finite(step, metrics)
            writer.write_scalars(step, metrics)
            ckpt.maybe_save(step, state)
            bar.set_postfix({"loss": " ".join(f"{x:.3f}" for x in np.asarray(metrics["train_loss"]))}, refresh=False)
            bar.update(every)
    ckpt.close()
    writer.close()
    train_seconds = time.time() - t0

    evals = ("val", "test", "ood")
    prompt_len = stats.round_up(max(ad.cot_tokens(p)[1].index(1) for s in evals for p in data["splits"][s]), 16)
    max_new = max(len(ad.cot_tokens(p)[0]) - ad.cot_tokens(p)[1].index(1) for s in evals for p in data["splits"][s])
    max_new = stats.round_up(max_new + 4, 8)  # room for a longer (wrong) chain than the gold one
    validation.require(prompt_len + max_new <= config.model.max_len, "model.max_len", config.model.max_len,
                       f">= {prompt_len + max_new} (longest evaluation prompt + generation)")
    results = {s: [] for s in evals}
    for seed in range(config.num_seeds):
        params = jax.tree.map(lambda x, i=seed: x[i], state["params"])
        for s in evals:
            results[s].append(evaluate_cot(params, data["splits"][s], mc=mc, batch_size=config.eval.batch_size,
                                           prompt_len=prompt_len, max_new=max_new))
    metrics, claims = claims_lib.compute(config, results)
    metrics.update({"train_seconds": train_seconds, "total_seconds": time.time() - t0,
                    "n_params": transformer.count_params(jax.tree.map(lambda x: x[0], state["params"])),
                    "train_tokens": int(config.train.steps * config.train.batch_size * data["pool"]["ids"].shape[1])})
    return outputs.write_results(workdir, project="autoprm", preset=config.preset,
                                 seeds=list(range(config.num_seeds)), metrics=metrics, claims=claims)
