"""Rendering as pure JAX functions: pinhole cameras, a differentiable patch-scatter rasterizer (hard, with a
brute-force reference, and soft), bilinear texture lookup, volume-rendering pieces and image metrics.

Modules: `cameras` (Camera, projection, rays, ring rig), `raster` (rasterize, rasterize_reference, interpolate,
patch_size_for), `soft` (soft_rasterize), `texture` (bilinear), `volume` (ray intervals, stratified samples,
VolSDF / NeuS opacity, compositing, ray compaction), `image_metrics` (dm-pix PSNR / SSIM, mask-bbox PSNR).
Everything is re-exported here: `from lib import rendering; rendering.rasterize(...)`. Conventions: OpenCV cameras
(x right, y down, z forward), pixel centres at integer + 0.5, images [H, W, C] in [0, 1] on a black background.
"""

from lib.rendering.cameras import (
    Camera,
    camera_rays,
    camera_ring,
    fov_to_cover,
    intrinsics_from_fov,
    look_at,
    make_camera,
    project,
    world_to_camera,
)
from lib.rendering.image_metrics import bbox_crop_slices, bbox_mask, bbox_psnr, bbox_ssim, masked_psnr, psnr, ssim
from lib.rendering.raster import (
    Raster,
    check_patch_size,
    interpolate,
    patch_size_bound,
    patch_size_for,
    project_vertices,
    rasterize,
    rasterize_reference,
    screen_barycentrics,
)
from lib.rendering.soft import SoftImage, soft_rasterize
from lib.rendering.texture import bilinear
from lib.rendering.volume import (
    Composited,
    alpha_from_density,
    compact_rays,
    composite,
    laplace_cdf,
    neus_alpha,
    ray_capsule_interval,
    ray_capsules_interval,
    ray_sphere_interval,
    stratified_samples,
    uncompact,
    volsdf_density,
)

__all__ = [
    "Camera", "camera_rays", "camera_ring", "fov_to_cover", "intrinsics_from_fov", "look_at", "make_camera",
    "project", "world_to_camera",
    "bbox_crop_slices", "bbox_mask", "bbox_psnr", "bbox_ssim", "masked_psnr", "psnr", "ssim",
    "Raster", "check_patch_size", "interpolate", "patch_size_bound", "patch_size_for", "project_vertices",
    "rasterize", "rasterize_reference", "screen_barycentrics",
    "SoftImage", "soft_rasterize",
    "bilinear",
    "Composited", "alpha_from_density", "compact_rays", "composite", "laplace_cdf", "neus_alpha",
    "ray_capsule_interval", "ray_capsules_interval", "ray_sphere_interval", "stratified_samples", "uncompact",
    "volsdf_density",
]
