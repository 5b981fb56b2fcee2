"""Pendulum-v1 as pure JAX functions, step for step the dynamics of gymnasium's and gymnax's Pendulum-v1.

    state, obs = pendulum.reset(key)                       # one env; jax.vmap over keys for many
    state, obs, reward, done, truncated = pendulum.step(state, action)   # action [1] in [-1, 1]

Written here rather than imported from gymnax so that the fused path needs no extra package (gymnax pulls
seaborn and pandas; gymnax 1.0.1 also imports `six` undeclared, spec pitfall 3). `tests/lib/test_rl_pendulum.py`
checks it against gymnax's `Pendulum-v1` where gymnax is installed.

Differences from gymnax's API, on purpose: the action is the policy's [-1, 1] output and is scaled to the
torque range [-2, 2] here; the episode never terminates (`done` is always 0, so SAC's target bootstraps) and is
truncated after 200 steps, when the caller resets. Shapes: obs `[3]` = (cos θ, sin θ, θ̇), action `[1]`.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

OBS_DIM, ACTION_DIM = 3, 1
MAX_SPEED, MAX_TORQUE, DT, G, M, L = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0
MAX_STEPS = 200


class PendulumState(flax.struct.PyTreeNode):
    """θ `[]`, θ̇ `[]`, and t `[]` (int32, steps taken in this episode)."""

    theta: jax.Array
    theta_dot: jax.Array
    t: jax.Array


def angle_normalize(x: jax.Array) -> jax.Array:
    """x wrapped into [−π, π)."""
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


def observe(state: PendulumState) -> jax.Array:
    """(cos θ, sin θ, θ̇) `[3]`."""
    return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot])


def reset(key: jax.Array) -> tuple[PendulumState, jax.Array]:
    """θ ~ U[−π, π], θ̇ ~ U[−1, 1] (gymnasium's and gymnax's start distribution); returns (state, obs `[3]`)."""
    high = jnp.array([jnp.pi, 1.0])
    th, thdot = jax.random.uniform(key, (2,), minval=-high, maxval=high)
    state = PendulumState(theta=th, theta_dot=thdot, t=jnp.zeros((), jnp.int32))
    return state, observe(state)


def step(state: PendulumState, action: jax.Array) -> tuple[PendulumState, jax.Array, jax.Array, jax.Array,
                                                            jax.Array]:
    """One 0.05 s Euler step with torque u = 2·clip(action, −1, 1).

    Returns (state', obs' `[3]`, reward `[]`, done `[]` (always 0: Pendulum never terminates), truncated `[]`
    (1.0 once 200 steps were taken)). reward = −(angle(θ)² + 0.1 θ̇² + 0.001 u²), computed on the state before
    the step, as gymnasium does.
    """
    u = jnp.clip(jnp.reshape(action, ()), -1.0, 1.0) * MAX_TORQUE
    th, thdot = state.theta, state.theta_dot
    reward = -(angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2)
    newthdot = thdot + (3 * G / (2 * L) * jnp.sin(th) + 3.0 / (M * L**2) * u) * DT
    newthdot = jnp.clip(newthdot, -MAX_SPEED, MAX_SPEED)
    new = PendulumState(theta=th + newthdot * DT, theta_dot=newthdot, t=state.t + 1)
    truncated = (new.t >= MAX_STEPS).astype(jnp.float32)
    return new, observe(new), reward, jnp.zeros((), jnp.float32), truncated
