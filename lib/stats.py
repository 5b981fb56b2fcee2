"""Small statistics shared by the projects' claims: one convention each, written down here.

- `mean_ci(x)`: the mean over the leading (seed) axis and the half-width of a two-sided 95 % Student-t
  interval, `t_{0.975, n-1} · s / √n` with the sample standard deviation `s` (ddof = 1). With fewer than two
  samples there is no interval: the half-width is NaN (never 0, which would read as certainty). For n = 1000
  seeds t = 1.9623, so the normal 1.96 would differ in the fourth digit; for 3 seeds t = 4.30.
- `round_up(n, multiple)`: the smallest multiple of `multiple` that is >= n (shape buckets, so few shapes
  compile).
- `paired_bootstrap(a, b)`: the difference of two methods' mean per-item scores on the same items and a one-sided
  bootstrap p-value (resampling items, pairs kept together).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _scipy_stats


def mean_ci(x, *, confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the Student-t interval over axis 0 of `x` (all other axes are pooled into the
    mean only when `x` is 1-D; pass `[n_seeds]`). Half-width NaN when fewer than 2 samples."""
    x = np.asarray(x, float)
    n = x.shape[0] if x.ndim else 1
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan")
    t = _scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)
    return mean, float(t * x.std(ddof=1) / np.sqrt(n))


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= n."""
    return -(-int(n) // int(multiple)) * int(multiple)


def seed_keys(seed: int, count: int, start: int = 0):
    """The codebase's per-seed keys: `fold_in(key(seed), s)` for s in [start, start + count), stacked `[count]`, so
    seed s gets the same key whether it runs alone, in a vmapped batch of seeds or in a later batch."""
    import jax  # here so that importing the statistics helpers does not start JAX
    import jax.numpy as jnp

    root = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(start, start + count))


def paired_bootstrap(a, b, *, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap over items (e.g. test problems) of mean(a) − mean(b), `a`, `b` `[n]` per-item scores of two
    methods on the same items: (observed difference, one-sided p = fraction of resamples with difference ≤ 0)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or not a.size:
        raise ValueError(f"a, b must be 1-D of equal non-zero length, got {a.shape} and {b.shape}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    return float(d.mean()), float((d[idx].mean(1) <= 0).mean())
