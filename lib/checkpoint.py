"""One wrapper over orbax-checkpoint: save every n steps, keep the last k, restore the latest.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact; `restore_latest` only sees finished ones.

    ckpt = Checkpointer(f"{workdir}/checkpoints", save_every=500, keep=2)
    restored = ckpt.restore_latest(abstract_state)   # None when there is nothing to resume
    ...
    ckpt.maybe_save(step, state)                      # saves when step % save_every == 0
    ckpt.close()                                      # waits for pending writes
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def abstract_like(tree: Any) -> Any:
    """The `jax.ShapeDtypeStruct` tree (with shardings) to restore a checkpoint against."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """Saves a pytree every `save_every` steps, keeps the newest `keep`, restores the latest."""

    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int = 2,
                 async_save: bool = False):
        if save_every < 1:
            raise ValueError(f"save_every={save_every!r} is invalid: expected an integer >= 1")
        if keep < 1:
            raise ValueError(f"keep={keep!r} is invalid: expected an integer >= 1")
        self.directory = os.path.abspath(os.fspath(directory))
        self.save_every = int(save_every)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, *, force: bool = True) -> bool:
        """Saves `state` at `step` now (force=True) or only when the manager's policy says so."""
        return self._manager.save(int(step), args=ocp.args.StandardSave(state), force=force)

    def maybe_save(self, step: int, state: Any) -> bool:
        """Saves when `step` is a multiple of `save_every`."""
        if int(step) % self.save_every != 0 or int(step) in self.all_steps():
            return False
        return self.save(step, state)

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any] | None:
        """Returns `(step, state)` of the newest finished checkpoint, or None if there is none.

        `abstract_state` is a tree of arrays or `jax.ShapeDtypeStruct`s with the expected shapes;
        a checkpoint whose shapes disagree raises a ValueError naming the directory."""
        step = self._manager.latest_step()
        if step is None:
            return None
        target = abstract_like(abstract_state)
        try:
            state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint {self.directory}/{step} does not match the current state's structure "
                f"or shapes (was the config changed?). Use a fresh workdir. Details: {e}") from e
        return int(step), state

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
