"""nes experiment (spec §5): ground truth by sphere tracing, the volumetric baseline and NES trained on the same
rays, evaluation on held-out views and poses, conversion fidelity, the pose ablation, speed / FLOPs / memory.

Importable pieces: `validate`, `make_data`, `train_model`, `render_eval`, `train_and_evaluate`. The ground truth is
cached in `workdir/data.npz`; each model checkpoints to `workdir/checkpoints/<model>/` (orbax, atomic), so a rerun
(even after SIGKILL) resumes training where it stopped and a finished run only re-evaluates.
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import outputs, validation
from lib import rendering
from lib.checkpoint import Checkpointer
from lib.metrics import MetricWriter, check_finite, progress, read_npz_or_none, write_npz_atomic
from projects.nes import bench, body, gt, models, plots
from projects.nes import claims as claims_lib

MODELS = ("baseline", "nes")
GT_VERSION = 2  # bump when the ground truth changes (a cached data.npz of another version is rendered again)


def validate(config) -> None:
    """Checks every field this project reads; raises ConfigError naming field, value, accepted."""
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    res = validation.require_int(config, "data.resolution", min_value=16, max_value=256)
    nf = validation.require_int(config, "data.num_frames", min_value=2, max_value=1000)
    tf = validation.require_int(config, "data.train_frames", min_value=1)
    validation.require(tf < nf, "data.train_frames", tf, f"an integer in [1, num_frames - 1 = {nf - 1}]")
    nc = validation.require_int(config, "data.num_cameras", min_value=2, max_value=64)
    validation.require(nc % 2 == 0, "data.num_cameras", nc, "an even integer (even cameras train, odd test)")
    validation.require_float(config, "data.camera_radius", min_value=0.1, max_value=50.0)
    validation.require_int(config, "data.view_stride", min_value=1)
    validation.require_int(config, "data.pose_stride", min_value=1)
    validation.require_int(config, "data.trace_steps", min_value=8, max_value=1000)
    validation.require_int(config, "data.motion_seed", min_value=0)
    for f in ("model.map_height", "model.map_width"):
        v = validation.require_int(config, f, min_value=4, max_value=256)
        validation.require(v % 2 == 0, f, v, "an even integer in [4, 256] (the U-Net halves it once)")
    validation.require_int(config, "model.mesh_u", min_value=3, max_value=256)
    validation.require_int(config, "model.mesh_v", min_value=2, max_value=256)
    validation.require_int(config, "model.num_samples", min_value=2, max_value=1024)
    validation.require_float(config, "model.window", min_value=0.05, max_value=5.0)
    validation.require_choice(config, "model.density", models.DENSITIES)
    validation.require_int(config, "train.steps", min_value=1)
    validation.require_int(config, "train.frames_per_step", min_value=1, max_value=tf)
    rays = validation.require_int(config, "train.rays_per_step", min_value=1)
    per = config.train.frames_per_step * (nc // 2)
    validation.require(rays % per == 0, "train.rays_per_step", rays,
                       f"a multiple of frames_per_step × training cameras = {per}")
    validation.require_probability(config, "train.fg_fraction")
    validation.require_float(config, "train.lr", min_value=0.0, max_value=1.0, strict=True)
    b0 = validation.require_float(config, "train.beta_start", min_value=models.BETA_MIN, max_value=1.0)
    b1 = validation.require_float(config, "train.beta_end", min_value=models.BETA_MIN, max_value=1.0)
    validation.require(b1 <= b0, "train.beta_end", b1, f"a number in [{models.BETA_MIN}, beta_start = {b0}]")
    for f in ("train.mask_weight", "train.tv_weight", "train.mag_weight"):
        validation.require_float(config, f, min_value=0.0, max_value=100.0)
    validation.require_int(config, "train.log_every", min_value=1)
    validation.require_int(config, "train.checkpoint_every", min_value=1)
    validation.require_int(config, "eval.max_images", min_value=0)
    validation.require_int(config, "eval.bbox_margin", min_value=0, max_value=res)
    validation.require_int(config, "eval.timing_resolution", min_value=16, max_value=256)
    validation.require_int(config, "eval.timing_frames", min_value=1, max_value=1000)
    poses = body.motion(nf, seed=config.data.motion_seed)
    clearance = gt.min_clearance(poses, gt.camera_eyes(num_cameras=nc, radius=config.data.camera_radius))
    validation.require(clearance > 0.05, "data.camera_radius", config.data.camera_radius,
                       f"a radius that keeps every camera outside the body (clearance {clearance:+.3f} m; "
                       "at least 0.05 m needed, e.g. 3.0)")


# --------------------------------------------------------------------------------------------------- data


def make_data(config, workdir: str) -> dict:
    """Poses, the ring rig and the ground truth of every split, cached in `workdir/data.npz` (atomic)."""
    d = config.data
    path = os.path.join(workdir, "data.npz")
    poses = body.motion(d.num_frames, seed=d.motion_seed)
    rig = gt.cameras(num_cameras=d.num_cameras, radius=d.camera_radius, height=d.resolution, width=d.resolution)
    pairs = gt.splits(num_frames=d.num_frames, train_frames=d.train_frames, num_cameras=d.num_cameras,
                      view_stride=d.view_stride, pose_stride=d.pose_stride)
    if config.eval.max_images:
        rng = np.random.default_rng(config.seed)
        for s in ("novel_view", "novel_pose"):
            if len(pairs[s]) > config.eval.max_images:
                keep = np.sort(rng.choice(len(pairs[s]), config.eval.max_images, replace=False))
                pairs[s] = pairs[s][keep]
    stamp = np.asarray(json.dumps({"data": config.data.to_dict(), "gt": GT_VERSION,
                                   "pairs": {k: v.tolist() for k, v in pairs.items()}}, sort_keys=True))
    cached = read_npz_or_none(path)
    if cached is not None and str(cached.get("stamp", "")) != str(stamp):
        cached = None  # another config or an older ground truth: render again
    from_cache = cached is not None
    if cached is None:
        out = {"poses": poses, "stamp": stamp}
        total = sum(len(p) for p in pairs.values()) + len(pairs["novel_pose"])
        t0 = time.time()
        out["capacity"] = np.int64(gt.ray_capacity(poses, rig, np.concatenate(list(pairs.values())),
                                                   height=d.resolution, width=d.resolution))
        kw = dict(height=d.resolution, width=d.resolution, steps=d.trace_steps, capacity=int(out["capacity"]))
        with progress(total, desc="nes ground truth", unit="image") as bar:
            for s, p in pairs.items():
                g = gt.render_split(poses, rig, p, bar=bar, **kw)
                out.update({f"{s}/pairs": p, **{f"{s}/{k}": v for k, v in g.items()}})
            off = gt.render_split(poses, rig, pairs["novel_pose"], pose_effects=False, bar=bar, **kw)
            out["novel_pose/rgb_no_pose_effects"] = off["rgb"]
        out["seconds"] = np.float64(time.time() - t0)
        write_npz_atomic(path, out)
        cached = read_npz_or_none(path)
    cached["rig"] = rig
    cached["from_cache"] = from_cache
    return cached


def ray_bank(rig: rendering.Camera, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and directions of every camera of the rig, each [C, H, W, 3]."""
    o, d = jax.vmap(lambda k, w: rendering.camera_rays(camera=rendering.Camera(k, w), height=resolution,
                                                       width=resolution))(rig.intrinsics, rig.world_to_camera)
    return np.asarray(o), np.asarray(d)


def _bboxes(masks: np.ndarray, margin: int) -> np.ndarray:
    """Per image [N, 4] (row0, row1, col0, col1), inclusive, of the mask's bbox grown by `margin` (whole image if
    the mask is empty)."""
    n, h, w = masks.shape
    out = np.tile(np.array([0, h - 1, 0, w - 1]), (n, 1))
    for i, m in enumerate(masks):
        if m.any():
            r, c = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            out[i] = [max(r[0] - margin, 0), min(r[-1] + margin, h - 1), max(c[0] - margin, 0),
                      min(c[-1] + margin, w - 1)]
    return out


class RaySampler:
    """Training batches: `frames_per_step` training poses, all their training views, rays per view drawn
    `fg_fraction` inside the mask's bounding box and the rest uniformly (spec §5.6). Deterministic in (seed, step)."""

    def __init__(self, config, data: dict):
        self.cfg = config
        pairs = data["train/pairs"]
        self.frames = np.unique(pairs[:, 0])
        self.cams = np.unique(pairs[:, 1])
        index = {(int(f), int(c)): i for i, (f, c) in enumerate(pairs)}
        self.image = np.array([[index[(int(f), int(c))] for c in self.cams] for f in self.frames])
        self.rgb, self.mask = data["train/rgb"], data["train/mask"]
        self.boxes = _bboxes(self.mask, 2)
        self.poses = data["poses"]
        self.origins, self.dirs = ray_bank(data["rig"], config.data.resolution)

    def __call__(self, step: int) -> dict:
        cfg = self.cfg.train
        rng = np.random.default_rng([self.cfg.seed, step])
        fi = rng.choice(len(self.frames), cfg.frames_per_step, replace=False)
        per = cfg.rays_per_step // (cfg.frames_per_step * len(self.cams))
        res = self.cfg.data.resolution
        img = self.image[fi]  # [B, C]
        box = self.boxes[img]  # [B, C, 4]
        fg = rng.random((*img.shape, per)) < cfg.fg_fraction
        u = rng.random((*img.shape, per, 2))
        r_fg = box[..., 0, None] + np.floor(u[..., 0] * (box[..., 1, None] - box[..., 0, None] + 1))
        c_fg = box[..., 2, None] + np.floor(u[..., 1] * (box[..., 3, None] - box[..., 2, None] + 1))
        rows = np.where(fg, r_fg, np.floor(u[..., 0] * res)).astype(int)
        cols = np.where(fg, c_fg, np.floor(u[..., 1] * res)).astype(int)
        cam = np.broadcast_to(self.cams[None, :, None], rows.shape)
        imgb = np.broadcast_to(img[..., None], rows.shape)
        flat = lambda a: a.reshape(cfg.frames_per_step, -1, *a.shape[3:])
        return {"pose": self.poses[self.frames[fi]], "origins": flat(self.origins[cam, rows, cols]),
                "dirs": flat(self.dirs[cam, rows, cols]), "rgb": flat(self.rgb[imgb, rows, cols]),
                "mask": flat(self.mask[imgb, rows, cols]).astype(np.float32)}


# ------------------------------------------------------------------------------------------------ training


def _bce(p, y):
    p = jnp.clip(p, 1e-4, 1 - 1e-4)
    return -jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def make_loss(kind: str, config):
    """loss(params, batch, key) → (loss, aux) for "baseline" or "nes" (spec §5.3 / §5.4)."""
    m, t = config.model, config.train
    size = (m.map_height, m.map_width)
    render_kw = dict(num_samples=m.num_samples, window=m.window)
    nes_kw = dict(render_kw, density=m.density)

    def loss(params, batch, key):
        keys = jax.random.split(key, batch["pose"].shape[0])
        aux = {}
        if kind == "baseline":
            out = jax.vmap(lambda pose, o, d, k: models.baseline_render_rays(
                params, models.Baseline(), pose, o, d, key=k, **render_kw))(batch["pose"], batch["origins"],
                                                                           batch["dirs"], keys)
            reg = 0.0
        else:
            maps = jax.vmap(lambda pose: models.nes_maps(params, pose, height=size[0], width=size[1]))(batch["pose"])
            out = jax.vmap(lambda mp, pose, o, d, k: models.nes_volume_rays(
                params, mp, pose, o, d, beta=batch["beta"], key=k, **nes_kw))(maps, batch["pose"],
                                                                                batch["origins"], batch["dirs"], keys)
            dn = maps["D"] / (0.3 * jnp.asarray(body.RADIUS)[:, None, None])
            tv = jnp.mean(jnp.abs(jnp.diff(dn, axis=-1))) + jnp.mean(jnp.abs(jnp.diff(dn, axis=-2)))
            reg = t.tv_weight * tv + t.mag_weight * jnp.mean(dn ** 2)
            aux["d_abs_mean_mm"] = 1e3 * jnp.mean(jnp.abs(maps["D"]))
        mse = jnp.mean((out.rgb - batch["rgb"]) ** 2)
        bce = _bce(out.opacity, batch["mask"])
        total = mse + t.mask_weight * bce + reg
        aux.update(loss=total, mse=mse, bce=bce, psnr_rays=-10 * jnp.log10(mse))
        return total, aux

    return loss


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam with a linear warm-up over the first 5 % of the steps, then exponential decay ×0.1 by the last step.
    (Without the warm-up, lr 3e-3 with one pose per step killed NES's ReLUs within 50 steps: zero gradients.)"""
    t = config.train
    warm = max(1, t.steps // 20)
    sched = optax.join_schedules([optax.linear_schedule(t.lr / warm, t.lr, warm),
                                  optax.exponential_decay(t.lr, transition_steps=max(t.steps - warm, 1),
                                                          decay_rate=0.1)], [warm])
    return optax.adam(sched)


def make_train_step(kind: str, config):
    """One jitted pure step: (state, batch) → (state, metrics); state = {"params", "opt", "step"}."""
    loss = make_loss(kind, config)
    tx = make_optimizer(config)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        key = jax.random.fold_in(jax.random.key(config.seed + (1 if kind == "nes" else 2)), state["step"])
        (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(state["params"], batch, key)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        aux["grad_norm"] = optax.global_norm(grads)
        return {"params": params, "opt": opt, "step": state["step"] + 1}, aux

    return step, tx


def beta_at(config, step: int) -> float:
    """NES's β (VolSDF scale, or NeuS's 1/s) at a step: geometric anneal beta_start → beta_end over the run."""
    t = config.train
    return float(t.beta_start * (t.beta_end / t.beta_start) ** min(step / max(t.steps - 1, 1), 1.0))


def train_model(kind: str, config, workdir: str, sampler: RaySampler, params0) -> tuple[dict, float, int]:
    """Trains (or resumes) one model; returns (params, training seconds of this process, step it started at)."""
    step_fn, tx = make_train_step(kind, config)
    state = {"params": params0, "opt": tx.init(params0), "step": jnp.zeros((), jnp.int32)}
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints", kind), save_every=config.train.checkpoint_every, keep=2)
    restored = ckpt.restore_latest(state)
    if restored is not None:
        state = restored[1]
    start = int(state["step"])
    writer = MetricWriter(os.path.join(workdir, kind), resume_step=start)
    t0 = time.time()
    with progress(config.train.steps, desc=f"nes train {kind}", initial=start) as bar:
        for s in range(start, config.train.steps):
            batch = sampler(s)
            batch["beta"] = np.float32(beta_at(config, s))
            state, aux = step_fn(state, batch)
            if (s + 1) % config.train.log_every == 0 or s + 1 == config.train.steps:
                m = jax.device_get(aux)
                check_finite(s + 1, m, ["loss", "grad_norm"])
                writer.write_scalars(s + 1, {**m, "beta": batch["beta"]})
                bar.set_postfix_str(f"psnr {float(m['psnr_rays']):.1f}", refresh=False)
            ckpt.maybe_save(s + 1, state)
            bar.update(1)
    if config.train.steps not in ckpt.all_steps():
        ckpt.save(config.train.steps, state)
    ckpt.close()
    writer.close()
    return state["params"], time.time() - t0, start


# ------------------------------------------------------------------------------------------------ evaluation


def patch_size(tmpl: body.Template, poses: np.ndarray, rig, resolution: int, margin_mm: float = 40.0) -> int:
    """Static K for the rasterizer: the exact need of the undisplaced template over the poses and cameras, plus one
    pixel for displacements (|D| ≤ 0.3 r ≤ 45 mm, at most a pixel or two at these resolutions)."""
    verts = jax.jit(jax.vmap(lambda p: body.mesh_vertices(tmpl, body.forward_kinematics(p),
                                                          jnp.zeros(tmpl.uv.shape[0]))))(jnp.asarray(poses))
    need = rendering.patch_size_for(vertices=verts, faces=tmpl.faces, camera=rig, height=resolution,
                                    width=resolution)
    return need + 1 + int(margin_mm > 0)


def _on_hull_rays(fn, pose, origins, dirs, capacity: int):
    """fn(o [M, 3], d [M, 3]) → pytree of per-ray arrays, evaluated on the rays that cross the dilated-capsule hull only
    (`rendering.compact_rays`) and scattered back to the image [H, W, ...] (zeros elsewhere, as the renderers give
    for rays that miss); plus the overflow count (must be 0)."""
    h, w = origins.shape[:2]
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    index, valid, overflow = rendering.compact_rays(gt.hull_hits(pose, o, d), capacity=capacity)
    out = fn(o[index], d[index])
    back = lambda a: rendering.uncompact(a, index, valid, h * w, jnp.zeros((), a.dtype)).reshape(h, w, *a.shape[1:])
    return jax.tree.map(back, out), overflow


@functools.lru_cache(maxsize=4)
def _eval_fns(res: int, size: tuple[int, int], num_samples: int, window: float, beta: float, trace_steps: int,
              mesh: tuple[int, int], k_patch: int, capacity: int, density: str):
    """The jitted per-image evaluation renderers, built once per setting: `images` (baseline, NES, NES with pose
    inputs zeroed, the floor; both splits) and `implicit` (NES volume-rendered and its sphere-traced silhouette, for
    criterion 3 on novel poses). Volume rendering and tracing run on the hull rays only (same pixels, 5× less work)."""
    tmpl = body.template(*mesh)
    kw = dict(num_samples=num_samples, window=window)

    @jax.jit
    def images(params, part_colors, pose, cam_k, cam_w):
        cam = rendering.Camera(cam_k, cam_w)
        o, d = rendering.camera_rays(camera=cam, height=res, width=res)
        base, over = _on_hull_rays(lambda o, d: models.baseline_render_rays(params["baseline"], models.Baseline(),
                                                                            pose, o, d, **kw).rgb, pose, o, d, capacity)
        maps = models.nes_maps(params["nes"], pose, height=size[0], width=size[1])
        verts = models.nes_mesh(tmpl, maps, pose)
        nes, raster = models.nes_raster_image(params["nes"], maps, verts, tmpl, cam, height=res, width=res,
                                              patch_size=k_patch)
        zero = models.nes_render(params["nes"], tmpl, pose, cam, height=res, width=res, patch_size=k_patch,
                                 map_size=size, zero_pose=True)
        floor = models.template_image(part_colors, tmpl, pose, cam, height=res, width=res, patch_size=k_patch)
        return {"baseline": base, "nes": nes, "nes_zero_pose": zero, "floor": floor, "nes_mask": raster.mask,
                "overflow": raster.overflow, "ray_overflow": over}

    @jax.jit
    def implicit(params, pose, cam_k, cam_w):
        o, d = rendering.camera_rays(camera=rendering.Camera(cam_k, cam_w), height=res, width=res)
        maps = models.nes_maps(params["nes"], pose, height=size[0], width=size[1])
        pose_rt = body.forward_kinematics(pose)

        def rays(o, d):
            rgb = models.nes_volume_rays(params["nes"], maps, pose, o, d, beta=beta, density=density, **kw).rgb
            _, hit = gt.sphere_trace(lambda x: models.nes_field(maps, x, pose_rt)["s"], o, d, pose_rt,
                                     steps=trace_steps)
            return rgb, hit

        (rgb, hit), over = _on_hull_rays(rays, pose, o, d, capacity)
        return {"nes_volume": rgb, "nes_implicit_mask": hit, "ray_overflow": over}

    return images, implicit


def render_eval(config, params: dict, data: dict, split: str, tmpl: body.Template, k_patch: int,
                part_colors: np.ndarray, *, volume_nes: bool, capacity: int) -> dict:
    """Renders every image of a held-out split with every method → dict of [N, H, W, 3] arrays (and NES masks);
    `volume_nes` adds NES's implicit route (volume render, sphere-traced silhouette)."""
    m = config.model
    rig = data["rig"]
    images, implicit = _eval_fns(config.data.resolution, (m.map_height, m.map_width), m.num_samples,
                                 float(m.window), float(config.train.beta_end), config.data.trace_steps,
                                 (m.mesh_u, m.mesh_v), k_patch, capacity, m.density)
    pairs = data[f"{split}/pairs"]
    res_list = []
    with progress(len(pairs), desc=f"nes eval {split}", unit="image") as bar:
        for f, c in pairs:
            args = (jnp.asarray(data["poses"][f]), rig.intrinsics[c], rig.world_to_camera[c])
            r = images(params, jnp.asarray(part_colors), *args)
            if volume_nes:
                r = {**r, **implicit(params, *args), "ray_overflow": r["ray_overflow"]}
            res_list.append(jax.device_get(r))
            bar.update(1)
    out = {k: np.stack([r[k] for r in res_list]) for k in res_list[0]}
    if out["ray_overflow"].max() > 0:
        raise RuntimeError(f"evaluation: {int(out['ray_overflow'].max())} hull rays beyond capacity {capacity}")
    return out


def part_mean_colors(data: dict) -> np.ndarray:
    """The trivial floor's colours: mean ground-truth colour of each part over the training pixels [11, 3]."""
    part, rgb = data["train/part"], data["train/rgb"]
    return np.stack([rgb[part == k].mean(0) if (part == k).any() else np.zeros(3)
                     for k in range(body.NUM_PARTS)]).astype(np.float32)


def score(config, pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> dict:
    """Per-image bbox PSNR, bbox SSIM and full-image PSNR (spec §5.7) → dict of [N] arrays."""
    margin = config.eval.bbox_margin
    fn = jax.jit(lambda a, b, mk: (rendering.bbox_psnr(a, b, mask=mk, margin=margin), rendering.psnr(a, b)))
    out = {"psnr": [], "ssim": [], "psnr_full": []}
    for a, b, mk in zip(pred, target, masks, strict=True):
        p, pf = fn(a, b, mk)
        mse_zero = float(np.mean((a - b) ** 2)) == 0.0
        out["psnr"].append(100.0 if mse_zero else float(p))
        out["psnr_full"].append(100.0 if mse_zero else float(pf))
        out["ssim"].append(float(rendering.bbox_ssim(jnp.asarray(a), jnp.asarray(b), mask=mk, margin=margin))
                           if mk.any() else 1.0)
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------ entry point


def train_and_evaluate(config, workdir: str) -> dict:
    """Ground truth, both trainings (resumable), evaluation, speed; writes results.json and the pictures."""
    validate(config)
    t_start, cpu_start = time.time(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    data = make_data(config, workdir)
    t_data = time.time() - t_start
    m = config.model
    size = (m.map_height, m.map_width)
    params0 = models.init_params(jax.random.key(config.seed), map_size=size)
    sampler = RaySampler(config, data)
    params, train_seconds, resumed = {}, {}, bool(data["from_cache"])
    for kind in MODELS:
        params[kind], train_seconds[kind], start = train_model(kind, config, workdir, sampler, params0[kind])
        resumed = resumed or start > 0
    tmpl = body.template(m.mesh_u, m.mesh_v)
    k_patch = patch_size(tmpl, data["poses"], data["rig"], config.data.resolution)
    colors = part_mean_colors(data)
    t_eval = time.time()
    capacity = int(data["capacity"])  # hull rays of the worst image of every split (as the ground truth)
    renders = {s: render_eval(config, params, data, s, tmpl, k_patch, colors, volume_nes=s == "novel_pose",
                              capacity=capacity) for s in ("novel_view", "novel_pose")}
    scores = {}
    for s, r in renders.items():
        target, masks = data[f"{s}/rgb"], data[f"{s}/mask"]
        for name in ("baseline", "nes", "nes_zero_pose", "floor"):
            scores[f"{s}/{name}"] = score(config, r[name], target, masks)
    r = renders["novel_pose"]
    scores["novel_pose/nes_raster_vs_volume"] = score(config, r["nes"], r["nes_volume"], data["novel_pose/mask"])
    scores["novel_pose/gt_no_pose_effects"] = score(config, data["novel_pose/rgb_no_pose_effects"],
                                                    data["novel_pose/rgb"], data["novel_pose/mask"])
    inter = (r["nes_mask"] & r["nes_implicit_mask"]).sum((1, 2))
    union = np.maximum((r["nes_mask"] | r["nes_implicit_mask"]).sum((1, 2)), 1)
    iou = inter / union
    eval_seconds = time.time() - t_eval
    t_speed = time.time()
    speed = bench.measure(params, tmpl, data["poses"], config, resolution=config.eval.timing_resolution,
                          frames=config.eval.timing_frames)
    for res in sorted({config.data.resolution, config.eval.timing_resolution}):
        speed.update(bench.costs(params, tmpl, data["poses"], config, resolution=res))
    speed["seconds"] = time.time() - t_speed
    metrics, claims = claims_lib.compute(config, scores, iou, speed, overflow=int(
        max(renders[s]["overflow"].max() for s in renders)))
    metrics.update({"data_seconds": t_data, "eval_seconds": eval_seconds,
                    **{f"train_seconds/{k}": v for k, v in train_seconds.items()}, "patch_size": k_patch,
                    "gt_render_seconds": float(data["seconds"])})
    plot_files = plots.make_all(config, workdir, data, renders, params, tmpl, capacity)
    metrics["total_seconds"] = time.time() - t_start
    metrics["process_cpu_seconds"] = time.process_time() - cpu_start  # ≈ wall time on an idle machine (1 thread)
    claims_lib.finish_budget(config, claims, metrics["total_seconds"], resumed, cpu=metrics["process_cpu_seconds"])
    return outputs.write_results(workdir, project="nes", preset=config.preset, seeds=[config.seed],
                                 metrics=metrics, claims=claims, plots=plot_files)


def render_pose(config, params: dict, poses: np.ndarray, *, frame: int, camera: int, method: str = "nes",
                resolution: int | None = None) -> np.ndarray:
    """One image [H, W, 3] of motion frame `frame` from ring camera `camera` by "nes", "baseline" or "gt" (for
    notebooks); raises ValueError naming the argument, its value and the accepted range."""
    res = config.data.resolution if resolution is None else resolution
    if not isinstance(frame, (int, np.integer)) or not 0 <= frame < len(poses):
        raise ValueError(f"frame={frame!r} is out of range: expected an integer in [0, {len(poses) - 1}]")
    nc = config.data.num_cameras
    if not isinstance(camera, (int, np.integer)) or not 0 <= camera < nc:
        raise ValueError(f"camera={camera!r} is out of range: expected an integer in [0, {nc - 1}]")
    if not isinstance(res, (int, np.integer)) or not 16 <= res <= 512:
        raise ValueError(f"resolution={res!r} is invalid: expected an integer in [16, 512]")
    if method not in ("nes", "baseline", "gt"):
        raise ValueError(f"method={method!r} is invalid: expected 'nes', 'baseline' or 'gt'")
    rig = gt.cameras(num_cameras=nc, radius=config.data.camera_radius, height=res, width=res)
    cam = rendering.Camera(rig.intrinsics[camera], rig.world_to_camera[camera])
    pose = jnp.asarray(poses[frame])
    if method == "gt":
        return np.asarray(gt.render(pose, cam, height=res, width=res, steps=config.data.trace_steps)["rgb"])
    fns = bench.render_fns(params, body.template(config.model.mesh_u, config.model.mesh_v), poses[frame:frame + 1],
                           config, resolution=res)
    return np.asarray(fns[method](params[method], pose, cam))


def load_params(config, workdir: str) -> dict:
    """The trained parameters {"baseline", "nes"} of a finished run in `workdir` (from its last checkpoints)."""
    params0 = models.init_params(jax.random.key(config.seed), map_size=(config.model.map_height,
                                                                        config.model.map_width))
    out = {}
    for kind in MODELS:
        tx = make_optimizer(config)
        state = {"params": params0[kind], "opt": tx.init(params0[kind]), "step": jnp.zeros((), jnp.int32)}
        ckpt = Checkpointer(os.path.join(workdir, "checkpoints", kind), save_every=config.train.checkpoint_every)
        restored = ckpt.restore_latest(state)
        ckpt.close()
        if restored is None:
            raise FileNotFoundError(f"no {kind} checkpoint in {workdir}/checkpoints: run train_and_evaluate first")
        out[kind] = restored[1]["params"]
    return out
