"""Tests for lib/checkpoint.py."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lib.checkpoint import Checkpointer


def _state(v):
    params = {"w": jnp.full((3, 2), v), "b": jnp.arange(2.0) + v}
    return {"step": jnp.array(int(v), jnp.int32), "params": params, "opt": optax.adam(1e-3).init(params)}


def test_save_every_keep_last_and_restore_latest(tmp_path):
    """Saves at multiples of save_every, keeps the newest `keep`, restores the newest exactly."""
    ck = Checkpointer(tmp_path / "ck", save_every=2, keep=2)
    assert ck.restore_latest(_state(0)) is None
    for s in range(1, 8):
        ck.maybe_save(s, _state(s))
    ck.wait()
    assert ck.all_steps() == [4, 6]
    step, state = ck.restore_latest(_state(0))
    ck.close()
    assert step == 6
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 6.0))
    assert isinstance(state["opt"][0], optax.ScaleByAdamState)


def test_restore_with_wrong_shapes_names_directory(tmp_path):
    """Restoring against a state of other shapes fails with a message naming the checkpoint."""
    ck = Checkpointer(tmp_path / "ck", save_every=1)
    ck.save(1, {"w": jnp.zeros(3)})
    ck.wait()
    with pytest.raises(ValueError, match="does not match"):
        ck.restore_latest({"w": jnp.zeros(5)})
    ck.close()


def test_bad_arguments():
    """save_every and keep must be positive; the message names the argument."""
    with pytest.raises(ValueError, match="save_every=0"):
        Checkpointer("/tmp/unused", save_every=0)
