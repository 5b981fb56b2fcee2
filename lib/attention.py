"""Attention as pure functions.

This module starts with the linear (softmax-free) self-attention of the in-context-learning
theory literature; dot-product attention with masks and a KV cache joins it with the language-model
core.

Token convention (one column per token, Zhang-Frei-Bartlett 2023): tokens are `[..., d_e, n]`
with feature dimension `d_e` first and the token axis last.
"""

from __future__ import annotations

import jax.numpy as jnp


def linear_attention(tokens: jnp.ndarray, queries: jnp.ndarray, w_pv: jnp.ndarray, w_kq: jnp.ndarray,
                     *, n_context: int) -> jnp.ndarray:
    """Single-head linear self-attention with merged value/projection and key/query matrices.

    f(E)_q = E_q + W_pv · E Mask Eᵀ · W_kq · E_q / n_context,   Mask = diag(1..1 (n_context), 0..0)

    Args:
      tokens: `[..., d_e, n]` all tokens; only the first `n_context` columns act as keys/values
        (the query tokens are masked out of keys and values).
      queries: `[..., d_e, q]` the token columns to compute outputs for (often `tokens` itself or
        only its last column).
      w_pv: `[d_e, d_e]`; w_kq: `[d_e, d_e]`.
      n_context: number of leading context tokens; the normaliser is 1/n_context.
    Returns:
      `[..., d_e, q]` the updated query columns (residual included).
    """
    ctx = tokens[..., :n_context]
    cov = jnp.einsum("...in,...jn->...ij", ctx, ctx) / n_context  # [..., d_e, d_e]
    return queries + jnp.einsum("ij,...jk,kl,...lq->...iq", w_pv, cov, w_kq, queries)
