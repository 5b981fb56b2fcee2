"""ltb_icl training: LSA and LTB trained by Adam on fresh prompts, seeds × ‖β*‖ × model as vmap axes.

Importable pieces: `validate`, `create_train_state`, `train_step`, `evaluate`, `train_and_evaluate`.
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
from lib import icl, parallel, stats
from lib.checkpoint import Checkpointer
from lib.metrics import MetricWriter, check_finite, progress
from projects.ltb_icl import claims as claims_lib
from projects.ltb_icl import plots, theory

MODELS = ("lsa", "ltb")  # axis 2 of every run grid; LSA = LTB with its MLP output masked to zero


def validate(config) -> None:
    """Checks every field this project reads; raises ConfigError naming field, value, accepted."""
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    validation.require_int(config, "num_seeds", min_value=1)
    n_dev = validation.require_int(config, "num_devices", min_value=0)
    validation.require(n_dev <= len(jax.local_devices()), "num_devices", n_dev,
                   f"0 (all) or at most the {len(jax.local_devices())} local devices")
    d = validation.require_int(config, "data.d", min_value=1)
    validation.require_sequence(config, "data.context_lengths", item_desc="integers >= 1",
                            item_ok=lambda v: isinstance(v, int) and v >= 1)
    validation.require_sequence(config, "data.beta_star_norms", item_desc="numbers >= 0",
                            item_ok=lambda v: isinstance(v, (int, float)) and v >= 0)
    validation.require_float(config, "data.sigma2", min_value=0.0, strict=True)
    validation.require_float(config, "data.psi", min_value=0.0, strict=True)
    d_ff = validation.require_int(config, "model.d_ff", min_value=0)
    validation.require(d_ff == 0 or d_ff >= d + 1, "model.d_ff", d_ff, f"0 (= d+1) or >= d+1 = {d + 1}")
    validation.require_float(config, "model.init_scale", min_value=0.0, strict=True)
    steps = validation.require_int(config, "train.steps", min_value=1)
    batch = validation.require_int(config, "train.batch_size", min_value=1)
    devices = n_dev or len(jax.local_devices())
    validation.require(batch % devices == 0, "train.batch_size", batch,
                   f"a multiple of the number of devices used ({devices})")
    validation.require_float(config, "train.learning_rate", min_value=0.0, strict=True)
    log_every = validation.require_int(config, "train.log_every", min_value=1)
    validation.require(steps % log_every == 0, "train.log_every", log_every, f"a divisor of train.steps={steps}")
    ckpt = validation.require_int(config, "train.checkpoint_every", min_value=1)
    validation.require(ckpt % log_every == 0, "train.checkpoint_every", ckpt,
                   f"a multiple of train.log_every={log_every}")
    validation.require_int(config, "train.keep_checkpoints", min_value=1)
    validation.require_int(config, "eval.num_prompts", min_value=1)
    validation.require_int(config, "eval.curve_prompts", min_value=1)
    validation.require_int(config, "eval.chunk", min_value=1)
    validation.require_int(config, "eval.bayes_draws", min_value=2)
    validation.require_int(config, "eval.gd_steps", min_value=1)
    validation.require_float(config, "eval.gd_lr", min_value=0.0, strict=True)


def beta_stars(norms, d: int) -> jnp.ndarray:
    """β* = (‖β*‖/√d)·1 for each norm: `[K, d]`."""
    return jnp.asarray(norms, jnp.float32)[:, None] * jnp.ones((1, d)) / np.sqrt(d)


def _mask_mlp(params: dict, flag) -> dict:
    return dict(params, w2=params["w2"] * flag)


def run_losses(params, draws, *, betas, sigma: float):
    """Per-run squared error: params leaves `[S, K, 2, ...]`, draws leaves `[S, B, ...]` → `[S, K, 2]`.

    The draws of one seed are shared by every ‖β*‖ and both models (common random numbers)."""
    flags = jnp.array([0.0, 1.0])

    def per_seed(p_s, dr):
        def per_norm(p_k, bs):
            pr = icl.make_prompts(dr, beta_star=bs, sigma=sigma)

            def per_model(p, flag):
                pred = icl.predict(_mask_mlp(p, flag), pr["X"], pr["y"], pr["x"])
                return jnp.mean((pred - pr["y_q"]) ** 2)

            return jax.vmap(per_model)(p_k, flags)

        return jax.vmap(per_norm)(p_s, betas)

    return jax.vmap(per_seed)(params, draws)


def create_train_state(config, key: jax.Array) -> dict:
    """{"step": int32, "runs": {"M<M>": {"params", "opt"}}}; params leaves `[S, K, 2, ...]`."""
    d, S, K = config.data.d, config.num_seeds, len(config.data.beta_star_norms)
    d_ff = config.model.d_ff or d + 1
    tx = optax.adam(config.train.learning_rate)
    runs = {}
    for M in config.data.context_lengths:
        keys = jax.random.split(jax.random.fold_in(key, M), S * K * 2)
        params = jax.vmap(lambda k: icl.init_ltb(k, d=d, d_ff=d_ff, scale=config.model.init_scale))(keys)
        params = jax.tree.map(lambda x: x.reshape((S, K, 2) + x.shape[1:]), params)
        runs[f"M{M}"] = {"params": params, "opt": tx.init(params)}
    return {"step": jnp.zeros((), jnp.int32), "runs": runs}


def seed_keys(config) -> jax.Array:
    return stats.seed_keys(config.seed, config.num_seeds)


def _shared_draws(keys, *, batch: int, d: int, context_lengths) -> dict:
    """Draws for the largest M; a smaller M uses the first M context points and the same query.

    Sampling dominates the cost of a step on CPU, so every M, ‖β*‖ and model of a seed shares one
    batch of standard draws (common random numbers); seeds differ. Returns {M: draws [S, B, ...]}."""
    m_max = max(context_lengths)
    full = jax.vmap(lambda k: icl.sample_standard(k, batch=batch, n_context=m_max, d=d))(keys)

    def prefix(M):
        x = jnp.concatenate([full["x"][:, :, :M], full["x"][:, :, -1:]], axis=2)
        noise = jnp.concatenate([full["noise"][:, :, :M], full["noise"][:, :, -1:]], axis=2)
        return {"x": x, "noise": noise, "beta": full["beta"]}

    return {M: prefix(M) for M in context_lengths}


def train_step(state: dict, keys: jax.Array, *, config, mesh=None) -> tuple[dict, dict]:
    """One Adam step of every run on fresh prompts; `keys` `[S]` are the seeds' data keys for this step."""
    tx = optax.adam(config.train.learning_rate)
    betas = beta_stars(config.data.beta_star_norms, config.data.d)
    sigma = float(np.sqrt(config.data.sigma2))
    new_runs, metrics = {}, {}
    all_draws = _shared_draws(keys, batch=config.train.batch_size, d=config.data.d,
                              context_lengths=config.data.context_lengths)
    for name, run in state["runs"].items():
        M = int(name[1:])
        draws = parallel.constrain_batch(all_draws[M], mesh, axis=1)  # split prompts over the "data" mesh

        def total_loss(p, draws=draws):
            losses = run_losses(p, draws, betas=betas, sigma=sigma)
            return losses.sum(), losses  # runs are independent: d(sum)/dθ_run = d(loss_run)/dθ_run

        (_, losses), grads = jax.value_and_grad(total_loss, has_aux=True)(run["params"])
        updates, opt = tx.update(grads, run["opt"], run["params"])  # Adam is elementwise: per-run Adam
        new_runs[name] = {"params": optax.apply_updates(run["params"], updates), "opt": opt}
        gnorm = jnp.sqrt(sum(jnp.sum(g ** 2, axis=tuple(range(3, g.ndim))) for g in jax.tree.leaves(grads)))
        metrics[f"{name}/train_loss"] = losses
        metrics[f"{name}/grad_norm"] = gnorm
    return {"step": state["step"] + 1, "runs": new_runs}, metrics


def make_train_chunk(config, mesh=None):
    """A jitted `lax.scan` of `train.log_every` steps; data keys are fold_in(seed key, step)."""
    skeys = seed_keys(config)

    @functools.partial(jax.jit, donate_argnums=0)
    def chunk(state):
        def body(st, _):
            keys = jax.vmap(lambda k: jax.random.fold_in(k, st["step"]))(skeys)
            return train_step(st, keys, config=config, mesh=mesh)

        state, metrics = jax.lax.scan(body, state, None, length=config.train.log_every)
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return chunk


def make_evaluate(config, *, num_prompts: int, salt: int):
    """A jitted `evaluate(state) -> {"M<M>": risks [S, K, 2]}` on `num_prompts` fresh prompts per
    seed (chunked with `lax.map`); the prompts are the same at every call."""
    betas = beta_stars(config.data.beta_star_norms, config.data.d)
    sigma = float(np.sqrt(config.data.sigma2))
    chunk = min(config.eval.chunk, num_prompts)
    n_chunks = -(-num_prompts // chunk)
    skeys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, salt), 10**6))(seed_keys(config))

    @jax.jit
    def evaluate(state):
        def one(i):
            keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(skeys)
            draws = _shared_draws(keys, batch=chunk, d=config.data.d, context_lengths=config.data.context_lengths)
            return {name: run_losses(run["params"], draws[int(name[1:])], betas=betas, sigma=sigma)
                    for name, run in state["runs"].items()}

        return jax.tree.map(lambda r: r.mean(0), jax.lax.map(one, jnp.arange(n_chunks)))

    return evaluate


def _curve_scalars(risks: dict, config) -> dict[str, float]:
    row = {}
    for name, r in risks.items():
        r = np.asarray(r)
        for k, nrm in enumerate(config.data.beta_star_norms):
            for m, model in enumerate(MODELS):
                row[f"{name}/{model}/norm{nrm:g}/test_risk"] = float(r[:, k, m].mean())
    return row


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains (resuming from the latest checkpoint in `workdir`), evaluates, writes results and plots."""
    validate(config)
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    n_dev = config.num_devices or len(jax.local_devices())
    mesh = parallel.make_mesh(n_dev) if n_dev > 1 else None
    state = create_train_state(config, jax.random.fold_in(jax.random.key(config.seed), 7))
    if mesh is not None:
        state = parallel.replicate(state, mesh)

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), save_every=config.train.checkpoint_every,
                        keep=config.train.keep_checkpoints)
    restored = ckpt.restore_latest(state)
    start = 0
    if restored is not None:
        start, state = restored
        print(f"ltb_icl: resuming from step {start} in {workdir}")
    writer = MetricWriter(workdir, tensorboard=config.tensorboard,
                          resume_step=start if restored is not None else None)
    chunk = make_train_chunk(config, mesh)
    curve_eval = make_evaluate(config, num_prompts=config.eval.curve_prompts, salt=1)
    log_every = config.train.log_every
    with progress(config.train.steps, desc="ltb_icl train", initial=start) as bar:
        for step in range(start + log_every, config.train.steps + 1, log_every):
            state, metrics = chunk(state)
            check_finite(step, metrics)
            curve = _curve_scalars(curve_eval(state), config)
            writer.write_scalars(step, {**{k: np.mean(v) for k, v in metrics.items()}, **curve})
            ckpt.maybe_save(step, state)
            bar.set_postfix({k.replace("/test_risk", ""): f"{v:.3f}" for k, v in curve.items()
                             if k.startswith(f"M{config.data.context_lengths[0]}/") and "norm0/" not in k},
                            refresh=False)
            bar.update(log_every)
    ckpt.close()
    writer.close()
    train_seconds = time.time() - t0

    risks = {k: np.asarray(v) for k, v in
             make_evaluate(config, num_prompts=config.eval.num_prompts, salt=2)(state).items()}
    ref = theory.reference_risks(config)
    read = {name: jax.tree.map(np.asarray, jax.vmap(jax.vmap(jax.vmap(icl.ltb_as_gd_beta)))(run["params"]))
            for name, run in state["runs"].items()}
    metrics, claims = claims_lib.compute(config, risks, ref, read)
    metrics["train_seconds"] = train_seconds
    metrics["total_seconds"] = time.time() - t0
    plot_files = plots.make_all(config, workdir, risks, ref)
    return outputs.write_results(workdir, project="ltb_icl", preset=config.preset,
                                seeds=list(range(config.num_seeds)),  # fold_in(key(config.seed), s)
                                metrics=metrics, claims=claims, plots=plot_files)
