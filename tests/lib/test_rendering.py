"""lib/rendering: cameras, the patch-scatter rasterizer against brute force and analytic planes, gradients against
finite differences, soft visibility, bilinear wrap/clamp, volume-rendering pieces, dm-pix metrics vs scikit-image."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lib import rendering as R

H = W = 64


_make_camera = jax.jit(R.make_camera, static_argnames=("fov_y", "height", "width"))


def _camera(eye=(0.0, 0.6, 3.0), target=(0.0, 0.0, 0.0), fov=0.8, size=H):
    return _make_camera(eye=np.asarray(eye, np.float32), target=np.asarray(target, np.float32), fov_y=fov,
                        height=size, width=size)


def _noisy_sphere(rng, nu=48, nv=22, noise=0.05):
    """A closed UV sphere of radius ≈ 1 with random radial noise: 2·nu·(nv − 2) triangles (2016 by default)."""
    u = np.arange(nu) / nu * 2 * np.pi
    v = np.linspace(0, np.pi, nv + 1)[1:-1]
    uu, vv = np.meshgrid(u, v)
    r = 1 + noise * rng.standard_normal(uu.shape)
    pts = np.stack([r * np.sin(vv) * np.cos(uu), r * np.cos(vv), r * np.sin(vv) * np.sin(uu)], -1).reshape(-1, 3)
    n = len(pts)
    pts = np.concatenate([pts, [[0, 1, 0], [0, -1, 0]]])
    idx = lambda i, j: i * nu + j % nu
    faces = [f for i in range(nv - 2) for j in range(nu)
             for f in ([idx(i, j), idx(i + 1, j), idx(i, j + 1)], [idx(i, j + 1), idx(i + 1, j), idx(i + 1, j + 1)])]
    faces += [f for j in range(nu) for f in ([n, idx(0, j), idx(0, j + 1)], [n + 1, idx(nv - 2, j + 1),
                                                                          idx(nv - 2, j)])]
    return np.asarray(pts, np.float32), np.asarray(faces, np.int32)


def _plane_grid(n=6, size=1.6, tilt=0.5):
    """A tilted square (n × n quads, 2n² triangles) through the origin: z = tilt · x + 0.3 · y (world)."""
    s = np.linspace(-size / 2, size / 2, n + 1)
    x, y = np.meshgrid(s, s)
    pts = np.stack([x, y, tilt * x + 0.3 * y], -1).reshape(-1, 3)
    q = lambda i, j: i * (n + 1) + j
    faces = [f for i in range(n) for j in range(n)
             for f in ([q(i, j), q(i + 1, j), q(i, j + 1)], [q(i, j + 1), q(i + 1, j), q(i + 1, j + 1)])]
    return np.asarray(pts, np.float32), np.asarray(faces, np.int32)


def _raster_fn(size, patch_size):
    return jax.jit(functools.partial(R.rasterize, height=size, width=size, patch_size=patch_size))


# ---------------------------------------------------------------------------------------------- cameras


def test_camera_rays_project_back_to_pixel_centres_and_ring_aims_at_target():
    """Points along each pixel's ray project to that pixel's centre at the right depth; ring cameras see the target
    at the image centre from 3 m, with world +y up in the image."""
    cam = _camera(eye=(0.4, 1.2, 2.5), target=(0.1, 0.9, 0.0))

    @jax.jit
    def run(cam):
        origins, dirs = R.camera_rays(camera=cam, height=8, width=6)
        pix, depth = R.project(origins + 2.0 * dirs, camera=cam)
        ring = R.camera_ring(num_cameras=8, radius=3.0, eye_height=1.3, target=(0.0, 1.3, 0.0), fov_y=0.7,
                             height=H, width=W)
        points = jnp.array([[0.0, 1.3, 0.0], [0.0, 1.6, 0.0]])
        ring_pix, ring_depth = jax.vmap(lambda c: R.project(points, camera=c))(ring)
        return pix, depth, 2.0 * (dirs @ cam.world_to_camera[2, :3]), ring, ring_pix, ring_depth

    pix, depth, expected_depth, ring, ring_pix, ring_depth = run(cam)
    rows, cols = np.mgrid[0:8, 0:6]
    np.testing.assert_allclose(pix, np.stack([cols, rows], -1) + 0.5, atol=1e-4)
    np.testing.assert_allclose(depth, expected_depth, rtol=1e-5)
    chex.assert_shape([ring.intrinsics, ring.world_to_camera], [(8, 3, 3), (8, 3, 4)])
    np.testing.assert_allclose(ring_pix[:, 0], np.full((8, 2), H / 2), atol=1e-4)
    np.testing.assert_allclose(ring_depth[:, 0], 3.0, rtol=1e-6)
    assert np.all(ring_pix[:, 1, 1] < H / 2 - 1)  # a point above the target lands above the centre (smaller row)


# ------------------------------------------------------------------------------------------- rasterizer


def _pixel_centres(size):
    rows, cols = np.mgrid[0:size, 0:size]
    return np.stack([cols, rows], -1).astype(np.float32) + 0.5


def _screen_weights(raster, vertices, faces, camera, size):
    """Screen-space barycentrics [H, W, 3] of each pixel centre in its winning triangle (inside the triangle when
    all are ≥ 0; their minimum measures the distance to its edges)."""
    pix, _ = R.project_vertices(vertices=vertices, camera=camera)
    return R.screen_barycentrics(pix[jnp.asarray(faces)[jnp.maximum(raster.face_id, 0)]], _pixel_centres(size))[0]


def test_rasterize_agrees_with_brute_force_on_random_mesh():
    """Face ids agree with the brute-force z-buffer on ≥ 98 % of pixels (spec §5.8.1) for a noisy 2016-triangle
    sphere plus 300 random interpenetrating triangles at 64²; depth and barycentrics agree where the ids do."""
    rng = np.random.default_rng(0)
    verts, faces = _noisy_sphere(rng)
    soup = (rng.uniform(-1.2, 1.2, (300, 1, 3)) + 0.25 * rng.standard_normal((300, 3, 3))).reshape(-1, 3)
    faces = np.concatenate([faces, len(verts) + np.arange(900, dtype=np.int32).reshape(-1, 3)])
    verts = np.concatenate([verts, soup.astype(np.float32)])
    cam = _camera()
    k = R.patch_size_for(vertices=verts, faces=faces, camera=cam, height=H, width=W)
    out = _raster_fn(H, k)(vertices=verts, faces=faces, camera=cam)
    ref = jax.jit(functools.partial(R.rasterize_reference, height=H, width=W))(vertices=verts, faces=faces,
                                                                                camera=cam)
    chex.assert_shape([out.face_id, out.bary, out.depth, out.mask], [(H, W), (H, W, 3), (H, W), (H, W)])
    out, ref = jax.tree.map(np.asarray, (out, ref))
    assert out.overflow == 0 and 0.3 < out.mask.mean() < 0.98
    agree = out.face_id == ref.face_id
    assert agree.mean() >= 0.98, agree.mean()
    np.testing.assert_allclose(out.depth[agree], ref.depth[agree], rtol=1e-6)
    np.testing.assert_allclose(out.bary[agree], ref.bary[agree], atol=1e-5)
    np.testing.assert_allclose(out.bary.sum(-1)[out.mask], 1.0, atol=1e-5)
    assert np.all(out.face_id[~out.mask] == -1) and np.all(out.depth[~out.mask] == 0)


def test_depth_and_barycentrics_match_analytic_tilted_plane():
    """Depth is the analytic ray–plane depth to 1e-4 relative, and interpolating world positions with the
    perspective-correct barycentrics returns the ray–plane intersection point."""
    verts, faces = _plane_grid()
    cam = _camera(eye=(0.3, 0.4, 3.0))
    k = R.patch_size_for(vertices=verts, faces=faces, camera=cam, height=H, width=W)

    @jax.jit
    def run(verts, cam):
        out = R.rasterize(vertices=verts, faces=faces, camera=cam, height=H, width=W, patch_size=k)
        origins, dirs = R.camera_rays(camera=cam, height=H, width=W)
        normal = jnp.array([0.5, 0.3, -1.0])  # the plane z = 0.5 x + 0.3 y is normal · x = 0
        hit = origins + (-(origins @ normal) / (dirs @ normal))[..., None] * dirs
        pos = R.interpolate(attributes=verts, faces=faces, raster=out)
        return out.mask, out.depth, R.world_to_camera(hit, camera=cam)[..., 2], pos, hit

    m, depth, analytic, pos, hit = map(np.asarray, run(verts, cam))
    assert m.mean() > 0.2
    np.testing.assert_allclose(depth[m], analytic[m], rtol=1e-4)
    np.testing.assert_allclose(pos[m], hit[m], atol=1e-4)


def test_gradient_of_interpolated_attribute_matches_finite_differences():
    """jax.grad (through pass 2's barycentrics) of a weighted sum of interpolated colours and depth at pixels away
    from edges matches central differences along random vertex directions within 1e-2 relative."""
    rng = np.random.default_rng(1)
    verts, faces = _plane_grid(n=4)
    verts[:, 2] += 0.05 * rng.standard_normal(len(verts))
    colors = rng.uniform(size=(len(verts), 3)).astype(np.float32)
    cam = _camera(eye=(0.3, 0.4, 3.0), size=32)
    k = R.patch_size_for(vertices=verts, faces=faces, camera=cam, height=32, width=32)

    def loss(v, weights):
        out = R.rasterize(vertices=v, faces=faces, camera=cam, height=32, width=32, patch_size=k)
        img = jnp.concatenate([R.interpolate(attributes=colors, faces=faces, raster=out), out.depth[..., None]], -1)
        return (weights * img).sum(), (out, _screen_weights(out, v, faces, cam, 32))

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, (base, w)), _ = value_and_grad(verts, np.zeros((32, 32, 4), np.float32))
    interior = np.asarray(base.mask & (w.min(-1) > 0.1))  # well inside a triangle: ±eps moves no pixel over an edge
    assert interior.sum() > 100
    weights = (rng.standard_normal((32, 32, 4)) * interior[..., None]).astype(np.float32)
    (_, _), grad = value_and_grad(verts, weights)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    eps = 1e-3
    for _ in range(4):
        d = rng.standard_normal(verts.shape).astype(np.float32)
        (lp, (out_p, _)), _ = value_and_grad(verts + eps * d, weights)
        (lm, (out_m, _)), _ = value_and_grad(verts - eps * d, weights)
        for o in (out_p, out_m):
            np.testing.assert_array_equal(np.asarray(o.face_id)[interior], np.asarray(base.face_id)[interior])
        np.testing.assert_allclose(float((grad * d).sum()), float(lp - lm) / (2 * eps), rtol=1e-2)


def test_patch_size_too_small_is_reported():
    """A patch smaller than the largest triangle's screen bbox raises a ValueError naming K (host check) and shows
    up in `overflow` (in-graph count); the size from patch_size_for gives overflow 0."""
    verts, faces = _plane_grid(n=2)
    cam = _camera()
    k = R.patch_size_for(vertices=verts, faces=faces, camera=cam, height=H, width=W)
    assert k > 4
    with pytest.raises(ValueError, match="patch_size K=4 "):
        R.check_patch_size(vertices=verts, faces=faces, camera=cam, height=H, width=W, patch_size=4)
    R.check_patch_size(vertices=verts, faces=faces, camera=cam, height=H, width=W, patch_size=k)
    assert int(_raster_fn(H, 4)(vertices=verts, faces=faces, camera=cam).overflow) > 0
    assert int(_raster_fn(H, k)(vertices=verts, faces=faces, camera=cam).overflow) == 0
    assert R.patch_size_bound(max_edge_pixels=4.0) == 5


def test_backface_culling_keeps_faces_wound_towards_the_camera():
    """A triangle wound counter-clockwise seen from the camera is kept by cull_backfaces, its reverse is dropped."""
    tri = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.5, 0.0]], np.float32)  # CCW seen from +z
    cam = _camera(eye=(0.0, 0.0, 3.0), size=16)
    draw = jax.jit(functools.partial(R.rasterize, vertices=tri, camera=cam, height=16, width=16, patch_size=16,
                                     cull_backfaces=True))
    for faces, drawn in ((np.array([[0, 1, 2]]), True), (np.array([[0, 2, 1]]), False)):
        assert bool(draw(faces=faces).mask.any()) == drawn


def test_soft_rasterizer_approaches_hard_and_has_silhouette_gradients():
    """With small σ and γ the soft image equals the hard render inside triangles; the soft silhouette gives
    finite, non-zero vertex gradients where the hard mask has none."""
    verts, faces = _plane_grid(n=3)
    colors = np.random.default_rng(3).uniform(size=(len(verts), 3)).astype(np.float32)
    cam = _camera(size=32)
    k = R.patch_size_for(vertices=verts, faces=faces, camera=cam, height=32, width=32)
    soft = functools.partial(R.soft_rasterize, faces=faces, attributes=colors, camera=cam, height=32, width=32,
                             patch_size=k)

    @jax.jit
    def run(v):
        hard = R.rasterize(vertices=v, faces=faces, camera=cam, height=32, width=32, patch_size=k)
        w = _screen_weights(hard, v, faces, cam, 32)
        grad = jax.grad(lambda vv: soft(vertices=vv).alpha.sum())(v)
        return (hard.mask, R.interpolate(attributes=colors, faces=faces, raster=hard), w.min(-1),
                soft(vertices=v, sigma=0.01, gamma=1e-2), grad)

    mask, hard_rgb, wmin, sharp, grad = jax.tree.map(np.asarray, run(verts))
    inner = mask & (wmin > 0.05)
    np.testing.assert_allclose(sharp.rgb[inner], hard_rgb[inner], atol=1e-3)
    np.testing.assert_allclose(sharp.alpha[inner], 1.0, atol=1e-4)
    assert np.abs(sharp.alpha - mask).max() < 0.51
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 1e-3


# ---------------------------------------------------------------------------------------------- texture


def test_bilinear_wraps_in_u_clamps_in_v_and_is_differentiable():
    """Texel centres return texels; u wraps (u = 0 averages the first and last columns, u ± 1 changes nothing); v
    clamps to the edge rows; charts index a stack; d/du is finite across the seam."""
    tex = np.random.default_rng(4).uniform(size=(4, 8, 2)).astype(np.float32)
    u = np.array([5.5 / 8, 0.0, 1.3, 0.3, -0.2, 0.8, 0.0625, 0.0625], np.float32)
    v = np.array([2.5 / 4, 0.625, 0.3, 0.3, 0.3, 0.3, -0.4, 1.2], np.float32)

    @jax.jit
    def run(tex):
        out = R.bilinear(texture=tex, u=u, v=v)
        charts = R.bilinear(texture=jnp.stack([tex, 2 * tex]), u=u[:2], v=v[:2], chart=jnp.array([1, 0]))
        du = jax.grad(lambda uu: R.bilinear(texture=tex, u=uu, v=jnp.float32(0.625))[0])(jnp.float32(0.01))
        return out, charts, du

    out, charts, du = map(np.asarray, run(tex))
    np.testing.assert_allclose(out[0], tex[2, 5], atol=1e-6)
    np.testing.assert_allclose(out[1], 0.5 * (tex[2, 0] + tex[2, 7]), atol=1e-6)
    np.testing.assert_allclose(out[2], out[3], atol=1e-6)
    np.testing.assert_allclose(out[4], out[5], atol=1e-6)
    np.testing.assert_allclose(out[6], tex[0, 0], atol=1e-6)
    np.testing.assert_allclose(out[7], tex[3, 0], atol=1e-6)
    np.testing.assert_allclose(charts, [2 * out[0], out[1]], atol=1e-6)
    np.testing.assert_allclose(du, 8 * (tex[2, 0, 0] - tex[2, 7, 0]), rtol=1e-4)


# ------------------------------------------------------------------------------------------------ volume


def test_composite_matches_hand_computation():
    """Two samples by hand: α = (0.5, 0.8), w = (0.5, 0.4), colour = 0.5 c₁ + 0.4 c₂, opacity 0.9, depth mean;
    a transparent ray is black with opacity and depth 0."""

    @jax.jit
    def run():
        alpha = R.alpha_from_density(density=jnp.log(jnp.array([[2.0, 5.0]])), deltas=jnp.ones((1, 2)))
        rgb = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]])
        t = jnp.array([[1.0, 2.0]])
        return alpha, R.composite(alpha=alpha, rgb=rgb, t=t), R.composite(alpha=jnp.zeros((1, 2)), rgb=rgb, t=t)

    alpha, out, empty = jax.tree.map(np.asarray, run())
    np.testing.assert_allclose(alpha, [[0.5, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(out.weights, [[0.5, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(out.rgb, [[0.5, 0.4, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(out.opacity, [0.9], rtol=1e-6)
    np.testing.assert_allclose(out.depth, [(0.5 * 1 + 0.4 * 2) / 0.9], rtol=1e-6)
    np.testing.assert_allclose([empty.rgb.sum(), empty.opacity[0], empty.depth[0]], 0.0)


def test_volsdf_density_limits_and_neus_alpha():
    """σ → 1/β inside, 1/(2β) on the surface, → 0 outside, finite and monotone at tiny β; Ψ_β is the Laplace CDF;
    NeuS α ≈ 1 across a sharp surface crossing and ≈ 0 for a section that stays outside."""
    from scipy.stats import laplace

    s = np.array([-1.0, -0.1, -0.01, 0.0, 0.01, 0.1, 1.0], np.float32)
    sweep = np.linspace(-1, 1, 101, dtype=np.float32)

    @jax.jit
    def run():
        return (R.volsdf_density(sdf=s, beta=0.02), R.volsdf_density(sdf=sweep, beta=1e-4),
                R.neus_alpha(sdf_start=jnp.array([0.01, 0.5]), sdf_end=jnp.array([-0.01, 0.4]), inv_s=2000.0))

    sigma, tiny, a = map(np.asarray, run())
    np.testing.assert_allclose(sigma, 50.0 * laplace.cdf(-s.astype(np.float64), scale=0.02), rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(sigma[[0, 3, 6]], [50.0, 25.0, 0.0], rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(tiny)) and np.all(np.diff(tiny) <= 0) and tiny[0] == 1e4
    assert a[0] > 0.99 and a[1] < 1e-3


def test_stratified_samples_stay_in_interval():
    """Samples lie in their bins inside [near, far], midpoints without a key, zero-length steps when near = far."""
    near, far = np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 4.0, 3.0], np.float32)
    sample = jax.jit(R.stratified_samples, static_argnames="num_samples")
    t, d = map(np.asarray, sample(key=jax.random.key(5), near=near, far=far, num_samples=8))
    chex.assert_shape([t, d], [(3, 8), (3, 8)])
    assert np.all((t >= near[:, None]) & (t <= far[:, None])) and np.all(np.diff(t[:2], axis=-1) > 0)
    bins = np.floor((t[:2] - near[:2, None]) / ((far - near)[:2, None] / 8))
    np.testing.assert_array_equal(bins, np.broadcast_to(np.arange(8), (2, 8)))
    np.testing.assert_allclose(d[2], 0.0)
    tm, _ = sample(key=None, near=near, far=far, num_samples=4)
    np.testing.assert_allclose(tm[0], [1.125, 1.375, 1.625, 1.875])


def test_compact_rays_round_trip_and_overflow():
    """compact_rays puts the hit rays first (in order) and uncompact scatters per-ray values back, fill elsewhere;
    hit rays beyond the capacity are counted as overflow."""
    hit = np.zeros(50, bool)
    hit[[3, 7, 8, 20, 41]] = True
    index, valid, overflow = R.compact_rays(jnp.asarray(hit), capacity=8)
    np.testing.assert_array_equal(np.asarray(index)[:5], [3, 7, 8, 20, 41])
    assert np.asarray(valid).sum() == 5 and int(overflow) == 0
    values = jnp.asarray(np.arange(50, dtype=np.float32))[index][:, None] * jnp.ones((1, 3))
    back = np.asarray(R.uncompact(values, index, valid, 50, -1.0))
    np.testing.assert_array_equal(back[hit, 0], np.flatnonzero(hit))
    np.testing.assert_array_equal(back[~hit], -1)
    assert int(R.compact_rays(jnp.asarray(hit), capacity=3)[2]) == 2


def _capsule_sdf(p, a, b, r):
    ab = b - a
    h = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - a - h[..., None] * ab, axis=-1) - r


def test_ray_intervals_match_dense_sampling():
    """Sphere, capsule and dilated capsule-union intervals equal the first/last inside point of dense samples along
    each ray (random rays, some starting inside), to the sampling step."""
    rng = np.random.default_rng(6)
    origins = rng.uniform(-1.5, 1.5, (400, 3)).astype(np.float32)
    dirs = rng.uniform(-0.6, 0.6, (400, 3)).astype(np.float32) - origins
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    ts = np.linspace(0.0, 5.0, 5001)
    pts = origins[:, None] + ts[None, :, None] * dirs[:, None]
    centre = np.array([0.1, 0.0, 0.2], np.float32)
    starts = np.array([[0.0, -0.5, 0.0], [0.2, 0.1, 0.1], [-0.5, 0.3, -0.2]], np.float32)
    ends = np.array([[0.0, 0.5, 0.0], [0.7, 0.4, 0.1], [-0.5, 0.3, 0.4]], np.float32)
    radii = np.array([0.15, 0.08, 0.1], np.float32)

    @jax.jit
    def run():
        kw = dict(origins=origins, directions=dirs)
        return (R.ray_sphere_interval(**kw, center=centre, radius=0.4),
                R.ray_capsule_interval(**kw, start=starts[0], end=ends[0], radius=radii[0]),
                R.ray_capsules_interval(**kw, starts=starts, ends=ends, radii=radii, dilate=0.05))

    sdfs = [np.linalg.norm(pts - centre, axis=-1) - 0.4, _capsule_sdf(pts, starts[0], ends[0], radii[0]),
            np.min([_capsule_sdf(pts, a, b, r + 0.05) for a, b, r in zip(starts, ends, radii, strict=True)], 0)]
    for (near, far, hit), sdf in zip(jax.tree.map(np.asarray, run()), sdfs, strict=True):
        inside = sdf <= 0
        rows = inside.any(1)
        assert 0.1 < rows.mean() < 0.95
        np.testing.assert_array_equal(hit, rows)
        np.testing.assert_allclose(near[rows], ts[inside.argmax(1)][rows], atol=2e-3)
        np.testing.assert_allclose(far[rows], ts[inside.shape[1] - 1 - inside[:, ::-1].argmax(1)][rows], atol=2e-3)
        assert np.all(near[~rows] == 0) and np.all(far[~rows] == 0)


# ----------------------------------------------------------------------------------------------- metrics


def test_dm_pix_metrics_match_scikit_image():
    """dm-pix PSNR/SSIM (our wrappers) equal scikit-image's peak_signal_noise_ratio(data_range=1) and
    structural_similarity(data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)."""
    rng = np.random.default_rng(7)
    a = rng.uniform(size=(40, 48, 3)).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    psnr, ssim = jax.jit(lambda a, b: (R.psnr(a, b), R.ssim(a, b)))(a, b)
    an, bn = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(psnr, peak_signal_noise_ratio(an, bn, data_range=1.0), rtol=1e-5)
    ref = structural_similarity(an, bn, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    np.testing.assert_allclose(ssim, ref, atol=1e-4)
    assert 0.2 < ref < 0.95


def test_bbox_psnr_uses_the_mask_bounding_box():
    """bbox PSNR equals PSNR of the crop to the mask's (margin-grown) bbox; SSIM crops are widened to 11 pixels."""
    rng = np.random.default_rng(8)
    a = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    mask = np.zeros((32, 32), bool)
    mask[10, 12] = mask[15, 20] = True

    @jax.jit
    def run(a, b, mask):
        return (R.bbox_mask(mask, margin=1), R.bbox_psnr(a, b, mask=mask, margin=1),
                R.psnr(a[9:17, 11:22], b[9:17, 11:22]), R.bbox_mask(jnp.zeros((4, 4), bool)))

    box, bbox_psnr, crop_psnr, empty_box = map(np.asarray, run(a, b, mask))
    np.testing.assert_array_equal(np.argwhere(box)[[0, -1]], [[9, 11], [16, 21]])
    np.testing.assert_allclose(bbox_psnr, crop_psnr, rtol=1e-5)
    assert not empty_box.any()
    rows, cols = R.bbox_crop_slices(mask, margin=1)
    assert rows.stop - rows.start == 11 and cols.stop - cols.start == 11 and rows.start <= 9 and rows.stop >= 17
    assert np.isfinite(float(R.bbox_ssim(a, b, mask=mask, margin=1)))
    with pytest.raises(ValueError, match="no true pixel"):
        R.bbox_crop_slices(np.zeros((4, 4), bool))
