"""Render speed, FLOPs and memory of the three render paths (spec §5.7, criteria 6–7), shared by the run's claims
and `benchmarks/nes_render.py`.

Paths: the baseline (volume rendering of a full frame, unchunked), NES (G_φ forward + mesh + raster + one decoder
call per pixel) and NES pose-cached (maps and mesh reused: raster + decode). Time: median over frames of jitted
calls after a warm-up call, with `block_until_ready`. FLOPs: XLA's `cost_analysis()`; memory: XLA's
`memory_analysis()` temp + argument + output bytes of one full-frame render (spec P8).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from lib import rendering
from projects.nes import body, gt, models


def render_fns(params, tmpl: body.Template, poses: np.ndarray, config, *, resolution: int) -> dict:
    """{"baseline", "nes", "nes_cached"}: jitted f(pose, camera) → rgb [H, W, 3] at `resolution`, plus the
    cached path's inputs builder."""
    m = config.model
    size = (m.map_height, m.map_width)
    rig = gt.cameras(num_cameras=config.data.num_cameras, radius=config.data.camera_radius, height=resolution,
                     width=resolution)
    verts = jax.jit(jax.vmap(lambda p: body.mesh_vertices(tmpl, body.forward_kinematics(p),
                                                          jnp.zeros(tmpl.uv.shape[0]))))(jnp.asarray(poses))
    k = rendering.patch_size_for(vertices=verts, faces=tmpl.faces, camera=rig, height=resolution,
                                 width=resolution) + 2

    def base(p, pose, cam):
        o, d = rendering.camera_rays(camera=cam, height=resolution, width=resolution)
        return models.baseline_render_rays(p, models.Baseline(), pose, o, d, num_samples=m.num_samples,
                                           window=m.window).rgb

    def nes(p, pose, cam):
        return models.nes_render(p, tmpl, pose, cam, height=resolution, width=resolution, patch_size=k,
                                 map_size=size)

    def cached(p, maps, vertices, cam):
        return models.nes_raster_image(p, maps, vertices, tmpl, cam, height=resolution, width=resolution,
                                       patch_size=k)[0]

    def prepare(p, pose):
        maps = models.nes_maps(p, pose, height=size[0], width=size[1])
        return maps, models.nes_mesh(tmpl, maps, pose)

    return {"baseline": jax.jit(base), "nes": jax.jit(nes), "nes_cached": jax.jit(cached),
            "prepare": jax.jit(prepare), "rig": rig, "patch_size": k, "resolution": resolution,
            "config_key": (config.to_json(), k)}


_EXECUTABLES: dict = {}  # (resolution, config) → compiled paths, shared by `measure` and `costs`


def _compiled(fns, params, pose, cache, cam) -> dict:
    """AOT-compiled executables of the three paths (compiled once per resolution and config)."""
    key = (fns["resolution"], fns["config_key"])
    if key not in _EXECUTABLES:
        _EXECUTABLES[key] = {"baseline": fns["baseline"].lower(params["baseline"], pose, cam).compile(),
                             "nes": fns["nes"].lower(params["nes"], pose, cam).compile(),
                             "nes_cached": fns["nes_cached"].lower(params["nes"], *cache, cam).compile()}
    return _EXECUTABLES[key]


def _camera(rig, i):
    n = rig.intrinsics.shape[0]
    return rendering.Camera(rig.intrinsics[i % n], rig.world_to_camera[i % n])


def executables(params, tmpl, poses, config, *, resolution: int) -> dict:
    """The compiled {"baseline", "nes", "nes_cached"} paths at `resolution` (compiled on first use, then shared by
    `measure`, `costs` and the turntable picture); "baseline" and "nes" take (params, pose, camera)."""
    fns = render_fns(params, tmpl, poses, config, resolution=resolution)
    key = (fns["resolution"], fns["config_key"])
    if key in _EXECUTABLES:
        return _EXECUTABLES[key]
    pose = jnp.asarray(poses[0])
    return _compiled(fns, params, pose, fns["prepare"](params["nes"], pose), _camera(fns["rig"], 0))


def measure(params, tmpl, poses, config, *, resolution: int, frames: int) -> dict:
    """Median seconds per frame of each path at `resolution` (frames cycle through poses and the 8 ring cameras)."""
    fns = render_fns(params, tmpl, poses, config, resolution=resolution)
    rig, out = fns["rig"], {}
    pose = lambda i: jnp.asarray(poses[i % len(poses)])
    cache = fns["prepare"](params["nes"], pose(0))
    exe = _compiled(fns, params, pose(0), cache, _camera(rig, 0))
    calls = {"baseline": lambda i: exe["baseline"](params["baseline"], pose(i), _camera(rig, i)),
             "nes": lambda i: exe["nes"](params["nes"], pose(i), _camera(rig, i)),
             "nes_cached": lambda i: exe["nes_cached"](params["nes"], *cache, _camera(rig, i))}
    times = {k: [] for k in calls}
    for call in calls.values():
        jax.block_until_ready(call(0))  # compile
    for i in range(frames):  # interleaved, so load changes on the shared machine hit every path alike
        for k, call in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call(i))
            times[k].append(time.perf_counter() - t0)
    for k, v in times.items():
        out[f"seconds/{k}@{resolution}"] = float(np.median(v))
    return out


def costs(params, tmpl, poses, config, *, resolution: int) -> dict:
    """XLA FLOPs and render memory (temp + argument + output bytes) of each path at `resolution`."""
    fns = render_fns(params, tmpl, poses, config, resolution=resolution)
    cam = _camera(fns["rig"], 0)
    pose = jnp.asarray(poses[0])
    maps, verts = fns["prepare"](params["nes"], pose)
    exe = _compiled(fns, params, pose, (maps, verts), cam)
    out = {}
    for k, c in exe.items():
        ca = c.cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        mem = c.memory_analysis()
        out[f"flops/{k}@{resolution}"] = float(ca.get("flops", float("nan")))
        out[f"memory_bytes/{k}@{resolution}"] = float(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                                      + mem.output_size_in_bytes)
    out["param_count/baseline"] = float(sum(x.size for x in jax.tree.leaves(params["baseline"])))
    out["param_count/nes"] = float(sum(x.size for x in jax.tree.leaves(params["nes"])))
    return out
