"""One wrapper over orbax-checkpoint: save every n steps, keep the last k, restore the newest intact one.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact; `restore_latest` only sees finished ones.
A finished step directory `<directory>/<step>/` holds `_CHECKPOINT_METADATA` and `commit_success.txt`
beside `default/`, the pytree: `_METADATA` (the tree structure), `_sharding`, `array_metadatas/`,
`manifest.ocdbt` and the array bytes in OCDBT files under `d/` and `ocdbt.process_0/d/`. A step whose
files were later truncated or emptied (a full disk, a bad copy) is damaged: `restore_latest` then
falls back to the newest intact step, says so in one line on stderr, and removes the damaged newer ones
(the resumed run writes those steps again).

    ckpt = Checkpointer(f"{workdir}/checkpoints", save_every=500, keep=2)
    restored = ckpt.restore_latest(abstract_state)   # None when there is nothing to resume
    ...
    ckpt.maybe_save(step, state)                      # saves when step % save_every == 0
    ckpt.close()                                      # waits for pending writes
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from lib.metrics import CheckpointMismatchError, DamagedStateError


def abstract_like(tree: Any) -> Any:
    """The `jax.ShapeDtypeStruct` tree (with shardings) to restore a checkpoint against."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


@contextlib.contextmanager
def _orbax_quiet():
    """Opening the manager and probing a failed step, orbax logs each damaged step's unreadable or missing metadata
    (`ERROR:absl:Failed to json parse ...`, `WARNING:absl:Metadata file does not exist`); `restore_latest` reports
    the damage itself, in one line, so those lines are held back there."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _drop_abandoned_read_reports() -> None:
    """After one TensorStore read of a damaged checkpoint fails, orbax closes its event loop while the other reads
    are still in flight; each then reports a harmless `RuntimeError: Event loop is closed`, and each abandoned read
    coroutine its own TensorStore error (60 lines of spec), as "unraisable" tracebacks on stderr, some at exit.
    Installed once, after such a failure, this hook drops exactly those two kinds; the damage is reported once."""
    previous = sys.unraisablehook
    if getattr(previous, "_drops_abandoned_read_reports", False):
        return

    def hook(unraisable):
        exc, obj = unraisable.exc_value, unraisable.object
        code = getattr(obj, "cr_code", None)
        if ((isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed")
                or (code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename)):
            return
        previous(unraisable)

    hook._drops_abandoned_read_reports = True
    sys.unraisablehook = hook


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


class Checkpointer:
    """Saves a pytree every `save_every` steps, keeps the newest `keep`, restores the newest intact one."""

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
        with _orbax_quiet():  # the manager reads every step's metadata here; restore_latest reports damage
            # One named item handler up front: without it a failed read of an empty step directory leaves the
            # manager unable to restore any other step ("Must provide `args` of type `Composite`").
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  item_handlers=ocp.StandardCheckpointHandler())

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

    def _damage(self, step: int) -> str | None:
        """Why step `step` cannot be read back at all (reading it without a target), or None if it can."""
        try:
            with _orbax_quiet():
                self._manager.restore(step, args=ocp.args.StandardRestore())
        except Exception as e:  # orbax, TensorStore and json raise many types for unreadable files
            _drop_abandoned_read_reports()
            return _first_line(e)
        return None

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any] | None:
        """Returns `(step, state)` of the newest intact checkpoint, or None if there is none at all.

        `abstract_state` is a tree of arrays or `jax.ShapeDtypeStruct`s with the expected shapes; a checkpoint
        that reads back whole but whose structure or shapes disagree raises a ValueError naming its directory.
        A damaged checkpoint (its files truncated or emptied) is skipped for the next older one, with one
        warning line on stderr naming it and the step resumed from; the damaged newer steps are removed, so the
        resumed run saves them again. When every checkpoint is damaged, raises `DamagedStateError` naming the
        directory."""
        steps = sorted(self.all_steps(), reverse=True)
        if not steps:
            return None
        target = abstract_like(abstract_state)
        damaged: list[tuple[int, str]] = []
        for step in steps:
            try:
                state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
            except Exception as e:  # classified just below: damage, or a changed config
                _drop_abandoned_read_reports()
                reason = self._damage(step)
                if reason is None:
                    raise CheckpointMismatchError(
                        f"checkpoint {self.directory}/{step} does not match the current state's structure or "
                        f"shapes (was the config changed?). Use a fresh workdir. Details: {_first_line(e)}") from e
                damaged.append((step, reason))
                continue
            if damaged:
                for s, _ in damaged:
                    self._manager.delete(s)
                names = ", ".join(f"{self.directory}/{s} ({reason})" for s, reason in damaged)
                which = "it" if len(damaged) == 1 else "them"
                print(f"warning: damaged checkpoint {names}; resuming from step {step} ({self.directory}/{step}) "
                      f"and removing {which}", file=sys.stderr, flush=True)
            return int(step), state
        details = "; ".join(f"step {s}: {reason}" for s, reason in damaged)
        raise DamagedStateError(
            f"every checkpoint in {self.directory} is damaged ({details}); delete that directory to start over")

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
