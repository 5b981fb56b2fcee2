"""Bilinear texture lookup at continuous (u, v), wrapping in u and clamping in v (spec nes P3).

A texture [H, W, C] has rows indexed by v and columns by u; texel (r, c) has its centre at
(u, v) = ((c + 0.5) / W, (r + 0.5) / H). u is periodic with period 1 (column W wraps to column 0, as around a limb);
v is clamped to the centres of the first and last rows (edge padding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bilinear(*, texture: jax.Array, u: jax.Array, v: jax.Array, chart: jax.Array | None = None) -> jax.Array:
    """Sample `texture` [H, W, C] (or a stack of charts [N, H, W, C] with integer `chart` [...]) at u, v [...]
    → [..., C]. Differentiable in the texture values and in (u, v) (zero gradient in v where it is clamped)."""
    th, tw = texture.shape[-3], texture.shape[-2]
    x = u * tw - 0.5
    y = jnp.clip(v * th - 0.5, 0.0, th - 1.0)
    x0f, y0f = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0f)[..., None], (y - y0f)[..., None]
    x0 = jnp.mod(x0f.astype(jnp.int32), tw)
    x1 = jnp.mod(x0 + 1, tw)
    y0 = y0f.astype(jnp.int32)
    y1 = jnp.minimum(y0 + 1, th - 1)
    if chart is None:
        fetch = lambda yy, xx: texture[yy, xx]
    else:
        fetch = lambda yy, xx: texture[chart, yy, xx]
    top = fetch(y0, x0) * (1.0 - fx) + fetch(y0, x1) * fx
    bottom = fetch(y1, x0) * (1.0 - fx) + fetch(y1, x1) * fx
    return top * (1.0 - fy) + bottom * fy
