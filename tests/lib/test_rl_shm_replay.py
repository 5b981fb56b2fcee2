"""Tests for lib/rl/shm_replay.py: two spawned writers lose and duplicate no rows, readers never see torn or
unwritten rows, and nothing is left in /dev/shm (spec §5.6 B8, pitfalls 1 and 9).

This module imports no JAX at the top, so the spawned writer processes (which import it to find their
entry point) start in well under a second and never initialise JAX (pitfall 1).
"""

import gc
import multiprocessing
import os
import time

import numpy as np
import pytest

from lib.rl.shm_replay import SharedReplay
from lib.rl.types import Transition

SPAWN = multiprocessing.get_context("spawn")


def _code(writer: int, seq: np.ndarray) -> np.ndarray:
    """A float32-exact code naming (writer, row) uniquely: writer·10⁶ + seq + 1 (never 0, the unwritten value)."""
    return (writer * 1_000_000 + seq + 1).astype(np.float32)


def _writer(ring: SharedReplay, writer: int, n_batches: int, rows_per_batch: int, barrier, stop) -> None:
    """Child entry point: after the barrier, writes constant-valued batches until `n_batches` or `stop`."""
    try:
        barrier.wait(60)
        for b in range(n_batches):
            if stop.is_set():
                break
            codes = _code(writer, np.arange(b * rows_per_batch, (b + 1) * rows_per_batch))
            ring.add_rows(np.repeat(codes[:, None], ring.width, axis=1))
    finally:
        ring.close()


def _run_writers(ring, *, n_batches, rows_per_batch, rng, read_seconds=None):
    """Runs 2 spawned writers while this process samples; returns the sampled rows (checked by the caller).

    A barrier releases the writers and the reader together (spawning takes ~1 s, writing far less). With
    `read_seconds` the reader samples for that long and then stops the writers, so reads and writes overlap
    for the whole window: with the per-row stamps disabled, this setup returned ~50 torn rows per second.
    """
    barrier, stop = SPAWN.Barrier(3), SPAWN.Event()
    procs = [SPAWN.Process(target=_writer, args=(ring, w, n_batches, rows_per_batch, barrier, stop))
             for w in (1, 2)]
    for p in procs:
        p.start()
    sampled = []
    try:
        barrier.wait(60)
        t0 = time.monotonic()
        while (any(p.is_alive() for p in procs) if read_seconds is None else time.monotonic() - t0 < read_seconds):
            if ring.count > 0:
                try:
                    sampled.append(ring.sample_rows(rng, 64)[0])
                except RuntimeError:  # every reserved row still being written: try again
                    pass
    finally:
        stop.set()
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    del procs  # the Process objects hold the lock in their args; drop them so it can be finalised
    return np.concatenate(sampled) if sampled else np.zeros((0, ring.width), np.float32)


def _shm_path(name: str) -> str:
    return os.path.join("/dev/shm", name.lstrip("/"))


@pytest.mark.timeout(120)
def test_two_writers_lose_and_duplicate_no_rows():
    """2 spawned writers × 20,000 one-row adds: the counter reaches 40,000 and every (writer, row) is stored once.

    One-row adds maximise contention on the counter: with the reservation lock replaced by a no-op, this
    setup lost ~1,300 of the 40,000 rows here (two writers reserving the same range).
    """
    rng = np.random.default_rng(0)
    n_batches, rows_per_batch = 20_000, 1
    with SharedReplay.create(capacity=65_536, obs_dim=8, action_dim=2) as ring:
        name = ring.name
        sem = _shm_path("sem." + ring._lock._semlock.name.lstrip("/"))
        sampled = _run_writers(ring, n_batches=n_batches, rows_per_batch=rows_per_batch, rng=rng)
        total = 2 * n_batches * rows_per_batch
        assert ring.count == total
        rows, ids = ring.snapshot()
        np.testing.assert_array_equal(ids, np.arange(total))  # every reserved number completed, once
        assert np.all(rows == rows[:, :1])  # no torn rows
        expected = np.concatenate([_code(w, np.arange(n_batches * rows_per_batch)) for w in (1, 2)])
        np.testing.assert_array_equal(np.sort(rows[:, 0]), np.sort(expected))  # nothing lost, nothing duplicated
        # rows sampled while the writers ran: complete (non-zero) and untorn
        assert np.all(sampled == sampled[:, :1]) and np.all(sampled[:, 0] > 0)
    gc.collect()
    assert not os.path.exists(_shm_path(name)), "replay segment leaked in /dev/shm"
    assert not os.path.exists(sem), "writer lock semaphore leaked in /dev/shm"


@pytest.mark.timeout(120)
def test_wrapping_ring_under_concurrent_reads_returns_only_whole_rows():
    """A 64-row ring wrapped thousands of times by 2 writers during 1 s of sampling: every sampled row is
    complete, untorn (constant-valued) and one that was really written."""
    rng = np.random.default_rng(1)
    n_batches, rows_per_batch = 10**6, 8
    with SharedReplay.create(capacity=64, obs_dim=256, action_dim=4) as ring:
        name = ring.name
        sampled = _run_writers(ring, n_batches=n_batches, rows_per_batch=rows_per_batch, rng=rng, read_seconds=1.0)
        assert ring.count > 100 * ring.capacity, ring.count  # really wrapped, many times
        assert sampled.shape[0] > 1000
        assert np.all(sampled == sampled[:, :1]), "a torn row was returned"
        codes = sampled[:, 0].astype(np.int64) - 1
        writers, seqs = codes // 1_000_000, codes % 1_000_000
        assert set(np.unique(writers)) <= {1, 2} and seqs.max() < n_batches * rows_per_batch
        rows, ids = ring.snapshot()  # after the writers: the last 64 rows, all complete
        np.testing.assert_array_equal(ids, np.arange(ring.count - 64, ring.count))
    assert not os.path.exists(_shm_path(name))


def test_pack_unpack_sample_and_errors():
    """Transitions round-trip through rows; sampling an empty ring and oversize adds fail with clear messages."""
    with SharedReplay.create(capacity=10, obs_dim=3, action_dim=2) as ring:
        assert ring.width == 2 * 3 + 2 + 2
        with pytest.raises(RuntimeError, match="empty"):
            ring.sample(np.random.default_rng(0), 4)
        batch = Transition(obs=np.arange(12.0).reshape(4, 3), action=-np.arange(8.0).reshape(4, 2),
                           reward=np.arange(4.0), done=np.array([0, 1, 0, 1.0]),
                           next_obs=100 + np.arange(12.0).reshape(4, 3))
        assert ring.add(batch) == 0 and ring.add(batch) == 4 and ring.size == 8
        back = ring.unpack(ring.pack(batch))
        for got, want in zip(back, batch, strict=True):
            np.testing.assert_array_equal(got, np.asarray(want, np.float32).reshape(got.shape))
        sample = ring.sample(np.random.default_rng(0), 32)
        assert sample.obs.shape == (32, 3) and sample.reward.shape == (32,)
        np.testing.assert_array_equal(sample.next_obs, sample.obs + 100)  # fields stay row-aligned
        with pytest.raises(ValueError, match="capacity"):
            ring.add_rows(np.zeros((11, ring.width)))
        with pytest.raises(ValueError, match="expected"):
            ring.add_rows(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="capacity=0"):
        SharedReplay.create(capacity=0, obs_dim=1, action_dim=1)


def test_context_manager_unlinks_on_error():
    """An exception inside the `with` block still closes and unlinks the segment."""
    with pytest.raises(KeyError):
        with SharedReplay.create(capacity=4, obs_dim=1, action_dim=1) as ring:
            name = ring.name
            assert os.path.exists(_shm_path(name))
            raise KeyError("boom")
    assert not os.path.exists(_shm_path(name))
