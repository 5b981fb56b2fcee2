"""Tests for lib/rl/replay.py: the in-process JAX ring buffer (wrap-around, sampling only filled rows, jit)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.rl import replay
from lib.rl.types import Transition


def _rows(values):
    """A Transition batch whose every field carries the row's value, so a sampled row names its origin."""
    v = jnp.asarray(values, jnp.float32)
    return Transition(obs=jnp.stack([v, v], -1), action=v[:, None], reward=v, done=jnp.zeros_like(v),
                      next_obs=jnp.stack([v, v], -1))


EXAMPLE = Transition(obs=jnp.zeros(2), action=jnp.zeros(1), reward=jnp.zeros(()), done=jnp.zeros(()),
                     next_obs=jnp.zeros(2))


def test_init_shapes():
    """Every leaf gets a leading [capacity] axis; the ring starts empty."""
    state = replay.init(capacity=7, example=EXAMPLE)
    chex.assert_shape(state.data.obs, (7, 2))
    chex.assert_shape(state.data.reward, (7,))
    assert state.capacity == 7 and int(state.size) == 0 and not bool(replay.can_sample(state))


def test_ring_wraps_and_overwrites_oldest():
    """Capacity 5: adding 3 then 4 rows leaves [5, 6, 2, 3, 4], index 2, size 5."""
    add = jax.jit(replay.add, donate_argnums=0)
    state = add(replay.init(capacity=5, example=EXAMPLE), _rows([0, 1, 2]))
    assert (int(state.index), int(state.size)) == (3, 3)
    state = add(state, _rows([3, 4, 5, 6]))
    np.testing.assert_array_equal(state.data.reward, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(state.data.obs[:, 1], [5, 6, 2, 3, 4])
    assert (int(state.index), int(state.size)) == (2, 5)
    with pytest.raises(ValueError, match="larger than the ring's capacity"):
        replay.add(state, _rows(np.arange(6)))


def test_sample_only_filled_rows_uniformly():
    """With 7 of 100 rows filled (values 1..7, unfilled rows are 0) samples hit only 1..7, each ≈ 1/7."""
    state = replay.add(replay.init(capacity=100, example=EXAMPLE), _rows(np.arange(1, 8)))
    batch = jax.jit(replay.sample, static_argnames="batch_size")(state, jax.random.key(0), batch_size=7000)
    values = np.asarray(batch.reward)
    assert set(np.unique(values)) == set(range(1, 8))
    counts = np.bincount(values.astype(int), minlength=8)[1:]
    assert counts.min() > 850 and counts.max() < 1150  # 1000 ± ~4.5σ
    np.testing.assert_array_equal(batch.obs[:, 0], values)  # fields of one row stay together


def test_add_and_sample_inside_scan():
    """add/sample compose under lax.scan (the fused path): after 13 adds of 3 rows into capacity 8 the ring
    holds exactly the last 8 values, and every sample comes from them."""

    def body(state, i):
        state = replay.add(state, _rows(3 * i + jnp.arange(3)))
        return state, replay.sample(state, jax.random.fold_in(jax.random.key(0), i), batch_size=16).reward

    state, samples = jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(13)))(replay.init(capacity=8, example=EXAMPLE))
    assert sorted(np.asarray(state.data.reward).tolist()) == list(range(31, 39))
    # the sample at scan step i may only contain values written so far that are still in the ring
    for i, row in enumerate(np.asarray(samples)):
        newest = 3 * i + 2
        assert row.max() <= newest and row.min() >= max(0, newest - 7), (i, row)
