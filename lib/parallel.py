"""Data parallelism over local devices with the current JAX API (jit + NamedSharding).

The design card's "pmap across local devices" is expressed as a 1-D `"data"` mesh over
`jax.local_devices()`: state replicated (`P()`), batches split along their leading axis
(`P("data")`), one `jax.jit` whose partitioner inserts the gradient all-reduce. `shard_map`
is used only where code is genuinely per device (`per_device`).

Across hosts the same code runs after `jax.distributed.initialize(...)` (on CPU also set
`jax.config.update("jax_cpu_collectives_implementation", "gloo")`), with `make_mesh(global_=True)`.

    mesh = make_mesh()                       # all local devices
    step = data_parallel(train_step, mesh)   # jit with shardings, state donated
    state = replicate(state, mesh)
    state, metrics = step(state, shard_batch(batch, mesh))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None, *, devices: Sequence[jax.Device] | None = None,
              global_: bool = False) -> Mesh:
    """A 1-D mesh named "data" over the first `num_devices` local devices (all by default).

    global_=True uses `jax.devices()` (every process's devices, after `jax.distributed.initialize`)."""
    if devices is None:
        devices = jax.devices() if global_ else jax.local_devices()
    devices = list(devices)
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices={num_devices!r} is invalid: expected 1..{len(devices)} "
                             f"(devices available: {len(devices)})")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Sharding that splits dimension `axis` over the "data" mesh axis."""
    return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of `tree` on all devices of `mesh`."""
    return jax.device_put(tree, replicated(mesh))


def _check_divisible(tree: Any, n: int, axis: int) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        size = np.shape(leaf)[axis] if np.ndim(leaf) > axis else None
        if size is None or size % n:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path)} has shape {np.shape(leaf)}: dimension {axis} "
                f"must be divisible by the number of devices in the mesh ({n})")


def shard_batch(batch: Any, mesh: Mesh, axis: int = 0) -> Any:
    """Splits every leaf of `batch` along `axis` over the mesh (checks divisibility first)."""
    _check_divisible(batch, mesh.size, axis)
    return jax.device_put(batch, batch_sharding(mesh, axis))


def constrain_batch(batch: Any, mesh: Mesh | None, axis: int = 0) -> Any:
    """Inside jit: asks the partitioner to split `batch` along `axis` (a no-op without a mesh).

    Use for data generated inside a jitted loop, where `shard_batch` cannot be applied."""
    if mesh is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, batch_sharding(mesh, axis))


def data_parallel(step: Callable[[Any, Any], tuple[Any, Any]], mesh: Mesh, *, donate: bool = True,
                  batch_axis: int = 0) -> Callable[[Any, Any], tuple[Any, Any]]:
    """`jax.jit(step)` with state replicated, batch split over "data", outputs replicated.

    `step(state, batch) -> (state, metrics)` is written as for one device (means over the
    global batch); the result equals the single-device step on the same global batch up to
    float reduction order."""
    rep, data = replicated(mesh), batch_sharding(mesh, batch_axis)
    return jax.jit(step, in_shardings=(rep, data), out_shardings=(rep, rep),
                   donate_argnums=(0,) if donate else ())


def per_device(fn: Callable, mesh: Mesh, *, in_specs: Any, out_specs: Any) -> Callable:
    """`jax.jit(jax.shard_map(fn, ...))` over the "data" mesh: `fn` sees its device's shard.

    Pitfall: for a loss over sharded data, take `jax.lax.pmean(loss, "data")` *before*
    `jax.grad` (the gradient of a replicated parameter is then already the global mean);
    averaging gradients again afterwards would be wrong."""
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))
