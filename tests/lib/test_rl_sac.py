"""Tests for lib/rl/networks.py and lib/rl/sac.py: targets, log-probs, Polyak, temperature, one trace, learning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rl_point_mass as point_mass  # tests/lib/rl_point_mass.py (pytest puts this folder on sys.path)

from lib.rl import networks, sac
from lib.rl.common import polyak
from lib.rl.types import Transition

OBS, ACT = 3, 2


def _batch(key, n=8, obs_dim=OBS, action_dim=ACT):
    k = jax.random.split(key, 5)
    return Transition(obs=jax.random.normal(k[0], (n, obs_dim)),
                      action=jax.random.uniform(k[1], (n, action_dim), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (n,)),
                      done=(jax.random.uniform(k[3], (n,)) < 0.3).astype(jnp.float32),
                      next_obs=jax.random.normal(k[4], (n, obs_dim)))


def test_critic_target_hand_computed():
    """y = r + γ(1−done)(min Q' − α log π) on numbers worked out by hand."""
    y = sac.critic_target(reward=jnp.array([1.0, 2.0]), done=jnp.array([0.0, 1.0]),
                          next_q=jnp.array([[3.0, 5.0], [4.0, 1.0]]), next_log_prob=jnp.array([-1.0, 0.5]),
                          alpha=0.2, gamma=0.9)
    # row 0: 1 + 0.9·(min(3, 4) − 0.2·(−1)) = 1 + 0.9·3.2 = 3.88; row 1 terminated: 2
    np.testing.assert_allclose(np.asarray(y), [3.88, 2.0], rtol=1e-6)


@pytest.fixture(scope="module")
def small_state():
    """A small SAC state built once per module (eager flax init costs seconds on a loaded 2-core box)."""
    return jax.jit(lambda key: sac.init(key, obs_dim=OBS, action_dim=ACT, hidden=(16, 16), init_alpha=0.5))(
        jax.random.key(0))


@pytest.fixture(scope="module")
def fused_update():
    """The fused update, jitted once with donation; shared so that the whole module compiles it once."""

    def step(state, batch, key):
        return sac.update(state, batch, key, tau=0.25)

    return jax.jit(chex.assert_max_traces(step, n=1), donate_argnums=0)


def test_critic_step_matches_direct_computation(small_state):
    """critic_step's target and loss equal the same formulas evaluated by hand with the same key."""
    # make the targets differ from the online critic so the test sees which one is used
    state = small_state.replace(critic=small_state.critic.replace(
        target_params=jax.tree_util.tree_map(lambda p: p * 1.5, small_state.critic.params)))
    batch, key, gamma = _batch(jax.random.key(1)), jax.random.key(2), 0.95

    @jax.jit
    def both(state, batch, key):
        _, metrics = sac.critic_step(state.critic, actor=state.actor, log_alpha=state.alpha.params["log_alpha"],
                                     batch=batch, key=key, gamma=gamma)
        mean, log_std = state.actor.apply_fn(state.actor.params, batch.next_obs)
        eps = jax.random.normal(key, mean.shape)
        u = mean + jnp.exp(log_std) * eps
        log_prob = (jnp.sum(-0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi), -1)
                    - jnp.sum(jnp.log(1 - jnp.tanh(u) ** 2), -1))
        q_next = state.critic.apply_fn(state.critic.target_params, batch.next_obs, jnp.tanh(u))
        y = batch.reward + gamma * (1 - batch.done) * (jnp.minimum(q_next[0], q_next[1]) - 0.5 * log_prob)
        q = state.critic.apply_fn(state.critic.params, batch.obs, batch.action)
        loss = 0.5 * (jnp.mean((q[0] - y) ** 2) + jnp.mean((q[1] - y) ** 2))
        return metrics, jnp.mean(y), loss

    metrics, y_mean, loss = both(state, batch, key)
    np.testing.assert_allclose(float(metrics["target_q_mean"]), float(y_mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(loss), rtol=1e-5)


def test_tanh_log_prob_is_a_change_of_variables():
    """log π(tanh u) = log N(u) − log|d tanh/du| (derivative by finite differences); the density integrates to 1."""
    mean, log_std = jnp.array([0.3]), jnp.array([-0.2])
    u = jnp.linspace(-3.0, 3.0, 41)[:, None]
    ours = networks.tanh_gaussian_log_prob(u, mean, log_std)
    h = 1e-3
    dtanh = (np.tanh(np.asarray(u, np.float64) + h) - np.tanh(np.asarray(u, np.float64) - h)) / (2 * h)
    std = np.exp(-0.2)
    log_n = -0.5 * ((np.asarray(u, np.float64) - 0.3) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(np.asarray(ours), (log_n - np.log(dtanh))[:, 0], rtol=1e-4, atol=1e-4)

    # ∫ p_A(a) da over (−1, 1) in action space, through u = atanh(a)
    a = np.linspace(-1 + 1e-6, 1 - 1e-6, 200_001)
    dens = np.exp(np.asarray(networks.tanh_gaussian_log_prob(jnp.arctanh(jnp.asarray(a))[:, None], mean, log_std)))
    assert abs(np.trapezoid(dens, a) - 1.0) < 1e-3

    # stable far into the tails, where 1 − tanh²u underflows in float32
    far = networks.tanh_log_det_jacobian(jnp.array([-30.0, 30.0]))
    np.testing.assert_allclose(np.asarray(far), 2 * (np.log(2) - 30 - np.log1p(np.exp(-60))), rtol=1e-6)


def test_sample_tanh_gaussian_shapes_and_log_prob():
    """Samples lie in (−1, 1) with shape [B, A]; the returned log-prob matches tanh_gaussian_log_prob of u."""
    mean, log_std = jnp.zeros((5, ACT)), jnp.full((5, ACT), -1.0)
    action, log_prob = networks.sample_tanh_gaussian(jax.random.key(0), mean, log_std)
    chex.assert_shape(action, (5, ACT))
    chex.assert_shape(log_prob, (5,))
    assert bool(jnp.all(jnp.abs(action) < 1))
    u = mean + jnp.exp(log_std) * jax.random.normal(jax.random.key(0), mean.shape)
    np.testing.assert_allclose(log_prob, networks.tanh_gaussian_log_prob(u, mean, log_std), rtol=1e-6)


def test_polyak_and_fused_update_moves_targets_by_tau(small_state, fused_update):
    """polyak mixes τ of online into target; after `update` the targets equal τ·new + (1−τ)·old targets."""
    out = polyak({"w": jnp.zeros(3)}, {"w": jnp.ones(3)}, tau=0.1)
    np.testing.assert_allclose(out["w"], 0.1)
    state = jax.tree_util.tree_map(jnp.copy, small_state)  # the update donates (invalidates) its input
    old_target = jax.tree_util.tree_map(np.asarray, state.critic.target_params)
    new, _ = fused_update(state, _batch(jax.random.key(1)), jax.random.key(2))
    expected = jax.tree_util.tree_map(lambda t, p: 0.75 * t + 0.25 * p, old_target, new.critic.params)
    chex.assert_trees_all_close(new.critic.target_params, expected, rtol=1e-5, atol=1e-7)
    assert int(new.step) == 1


@pytest.mark.parametrize("log_prob, direction", [(5.0, 1.0), (-5.0, -1.0)])
def test_alpha_step_direction(small_state, log_prob, direction):
    """α rises when the entropy (−log π) is below the target −|A|, and falls when it is above."""
    alpha = small_state.alpha
    step = jax.jit(lambda a, lp: sac.alpha_step(a, log_prob=lp, target_entropy=-float(ACT)))
    new, metrics = step(alpha, jnp.full((4,), log_prob))
    change = float(new.params["log_alpha"] - alpha.params["log_alpha"])
    assert np.sign(change) == direction
    np.testing.assert_allclose(float(metrics["alpha"]), 0.5, rtol=1e-6)


def test_fused_update_compiles_once_and_reports_metrics(small_state, fused_update):
    """The jitted, donated update traces once over several calls; metrics are finite scalars."""
    state = jax.tree_util.tree_map(jnp.copy, small_state)
    for i in range(3):
        state, metrics = fused_update(state, _batch(jax.random.key(i)), jax.random.key(100))
    assert int(state.step) == 3
    for name in ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean", "critic_grad_norm",
                 "actor_grad_norm"):
        chex.assert_shape(metrics[name], ())
        assert np.isfinite(float(metrics[name])), name


# ----------------------------------------------------------------------------------------------- learning

def test_sac_learns_point_mass():
    """SAC on the 10-step 1-D point mass of tests/lib/rl_point_mass.py gets within 0.35 of the optimal return
    (≈ −0.64; the untrained actor ≈ −4.5) in 600 updates of B = 128."""
    key = jax.random.key(0)
    state = jax.jit(lambda k: sac.init(k, obs_dim=1, action_dim=1, hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3,
                                       alpha_lr=1e-3, init_alpha=0.1))(key)
    state, metrics = point_mass.train(
        state, key=key, act=lambda s, x, k: sac.act(s.actor.apply_fn, s.actor.params, x, k),
        update=lambda s, batch, k: sac.update(s, batch, k, gamma=0.9))
    eval_key = jax.random.key(1)
    ours = point_mass.episode_return(lambda x: sac.act(state.actor.apply_fn, state.actor.params, x, eval_key,
                                                       deterministic=True), eval_key)
    optimal = point_mass.optimal_return(eval_key)
    assert np.isfinite(float(metrics["critic_loss"]))
    assert ours >= optimal - 0.35, (ours, optimal)
