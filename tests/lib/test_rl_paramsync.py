"""Tests for lib/rl/paramsync.py: numpy flattening in jax's order, the seqlock under a hammering reader
process (no torn reads, monotone versions; spec §5.6 B8), policy lag, and /dev/shm hygiene.

No JAX at the top of this module: the spawned reader imports it to find its entry point (spec pitfall 1).
"""

import multiprocessing
import os
import time

import numpy as np
import pytest

from lib.rl.paramsync import ParamSync, flatten, policy_lag, spec_size, unflatten

SPAWN = multiprocessing.get_context("spawn")


def _tree():
    return {"params": {"b_dense": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3)},
                       "a_head": [np.float32(7.0), (np.zeros((2, 2), np.float32), np.arange(2, dtype=np.int32))]}}


def test_flatten_matches_ravel_pytree_and_round_trips():
    """flatten gives jax.flatten_util.ravel_pytree's vector; unflatten restores shapes, dtypes and values."""
    import jax  # only here: the spawned reader of this module must not import JAX
    from jax.flatten_util import ravel_pytree

    tree = _tree()
    vec, spec = flatten(tree)
    ref, _ = ravel_pytree(tree)
    np.testing.assert_array_equal(vec, np.asarray(ref, np.float32))
    assert spec_size(spec) == vec.size == 6 + 3 + 1 + 4 + 2
    back = unflatten(vec, spec)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(tree)
    for got, want in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(tree), strict=True):
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="does not match"):
        unflatten(vec[:-1], spec)


def test_publish_read_versions_and_errors():
    """read returns the example's tree and its version; read_if_newer is None until a new publish."""
    with ParamSync.create(example=_tree()) as sync:
        assert sync.version == -1
        with pytest.raises(TimeoutError):
            sync.read(timeout=0.05)  # nothing published yet
        tree = _tree()
        assert sync.publish(tree) == 0 and sync.publishes == 1
        params, version = sync.read()
        np.testing.assert_array_equal(params["params"]["b_dense"]["kernel"], tree["params"]["b_dense"]["kernel"])
        assert version == 0 and sync.read_if_newer(0) is None
        tree["params"]["b_dense"]["bias"] = np.full(3, 5.0)
        assert sync.publish(tree, version=10) == 10
        fresh = sync.read_if_newer(0)
        assert fresh is not None and fresh[1] == 10
        np.testing.assert_array_equal(fresh[0]["params"]["b_dense"]["bias"], 5.0)
        with pytest.raises(ValueError, match="versions must increase"):
            sync.publish(tree, version=10)
        with pytest.raises(ValueError, match="differ from the example"):
            sync.publish({"params": {}})
        with pytest.raises(ValueError, match="does not fit"):
            sync.publish_flat(np.zeros(3))
    assert policy_lag(learner_version=120, sampler_version=100) == 20


def _hammer(sync: ParamSync, ready, stop, results) -> None:
    """Child entry point: reads as fast as it can until `stop`; counts torn reads and version regressions."""
    try:
        reads = torn = regressions = 0
        seen = set()
        last = -1
        out = np.empty(sync.size, np.float32)
        while not stop.is_set():
            vec, version = sync.read_flat(out=out, timeout=60)
            reads += 1
            ready.set()
            # the writer publishes version v as a vector filled with v: any other value is a torn read
            if vec[0] != version or vec[-1] != version or not np.all(vec == vec[0]):
                torn += 1
            if version < last:
                regressions += 1
            last = version
            seen.add(version)
        results.put({"reads": reads, "torn": torn, "regressions": regressions, "distinct": len(seen), "last": last})
    finally:
        sync.close()


@pytest.mark.timeout(120)
def test_seqlock_has_no_torn_reads_under_a_hammering_reader():
    """A 4 MB vector published in a loop for 1.5 s while a spawned process reads nonstop: every read is one
    whole publish (constant-valued with its version) and versions never go backwards.

    The check has teeth: the same reader copying without the seqlock got ~60 % torn reads here.
    """
    size = 1 << 20  # 4 MB: a copy takes ~0.5 ms, so reads overlap writes all the time
    with ParamSync.create(size=size) as sync:
        name = sync.name
        sync.publish_flat(np.zeros(size, np.float32), version=0)
        ready, stop, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        reader = SPAWN.Process(target=_hammer, args=(sync, ready, stop, results))
        reader.start()
        try:
            assert ready.wait(60), "the reader process did not start"
            version, t0 = 0, time.monotonic()
            buf = np.empty(size, np.float32)
            while time.monotonic() - t0 < 1.5 or (version < 200 and time.monotonic() - t0 < 30):
                version += 1
                buf.fill(version)  # float32 holds integers exactly below 2**24
                sync.publish_flat(buf, version=version)
        finally:
            stop.set()
            stats = results.get(timeout=60)
            reader.join(30)
        assert reader.exitcode == 0
        assert stats["torn"] == 0 and stats["regressions"] == 0, stats
        assert stats["reads"] > 50 and stats["distinct"] > 5, stats  # reads really interleaved with publishes
        assert stats["last"] <= version
    assert not os.path.exists(os.path.join("/dev/shm", name.lstrip("/"))), "parameter segment leaked"
