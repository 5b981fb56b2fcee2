"""lib/rl/pendulum.py: the same trajectories as gymnax's and gymnasium's Pendulum-v1 where those are installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.rl import pendulum


def _rollout(key, actions):
    state, obs = pendulum.reset(key)
    out = []
    for a in actions:
        state, obs, reward, done, truncated = pendulum.step(state, jnp.asarray([a]))
        out.append((np.asarray(obs), float(reward), float(done), float(truncated)))
    return out


def test_truncates_after_200_steps_and_never_terminates():
    """200 steps: truncated only at the last, done always 0; observations are (cos, sin, θ̇) with |θ̇| ≤ 8."""
    out = _rollout(jax.random.key(0), np.ones(200))
    assert [t for *_, t in out] == [0.0] * 199 + [1.0]
    assert all(d == 0.0 for _, _, d, _ in out)
    obs = np.stack([o for o, *_ in out])
    np.testing.assert_allclose(obs[:, 0] ** 2 + obs[:, 1] ** 2, 1.0, atol=1e-5)
    assert np.abs(obs[:, 2]).max() <= pendulum.MAX_SPEED


def test_matches_gymnax():
    """Same start (same key), same torques (2 × action): obs and rewards equal gymnax Pendulum-v1's to 1e-5."""
    gymnax = pytest.importorskip("gymnax")
    env, params = gymnax.make("Pendulum-v1")
    key = jax.random.key(3)
    actions = np.random.default_rng(0).uniform(-1, 1, 50)
    g_obs, g_state = env.reset_env(key, params)  # reset_env: the same θ, θ̇ draw as ours from the same key
    ours = _rollout(key, actions)
    np.testing.assert_allclose(pendulum.reset(key)[1], g_obs, atol=1e-6)
    for a, (obs, reward, _, _) in zip(actions, ours, strict=True):
        g_obs, g_state, g_reward, _, _ = env.step_env(key, g_state, jnp.asarray([2.0 * a]), params)
        np.testing.assert_allclose(obs, g_obs, atol=1e-5)
        assert reward == pytest.approx(float(g_reward), abs=1e-5)


def test_matches_gymnasium():
    """From gymnasium's start state, the same torques give gymnasium's observations and rewards (float64 there)."""
    gym = pytest.importorskip("gymnasium")
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    th, thdot = env.state
    state = pendulum.PendulumState(theta=jnp.float32(th), theta_dot=jnp.float32(thdot), t=jnp.int32(0))
    for a in np.random.default_rng(1).uniform(-1, 1, 50):
        obs, reward, *_ = env.step(np.array([2.0 * a], np.float32))
        state, ours, r, _, _ = pendulum.step(state, jnp.asarray([a]))
        np.testing.assert_allclose(ours, obs, atol=1e-4)
        assert float(r) == pytest.approx(reward, abs=1e-4)
