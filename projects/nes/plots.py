"""nes pictures: a side-by-side grid (ground truth, baseline, NES, error maps) of held-out images, a turntable of a
held-out pose (strip PNG and GIF) and the training curves."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from harness import plotting
from lib import rendering
from lib.metrics import read_jsonl
from projects.nes import bench, body, gt


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def grid(workdir: str, data: dict, renders: dict) -> str:
    """Rows: held-out images (2 novel-view, 2 novel-pose); columns: GT, baseline, NES, |error| of each ×4."""
    rows = [("novel_view", i) for i in range(min(2, len(data["novel_view/pairs"])))]
    rows += [("novel_pose", i) for i in range(min(2, len(data["novel_pose/pairs"])))]
    cols = ["ground truth", "baseline (volume)", "NES (raster)", "|error| baseline ×4", "|error| NES ×4"]
    fig, axes = plotting.figure(len(rows), len(cols), figsize=(2.2 * len(cols), 2.3 * len(rows)), squeeze=False)
    for r, (split, i) in enumerate(rows):
        target = data[f"{split}/rgb"][i]
        b, n = renders[split]["baseline"][i], renders[split]["nes"][i]
        mk = data[f"{split}/mask"][i]
        imgs = [target, b, n, np.abs(b - target).mean(-1) * 4, np.abs(n - target).mean(-1) * 4]
        for c, img in enumerate(imgs):
            ax = axes[r, c]
            ax.imshow(np.clip(img, 0, 1), cmap="inferno" if img.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
            if c == 1 or c == 2:
                p = float(rendering.bbox_psnr(jnp.asarray(img), jnp.asarray(target), mask=jnp.asarray(mk), margin=2))
                ax.set_xlabel(f"{p:.1f} dB", fontsize=8)
        f, cam = data[f"{split}/pairs"][i]
        axes[r, 0].set_ylabel(f"{split}\nframe {f}, cam {cam}", fontsize=8)
    fig.tight_layout()
    path = os.path.join(workdir, "grid.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def turntable(workdir: str, config, data: dict, params: dict, tmpl: body.Template, capacity: int,
              views: int = 12) -> list[str]:
    """A held-out pose seen from `views` cameras on the ring: ground truth / NES / baseline rows (PNG strip) and an
    animated GIF of the three side by side. `capacity`: the ground truth's ray budget (reused when it suffices, so
    the compiled tracer is shared); the models use the compiled paths of the cost table."""
    res = config.data.resolution
    frame = int(data["novel_pose/pairs"][0, 0])
    pose = jnp.asarray(data["poses"][frame])
    rig = gt.cameras(num_cameras=views, radius=config.data.camera_radius, height=res, width=res)
    pairs = np.array([(frame, c) for c in range(views)])
    capacity = max(capacity, gt.ray_capacity(np.asarray(data["poses"]), rig, pairs, height=res, width=res))
    exe = bench.executables(params, tmpl, data["poses"], config, resolution=res)  # compiled by the cost table

    def one(k, w):
        cam = rendering.Camera(k, w)
        return exe["baseline"](params["baseline"], pose, cam), exe["nes"](params["nes"], pose, cam)

    gts = gt.render_split(np.asarray(data["poses"]), rig, pairs, height=res, width=res, steps=config.data.trace_steps,
                          capacity=capacity)["rgb"]
    outs = [jax.device_get(one(rig.intrinsics[c], rig.world_to_camera[c])) for c in range(views)]
    rows = [np.concatenate(list(gts), 1), np.concatenate([o[1] for o in outs], 1),
            np.concatenate([o[0] for o in outs], 1)]
    strip = np.concatenate(rows, 0)
    fig, ax = plotting.figure(figsize=(1.2 * views, 3.9))
    ax.imshow(strip, interpolation="nearest")
    ax.set_yticks([res * 0.5, res * 1.5, res * 2.5], ["ground truth", "NES (raster)", "baseline"])
    ax.set_xticks([])
    ax.set_title(f"held-out pose (frame {frame}), {views} views around the ring", fontsize=9)
    fig.tight_layout()
    path = os.path.join(workdir, "turntable.png")
    fig.savefig(path, dpi=110)
    gif = os.path.join(workdir, "turntable.gif")
    frames = [_u8(np.concatenate([g, o[1], o[0]], 1)) for g, o in zip(gts, outs, strict=True)]
    frames = [np.kron(f, np.ones((2, 2, 1), np.uint8)) for f in frames]
    images = [Image.fromarray(f) for f in frames]  # Pillow: installed with matplotlib, no extra dependency
    images[0].save(gif + ".tmp", format="GIF", save_all=True, append_images=images[1:], duration=250, loop=0)
    os.replace(gif + ".tmp", gif)
    return [os.path.basename(path), os.path.basename(gif)]


def curves(workdir: str) -> str:
    fig, (a1, a2) = plotting.figure(1, 2, figsize=(9, 3.3))
    for kind in ("baseline", "nes"):
        rows = read_jsonl(os.path.join(workdir, kind, "metrics.jsonl"))
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        a1.plot(steps, [r["psnr_rays"] for r in rows], label=kind)
        a2.plot(steps, [r["bce"] for r in rows], label=kind)
    a1.set(xlabel="step", ylabel="training-ray PSNR (dB)")
    a2.set(xlabel="step", ylabel="mask BCE", yscale="log")
    a1.legend()
    fig.tight_layout()
    path = os.path.join(workdir, "training.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def make_all(config, workdir: str, data: dict, renders: dict, params: dict, tmpl: body.Template,
             capacity: int) -> list[str]:
    return [grid(workdir, data, renders), *turntable(workdir, config, data, params, tmpl, capacity),
            curves(workdir)]
