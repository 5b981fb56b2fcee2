"""The JAX-native path: Pendulum sampling (vmap over envs, `lax.scan` over time), the replay ring and SAC updates
in one compiled segment (the purejaxrl pattern, spec §5.2 `jaxenv`).

    carry = init_carry(key, n_envs=16, capacity=50_000, sac_kwargs={...})
    carry = collect(carry, key, steps=64)                    # random actions, fills the ring, no updates
    segment = make_segment(n_envs=16, iters=50, updates_per_iter=8, batch_size=256, gamma=0.99, tau=0.005)
    carry, metrics = segment(carry, key)                     # 50 × (16 env steps + 8 SAC updates), one jit call
    ret = evaluate(carry.sac.actor.params, key, n_episodes=10)   # deterministic return, mean over episodes

Every function is pure and jit-compiled once per shape. Python sits only between segments, where the run
evaluates and logs. The sampler benchmark (`sampler_rates`, B2) times the vmap+scan sampler with the actor in
the loop against Python loops of jitted steps (one call per step of all envs, and one call per env step).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from lib.rl import networks, pendulum, replay, sac
from lib.rl.types import Transition


class Carry(flax.struct.PyTreeNode):
    """sac: the learner state; ring: the JAX replay ring; env: the batched `PendulumState` (leaves `[n_envs]`);
    obs `[n_envs, 3]`; ep_return `[n_envs]` (running return of each env's current episode); env_steps `[]`."""

    sac: sac.SACState
    ring: replay.RingState
    env: pendulum.PendulumState
    obs: jax.Array
    ep_return: jax.Array
    env_steps: jax.Array


def _example() -> Transition:
    z = jnp.zeros((), jnp.float32)
    return Transition(obs=jnp.zeros(pendulum.OBS_DIM), action=jnp.zeros(pendulum.ACTION_DIM), reward=z, done=z,
                      next_obs=jnp.zeros(pendulum.OBS_DIM))


def init_carry(key: jax.Array, *, n_envs: int, capacity: int, sac_kwargs: dict[str, Any]) -> Carry:
    """A fresh learner, an empty ring of `capacity` rows and `n_envs` freshly reset pendulums."""
    k_sac, k_env = jax.random.split(key)
    state = sac.init(k_sac, obs_dim=pendulum.OBS_DIM, action_dim=pendulum.ACTION_DIM, **sac_kwargs)
    env, obs = jax.vmap(pendulum.reset)(jax.random.split(k_env, n_envs))
    return Carry(sac=state, ring=replay.init(capacity=capacity, example=_example()), env=env, obs=obs,
                 ep_return=jnp.zeros((n_envs,)), env_steps=jnp.zeros((), jnp.int32))


def env_step(env: pendulum.PendulumState, obs: jax.Array, action: jax.Array, key: jax.Array):
    """Steps `n` envs `[n, ...]` and resets the truncated ones; returns (env', obs' (after resets), transition,
    truncated `[n]`). The transition keeps the true next observation of a truncated episode."""
    n = obs.shape[0]
    env2, next_obs, reward, done, truncated = jax.vmap(pendulum.step)(env, action)
    reset_env, reset_obs = jax.vmap(pendulum.reset)(jax.random.split(key, n))
    cut = truncated > 0

    def pick(a, b):
        return jnp.where(cut.reshape((n,) + (1,) * (a.ndim - 1)), a, b)

    env3 = jax.tree_util.tree_map(pick, reset_env, env2)
    transition = Transition(obs=obs, action=action, reward=reward, done=done, next_obs=next_obs)
    return env3, pick(reset_obs, next_obs), transition, truncated


def _sample_step(carry: Carry, key: jax.Array, *, random_actions: bool) -> tuple[Carry, tuple[jax.Array, jax.Array]]:
    k_act, k_reset = jax.random.split(key)
    n = carry.obs.shape[0]
    if random_actions:
        action = jax.random.uniform(k_act, (n, pendulum.ACTION_DIM), minval=-1.0, maxval=1.0)
    else:
        action = sac.act(carry.sac.actor.apply_fn, carry.sac.actor.params, carry.obs, k_act)
    env, obs, tr, truncated = env_step(carry.env, carry.obs, action, k_reset)
    ep_return = carry.ep_return + tr.reward
    finished = jnp.where(truncated > 0, ep_return, jnp.nan)  # returns of episodes that ended here
    carry = carry.replace(ring=replay.add(carry.ring, tr), env=env, obs=obs,
                          ep_return=jnp.where(truncated > 0, 0.0, ep_return), env_steps=carry.env_steps + n)
    return carry, (finished, tr.reward)


@functools.partial(jax.jit, static_argnames=("steps",), donate_argnums=0)
def collect(carry: Carry, key: jax.Array, *, steps: int) -> Carry:
    """`steps` × n_envs uniformly random transitions into the ring (SAC's warm-up), no updates."""
    keys = jax.random.split(key, steps)
    carry, _ = jax.lax.scan(lambda c, k: _sample_step(c, k, random_actions=True), carry, keys)
    return carry


def make_segment(*, iters: int, updates_per_iter: int, batch_size: int, gamma: float, tau: float,
                 stale: bool = False):
    """A jitted `segment(carry, key) -> (carry, metrics)`: `iters` × (one policy step of every env, then
    `updates_per_iter` SAC updates on uniform batches of `batch_size`). The carry is donated.

    metrics: the last update's SAC metrics (scalars), `episode_return` (mean of the episodes that ended in the
    segment, NaN if none) and `episodes` (their count). `stale=True` uses `sac.update_stale`, the split mode's
    algorithm (actor and critic each one step stale), on one device.
    """
    update = sac.update_stale if stale else sac.update

    def one_iter(carry: Carry, key: jax.Array):
        k_sample, k_updates = jax.random.split(key)
        carry, (finished, _) = _sample_step(carry, k_sample, random_actions=False)

        def one_update(state, k):
            k_batch, k_update = jax.random.split(k)
            batch = replay.sample(carry.ring, k_batch, batch_size=batch_size)
            return update(state, batch, k_update, gamma=gamma, tau=tau)

        state, metrics = jax.lax.scan(one_update, carry.sac, jax.random.split(k_updates, updates_per_iter))
        return carry.replace(sac=state), (finished, jax.tree_util.tree_map(lambda m: m[-1], metrics))

    @functools.partial(jax.jit, donate_argnums=0)
    def segment(carry: Carry, key: jax.Array):
        carry, (finished, metrics) = jax.lax.scan(one_iter, carry, jax.random.split(key, iters))
        count = jnp.sum(~jnp.isnan(finished))
        metrics = jax.tree_util.tree_map(lambda m: m[-1], metrics)
        metrics["episode_return"] = jnp.nansum(finished) / jnp.maximum(count, 1) + jnp.where(count > 0, 0.0, jnp.nan)
        metrics["episodes"] = count
        return carry, metrics

    return segment


@functools.partial(jax.jit, static_argnames=("n_episodes", "hidden"))
def evaluate(actor_params: Any, key: jax.Array, *, n_episodes: int, hidden: tuple[int, ...]) -> jax.Array:
    """Mean undiscounted return of the deterministic policy tanh(mean) over `n_episodes` full episodes `[]`."""
    apply = networks.GaussianActor(action_dim=pendulum.ACTION_DIM, hidden=hidden).apply
    env, obs = jax.vmap(pendulum.reset)(jax.random.split(key, n_episodes))

    def body(c, _):
        env, obs = c
        action = sac.act(apply, actor_params, obs, key, deterministic=True)
        env, obs, reward, _, _ = jax.vmap(pendulum.step)(env, action)
        return (env, obs), reward

    _, rewards = jax.lax.scan(body, (env, obs), None, length=pendulum.MAX_STEPS)
    return jnp.mean(jnp.sum(rewards, axis=0))


# ----------------------------------------------------------------------------------------------- B2: sampling


def make_fused_sampler(*, n_envs: int, steps: int, hidden: tuple[int, ...]):
    """jit(`(actor_params, env, obs, key) -> (env, obs, rewards [steps, n_envs])`): `steps` policy steps of `n_envs`
    pendulums in one `lax.scan` (actor sampling, env step, auto-reset); nothing leaves the device in between."""
    apply = networks.GaussianActor(action_dim=pendulum.ACTION_DIM, hidden=hidden).apply

    @jax.jit
    def run(actor_params, env, obs, key):
        def body(c, k):
            env, obs = c
            k_act, k_reset = jax.random.split(k)
            action = sac.act(apply, actor_params, obs, k_act)
            env, obs, tr, _ = env_step(env, obs, action, k_reset)
            return (env, obs), tr.reward

        (env, obs), rewards = jax.lax.scan(body, (env, obs), jax.random.split(key, steps))
        return env, obs, rewards

    return run


def make_loop_step(*, hidden: tuple[int, ...]):
    """jit(`(actor_params, env, obs, key) -> (env, obs, reward [n_envs])`): one policy step of all envs per call,
    the same work as one iteration of the fused sampler; a Python loop calls it once per step."""
    apply = networks.GaussianActor(action_dim=pendulum.ACTION_DIM, hidden=hidden).apply

    @jax.jit
    def one(actor_params, env, obs, key):
        k_act, k_reset = jax.random.split(key)
        action = sac.act(apply, actor_params, obs, k_act)
        env, obs, tr, _ = env_step(env, obs, action, k_reset)
        return env, obs, tr.reward

    return one


def sampler_rates(*, n_envs: int, steps: int, hidden: tuple[int, ...], repeats: int = 3,
                  seed: int = 0) -> dict[str, float]:
    """Transitions/s of three samplers running the same actor and env code, compile excluded, interleaved
    `repeats` times, medians (spec B2):

        fused   `steps` policy steps of `n_envs` envs in one call (vmap + scan)
        loop    a Python loop of one jitted call per step of all `n_envs` envs (vectorised, not fused)
        loop1   a Python loop of one jitted call per env step, one env (the spec's "Python-loop sampler")
    """
    key = jax.random.key(seed)
    params = networks.GaussianActor(action_dim=pendulum.ACTION_DIM, hidden=hidden).init(
        key, jnp.zeros((1, pendulum.OBS_DIM)))
    fused = make_fused_sampler(n_envs=n_envs, steps=steps, hidden=hidden)
    one = make_loop_step(hidden=hidden)
    starts = {n: jax.vmap(pendulum.reset)(jax.random.split(key, n)) for n in (n_envs, 1)}
    jax.block_until_ready(fused(params, *starts[n_envs], key))  # compile all three outside the timing
    for n in (n_envs, 1):
        jax.block_until_ready(one(params, *starts[n], key))
    keys = list(jax.random.split(key, steps))
    rates = {"fused": [], "loop": [], "loop1": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fused(params, *starts[n_envs], jax.random.fold_in(key, r)))
        rates["fused"].append(n_envs * steps / (time.perf_counter() - t0))
        for name, n in (("loop", n_envs), ("loop1", 1)):
            e, o = starts[n]
            t0 = time.perf_counter()
            for i in range(steps):
                e, o, _ = one(params, e, o, keys[i])
            jax.block_until_ready(o)
            rates[name].append(n * steps / (time.perf_counter() - t0))
    med = {k: sorted(v)[repeats // 2] for k, v in rates.items()}
    return {"fused_transitions_per_s": med["fused"], "loop_transitions_per_s": med["loop"],
            "loop1_transitions_per_s": med["loop1"], "fused_over_loop": med["fused"] / med["loop"],
            "fused_over_loop1": med["fused"] / med["loop1"]}
