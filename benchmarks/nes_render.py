"""Benchmark: per-frame render time, FLOPs and memory of NES (rasterized explicit surface) against the volumetric
baseline, at 64, 96 and 128 px, in one process (spec nes §5.7, criteria 6–7).

    python benchmarks/nes_render.py                 # writes the nes section of benchmarks/RESULTS.md
    python benchmarks/nes_render.py --workdir=runs/nes   # the trained weights of a finished run (same cost)
    python benchmarks/nes_render.py --workdir=runs/nes --hull_rays=96   # prints only: the baseline with ray compaction

Paths: baseline = a full frame volume-rendered unchunked (32 samples per ray over the shared empty-space-skipping
window, MLP 4 × 128 per sample); NES = G_φ forward + displaced mesh + z-buffer rasterization + one decoder query per
pixel; NES cached = the pose-dependent maps and mesh reused (raster + decode). Time: median of `--frames` jitted
calls after a warm-up, interleaved across paths, `block_until_ready`. FLOPs: XLA `cost_analysis()`. Memory: XLA
`memory_analysis()` temp + argument + output bytes (spec P8: peak_memory_in_bytes is unreliable on CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness import runtime  # noqa: E402

runtime.configure_xla_cpu_threads()

import jax  # noqa: E402

from configs.nes import default  # noqa: E402
from projects.nes import bench, body, models, run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--workdir", default="", help="load trained weights from this run (default: initial weights)")
    ap.add_argument("--resolutions", default="64,96,128")
    ap.add_argument("--hull_rays", type=int, default=0,
                    help="print the baseline's time with ray compaction (only hull rays rendered) at this resolution "
                         "against the spec's full-frame baseline and NES (process CPU time, median of --frames), "
                         "and exit")
    args = ap.parse_args()
    config = default.get_config("quick")
    if args.workdir:
        params = run.load_params(config, args.workdir)
    else:
        params = models.init_params(jax.random.key(0), map_size=(config.model.map_height, config.model.map_width))
    tmpl = body.template(config.model.mesh_u, config.model.mesh_v)
    poses = body.motion(config.data.num_frames)
    if args.hull_rays:
        hull_rays(params, tmpl, poses, config, args.hull_rays, args.frames)
        return
    rows = []
    for res in (int(r) for r in args.resolutions.split(",")):
        r = bench.measure(params, tmpl, poses, config, resolution=res, frames=args.frames)
        r.update(bench.costs(params, tmpl, poses, config, resolution=res))
        g = lambda k, res=res, r=r: r[f"{k}@{res}"]
        rows.append((res, r))
        print(f"{res}px  baseline {1e3 * g('seconds/baseline'):.1f} ms  NES {1e3 * g('seconds/nes'):.1f} ms "
              f"({g('seconds/baseline') / g('seconds/nes'):.1f}x)  cached {1e3 * g('seconds/nes_cached'):.1f} ms "
              f"({g('seconds/baseline') / g('seconds/nes_cached'):.1f}x)  FLOPs "
              f"{g('flops/baseline') / g('flops/nes'):.1f}x  memory "
              f"{g('memory_bytes/baseline') / g('memory_bytes/nes'):.1f}x",
              flush=True)
    table = []
    for res, r in rows:
        g = lambda k, res=res, r=r: r[f"{k}@{res}"]
        tb, tn, tc = g("seconds/baseline"), g("seconds/nes"), g("seconds/nes_cached")
        fb, fn = g("flops/baseline"), g("flops/nes")
        mb, mn = g("memory_bytes/baseline"), g("memory_bytes/nes")
        table.append(f"| {res}² | {1e3 * tb:.1f} | {1e3 * tn:.1f} | {1e3 * tc:.1f} | **{tb / tn:.1f}×** | "
                     f"**{tb / tc:.1f}×** | {fb / 1e9:.2f} / {fn / 1e9:.3f} ({fb / fn:.1f}×) | "
                     f"{mb / 2**20:.1f} / {mn / 2**20:.1f} ({mb / mn:.1f}×) |")
    p = rows[0][1]
    section = [
        "## nes render: NES (rasterized explicit surface) vs the volumetric baseline",
        "",
        f"`python benchmarks/nes_render.py` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), "
        f"jax {jax.__version__}, single-threaded XLA, {time.strftime('%Y-%m-%d')}, "
        + (f"trained weights from {args.workdir}" if args.workdir else "initial weights (cost does not depend on them)")
        + ". "
        f"Median of {args.frames} frames per path (interleaved, after a warm-up call); the quick preset's models: "
        f"baseline MLP 4 × 128 on {config.model.num_samples} samples per ray, NES U-Net on "
        f"{config.model.map_height} × {config.model.map_width} charts × 11 parts, "
        f"{len(tmpl.faces)} triangles. Parameters: baseline {p['param_count/baseline']:.0f}, "
        f"NES {p['param_count/nes']:.0f} (NES holds more parameters; its saving is per-pixel work and working memory).",
        "",
        "| image | baseline ms | NES ms | NES cached ms | speed-up | speed-up cached | GFLOP baseline / NES | "
        "render memory MiB baseline / NES |",
        "|---|---|---|---|---|---|---|---|",
        *table,
        "",
        "Spec criteria: ≥ 10× faster at 96² (≥ 20× cached), ≥ 10× fewer FLOPs at 64², ≤ 1/4 of the memory. The "
        "baseline's cost grows with pixels × samples; NES pays a fixed G_φ forward per pose plus a rasterizer whose "
        "cost grows with triangles × K² (K the static patch size). The machine is shared, so absolute times vary; "
        "the ratios are measured back to back in one process.",
        "",
    ]
    write_section("nes render", section)


def hull_rays(params, tmpl, poses, config, res: int, frames: int) -> None:
    """The spec's baseline renders every pixel (rays that miss the hull get zero-length windows but still pay the
    MLP); ray compaction renders only the hull rays, the same image. Interleaved, process CPU time (shared cores)."""
    import jax.numpy as jnp
    import numpy as np

    from lib import rendering
    from projects.nes import gt

    fns = bench.render_fns(params, tmpl, poses, config, resolution=res)
    rig, m = fns["rig"], config.model
    pairs = np.array([(f, c) for f in range(len(poses)) for c in range(rig.intrinsics.shape[0])])
    cap = gt.ray_capacity(poses, rig, pairs, height=res, width=res)

    def compact(p, pose, cam):
        o, d = rendering.camera_rays(camera=cam, height=res, width=res)
        return run._on_hull_rays(lambda o, d: models.baseline_render_rays(p, models.Baseline(), pose, o, d,
                                                                          num_samples=m.num_samples,
                                                                          window=m.window).rgb, pose, o, d, cap)[0]

    calls = {"baseline": (jax.jit(fns["baseline"]), "baseline"), "baseline_hull_rays": (jax.jit(compact), "baseline"),
             "nes": (jax.jit(fns["nes"]), "nes")}
    cam = lambda i: rendering.Camera(rig.intrinsics[i % 8], rig.world_to_camera[i % 8])
    out = {k: [] for k in calls}
    for i in range(frames + 1):
        for k, (f, which) in calls.items():
            c0 = time.process_time()
            img = jax.block_until_ready(f(params[which], jnp.asarray(poses[i % len(poses)]), cam(i)))
            if i:
                out[k].append(time.process_time() - c0)
            elif k == "baseline_hull_rays":
                full = calls["baseline"][0](params["baseline"], jnp.asarray(poses[0]), cam(0))
                print(f"max |full frame - hull rays| = {float(jnp.abs(full - img).max()):.2g}; capacity {cap} of "
                      f"{res * res} rays")
    med = {k: 1e3 * float(np.median(v)) for k, v in out.items()}
    print(f"{res}px, ms of process CPU: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
          + f"; baseline / NES {med['baseline'] / med['nes']:.1f}x, hull-ray baseline / NES "
          f"{med['baseline_hull_rays'] / med['nes']:.1f}x", flush=True)


if __name__ == "__main__":
    main()
