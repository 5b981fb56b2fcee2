"""sac.update_stale and its two-device form (projects/spreeze/split.py): same numbers, each side one step stale."""

import jax
import jax.numpy as jnp
import numpy as np

from lib.rl import sac
from lib.rl.types import Transition
from projects.spreeze import split


def _batch(key, b=32, obs=5, act=2):
    k = jax.random.split(key, 4)
    return Transition(obs=jax.random.normal(k[0], (b, obs)), action=jax.random.uniform(k[1], (b, act), minval=-1),
                      reward=jax.random.normal(k[2], (b,)), done=jnp.zeros((b,)),
                      next_obs=jax.random.normal(k[3], (b, obs)))


def test_split_on_two_devices_equals_update_stale_and_differs_from_fused():
    """Three steps on devices 0 (actor) and 1 (critic) match `update_stale` on one device to 1e-5; the actor of
    `update` (which sees the new critic) differs, so the test can tell the two apart."""
    devs = jax.devices()
    assert len(devs) >= 2
    state = sac.init(jax.random.key(0), obs_dim=5, action_dim=2, hidden=(16, 16))
    key = jax.random.key(1)
    stale = fused = state
    placed = split.place(state, actor_device=devs[0], critic_device=devs[1])
    step = split.make_split_update(actor_device=devs[0], critic_device=devs[1])
    upd_stale, upd = jax.jit(sac.update_stale), jax.jit(sac.update)
    for i in range(3):
        batch = _batch(jax.random.fold_in(key, i))
        stale, m_stale = upd_stale(stale, batch, key)
        fused, _ = upd(fused, batch, key)
        placed, m_split = step(placed, batch, key)
    assert jax.tree_util.tree_leaves(placed.critic.params)[0].devices() == {devs[1]}
    assert jax.tree_util.tree_leaves(placed.actor.params)[0].devices() == {devs[0]}
    for a, b in zip(jax.tree_util.tree_leaves((stale.actor.params, stale.critic.params, stale.alpha.params)),
                    jax.tree_util.tree_leaves((placed.actor.params, placed.critic.params, placed.alpha.params)),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    np.testing.assert_allclose(float(m_stale["actor_loss"]), float(m_split["actor_loss"]), atol=1e-5)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(stale.actor.params),
                                                             jax.tree_util.tree_leaves(fused.actor.params),
                                                             strict=True))
    assert diff > 1e-6
