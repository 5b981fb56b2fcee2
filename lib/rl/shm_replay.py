"""A replay ring in one `multiprocessing.shared_memory` block, for sampler and learner processes (numpy only).

Layout of the block (spec §5.2, with per-row stamps added so that readers never see half-written rows):

    header  int64[8]             [0] rows reserved so far (the write counter), [1] capacity, [2] obs_dim,
                                 [3] action_dim, [4] row width
    stamps  int64[capacity]      0: never written; −(g+1): row g being written; g+1: row g complete
    rows    float32[capacity, W]  [obs, action, reward, done, next_obs], W = 2·obs_dim + action_dim + 2

Writers reserve a range of global row numbers g (the counter) and copy their rows to g mod capacity
while holding one lock; readers take no lock. Each row is stamped −(g+1) before and g+1 after its data
is written: a reader draws indices below min(count, capacity), reads stamp, row, stamp again, and keeps
the row only if both stamps are equal and positive; others are redrawn. This per-row seqlock relies on
stores becoming visible in program order and loads not passing loads, which x86-64 (TSO) guarantees for
these plain numpy copies; a weakly ordered CPU (ARM) would need fences that numpy cannot express.

Why the copy is inside the lock (the spec sketched reserve-then-copy-outside): a writer preempted between
its reservation and its copy can be lapped by the others, and two writers then copy into the same slots at
once, which can leave a torn row with a valid stamp. On this 2-core box a 64-row ring showed the lapping
within seconds. Holding the lock for the copy is cheap: for a HalfCheetah-sized batch (16 rows × 42 floats)
the stamped copy takes ~2 µs of the ~8 µs a whole `add_rows` takes (measured here), while one env step
costs ~100 µs.

Nothing is pickled in the hot path: the handle itself is pickled once, when it is passed to a spawned
process, and re-attaches there by name. Hygiene (spec pitfall 9): the creating process owns the segment;
`with SharedReplay.create(...) as ring:` closes and unlinks it on exit, attached copies only close. Attach
from processes started with the `spawn` method by the owner (they share its resource tracker, which also
unlinks the segment should the owner crash); an unrelated process's tracker would unlink it at its exit.
"""

from __future__ import annotations

import multiprocessing
import secrets
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from lib.rl.types import SharedSegment, Transition, row_width

_HEADER_SLOTS = 8
_COUNT, _CAPACITY, _OBS_DIM, _ACTION_DIM, _WIDTH = range(5)


class SharedReplay(SharedSegment):
    """Shared-memory transition ring; create with `SharedReplay.create`, pass to `spawn` children as an argument."""

    def __init__(self, shm: shared_memory.SharedMemory, *, capacity: int, obs_dim: int, action_dim: int,
                 lock: Any, owner: bool):
        self._shm = shm
        self._lock = lock
        self.owner = owner
        self.name = shm.name
        self.capacity, self.obs_dim, self.action_dim = capacity, obs_dim, action_dim
        self.width = row_width(obs_dim=obs_dim, action_dim=action_dim)
        buf = shm.buf
        self._header = np.ndarray((_HEADER_SLOTS,), np.int64, buf, 0)
        self._stamps = np.ndarray((capacity,), np.int64, buf, 8 * _HEADER_SLOTS)
        self._rows = np.ndarray((capacity, self.width), np.float32, buf, 8 * (_HEADER_SLOTS + capacity))

    # ------------------------------------------------------------------------------------------- lifetime

    @classmethod
    def create(cls, *, capacity: int, obs_dim: int, action_dim: int, name: str | None = None) -> SharedReplay:
        """A new zeroed ring of `capacity` rows, owned (and later unlinked) by the calling process."""
        for field, value, low in (("capacity", capacity, 1), ("obs_dim", obs_dim, 1), ("action_dim", action_dim, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{field}={value!r} is invalid: expected an integer >= {low}")
        width = row_width(obs_dim=obs_dim, action_dim=action_dim)
        nbytes = 8 * (_HEADER_SLOTS + capacity) + 4 * capacity * width
        shm = shared_memory.SharedMemory(name=name or f"reprojax_replay_{secrets.token_hex(6)}", create=True,
                                         size=nbytes)
        # a spawn-context lock: a fork-context semaphore is unlinked at birth and cannot reach spawn children
        ring = cls(shm, capacity=capacity, obs_dim=obs_dim, action_dim=action_dim,
                   lock=multiprocessing.get_context("spawn").Lock(), owner=True)
        ring._stamps[:] = 0
        ring._header[:] = 0
        ring._header[[_CAPACITY, _OBS_DIM, _ACTION_DIM, _WIDTH]] = capacity, obs_dim, action_dim, ring.width
        return ring

    def __getstate__(self) -> dict[str, Any]:
        # only the name and the lock travel; the child maps the same pages (see __setstate__)
        return {"name": self.name, "capacity": self.capacity, "obs_dim": self.obs_dim,
                "action_dim": self.action_dim, "lock": self._lock}

    def __setstate__(self, state: dict[str, Any]) -> None:
        shm = shared_memory.SharedMemory(name=state["name"], create=False)
        self.__init__(shm, capacity=state["capacity"], obs_dim=state["obs_dim"], action_dim=state["action_dim"],
                      lock=state["lock"], owner=False)

    def _drop_views(self) -> None:
        self._header = self._stamps = self._rows = None

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._lock = None  # lets the lock's named semaphore be finalised (unlinked) with it

    # ------------------------------------------------------------------------------------------- writing

    @property
    def count(self) -> int:
        """Rows added so far by all writers (monotone; includes a batch whose copy is in progress)."""
        return int(self._header[_COUNT])

    @property
    def size(self) -> int:
        """min(count, capacity): the range readers draw indices from."""
        return min(self.count, self.capacity)

    def pack(self, batch: Transition) -> np.ndarray:
        """Flat float32 rows `[n, W]` from a `Transition` of obs `[n, obs_dim]`, action `[n, A]`, reward/done `[n]`."""
        obs = np.asarray(batch.obs, np.float32).reshape(-1, self.obs_dim)
        n = obs.shape[0]
        return np.concatenate([obs, np.asarray(batch.action, np.float32).reshape(n, self.action_dim),
                               np.asarray(batch.reward, np.float32).reshape(n, 1),
                               np.asarray(batch.done, np.float32).reshape(n, 1),
                               np.asarray(batch.next_obs, np.float32).reshape(n, self.obs_dim)], axis=1)

    def unpack(self, rows: np.ndarray) -> Transition:
        """The inverse of `pack`: a `Transition` of `[n, ...]` float32 arrays (views into `rows`)."""
        o, a = self.obs_dim, self.action_dim
        return Transition(obs=rows[:, :o], action=rows[:, o:o + a], reward=rows[:, o + a], done=rows[:, o + a + 1],
                          next_obs=rows[:, o + a + 2:])

    def add(self, batch: Transition) -> int:
        """Appends the `n` transitions of `batch`; returns the global number of its first row."""
        return self.add_rows(self.pack(batch))

    def add_rows(self, rows: np.ndarray) -> int:
        """Appends pre-packed rows `[n, W]`; returns the global row number g of the first (rows are g … g+n−1)."""
        rows = np.asarray(rows, np.float32)
        n = rows.shape[0]
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"rows of shape {rows.shape} do not fit this ring: expected [n, {self.width}]")
        if n > self.capacity:
            raise ValueError(f"{n} rows do not fit a ring of capacity {self.capacity}")
        with self._lock:  # reserve and copy: no two writers ever touch one slot at once (module docstring)
            start = int(self._header[_COUNT])
            self._header[_COUNT] = start + n
            ids = np.arange(start, start + n, dtype=np.int64)
            slots = ids % self.capacity
            self._stamps[slots] = -(ids + 1)  # "being written": lock-free readers reject these rows
            self._rows[slots] = rows
            self._stamps[slots] = ids + 1
        return start

    # ------------------------------------------------------------------------------------------- reading

    def sample_rows(self, rng: np.random.Generator, batch_size: int, *,
                    max_rounds: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Uniform rows `[batch_size, W]` (copies) over the completed part, and their global numbers `[batch_size]`.

        Rows that are unwritten or being (over)written while read are redrawn; raises RuntimeError if
        `max_rounds` redraws still leave some (e.g. nothing has been completed yet).
        """
        size = self.size
        if size == 0:
            raise RuntimeError("cannot sample from an empty replay ring (no rows written yet)")
        rows = np.empty((batch_size, self.width), np.float32)
        ids = np.empty((batch_size,), np.int64)
        todo = np.arange(batch_size)
        for _ in range(max_rounds):
            idx = rng.integers(0, size, size=todo.size)
            before = self._stamps[idx]
            got = self._rows[idx]
            after = self._stamps[idx]
            ok = (before > 0) & (before == after)
            rows[todo[ok]] = got[ok]
            ids[todo[ok]] = before[ok] - 1
            todo = todo[~ok]
            if todo.size == 0:
                return rows, ids
            size = self.size  # writers may have completed more rows meanwhile
        raise RuntimeError(f"{todo.size} of {batch_size} rows were still incomplete after {max_rounds} redraws")

    def sample(self, rng: np.random.Generator, batch_size: int) -> Transition:
        """A `Transition` batch of `[batch_size, ...]` float32 arrays drawn uniformly from the completed rows."""
        rows, _ = self.sample_rows(rng, batch_size)
        return self.unpack(rows)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Every completed row `[m, W]` and its global number `[m]`, sorted by number (tests, checkpoints)."""
        stamps = self._stamps.copy()
        rows = self._rows.copy()
        ok = (stamps > 0) & (stamps == self._stamps)
        order = np.argsort(stamps[ok])
        return rows[ok][order], stamps[ok][order] - 1
