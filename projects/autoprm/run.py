"""autoprm: one model for decomposition (QD) and sub-question answering (QA), a learned step verifier, expert
iteration over sub-questions (the paper's RL [S]), context-guided decoding (CGD), and the baselines.

The pipeline (spec §5.3–5.5; every stage is cached in the workdir, so a killed run resumes where it stopped):
1. **SFT** of one decoder-only transformer (`lib/transformer.py`) on three tasks marked by task tokens (the
   layouts are in `lib/arith_domain.py`): CoT (`<COT>`, the whole chain as one answer), QD at mixed ε (`<QD>
   <EPS_x>`), QA at mixed ε (`<QA>`), half of the QA rows with the next sub-question in context (CGD) and half
   without, so that one SFT model starts both AutoPRM and its no-CGD ablation. Seeds are a vmap axis.
   *SFT-CoT* = this model in CoT mode; *SFT-Decomp* = QD at ε* then QA with CGD, greedy.
2. **Step verifier** (a small transformer with a scalar head) trained by binary cross-entropy on sub-solutions
   sampled from the SFT model on training problems, labelled automatically by exact match of the extracted
   sub-answer with the quantity the sub-question names. The **oracle verifier** is that exact-match function.
3. **Expert iteration** (`lib/expert_iteration.py`), `ei.rounds` rounds: QD at ε*, then down the chain k samples
   per sub-question, scored by the verifier; continue from the best; fine-tune on the accepted prefix of every
   chain (plus a replay batch of the SFT data); best round by validation accuracy. Variants: AutoPRM (learned
   verifier, CGD), AutoPRM − CGD, AutoPRM-oracleV, and the A4 stress test with a hackable verifier (with and
   without CGD). Baselines at the same samples per problem: **ORM-RL** (k CoT traces, keep those with the right
   final answer) and **PRM-RL** (k CoT traces, train on the equations before the oracle's first error).
   **AutoPRM-PG** (our addition, not the paper's; spec §5.4 item 5): AutoPRM's rollouts (the same sampling key, so
   round 1's samples are AutoPRM's), but every one of the k candidates of every step is trained on by REINFORCE with
   the group-mean baseline over its k verifier rewards, plus β·KL (k3 estimator) to the frozen SFT model
   (`lib/expert_iteration.group_advantages`, `lib/losses.group_pg_loss`), with the same replay batch.
4. **Distilling-LM**: two models (QD, QA), each with half the layers, trained separately for the SFT steps.
5. Evaluation on test and the OOD-length split; the ε sweep; verifier-reranked search with abstention.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import outputs, runtime, validation
from lib import arith_checks as checks
from lib import arith_domain as ad
from lib import decoding, losses, stats, transformer
from lib import expert_iteration as ei_lib
from lib.checkpoint import Checkpointer
from lib.metrics import (
    MetricWriter,
    check_finite,
    progress,
    read_json,
    read_npz_or_none,
    write_json_atomic,
    write_npz_atomic,
)
from projects.autoprm import claims as claims_lib

STOPS = (ad.PRE, ad.ANS, ad.EOS)  # a sub-solution ends at the next step's `<PRE>`, the final `<ANS>`, or `<EOS>`
DECOMP_METHODS = ("autoprm", "autoprm_nocgd", "autoprm_oraclev", "hack_cgd", "hack_nocgd", "autoprm_pg")
COT_METHODS = ("orm_rl", "prm_rl")
PG_METHODS = ("autoprm_pg",)  # group-baseline policy gradient instead of EI's supervised step: our addition
METHOD_SPEC = {  # name -> (verifier, cgd); a method's EI key folds in its index here: append new methods at the end
    "autoprm": ("learned", True), "autoprm_nocgd": ("learned", False), "autoprm_oraclev": ("oracle", True),
    "hack_cgd": ("hackable", True), "hack_nocgd": ("hackable", False), "autoprm_pg": ("learned", True),
}
ROLLOUT_KEY_OF = {"autoprm_pg": "autoprm"}  # sample with AutoPRM's key: round 1's rollouts are AutoPRM's own


# --------------------------------------------------------------------------------------------------- config

def validate(config) -> None:
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    validation.require_int(config, "num_seeds", min_value=1)
    for split in ("n_train", "n_val", "n_test", "n_ood"):
        validation.require_int(config, f"data.{split}", min_value=1)
    ok_len = lambda v: isinstance(v, int) and 1 <= v <= 8  # noqa: E731
    validation.require_sequence(config, "data.lengths", item_ok=ok_len, item_desc="chain lengths in 1..8", min_len=1)
    ood = validation.require_sequence(config, "data.ood_lengths", item_ok=ok_len, item_desc="chain lengths in 1..8",
                                      min_len=1)
    lo_hi = validation.require_sequence(config, "data.n_distractors", item_ok=lambda v: isinstance(v, int) and v >= 0,
                                        item_desc="integers >= 0", min_len=2)
    cap = 19 - 2 * max(max(ood), max(config.data.lengths))
    validation.require(len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1] <= cap, "data.n_distractors", lo_hi,
                       f"(lo, hi) with 0 <= lo <= hi <= {cap}")
    validation.require_probability(config, "data.restate_prob")
    validation.require_int(config, "data.max_value", min_value=10, max_value=ad.MAX_VALUE)
    validation.require_int(config, "data.max_literal", min_value=2, max_value=20)
    for name in ("model", "verifier"):
        d = validation.require_int(config, f"{name}.d_model", min_value=1)
        h = validation.require_int(config, f"{name}.n_heads", min_value=1)
        validation.require(d % h == 0, f"{name}.n_heads", h, f"a divisor of {name}.d_model={d}")
        validation.require_int(config, f"{name}.n_layers", min_value=1)
    validation.require_int(config, "model.max_len", min_value=64)
    validation.require_sequence(config, "sft.eps_grid", item_ok=lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
                                item_desc="numbers in [0, 1]", min_len=1)
    validation.require_probability(config, "sft.cgd_frac")
    steps = validation.require_int(config, "train.steps", min_value=1)
    for task in ("cot", "qd", "qa"):
        validation.require_int(config, f"train.batch_{task}", min_value=1)
    validation.require_float(config, "train.learning_rate", min_value=0.0, strict=True)
    validation.require_int(config, "train.warmup_steps", min_value=0, max_value=steps)
    validation.require_float(config, "train.weight_decay", min_value=0.0)
    validation.require_int(config, "train.length_buckets", min_value=1, max_value=64)
    log_every = validation.require_int(config, "train.log_every", min_value=1)
    validation.require(steps % log_every == 0, "train.log_every", log_every, f"a divisor of train.steps={steps}")
    ck = validation.require_int(config, "train.checkpoint_every", min_value=1)
    validation.require(ck % log_every == 0, "train.checkpoint_every", ck, f"a multiple of train.log_every={log_every}")
    validation.require_float(config, "eps_star", min_value=0.0, max_value=1.0)
    validation.require_int(config, "verifier.n_problems", min_value=1)
    validation.require_int(config, "verifier.k", min_value=1)
    validation.require_int(config, "verifier.steps", min_value=1)
    validation.require_int(config, "verifier.batch_size", min_value=1)
    validation.require_float(config, "verifier.learning_rate", min_value=0.0, strict=True)
    validation.require_int(config, "ei.rounds", min_value=0)
    validation.require_int(config, "ei.n_problems", min_value=1)
    validation.require_int(config, "ei.k", min_value=1)
    validation.require_float(config, "ei.temperature", min_value=0.0, strict=True)
    validation.require_probability(config, "ei.threshold")
    validation.require_int(config, "ei.steps", min_value=1)
    validation.require_int(config, "ei.batch_size", min_value=1)
    validation.require_int(config, "ei.replay_batch", min_value=0)
    validation.require_float(config, "ei.learning_rate", min_value=0.0, strict=True)
    methods = validation.require_sequence(config, "ei.methods", item_ok=lambda v: v in DECOMP_METHODS + COT_METHODS,
                                          item_desc=f"names from {list(DECOMP_METHODS + COT_METHODS)}", min_len=0)
    validation.require_float(config, "ei.pg_kl", min_value=0.0)
    validation.require_choice(config, "ei.pg_adv_norm", ei_lib.ADV_NORMS)
    if any(m in PG_METHODS for m in methods):
        validation.require(config.ei.k >= 2, "ei.k", config.ei.k,
                           f">= 2 when ei.methods has {[m for m in methods if m in PG_METHODS]} (a group baseline "
                           "needs two samples per sub-question)")
    validation.require_sequence(config, "eval.eps_sweep", item_ok=lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
                                item_desc="numbers in [0, 1]", min_len=0)
    validation.require_int(config, "eval.batch_rows", min_value=1)
    validation.require_int(config, "eval.prompt_bucket", min_value=1)
    validation.require_int(config, "eval.rerank_m", min_value=1)
    validation.require_probability(config, "eval.rerank_tau")
    validation.require_int(config, "eval.n_rerank", min_value=0)
    validation.require_int(config, "eval.rerank_beams", min_value=1, max_value=16)
    validation.require_int(config, "eval.max_subquestions", min_value=1)
    validation.require_int(config, "eval.n_examples", min_value=0)
    validation.require_int(config, "distill.steps", min_value=0)
    validation.require_int(config, "workers", min_value=1, max_value=64)
    validation.require_choice(config, "xla_cpu_threads", list(runtime.XLA_THREAD_MODES))


def domain_kwargs(config) -> dict:
    d = config.data
    return {"n_distractors": tuple(d.n_distractors), "restate_prob": d.restate_prob, "max_value": d.max_value,
            "max_literal": d.max_literal}


def build_splits(config) -> dict:
    kw = domain_kwargs(config)
    lengths = {"ood": tuple(config.data.ood_lengths)}
    return {name: ad.make_split(config.seed, name, getattr(config.data, f"n_{name}"),
                                lengths=lengths.get(name, tuple(config.data.lengths)), **kw)
            for name in ("train", "val", "test", "ood")}


def _pool(rows) -> dict:
    """An SFT pool `[n, L]`, right-padded, its rows sorted by length (stable), so `length_plan` can cut it into
    slices of similar length."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    rows = [rows[i] for i in order]
    L = stats.round_up(max(len(t) for t, _ in rows), 16)
    return {"ids": ad.pad([ad.encode(t) for t, _ in rows], L), "loss_mask": ad.pad([m for _, m in rows], L, value=0)}


def length_plan(pool: dict, count: int, n_buckets: int) -> tuple:
    """A static sampling plan for `count` rows a step from a length-sorted pool: the rows cut into n equal slices
    (n the largest divisor of `count` that is ≤ `n_buckets`), `count / n` rows drawn from each, each slice cut to its
    own longest row (rounded up to 16 tokens). Every row keeps the same chance per draw as uniform sampling over the
    pool (to within one row of slice size); the batch is stratified by length, and the padding to the pool's longest
    row, most of a step's compute on the long-tailed QA pool, is gone. `((start, size, length, count), ...)`."""
    n = max(d for d in range(1, min(n_buckets, count) + 1) if count % d == 0)
    lengths = (np.asarray(pool["ids"]) != ad.PAD).sum(1)
    bounds = np.linspace(0, len(lengths), n + 1).round().astype(int)
    return tuple((int(a), int(b - a), min(stats.round_up(int(lengths[a:b].max()), 16), pool["ids"].shape[1]),
                  count // n) for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def _ei_pool(rows, adv=None) -> dict:
    """An expert-iteration pool in shape buckets (rows to a multiple of 256, length of 32; `n` real rows, the only
    ones sampled), so the fine-tuning step compiles for few shapes across rounds. `adv` (one float per row): the
    policy-gradient advantages of AutoPRM-PG's rows."""
    L = stats.round_up(max(len(t) for t, _ in rows), 32)
    R = stats.round_up(len(rows), 256)
    ids, mask = ad.pad([ad.encode(t) for t, _ in rows], L), ad.pad([m for _, m in rows], L, value=0)
    pool = {"ids": np.concatenate([ids, np.zeros((R - len(rows), L), np.int32)]),
            "loss_mask": np.concatenate([mask, np.zeros((R - len(rows), L), np.int32)]),
            "n": np.int32(len(rows))}
    if adv is not None:
        pool["adv"] = np.concatenate([np.asarray(adv, np.float32), np.zeros(R - len(rows), np.float32)])
    return pool


def build_pools(config, train) -> dict:
    """SFT pools, one per task: ids/loss_mask `[n_train, L_task]` int32. ε per row drawn from `sft.eps_grid`;
    a QA row has CGD with probability `sft.cgd_frac`."""
    rng = np.random.default_rng([config.seed, 17])
    grid = tuple(config.sft.eps_grid)
    eps_qd, eps_qa = rng.choice(grid, len(train)), rng.choice(grid, len(train))
    cgd = rng.random(len(train)) < config.sft.cgd_frac
    pools = {"cot": _pool([ad.cot_tokens(p) for p in train]),
             "qd": _pool([ad.qd_tokens(p, float(e)) for p, e in zip(train, eps_qd, strict=True)]),
             "qa": _pool([ad.qa_tokens(p, float(e), cgd=bool(c))[:2]
                          for p, e, c in zip(train, eps_qa, cgd, strict=True)])}
    longest = max(v["ids"].shape[1] for v in pools.values())
    validation.require(longest <= config.model.max_len, "model.max_len", config.model.max_len,
                       f">= {longest} (the longest SFT training sequence)")
    return pools


def model_config(config, *, n_layers: int | None = None) -> transformer.TransformerConfig:
    m = config.model
    return transformer.TransformerConfig(vocab_size=len(ad.VOCAB), d_model=m.d_model, n_layers=n_layers or m.n_layers,
                                         n_heads=m.n_heads, max_len=m.max_len, positions="rotary")


def verifier_config(config) -> transformer.TransformerConfig:
    v = config.verifier
    return transformer.TransformerConfig(vocab_size=len(ad.VOCAB), d_model=v.d_model, n_layers=v.n_layers,
                                         n_heads=v.n_heads, max_len=config.model.max_len, positions="rotary",
                                         head="scalar")


# ------------------------------------------------------------------------------------------------- training

def sft_optimizer(config, steps: int | None = None):
    """AdamW, linear warm-up then cosine decay to 10 % (spec §3 [S]: warm-up, cosine, weight decay 0.05)."""
    t = config.train
    steps = steps or t.steps
    lr = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, max(min(t.warmup_steps, steps - 1), 1), steps,
                                            end_value=0.1 * t.learning_rate)
    return optax.adamw(lr, weight_decay=t.weight_decay)


def lm_loss(params, ids, loss_mask, *, mc):
    """Masked next-token NLL (mean over target tokens)."""
    inputs, labels, lm = losses.shift_for_next_token(ids, loss_mask)
    return losses.token_cross_entropy(transformer.forward(params, inputs, config=mc)["logits"], labels, lm)


def _plan_loss(p, pool, plan, key, *, mc):
    """Masked next-token NLL (mean over the target tokens of the whole batch) of rows drawn with replacement by a
    `length_plan`, each slice's rows cut to that slice's length (the pads cut off carry no loss)."""
    nll = count = 0.0
    for j, (start, size, length, rows) in enumerate(plan):
        idx = start + jax.random.randint(jax.random.fold_in(key, j), (rows,), 0, size)
        inputs, labels, lm = losses.shift_for_next_token(pool["ids"][idx, :length], pool["loss_mask"][idx, :length])
        logits = transformer.forward(p, inputs, config=mc)["logits"]
        nll = nll - (losses.token_logprobs(logits, labels) * lm).sum()
        count = count + lm.sum()
    return nll / jnp.maximum(count, 1.0)


def pg_loss(params, ref_params, ids, loss_mask, adv, *, mc, beta: float):
    """Group-baseline policy gradient on sampled rows (AutoPRM-PG, our addition): ids/loss_mask `[b, L]` (the mask
    marks the sampled sub-solution tokens), adv `[b]`; `lib/losses.group_pg_loss` with the k3 KL to `ref_params`
    (the frozen SFT model) on the same tokens. Returns (loss, {"pg", "kl"})."""
    inputs, labels, lm = losses.shift_for_next_token(ids, loss_mask)
    logp = losses.token_logprobs(transformer.forward(params, inputs, config=mc)["logits"], labels)
    ref = losses.token_logprobs(transformer.forward(ref_params, inputs, config=mc)["logits"], labels)
    return losses.group_pg_loss(logp, jax.lax.stop_gradient(ref), adv, lm, beta=beta)


def make_step(mc, tx, batch: dict, *, pg_beta: float = 0.0):
    """`step(params, opt, key, pools) -> (params, opt, metrics)` for one seed: the sum over pools of the masked NLL
    of `batch[name]` rows drawn with replacement from `pools[name]`; `batch[name]` is a row count (uniform over the
    pool's rows, or its first `n` where the pool says) or a `length_plan`. A pool with per-row advantages `adv`
    contributes `pg_loss` instead (β = `pg_beta`, the reference params in `pools["ref"]`)."""
    names = sorted(n for n, b in batch.items() if b)

    def step(params, opt, key, pools):
        def loss_fn(p):
            parts, extra = {}, {}
            for i, name in enumerate(names):
                if isinstance(batch[name], tuple):
                    parts[name] = _plan_loss(p, pools[name], batch[name], jax.random.fold_in(key, i), mc=mc)
                    continue
                n = pools[name]["n"] if "n" in pools[name] else pools[name]["ids"].shape[0]
                idx = jax.random.randint(jax.random.fold_in(key, i), (batch[name],), 0, n)
                if "adv" in pools[name]:
                    parts[name], aux = pg_loss(p, pools["ref"], pools[name]["ids"][idx],
                                               pools[name]["loss_mask"][idx], pools[name]["adv"][idx], mc=mc,
                                               beta=pg_beta)
                    extra.update({f"{k}_{name}": v for k, v in aux.items()})
                    continue
                parts[name] = lm_loss(p, pools[name]["ids"][idx], pools[name]["loss_mask"][idx], mc=mc)
            return sum(parts.values()), (parts, extra)

        (loss, (parts, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, {"train_loss": loss, "grad_norm": optax.global_norm(grads),
                                                            **{f"loss_{k}": v for k, v in parts.items()}, **extra}

    return step


def make_chunk(step, length: int, *, vmapped: bool):
    """`chunk(params, opt, keys, start, pools)`: `length` steps in one jitted `lax.scan` (over seeds if vmapped)."""
    def run(params, opt, key, start, pools):
        def body(carry, i):
            p, o = carry
            p, o, m = step(p, o, jax.random.fold_in(key, start + i), pools)
            return (p, o), m

        (params, opt), metrics = jax.lax.scan(body, (params, opt), jnp.arange(length))
        return params, opt, jax.tree.map(lambda m: m[-1], metrics)

    if vmapped:
        run = jax.vmap(run, in_axes=(0, 0, 0, None, None))
    return jax.jit(run, donate_argnums=(0, 1))


def train_sft(config, workdir: str, pools: dict, mc, *, name: str, batch: dict, steps: int, n_seeds: int,
              seed_offset: int = 0):
    """Trains `n_seeds` models (a vmap axis) on the pools; checkpointed under workdir/name, resumable."""
    tx = sft_optimizer(config, steps)
    keys = stats.seed_keys(config.seed, n_seeds, start=seed_offset)
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(keys)
    state = {"params": params, "opt": jax.vmap(tx.init)(params)}
    ckpt = Checkpointer(os.path.join(workdir, name), save_every=config.train.checkpoint_every, keep=2)
    restored = ckpt.restore_latest(state)
    start = 0
    if restored is not None:
        start, state = restored
        if start == steps:  # trained: read back (worker processes too, without touching the metric log)
            ckpt.close()
            return state["params"]
        print(f"autoprm: resuming {name} from step {start} in {workdir}")
    every = min(config.train.log_every, steps)
    writer = MetricWriter(os.path.join(workdir, name), resume_step=start if restored is not None else None)
    chunk = make_chunk(make_step(mc, tx, batch), every, vmapped=True)
    pools_j = jax.tree.map(jnp.asarray, pools)
    train_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    with progress(steps, desc=f"autoprm {name}", initial=start) as bar:
        for step in range(start + every, steps + 1, every):
            p, o, metrics = chunk(state["params"], state["opt"], train_keys, step - every, pools_j)
            state = {"params": p, "opt": o}
            check_finite(step, metrics)
            writer.write_scalars(step, metrics)
            ckpt.maybe_save(step, state)
            bar.set_postfix({"loss": " ".join(f"{x:.3f}" for x in np.asarray(metrics["train_loss"]))}, refresh=False)
            bar.update(every)
    if ckpt.latest_step() != steps:
        ckpt.save(steps, state)
    ckpt.close()
    writer.close()
    return state["params"]


def finetune(params, pool: dict, *, mc, config, key, replay: dict | None, steps: int,
             replay_plans: dict | None = None, ref=None):
    """Expert-iteration fine-tuning of one model: `steps` AdamW steps (constant lr `ei.learning_rate`) on batches of
    the accepted samples plus a replay batch from each SFT pool (so QD and the other tasks are not forgotten), drawn
    by `replay_plans[name]` (a `length_plan`) where given, else uniformly. A pool with advantages (`adv`, AutoPRM-PG)
    is trained by `pg_loss` (β = `ei.pg_kl`, KL to `ref`) instead of NLL. Returns (params, the last step's metrics
    as floats)."""
    tx = optax.adamw(config.ei.learning_rate, weight_decay=config.train.weight_decay)
    batch = {"ei": config.ei.batch_size}
    pools = {"ei": pool}
    if "adv" in pool:
        pools["ref"] = ref
    if replay is not None and config.ei.replay_batch:
        for name, p in replay.items():
            batch[f"replay_{name}"] = (replay_plans or {}).get(name, config.ei.replay_batch)
            pools[f"replay_{name}"] = p
    beta = float(config.ei.pg_kl) if "adv" in pool else 0.0
    chunk = _finetune_chunk(mc, tx, tuple(sorted(batch.items())), steps, config.ei.learning_rate, beta)
    params = jax.tree.map(jnp.copy, params)  # the chunk donates its input; the caller may keep the old params
    params, _, metrics = chunk(params, tx.init(params), key, 0, jax.tree.map(jnp.asarray, pools))
    check_finite(steps, metrics)
    return params, {k: float(v) for k, v in metrics.items()}


_CHUNKS: dict = {}


def _finetune_chunk(mc, tx, batch_items, steps, lr, pg_beta: float = 0.0):
    """One jitted chunk per (model, batches, steps, lr, β); pools of a new bucketed shape retrace it (few shapes)."""
    key = (mc, batch_items, steps, lr, pg_beta)
    if key not in _CHUNKS:
        _CHUNKS[key] = make_chunk(make_step(mc, tx, dict(batch_items), pg_beta=pg_beta), steps, vmapped=False)
    return _CHUNKS[key]


def train_verifier(vc, examples: dict, *, config, key) -> dict:
    """Binary cross-entropy on (tokens, label) examples: ids `[n, L]` right-padded, labels `[n]`."""
    v = config.verifier
    params = transformer.init_params(vc, jax.random.fold_in(key, 0))
    tx = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, v.learning_rate, max(v.steps // 10, 1), v.steps,
                                                       end_value=0.1 * v.learning_rate), weight_decay=0.01)
    ids, labels = jnp.asarray(examples["ids"]), jnp.asarray(examples["labels"], jnp.float32)
    # balance the classes: the SFT model's samples are mostly right or mostly wrong depending on its accuracy
    pos = float(np.clip(np.mean(examples["labels"]), 0.05, 0.95))
    weights = jnp.where(labels > 0, 0.5 / pos, 0.5 / (1 - pos))

    def loss_fn(p, idx):
        score = transformer.forward(p, ids[idx], config=vc, attention_mask=(ids[idx] != ad.PAD).astype(jnp.int32))
        return jnp.mean(weights[idx] * optax.sigmoid_binary_cross_entropy(score["score"], labels[idx]))

    @jax.jit
    def run(params, opt):
        def body(carry, i):
            p, o = carry
            idx = jax.random.randint(jax.random.fold_in(key, i + 1), (v.batch_size,), 0, ids.shape[0])
            loss, g = jax.value_and_grad(loss_fn)(p, idx)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (params, opt), loss_hist = jax.lax.scan(body, (params, opt), jnp.arange(v.steps))
        return params, loss_hist

    params, loss_hist = run(params, tx.init(params))
    check_finite(v.steps, {"verifier_loss": loss_hist[-1]})
    return params


# ----------------------------------------------------------------------------------------------- generation

def _left_pad(seqs, P: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((len(seqs), P), np.int32)
    for i, s in enumerate(seqs):
        ids[i, P - len(s):] = s
    return ids, (ids != ad.PAD).astype(np.int32)


def sample(params, mc, prompts, *, max_new: int, stop, k: int = 1, temperature: float = 0.0, key=None,
           batch_rows: int = 256, max_len: int | None = None, bucket: int = 64) -> dict:
    """k continuations per prompt (token-id lists), batched KV-cached generation (`lib/decoding.generate`).

    The n·k rows are sorted by prompt length and cut into calls of `batch_rows` rows (fewer rows: the next power of
    two), each call's prompts left-padded to its own longest prompt rounded up to `bucket` tokens, so few shapes
    compile and short prompts do not pay for the longest one's prefill. Row i·k + j (prompt i, sample j) always
    uses that number as its `row_ids` entry, so its sample does not depend on how the rows are batched.

    Returns {"tokens": list over prompts of k id lists (up to and including the stop token), "logp" `[n, k]`
    (sum of the chosen tokens' log-probabilities), "n_tokens" (tokens sampled)}."""
    n = len(prompts)
    lens = np.array([len(p) for p in prompts])
    rows = n * k
    b = _row_bucket(rows, batch_rows)
    order = np.argsort(np.repeat(lens, k), kind="stable")  # row r = i·k + j belongs to prompt r // k
    order = np.concatenate([order, np.repeat(order[-1:], stats.round_up(rows, b) - rows)])  # a full last call
    key = jax.random.key(0) if key is None else key
    toks = np.zeros((rows, max_new), np.int32)
    logps, lens_out = np.zeros(rows, np.float32), np.zeros(rows, np.int64)
    for s in range(0, len(order), b):
        idx = order[s:s + b]
        longest = int(lens[idx // k].max())
        P = stats.round_up(longest, bucket)
        if max_len is not None and P + max_new > max_len:
            P = max(longest, max_len - max_new)
        ids, mask = _left_pad([prompts[r // k] for r in idx], P)
        g = decoding.generate(params, jnp.asarray(ids), jnp.asarray(mask), key, config=mc, max_new_tokens=max_new,
                              temperature=temperature, eos_id=tuple(stop), row_ids=jnp.asarray(idx))
        toks[idx] = np.asarray(g["tokens"])
        logps[idx] = np.asarray(g["logprobs"]).sum(1)
        lens_out[idx] = np.asarray(g["lengths"])
    out = [[toks[i * k + j, :lens_out[i * k + j]].tolist() for j in range(k)] for i in range(n)]
    return {"tokens": out, "logp": logps.reshape(n, k), "n_tokens": int(lens_out.sum())}


def _row_bucket(rows: int, batch_rows: int) -> int:
    """Rows per generation call: `batch_rows`, or the next power of two ≥ 8 for fewer rows (few compiled shapes)."""
    return min(batch_rows, max(8, 1 << (max(rows, 1) - 1).bit_length()))


def sub_max_new(config) -> int:
    """Token budget of every generation call (one value, so one compiled shape): a decomposition of
    `eval.max_subquestions` sub-questions (7 tokens each), or the longest chain as one CoT trace (6 per equation)."""
    return max(6 * max(tuple(config.data.ood_lengths) + tuple(config.data.lengths)) + 4,
               7 * config.eval.max_subquestions + 1)


def _strip_stop(ids) -> tuple:
    ids = list(ids)
    if ids and ids[-1] in STOPS:
        ids = ids[:-1]
    return tuple(ad.VOCAB[i] for i in ids)


def decompose(params, mc, problems, eps: float, *, config) -> list[list[tuple]]:
    """Greedy QD at granularity ε: sub-question token tuples per problem (at most `eval.max_subquestions`; a problem
    whose decomposition is empty falls back to its own question, as at ε = 0)."""
    prompts = [ad.encode(ad.qd_prompt(p, eps)) for p in problems]
    g = sample(params, mc, prompts, max_new=sub_max_new(config), stop=(ad.EOS,),
               batch_rows=config.eval.batch_rows, max_len=config.model.max_len,
                   bucket=config.eval.prompt_bucket)
    out = []
    for p, cand in zip(problems, g["tokens"], strict=True):
        qs = ad.split_subquestions(cand[0])[:config.eval.max_subquestions]
        out.append(qs or [tuple(p.question)])
    return out


def verifier_inputs(problem, questions, sols, t: int, cand, *, cgd: bool) -> list:
    """What the learned verifier reads: the QA prompt of step t, the candidate and its stop token."""
    stop = "<PRE>" if t + 1 < len(questions) else "<ANS>"
    return ad.encode(ad.qa_chain(problem, questions, sols, t, cgd=cgd) + list(cand) + [stop])


def score_learned(vparams, vc, seqs: list, *, batch_rows: int = 256, bucket: int = 64) -> np.ndarray:
    """P(correct) from the learned verifier for id lists: sorted by length, scored `batch_rows` at a time, each call
    right-padded to its own longest sequence rounded up to `bucket` tokens (causal attention: a row's score does
    not depend on the padding after it)."""
    lens = np.array([len(q) for q in seqs])
    b = _row_bucket(len(seqs), batch_rows)
    order = np.argsort(lens, kind="stable")
    order = np.concatenate([order, np.repeat(order[-1:], stats.round_up(len(seqs), b) - len(seqs))])
    out = np.zeros(len(seqs), np.float32)
    for s in range(0, len(order), b):
        idx = order[s:s + b]
        ids = ad.pad([seqs[i] for i in idx], stats.round_up(int(lens[idx].max()), bucket))
        out[idx] = np.asarray(_score_jit(vparams, jnp.asarray(ids), vc))
    return out


@functools.partial(jax.jit, static_argnums=(2,))
def _score_jit(vparams, ids, vc):
    return jax.nn.sigmoid(transformer.forward(vparams, ids, config=vc,
                                              attention_mask=(ids != ad.PAD).astype(jnp.int32))["score"])


def solve_chains(params, mc, problems, questions, *, config, cgd: bool, k: int = 1, temperature: float = 0.0,
                 key=None, reward=None, threshold: float = 0.5, collect: bool = False) -> dict:
    """Answers the sub-questions in order (QA), batched over problems: at step t each active problem's prompt is
    the QA prefix, the chosen earlier sub-solutions and the step context; k candidates are sampled; with
    `reward(items) -> [len(items)]` (items: (problem index, t, candidate tokens)) the best-rewarded one is kept,
    else candidate 0.

    Returns {"sols": chosen sub-solutions per problem, "reward", "accepted", "true" (oracle, per step),
    "answer" (the last sub-answer), "n_tokens", "samples" (if collect: every candidate with its oracle label, in
    groups of k consecutive entries per (problem, step)), "sample_reward" and "sample_ids" (if collect: each
    candidate's reward, NaN without `reward`, and its sampled token ids, stop token included)}."""
    n = len(problems)
    sols = [[] for _ in range(n)]
    rew, acc, true = ([[] for _ in range(n)] for _ in range(3))
    samples, sample_reward, sample_ids, n_tokens = [], [], [], 0
    max_new = sub_max_new(config)
    key = jax.random.key(0) if key is None else key
    for t in range(max(len(q) for q in questions)):
        active = [i for i in range(n) if t < len(questions[i])]
        prompts = [ad.encode(ad.qa_chain(problems[i], questions[i], sols[i], t, cgd=cgd)) for i in active]
        g = sample(params, mc, prompts, max_new=max_new, stop=STOPS, k=k, temperature=temperature,
                   key=jax.random.fold_in(key, t), batch_rows=config.eval.batch_rows, max_len=config.model.max_len,
                   bucket=config.eval.prompt_bucket)
        n_tokens += g["n_tokens"]
        cands = [[_strip_stop(c) for c in row] for row in g["tokens"]]
        oracle = np.array([[checks.subanswer_correct(c, ad.subquestion_target(problems[i], questions[i][t]))
                            for c in row] for i, row in zip(active, cands, strict=True)])
        if reward is not None:
            r = np.asarray(reward([(i, t, c) for i, row in zip(active, cands, strict=True) for c in row],
                                  sols), float).reshape(len(active), k)
            best, ok = ei_lib.choose_candidates(r, g["logp"], threshold=threshold)
        else:
            r, best, ok = oracle.astype(float), np.zeros(len(active), int), np.ones(len(active), bool)
        for j, i in enumerate(active):
            sols[i].append(cands[j][best[j]])
            rew[i].append(float(r[j, best[j]]))
            acc[i].append(bool(ok[j]))
            true[i].append(bool(oracle[j, best[j]]))
        if collect:
            samples += [(i, t, list(sols[i][:t]), c, bool(o)) for j, i in enumerate(active)
                        for c, o in zip(cands[j], oracle[j], strict=True)]
            sample_reward += (r.reshape(-1) if reward is not None else np.full(len(active) * k, np.nan)).tolist()
            sample_ids += [list(c) for row in g["tokens"] for c in row]
    answer = [checks.parse_solution(s[-1])[1] if s else None for s in sols]
    return {"sols": sols, "reward": rew, "accepted": acc, "true": true, "answer": answer, "n_tokens": n_tokens,
            "samples": samples, "sample_reward": sample_reward, "sample_ids": sample_ids}


def make_reward(kind: str, problems, questions, *, cgd: bool, vparams=None, vc=None, batch_rows: int = 256,
                bucket: int = 64):
    """`reward(items, sols) -> [len(items)]` for the verifier kind: learned (P(correct)), oracle (exact match of the
    sub-answer with the named quantity), hackable (any valid equation chain starting from a number in the text)."""
    def reward(items, sols):
        if kind == "oracle":
            return [checks.subanswer_correct(c, ad.subquestion_target(problems[i], questions[i][t]))
                    for i, t, c in items]
        if kind == "hackable":
            return [checks.hackable_check(c, problems[i]) for i, t, c in items]
        seqs = [verifier_inputs(problems[i], questions[i], sols[i], t, c, cgd=cgd) for i, t, c in items]
        return score_learned(vparams, vc, seqs, batch_rows=batch_rows, bucket=bucket)
    return reward


# ----------------------------------------------------------------------------------------------- evaluation

def evaluate_decomp(params, mc, problems, *, config, eps: float, cgd: bool, qd_params=None, qd_mc=None) -> dict:
    """QD at ε (greedy; `qd_params` for a separate decomposer) then QA greedy: per-problem final correctness, step
    accuracy (sub-answers equal to the quantity each sub-question names), trace correctness, parse failures."""
    questions = decompose(qd_params if qd_params is not None else params, qd_mc or mc, problems, eps, config=config)
    out = solve_chains(params, mc, problems, questions, config=config, cgd=cgd)
    correct = np.array([a == p.answer for a, p in zip(out["answer"], problems, strict=True)])
    return {"correct": correct, "n_steps": np.array([p.n_steps for p in problems]),
            "step_acc": np.array([np.mean(t) for t in out["true"]]),
            "trace_correct": np.array([all(t) for t in out["true"]]) & correct,
            "parse_fail": np.array([a is None for a in out["answer"]]),
            "n_sub": np.array([len(q) for q in questions]), "questions": questions, "sols": out["sols"]}


def evaluate_cot(params, mc, problems, *, config) -> dict:
    """Greedy CoT answers: per-problem correct, first-error index, parse failure."""
    prompts = [ad.encode(ad.cot_prompt(p)) for p in problems]
    max_new = sub_max_new(config)
    g = sample(params, mc, prompts, max_new=max_new, stop=(ad.EOS,), batch_rows=config.eval.batch_rows,
               max_len=config.model.max_len, bucket=config.eval.prompt_bucket)
    tokens = [row[0] for row in g["tokens"]]
    correct = np.array([checks.final_answer_correct(t, p) for t, p in zip(tokens, problems, strict=True)])
    first_err = np.array([checks.cot_first_error(t, p) for t, p in zip(tokens, problems, strict=True)])
    return {"correct": correct, "n_steps": np.array([p.n_steps for p in problems]),
            "trace_correct": (first_err == -1) & correct,
            "parse_fail": np.array([checks.final_answer(t) is None for t in tokens]), "tokens": tokens}


def evaluate_rerank(params, mc, problems, *, config, reward_fn_for, key) -> dict:
    """Verifier-reranked beam search (spec §5.4 step 4): each of a problem's `eval.rerank_beams` beams samples m
    candidates per step; a candidate's score is log P + log R; the beams' children are ranked by their beam's score
    plus theirs and the best `rerank_beams` distinct chains are kept. A beam abstains once every one of its m
    candidates at some step has R < τ; the problem's answer is its best final beam, abstaining if that beam did.
    Accuracy counts an abstention as wrong; selective accuracy excludes it. One beam = greedy reranking."""
    questions = decompose(params, mc, problems, config.eps_star, config=config)
    m, tau, width = config.eval.rerank_m, config.eval.rerank_tau, config.eval.rerank_beams
    reward = reward_fn_for(problems, questions)
    n = len(problems)
    beams = [[((), 0.0, False)] for _ in range(n)]  # per problem: (sub-solutions, score, abstained), best first
    max_new = sub_max_new(config)
    for t in range(max(len(q) for q in questions)):
        slots = [(i, b) for i in range(n) if t < len(questions[i]) for b in range(len(beams[i]))]
        prompts = [ad.encode(ad.qa_chain(problems[i], questions[i], list(beams[i][b][0]), t, cgd=True))
                   for i, b in slots]
        g = sample(params, mc, prompts, max_new=max_new, stop=STOPS, k=m, temperature=config.ei.temperature,
                   key=jax.random.fold_in(key, t), batch_rows=config.eval.batch_rows, max_len=config.model.max_len,
                   bucket=config.eval.prompt_bucket)
        cands = [[_strip_stop(c) for c in row] for row in g["tokens"]]
        r = np.zeros((len(slots), m))
        for b in range(width):  # the reward reads each item's chain so far: one call per beam slot
            rows = [j for j, (_, bb) in enumerate(slots) if bb == b]
            if rows:
                sols_b = {slots[j][0]: list(beams[slots[j][0]][b][0]) for j in rows}
                r[rows] = np.asarray(reward([(slots[j][0], t, c) for j in rows for c in cands[j]], sols_b),
                                     float).reshape(len(rows), m)
        score = ei_lib.rerank_score(g["logp"], r)
        children: dict = {}
        for j, (i, b) in enumerate(slots):
            sols, base, abst = beams[i][b]
            for c in range(m):
                children.setdefault(i, []).append((sols + (cands[j][c],), base + float(score[j, c]),
                                                   abst or bool(r[j].max() < tau)))
        for i, kids in children.items():
            kids.sort(key=lambda x: -x[1])
            kept, seen = [], set()
            for kid in kids:
                if kid[0] not in seen:
                    seen.add(kid[0])
                    kept.append(kid)
                if len(kept) == width:
                    break
            beams[i] = kept
    answers = [checks.parse_solution(bs[0][0][-1])[1] if bs[0][0] else None for bs in beams]
    abstain = np.array([bs[0][2] for bs in beams])
    correct = np.array([a == p.answer for a, p in zip(answers, problems, strict=True)])
    return {"correct": correct & ~abstain, "answered_correct": correct, "abstain": abstain,
            "sols": [list(bs[0][0]) for bs in beams]}


# ----------------------------------------------------------------------------------------- expert iteration

def ei_problems(config, train, r: int, seed: int) -> list:
    """Round r's problems: a slice of the training split (different per round and seed, wrapping around)."""
    n = config.ei.n_problems
    start = ((seed * config.ei.rounds + r - 1) * n) % len(train)
    return [train[(start + i) % len(train)] for i in range(n)]


def _decomp_rollouts(params, mc, problems, *, config, method, vparams, vc, key, collect: bool = False):
    """One round's rollouts of a decomposed method: QD at ε*, then k verifier-scored candidates per sub-question,
    the chain continued from the best (`solve_chains`) → (questions, its output, the rollout stats that EI and
    AutoPRM-PG both report)."""
    kind, cgd = METHOD_SPEC[method]
    questions = decompose(params, mc, problems, config.eps_star, config=config)
    reward = make_reward(kind, problems, questions, cgd=cgd, vparams=vparams, vc=vc, batch_rows=config.eval.batch_rows,
                         bucket=config.eval.prompt_bucket)
    out = solve_chains(params, mc, problems, questions, config=config, cgd=cgd, k=config.ei.k,
                       temperature=config.ei.temperature, key=key, reward=reward, threshold=config.ei.threshold,
                       collect=collect)
    chosen_pred = [r >= config.ei.threshold for rs in out["reward"] for r in rs]
    chosen_true = [x for ts in out["true"] for x in ts]
    n_steps = sum(len(a) for a in out["accepted"])
    stats_ = {"tokens_sampled": out["n_tokens"],
              "kept_frac": float(sum(ei_lib.accepted_prefix(a).sum() for a in out["accepted"]) / max(n_steps, 1)),
              "tampering_gap": ei_lib.tampering_gap(chosen_pred, chosen_true),
              "sample_true_frac": float(np.mean(chosen_true))}
    return questions, out, stats_


def collect_decomp(params, mc, problems, *, config, method, vparams, vc, key) -> tuple[dict, dict]:
    """One EI round's samples for a decomposed method → (EI pool, stats)."""
    cgd = METHOD_SPEC[method][1]
    questions, out, stats_ = _decomp_rollouts(params, mc, problems, config=config, method=method, vparams=vparams,
                                              vc=vc, key=key)
    rows = []
    for i, p in enumerate(problems):
        keep = ei_lib.accepted_prefix(out["accepted"][i])
        if keep.any():
            rows.append(ad.qa_chain_sequence(p, questions[i], out["sols"][i], keep, cgd=cgd))
    stats_["steps_kept"] = int(sum(sum(m) > 0 for _, m in rows))
    return (_ei_pool(rows) if rows else None), stats_


def collect_pg(params, mc, problems, *, config, method, vparams, vc, key) -> tuple[dict, dict]:
    """One round of AutoPRM-PG (our addition): AutoPRM's rollouts (`_decomp_rollouts`), then every candidate of every
    step becomes a row whose loss covers its sampled tokens (stop token included), weighted by its group advantage
    over the k candidates (`ei.pg_adv_norm`). → (PG pool with `adv`, stats; EI's rollout stats plus the PG ones)."""
    cgd = METHOD_SPEC[method][1]
    questions, out, stats_ = _decomp_rollouts(params, mc, problems, config=config, method=method, vparams=vparams,
                                              vc=vc, key=key, collect=True)
    rewards = np.asarray(out["sample_reward"], float).reshape(-1, config.ei.k)
    adv = ei_lib.group_advantages(rewards, norm=config.ei.pg_adv_norm).reshape(-1)
    rows = []
    for (i, t, prefix, _, _), ids in zip(out["samples"], out["sample_ids"], strict=True):
        ctx = ad.qa_chain(problems[i], questions[i], prefix, t, cgd=cgd)
        rows.append((ctx + [ad.VOCAB[x] for x in ids], [0] * len(ctx) + [1] * len(ids)))
    true = np.array([o for *_, o in out["samples"]], bool)
    stats_.update({"pg_rows": len(rows), "cand_true_frac": float(true.mean()), "reward_mean": float(rewards.mean()),
                   "adv_abs_mean": float(np.abs(adv).mean()),
                   # how well the advantages point the right way: mean advantage of right minus wrong candidates
                   "adv_true_minus_false": float(adv[true].mean() - adv[~true].mean())
                   if 0 < true.sum() < true.size else float("nan")})
    return _ei_pool(rows, adv), stats_


def collect_cot(params, mc, problems, *, config, method, key) -> tuple[dict, dict]:
    """One EI round's CoT samples for ORM-RL / PRM-RL → (EI pool, stats)."""
    prompts = [ad.cot_prompt(p) for p in problems]
    max_new = sub_max_new(config)
    g = sample(params, mc, [ad.encode(x) for x in prompts], max_new=max_new, stop=(ad.EOS,), k=config.ei.k,
               temperature=config.ei.temperature, key=key, batch_rows=config.eval.batch_rows,
               max_len=config.model.max_len, bucket=config.eval.prompt_bucket)
    rows, right = [], []
    for p, prompt, cands in zip(problems, prompts, g["tokens"], strict=True):
        for c in cands:
            toks = [ad.VOCAB[i] for i in c]
            m = checks.cot_trace_mask(toks, p, "orm" if method == "orm_rl" else "prm")
            right.append(checks.final_answer_correct(toks, p))
            if any(m):
                rows.append((prompt + toks, [0] * len(prompt) + m))
    return (_ei_pool(rows) if rows else None), {"tokens_sampled": g["n_tokens"], "steps_kept": len(rows),
                                             "sample_true_frac": float(np.mean(right))}


def val_accuracy(params, mc, problems, *, config, method) -> float:
    if method in COT_METHODS:
        return float(evaluate_cot(params, mc, problems, config=config)["correct"].mean())
    return float(evaluate_decomp(params, mc, problems, config=config, eps=config.eps_star,
                                 cgd=METHOD_SPEC[method][1])["correct"].mean())


def run_ei(params, mc, splits, pools, *, config, method, seed, vparams, vc) -> tuple[dict, list]:
    spec_name = ROLLOUT_KEY_OF.get(method, method)
    key = jax.random.fold_in(stats.seed_keys(config.seed, 1, start=seed)[0], 1000 + list(METHOD_SPEC).index(spec_name)
                             if method in METHOD_SPEC else 2000 + COT_METHODS.index(method))
    replay = jax.tree.map(jnp.asarray, pools)
    replay_plans = {name: length_plan(p, config.ei.replay_batch, config.train.length_buckets)
                    for name, p in pools.items()} if config.ei.replay_batch else None

    def collect(p, r):
        probs = ei_problems(config, splits["train"], r, seed)
        if method in COT_METHODS:
            return collect_cot(p, mc, probs, config=config, method=method, key=jax.random.fold_in(key, r))
        if method in PG_METHODS:
            return collect_pg(p, mc, probs, config=config, method=method, vparams=vparams, vc=vc,
                              key=jax.random.fold_in(key, r))
        return collect_decomp(p, mc, probs, config=config, method=method, vparams=vparams, vc=vc,
                              key=jax.random.fold_in(key, r))

    def tune(p, pool, r):
        if pool is None:
            return p
        tuned, metrics = finetune(p, pool, mc=mc, config=config, key=jax.random.fold_in(key, 10_000 + r),
                                  replay=replay, steps=config.ei.steps, replay_plans=replay_plans, ref=params)
        if method not in PG_METHODS:
            return tuned  # EI's history rows stay as they were
        return tuned, {"pg_kl_last": metrics["kl_ei"], "pg_term_last": metrics["pg_ei"]}

    evaluate = functools.partial(val_accuracy, mc=mc, problems=splits["val"], config=config, method=method)
    return ei_lib.expert_iteration(params, rounds=config.ei.rounds, collect=collect, finetune=tune, evaluate=evaluate)


# --------------------------------------------------------------------------------------------- stage cache

def _tree_path(workdir, name):
    return os.path.join(workdir, "stages", f"{name}.npz")


def save_tree(workdir: str, name: str, tree) -> None:
    os.makedirs(os.path.join(workdir, "stages"), exist_ok=True)
    write_npz_atomic(_tree_path(workdir, name), {f"l{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))})


def load_tree(workdir: str, name: str, like):
    d = read_npz_or_none(_tree_path(workdir, name))
    if d is None:
        return None
    leaves, treedef = jax.tree.flatten(like)
    return jax.tree.unflatten(treedef, [jnp.asarray(d[f"l{i}"]) for i in range(len(leaves))])


def cached_json(workdir: str, name: str, fn):
    """fn() once: its JSON-able result is stored under workdir/stages/name.json and read back on a rerun."""
    path = os.path.join(workdir, "stages", f"{name}.json")
    if os.path.exists(path):
        return read_json(path)
    out = fn()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json_atomic(path, out)
    return out


def cached_eval(workdir: str, name: str, fn, *args, **kwargs) -> dict:
    """fn(*args, **kwargs)'s per-problem arrays (JSON), computed once per workdir (a rerun reads them back)."""
    return cached_json(workdir, name, lambda: _jsonable_eval(fn(*args, **kwargs)))


def _jsonable_eval(res: dict) -> dict:
    out = {}
    for k, v in res.items():
        if k in ("questions", "sols", "tokens"):
            continue
        out[k] = np.asarray(v).tolist()
    return out


def _examples(problems, res, n: int) -> list:
    """A few decoded problems: text, sub-questions, sub-solutions, answer."""
    ex = []
    for i in range(min(n, len(problems))):
        p = problems[i]
        ex.append({"problem": " ".join(p.text), "gold": p.answer, "n_steps": p.n_steps,
                   "subquestions": [" ".join(q) for q in res["questions"][i]],
                   "subsolutions": [" ".join(s) for s in res["sols"][i]], "correct": bool(res["correct"][i])})
    return ex


# ---------------------------------------------------------------------------------------- stages after SFT

@dataclasses.dataclass
class _Run:
    """What every stage reads: the config, the workdir, the model configs, the splits, the SFT pools and batch plans,
    and (once trained) the SFT parameters with seeds on the leading axis."""
    config: object
    workdir: str
    mc: transformer.TransformerConfig
    vc: transformer.TransformerConfig
    splits: dict
    pools: dict
    batch: dict
    sft: object = None


def _setup(config, workdir: str) -> _Run:
    splits = build_splits(config)
    pools = build_pools(config, splits["train"])
    batch = {task: length_plan(pools[task], rows, config.train.length_buckets) for task, rows in
             (("cot", config.train.batch_cot), ("qd", config.train.batch_qd), ("qa", config.train.batch_qa))}
    return _Run(config, workdir, model_config(config), verifier_config(config), splits, pools, batch)


def _train_main_sft(R: _Run) -> None:
    R.sft = train_sft(R.config, R.workdir, R.pools, R.mc, name="sft", batch=R.batch, steps=R.config.train.steps,
                      n_seeds=R.config.num_seeds)


def _seed_params(tree, seed: int):
    return jax.tree.map(lambda x: x[seed], tree)


def _distill(R: _Run) -> tuple:
    """Distilling-LM: a QD model and a QA model with half the layers each, seeds a vmap axis (trained once)."""
    config = R.config
    dmc = model_config(config, n_layers=max(config.model.n_layers // 2, 1))
    dqd = train_sft(config, R.workdir, {"qd": R.pools["qd"]}, dmc, name="distill_qd", batch={"qd": R.batch["qd"]},
                    steps=config.distill.steps, n_seeds=config.num_seeds, seed_offset=100)
    dqa = train_sft(config, R.workdir, {"qa": R.pools["qa"]}, dmc, name="distill_qa", batch={"qa": R.batch["qa"]},
                    steps=config.distill.steps, n_seeds=config.num_seeds, seed_offset=200)
    return dmc, dqd, dqa


def _distill_eval(R: _Run, distill: tuple, seed: int, ev: dict) -> None:
    dmc, dqd, dqa = distill
    ev["distill/test"] = cached_eval(R.workdir, f"eval_distill_test_s{seed}", evaluate_decomp,
                                     _seed_params(dqa, seed), dmc, R.splits["test"], config=R.config,
                                     eps=R.config.eps_star, cgd=True, qd_params=_seed_params(dqd, seed), qd_mc=dmc)


def _sft_evals(R: _Run, seed: int, ev: dict) -> None:
    params = _seed_params(R.sft, seed)
    for split in ("test", "ood"):
        ev[f"sft_cot/{split}"] = cached_eval(R.workdir, f"eval_sft_cot_{split}_s{seed}", evaluate_cot, params, R.mc,
                                             R.splits[split], config=R.config)
        ev[f"sft_decomp/{split}"] = cached_eval(R.workdir, f"eval_sft_decomp_{split}_s{seed}", evaluate_decomp,
                                                params, R.mc, R.splits[split], config=R.config,
                                                eps=R.config.eps_star, cgd=True)


def _uses_learned_verifier(method: str) -> bool:
    return METHOD_SPEC.get(method, ("",))[0] == "learned"


def _needs_learned_verifier(config) -> bool:
    return any(_uses_learned_verifier(m) for m in config.ei.methods)


def _verifier(R: _Run, seed: int, ev: dict, *, wait: bool = False):
    """The learned step verifier of `seed`, from the SFT model's own samples on training problems (automatic
    labels); trained once per workdir. `wait`: another worker process trains it; poll for its files."""
    config, workdir, vc = R.config, R.workdir, R.vc
    vkey = jax.random.fold_in(stats.seed_keys(config.seed, 1, start=seed)[0], 500)
    like = transformer.init_params(vc, vkey)
    info = os.path.join(workdir, "stages", f"verifier_s{seed}.json")
    while wait and not os.path.exists(info):  # written after the parameters
        time.sleep(1.0)
    vparams = load_tree(workdir, f"verifier_s{seed}", like) if os.path.exists(info) else None
    if vparams is None:
        tv = time.time()
        params = _seed_params(R.sft, seed)
        vprobs = R.splits["train"][-config.verifier.n_problems:]
        qs = decompose(params, R.mc, vprobs, config.eps_star, config=config)
        out = solve_chains(params, R.mc, vprobs, qs, config=config, cgd=True, k=config.verifier.k,
                           temperature=config.ei.temperature, key=vkey, collect=True)
        seqs = [verifier_inputs(vprobs[i], qs[i], sols, t, c, cgd=True) for i, t, sols, c, _ in out["samples"]]
        labels = np.array([o for *_, o in out["samples"]])
        # CGD and no-CGD layouts both: the verifier must score both variants' steps
        seqs += [verifier_inputs(vprobs[i], qs[i], sols, t, c, cgd=False) for i, t, sols, c, _ in out["samples"]]
        labels = np.concatenate([labels, labels])
        perm = np.random.default_rng([config.seed, seed, 5]).permutation(len(seqs))
        n_hold = max(len(seqs) // 10, 1)
        hold, fit = perm[:n_hold], perm[n_hold:]
        L = stats.round_up(max(len(s) for s in seqs), config.eval.prompt_bucket)
        vparams = train_verifier(vc, {"ids": ad.pad([seqs[i] for i in fit], L), "labels": labels[fit]},
                                 config=config, key=vkey)
        held = score_learned(vparams, vc, [seqs[i] for i in hold], batch_rows=config.eval.batch_rows,
                             bucket=config.eval.prompt_bucket)
        save_tree(workdir, f"verifier_s{seed}", vparams)
        write_json_atomic(info, {
            "auroc": ei_lib.auroc(held, labels[hold]), "n_examples": len(seqs), "pos_frac": float(labels.mean()),
            "seconds": time.time() - tv, "heldout_acc": float(((held >= 0.5) == labels[hold]).mean())})
    ev["verifier"] = read_json(info)
    return vparams


def _method_stage(R: _Run, seed: int, method: str, vparams, ev: dict, histories: dict, extras: dict) -> None:
    """One EI method of one seed: its rounds (cached: best params and history), its evaluations, and for AutoPRM
    the ε sweep, the reranked search and (seed 0) the decoded examples."""
    config, workdir, mc, splits = R.config, R.workdir, R.mc, R.splits
    params = _seed_params(R.sft, seed)
    name = f"ei_{method}_s{seed}"
    best = load_tree(workdir, name, params)
    hist_path = os.path.join(workdir, "stages", f"{name}.json")
    if best is None or not os.path.exists(hist_path):
        te = time.time()
        best, hist = run_ei(params, mc, splits, R.pools, config=config, method=method, seed=seed, vparams=vparams,
                            vc=R.vc)
        save_tree(workdir, name, best)
        write_json_atomic(hist_path, {"history": hist, "seconds": time.time() - te})
    histories.setdefault(method, {})[seed] = read_json(hist_path)["history"]
    cgd = METHOD_SPEC.get(method, (None, True))[1]
    for split in ("test", "ood") if not method.startswith("hack") else ("test",):
        if method in COT_METHODS:
            ev[f"{method}/{split}"] = cached_eval(workdir, f"eval_{method}_{split}_s{seed}", evaluate_cot, best, mc,
                                                  splits[split], config=config)
        else:
            ev[f"{method}/{split}"] = cached_eval(workdir, f"eval_{method}_{split}_s{seed}", evaluate_decomp, best,
                                                  mc, splits[split], config=config, eps=config.eps_star, cgd=cgd)
    if method != "autoprm":
        return
    for eps in config.eval.eps_sweep:
        if abs(eps - config.eps_star) < 1e-9:  # the same evaluation as autoprm/test
            ev[f"eps{eps:.1f}/test"] = ev["autoprm/test"]
            continue
        ev[f"eps{eps:.1f}/test"] = cached_eval(workdir, f"eval_eps{eps:.1f}_s{seed}", evaluate_decomp, best, mc,
                                               splits["test"], config=config, eps=eps, cgd=True)
    if config.eval.n_rerank:
        reward_for = functools.partial(make_reward, "learned", cgd=True, vparams=vparams, vc=R.vc,
                                       batch_rows=config.eval.batch_rows, bucket=config.eval.prompt_bucket)
        beams = "" if config.eval.rerank_beams == 1 else f"_b{config.eval.rerank_beams}"
        ev["rerank/test"] = cached_eval(workdir, f"eval_rerank{beams}_s{seed}", evaluate_rerank, best, mc,
                                        splits["test"][:config.eval.n_rerank], config=config,
                                        key=jax.random.key(seed), reward_fn_for=reward_for)
    if seed == 0 and config.eval.n_examples:
        probs = splits["test"][:config.eval.n_examples]
        extras["examples"] = cached_json(workdir, "examples", lambda: _examples(
            probs, evaluate_decomp(best, mc, probs, config=config, eps=config.eps_star, cgd=True), len(probs)))


# ------------------------------------------------------------------------------------------ worker processes

def work_units(config) -> list[str]:
    """The stages after SFT as units for `config.workers` processes, in the order they are claimed: Distilling-LM
    and the learned verifiers first (EI methods wait for their seed's verifier), then each seed's EI methods (the
    decomposed ones, the slowest, first), then the SFT evaluations."""
    seeds = range(config.num_seeds)
    units = ["distill"] if config.distill.steps else []
    if _needs_learned_verifier(config):
        units += [f"verifier_s{s}" for s in seeds]
    order = sorted(config.ei.methods, key=lambda m: m in COT_METHODS)  # stable: decomposed methods first
    for s in seeds:
        units += [f"ei_{m}_s{s}" for m in order]
    return units + [f"sft_s{s}" for s in seeds]


def _claim(workdir: str, unit: str) -> bool:
    """True for exactly one of the processes that ask (an exclusive create under workdir/stages/claims)."""
    try:
        os.close(os.open(os.path.join(workdir, "stages", "claims", unit), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def run_unit(R: _Run, unit: str) -> None:
    """One unit of `work_units`, computed (or read) into the workdir's stage cache."""
    kind, _, rest = unit.partition("_")
    scratch: dict = {}
    if kind == "distill":
        distill = _distill(R)
        for seed in range(R.config.num_seeds):
            _distill_eval(R, distill, seed, scratch)
    elif kind == "verifier":
        _verifier(R, int(rest[1:]), scratch)
    elif kind == "sft":
        _sft_evals(R, int(rest[1:]), scratch)
    else:  # ei_<method>_s<seed>
        method, seed = rest.rsplit("_s", 1)
        seed = int(seed)
        vparams = None
        if _uses_learned_verifier(method):
            vparams = _verifier(R, seed, scratch, wait=True)
        _method_stage(R, seed, method, vparams, scratch, {}, {"examples": []})


def worker_main(config, workdir: str, index: int, parent: int) -> None:
    """A worker process: claims units in `work_units` order until none is left, or its parent is gone (killed)."""
    runtime.use_compilation_cache(os.path.join(workdir, "xla_cache"))  # shared with the other workers
    R = _setup(config, workdir)
    _train_main_sft(R)  # already trained by the parent: restored from its checkpoint
    for unit in work_units(config):
        if os.getppid() != parent:
            return
        if _claim(workdir, unit):
            t = time.time()
            run_unit(R, unit)
            open(os.path.join(workdir, "stages", "claims", unit + ".done"), "w").close()  # for the parent's bar
            print(f"autoprm worker {index}: {unit} {time.time() - t:.0f} s", flush=True)


def run_workers(config, workdir: str) -> None:
    """The stages after SFT in `config.workers` spawned processes, each single-threaded (XLA, OpenMP) unless
    XLA_FLAGS is set; they share the workdir's stage cache, so the caller then reads every result from it. A failed
    worker stops the others; rerunning the command resumes from the cached stages."""
    claims = os.path.join(workdir, "stages", "claims")
    shutil.rmtree(claims, ignore_errors=True)  # a killed run's claims: their stages are not cached, redo them
    os.makedirs(claims)
    saved = {k: os.environ.get(k) for k in ("XLA_FLAGS", "OMP_NUM_THREADS", "REPROJAX_PROGRESS")}
    os.environ.setdefault("XLA_FLAGS", runtime.SINGLE_THREAD_XLA_FLAGS)
    os.environ.update(OMP_NUM_THREADS="1", REPROJAX_PROGRESS="0")  # inherited at spawn
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(config, workdir, i, os.getpid()), name=f"autoprm-worker-{i}")
             for i in range(config.workers)]
    try:
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        with progress(len(work_units(config)), desc="autoprm stages after SFT", unit="stage") as bar:
            while True:
                running = any(p.is_alive() for p in procs)  # read before the exit codes: none is missed
                failed = [p for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"autoprm: worker process {failed[0].name} exited with code "
                                       f"{failed[0].exitcode}; rerun the same command to resume from the cached stages")
                bar.update(sum(f.endswith(".done") for f in os.listdir(claims)) - bar.n)
                if not running:
                    break
                time.sleep(1.0)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    shutil.rmtree(claims, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- main

def train_and_evaluate(config, workdir: str) -> dict:
    validate(config)
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    if config.workers > 1:  # the workers compile many of the same programs: each loads what another compiled
        runtime.use_compilation_cache(os.path.join(workdir, "xla_cache"))
    R = _setup(config, workdir)
    mc, vc = R.mc, R.vc
    _train_main_sft(R)
    timings = {"sft_seconds": time.time() - t0}
    if config.workers > 1:
        t = time.time()
        run_workers(config, workdir)
        timings["workers_seconds"] = time.time() - t
    one = jax.tree.map(lambda x: x[0], R.sft)
    evals: dict = {}
    histories: dict = {}
    extras: dict = {"examples": []}

    distill = None
    if config.distill.steps:
        t = time.time()
        distill = _distill(R)
        timings["distill_seconds"] = time.time() - t

    for seed in range(config.num_seeds):
        t_seed = time.time()
        ev = evals.setdefault(seed, {})
        _sft_evals(R, seed, ev)
        if distill is not None:
            _distill_eval(R, distill, seed, ev)
        vparams = _verifier(R, seed, ev) if _needs_learned_verifier(config) else None
        for method in config.ei.methods:
            _method_stage(R, seed, method, vparams, ev, histories, extras)
        timings[f"seed{seed}_seconds"] = time.time() - t_seed
    if config.eval.n_examples and not extras["examples"]:  # no AutoPRM run: SFT-Decomp's, seed 0
        probs = R.splits["test"][:config.eval.n_examples]
        params = _seed_params(R.sft, 0)
        extras["examples"] = cached_json(workdir, "examples_sft", lambda: _examples(
            probs, evaluate_decomp(params, mc, probs, config=config, eps=config.eps_star, cgd=True), len(probs)))

    metrics, claims = claims_lib.compute(config, evals, histories)
    metrics.update({f"time/{k}": v for k, v in timings.items()})
    metrics.update({"time/total_seconds": time.time() - t0, "n_params": transformer.count_params(one),
                    "n_params_verifier": transformer.count_params(transformer.init_params(vc, jax.random.key(0))),
                    "sft_train_tokens": int(config.train.steps * sum(  # padded tokens a step, by the plans
                        rows * length for plan in R.batch.values() for _, _, length, rows in plan))})
    from projects.autoprm import plots  # matplotlib only when a run reaches its plots
    plot_files = plots.make_all(workdir, evals, histories, config)
    write_json_atomic(os.path.join(workdir, "examples.json"), extras["examples"])
    return outputs.write_results(workdir, project="autoprm", preset=config.preset,
                                 seeds=list(range(config.num_seeds)), metrics=metrics, claims=claims,
                                 plots=plot_files)
