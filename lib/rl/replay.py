"""In-process replay ring buffer as pure functions over a pytree state (the instadeepai/flashbax pattern).

    state = replay.init(capacity=100_000, example=Transition(obs=jnp.zeros(3), action=jnp.zeros(1),
                                                             reward=jnp.zeros(()), done=jnp.zeros(()),
                                                             next_obs=jnp.zeros(3)))
    state = replay.add(state, batch)                 # batch leaves [n, ...]; jit-able, donate the state
    sample = replay.sample(state, key, batch_size=256)

All three are jit-able and work inside `lax.scan`, which is what the fused (purejaxrl-style) path needs:
env step, add and update in one compiled loop. `example` may be any pytree; each leaf gets a leading
`[capacity]` axis. Sampling is uniform over the filled rows only.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


class RingState(flax.struct.PyTreeNode):
    """data: the example pytree with leaves `[capacity, ...]`; index: next row to write (int32 `[]`);
    size: rows filled so far, saturating at capacity (int32 `[]`)."""

    data: Any
    index: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree_util.tree_leaves(self.data)[0].shape[0]


def init(*, capacity: int, example: Any) -> RingState:
    """An empty ring of `capacity` rows shaped like `example` (one transition, no batch axis), zero-filled."""
    if capacity < 1:
        raise ValueError(f"capacity={capacity!r} is invalid: expected an integer >= 1")
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return RingState(data=data, index=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def add(state: RingState, batch: Any) -> RingState:
    """Writes the `n` rows of `batch` (leaves `[n, ...]`) at index, index+1, … modulo capacity.

    The oldest rows are overwritten once the ring is full. `n` must not exceed the capacity, since a
    scatter with repeated indices would keep an unspecified one of the duplicates.
    """
    capacity = state.capacity
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if n > capacity:
        raise ValueError(f"batch of {n} rows is larger than the ring's capacity {capacity}")
    rows = (state.index + jnp.arange(n, dtype=jnp.int32)) % capacity
    data = jax.tree_util.tree_map(lambda buf, x: buf.at[rows].set(x.astype(buf.dtype)), state.data, batch)
    return RingState(data=data, index=(state.index + n) % capacity,
                     size=jnp.minimum(state.size + n, capacity).astype(jnp.int32))


def can_sample(state: RingState, *, min_size: int = 1) -> jax.Array:
    """True (bool `[]`) once at least `min_size` rows have been written."""
    return state.size >= min_size


def sample_indices(state: RingState, key: jax.Array, *, batch_size: int) -> jax.Array:
    """`[batch_size]` row indices drawn uniformly (with replacement) from the filled rows [0, size).

    Filled rows are always [0, size): the ring fills 0, 1, … before it wraps. On an empty ring every
    index is 0 (a zero row); guard with `can_sample`.
    """
    return jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))


def sample(state: RingState, key: jax.Array, *, batch_size: int) -> Any:
    """A batch: the example pytree with leaves `[batch_size, ...]`, rows uniform over the filled part."""
    idx = sample_indices(state, key, batch_size=batch_size)
    return jax.tree_util.tree_map(lambda buf: buf[idx], state.data)
