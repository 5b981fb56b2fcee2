"""The two models of spec nes §5.3–5.4, as flax modules and pure render functions.

Baseline ("SANeRF-lite", volumetric implicit): per ray sample x, the nearest part k* = argmin_k h_k, its surface
coordinates (u, v, h), the template normal there and a pose code z = MLP(θ) → MLP 4 × 128 → density (softplus) and
colour (sigmoid); samples outside the shell |h| < 0.05 m get σ = 0. Rendered by ray marching (S stratified samples)
and alpha compositing.

NES: a small U-Net G_φ maps per-texel inputs of each UV chart (positional code of (u, v), the posed template normal,
the part's proximal and distal joint angles, a part embedding) to a geometry map D = 0.3 r_k tanh(·) and 8 neural
texture channels T. A decoder MLP_c maps [bilinear T, bilinear normal map] → RGB. Trained through the implicit route
s(x) = min_k [h_k − D_k(u_k, v_k)] (NeuS opacity, or the spec's VolSDF density; same compositing); rendered through
the explicit route: the template grid displaced by D, rasterized, one texture query per pixel.

Both models see the same body-model information (part coordinates and posed template normals), and both colour
networks see no view direction (the ground truth is Lambertian).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lib import rendering
from projects.nes import body, gt

SHELL = 0.05  # metres: the baseline's sample shell |h| < SHELL (spec §5.3)
BETA_MIN = 0.002
DENSITIES = ("volsdf", "neus")  # NES's implicit-route opacity (`nes_volume_rays`)


def _pe(x: jax.Array, num_freqs: int) -> jax.Array:
    """Positional code [..., D] → [..., D (1 + 2 F)]: x, sin(2^i π x), cos(2^i π x) for i < F."""
    freqs = (2.0 ** jnp.arange(num_freqs)) * jnp.pi
    ang = x[..., None] * freqs
    return jnp.concatenate([x, jnp.sin(ang).reshape(*x.shape[:-1], -1), jnp.cos(ang).reshape(*x.shape[:-1], -1)], -1)


def nearest_part(x: jax.Array, pose_rt) -> dict:
    """For world points x [..., 3]: every part's (u, v, h) [..., 11], the nearest part k* [...], its (u, v, h) and
    the template normal at its closest capsule point, in world coordinates [..., 3]."""
    p = body.to_local(x, *pose_rt)
    length, radius = jnp.asarray(body.LENGTH), jnp.asarray(body.RADIUS)
    u, v, h = body.coords(p, length, radius)
    k = jnp.argmin(h, -1)
    pick = lambda a: jnp.take_along_axis(a, k[..., None], -1)[..., 0]
    pk = jnp.take_along_axis(p, k[..., None, None], -2)[..., 0, :]
    q = pk - jnp.stack([jnp.zeros_like(pk[..., 0]), jnp.clip(pk[..., 1], 0.0, length[k]), jnp.zeros_like(pk[..., 0])],
                       -1)
    n_local = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-9)
    n_world = jnp.einsum("...ij,...j->...i", pose_rt[0][k], n_local)
    return {"u": u, "v": v, "h": h, "k": k, "uk": pick(u), "vk": pick(v), "hk": pick(h), "normal": n_world}


def ray_window(origins: jax.Array, dirs: jax.Array, pose_rt, *, window: float):
    """(near, far, hit) [...] of rays [..., 3]: from the entry of the dilated-capsule hull (the empty-space skipping
    both models share) over at most `window` metres."""
    starts, ends = body.capsule_segments(pose_rt)
    near, far, hit = rendering.ray_capsules_interval(origins=origins, directions=dirs, starts=starts, ends=ends,
                                                     radii=jnp.asarray(body.RADIUS), dilate=gt.DILATE)
    return near, jnp.minimum(far, near + window), hit


# ------------------------------------------------------------------------------------------------ baseline


class Baseline(nn.Module):
    """SANeRF-lite: (k*, u, v, h, template normal, pose) → (σ, rgb)."""

    width: int = 128
    depth: int = 4
    num_freqs: int = 6

    @nn.compact
    def __call__(self, near: dict, pose: jax.Array):
        z = nn.Dense(32)(nn.relu(nn.Dense(64)(pose.reshape(-1))))
        emb = nn.Embed(body.NUM_PARTS, 8)(near["k"])
        ang = 2 * jnp.pi * near["uk"]
        coords = jnp.stack([jnp.cos(ang), jnp.sin(ang), near["vk"], near["hk"] / SHELL], -1)
        feats = [emb, _pe(coords, self.num_freqs), near["normal"], jnp.broadcast_to(z, (*emb.shape[:-1], 32))]
        x = jnp.concatenate(feats, -1)
        for _ in range(self.depth):
            x = nn.relu(nn.Dense(self.width)(x))
        sigma = 100.0 * nn.softplus(nn.Dense(1)(x)[..., 0] - 1.0)  # per metre; samples are ≈ 1 cm apart
        sigma = jnp.where(jnp.abs(near["hk"]) < SHELL, sigma, 0.0)
        return sigma, nn.sigmoid(nn.Dense(3)(x))


def baseline_render_rays(params, model: Baseline, pose, origins, dirs, *, num_samples: int, window: float,
                         key=None) -> rendering.Composited:
    """Volume render rays [..., 3] of one pose [11, 3] → `Composited` (rgb [..., 3], opacity [...])."""
    pose_rt = body.forward_kinematics(pose)
    near, far, _ = ray_window(origins, dirs, pose_rt, window=window)
    t, deltas = rendering.stratified_samples(key=key, near=near, far=far, num_samples=num_samples)
    x = origins[..., None, :] + t[..., None] * dirs[..., None, :]
    sigma, rgb = model.apply(params, nearest_part(x, pose_rt), pose)
    alpha = rendering.alpha_from_density(density=sigma, deltas=deltas)
    return rendering.composite(alpha=alpha, rgb=rgb, t=t)


# ------------------------------------------------------------------------------------------------------ NES


def _pad(x: jax.Array, n: int) -> jax.Array:
    """Pad feature maps [B, H(v), W(u), C] by n: circular along u (spec P3), edge along v."""
    x = jnp.pad(x, ((0, 0), (0, 0), (n, n), (0, 0)), mode="wrap")
    return jnp.pad(x, ((0, 0), (n, n), (0, 0), (0, 0)), mode="edge")


class Generator(nn.Module):
    """G_φ: per-chart inputs [11, Hc, Wc, C_in] → maps [11, Hc, Wc, 9] (U-Net, one stride-2 level, weights shared
    across parts; the batch is the 11 charts)."""

    channels: int = 32

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        emb = nn.Embed(body.NUM_PARTS, 8)(jnp.arange(body.NUM_PARTS))
        x = jnp.concatenate([inputs, jnp.broadcast_to(emb[:, None, None], (*inputs.shape[:3], 8))], -1)
        conv = lambda c, s=1: nn.Conv(c, (3, 3), strides=(s, s), padding="VALID")
        c1 = nn.relu(conv(self.channels)(_pad(x, 1)))
        c1 = nn.relu(conv(self.channels)(_pad(c1, 1)))
        d = nn.relu(conv(2 * self.channels, 2)(_pad(c1, 1)))
        d = nn.relu(conv(2 * self.channels)(_pad(d, 1)))
        up = jnp.repeat(jnp.repeat(d, 2, axis=1), 2, axis=2)
        y = nn.relu(conv(self.channels)(_pad(jnp.concatenate([up, c1], -1), 1)))
        return nn.Conv(9, (1, 1))(y)


class Decoder(nn.Module):
    """MLP_c: [texture features (8), normal (3)] → RGB in (0, 1)."""

    width: int = 64

    @nn.compact
    def __call__(self, feats: jax.Array, normal: jax.Array) -> jax.Array:
        x = jnp.concatenate([feats, normal], -1)
        x = nn.relu(nn.Dense(self.width)(x))
        x = nn.relu(nn.Dense(self.width)(x))
        return nn.sigmoid(nn.Dense(3)(x))


def chart_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre (u, v) of a chart, each [Hc, Wc] (rows are v, columns u; `lib.rendering.bilinear`'s layout)."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    uu, vv = np.meshgrid(u, v, indexing="xy")
    return uu.astype(np.float32), vv.astype(np.float32)


def generator_inputs(pose: jax.Array, *, height: int, width: int, zero_pose: bool = False):
    """(inputs [11, Hc, Wc, 27 + 3 + 6], posed template normal map [11, Hc, Wc, 3]) of pose [11, 3].

    `zero_pose=True` feeds G_φ the inputs of θ = 0 (joint angles zero, rest-pose normals): criterion 4b's ablation.
    The returned normal map is always that of `pose` (the decoder's shading input is geometry, not a G_φ input).
    """
    uu, vv = chart_grid(height, width)
    ang = 2 * np.pi * uu
    code = _pe(jnp.asarray(np.stack([np.cos(ang), np.sin(ang), vv], -1)), 4)  # [Hc, Wc, 27]
    length, radius = jnp.asarray(body.LENGTH)[:, None, None], jnp.asarray(body.RADIUS)[:, None, None]
    _, n_local = body.surface_point(jnp.asarray(uu)[None], jnp.asarray(vv)[None], length, radius)

    def normals(p):
        rots, _ = body.forward_kinematics(p)
        return jnp.einsum("kij,khwj->khwi", rots, n_local)

    n_map = normals(pose)
    p_in = jnp.zeros_like(pose) if zero_pose else pose
    n_in = normals(p_in) if zero_pose else n_map
    joints = jnp.concatenate([p_in, p_in[jnp.asarray(body.DISTAL_JOINT)]], -1)  # [11, 6]
    k = body.NUM_PARTS
    inputs = jnp.concatenate([jnp.broadcast_to(code, (k, height, width, code.shape[-1])), n_in,
                              jnp.broadcast_to(joints[:, None, None], (k, height, width, 6))], -1)
    return inputs, n_map


def nes_maps(params, pose, *, height: int, width: int, zero_pose: bool = False) -> dict:
    """Pose-dependent maps of one pose: D [11, Hc, Wc] (metres), T [11, Hc, Wc, 8], normals [11, Hc, Wc, 3]."""
    inputs, n_map = generator_inputs(pose, height=height, width=width, zero_pose=zero_pose)
    out = Generator().apply(params["generator"], inputs)
    d_max = 0.3 * jnp.asarray(body.RADIUS)[:, None, None]
    return {"D": d_max * jnp.tanh(out[..., 0]), "T": out[..., 1:], "normal": n_map}


def nes_field(maps: dict, x: jax.Array, pose_rt) -> dict:
    """The implicit NES field at world points x [..., 3]: s = min_k [h_k − D_k(u_k, v_k)] [...], the winning part and
    its (u, v) (for the single texture query)."""
    u, v, h = body.part_coords(x, pose_rt)
    charts = jnp.broadcast_to(jnp.arange(body.NUM_PARTS), u.shape)
    d = rendering.bilinear(texture=maps["D"][..., None], u=u, v=v, chart=charts)[..., 0]
    s_parts = h - d
    k = jnp.argmin(s_parts, -1)
    pick = lambda a: jnp.take_along_axis(a, k[..., None], -1)[..., 0]
    return {"s": s_parts.min(-1), "k": k, "u": pick(u), "v": pick(v)}


def shade(params, maps: dict, u, v, k) -> jax.Array:
    """One texture query: decoder(bilinear T, bilinear normal) at (u, v) on chart k, all [...] → RGB [..., 3]."""
    feats = rendering.bilinear(texture=maps["T"], u=u, v=v, chart=k)
    normal = rendering.bilinear(texture=maps["normal"], u=u, v=v, chart=k)
    return Decoder().apply(params["decoder"], feats, normal)


def nes_volume_rays(params, maps: dict, pose, origins, dirs, *, num_samples: int, window: float, beta,
                    density: str, key=None) -> rendering.Composited:
    """NES through the implicit route (training, and criterion 3c): opacity from the field s, colour of the nearest
    part at each sample, composited like the baseline. rays [..., 3] → `Composited`.

    `density="volsdf"`: σ = Ψ_β(−s)/β per sample, α = 1 − exp(−σδ) (the spec's §5.4). `density="neus"`: the NeuS
    opacity of each section [t_i, t_i + δ_i] from s at its two ends with Φ = sigmoid(s/β); the colour is the section
    start's. VolSDF's density outside the surface (half its peak at s = 0) makes rays that graze the body within a
    few β nearly opaque, so training pulls the surface inward to keep the silhouette; NeuS's opacity of such a ray
    is only 1 − Φ(s_min)/Φ(s_0) (README, "Choices")."""
    pose_rt = body.forward_kinematics(pose)
    near, far, _ = ray_window(origins, dirs, pose_rt, window=window)
    t, deltas = rendering.stratified_samples(key=key, near=near, far=far, num_samples=num_samples)
    beta = jnp.maximum(beta, BETA_MIN)
    if density == "neus":
        ends = jnp.concatenate([t, t[..., -1:] + deltas[..., -1:]], -1)  # S + 1 section ends
        f = nes_field(maps, origins[..., None, :] + ends[..., None] * dirs[..., None, :], pose_rt)
        alpha = rendering.neus_alpha(sdf_start=f["s"][..., :-1], sdf_end=f["s"][..., 1:], inv_s=1.0 / beta)
        f = {k: v[..., :-1] for k, v in f.items()}
    elif density == "volsdf":
        f = nes_field(maps, origins[..., None, :] + t[..., None] * dirs[..., None, :], pose_rt)
        alpha = rendering.alpha_from_density(density=rendering.volsdf_density(sdf=f["s"], beta=beta), deltas=deltas)
    else:
        raise ValueError(f"density={density!r} is invalid: expected one of {list(DENSITIES)}")
    rgb = shade(params, maps, f["u"], f["v"], f["k"])
    return rendering.composite(alpha=alpha, rgb=rgb, t=t)


def mesh_offsets(tmpl: body.Template, maps: dict) -> jax.Array:
    """The geometry map at the template vertices [V]: bilinear at grid vertices, the mean of the first / last map row
    at the pole vertices (so the pole fans close)."""
    d = rendering.bilinear(texture=maps["D"][..., None], u=jnp.asarray(tmpl.uv[:, 0]), v=jnp.asarray(tmpl.uv[:, 1]),
                           chart=jnp.asarray(tmpl.part))[..., 0]
    pole_val = jnp.where(jnp.asarray(tmpl.uv[:, 1]) < 0.5, maps["D"][:, 0].mean(-1)[jnp.asarray(tmpl.part)],
                         maps["D"][:, -1].mean(-1)[jnp.asarray(tmpl.part)])
    is_pole = jnp.asarray((tmpl.uv[:, 1] == 0.0) | (tmpl.uv[:, 1] == 1.0))
    return jnp.where(is_pole, pole_val, d)


def nes_mesh(tmpl: body.Template, maps: dict, pose) -> jax.Array:
    """The explicit NES surface of one pose: posed, displaced template vertices [V, 3]."""
    return body.mesh_vertices(tmpl, body.forward_kinematics(pose), mesh_offsets(tmpl, maps))


def nes_raster_image(params, maps: dict, vertices, tmpl: body.Template, camera, *, height: int, width: int,
                     patch_size: int) -> tuple[jax.Array, rendering.Raster]:
    """Rasterize the explicit surface and shade each covered pixel with one texture query → (rgb [H, W, 3], raster)."""
    raster = rendering.rasterize(vertices=vertices, faces=jnp.asarray(tmpl.faces), camera=camera, height=height,
                                 width=width, patch_size=patch_size)
    uv = rendering.interpolate(attributes=jnp.asarray(tmpl.uv), faces=jnp.asarray(tmpl.faces), raster=raster)
    k = jnp.asarray(tmpl.face_part)[jnp.maximum(raster.face_id, 0)]
    rgb = shade(params, maps, uv[..., 0], uv[..., 1], k)
    return jnp.where(raster.mask[..., None], rgb, 0.0), raster


def nes_render(params, tmpl: body.Template, pose, camera, *, height: int, width: int, patch_size: int,
               map_size: tuple[int, int], zero_pose: bool = False) -> jax.Array:
    """The full per-frame NES path (G_φ forward + mesh + raster + one decoder call per pixel) → rgb [H, W, 3]."""
    maps = nes_maps(params, pose, height=map_size[0], width=map_size[1], zero_pose=zero_pose)
    verts = nes_mesh(tmpl, maps, pose)
    return nes_raster_image(params, maps, verts, tmpl, camera, height=height, width=width, patch_size=patch_size)[0]


def template_image(colors: jax.Array, tmpl: body.Template, pose, camera, *, height: int, width: int,
                   patch_size: int) -> jax.Array:
    """The trivial floor (spec §5.7): the undisplaced template, one constant colour per part (colors [11, 3])."""
    verts = body.mesh_vertices(tmpl, body.forward_kinematics(pose), jnp.zeros(tmpl.uv.shape[0]))
    raster = rendering.rasterize(vertices=verts, faces=jnp.asarray(tmpl.faces), camera=camera, height=height,
                                 width=width, patch_size=patch_size)
    rgb = colors[jnp.asarray(tmpl.face_part)[jnp.maximum(raster.face_id, 0)]]
    return jnp.where(raster.mask[..., None], rgb, 0.0)


def init_params(key, *, map_size: tuple[int, int]) -> dict:
    """Initial parameters {"baseline": ..., "nes": {"generator", "decoder"}}."""
    kb, kg, kd = jax.random.split(key, 3)
    rt = body.forward_kinematics(jnp.zeros((body.NUM_PARTS, 3)))
    near = nearest_part(jnp.zeros((2, 3)) + jnp.array([0.0, 1.0, 0.2]), rt)
    base = Baseline().init(kb, near, jnp.zeros((body.NUM_PARTS, 3)))
    inputs, _ = generator_inputs(jnp.zeros((body.NUM_PARTS, 3)), height=map_size[0], width=map_size[1])
    gen = Generator().init(kg, inputs)
    dec = Decoder().init(kd, jnp.zeros((2, 8)), jnp.zeros((2, 3)))
    return {"baseline": base, "nes": {"generator": gen, "decoder": dec}}
