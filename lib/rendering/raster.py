"""Differentiable hard rasterizer in pure JAX: the "patch-scatter" z-buffer of spec nes §5.5a.

Pass 1 (not differentiated): every triangle enumerates a static K×K block of pixels starting at the first pixel
centre inside its screen bounding box, tests each candidate fragment (edge-function barycentrics ≥ 0, inside the
image, in front of the `near` plane), and scatters its depth into a z-buffer of H·W + 1 slots (slot H·W is the
dump for rejected fragments) with scatter-min; the winner of a pixel is the largest triangle id among its fragments
whose depth equals the buffer's (so exact ties, as on shared edges, go to the larger id).
Pass 2 (differentiable in vertex positions, not in face ids): each pixel recomputes the barycentrics of its winning
triangle from the projected vertices and corrects them for perspective, w_i' = (w_i / z_i) / Σ_j (w_j / z_j);
depth is 1 / Σ_j (w_j / z_j), exact for the triangle's plane.

Pixel conventions are those of `cameras.py` (centres at integer + 0.5, depth = camera z). K comes from
`patch_size_for` on the host; a triangle whose clipped screen bbox needs more than K pixels loses its far pixels
and is counted in `Raster.overflow` (`check_patch_size` raises instead). Triangles with a vertex at depth ≤ `near`
are dropped whole (no clipping); both windings are drawn unless `cull_backfaces`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lib.rendering.cameras import Camera, world_to_camera

_AREA_EPS = 1e-10  # pixels²; smaller screen areas are treated as degenerate (edge-on) triangles


class Raster(NamedTuple):
    """Per-pixel rasterizer output for an H × W image.

    face_id: int32 [H, W], winning triangle index, -1 on background.
    bary: [H, W, 3] perspective-correct barycentrics of the winner (0 on background).
    depth: [H, W] camera-space depth of the surface (0 on background).
    mask: bool [H, W], face_id >= 0.
    overflow: int32 [], triangles whose clipped screen bbox exceeds the patch size (0 means the image is exact).
    """

    face_id: jax.Array
    bary: jax.Array
    depth: jax.Array
    mask: jax.Array
    overflow: jax.Array


def project_vertices(*, vertices: jax.Array, camera: Camera, near: float = 1e-2) -> tuple[jax.Array, jax.Array]:
    """Vertices [V, 3] → (pixel coordinates [V, 2], camera depth [V]); vertices at depth ≤ `near` get finite
    placeholder pixels (their triangles are dropped) so no inf or NaN reaches values or gradients."""
    cam = world_to_camera(vertices, camera=camera)
    z = cam[..., 2]
    z_safe = jnp.where(z > near, z, 1.0)
    k = camera.intrinsics
    pix = jnp.stack([k[0, 0] * cam[..., 0] / z_safe + k[0, 2], k[1, 1] * cam[..., 1] / z_safe + k[1, 2]], -1)
    return jnp.where((z > near)[..., None], pix, 0.0), z


def _edge(a: jax.Array, b: jax.Array, p: jax.Array) -> jax.Array:
    """2-D edge function (b − a) × (p − a): positive when p lies left of a→b (in x-right, y-down pixels)."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def _signed_area(tri: jax.Array) -> jax.Array:
    """Twice the signed screen area of triangles tri [..., 3, 2] → [...] (negative: counter-clockwise as seen)."""
    return _edge(tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])


def screen_barycentrics(tri: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Screen-space barycentrics of points p [..., 2] in triangles tri [..., 3, 2] → ([..., 3], signed area [...]).

    Degenerate triangles (|area| < 1e-10 px²) get a safe denominator; test `abs(area)` before trusting them.
    """
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    area = _edge(a, b, c)
    safe = jnp.where(jnp.abs(area) > _AREA_EPS, area, 1.0)
    w = jnp.stack([_edge(b, c, p), _edge(c, a, p), _edge(a, b, p)], axis=-1) / safe[..., None]
    return w, area


def _affine_coefficients(tri: jax.Array, tz: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pass-1 plane equations of triangles tri [F, 3, 2] with vertex depths tz [F, 3]: barycentric i at pixel (x, y)
    is c[..., i, 0] + c[..., i, 1] x + c[..., i, 2] y (c [F, 3, 3]), inverse depth is d[..., 0] + d[..., 1] x +
    d[..., 2] y (d [F, 3]). Evaluating affine forms keeps each fragment at a few multiply-adds; `rasterize` and
    `rasterize_reference` share this so their inside and depth tests agree bit for bit."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    area = _signed_area(tri)
    safe = jnp.where(jnp.abs(area) > _AREA_EPS, area, 1.0)[..., None]
    rows = []
    for s, t in ((b, c), (c, a), (a, b)):  # edge(s, t, p) = (t−s)×(p−s) = k0 + kx x + ky y
        kx, ky = -(t[..., 1] - s[..., 1]), t[..., 0] - s[..., 0]
        rows.append(jnp.stack([-(kx * s[..., 0] + ky * s[..., 1]), kx, ky], -1))
    coef = jnp.stack(rows, -2) / safe[..., None]
    return coef, (coef / tz[..., None]).sum(-2)


def _eval_affine(coef: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """c[..., 0] + c[..., 1] x + c[..., 2] y, with x, y broadcast against coef[..., 0]."""
    return coef[..., 0] + coef[..., 1] * x + coef[..., 2] * y


def _face_valid(z: jax.Array, area: jax.Array, near: float, cull_backfaces: bool) -> jax.Array:
    """bool [F]: every vertex in front of `near`, non-degenerate, and (if culling) counter-clockwise on screen.

    With OpenCV cameras (y down) a triangle whose vertices run counter-clockwise seen from the camera in a y-up
    drawing has negative screen area; front faces are taken to be those with area < 0 (outward normals towards the
    camera for meshes wound counter-clockwise seen from outside).
    """
    ok = jnp.all(z > near, axis=-1) & (jnp.abs(area) > _AREA_EPS)
    return ok & (area < 0) if cull_backfaces else ok


def _bbox_pixels(tri: jax.Array, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """First pixel (lo [F, 2], x then y) whose centre is ≥ the bbox minimum, clamped to the image, and the number of
    pixels [F, 2] whose centres fall in the bbox ∩ image (≤ 0 when the bbox misses the image)."""
    lo = jnp.maximum(jnp.ceil(tri.min(-2) - 0.5), 0.0)
    hi = jnp.minimum(jnp.floor(tri.max(-2) - 0.5), jnp.array([width - 1, height - 1], tri.dtype))
    lo_i = jnp.clip(lo, -1, max(height, width) + 1).astype(jnp.int32)
    count = jnp.clip(hi - lo + 1, -1, max(height, width) + 1).astype(jnp.int32)
    return lo_i, count


def _resolve(pix: jax.Array, z: jax.Array, faces: jax.Array, face_id: jax.Array, height: int,
             width: int) -> Raster:
    """Pass 2: perspective-correct barycentrics and depth of each pixel's winner, face_id [H·W] → `Raster`."""
    mask = face_id >= 0
    f = faces[jnp.maximum(face_id, 0)]
    unit = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], pix.dtype)
    tri = jnp.where(mask[:, None, None], pix[f], unit)  # background: a fixed safe triangle (finite gradients)
    tz = jnp.where(mask[:, None], z[f], 1.0)
    rows, cols = jnp.divmod(jnp.arange(height * width), width)
    p = jnp.stack([cols, rows], -1).astype(pix.dtype) + 0.5
    w, _ = screen_barycentrics(tri, p)
    w_over_z = w / tz
    inv_depth = w_over_z.sum(-1)
    inv_depth = jnp.where(mask, inv_depth, 1.0)
    bary = jnp.where(mask[:, None], w_over_z / inv_depth[:, None], 0.0)
    depth = jnp.where(mask, 1.0 / inv_depth, 0.0)
    return Raster(face_id.reshape(height, width).astype(jnp.int32), bary.reshape(height, width, 3),
                  depth.reshape(height, width), mask.reshape(height, width), jnp.zeros((), jnp.int32))


def rasterize(*, vertices: jax.Array, faces: jax.Array, camera: Camera, height: int, width: int,
              patch_size: int, near: float = 1e-2, cull_backfaces: bool = False) -> Raster:
    """Hard z-buffer rasterization of a triangle mesh: vertices [V, 3] (world), faces int [F, 3] → `Raster` [H, W].

    `height`, `width`, `patch_size` (K) are static. Costs O(F·K²) memory and time. Differentiable in `vertices`
    through `bary` and `depth` (visibility itself is piecewise constant: see `soft.py` for silhouette gradients).
    """
    faces = jnp.asarray(faces)
    pix, z = project_vertices(vertices=vertices, camera=camera, near=near)
    num_faces, k, hw = faces.shape[0], patch_size, height * width
    # Pass 1 sees constants: only the winners' ids leave it.
    tri, tz = jax.lax.stop_gradient(pix[faces]), jax.lax.stop_gradient(z[faces])  # [F, 3, 2], [F, 3]
    area = _signed_area(tri)
    valid = _face_valid(tz, area, near, cull_backfaces)
    lo, count = _bbox_pixels(tri, height, width)
    overflow = jnp.sum(valid & jnp.any(count > k, -1)).astype(jnp.int32)
    offs = jnp.arange(k, dtype=jnp.int32)
    px = lo[:, 0, None, None] + offs[None, None, :]  # [F, K, K]; block rows index y, columns x
    py = lo[:, 1, None, None] + offs[None, :, None]
    x, y = px.astype(tri.dtype) + 0.5, py.astype(tri.dtype) + 0.5
    coef, dcoef = _affine_coefficients(tri, tz)
    c, d = coef[:, None, None], dcoef[:, None, None]  # [F, 1, 1, 3, 3], [F, 1, 1, 3]
    inside = (_eval_affine(c[..., 0, :], x, y) >= 0) & (_eval_affine(c[..., 1, :], x, y) >= 0) & (
        _eval_affine(c[..., 2, :], x, y) >= 0)
    inv_depth = _eval_affine(d, x, y)
    ok = valid[:, None, None] & inside & (px < width) & (py < height) & (inv_depth > 0)
    frag_z = jnp.where(ok, 1.0 / jnp.where(ok, inv_depth, 1.0), jnp.inf).reshape(-1)
    idx = jnp.where(ok, py * width + px, hw).reshape(-1)
    zbuf = jnp.full((hw + 1,), jnp.inf, frag_z.dtype).at[idx].min(frag_z)
    win = ok.reshape(-1) & (frag_z == zbuf[idx])
    ids = jnp.broadcast_to(jnp.arange(num_faces, dtype=jnp.int32)[:, None, None], ok.shape).reshape(-1)
    ibuf = jnp.full((hw + 1,), -1, jnp.int32).at[jnp.where(win, idx, hw)].max(ids)
    return _resolve(pix, z, faces, ibuf[:hw], height, width)._replace(overflow=overflow)


def rasterize_reference(*, vertices: jax.Array, faces: jax.Array, camera: Camera, height: int, width: int,
                        near: float = 1e-2, cull_backfaces: bool = False, chunk: int = 256) -> Raster:
    """Brute-force pixel × triangle z-buffer (`lax.scan` over chunks of `chunk` triangles) with the same inside,
    depth and tie rules as `rasterize`; for tests and benchmarks only (O(H·W·F) work). → `Raster` [H, W]."""
    faces = jnp.asarray(faces)
    pix, z = project_vertices(vertices=vertices, camera=camera, near=near)
    num_faces, hw = faces.shape[0], height * width
    pad = -num_faces % chunk
    ids = jnp.concatenate([jnp.arange(num_faces, dtype=jnp.int32), jnp.full((pad,), -1, jnp.int32)])
    faces_p = jnp.concatenate([faces, jnp.zeros((pad, 3), faces.dtype)])
    rows, cols = jnp.divmod(jnp.arange(hw), width)
    p = jnp.stack([cols, rows], -1).astype(pix.dtype) + 0.5
    pix_c, z_c = jax.lax.stop_gradient(pix), jax.lax.stop_gradient(z)

    def step(carry, xs):
        zbest, ibest = carry
        cid, cf = xs  # [C], [C, 3]
        tri, tz = pix_c[cf], z_c[cf]
        area = _signed_area(tri)
        valid = _face_valid(tz, area, near, cull_backfaces) & (cid >= 0)
        coef, dcoef = _affine_coefficients(tri, tz)
        x, y = p[:, 0, None], p[:, 1, None]  # [HW, 1] against [C]
        inside = (_eval_affine(coef[:, 0], x, y) >= 0) & (_eval_affine(coef[:, 1], x, y) >= 0) & (
            _eval_affine(coef[:, 2], x, y) >= 0)
        inv_depth = _eval_affine(dcoef, x, y)
        ok = valid[None] & inside & (inv_depth > 0)
        zf = jnp.where(ok, 1.0 / jnp.where(ok, inv_depth, 1.0), jnp.inf)
        zmin = zf.min(-1)
        cand = jnp.where(ok & (zf == zmin[:, None]), cid[None], -1).max(-1)
        tie = (zmin == zbest) & jnp.isfinite(zmin)
        ibest = jnp.where(zmin < zbest, cand, jnp.where(tie, jnp.maximum(ibest, cand), ibest))
        return (jnp.minimum(zbest, zmin), ibest), None

    init = (jnp.full((hw,), jnp.inf, pix.dtype), jnp.full((hw,), -1, jnp.int32))
    (_, face_id), _ = jax.lax.scan(step, init, (ids.reshape(-1, chunk), faces_p.reshape(-1, chunk, 3)))
    return _resolve(pix, z, faces, face_id, height, width)


def interpolate(*, attributes: jax.Array, faces: jax.Array, raster: Raster) -> jax.Array:
    """Per-pixel attribute from the winner's perspective-correct barycentrics: attributes [A, C] indexed by
    faces int [F, 3] (the rasterized faces, or a parallel index set such as UV faces with seams) → [H, W, C],
    0 on background. Differentiable in `attributes` and, through `raster.bary`, in the vertex positions."""
    corner = jnp.asarray(attributes)[jnp.asarray(faces)[jnp.maximum(raster.face_id, 0)]]  # [H, W, 3, C]
    out = jnp.einsum("hwk,hwkc->hwc", raster.bary, corner)
    return jnp.where(raster.mask[..., None], out, 0.0)


def patch_size_for(*, vertices: jax.Array, faces: jax.Array, camera: Camera, height: int, width: int,
                   near: float = 1e-2) -> int:
    """Host side: the smallest static K for which `rasterize` is exact, i.e. the largest number of pixel centres
    along x or y in any drawn triangle's screen bbox ∩ image (at least 1).

    vertices [..., V, 3] (leading axes, e.g. poses, are maxed over); `camera` may be a stacked rig [N].
    """
    verts = jnp.asarray(vertices, jnp.float32).reshape(-1, *np.shape(vertices)[-2:])
    cams = Camera(jnp.asarray(camera.intrinsics).reshape(-1, 3, 3),
                  jnp.asarray(camera.world_to_camera).reshape(-1, 3, 4))
    need = jax.vmap(lambda c: jax.vmap(lambda v: _patch_need(v, faces, c, height, width, near))(verts))(cams)
    return max(1, int(need.max()))


@functools.partial(jax.jit, static_argnames=("height", "width", "near"))
def _patch_need(vertices: jax.Array, faces: jax.Array, camera: Camera, height: int, width: int,
                near: float) -> jax.Array:
    """int32 []: the largest clipped screen-bbox pixel count (x or y) over the drawable triangles."""
    pix, z = project_vertices(vertices=vertices, camera=camera, near=near)
    tri, tz = pix[faces], z[faces]
    area = _signed_area(tri)
    _, count = _bbox_pixels(tri, height, width)
    return jnp.where(_face_valid(tz, area, near, False)[:, None], count, 0).max()


def check_patch_size(*, vertices: jax.Array, faces: jax.Array, camera: Camera, height: int, width: int,
                     patch_size: int, near: float = 1e-2) -> None:
    """Host side: raise ValueError, naming both sizes, when a triangle's screen bbox needs more than `patch_size`."""
    need = patch_size_for(vertices=vertices, faces=faces, camera=camera, height=height, width=width, near=near)
    if need > patch_size:
        raise ValueError(f"patch_size K={patch_size} is too small: a triangle's screen bounding box spans {need} "
                         f"pixels at {height}x{width}; pass patch_size={need} (from patch_size_for) or a finer mesh.")


def patch_size_bound(*, max_edge_pixels: float) -> int:
    """K that covers any triangle whose longest screen-space edge is at most `max_edge_pixels`: ⌊edge⌋ + 1
    (a bbox side never exceeds the longest edge). A cheap upper bound when the exact `patch_size_for` is unknown."""
    return int(math.floor(max_edge_pixels)) + 1
