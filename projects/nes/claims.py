"""nes claims (spec §5.8), computed from the run's scores. The paper's numbers could not be read: the "paper" column
gives the paper's qualitative claim and the spec's reconstructed threshold."""

from __future__ import annotations

import numpy as np

from harness.outputs import claim
from lib.stats import mean_ci


def compute(config, scores: dict, iou: np.ndarray, speed: dict, *, overflow: int) -> tuple[dict, list[dict]]:
    metrics: dict = {"rasterizer_overflow_triangles": overflow, "silhouette_iou/mean": float(np.mean(iou)),
                     "silhouette_iou/min": float(np.min(iou))}
    for name, s in scores.items():
        for k, v in s.items():
            metrics[f"{name}/{k}/mean"], metrics[f"{name}/{k}/ci95"] = mean_ci(v) if len(v) > 1 else (
                float(np.mean(v)), 0.0)
    metrics.update(speed)
    mean = lambda key: metrics[f"{key}/mean"]
    claims = []

    claims.append(claim(
        "C3.silhouette_iou",
        "Conversion fidelity: silhouette IoU ≥ 0.97 between the trained NES implicit field (sphere-traced) and its "
        "explicit mesh (rasterized), novel poses",
        paper="fully differentiable SDF ↔ explicit surface conversion (paper §3.2); spec threshold 0.97",
        ours=f"mean IoU {np.mean(iou):.3f} (min {np.min(iou):.3f}, {len(iou)} images)",
        holds=float(np.mean(iou)) >= 0.97))
    rv = mean("novel_pose/nes_raster_vs_volume/psnr")
    claims.append(claim(
        "C3.raster_vs_volume",
        "Rasterized and volume-rendered NES images of the same trained model agree at ≥ 30 dB (bbox PSNR)",
        paper="train implicitly, render explicitly (paper Fig. 2); spec threshold 30 dB",
        ours=f"{rv:.2f} dB (full image {mean('novel_pose/nes_raster_vs_volume/psnr_full'):.2f} dB)",
        holds=rv >= 30.0))

    off = mean("novel_pose/gt_no_pose_effects/psnr")
    claims.append(claim(
        "C4.gt_pose_effects",
        "Pose effects are real: ground truth with pose effects off (f ≡ 0) differs from the true novel-pose images "
        "(bbox PSNR ≤ 32 dB)",
        paper="pose-dependent deformation and texture (paper); spec threshold 32 dB",
        ours=f"{off:.2f} dB", holds=off <= 32.0))
    full, zero = mean("novel_pose/nes/psnr"), mean("novel_pose/nes_zero_pose/psnr")
    claims.append(claim(
        "C4.nes_pose_inputs",
        "NES with G_φ's pose inputs zeroed loses ≥ 1 dB novel-pose PSNR",
        paper="pose-dependent maps (paper); spec threshold 1 dB",
        ours=f"full {full:.2f} dB, zeroed {zero:.2f} dB (Δ {full - zero:+.2f} dB)", holds=full - zero >= 1.0))

    for split, label in (("novel_view", "held-out views"), ("novel_pose", "held-out poses")):
        b, n = mean(f"{split}/baseline/psnr"), mean(f"{split}/nes/psnr")
        bs, ns = mean(f"{split}/baseline/ssim"), mean(f"{split}/nes/ssim")
        fl = mean(f"{split}/floor/psnr")
        claims.append(claim(
            f"C5.parity_{split}",
            f"Quality parity on {label}: NES PSNR ≥ baseline − 1 dB and SSIM ≥ baseline − 0.02 (bbox protocol)",
            paper="quality similar to 3D (volumetric) methods (paper, qualitative); spec thresholds",
            ours=f"PSNR NES {n:.2f} vs baseline {b:.2f} dB; SSIM {ns:.3f} vs {bs:.3f}",
            holds=n >= b - 1.0 and ns >= bs - 0.02))
        claims.append(claim(
            f"C5.above_floor_{split}",
            f"Both methods beat the trivial floor (undisplaced template, mean colour per part) by ≥ 4 dB on {label}",
            paper="spec §5.7 floor; threshold 4 dB",
            ours=f"floor {fl:.2f} dB; baseline {b - fl:+.2f}, NES {n - fl:+.2f} dB",
            holds=min(b, n) - fl >= 4.0))

    r = config.eval.timing_resolution
    tb, tn, tc = (speed[f"seconds/{k}@{r}"] for k in ("baseline", "nes", "nes_cached"))
    full_size = r == 96
    claims.append(claim(
        "C6.speed",
        f"NES renders a frame ≥ 10× faster than the baseline at {r} px (G_φ included), ≥ 20× with the pose maps "
        "cached (median of frames, same process)",
        paper="rendering speed greatly improved (paper); third-party: ~60 ms at 512² on A100s; spec thresholds",
        ours=f"baseline {1e3 * tb:.1f} ms, NES {1e3 * tn:.1f} ms ({tb / tn:.1f}×), cached {1e3 * tc:.1f} ms "
             f"({tb / tc:.1f}×)",
        holds=(tb / tn >= 10 and tb / tc >= 20) if full_size else None))
    res = config.data.resolution
    fb, fn = speed[f"flops/baseline@{res}"], speed[f"flops/nes@{res}"]
    claims.append(claim(
        "C6.flops",
        f"NES needs ≥ 10× fewer FLOPs per frame than the baseline at {res} px (XLA cost analysis)",
        paper="spec §5.8 criterion 6", ours=f"{fb / 1e9:.2f} vs {fn / 1e9:.3f} GFLOP ({fb / fn:.1f}×)",
        holds=fb / fn >= 10 if res == 64 else None))
    mb, mn = speed[f"memory_bytes/baseline@{r}"], speed[f"memory_bytes/nes@{r}"]
    claims.append(claim(
        "C7.memory",
        f"NES render memory ≤ 1/4 of the baseline's at {r} px (XLA temp + argument + output bytes, baseline "
        "unchunked)",
        paper="memory cost reduced (paper); spec threshold 1/4",
        ours=f"{mb / 2**20:.1f} vs {mn / 2**20:.1f} MiB ({mb / mn:.1f}×); parameters "
             f"{speed['param_count/baseline']:.0f} vs {speed['param_count/nes']:.0f}",
        holds=mn <= mb / 4 if full_size else None))
    claims.append(claim(
        "C8.budget",
        "The whole experiment (ground truth, both trainings, evaluation) fits its preset's budget on 2 cores "
        "(quick ≤ 3 min, paper ≤ 20 min)",
        paper="spec §5.8 criterion 8", ours="filled in at the end of the run", holds=None))
    return metrics, claims


def finish_budget(config, claims: list[dict], seconds: float, resumed: bool, *, cpu: float) -> None:
    """Fills the budget claim once the total time is known (None for smoke, or when the run resumed). Judged on wall
    time; the process CPU time is reported beside it (on a shared machine wall time includes other jobs' load)."""
    budget = {"quick": 180.0, "paper": 1200.0}.get(config.preset)
    for c in claims:
        if c["id"] == "C8.budget":
            c["ours"] = (f"{seconds:.0f} s wall, {cpu:.0f} s process CPU"
                         + (" (resumed run: not a full measurement)" if resumed else ""))
            c["holds"] = None if budget is None or resumed else bool(seconds <= budget)
