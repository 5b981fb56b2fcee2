"""Volume rendering pieces as pure JAX (after jaxnerf): ray intervals, stratified samples, densities, compositing.

Rays are (origins [..., 3], directions [..., 3]); with unit directions, t is Euclidean distance. Intervals are
(near [...], far [...], hit bool [...]) with 0 ≤ near ≤ far and near = far = 0 where the ray misses, so sampling a
missed ray gives zero-length steps, zero opacity and a black pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_TINY = 1e-12


class Composited(NamedTuple):
    """Alpha-compositing result for rays [...] with S samples: rgb [..., C] on a black background, opacity [...]
    (accumulated alpha Σ w_i), depth [...] (expected t of the ray's termination given it terminates,
    Σ w_i t_i / Σ w_i; 0 where opacity is 0), weights [..., S] (w_i = T_i α_i)."""

    rgb: jax.Array
    opacity: jax.Array
    depth: jax.Array
    weights: jax.Array


# ------------------------------------------------------------------------------------------- intervals


def _quadratic(a: jax.Array, b: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Roots t0 ≤ t1 of a t² + b t + c = 0 and whether they are real (a > 0 required; a ≤ ~0 counts as no roots)."""
    disc = b * b - 4.0 * a * c
    ok = (disc >= 0.0) & (a > _TINY)
    sq = jnp.sqrt(jnp.where(ok, disc, 0.0))
    a2 = jnp.where(ok, 2.0 * a, 1.0)
    return (-b - sq) / a2, (-b + sq) / a2, ok


def _finish(t0: jax.Array, t1: jax.Array, ok: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Clamp an interval to t ≥ 0 (a ray starting inside begins at 0) and zero it where it misses."""
    hit = ok & (t1 > 0.0)
    near = jnp.where(hit, jnp.maximum(t0, 0.0), 0.0)
    return near, jnp.where(hit, t1, 0.0), hit


def ray_sphere_interval(*, origins: jax.Array, directions: jax.Array, center: jax.Array,
                        radius: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Where rays [..., 3] cross a sphere (center [3], radius) → (near [...], far [...], hit bool [...])."""
    oc = origins - center
    t0, t1, ok = _quadratic((directions * directions).sum(-1), 2.0 * (oc * directions).sum(-1),
                            (oc * oc).sum(-1) - radius ** 2)
    return _finish(t0, t1, ok)


def _capsule_pieces(origins, directions, start, end, radius):
    """Raw (entry, exit, valid) of a capsule: min/max over its two end spheres and its finite cylinder."""
    axis = end - start
    length = jnp.linalg.norm(axis)
    e = axis / jnp.maximum(length, _TINY)
    entries, exits, oks = [], [], []
    for c in (start, end):
        oc = origins - c
        t0, t1, ok = _quadratic((directions * directions).sum(-1), 2.0 * (oc * directions).sum(-1),
                                (oc * oc).sum(-1) - radius ** 2)
        entries.append(t0), exits.append(t1), oks.append(ok)
    oc = origins - start
    oe, de = (oc * e).sum(-1), (directions * e).sum(-1)
    o_perp, d_perp = oc - oe[..., None] * e, directions - de[..., None] * e
    c0, c1, c_ok = _quadratic((d_perp * d_perp).sum(-1), 2.0 * (o_perp * d_perp).sum(-1),
                              (o_perp * o_perp).sum(-1) - radius ** 2)
    # Slab 0 ≤ (x − start)·e ≤ length; a ray parallel to the slab needs no cylinder piece (the spheres cover it).
    de_safe = jnp.where(jnp.abs(de) > _TINY, de, 1.0)
    s_a, s_b = -oe / de_safe, (length - oe) / de_safe
    s0, s1 = jnp.minimum(s_a, s_b), jnp.maximum(s_a, s_b)
    lo, hi = jnp.maximum(c0, s0), jnp.minimum(c1, s1)
    entries.append(lo), exits.append(hi), oks.append(c_ok & (jnp.abs(de) > _TINY) & (lo <= hi))
    entry, exit_, ok = jnp.stack(entries), jnp.stack(exits), jnp.stack(oks)
    near = jnp.where(ok, entry, jnp.inf).min(0)
    far = jnp.where(ok, exit_, -jnp.inf).max(0)
    return near, far, ok.any(0)


def ray_capsule_interval(*, origins: jax.Array, directions: jax.Array, start: jax.Array, end: jax.Array,
                         radius: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Where rays [..., 3] cross one capsule (segment start [3] → end [3], radius) → (near, far, hit) [...].

    A capsule is convex, so its hit set is one interval: the earliest entry and latest exit over its two end
    spheres and its finite cylinder.
    """
    near, far, ok = _capsule_pieces(origins, directions, start, end, radius)
    return _finish(near, far, ok)


def ray_capsules_interval(*, origins: jax.Array, directions: jax.Array, starts: jax.Array, ends: jax.Array,
                          radii: jax.Array, dilate: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Hull of the hit intervals of rays [..., 3] with N capsules (starts [N, 3], ends [N, 3], radii [N], each
    radius grown by `dilate`) → (near, far, hit) [...]: the span from the first entry to the last exit, which
    contains every crossing (gaps between capsules stay inside it); for empty-space skipping (nes §5.2)."""
    near, far, ok = jax.vmap(lambda s, e, r: _capsule_pieces(origins, directions, s, e, r + dilate))(
        starts, ends, radii)
    ok = ok & (far > 0.0)  # a capsule wholly behind the origin must not pull the hull's entry below 0
    return _finish(jnp.where(ok, near, jnp.inf).min(0), jnp.where(ok, far, -jnp.inf).max(0), ok.any(0))


# ------------------------------------------------------------------------------------------ compaction


def compact_rays(hit: jax.Array, *, capacity: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Ray compaction for empty-space skipping: the indices of the rays that hit (flat hit [N] bool), first and in
    order, padded to a static `capacity` → (index [capacity] int, valid [capacity] bool, overflow []: hit rays that
    did not fit, which the caller must check is 0). Work on `x[index]` instead of x [N, ...]; `uncompact` puts it
    back. Exact: missed rays render black anyway; it only stops spending samples on them."""
    index = jnp.argsort(~hit, stable=True)[:capacity]
    return index, hit[index], jnp.maximum(hit.sum() - capacity, 0)


def uncompact(values: jax.Array, index: jax.Array, valid: jax.Array, size: int, fill=0.0) -> jax.Array:
    """Scatter compacted per-ray values [capacity, ...] back to [size, ...], `fill` for the rays not computed."""
    values = jnp.where(valid.reshape(-1, *([1] * (values.ndim - 1))), values, fill)
    return jnp.full((size, *values.shape[1:]), fill, values.dtype).at[index].set(values)


# -------------------------------------------------------------------------------------------- sampling


def stratified_samples(*, key: jax.Array | None, near: jax.Array, far: jax.Array,
                       num_samples: int) -> tuple[jax.Array, jax.Array]:
    """S stratified distances in [near, far] per ray: (t [..., S], deltas [..., S]).

    The interval is cut into S equal bins; with a key each sample is uniform in its bin, with `key=None` it is the
    bin's midpoint. deltas are t_{i+1} − t_i, and the last is the bin width (so a constant density integrates to
    about the right optical depth; a ray with near = far gets all-zero deltas).
    """
    far = jnp.maximum(far, near)
    width = (far - near) / num_samples
    offset = 0.5 if key is None else jax.random.uniform(key, (*near.shape, num_samples), dtype=near.dtype)
    t = near[..., None] + (jnp.arange(num_samples, dtype=near.dtype) + offset) * width[..., None]
    deltas = jnp.concatenate([jnp.diff(t, axis=-1), width[..., None]], axis=-1)
    return t, deltas


# ----------------------------------------------------------------------------------- densities / alpha


def laplace_cdf(y: jax.Array, *, beta: float | jax.Array) -> jax.Array:
    """Ψ_β(y): CDF of a zero-mean Laplace with scale β; ½ e^{y/β} for y ≤ 0, 1 − ½ e^{−y/β} otherwise (no overflow:
    the exponent is always ≤ 0)."""
    half = 0.5 * jnp.exp(-jnp.abs(y) / beta)
    return jnp.where(y <= 0.0, half, 1.0 - half)


def volsdf_density(*, sdf: jax.Array, beta: float | jax.Array) -> jax.Array:
    """VolSDF density σ = (1/β) Ψ_β(−s) for signed distances s [...] (negative inside) → [...].

    σ → 1/β deep inside, → 0 far outside, 1/(2β) on the surface. Clamp β from below (e.g. β ≥ 0.002 m) at the
    call site: σ ≤ 1/β is the largest density it can produce.
    """
    return laplace_cdf(-sdf, beta=beta) / beta


def alpha_from_density(*, density: jax.Array, deltas: jax.Array) -> jax.Array:
    """Per-sample opacity α_i = 1 − exp(−σ_i δ_i) for densities and step lengths [..., S] → [..., S]."""
    return -jnp.expm1(-density * deltas)


def neus_alpha(*, sdf_start: jax.Array, sdf_end: jax.Array, inv_s: float | jax.Array) -> jax.Array:
    """NeuS discrete opacity of a section with signed distances at its ends, sdf_start/sdf_end [..., S] → [..., S]:
    α = max((Φ(s_start) − Φ(s_end)) / Φ(s_start), 0) with Φ = sigmoid(inv_s · s) (1e-5 guards, as in NeuS)."""
    cdf_start = jax.nn.sigmoid(sdf_start * inv_s)
    cdf_end = jax.nn.sigmoid(sdf_end * inv_s)
    return jnp.clip((cdf_start - cdf_end + 1e-5) / (cdf_start + 1e-5), 0.0, 1.0)


def composite(*, alpha: jax.Array, rgb: jax.Array, t: jax.Array) -> Composited:
    """Front-to-back alpha compositing on a black background: alpha [..., S], rgb [..., S, C], t [..., S]
    → `Composited`; w_i = T_i α_i with T_i = Π_{j<i} (1 − α_j), Ĉ = Σ w_i c_i, Â = Σ w_i."""
    trans = jnp.cumprod(1.0 - alpha, axis=-1)
    trans = jnp.concatenate([jnp.ones_like(trans[..., :1]), trans[..., :-1]], axis=-1)
    weights = trans * alpha
    opacity = weights.sum(-1)
    safe = jnp.where(opacity > _TINY, opacity, 1.0)
    depth = jnp.where(opacity > _TINY, (weights * t).sum(-1) / safe, 0.0)
    return Composited((weights[..., None] * rgb).sum(-2), opacity, depth, weights)
