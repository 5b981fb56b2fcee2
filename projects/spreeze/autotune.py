"""Auto-tuning of the system's parallelism to this machine (spec §5.3; the paper's exact rule is unknown).

    python -m projects.spreeze.autotune --config=configs/spreeze/default.py:quick --workdir=runs/spreeze
    → runs/spreeze/system/autotune.json, read by the system when `system.autotune=True`

1. Learner curve: fused SAC updates at each candidate batch B (`autotune.batch_sizes`), giving U(B) in transitions/s.
2. Sampler curve: one sampler process stepping `n` gymnasium envs with the jitted actor, for each candidate n
   (`autotune.envs_per_sampler`), giving S(n) in env steps/s. The two curves are measured at the same time, in two
   spawned single-threaded processes, because on 2 cores the sampler and the learner compete (spec §5.1).
3. Choice: B* = the smallest B with U(B) ≥ 0.9 · max U; n* = argmax S; samplers = cores − 1 (at least 1); the
   learning rate 3e-4 · sqrt(B*/256), capped at 1e-3; the implied replay ratio U(B*)/S(n*) is logged.
4. Record: the choice, both curves, and the machine fingerprint (nproc, CPU model, devices, library versions).

B6 is checked by measuring the learner curve a second time, independently: U₂(B*) must be within 10 % of max U₂.
Not measured: the sampler count (it is fixed at cores − 1; on 2 cores that is 1) and the split learner mode.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import time

import numpy as np

from lib.metrics import write_json_atomic

SPAWN = multiprocessing.get_context("spawn")


def _learner_curve(batch_sizes, obs_dim, action_dim, hidden, updates, seed) -> dict:
    from projects.spreeze import system

    system._pin_one_thread()
    from projects.spreeze import run

    r = run.learner_rates(batch_sizes=batch_sizes, updates=updates, obs_dim=obs_dim, action_dim=action_dim,
                          hidden=hidden, seed=seed)
    return {int(b): r[f"transitions_per_s/B{b}"] for b in batch_sizes}


def _sampler_curve(env_id, envs_list, seconds, hidden, seed) -> dict:
    from projects.spreeze import system

    system._pin_one_thread()
    import gymnasium as gym
    import jax
    import jax.numpy as jnp

    from lib.rl import sac

    system.quiet_mujoco()
    out = {}
    for n in envs_list:
        envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
        obs_dim = int(np.prod(envs.single_observation_space.shape))
        action_dim = int(np.prod(envs.single_action_space.shape))
        actor = system._actor(hidden, action_dim)
        params = actor.init(jax.random.key(seed), jnp.zeros((1, obs_dim)))
        act = jax.jit(lambda p, o, k, apply=actor.apply: sac.act(apply, p, o, k))
        low, high = envs.single_action_space.low, envs.single_action_space.high
        obs, _ = envs.reset(seed=seed)
        act(params, obs.astype(np.float32), jax.random.key(0)).block_until_ready()  # compile
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a = np.asarray(act(params, obs.astype(np.float32), jax.random.key(steps)))
            obs, *_ = envs.step(low + (a + 1.0) * 0.5 * (high - low))
            steps += n
        out[int(n)] = steps / (time.perf_counter() - t0)
        envs.close()
    return out


def fingerprint() -> dict:
    """nproc, CPU model, platform and library versions: the tuned choice belongs to this machine."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import gymnasium
    import jax

    return {"nproc": os.cpu_count(), "cpu": cpu, "machine": platform.machine(), "python": platform.python_version(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "gymnasium": gymnasium.__version__}


def choose(learner: dict, sampler: dict, *, nproc: int) -> dict:
    """The rule of step 3 on measured curves {B: U(B)} and {n: S(n)}."""
    best_u = max(learner.values())
    b_star = min(b for b, u in learner.items() if u >= 0.9 * best_u)
    n_star = max(sampler, key=sampler.get)
    return {"batch_size": int(b_star), "envs_per_sampler": int(n_star), "n_samplers": max(1, nproc - 1),
            "learning_rate": min(1e-3, 3e-4 * math.sqrt(b_star / 256)),
            "replay_ratio": learner[b_star] / sampler[n_star]}


def autotune(config, workdir: str) -> dict:
    """Measures both curves concurrently, chooses, re-measures the learner curve (B6), writes autotune.json."""
    from projects.spreeze import system

    a, s = config.autotune, config.system
    obs_dim, action_dim = system.env_dims(s.env_id)
    hidden = tuple(config.sac.hidden)
    bs = tuple(int(b) for b in a.batch_sizes)
    with SPAWN.Pool(2) as pool:
        lj = pool.apply_async(_learner_curve, (bs, obs_dim, action_dim, hidden, a.updates, config.seed))
        sj = pool.apply_async(_sampler_curve, (s.env_id, tuple(a.envs_per_sampler), a.sampler_seconds, hidden,
                                               config.seed))
        learner, sampler = lj.get(), sj.get()
        again = pool.apply_async(_learner_curve, (bs, obs_dim, action_dim, hidden, a.updates, config.seed + 1)).get()
    choice = choose(learner, sampler, nproc=os.cpu_count() or 1)
    b6 = again[choice["batch_size"]] / max(again.values())
    out = {"choice": choice, "learner_transitions_per_s": learner, "sampler_env_steps_per_s": sampler,
           "learner_transitions_per_s_recheck": again, "b6_tuned_over_best_recheck": b6,
           "fingerprint": fingerprint(), "env_id": s.env_id}
    os.makedirs(os.path.join(workdir, "system"), exist_ok=True)
    write_json_atomic(os.path.join(workdir, "system", "autotune.json"), out)
    return out


def validate(config) -> None:
    from projects.spreeze import system

    system.validate(config)  # run.validate, which it calls, checks the autotune group's numbers too


def train_and_evaluate(config, workdir: str) -> dict:
    """The launcher's entry: tune, print the choice, and return results in the harness's shape."""
    from harness import outputs

    out = autotune(config, workdir)
    b6 = out["b6_tuned_over_best_recheck"]
    claims = [outputs.claim("B6.autotune_within_10pct", "The tuned batch's update rate, measured again, is within 10 % "
                            "of the best candidate's", paper="automatic adjustment of parallelisation hyperparameters",
                            ours=f"B*={out['choice']['batch_size']}: ×{b6:.2f} of the best on a re-measurement",
                            holds=b6 >= 0.9)]
    print("autotune:", out["choice"])
    return {"claims": claims, **out}


if __name__ == "__main__":
    from harness import cli

    cli.launch("spreeze", module="autotune")
