"""The procedural articulated character of spec nes §5.1 ("capsule-man"): a skeleton of 11 rigid capsules, forward
kinematics, closed-form surface coordinates (u, v, h) per capsule, UV charts and the template grid mesh.

Everything NES would take from SMPL has a closed form here. Part k is rigidly attached to bone k (no blend weights),
so inverse skinning is exact: a world point x maps to each part's local frame by G_k⁻¹ x. In a bone's local frame
the capsule axis runs from (0, 0, 0) to (0, L, 0) with radius r, and for a local point p:
    t = clip(p_y, 0, L), q = p − (0, t, 0), ρ = |q|, h = ρ − r (exact signed distance to the capsule),
    u = atan2(p_z, p_x) / 2π mod 1, v = ℓ / (L + π r) with ℓ the arc length along the meridian from the bottom pole.
The inverse, `surface_point(u, v)`, gives the template point and its normal; `coords(surface_point + h n) = (u, v, h)`
up to float error (tests). Poses θ are axis-angle per joint [11, 3]; the root translation is fixed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

NAMES = ("pelvis", "torso", "head", "l_upper_arm", "l_forearm", "r_upper_arm", "r_forearm", "l_thigh", "l_shin",
         "r_thigh", "r_shin")
NUM_PARTS = len(NAMES)
PARENT = np.array([-1, 0, 1, 1, 3, 1, 5, 0, 7, 0, 9])
# Lengths and radii in metres (spec §5.1).
LENGTH = np.array([0.12, 0.50, 0.12, 0.28, 0.26, 0.28, 0.26, 0.42, 0.40, 0.42, 0.40], np.float32)
RADIUS = np.array([0.14, 0.15, 0.11, 0.05, 0.045, 0.05, 0.045, 0.075, 0.055, 0.075, 0.055], np.float32)
ROOT = np.array([0.0, 1.0, 0.0], np.float32)  # the pelvis joint in world coordinates (world y up)
# Joint positions in the parent's local frame (the root's is ROOT, in world).
OFFSET = np.array([ROOT, [0, 0.12, 0], [0, 0.62, 0], [0.21, 0.45, 0], [0, 0.28, 0], [-0.21, 0.45, 0], [0, 0.28, 0],
                   [0.09, 0.0, 0], [0, 0.42, 0], [-0.09, 0.0, 0], [0, 0.42, 0]], np.float32)
_ARM_DOWN = np.pi - 0.35  # arms hang down, 0.35 rad out from the body (rot_z(−a) sends local +y to +x, down)
REST_ANGLE_Z = np.array([0, 0, 0, -_ARM_DOWN, 0, _ARM_DOWN, 0, np.pi, 0, np.pi, 0], np.float32)
# The joint whose flexion drives each part's pose-dependent bulge, wrinkles and shading (spec §5.2), and at which
# end of the part it sits (0: proximal, at y = 0; 1: distal, at y = L).
FLEX_JOINT = np.array([1, 1, 2, 4, 4, 6, 6, 8, 8, 10, 10])
FLEX_END = np.array([1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0])
# Each part's proximal joint (its own) and distal joint (its first child, or itself at a chain's end): the
# generator's local pose input (spec §5.4).
DISTAL_JOINT = np.array([1, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10])


def rotation(axis_angle: jax.Array) -> jax.Array:
    """Rodrigues: axis-angle [..., 3] → rotation matrices [..., 3, 3]; smooth (and exact) at angle 0."""
    a2 = (axis_angle ** 2).sum(-1)[..., None, None]
    small = a2 < 1e-8
    a2s = jnp.where(small, 1.0, a2)
    angle = jnp.sqrt(a2s)
    s = jnp.where(small, 1.0 - a2 / 6.0, jnp.sin(angle) / angle)
    c = jnp.where(small, 0.5 - a2 / 24.0, (1.0 - jnp.cos(angle)) / a2s)
    x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack([jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1), jnp.stack([-y, x, zero], -1)], -2)
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    return eye + s * k + c * (k @ k)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


REST_ROT = np.stack([_rot_z(a) for a in REST_ANGLE_Z])


def forward_kinematics(pose: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pose [11, 3] (axis-angle per joint) → bone-to-world transforms (rotations [11, 3, 3], origins [11, 3]).

    G_j = G_{p(j)} · [R_rest,j R(θ_j) | o_j]; a local point p of part j is at world x = R_j p + o_j.
    """
    local = jnp.asarray(REST_ROT) @ rotation(pose)
    rots, origins = [], []
    for j in range(NUM_PARTS):
        p = PARENT[j]
        if p < 0:
            rots.append(local[j])
            origins.append(jnp.asarray(OFFSET[j]))
        else:
            rots.append(rots[p] @ local[j])
            origins.append(origins[p] + rots[p] @ jnp.asarray(OFFSET[j]))
    return jnp.stack(rots), jnp.stack(origins)


def to_local(x: jax.Array, rots: jax.Array, origins: jax.Array) -> jax.Array:
    """World points x [..., 3] → local coordinates in every part's frame [..., 11, 3] (p_k = R_kᵀ (x − o_k))."""
    return jnp.einsum("kji,...kj->...ki", rots, x[..., None, :] - origins)


def coords(p: jax.Array, length: jax.Array, radius: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Closed-form capsule coordinates of local points p [..., 3] (length, radius broadcast against p[..., 0])
    → (u, v, h) each [...]: azimuth in [0, 1), meridian arc length / (L + π r) in [0, 1], signed distance h."""
    px, py, pz = p[..., 0], p[..., 1], p[..., 2]
    t = jnp.clip(py, 0.0, length)
    rxz2 = px * px + pz * pz
    rho = jnp.sqrt(rxz2 + (py - t) ** 2 + 1e-20)
    h = rho - radius
    u = jnp.mod(jnp.arctan2(pz, px) / (2.0 * jnp.pi), 1.0)
    rxz = jnp.sqrt(rxz2 + 1e-20)
    ell = jnp.where(py < 0.0, radius * jnp.arctan2(rxz, -py),
                    jnp.where(py > length, 0.5 * jnp.pi * radius + length + radius * jnp.arctan2(py - length, rxz),
                              0.5 * jnp.pi * radius + py))
    v = ell / (length + jnp.pi * radius)
    return u, v, h


def surface_point(u: jax.Array, v: jax.Array, length: jax.Array, radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of `coords` on the capsule (h = 0): (u, v) [...] → (local point, outward unit normal), each [..., 3]."""
    u, v, length, radius = jnp.broadcast_arrays(u, v, length, radius)
    ell = v * (length + jnp.pi * radius)
    cap = 0.5 * jnp.pi * radius
    phi = 2.0 * jnp.pi * u
    # polar angle from the local +y axis: π at the bottom pole, π/2 on the shaft, 0 at the top pole
    polar = jnp.where(ell < cap, jnp.pi - ell / radius,
                      jnp.where(ell > cap + length, 0.5 * jnp.pi - (ell - cap - length) / radius, 0.5 * jnp.pi))
    centre_y = jnp.clip(ell - cap, 0.0, length)
    n = jnp.stack([jnp.sin(polar) * jnp.cos(phi), jnp.cos(polar), jnp.sin(polar) * jnp.sin(phi)], -1)
    point = n * radius[..., None] + jnp.stack([jnp.zeros_like(u), centre_y, jnp.zeros_like(u)], -1)
    return point, n


def part_coords(x: jax.Array, pose_rt: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """World points x [..., 3] → (u, v, h) [..., 11] for every part, given `forward_kinematics(pose)`."""
    p = to_local(x, *pose_rt)
    return coords(p, jnp.asarray(LENGTH), jnp.asarray(RADIUS))


# The largest |θ_j| the motion family reaches at each joint (`motion`'s amplitudes; the root's yaw is no flexion).
FLEX_RANGE = np.array([np.pi, np.sqrt(0.41), np.sqrt(0.41), np.sqrt(1.42), 1.9, np.sqrt(1.42), 1.9, np.sqrt(1.42),
                       1.9, np.sqrt(1.42), 1.9], np.float32)


def flexion(pose: jax.Array) -> jax.Array:
    """Per-part flexion f_k ∈ [0, 1] (spec §5.2), pose [..., 11, 3] → [..., 11]: (1 − cos|θ_j|) of the part's flex
    joint j, normalized by its value at the joint's full range (`FLEX_RANGE`), so a fully bent joint gives f = 1.
    (Inferred: the spec's (1 − cos|θ|)/2 never gets near 1 on this motion, e.g. 0.10 at a torso's 0.64 rad and 0.66
    at a knee's 1.9 rad, and its pose effects changed 64-px images by only ≈ 39 dB.)"""
    joints = np.asarray(FLEX_JOINT)
    ang = jnp.sqrt((pose[..., joints, :] ** 2).sum(-1) + 1e-12)
    return jnp.clip((1.0 - jnp.cos(ang)) / (1.0 - np.cos(FLEX_RANGE[joints])), 0.0, 1.0)


def joint_window(v: jax.Array) -> jax.Array:
    """w_k(v) [..., 11]: a Gaussian window (width 0.35 in v) around each part's flex-joint end; v [..., 11]."""
    ends = []
    for k in range(NUM_PARTS):
        length, radius = LENGTH[k], RADIUS[k]
        total = length + np.pi * radius
        ends.append((0.5 * np.pi * radius + (length if FLEX_END[k] else 0.0)) / total)
    return jnp.exp(-(((v - jnp.asarray(ends, np.float32)) / 0.35) ** 2))


# ------------------------------------------------------------------------------------------------ motion


def motion(num_frames: int, *, seed: int = 0, yaw_turns: float = 0.5) -> np.ndarray:
    """The spec's sequence: θ_j(t) = bias + a ⊙ sin(2π f t + φ) per joint → poses [num_frames, 11, 3] (float32).

    Joint limits: elbows and knees flex about one axis in [0.1, 1.9] rad (0 … 2); shoulders and hips ±0.9 rad on
    three axes (0.6 on the twist axis); torso and head ±0.4 rad; root yaw turns `yaw_turns` × 2π over 100 frames.
    Frequencies are 1–2 cycles per 100 frames with random phases, so later frames (novel poses) are new
    combinations of angles inside the training ranges (spec P9).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames, dtype=np.float64) / 100.0
    pose = np.zeros((num_frames, NUM_PARTS, 3))

    def wave(amp, lo_f=1.0, hi_f=2.0):
        f = rng.uniform(lo_f, hi_f)
        return amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))

    pose[:, 0, 1] = 2 * np.pi * yaw_turns * t  # root yaw
    for j in (1, 2):  # torso, head
        for a in range(3):
            pose[:, j, a] = wave(0.4 if a != 1 else 0.3)
    for j in (3, 5, 7, 9):  # shoulders, hips
        pose[:, j, 0] = wave(0.9)
        pose[:, j, 1] = wave(0.6)
        pose[:, j, 2] = wave(0.5)
    for j in (4, 6, 8, 10):  # elbows and knees: one axis, [0.1, 1.9]
        pose[:, j, 0] = (1.0 + wave(0.9)) * (1.0 if j in (4, 6) else -1.0)
    return pose.astype(np.float32)


# --------------------------------------------------------------------------------------------- template mesh


class Template(NamedTuple):
    """The template grid mesh of all parts (spec §5.4): per part (N_u + 1) × N_v grid vertices (the u = 1 column
    duplicates u = 0 so UVs do not wrap inside a triangle) and 2 N_u pole vertices (one per fan triangle, so each
    has its own u). uv [V, 2], part [V] (int), faces [F, 3] (wound counter-clockwise seen from outside), face_part
    [F]. Vertex positions come from `mesh_vertices`."""

    uv: np.ndarray
    part: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray


def template(num_u: int, num_v: int) -> Template:
    """Template mesh with `num_u` columns and `num_v` rows per part (host side, numpy)."""
    us = np.arange(num_u + 1) / num_u
    vs = np.arange(1, num_v + 1) / (num_v + 1)
    grid = np.stack(np.meshgrid(us, vs, indexing="xy"), -1).reshape(-1, 2)  # row-major: row j = v_j
    poles = np.concatenate([np.stack([(np.arange(num_u) + 0.5) / num_u, np.zeros(num_u)], -1),
                            np.stack([(np.arange(num_u) + 0.5) / num_u, np.ones(num_u)], -1)])
    uv_part = np.concatenate([grid, poles]).astype(np.float32)
    nv_part = uv_part.shape[0]
    g = lambda j, i: j * (num_u + 1) + i
    bottom, top = (num_v * (num_u + 1)), (num_v * (num_u + 1) + num_u)
    faces = []
    for j in range(num_v - 1):  # v grows from the bottom pole (local −y) to the top (+y); u grows from +x to +z
        for i in range(num_u):
            faces += [[g(j, i), g(j + 1, i), g(j, i + 1)], [g(j, i + 1), g(j + 1, i), g(j + 1, i + 1)]]
    for i in range(num_u):
        faces += [[bottom + i, g(0, i), g(0, i + 1)], [top + i, g(num_v - 1, i + 1), g(num_v - 1, i)]]
    faces = np.asarray(faces, np.int32)
    uv = np.concatenate([uv_part] * NUM_PARTS)
    part = np.repeat(np.arange(NUM_PARTS), nv_part).astype(np.int32)
    all_faces = np.concatenate([faces + k * nv_part for k in range(NUM_PARTS)])
    face_part = np.repeat(np.arange(NUM_PARTS), len(faces)).astype(np.int32)
    return Template(uv, part, all_faces, face_part)


def mesh_vertices(tmpl: Template, pose_rt: tuple[jax.Array, jax.Array], offsets: jax.Array) -> jax.Array:
    """Posed, displaced template vertices [V, 3]: G_k · [s_k(u, v) + d · n_k(u, v)] with d = `offsets` [V]
    (the geometry map sampled at the vertices' (u, v))."""
    part = jnp.asarray(tmpl.part)
    length, radius = jnp.asarray(LENGTH)[part], jnp.asarray(RADIUS)[part]
    point, normal = surface_point(jnp.asarray(tmpl.uv[:, 0]), jnp.asarray(tmpl.uv[:, 1]), length, radius)
    local = point + offsets[:, None] * normal
    rots, origins = pose_rt
    return jnp.einsum("vij,vj->vi", rots[part], local) + origins[part]


def capsule_segments(pose_rt: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """World start and end points [11, 3] of every capsule axis (for ray intervals)."""
    rots, origins = pose_rt
    ends = origins + jnp.einsum("kij,kj->ki", rots, jnp.stack([jnp.zeros(NUM_PARTS), jnp.asarray(LENGTH),
                                                              jnp.zeros(NUM_PARTS)], -1))
    return origins, ends
