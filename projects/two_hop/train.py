"""two_hop training: the 3-layer transformer on the two-hop task, seeds as a vmap axis, mechanism probes.

Importable pieces: `validate`, `create_train_state`, `train_step`, `probe`, `make_probe`, `train_and_evaluate`;
the model config is `model.model_config(config)`, built once per run and passed to the functions that need it.
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
from lib import stats, transformer
from lib.checkpoint import Checkpointer
from lib.metrics import MetricWriter, check_finite, progress, read_npz, write_npz_atomic
from projects.two_hop import claims as claims_lib
from projects.two_hop import data, llm, model, plots


def validate(config) -> None:
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    validation.require_int(config, "num_seeds", min_value=1)
    max_chains = (model.MAX_LEN - 2) // 4  # a sequence (2 + 4·n_chains tokens) fits the position table
    k = validation.require_int(config, "data.n_chains", min_value=1, max_value=max_chains)
    n = validation.require_int(config, "data.n_nodes", min_value=1)
    validation.require(3 * k <= n, "data.n_nodes", n, f">= 3·n_chains = {3 * k} (all nodes of a sequence are distinct)")
    d = validation.require_int(config, "model.d_model", min_value=1)
    validation.require_int(config, "model.n_layers", min_value=3)
    h = validation.require_int(config, "model.n_heads", min_value=1)
    validation.require(d % h == 0, "model.n_heads", h, f"a divisor of model.d_model={d}")
    validation.require_choice(config, "model.mlp", list(transformer.MLPS))
    validation.require_choice(config, "model.init", list(transformer.INITS))
    steps = validation.require_int(config, "train.steps", min_value=1)
    validation.require_int(config, "train.batch_size", min_value=1)
    validation.require_float(config, "train.learning_rate", min_value=0.0, strict=True)
    validation.require_float(config, "train.b2", min_value=0.0, max_value=1.0, strict=True, max_strict=True)
    cd = validation.require_int(config, "train.cooldown_steps", min_value=0)
    validation.require(cd <= steps, "train.cooldown_steps", cd, f"at most train.steps={steps}")
    validation.require_float(config, "train.weight_decay", min_value=0.0)
    log_every = validation.require_int(config, "train.log_every", min_value=1)
    validation.require(steps % log_every == 0, "train.log_every", log_every, f"a divisor of train.steps={steps}")
    ck = validation.require_int(config, "train.checkpoint_every", min_value=1)
    validation.require(ck % log_every == 0, "train.checkpoint_every", ck, f"a multiple of train.log_every={log_every}")
    validation.require_int(config, "eval.batch_size", min_value=1)
    validation.require_int(config, "eval.seed", min_value=0)
    validation.require_int(config, "eval.final_batch_size", min_value=1)
    validation.require_int(config, "eval.jump_window", min_value=1)
    validation.require_int(config, "eval.three_param_steps", min_value=1)
    validation.require_pretrained(config, "llm.checkpoint", optional=True)  # "": skip the LLM side
    validation.require_int(config, "llm.max_k", min_value=2)
    validation.require_int(config, "llm.prompts_per_k", min_value=2)
    validation.require_int(config, "llm.finetune_steps", min_value=0)
    validation.require_float(config, "llm.finetune_lr", min_value=0.0, strict=True)
    validation.require_int(config, "llm.batch_size", min_value=1)
    validation.require_int(config, "llm.lora_rank", min_value=0)
    validation.require_float(config, "llm.lora_alpha", min_value=0.0, strict=True)


def optimizer(config):
    """AdamW at a constant learning rate, decayed linearly towards 0 over the last `train.cooldown_steps` steps."""
    lr, steps, cd = config.train.learning_rate, config.train.steps, config.train.cooldown_steps
    if cd:
        lr = optax.join_schedules([optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, cd)], [steps - cd])
    return optax.adamw(lr, b1=0.9, b2=config.train.b2, eps=1e-8, weight_decay=config.train.weight_decay)


def seed_keys(config) -> jax.Array:
    return stats.seed_keys(config.seed, config.num_seeds)


def create_train_state(config, mc: transformer.TransformerConfig) -> dict:
    """{"step", "params" [S, ...], "opt" [S, ...]}: one initialisation per seed of the model `mc`."""
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(seed_keys(config))
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": jax.vmap(optimizer(config).init)(params)}


def query_loss(params, batch, *, mc, n_chains: int):
    """Cross-entropy at the query position only (spec pitfall 1); the head runs only there."""
    b = batch["tokens"].shape[0]
    logits = transformer.forward(params, batch["tokens"], config=mc,
                                 select=jnp.full((b,), data.query_position(n_chains)))["logits"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, batch["target"][:, None], axis=1).mean()


def train_step(state: dict, keys: jax.Array, *, config, mc: transformer.TransformerConfig) -> tuple[dict, dict]:
    """One AdamW step for every seed on fresh sequences (`keys` `[S]`, this step's data keys)."""
    tx = optimizer(config)

    def one(params, opt, key):
        batch = data.sample(key, batch=config.train.batch_size, n_chains=config.data.n_chains,
                            n_nodes=config.data.n_nodes)
        loss, grads = jax.value_and_grad(query_loss)(params, batch, mc=mc, n_chains=config.data.n_chains)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss, optax.global_norm(grads)

    params, opt, loss, gnorm = jax.vmap(one)(state["params"], state["opt"], keys)
    return {"step": state["step"] + 1, "params": params, "opt": opt}, {"train_loss": loss, "grad_norm": gnorm}


def make_train_chunk(config, mc: transformer.TransformerConfig):
    """`chunk(state) -> (state, last metrics)`: `train.log_every` steps in one jitted `lax.scan`."""
    skeys = seed_keys(config)

    @functools.partial(jax.jit, donate_argnums=0)
    def chunk(state):
        def body(st, _):
            keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), st["step"]))(skeys)
            return train_step(st, keys, config=config, mc=mc)

        state, metrics = jax.lax.scan(body, state, None, length=config.train.log_every)
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return chunk


def probe(params, batch, *, mc, n_chains: int) -> dict[str, jnp.ndarray]:
    """Prediction probabilities and the three attention scores of one model on a batch.

    p_target, p_distractor (mean over the K−1 other ends), p_ends (all K ends), p_context_other (sources and
    bridges in the context), p_outside (tokens not in the context), accuracy, loss; attention: layer-1
    child→parent (mean over premises), layer-2 query→first bridge occurrence, layer-3 query→end."""
    b = batch["tokens"].shape[0]
    qpos = data.query_position(n_chains)
    out = transformer.forward(params, batch["tokens"], config=mc, return_attn=True)
    probs = jax.nn.softmax(out["logits"][:, qpos], axis=-1)  # [b, V]
    ends = batch["nodes"][:, :, 2]
    p_ends_each = jnp.take_along_axis(probs, ends, axis=1)  # [b, K]
    is_q = jnp.arange(n_chains)[None, :] == batch["query_chain"][:, None]
    p_target = (p_ends_each * is_q).sum(1)
    p_ends = p_ends_each.sum(1)
    ctx = batch["nodes"][:, :, :2].reshape(b, -1)
    p_ctx_other = jnp.take_along_axis(probs, ctx, axis=1).sum(1)
    pos = data.positions(batch)
    rows = jnp.arange(b)
    a1 = out["attn"][0][:, 0]  # [b, t, t], head 0
    a2, a3 = out["attn"][1][:, 0], out["attn"][2][:, 0]
    return {
        "p_target": p_target.mean(), "p_distractor": ((p_ends - p_target) / max(n_chains - 1, 1)).mean(),
        "p_ends": p_ends.mean(), "p_context_other": p_ctx_other.mean(),
        "p_outside": (1 - p_ends - p_ctx_other).mean(),
        "accuracy": (jnp.argmax(probs, -1) == batch["target"]).mean(),
        "loss": -jnp.log(jnp.maximum(p_target, 1e-30)).mean(),
        "attn_l1_child_parent": a1[:, pos["children"], pos["parents"]].mean(),
        "attn_l2_query_bridge": a2[rows, pos["query"], pos["bridge_first"]].mean(),
        "attn_l3_query_end": a3[rows, pos["query"], pos["end"]].mean(),
    }


def make_probe(config, mc: transformer.TransformerConfig, *, batch_size: int, seed: int):
    """(jitted probe of every seed's params on one fixed batch drawn with `seed`, that batch)."""
    K = config.data.n_chains
    batch = data.sample(jax.random.key(seed), batch=batch_size, n_chains=K, n_nodes=config.data.n_nodes)
    fn = jax.jit(jax.vmap(lambda p: probe(p, batch, mc=mc, n_chains=K)))
    return fn, batch


def train_and_evaluate(config, workdir: str) -> dict:
    validate(config)
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    mc = model.model_config(config)
    state = create_train_state(config, mc)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=config.train.checkpoint_every, keep=2)
    restored = ckpt.restore_latest(state)
    start = 0
    if restored is not None:
        start, state = restored
        print(f"two_hop: resuming from step {start} in {workdir}")
    writer = MetricWriter(workdir, resume_step=start if restored is not None else None)
    chunk = make_train_chunk(config, mc)
    probe_fn, _ = make_probe(config, mc, batch_size=config.eval.batch_size, seed=config.eval.seed)
    if start == 0:
        writer.write_scalars(0, probe_fn(state["params"]))
    every = config.train.log_every
    snap_path = os.path.join(workdir, "before_jump.npz")
    snaps = read_npz(snap_path) if os.path.exists(snap_path) else {}
    with progress(config.train.steps, desc="two_hop train", initial=start) as bar:
        for step in range(start + every, config.train.steps + 1, every):
            prev = jax.device_get(state["params"])  # kept for the "before the jump" attention maps
            state, metrics = chunk(state)
            check_finite(step, metrics)
            p = probe_fn(state["params"])
            for s in np.flatnonzero(np.asarray(p["accuracy"]) > 0.95):
                if f"seed{s}/0" not in snaps:  # first time this seed is solved: keep its previous params
                    snaps.update({f"seed{s}/{i}": x[s] for i, x in enumerate(jax.tree.leaves(prev))})
                    write_npz_atomic(snap_path, snaps)
            writer.write_scalars(step, {**metrics, **p})
            ckpt.maybe_save(step, state)
            bar.set_postfix({"acc": " ".join(f"{a:.2f}" for a in np.asarray(p["accuracy"]))}, refresh=False)
            bar.update(every)
    ckpt.close()
    writer.close()
    train_seconds = time.time() - t0
    final_fn, _ = make_probe(config, mc, batch_size=config.eval.final_batch_size, seed=config.eval.seed + 1)
    final = jax.tree.map(np.asarray, final_fn(state["params"]))
    metrics, claims = claims_lib.compute(config, workdir, final)
    llm_res = llm.run(config.llm, workdir, seed=config.seed) if config.llm.checkpoint else None
    m_llm, c_llm = claims_lib.llm_claims(llm_res)
    metrics.update(m_llm)
    claims += c_llm
    metrics["train_seconds"] = train_seconds
    plot_files = plots.make_all(config, workdir, state, mc)
    metrics["total_seconds"] = time.time() - t0
    return outputs.write_results(workdir, project="two_hop", preset=config.preset,
                                seeds=list(range(config.num_seeds)), metrics=metrics, claims=claims,
                                plots=plot_files)
