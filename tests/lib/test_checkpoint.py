"""Tests for lib/checkpoint.py."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lib.checkpoint import Checkpointer
from lib.metrics import DamagedStateError


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
    with pytest.raises(ValueError, match="does not match") as e:
        ck.restore_latest({"w": jnp.zeros(5)})
    assert str(tmp_path / "ck" / "1") in str(e.value) and not isinstance(e.value, DamagedStateError)
    assert ck.all_steps() == [1]  # a changed config is not damage: nothing is removed
    ck.close()


def test_bad_arguments():
    """save_every and keep must be positive; the message names the argument."""
    with pytest.raises(ValueError, match="save_every=0"):
        Checkpointer("/tmp/unused", save_every=0)


def _damage(step_dir, *, only_arrays: bool):
    """Truncates to half every file orbax wrote for one step (or empties just the OCDBT array files under d/)."""
    for path in step_dir.rglob("*"):
        if not path.is_file():
            continue
        if only_arrays:
            if path.parent.name == "d":
                path.write_bytes(b"")
        else:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("only_arrays", [False, True], ids=["truncated", "arrays_emptied"])
def test_damaged_latest_falls_back_to_newest_intact(tmp_path, capsys, only_arrays):
    """A damaged newest step: restore the one before, one stderr line naming both, and the step is saved again."""
    ck = Checkpointer(tmp_path / "ck", save_every=1, keep=3)
    for s in (1, 2, 3):
        ck.save(s, _state(s))
    ck.close()
    _damage(tmp_path / "ck" / "3", only_arrays=only_arrays)
    ck = Checkpointer(tmp_path / "ck", save_every=1, keep=3)
    step, state = ck.restore_latest(_state(0))
    assert step == 2
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 2.0))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{tmp_path / 'ck' / '3'}" in err and "resuming from step 2" in err, err
    assert ck.all_steps() == [1, 2]  # the damaged step is gone, so the resumed run can save it again
    assert ck.maybe_save(3, _state(3))
    ck.close()
    ck = Checkpointer(tmp_path / "ck", save_every=1, keep=3)
    step, state = ck.restore_latest(_state(0))
    ck.close()
    assert step == 3 and float(state["params"]["w"][0, 0]) == 3.0
    assert capsys.readouterr().err == ""


def test_every_checkpoint_damaged_raises_naming_directory(tmp_path):
    """With no intact step left, DamagedStateError names the directory and every step; nothing is deleted."""
    ck = Checkpointer(tmp_path / "ck", save_every=1, keep=2)
    ck.save(1, _state(1))
    ck.save(2, _state(2))
    ck.close()
    for s in ("1", "2"):
        _damage(tmp_path / "ck" / s, only_arrays=False)
    ck = Checkpointer(tmp_path / "ck", save_every=1, keep=2)
    with pytest.raises(DamagedStateError, match=f"every checkpoint in {tmp_path / 'ck'} is damaged") as e:
        ck.restore_latest(_state(0))
    assert "step 2:" in str(e.value) and "step 1:" in str(e.value)
    assert ck.all_steps() == [1, 2]
    ck.close()
