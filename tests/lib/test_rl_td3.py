"""Tests for lib/rl/td3.py: the clipped double-Q target, target policy smoothing, delayed updates in one trace."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rl_point_mass as point_mass  # tests/lib/rl_point_mass.py (pytest puts this folder on sys.path)

from lib.rl import td3
from lib.rl.types import Transition

OBS, ACT = 3, 2


def _batch(key, n=8):
    k = jax.random.split(key, 5)
    return Transition(obs=jax.random.normal(k[0], (n, OBS)),
                      action=jax.random.uniform(k[1], (n, ACT), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (n,)),
                      done=(jax.random.uniform(k[3], (n,)) < 0.3).astype(jnp.float32),
                      next_obs=jax.random.normal(k[4], (n, OBS)))


@pytest.fixture(scope="module")
def small_state():
    """A small TD3 state, built once per module under jit (eager flax init is slow on 2 cores)."""
    return jax.jit(lambda key: td3.init(key, obs_dim=OBS, action_dim=ACT, hidden=(16, 16)))(jax.random.key(0))


def test_critic_target_matches_direct_computation(small_state):
    """Without smoothing noise, y = r + γ(1−done)·min_i Q̄_i(s', π̄(s')) from the *target* networks."""
    perturb = lambda tree, c: jax.tree_util.tree_map(lambda p: p * c, tree)  # noqa: E731
    state = small_state.replace(actor=small_state.actor.replace(target_params=perturb(small_state.actor.params, 0.5)),
                                critic=small_state.critic.replace(
                                    target_params=perturb(small_state.critic.params, 1.5)))
    batch, gamma = _batch(jax.random.key(1)), 0.9

    @jax.jit
    def both(state, batch):
        _, metrics = td3.critic_step(state.critic, actor=state.actor, batch=batch, key=jax.random.key(3),
                                     gamma=gamma, policy_noise=0.0)
        a2 = state.actor.apply_fn(state.actor.target_params, batch.next_obs)
        q2 = state.critic.apply_fn(state.critic.target_params, batch.next_obs, a2)
        y = batch.reward + gamma * (1 - batch.done) * jnp.minimum(q2[0], q2[1])
        q = state.critic.apply_fn(state.critic.params, batch.obs, batch.action)
        return metrics, jnp.mean(y), 0.5 * (jnp.mean((q[0] - y) ** 2) + jnp.mean((q[1] - y) ** 2))

    metrics, y_mean, loss = both(state, batch)
    np.testing.assert_allclose(float(metrics["target_q_mean"]), float(y_mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(loss), rtol=1e-5)


def test_target_policy_smoothing_clips_noise_and_action():
    """|a' − π̄(s')| ≤ noise_clip however large σ is, and a' stays in [−1, 1]."""
    base = jnp.linspace(-1.0, 1.0, 101)[:, None] * jnp.ones((1, ACT))
    out = td3.smoothed_target_action(base, jax.random.key(0), policy_noise=10.0, noise_clip=0.5)
    assert float(jnp.max(jnp.abs(out - base))) <= 0.5 + 1e-6
    assert float(jnp.max(jnp.abs(out))) <= 1.0
    assert float(jnp.mean(jnp.abs(out - base))) > 0.2  # the noise is really there


def test_delayed_actor_and_targets_in_one_trace(small_state):
    """policy_delay = 2: the actor and both targets move on calls 2 and 4 only; the critic moves every call."""

    def step(state, batch, key):
        return td3.update(state, batch, key, policy_delay=2, tau=0.5)

    update = jax.jit(chex.assert_max_traces(step, n=1), donate_argnums=0)
    state = jax.tree_util.tree_map(jnp.copy, small_state)
    snap = lambda s: jax.tree_util.tree_map(np.asarray, (s.actor.params, s.actor.target_params,  # noqa: E731
                                                         s.critic.params, s.critic.target_params))
    changed = lambda a, b: not all(np.array_equal(x, y)  # noqa: E731
                                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b),
                                                   strict=True))
    flags = []
    for i in range(4):
        before = snap(state)
        state, metrics = update(state, _batch(jax.random.key(i)), jax.random.key(9))
        after = snap(state)
        moved = [changed(b, a) for b, a in zip(before, after, strict=True)]
        expect_actor = i % 2 == 1
        assert moved == [expect_actor, expect_actor, True, expect_actor], (i, moved)
        flags.append(float(metrics["actor_updated"]))
        assert (float(metrics["actor_loss"]) != 0.0) == expect_actor
        assert np.isfinite(float(metrics["critic_loss"]))
    assert flags == [0.0, 1.0, 0.0, 1.0]
    assert int(state.step) == 4


def test_act_adds_clipped_exploration_noise(small_state):
    """σ = 0 gives π(s); σ > 0 perturbs it but stays in [−1, 1]."""
    obs = jax.random.normal(jax.random.key(0), (16, OBS))
    act = jax.jit(lambda p, o, s: td3.act(small_state.actor.apply_fn, p, o, jax.random.key(1), exploration_noise=s))
    greedy = act(small_state.actor.params, obs, 0.0)
    np.testing.assert_allclose(greedy, small_state.actor.apply_fn(small_state.actor.params, obs), rtol=1e-6)
    noisy = act(small_state.actor.params, obs, 3.0)
    assert float(jnp.max(jnp.abs(noisy))) <= 1.0 and not np.allclose(noisy, greedy)


def test_td3_learns_point_mass():
    """TD3 on the 10-step 1-D point mass of tests/lib/rl_point_mass.py gets within 0.35 of the optimal return
    (≈ −0.64; the untrained actor is near −5) in 600 updates."""
    key = jax.random.key(0)
    state = jax.jit(lambda k: td3.init(k, obs_dim=1, action_dim=1, hidden=(64, 64), actor_lr=1e-3,
                                       critic_lr=1e-3))(key)
    state, metrics = point_mass.train(
        state, key=key, act=lambda s, x, k: td3.act(s.actor.apply_fn, s.actor.params, x, k),
        update=lambda s, batch, k: td3.update(s, batch, k, gamma=0.9))
    eval_key = jax.random.key(1)
    ours = point_mass.episode_return(lambda x: state.actor.apply_fn(state.actor.params, x), eval_key)
    optimal = point_mass.optimal_return(eval_key)
    assert np.isfinite(float(metrics["critic_loss"]))
    assert ours >= optimal - 0.35, (ours, optimal)
