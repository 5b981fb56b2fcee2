"""Ground truth of spec nes §5.2: the pose-dependent character, its implicit surface and a sphere tracer that is
shared with neither model (no "inverse crime"), plus the cameras and the train / novel-view / novel-pose splits.

Geometry: D*_k(u, v; θ) = static detail + flexion bulge + flexion wrinkles (closed forms of (u, v), not grids),
s*(x) = min_k [h_k(x) − D*_k(u_k, v_k; θ)]. Colour:
c* = A_k(u, v) · (0.3 + 0.7 max(0, n*·l)) · (1 − c f_k w_k(v))
with n* = normalize(∇s*) (jax.grad), l a fixed world light, c = `DARKEN`; Lambertian, black background, one
sample per pixel at the pixel centre. `pose_effects=False` sets f ≡ 0 (criterion 4a).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lib import rendering
from projects.nes import body

LIGHT = np.array([0.4, 0.7, 0.6], np.float32) / np.linalg.norm([0.4, 0.7, 0.6])
TARGET = np.array([0.0, 1.05, 0.0], np.float32)  # body centre: feet at ≈ 0.12 m, top of the head at ≈ 1.97 m
BODY_EXTENT = 1.9  # metres the body spans vertically (for the field of view)
DILATE = 0.05  # ray intervals use the capsules grown by this much (|D*| ≤ 0.24 r ≤ 0.036 m)
BULGE, WRINKLES = 0.12, 0.04  # amplitudes × r_k × f_k of the flexion bulge and wrinkles (spec §5.2)
DARKEN = 0.5  # flexion darkening (spec: 0.35; raised so pose effects are visible at 64 px, see README)
# Per-part albedo: base colour, stripe cycles around the limb and along it (3–8 cycles, spec §5.2).
_BASE = np.array([[0.55, 0.35, 0.25], [0.20, 0.45, 0.75], [0.85, 0.70, 0.55], [0.80, 0.30, 0.30],
                  [0.85, 0.70, 0.55], [0.30, 0.70, 0.35], [0.85, 0.70, 0.55], [0.35, 0.35, 0.60],
                  [0.70, 0.60, 0.30], [0.60, 0.35, 0.60], [0.70, 0.60, 0.30]], np.float32)
_CYCLES_U = np.array([4, 6, 3, 4, 3, 4, 3, 5, 4, 5, 4], np.float32)
_CYCLES_V = np.array([3, 8, 3, 5, 4, 5, 4, 6, 5, 6, 5], np.float32)


def geometry_offset(u, v, flex, *, pose_effects: bool = True):
    """D*_k(u, v; θ) for u, v [..., 11] and flexion f [11] → [..., 11] (metres)."""
    r = jnp.asarray(body.RADIUS)
    static = 0.08 * r * jnp.sin(2 * jnp.pi * 3 * u) * jnp.sin(2 * jnp.pi * 2 * v)
    if not pose_effects:
        return static
    bulge = BULGE * r * flex * jnp.exp(-(((v - 0.5) / 0.2) ** 2))
    wrinkles = WRINKLES * r * flex * jnp.sin(2 * jnp.pi * 8 * v) * body.joint_window(v)
    return static + bulge + wrinkles


def albedo(u, v):
    """A_k(u, v) [..., 11, 3] for u, v [..., 11]: base colour × smooth stripes, plus two Gaussian "logo" blobs."""
    stripes = 0.5 + 0.5 * jnp.sin(2 * jnp.pi * _CYCLES_U * u) * jnp.sin(2 * jnp.pi * _CYCLES_V * v)
    du = jnp.minimum(jnp.abs(u - 0.25), 1.0 - jnp.abs(u - 0.25))
    blob = jnp.exp(-((du / 0.08) ** 2 + ((v - 0.6) / 0.08) ** 2))
    tint = jnp.asarray(_BASE) * (0.6 + 0.4 * stripes[..., None])
    return tint * (1.0 - blob[..., None]) + blob[..., None] * jnp.array([0.95, 0.9, 0.2])


def sdf_parts(x, pose_rt, flex, *, pose_effects: bool = True):
    """Per-part implicit values s_k = h_k − D*_k and coordinates at world points x [..., 3] → (s [..., 11], u, v)."""
    u, v, h = body.part_coords(x, pose_rt)
    return h - geometry_offset(u, v, flex, pose_effects=pose_effects), u, v


def sdf(x, pose_rt, flex, *, pose_effects: bool = True):
    """s*(x) = min_k s_k(x), x [..., 3] → [...]."""
    return sdf_parts(x, pose_rt, flex, pose_effects=pose_effects)[0].min(-1)


def sphere_trace(f, origins: jax.Array, dirs: jax.Array, pose_rt, *, steps: int) -> tuple[jax.Array, jax.Array]:
    """First crossing of the zero level set of an implicit function f (points [..., 3] → [...]) along rays [..., 3]
    → (t [...], hit bool [...]). Rays march from the entry of the dilated-capsule hull with step 0.7 f(x) for
    `steps` steps; a ray hits when f < 1e-4 m before leaving the hull; 6 bisection steps then refine the crossing."""
    starts, ends = body.capsule_segments(pose_rt)
    near, far, hit = rendering.ray_capsules_interval(origins=origins, directions=dirs, starts=starts, ends=ends,
                                                     radii=jnp.asarray(body.RADIUS), dilate=DILATE)

    def march(_, carry):
        t, t_prev, done = carry
        s = f(origins + t[..., None] * dirs)
        done = done | (s < 1e-4)
        step = jnp.where(done, 0.0, 0.7 * jnp.maximum(s, 1e-4))
        return jnp.where(done, t, t + step), jnp.where(done, t_prev, t), done

    t, t_prev, done = jax.lax.fori_loop(0, steps, march, (near, near, ~hit))
    hit = hit & done & (t <= far)

    def bisect(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        inside = f(origins + mid[..., None] * dirs) < 0
        return jnp.where(inside, lo, mid), jnp.where(inside, mid, hi)

    _, hi = jax.lax.fori_loop(0, 6, bisect, (t_prev, t))
    return jnp.where(f(origins + t_prev[..., None] * dirs) < 0, t_prev, hi), hit


def hull_hits(pose, origins: jax.Array, dirs: jax.Array) -> jax.Array:
    """Which rays [..., 3] cross the dilated-capsule hull of pose [11, 3] (the only rays that can hit the body)."""
    starts, ends = body.capsule_segments(body.forward_kinematics(pose))
    return rendering.ray_capsules_interval(origins=origins, directions=dirs, starts=starts, ends=ends,
                                           radii=jnp.asarray(body.RADIUS), dilate=DILATE)[2]


def ray_capacity(poses: np.ndarray, rig: rendering.Camera, pairs: np.ndarray, *, height: int, width: int) -> int:
    """A static ray budget for `rendering.compact_rays`: the most hull-crossing rays of any (frame, camera) pair
    [N, 2], rounded up to a multiple of 256 (at most H·W). Compaction then skips the 80 % of pixels that see only
    empty space without changing a single pixel."""
    @jax.jit
    def count(pose, k, w):
        o, d = rendering.camera_rays(camera=rendering.Camera(k, w), height=height, width=width)
        return hull_hits(pose, o, d).sum()

    counts = jax.vmap(count)(jnp.asarray(poses[pairs[:, 0]]), rig.intrinsics[pairs[:, 1]],
                             rig.world_to_camera[pairs[:, 1]])
    return int(min(height * width, 256 * (int(np.max(counts)) // 256 + 1)))


@functools.partial(jax.jit, static_argnames=("height", "width", "steps", "capacity"))
def render(pose, camera, *, height: int, width: int, steps: int = 96, pose_effects=True,
           capacity: int | None = None) -> dict:
    """Sphere-traced ground truth of pose [11, 3] seen by `camera` → {"rgb" [H, W, 3], "mask" [H, W] bool,
    "part" [H, W] int (−1 on background), "depth" [H, W], "overflow" []}.

    `sphere_trace` finds the surface (`steps` steps of 0.7 s*, then bisection); normals are normalize(∇s*). With a
    `capacity` only the rays that cross the dilated-capsule hull are traced (`rendering.compact_rays`; the image is
    the same); "overflow" counts hull rays beyond the capacity (must be 0, see `ray_capacity`). `pose_effects`
    may be a traced bool: off sets f ≡ 0, which removes the bulge, the wrinkles and the darkening (criterion 4a).
    """
    pose_rt = body.forward_kinematics(pose)
    flex = jnp.where(pose_effects, body.flexion(pose), 0.0)
    f = lambda x: sdf(x, pose_rt, flex)
    origins, dirs = rendering.camera_rays(camera=camera, height=height, width=width)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    n = height * width
    index, valid, overflow = (jnp.arange(n), jnp.ones(n, bool), jnp.zeros((), jnp.int32)) if capacity is None else \
        rendering.compact_rays(hull_hits(pose, origins, dirs), capacity=capacity)
    origins, dirs = origins[index], dirs[index]
    t_hit, hit = sphere_trace(f, origins, dirs, pose_rt, steps=steps)
    hit = hit & valid
    x = origins + t_hit[..., None] * dirs
    s_parts, u, v = sdf_parts(x, pose_rt, flex)
    part = jnp.argmin(s_parts, -1)
    grad = jax.vmap(jax.grad(lambda p: f(p)))(x)
    normal = grad / jnp.maximum(jnp.linalg.norm(grad, axis=-1, keepdims=True), 1e-9)
    pick = lambda a: jnp.take_along_axis(a, part[..., None], -1)[..., 0]
    alb = jnp.take_along_axis(albedo(u, v), part[..., None, None], -2)[..., 0, :]
    shade = 0.3 + 0.7 * jnp.maximum(0.0, normal @ jnp.asarray(LIGHT))
    dark = 1.0 - DARKEN * pick(flex * body.joint_window(v))
    rgb = jnp.clip(alb * (shade * dark)[..., None], 0.0, 1.0)
    back = lambda a, fill: rendering.uncompact(jnp.where(hit.reshape(-1, *([1] * (a.ndim - 1))), a, fill), index,
                                               valid, n, fill).reshape(height, width, *a.shape[1:])
    return {"rgb": back(rgb, 0.0), "mask": back(hit, False), "part": back(part, -1), "depth": back(t_hit, 0.0),
            "overflow": overflow}


def field_of_view(distance: float) -> float:
    """Vertical field of view so the body covers about 80 % of the image height (spec §5.2)."""
    return rendering.fov_to_cover(extent=BODY_EXTENT, distance=distance, fraction=0.8)


def cameras(*, num_cameras: int, radius: float, height: int, width: int) -> rendering.Camera:
    """The ring rig of spec §5.2: cameras at chest height on a circle of `radius` m, aimed at the body centre."""
    return rendering.camera_ring(num_cameras=num_cameras, radius=radius, eye_height=1.3, target=TARGET,
                                 fov_y=field_of_view(radius), height=height, width=width)


def camera_eyes(*, num_cameras: int, radius: float) -> np.ndarray:
    """World positions [N, 3] of the ring cameras (as in `lib.rendering.camera_ring`)."""
    phi = 2 * np.pi * np.arange(num_cameras) / num_cameras
    return np.stack([TARGET[0] + radius * np.sin(phi), np.full_like(phi, 1.3), TARGET[2] + radius * np.cos(phi)], -1)


def min_clearance(poses: np.ndarray, eyes: np.ndarray) -> float:
    """Smallest ground-truth implicit value s*(eye) over poses [P, 11, 3] and eyes [N, 3] (metres; < 0 means a
    camera sits inside the body)."""
    def one(pose):
        rt = body.forward_kinematics(pose)
        return sdf(jnp.asarray(eyes), rt, body.flexion(pose))

    return float(jax.jit(jax.vmap(one))(jnp.asarray(poses)).min())


def splits(*, num_frames: int, train_frames: int, num_cameras: int, view_stride: int,
           pose_stride: int) -> dict[str, np.ndarray]:
    """(frame, camera) pairs [N, 2] of the three splits (spec §5.2, with strides as config fields):
    train = frames < train_frames × even cameras; novel_view = every `view_stride`-th training frame × odd
    cameras; novel_pose = every `pose_stride`-th later frame × all cameras."""
    even, odd = np.arange(0, num_cameras, 2), np.arange(1, num_cameras, 2)
    pairs = lambda frames, cams: np.array([(f, c) for f in frames for c in cams], np.int32).reshape(-1, 2)
    return {"train": pairs(range(train_frames), even),
            "novel_view": pairs(range(0, train_frames, view_stride), odd),
            "novel_pose": pairs(range(train_frames, num_frames, pose_stride), range(num_cameras))}


@functools.lru_cache(maxsize=8)
def _batched_render(height: int, width: int, steps: int, capacity: int | None):
    """One jitted, vmapped renderer per image size and setting, so every split reuses one compilation; the pose
    effects are switched by a traced flag (f ≡ 0 and no bulge / wrinkles when off), not by a second compilation."""
    one = lambda p, c, on: render(p, c, height=height, width=width, steps=steps, pose_effects=on, capacity=capacity)
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def render_split(poses: np.ndarray, rig: rendering.Camera, pairs: np.ndarray, *, height: int, width: int,
                 steps: int = 96, pose_effects: bool = True, capacity: int | None = None, batch: int = 8,
                 bar=None) -> dict[str, np.ndarray]:
    """Ground-truth images of (frame, camera) pairs [N, 2] → {"rgb" [N, H, W, 3], "mask", "part", "depth"}, rendered
    `batch` at a time (vmapped; the last batch is padded), tracing only hull rays (`capacity`: from `ray_capacity`
    of these pairs when None; pass one value for several calls to share one compilation)."""
    if capacity is None:
        capacity = ray_capacity(poses, rig, pairs, height=height, width=width) if len(pairs) else 256
    fn = _batched_render(height, width, steps, capacity)
    out = {k: [] for k in ("rgb", "mask", "part", "depth")}
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        idx = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
        cams = rendering.Camera(rig.intrinsics[idx[:, 1]], rig.world_to_camera[idx[:, 1]])
        r = fn(jnp.asarray(poses[idx[:, 0]]), cams, pose_effects)
        if int(np.max(r["overflow"])):
            raise RuntimeError(f"ground truth: {int(np.max(r['overflow']))} hull rays beyond capacity {capacity}")
        for k in out:
            out[k].append(np.asarray(r[k])[:len(chunk)])
        if bar is not None:
            bar.update(len(chunk))
    empty = {"rgb": (0, height, width, 3), "mask": (0, height, width), "part": (0, height, width),
             "depth": (0, height, width)}
    return {k: np.concatenate(v) if v else np.zeros(empty[k]) for k, v in out.items()}
