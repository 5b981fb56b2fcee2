"""A 10-step 1-D point mass for the SAC and TD3 learning tests: x' = clip(x + 0.2·a, −2, 2), reward −|x'|, start
U[−1, 1], goal 0. The optimal return (full speed to 0) is ≈ −0.64; standing still scores ≈ −5. Episodes end by
time limit only, so done = 0 and every target bootstraps through γ."""

import jax
import jax.numpy as jnp

from lib.rl import replay
from lib.rl.types import Transition

HORIZON, N_ENVS, STEP = 10, 16, 0.2


def step(x, action):
    """x `[n, 1]`, action `[n, 1]` -> (x' `[n, 1]`, reward `[n]`)."""
    x2 = jnp.clip(x + STEP * action, -2.0, 2.0)
    return x2, -jnp.abs(x2[:, 0])


def episode_return(policy, key) -> float:
    """Mean return of `policy(x) -> action` over 512 starts."""
    x = jax.random.uniform(key, (512, 1), minval=-1, maxval=1)
    _, rewards = jax.lax.scan(lambda x, _: step(x, policy(x)), x, None, length=HORIZON)
    return float(rewards.sum(0).mean())


def optimal_return(key) -> float:
    return episode_return(lambda x: jnp.clip(-x / STEP, -1, 1), key)


def train(state, *, act, update, key, updates: int = 600, explore_steps: int = 50, batch_size: int = 128):
    """Collects with `act(state, x, key)` (uniform actions for the first `explore_steps`) into a JAX ring and calls
    `update(state, batch, key) -> (state, metrics)` once per env step; returns (state, last metrics)."""
    example = Transition(obs=jnp.zeros(1), action=jnp.zeros(1), reward=jnp.zeros(()), done=jnp.zeros(()),
                         next_obs=jnp.zeros(1))
    ring = replay.init(capacity=10_000, example=example)

    @jax.jit
    def collect_and_learn(state, ring, x, t, key, i):
        k_act, k_reset, k_sample, k_update = jax.random.split(key, 4)
        explore = jax.random.uniform(k_act, (N_ENVS, 1), minval=-1, maxval=1)
        action = jnp.where(i < explore_steps, explore, act(state, x, k_act))
        x2, reward = step(x, action)
        ring = replay.add(ring, Transition(obs=x, action=action, reward=reward, done=jnp.zeros(N_ENVS), next_obs=x2))
        state, metrics = update(state, replay.sample(ring, k_sample, batch_size=batch_size), k_update)
        t = t + 1
        x = jnp.where(t >= HORIZON, jax.random.uniform(k_reset, (N_ENVS, 1), minval=-1, maxval=1), x2)
        return state, ring, x, t % HORIZON, metrics

    x, t = jax.random.uniform(key, (N_ENVS, 1), minval=-1, maxval=1), jnp.zeros((), jnp.int32)
    metrics = None
    for i in range(updates):
        state, ring, x, t, metrics = collect_and_learn(state, ring, x, t, jax.random.fold_in(key, i), i)
    return state, metrics
