"""Pinhole cameras: intrinsics from a field of view, look-at extrinsics, projection, per-pixel rays, a ring rig.

Conventions (OpenCV): camera x right, y down, z forward, so visible points have camera-space depth z > 0.
Continuous pixel coordinates (x, y) put pixel (row r, column c) on the square [c, c+1) × [r, r+1) with its centre
at (c + 0.5, r + 0.5); the principal point of `intrinsics_from_fov` is the image centre (W/2, H/2).
A `Camera` holds arrays only, so it is a pytree: stack cameras along a leading axis and `jax.vmap` over them.
Image sizes are Python ints passed beside the camera (they fix array shapes).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class Camera(NamedTuple):
    """A pinhole camera: `intrinsics` [3, 3] (fx, fy on the diagonal, principal point in the last column) and
    `world_to_camera` [3, 4] = [R | t] with x_cam = R x_world + t. A rig of N cameras has [N, 3, 3] and [N, 3, 4]."""

    intrinsics: jax.Array
    world_to_camera: jax.Array


def intrinsics_from_fov(*, fov_y: float, height: int, width: int) -> jax.Array:
    """[3, 3] intrinsics with square pixels: fy = fx = (H / 2) / tan(fov_y / 2), principal point (W/2, H/2).

    `fov_y` is the vertical field of view in radians.
    """
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return jnp.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], jnp.float32)


def fov_to_cover(*, extent: float, distance: float, fraction: float = 0.8) -> float:
    """Vertical field of view (radians) at which an object `extent` metres tall, `distance` metres from the camera,
    covers `fraction` of the image height: 2 atan(extent / (2 · fraction · distance))."""
    return 2.0 * math.atan(extent / (2.0 * fraction * distance))


def look_at(*, eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, 1.0, 0.0)) -> jax.Array:
    """[3, 4] world-to-camera matrix of a camera at `eye` [3] looking at `target` [3]; image "up" follows `up`.

    Rows of R are the camera axes in world coordinates: z = forward, x = forward × up (right), y = z × x (down).
    `up` must not be parallel to the viewing direction.
    """
    eye, target, up = (jnp.asarray(a, jnp.float32) for a in (eye, target, up))
    z = target - eye
    z = z / jnp.linalg.norm(z)
    x = jnp.cross(z, up)
    x = x / jnp.linalg.norm(x)
    y = jnp.cross(z, x)
    rot = jnp.stack([x, y, z])
    return jnp.concatenate([rot, -(rot @ eye)[:, None]], axis=1)


def make_camera(*, eye: ArrayLike, target: ArrayLike, fov_y: float, height: int, width: int,
                up: ArrayLike = (0.0, 1.0, 0.0)) -> Camera:
    """A `Camera` at `eye` [3] aimed at `target` [3] with vertical field of view `fov_y` (radians)."""
    return Camera(intrinsics_from_fov(fov_y=fov_y, height=height, width=width),
                  look_at(eye=eye, target=target, up=up))


def camera_ring(*, num_cameras: int = 8, radius: float = 3.0, eye_height: float = 1.3,
                target: ArrayLike = (0.0, 1.0, 0.0), fov_y: float, height: int, width: int) -> Camera:
    """`num_cameras` cameras evenly spaced on a horizontal circle (world y up) of `radius` metres around `target`
    [3], each at world height `eye_height` and aimed at `target` (spec nes §5.2: 8 cameras, 3 m, chest height).

    Camera i sits at azimuth 2π i / N: eye = target + (radius sin φ, ·, radius cos φ) with y = eye_height.
    Returns a stacked `Camera` with intrinsics [N, 3, 3] and world_to_camera [N, 3, 4].
    """
    target = jnp.asarray(target, jnp.float32)
    phi = 2.0 * jnp.pi * jnp.arange(num_cameras) / num_cameras
    eyes = jnp.stack([target[0] + radius * jnp.sin(phi), jnp.full_like(phi, eye_height),
                      target[2] + radius * jnp.cos(phi)], axis=-1)
    w2c = jax.vmap(lambda e: look_at(eye=e, target=target))(eyes)
    k = intrinsics_from_fov(fov_y=fov_y, height=height, width=width)
    return Camera(jnp.broadcast_to(k, (num_cameras, 3, 3)), w2c)


def world_to_camera(points: jax.Array, *, camera: Camera) -> jax.Array:
    """Points [..., 3] in world coordinates → camera coordinates [..., 3] (z = depth along the optical axis)."""
    rot, t = camera.world_to_camera[:, :3], camera.world_to_camera[:, 3]
    return points @ rot.T + t


def project(points: jax.Array, *, camera: Camera) -> tuple[jax.Array, jax.Array]:
    """World points [..., 3] → (continuous pixel coordinates [..., 2] as (x, y) = (column, row), depth [...]).

    Depth is camera-space z; points with z ≤ 0 are behind the camera and their pixel coordinates are meaningless.
    """
    cam = world_to_camera(points, camera=camera)
    z = cam[..., 2]
    k = camera.intrinsics
    xy = cam[..., :2] / z[..., None]
    pix = jnp.stack([k[0, 0] * xy[..., 0] + k[0, 2], k[1, 1] * xy[..., 1] + k[1, 2]], axis=-1)
    return pix, z


def camera_rays(*, camera: Camera, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Rays through pixel centres: (origins [H, W, 3], unit directions [H, W, 3]) in world coordinates.

    Distances along these unit directions are Euclidean; camera depth z = t · (direction · optical axis).
    """
    k = camera.intrinsics
    rot, t = camera.world_to_camera[:, :3], camera.world_to_camera[:, 3]
    cols = jnp.arange(width, dtype=jnp.float32) + 0.5
    rows = jnp.arange(height, dtype=jnp.float32) + 0.5
    x = (cols[None, :] - k[0, 2]) / k[0, 0]
    y = (rows[:, None] - k[1, 2]) / k[1, 1]
    d_cam = jnp.stack(jnp.broadcast_arrays(x, y, jnp.ones_like(x * y)), axis=-1)
    d = d_cam @ rot  # R^T d_cam, as rows
    d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    origin = -(rot.T @ t)
    return jnp.broadcast_to(origin, d.shape), d
