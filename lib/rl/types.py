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
