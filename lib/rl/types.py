"""The transition batch shared by the losses, the JAX ring buffer and the shared-memory ring.

numpy-only on purpose: sampler processes import it before (or without) JAX.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Transition(NamedTuple):
    """One batch of transitions; the leading `[batch]` axis is absent for a single example.

    obs `[batch, obs_dim]`, action `[batch, action_dim]` (in [-1, 1]), reward `[batch]`,
    done `[batch]` (1.0 where the episode *terminated*; 0.0 on a time-limit truncation so the
    target still bootstraps), next_obs `[batch, obs_dim]`.
    """

    obs: Any
    action: Any
    reward: Any
    done: Any
    next_obs: Any


def row_width(*, obs_dim: int, action_dim: int) -> int:
    """Floats in one flat row [obs, action, reward, done, next_obs]: 2·obs_dim + action_dim + 2."""
    return 2 * obs_dim + action_dim + 2


class SharedSegment:
    """The owner/attach discipline of one `multiprocessing.shared_memory` block, shared by the replay ring and the
    parameter broadcast: `close()` unmaps this process's view, `unlink()` (owner only) removes the block from
    /dev/shm, and a `with` block does both, so nothing leaks even when the body raises. Subclasses set `_shm` and
    `owner` and drop their numpy views in `_drop_views` (a mapping refuses to close while views export it)."""

    _shm: Any
    owner: bool

    def _drop_views(self) -> None:
        pass

    def close(self) -> None:
        """Unmaps this process's view (idempotent)."""
        self._drop_views()
        self._shm.close()

    def unlink(self) -> None:
        """Removes the segment from /dev/shm (owner only; idempotent). Mapped views stay valid until closed."""
        if self.owner:
            self.owner = False
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.unlink()
        finally:
            self.close()
