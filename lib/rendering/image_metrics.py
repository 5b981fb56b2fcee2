"""Image metrics: PSNR and SSIM from dm-pix (the library the field trusts), plus the mask-bbox protocol of
Neural Body / SANeRF (`mask_at_box`, spec nes §5.7): PSNR over the pixels inside the 2-D bounding box of a mask.

Images are float [..., H, W, C] with values in [0, 1]. The dm-pix defaults equal scikit-image's
`structural_similarity(a, b, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)` (11-tap Gaussian, K1 = 0.01, K2 = 0.03, the mean over the valid interior) and
`peak_signal_noise_ratio(a, b, data_range=1)`; `tests/lib/test_rendering.py` checks both.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

SSIM_FILTER_SIZE = 11  # dm-pix's default window; images (and bbox crops) must be at least this large


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
    """PSNR in dB over whole images [H, W, C] or [B, H, W, C] (data range 1): `dm_pix.psnr` → [] or [B]."""
    return dm_pix.psnr(a, b)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean SSIM of images [H, W, C] or [B, H, W, C] (H, W ≥ 11; data range 1; per channel, then averaged) → [] or [B].
    `dm_pix.ssim` with its defaults: Gaussian window 11, σ = 1.5, k1 = 0.01, k2 = 0.03."""
    return dm_pix.ssim(a, b)


def bbox_mask(mask: jax.Array, *, margin: int = 0) -> jax.Array:
    """bool [H, W]: the axis-aligned bounding box of the true pixels of `mask` [H, W], grown by `margin` pixels on
    each side (clipped to the image); all false for an empty mask. Jit-friendly (static shapes)."""
    rows, cols = jnp.any(mask, axis=1), jnp.any(mask, axis=0)

    def span(hit):
        n = hit.shape[0]
        idx = jnp.arange(n)
        first = jnp.where(hit, idx, n).min() - margin
        last = jnp.where(hit, idx, -1).max() + margin
        return (idx >= first) & (idx <= last) & hit.any()

    return span(rows)[:, None] & span(cols)[None, :]


def masked_psnr(a: jax.Array, b: jax.Array, *, mask: jax.Array) -> jax.Array:
    """PSNR in dB (data range 1) over the pixels where `mask` [H, W] is true, images [H, W, C] → []; NaN for an
    empty mask."""
    w = mask.astype(a.dtype)[..., None]
    mse = (w * (a - b) ** 2).sum() / (w.sum() * a.shape[-1])
    return -10.0 * jnp.log10(mse)


def bbox_psnr(a: jax.Array, b: jax.Array, *, mask: jax.Array, margin: int = 0) -> jax.Array:
    """PSNR over the bounding box of `mask` [H, W] grown by `margin` (the "dilated GT mask" box), images [H, W, C]."""
    return masked_psnr(a, b, mask=bbox_mask(mask, margin=margin))


def bbox_crop_slices(mask: np.ndarray, *, margin: int = 0, min_size: int = SSIM_FILTER_SIZE) -> tuple[slice, slice]:
    """Host side: (row slice, column slice) of the mask's bbox grown by `margin`, widened symmetrically (within the
    image) to at least `min_size` pixels per side so SSIM's window fits. Raises ValueError for an empty mask."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("bbox_crop_slices: the mask has no true pixel, so it has no bounding box")
    out = []
    for axis in (1, 0):
        hit = np.flatnonzero(mask.any(axis=axis))
        n = mask.shape[1 - axis]
        lo, hi = max(hit[0] - margin, 0), min(hit[-1] + margin + 1, n)
        grow = max(min_size - (hi - lo), 0)
        lo = max(lo - (grow + 1) // 2, 0)
        hi = min(max(hi + grow // 2, lo + min_size), n)
        lo = max(min(lo, hi - min_size), 0)
        out.append(slice(int(lo), int(hi)))
    return out[0], out[1]


def bbox_ssim(a: jax.Array, b: jax.Array, *, mask: np.ndarray, margin: int = 0) -> jax.Array:
    """Host side: SSIM (dm-pix) on the crop of images [H, W, C] to the mask's bbox (grown by `margin`, at least
    11 × 11) → []."""
    rows, cols = bbox_crop_slices(mask, margin=margin)
    return ssim(a[rows, cols], b[rows, cols])
