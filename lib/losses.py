"""Losses as pure functions of logits, labels and masks.

Conventions: logits `[b, t, V]` predict labels `[b, t]` at the same index (shift inputs/labels
yourself with `shift_for_next_token`); masks `[b, t]` are 1 where a token counts (answer tokens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

REDUCTIONS = ("sum", "mean")


def shift_for_next_token(input_ids: jnp.ndarray, mask: jnp.ndarray | None = None):
    """(inputs `[b, t-1]`, labels `[b, t-1]`, label mask `[b, t-1]`) for next-token prediction."""
    labels = input_ids[:, 1:]
    lm = jnp.ones_like(labels, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    return input_ids[:, :-1], labels, lm


def token_logprobs(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """log p(label) per position `[b, t]` (float32 log-softmax)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def token_cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean negative log-likelihood over the masked tokens of the whole batch (a scalar)."""
    nll = -token_logprobs(logits, labels)
    if mask is None:
        return nll.mean()
    mask = mask.astype(jnp.float32)
    return (nll * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def sequence_logprobs(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray, *,
                      reduction: str = "sum") -> jnp.ndarray:
    """Per-sequence log-probability `[b]` of the masked (answer) tokens.

    reduction="sum": log π(y|x) = Σ_t log p(y_t); "mean": the same divided by the number of answer
    tokens (length-normalised, as SimNPO uses)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is invalid: expected one of {list(REDUCTIONS)}")
    mask = mask.astype(jnp.float32)
    total = (token_logprobs(logits, labels) * mask).sum(-1)
    return total if reduction == "sum" else total / jnp.maximum(mask.sum(-1), 1.0)
