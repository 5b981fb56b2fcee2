"""nes: surface coordinates invert, the explicit mesh lies on the implicit surface, their silhouettes agree, bad
inputs give clear errors; the smoke run reports every claim and resumes from its checkpoints.
The rasterizer's own acceptance tests (face ids vs brute force, depth, gradients) are in tests/lib/test_rendering.py."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.nes import default
from harness import validation
from lib import rendering
from projects.nes import body, gt, models, run
from tests.nbrun import execute_notebook

EXPECTED = {"C3.silhouette_iou", "C3.raster_vs_volume", "C4.gt_pose_effects", "C4.nes_pose_inputs",
            "C5.parity_novel_view", "C5.above_floor_novel_view", "C5.parity_novel_pose", "C5.above_floor_novel_pose",
            "C6.speed", "C6.flops", "C7.memory", "C8.budget"}


def test_surface_coordinates_invert():
    """coords(surface_point(u, v) + h n) = (u, v, h): 1e-5 on the shaft, 1e-4 on the caps, away from the poles."""
    rng = np.random.default_rng(0)
    k = rng.integers(0, body.NUM_PARTS, 2000)
    u, v = rng.uniform(0, 1, 2000).astype(np.float32), rng.uniform(0.02, 0.98, 2000).astype(np.float32)
    h = rng.uniform(-0.02, 0.02, 2000).astype(np.float32)
    length, radius = jnp.asarray(body.LENGTH)[k], jnp.asarray(body.RADIUS)[k]
    p, n = body.surface_point(jnp.asarray(u), jnp.asarray(v), length, radius)
    u2, v2, h2 = body.coords(p + jnp.asarray(h)[:, None] * n, length, radius)
    du = np.abs(np.asarray(u2) - u)
    du = np.minimum(du, 1 - du)
    err = np.maximum(np.maximum(du, np.abs(np.asarray(v2) - v)), np.abs(np.asarray(h2) - h))
    cap = 0.5 * np.pi * body.RADIUS[k] / (body.LENGTH[k] + np.pi * body.RADIUS[k])
    shaft = (v > cap + 1e-3) & (v < 1 - cap - 1e-3)
    assert err[shaft].max() < 1e-5 and err.max() < 1e-4


def _random_maps(seed=0, size=(16, 32)):
    d_max = 0.3 * jnp.asarray(body.RADIUS)[:, None, None]
    raw = jax.random.normal(jax.random.key(seed), (body.NUM_PARTS, *size))
    smooth = (raw + jnp.roll(raw, 1, -1) + jnp.roll(raw, -1, -1)) / 3  # gentle slopes (spec P2)
    return {"D": d_max * jnp.tanh(0.5 * smooth)}


def test_explicit_vertices_lie_on_the_implicit_surface():
    """Criterion 3a: for a fixed random D, every non-pole mesh vertex has |h_k − D_k(u_k, v_k)| < 2e-3 r_k on its
    own part."""
    tmpl = body.template(24, 12)
    maps = _random_maps()
    pose = jnp.asarray(body.motion(10)[7])
    verts = models.nes_mesh(tmpl, maps, pose)
    u, v, h = body.part_coords(verts, body.forward_kinematics(pose))
    pick = lambda a: np.asarray(a)[np.arange(len(tmpl.part)), tmpl.part]
    d = rendering.bilinear(texture=maps["D"][..., None], u=jnp.asarray(pick(u)), v=jnp.asarray(pick(v)),
                           chart=jnp.asarray(tmpl.part))[..., 0]
    s = np.abs(pick(h) - np.asarray(d))
    not_pole = (tmpl.uv[:, 1] > 0) & (tmpl.uv[:, 1] < 1)
    assert np.all(s[not_pole] < 2e-3 * body.RADIUS[tmpl.part[not_pole]])


def test_raster_silhouette_matches_sphere_traced_implicit():
    """Criterion 3b: for a fixed random D, the rasterized mesh (the default 24 × 12 grid per part) and the
    sphere-traced s = h − D agree: mean IoU ≥ 0.97 over four 64-px images (the claim's statistic)."""
    tmpl = body.template(24, 12)
    maps = _random_maps(1)
    res = 64
    rig = gt.cameras(num_cameras=8, radius=3.0, height=res, width=res)

    @jax.jit
    def masks(pose, k, w):
        cam = rendering.Camera(k, w)
        rt = body.forward_kinematics(pose)
        r = rendering.rasterize(vertices=models.nes_mesh(tmpl, maps, pose), faces=jnp.asarray(tmpl.faces),
                                camera=cam, height=res, width=res, patch_size=6)
        o, d = rendering.camera_rays(camera=cam, height=res, width=res)
        _, hit = gt.sphere_trace(lambda x: models.nes_field(maps, x, rt)["s"], o, d, rt, steps=64)
        return r.mask, hit

    poses = body.motion(40)
    ious = []
    for f, c in ((5, 0), (33, 3), (12, 6), (25, 1)):
        a, b = (np.asarray(m) for m in masks(jnp.asarray(poses[f]), rig.intrinsics[c], rig.world_to_camera[c]))
        ious.append((a & b).sum() / (a | b).sum())
    assert np.mean(ious) >= 0.97 and min(ious) >= 0.95, ious


def test_neus_opacity_keeps_grazing_silhouettes_unbiased():
    """Why NES trains with NeuS opacity (README, "Choices"): on the undisplaced head at β = 3 mm, a ray passing 6 mm
    outside the surface is mostly opaque under VolSDF (so training shrinks the surface to hold the silhouette) and
    mostly transparent under NeuS, whose tangent ray is half opaque."""
    pose = jnp.zeros((body.NUM_PARTS, 3))
    starts, ends = (np.asarray(a) for a in body.capsule_segments(body.forward_kinematics(pose)))
    k = body.NAMES.index("head")
    axis = (ends[k] - starts[k]) / np.linalg.norm(ends[k] - starts[k])
    side = np.cross(axis, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    d = np.cross(side, axis)
    offsets = np.array([-0.006, 0.0, 0.006])
    o = (starts[k] + ends[k]) / 2 + (body.RADIUS[k] + offsets)[:, None] * side - 1.5 * d
    params = {"decoder": models.Decoder().init(jax.random.key(0), jnp.zeros((1, 8)), jnp.zeros((1, 3)))}
    maps = {"D": jnp.zeros((body.NUM_PARTS, 16, 32)), "T": jnp.zeros((body.NUM_PARTS, 16, 32, 8)),
            "normal": jnp.zeros((body.NUM_PARTS, 16, 32, 3))}
    render = jax.jit(lambda o, d, dens: models.nes_volume_rays(params, maps, pose, o, d, num_samples=32, window=0.3,
                                                               beta=0.003, density=dens).opacity, static_argnums=2)
    rays = jnp.asarray(o, jnp.float32), jnp.asarray(np.broadcast_to(d, o.shape), jnp.float32)
    opacity = {dens: np.asarray(render(*rays, dens)) for dens in models.DENSITIES}
    assert opacity["volsdf"][2] > 0.5 and opacity["volsdf"][0] > 0.99, opacity
    assert opacity["neus"][2] < 0.2 and 0.4 < opacity["neus"][1] < 0.6 and opacity["neus"][0] > 0.8, opacity


@pytest.mark.parametrize("field,value,message", [
    ("data.resolution", 0, "config.data.resolution=0 is invalid: expected an integer >= 16 and <= 256"),
    ("data.camera_radius", 0.2, "config.data.camera_radius=0.2 is invalid: expected a radius that keeps every "
                                "camera outside the body"),
    ("data.train_frames", 6, "config.data.train_frames=6 is invalid: expected an integer in [1, num_frames - 1"),
    ("train.rays_per_step", 65, "config.train.rays_per_step=65 is invalid: expected a multiple of"),
    ("model.density", "nerf", "config.model.density='nerf' is invalid: expected one of"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted (resolution 0, a camera inside the body, ...)."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_pose_index_out_of_range_is_refused():
    """render_pose names a frame or camera outside the sequence / rig before rendering anything."""
    config = default.get_config("smoke")
    poses = body.motion(config.data.num_frames)
    with pytest.raises(ValueError, match=re.escape("frame=6 is out of range: expected an integer in [0, 5]")):
        run.render_pose(config, {}, poses, frame=6, camera=0)
    with pytest.raises(ValueError, match=re.escape("camera=-1 is out of range")):
        run.render_pose(config, {}, poses, frame=0, camera=-1)
    with pytest.raises(ValueError, match=re.escape("resolution=0 is invalid: expected an integer in [16, 512]")):
        run.render_pose(config, {}, poses, frame=0, camera=0, resolution=0)


@pytest.mark.slow
def test_ground_truth_on_hull_rays_only_is_the_same_image():
    """Tracing only the rays that cross the dilated-capsule hull (ray compaction) changes no pixel, and the pose
    effects switch (a traced flag) changes the image. (Slow: three tracer compilations, about 15 s.)"""
    rig = gt.cameras(num_cameras=8, radius=3.0, height=24, width=24)
    pose, cam = jnp.asarray(body.motion(12)[11]), rendering.Camera(rig.intrinsics[1], rig.world_to_camera[1])
    full = gt.render(pose, cam, height=24, width=24, steps=24)
    pairs = np.array([[11, 1]])
    cap = gt.ray_capacity(body.motion(12), rig, pairs, height=24, width=24)
    assert cap < 24 * 24
    part = gt.render(pose, cam, height=24, width=24, steps=24, capacity=cap)
    assert int(part["overflow"]) == 0
    for k in ("rgb", "mask", "part", "depth"):
        np.testing.assert_allclose(np.asarray(part[k], float), np.asarray(full[k], float), atol=1e-5)
    off = gt.render(pose, cam, height=24, width=24, steps=24, capacity=cap, pose_effects=False)
    assert np.abs(np.asarray(off["rgb"]) - np.asarray(part["rgb"])).max() > 0.05


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nes_smoke")
    return workdir, run.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_writes_every_claim_and_picture(smoke):
    """Smoke preset: every claim id with holds in {True, False, None}, the grid / turntable / curves, finite metrics."""
    from projects.reproduce import REGISTRY

    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "nes" and on_disk["preset"] == "smoke"
    assert {c["id"] for c in on_disk["claims"]} == EXPECTED
    assert next(p for p in REGISTRY if p.name == "nes").built
    assert set(res["plots"]) == {"grid.png", "turntable.png", "turntable.gif", "training.png"}
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 2_000
    m = res["metrics"]
    assert m["rasterizer_overflow_triangles"] == 0
    assert np.isfinite(m["novel_pose/nes/psnr/mean"]) and np.isfinite(m["novel_view/baseline/psnr/mean"])
    # training lowers each model's loss on one fixed batch (logged losses are of different poses, one per step)
    config = default.get_config("smoke")
    data = run.make_data(config, str(workdir))
    batch = {**run.RaySampler(config, data)(0), "beta": np.float32(config.train.beta_start)}
    params0 = models.init_params(jax.random.key(config.seed), map_size=(config.model.map_height,
                                                                         config.model.map_width))
    trained = run.load_params(config, str(workdir))
    for kind in run.MODELS:
        loss = jax.jit(run.make_loss(kind, config))
        before, after = (float(loss(p[kind], batch, jax.random.key(0))[0]) for p in (params0, trained))
        assert after < before, (kind, before, after)


def test_rerun_resumes_from_checkpoints(smoke):
    """A second run in the same workdir loads the finished checkpoints and the cached ground truth (no retraining)
    and reports the same numbers."""
    workdir, res = smoke
    again = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    assert again["metrics"]["train_seconds/nes"] < 5.0
    for k, v in res["metrics"].items():
        if "seconds" not in k and "@" not in k:
            assert again["metrics"][k] == pytest.approx(v, rel=1e-5, abs=1e-5), k


@pytest.mark.slow
def test_notebook_runs_on_the_smoke_run(smoke, tmp_path, monkeypatch):
    """colab/nes.ipynb top to bottom on this module's smoke run: the notebook resumes it (the same config) and runs
    every one of its cells. Under `-m slow` (52 s here, the longest test of the default run on 2026-12-06, whose
    nes module is the longest single-worker chain); the notebook's own fresh run is `tests/test_notebooks.py`."""
    execute_notebook("nes", tmp_path, monkeypatch, reuse=smoke[0])
