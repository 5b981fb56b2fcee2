"""Attention as pure functions.

- `linear_attention`: the softmax-free self-attention of the in-context-learning theory literature,
  in its token-column convention (tokens `[..., d_e, n]`, Zhang-Frei-Bartlett 2023).
- `dot_product_attention` with causal and padding masks, grouped-query heads (n_kv_heads ≤ n_heads),
  rotary position embedding (`apply_rotary`, Hugging Face's rotate-half convention) and a KV cache of
  static shape that decoding writes into (`init_cache`, `update_cache`). Sequence layout here is
  `[batch, seq, heads, head_dim]`; the cache is head-major, `[batch, kv_heads, max_len, head_dim]` per layer,
  so attention over it needs no transpose (a decode step reads the cache once instead of copying it).
"""

from __future__ import annotations

import jax
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


# ----------------------------------------------------------------------------- dot-product attention


def causal_mask(q_len: int, kv_len: int, *, offset: int | jnp.ndarray = 0) -> jnp.ndarray:
    """`[q_len, kv_len]` bool, True where query i (at absolute position offset+i) may see key j ≤ it."""
    q_pos = jnp.arange(q_len)[:, None] + offset
    return jnp.arange(kv_len)[None, :] <= q_pos


def padding_mask(key_valid: jnp.ndarray) -> jnp.ndarray:
    """`[batch, 1, 1, kv_len]` bool from a `[batch, kv_len]` 0/1 (or bool) mask of real tokens."""
    return key_valid.astype(bool)[:, None, None, :]


def dot_product_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, *, mask: jnp.ndarray | None = None,
                          scale: float | None = None, return_weights: bool = False, kv_head_major: bool = False):
    """Softmax attention with grouped-query heads.

    Args:
      q: `[b, t, n_heads, d_h]`; k, v: `[b, s, n_kv_heads, d_h]` (or `[b, n_kv_heads, s, d_h]` with
        kv_head_major, the cache layout) with n_heads % n_kv_heads == 0 (each group of
        n_heads // n_kv_heads query heads shares one key/value head).
      mask: bool, broadcastable to `[b, n_heads, t, s]`; True = may attend. A query row with no
        allowed key gets zero output (not NaN).
      scale: logit scale, 1/sqrt(d_h) by default.
    Returns:
      `[b, t, n_heads, d_h]`, and the weights `[b, n_heads, t, s]` when return_weights.
    """
    b, t, h, dh = q.shape
    kvh = k.shape[1] if kv_head_major else k.shape[2]
    kv = "bksd" if kv_head_major else "bskd"
    if h % kvh:
        raise ValueError(f"n_heads={h} is not a multiple of n_kv_heads={kvh}")
    scale = dh ** -0.5 if scale is None else scale
    qg = q.reshape(b, t, kvh, h // kvh, dh)
    few = kv_head_major and t * (h // kvh) <= 128
    if few:  # few queries over a cache: read k in place, as lib.transformer.matmul_t
        qt = jax.lax.optimization_barrier(qg.transpose(0, 2, 4, 3, 1))  # [b, kvh, d_h, g, t]
        logits = jax.lax.optimization_barrier(jnp.einsum("bksd,bkdgt->bksgt", k, qt)).transpose(0, 1, 3, 4, 2)
        logits = logits.astype(jnp.float32) * scale
    else:
        logits = jnp.einsum(f"btkgd,{kv}->bkgts", qg, k).astype(jnp.float32) * scale
    logits = logits.reshape(b, h, t, -1)
    if mask is not None:
        mask = jnp.broadcast_to(mask, logits.shape)
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1)
    if mask is not None:
        weights = jnp.where(mask, weights, 0.0)
    wg = weights.reshape(b, kvh, h // kvh, t, -1).astype(v.dtype)
    if few:  # v read in place as [s, d_h] too (XLA would otherwise transpose the whole cache to compute outᵀ)
        out = jax.lax.optimization_barrier(jnp.einsum("bkgts,bksd->bkgtd", wg, v)).transpose(0, 3, 1, 2, 4)
    else:
        out = jnp.einsum(f"bkgts,{kv}->btkgd", wg, v)
    out = out.reshape(b, t, h, dh)
    return (out, weights) if return_weights else out


def rotary_frequencies(positions: jnp.ndarray, *, head_dim: int, theta: float = 10000.0):
    """cos, sin `[..., head_dim]` for integer `positions` `[...]` (frequencies repeated in two halves)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rotary(x: jnp.ndarray, positions: jnp.ndarray, *, theta: float = 10000.0) -> jnp.ndarray:
    """Rotary position embedding of `x` `[b, t, heads, d_h]` at `positions` `[b, t]` (rotate-half form,
    as Llama/Mistral/Qwen2 checkpoints expect)."""
    cos, sin = rotary_frequencies(positions, head_dim=x.shape[-1], theta=theta)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    return (x.astype(jnp.float32) * cos + rotated * sin).astype(x.dtype)


def init_cache(*, batch: int, max_len: int, n_layers: int, n_kv_heads: int, head_dim: int,
               dtype=jnp.float32) -> dict:
    """An empty KV cache: {"k", "v": a tuple of n_layers arrays `[batch, n_kv_heads, max_len, head_dim]`}
    (one array per layer, so a decode step updates each in place instead of restacking them)."""
    shape = (batch, n_kv_heads, max_len, head_dim)
    return {"k": tuple(jnp.zeros(shape, dtype) for _ in range(n_layers)),
            "v": tuple(jnp.zeros(shape, dtype) for _ in range(n_layers))}


def update_cache(cache_k: jnp.ndarray, cache_v: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray,
                 index: int | jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Writes `k, v` `[b, t, kvh, d_h]` into one layer's cache `[b, kvh, max_len, d_h]` at `index`
    (the same slot for every row; static shapes, so decoding compiles once)."""
    k, v = (x.transpose(0, 2, 1, 3).astype(cache_k.dtype) for x in (k, v))
    cache_k = jax.lax.dynamic_update_slice(cache_k, k, (0, 0, index, 0))
    cache_v = jax.lax.dynamic_update_slice(cache_v, v, (0, 0, index, 0))
    return cache_k, cache_v
