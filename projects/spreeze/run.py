"""spreeze's JAX-native experiments (spec §5.5–5.6) on Pendulum-v1, each seed's outcome saved as it finishes.

    B4  time to deterministic return ≥ −200 (compile included, evaluation excluded): the fused system (n_envs
        pendulums, a JAX ring and SAC updates in one compiled segment) against C0, our sequential SAC (one env,
        one env step then one update per jitted call, SB3's defaults); final return over the last evaluations.
    B2  the fused vmap + scan sampler (actor in the loop) against a Python loop of one jitted call per step.
    B3  the learner's update transitions/s by batch size (the standalone microbenchmark, HalfCheetah sizes).

Importable pieces: `validate`, `train_to_threshold`, `learner_rates`, `train_and_evaluate`. Seeds and benchmarks
are written atomically to `workdir/parts/*.json`, so a rerun (e.g. after SIGKILL) redoes only what is missing;
a resumed seed is not re-timed. The comparisons with Stable-Baselines3 and sbx are in `benchmarks/spreeze_*.py`.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from harness import outputs, validation
from lib import stats
from lib.metrics import MetricWriter, check_finite, progress, read_json_or_none, write_json_atomic
from lib.rl import sac
from lib.rl.types import Transition
from projects.spreeze import claims as claims_lib
from projects.spreeze import fused, plots

ENVS = ("Pendulum-v1",)


def validate(config) -> None:
    """Refuses bad values before anything runs (harness.validation: one line naming field, value, accepted)."""
    v = validation
    v.require_int(config, "seed", min_value=0)
    v.require_int(config, "num_seeds", min_value=1, max_value=100)
    v.require_choice(config, "env", ENVS)
    v.require_sequence(config, "sac.hidden", item_ok=lambda h: isinstance(h, int) and h >= 1,
                       item_desc="positive integer widths")
    v.require_probability(config, "sac.gamma", open_high=True)
    v.require_probability(config, "sac.tau", open_low=True)
    v.require_int(config, "eval.episodes", min_value=1, max_value=10_000)
    v.require_float(config, "eval.threshold")
    v.require_int(config, "eval.final_evals", min_value=1, max_value=1000)
    for group in ("fused", "sequential"):
        v.require_int(config, f"{group}.batch_size", min_value=1)
        v.require_float(config, f"{group}.learning_rate", min_value=0.0, max_value=1.0, strict=True)
        v.require_int(config, f"{group}.warmup_steps", min_value=1)
        v.require_int(config, f"{group}.max_env_steps", min_value=1)
    v.require_int(config, "fused.n_envs", min_value=1, max_value=1 << 20)
    v.require_int(config, "fused.updates_per_iter", min_value=1)
    v.require_int(config, "fused.iters_per_segment", min_value=1)
    v.require_int(config, "fused.capacity", min_value=1)
    v.require_choice(config, "fused.stale_updates", (False, True))
    v.require(config.fused.batch_size <= config.fused.warmup_steps, "fused.batch_size", config.fused.batch_size,
              f"an integer <= fused.warmup_steps={config.fused.warmup_steps} (a batch larger than the replay "
              "holds when updates start)")
    v.require(config.fused.warmup_steps <= config.fused.capacity, "fused.warmup_steps", config.fused.warmup_steps,
              f"an integer <= fused.capacity={config.fused.capacity}")
    v.require_int(config, "sequential.eval_every", min_value=1)
    v.require_int(config, "sampler_bench.n_envs", min_value=1, max_value=1 << 20)
    v.require_int(config, "sampler_bench.steps", min_value=1)
    v.require_int(config, "sampler_bench.repeats", min_value=1, max_value=100)
    v.require_sequence(config, "learner_bench.batch_sizes", item_ok=lambda b: isinstance(b, int) and b >= 1,
                       item_desc="positive integer batch sizes")
    v.require_int(config, "learner_bench.updates", min_value=1)
    v.require_int(config, "learner_bench.obs_dim", min_value=1)
    v.require_int(config, "learner_bench.action_dim", min_value=1)
    # the multi-process system's numbers (projects/spreeze/system.py adds the env checks, which need gymnasium)
    s = config.system
    v.require_int(config, "system.n_samplers", min_value=1, max_value=256)
    v.require_int(config, "system.envs_per_sampler", min_value=1, max_value=4096)
    v.require_int(config, "system.replay_capacity", min_value=1)
    v.require_int(config, "system.batch_size", min_value=1)
    v.require(s.batch_size <= s.replay_capacity, "system.batch_size", s.batch_size,
              f"an integer <= system.replay_capacity={s.replay_capacity} (a batch larger than the replay ring)")
    v.require_int(config, "system.warmup_steps", min_value=1)
    v.require(s.warmup_steps <= s.replay_capacity, "system.warmup_steps", s.warmup_steps,
              f"an integer <= system.replay_capacity={s.replay_capacity}")
    v.require_float(config, "system.learning_rate", min_value=0.0, max_value=1.0, strict=True)
    v.require_int(config, "system.publish_every", min_value=1)
    v.require_float(config, "system.duration_s", min_value=0.0, strict=True)
    for f in ("eval_interval_s", "viz_interval_s", "monitor_interval_s", "shutdown_timeout_s"):
        v.require_float(config, f"system.{f}", min_value=0.0, strict=True)
    v.require_int(config, "system.eval_episodes", min_value=1)
    v.require_float(config, "system.threshold", allow_inf=False)
    v.require_choice(config, "system.autotune", (False, True))
    v.require_choice(config, "system.learner", ("fused", "split", "data"))
    v.require_int(config, "system.learner_devices", min_value=1, max_value=256)
    if s.learner == "split":
        v.require(s.learner_devices == 2, "system.learner_devices", s.learner_devices,
                  "2 with system.learner='split' (the critic on one device, the actor on the other)")
    v.require_int(config, "system.num_processes", min_value=1, max_value=4096)
    v.require_int(config, "system.process_id", min_value=0, max_value=s.num_processes - 1)
    if s.num_processes > 1:
        v.require(s.learner == "data", "system.learner", s.learner,
                  f"'data' with system.num_processes={s.num_processes} (only the data-parallel learner spans hosts)")
    v.require(isinstance(s.coordinator, str) and s.coordinator.rpartition(":")[2].isdigit(), "system.coordinator",
              s.coordinator, "'host:port' of process 0")
    if s.learner == "data":
        shards = s.learner_devices * s.num_processes
        v.require(s.batch_size % shards == 0, "system.batch_size", s.batch_size,
                  f"a multiple of system.learner_devices × system.num_processes = {shards} (rows per device)")
    v.require_sequence(config, "autotune.batch_sizes", item_ok=lambda b: isinstance(b, int) and b >= 1,
                       item_desc="positive integer batch sizes")
    v.require_sequence(config, "autotune.envs_per_sampler", item_ok=lambda n: isinstance(n, int) and n >= 1,
                       item_desc="positive integer env counts")
    v.require_int(config, "autotune.updates", min_value=1)
    v.require_float(config, "autotune.sampler_seconds", min_value=0.0, strict=True)


def train_to_threshold(key: jax.Array, *, n_envs: int, updates_per_iter: int, iters_per_segment: int,
                       segments_per_eval: int, batch_size: int, learning_rate: float, capacity: int,
                       warmup_steps: int, max_env_steps: int, hidden: tuple[int, ...], gamma: float, tau: float,
                       eval_episodes: int, threshold: float, final_evals: int, writer: MetricWriter | None = None,
                       tag: str = "", show_progress: bool = True, stale: bool = False) -> dict:
    """Trains SAC on Pendulum until the deterministic return reaches `threshold` and `final_evals` more
    evaluations are done (or `max_env_steps`). The clock starts here, so it counts initialisation and every
    compilation, and stops during evaluations (the async system evaluates in another process).

    Returns the curve (`wall_s`, `env_steps`, `updates`, `eval_return` per evaluation), `time_to_threshold_s`,
    `env_steps_to_threshold`, `updates_to_threshold` (None if never reached), `final_return` (mean of the last
    `final_evals` evaluations), `first_segment_s` (compile + first call) and `updates_per_s` after it.
    """
    t_start = time.perf_counter()
    paused = 0.0
    lr = float(learning_rate)
    carry = fused.init_carry(key, n_envs=n_envs, capacity=capacity,
                             sac_kwargs=dict(hidden=hidden, actor_lr=lr, critic_lr=lr, alpha_lr=lr))
    carry = fused.collect(carry, jax.random.fold_in(key, 1), steps=max(1, -(-warmup_steps // n_envs)))
    segment = fused.make_segment(iters=iters_per_segment, updates_per_iter=updates_per_iter, batch_size=batch_size,
                                 gamma=gamma, tau=tau, stale=stale)
    curve = {"wall_s": [], "env_steps": [], "updates": [], "eval_return": []}
    reached = None
    first_segment_s = None
    t_first = updates_first = None
    steps_per_segment = n_envs * iters_per_segment
    n_segments = max(1, -(-max_env_steps // steps_per_segment))
    bar = progress(n_segments * steps_per_segment, desc=f"spreeze {tag}", unit="env step",
                   disable=None if show_progress else True)
    for i in range(n_segments):
        t0 = time.perf_counter()
        carry, metrics = segment(carry, jax.random.fold_in(key, 1000 + i))
        if first_segment_s is None:
            jax.block_until_ready(carry.sac.step)
            first_segment_s = time.perf_counter() - t0
            t_first, updates_first = time.perf_counter(), int(carry.sac.step)
        bar.update(steps_per_segment)
        if (i + 1) % segments_per_eval and i + 1 < n_segments:
            continue
        jax.block_until_ready(carry.sac.step)
        t_eval = time.perf_counter()
        wall = t_eval - t_start - paused
        ret = float(fused.evaluate(carry.sac.actor.params, jax.random.fold_in(key, 10**6 + i),
                                   n_episodes=eval_episodes, hidden=tuple(hidden)))
        scalars = {k: float(v) for k, v in metrics.items()}
        check_finite(int(carry.env_steps), scalars, keys=("critic_loss", "actor_loss"))
        for name, value in (("wall_s", wall), ("env_steps", int(carry.env_steps)), ("updates", int(carry.sac.step)),
                            ("eval_return", ret)):
            curve[name].append(value)
        if writer is not None:
            writer.write_scalars(int(carry.env_steps), {f"{tag}/{k}": v for k, v in
                                                        {**scalars, "eval_return": ret, "wall_s": wall}.items()})
        if reached is None and ret >= threshold:
            reached = len(curve["wall_s"]) - 1
        paused += time.perf_counter() - t_eval
        if reached is not None and len(curve["wall_s"]) - reached > final_evals:
            break
    bar.close()
    elapsed = time.perf_counter() - t_start - paused
    t_last = time.perf_counter()
    done_updates = int(carry.sac.step)
    rate = (done_updates - updates_first) / max(t_last - t_first - 1e-9, 1e-9) if done_updates > updates_first else 0
    return {
        **curve,
        "time_to_threshold_s": None if reached is None else curve["wall_s"][reached],
        "env_steps_to_threshold": None if reached is None else curve["env_steps"][reached],
        "updates_to_threshold": None if reached is None else curve["updates"][reached],
        "final_return": float(np.mean(curve["eval_return"][-final_evals:])),
        "first_segment_s": first_segment_s, "updates_per_s": rate, "train_s": elapsed,
    }


def fused_run(config, key, **kw) -> dict:
    f = config.fused
    return train_to_threshold(key, n_envs=f.n_envs, updates_per_iter=f.updates_per_iter,
                              iters_per_segment=f.iters_per_segment, segments_per_eval=1,
                              batch_size=f.batch_size, learning_rate=f.learning_rate, capacity=f.capacity,
                              warmup_steps=f.warmup_steps, max_env_steps=f.max_env_steps,
                              hidden=tuple(config.sac.hidden), gamma=config.sac.gamma, tau=config.sac.tau,
                              eval_episodes=config.eval.episodes, threshold=config.eval.threshold,
                              final_evals=config.eval.final_evals, tag="fused", stale=f.stale_updates, **kw)


def sequential_run(config, key, **kw) -> dict:
    """C0: one env, one env step then one update per jitted call (a segment of one iteration)."""
    s = config.sequential
    return train_to_threshold(key, n_envs=1, updates_per_iter=1, iters_per_segment=1,
                              segments_per_eval=s.eval_every, batch_size=s.batch_size,
                              learning_rate=s.learning_rate, capacity=max(s.max_env_steps + s.warmup_steps, 1),
                              warmup_steps=s.warmup_steps, max_env_steps=s.max_env_steps,
                              hidden=tuple(config.sac.hidden), gamma=config.sac.gamma, tau=config.sac.tau,
                              eval_episodes=config.eval.episodes, threshold=config.eval.threshold,
                              final_evals=config.eval.final_evals, tag="sequential", **kw)


def learner_rates(*, batch_sizes, updates: int, obs_dim: int, action_dim: int, hidden: tuple[int, ...],
                  seed: int = 0, repeats: int = 3) -> dict[str, float]:
    """Fused SAC updates/s and transitions/s (= B × updates/s) at each batch size B, on random device-resident
    batches, compile excluded; each B timed `repeats` times interleaved with the others, median kept."""
    key = jax.random.key(seed)
    update = jax.jit(sac.update, donate_argnums=0)
    states, batches = {}, {}
    for b in batch_sizes:
        k = jax.random.fold_in(key, b)
        states[b] = sac.init(k, obs_dim=obs_dim, action_dim=action_dim, hidden=hidden)
        ks = jax.random.split(k, 3)
        batches[b] = Transition(obs=jax.random.normal(ks[0], (b, obs_dim)),
                                action=jax.random.uniform(ks[1], (b, action_dim), minval=-1, maxval=1),
                                reward=jax.random.normal(ks[2], (b,)), done=jnp.zeros((b,)),
                                next_obs=jax.random.normal(ks[0], (b, obs_dim)))
        states[b], _ = update(states[b], batches[b], k)  # compile
        jax.block_until_ready(states[b].step)
    times = {b: [] for b in batch_sizes}
    for _ in range(repeats):
        for b in batch_sizes:
            t0 = time.perf_counter()
            for _ in range(updates):
                states[b], m = update(states[b], batches[b], key)
            jax.block_until_ready(m["critic_loss"])
            times[b].append(time.perf_counter() - t0)
    out = {}
    for b in batch_sizes:
        t = sorted(times[b])[repeats // 2]
        out[f"updates_per_s/B{b}"] = updates / t
        out[f"transitions_per_s/B{b}"] = b * updates / t
    return out


def _part(workdir: str, name: str, make):
    """The saved outcome `workdir/parts/<name>.json`, or `make()` saved atomically."""
    path = os.path.join(workdir, "parts", f"{name}.json")
    saved = read_json_or_none(path)  # a damaged part is named on stderr and redone
    if saved is not None:
        return saved
    out = make()
    write_json_atomic(path, out)
    return out


def _summary(runs: list[dict], prefix: str) -> dict:
    m = {}
    times = [r["time_to_threshold_s"] for r in runs]
    reached = [t for t in times if t is not None]
    m[f"{prefix}/seeds_reached"] = len(reached)
    m[f"{prefix}/time_to_threshold_s/median"] = float(np.median(reached)) if len(reached) == len(runs) else None
    m[f"{prefix}/time_to_threshold_s/min"] = min(reached) if reached else None
    m[f"{prefix}/time_to_threshold_s/max"] = max(reached) if reached else None
    for k in ("env_steps_to_threshold", "updates_to_threshold"):
        vals = [r[k] for r in runs if r[k] is not None]
        m[f"{prefix}/{k}/median"] = float(np.median(vals)) if len(vals) == len(runs) else None
    finals = [r["final_return"] for r in runs]
    m[f"{prefix}/final_return/mean"], m[f"{prefix}/final_return/ci95"] = stats.mean_ci(np.asarray(finals))
    m[f"{prefix}/first_segment_s/median"] = float(np.median([r["first_segment_s"] for r in runs]))
    m[f"{prefix}/updates_per_s/median"] = float(np.median([r["updates_per_s"] for r in runs]))
    return m


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs B4 (fused and sequential, `num_seeds` each, interleaved), B2 and B3; writes results.json and plots."""
    writer = MetricWriter(workdir, resume_step=10**12)  # keep earlier lines: each seed logs under its own tag
    keys = stats.seed_keys(config.seed, config.num_seeds)
    runs = {"fused": [], "sequential": []}
    for s in range(config.num_seeds):
        runs["fused"].append(_part(workdir, f"fused_seed{s}", lambda s=s: fused_run(config, keys[s], writer=writer)))
        if config.sequential.enabled:
            runs["sequential"].append(_part(workdir, f"sequential_seed{s}",
                                            lambda s=s: sequential_run(config, keys[s], writer=writer)))
    sb = config.sampler_bench
    b2 = _part(workdir, "sampler_bench", lambda: fused.sampler_rates(
        n_envs=sb.n_envs, steps=sb.steps, hidden=tuple(config.sac.hidden), repeats=sb.repeats, seed=config.seed))
    lb = config.learner_bench
    b3 = _part(workdir, "learner_bench", lambda: learner_rates(
        batch_sizes=tuple(lb.batch_sizes), updates=lb.updates, obs_dim=lb.obs_dim, action_dim=lb.action_dim,
        hidden=tuple(config.sac.hidden), seed=config.seed))
    writer.close()

    metrics = {**_summary(runs["fused"], "fused"), **{f"sampler/{k}": v for k, v in b2.items()},
               **{f"learner/{k}": v for k, v in b3.items()}}
    if runs["sequential"]:
        metrics.update(_summary(runs["sequential"], "sequential"))
    metrics["threads"] = os.environ.get("XLA_FLAGS", "default")
    claims = claims_lib.make_claims(config, metrics)
    plot_files = plots.make_plots(workdir, runs=runs, metrics=metrics, config=config)
    return outputs.write_results(workdir, project="spreeze", preset=config.preset, seeds=range(config.num_seeds),
                                 metrics=metrics, claims=claims, plots=plot_files)
