"""Parameter broadcast from one learner to many sampler processes: a seqlock over shared memory (numpy only).

    sync = ParamSync.create(example=actor_params)           # learner (owner); pass `sync` to spawn children
    sync.publish(actor_params, version=update_count)        # learner, every K updates
    params, version = sync.read()                           # sampler: numpy pytree, never torn
    fresh = sync.read_if_newer(version)                     # None while nothing new was published
    lag = policy_lag(learner_version=update_count, sampler_version=version)

Block layout: int64 header [seq, version, size, …] then float32 data `[size]`, the flattened pytree.
The writer bumps `seq` to odd, copies the data and the version, and bumps `seq` to even again. A reader
copies while `seq` is even and unchanged across the copy, and retries otherwise, so it never returns a
mix of two publishes and never blocks the writer. Like `shm_replay`, this relies on x86-64's in-order
store visibility (TSO) for plain numpy copies. One writer only: two writers would need a lock around publish.

`flatten`/`unflatten` are numpy equivalents of `jax.flatten_util.ravel_pytree` for nested dicts, lists and
tuples of arrays (flax params), with the same leaf order (dict keys sorted), so a sampler can read
without importing JAX; a JAX user may also publish `ravel_pytree(params)[0]` with `publish_flat`.
Lifetime rules are those of `shm_replay`: the creator owns and unlinks, spawn children attach and close.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from lib.rl.types import SharedSegment

_HEADER_SLOTS = 4
_SEQ, _VERSION, _SIZE = range(3)

# ----------------------------------------------------------------------------------------------- flattening


def flatten(tree: Any) -> tuple[np.ndarray, Any]:
    """(float32 vector `[n]` of all leaves in jax's order, spec); the spec rebuilds the tree in `unflatten`.

    Leaves are arrays or scalars (numpy or jax); containers are dicts (keys sorted, as jax flattens them),
    lists and tuples. The spec is a small picklable description of shapes and dtypes.
    """
    leaves: list[np.ndarray] = []

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            keys = sorted(node)
            return ("dict", tuple(keys), tuple(walk(node[k]) for k in keys))
        if isinstance(node, (list, tuple)):
            return ("list" if isinstance(node, list) else "tuple", tuple(walk(x) for x in node))
        arr = np.asarray(node)
        leaves.append(arr.astype(np.float32, copy=False).reshape(-1))
        return ("leaf", arr.shape, arr.dtype.str)

    spec = walk(tree)
    vec = np.concatenate(leaves) if leaves else np.zeros((0,), np.float32)
    return vec, spec


def spec_size(spec: Any) -> int:
    """Number of floats a tree with this spec flattens to."""
    kind = spec[0]
    if kind == "leaf":
        return int(np.prod(spec[1], dtype=np.int64))
    children = spec[2] if kind == "dict" else spec[1]
    return sum(spec_size(c) for c in children)


def unflatten(vec: np.ndarray, spec: Any) -> Any:
    """The tree of `flatten` rebuilt from `vec` `[n]`: new numpy arrays in the original shapes and dtypes."""
    if vec.shape[0] != spec_size(spec):
        raise ValueError(f"a vector of {vec.shape[0]} floats does not match this spec ({spec_size(spec)} floats)")
    pos = 0

    def build(node: Any) -> Any:
        nonlocal pos
        kind = node[0]
        if kind == "dict":
            return {k: build(c) for k, c in zip(node[1], node[2], strict=True)}
        if kind in ("list", "tuple"):
            items = [build(c) for c in node[1]]
            return items if kind == "list" else tuple(items)
        shape, dtype = node[1], np.dtype(node[2])
        n = int(np.prod(shape, dtype=np.int64))
        leaf = np.asarray(vec[pos:pos + n]).astype(dtype).reshape(shape)
        pos += n
        return leaf

    return build(spec)


def policy_lag(*, learner_version: int, sampler_version: int) -> int:
    """How many versions (e.g. learner updates, when those are published as versions) the sampler acts behind."""
    return int(learner_version) - int(sampler_version)


# ----------------------------------------------------------------------------------------------- seqlock


class ParamSync(SharedSegment):
    """One float32 parameter vector in shared memory behind a seqlock; create with `ParamSync.create`."""

    def __init__(self, shm: shared_memory.SharedMemory, *, spec: Any, owner: bool):
        self._shm = shm
        self.name = shm.name
        self.owner = owner
        self.spec = spec
        self._header = np.ndarray((_HEADER_SLOTS,), np.int64, shm.buf, 0)
        self.size = int(self._header[_SIZE])
        self._data = np.ndarray((self.size,), np.float32, shm.buf, 8 * _HEADER_SLOTS)

    @classmethod
    def create(cls, *, example: Any = None, size: int | None = None, name: str | None = None) -> ParamSync:
        """A new block sized for the pytree `example` (then `publish`/`read` speak pytrees) or for `size` floats."""
        if (example is None) == (size is None):
            raise ValueError("ParamSync.create needs exactly one of example= (a pytree) or size= (a float count)")
        spec = flatten(example)[1] if example is not None else None
        n = spec_size(spec) if spec is not None else int(size)
        if n < 0:
            raise ValueError(f"size={size!r} is invalid: expected an integer >= 0")
        shm = shared_memory.SharedMemory(name=name or f"reprojax_params_{secrets.token_hex(6)}", create=True,
                                         size=8 * _HEADER_SLOTS + 4 * max(n, 1))
        header = np.ndarray((_HEADER_SLOTS,), np.int64, shm.buf, 0)
        header[:] = 0
        header[_VERSION] = -1  # nothing published yet
        header[_SIZE] = n
        del header  # no view may outlive close()
        return cls(shm, spec=spec, owner=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(shared_memory.SharedMemory(name=state["name"], create=False), spec=state["spec"], owner=False)

    def _drop_views(self) -> None:
        self._header = self._data = None

    # ------------------------------------------------------------------------------------------- writer

    @property
    def version(self) -> int:
        """The version of the latest (possibly still in-progress) publish; −1 before the first. No copy."""
        return int(self._header[_VERSION])

    @property
    def publishes(self) -> int:
        """Completed publishes so far (seq // 2)."""
        return int(self._header[_SEQ]) // 2

    def publish_flat(self, vec: np.ndarray, *, version: int | None = None) -> int:
        """Writes a float32 vector `[size]`; returns its version (default: previous + 1; must increase)."""
        vec = np.asarray(vec, np.float32).reshape(-1)
        if vec.shape[0] != self.size:
            raise ValueError(f"a vector of {vec.shape[0]} floats does not fit this block of {self.size}")
        previous = int(self._header[_VERSION])
        version = previous + 1 if version is None else int(version)
        if version <= previous:
            raise ValueError(f"version={version} is invalid: versions must increase (last published: {previous})")
        seq = int(self._header[_SEQ])
        self._header[_SEQ] = seq + 1  # odd: readers that overlap this copy will retry
        self._data[:] = vec
        self._header[_VERSION] = version
        self._header[_SEQ] = seq + 2
        return version

    def publish(self, tree: Any, *, version: int | None = None) -> int:
        """Flattens `tree` (same structure as the `example`) and publishes it; returns its version."""
        vec, spec = flatten(tree)
        if self.spec is not None and spec != self.spec:
            raise ValueError("the published tree's structure, shapes or dtypes differ from the example's")
        return self.publish_flat(vec, version=version)

    # ------------------------------------------------------------------------------------------- readers

    def read_flat(self, *, timeout: float = 30.0, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """A consistent copy of the latest vector `[size]` and its version; waits for the first publish.

        Retries while a publish is in progress (odd seq) or happened during the copy (seq changed).
        Raises TimeoutError after `timeout` seconds without a consistent read.
        """
        out = np.empty((self.size,), np.float32) if out is None else out
        deadline = time.monotonic() + timeout
        spins = 0
        while True:
            seq = int(self._header[_SEQ])
            if seq >= 2 and seq % 2 == 0:
                version = int(self._header[_VERSION])
                np.copyto(out, self._data)
                if int(self._header[_SEQ]) == seq:
                    return out, version
            spins += 1
            if spins % 64 == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no consistent read of {self.name} within {timeout} s "
                                       f"(publishes so far: {seq // 2})")
                time.sleep(0)  # yield the core: on 2 vCPUs the writer may be waiting for it

    def read(self, *, timeout: float = 30.0) -> tuple[Any, int]:
        """(params, version): the latest publish as the example's pytree of numpy arrays (or the flat vector)."""
        vec, version = self.read_flat(timeout=timeout)
        return (unflatten(vec, self.spec) if self.spec is not None else vec), version

    def read_if_newer(self, last_version: int, *, timeout: float = 30.0) -> tuple[Any, int] | None:
        """`read()` if a version other than `last_version` has been published since, else None (a cheap peek)."""
        if self.version == last_version and int(self._header[_SEQ]) % 2 == 0:
            return None
        params, version = self.read(timeout=timeout)
        return None if version == last_version else (params, version)
