"""Offline multi-armed bandits with few samples per arm: instances, data, LCB, greedy, and TRUST.

TRUST (Zhang, Zhai, Zanette, arXiv 2402.15703) searches stochastic policies in a trust region around a
reference policy μ and picks the radius by relative pessimism. The paper's body could not be read; the
algorithm here is the reconstruction of `shared/papers/trust.md` §2 (the names below follow it):

    w_i = σ²/N_i,   ‖Δ‖_w = sqrt(Σ_i w_i Δ_i²),   C(ε) = {π ∈ Δ_d : ‖π − μ‖_w ≤ ε}
    G(ε) = E_η sup_{π∈C(ε)} (π − μ)·η,   η_i ~ N(0, w_i)        (localized Gaussian complexity)
    LB(ε) = Δ_ε·r̂ − G(ε) − ε·sqrt(2 log(J/δ₁)),   π̂ = μ + Δ_ε̂,   ε̂ = argmax_{ε∈E∪{0}} LB(ε)

Every function is pure and works in the dtype of its inputs; the projects call them under
`jax.enable_x64(True)` because μ_i = N_i/n is tiny (1e-4 on trap instances) and sums run over 10⁴ arms.
Arms with N_i = 0 have w_i = ∞: TRUST keeps π_i = μ_i and LCB/greedy never pick them (every 1/N is
guarded). Shapes: `[d]` arms, `[J]` grid radii, `[M]` Monte Carlo draws.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------------------------- instances


def _instance(name: str, means, counts, sigma: float) -> dict:
    return {"name": name, "means": np.asarray(means, np.float64), "counts": np.asarray(counts, np.int64),
            "sigma": float(sigma)}


def trap_half(*, d: int, n0: int, sigma: float, mean0: float = 0.3) -> dict:
    """Arm 0: mean `mean0` with `n0` samples; then `d` one-sample arms, half with mean 1, half 0. `[d+1]`."""
    pool = np.zeros(d)
    pool[: d // 2] = 1.0
    return _instance(f"trap_half_s{sigma:g}_d{d}", np.r_[mean0, pool], np.r_[n0, np.ones(d)], sigma)


def trap_u01(key: jax.Array, *, d: int, n0: int, sigma: float, mean0: float = 0.3) -> dict:
    """Like `trap_half` but the `d` one-sample arms have means drawn once from U[0,1] by `key`."""
    pool = np.asarray(jax.random.uniform(key, (d,), dtype=jnp.float32), np.float64)
    return _instance(f"trap_u01_s{sigma:g}_d{d}", np.r_[mean0, pool], np.r_[n0, np.ones(d)], sigma)


def half01(*, d: int, n: int, sigma: float) -> dict:
    """Equal counts `n`: half the arms mean 1, half mean 0. `[d]`."""
    means = np.zeros(d)
    means[: d // 2] = 1.0
    return _instance(f"half01_n{n}_s{sigma:g}_d{d}", means, np.full(d, n), sigma)


def u01(key: jax.Array, *, d: int, n: int, sigma: float) -> dict:
    """Equal counts `n`, means drawn once from U[0,1] by `key`. `[d]`."""
    means = np.asarray(jax.random.uniform(key, (d,), dtype=jnp.float32), np.float64)
    return _instance(f"u01_n{n}_s{sigma:g}_d{d}", means, np.full(d, n), sigma)


def minimax(*, d: int, n: int, gap: float, sigma: float = 1.0, base: float = 0.5) -> dict:
    """Equal counts `n`: one arm `base + gap`, the other d−1 arms `base` (V* = base+gap). `[d]`."""
    means = np.full(d, base)
    means[0] = base + gap
    return _instance(f"minimax_d{d}_n{n}_gap{gap:g}", means, np.full(d, n), sigma)


def scaling_d(*, ds=(100, 1000, 10_000), n: int = 1, sigma: float = 1.0) -> list[dict]:
    """The d-scaling family: `half01` at each d (spec AC-T5)."""
    return [half01(d=d, n=n, sigma=sigma) for d in ds]


# ----------------------------------------------------------------------------------------------- data, values


def sample_means(key: jax.Array, *, means: jax.Array, counts: jax.Array, sigma) -> jax.Array:
    """Empirical means r̂ `[d]` of Gaussian data: r̂_i = r_i + σ/sqrt(N_i)·z_i (exact law of the mean of
    N_i samples); 0 for arms with N_i = 0."""
    z = jax.random.normal(key, means.shape, dtype=means.dtype)
    safe = jnp.maximum(counts, 1)
    return jnp.where(counts > 0, means + sigma / jnp.sqrt(safe) * z, 0.0)


def policy_value(policy: jax.Array, means: jax.Array) -> jax.Array:
    """Exact value V(π) = π·r. `[..., d] × [d] → [...]`."""
    return policy @ means


def behaviour_policy(counts: jax.Array, dtype=None) -> jax.Array:
    """μ_i = N_i / n. `[d]`."""
    counts = jnp.asarray(counts, dtype or jnp.result_type(float))
    return counts / counts.sum()


def inv_variance(counts: jax.Array, sigma) -> jax.Array:
    """1/w_i = N_i/σ² (0 for unsampled arms, i.e. w_i = ∞). `[d]`."""
    return counts / sigma**2


def weighted_norm(delta: jax.Array, *, counts: jax.Array, sigma) -> jax.Array:
    """‖Δ‖_w = sqrt(Σ σ²Δ_i²/N_i) over sampled arms (Δ must be 0 on unsampled ones). `[..., d] → [...]`."""
    w = jnp.where(counts > 0, sigma**2 / jnp.maximum(counts, 1), 0.0)
    return jnp.sqrt(jnp.sum(w * delta**2, axis=-1))


# ----------------------------------------------------------------------------------------------- baselines


def greedy(rhat: jax.Array, counts: jax.Array) -> jax.Array:
    """Deterministic argmax r̂ over sampled arms, as a one-hot policy `[d]`."""
    score = jnp.where(counts > 0, rhat, -jnp.inf)
    return jax.nn.one_hot(jnp.argmax(score), rhat.shape[0], dtype=rhat.dtype)


def lcb_bonus(counts: jax.Array, *, sigma, delta: float, bound: str = "gaussian") -> jax.Array:
    """b_i = σ sqrt(2 log(2d/δ)/N_i) (sub-Gaussian + union bound over the d sampled arms), or the Hoeffding
    `[0,1]` variant sqrt(log(2d/δ)/(2N_i)); +∞ for unsampled arms. `[d]`."""
    d = jnp.sum(counts > 0)
    safe = jnp.maximum(counts, 1)
    if bound == "gaussian":
        b = sigma * jnp.sqrt(2 * jnp.log(2 * d / delta) / safe)
    elif bound == "hoeffding":
        b = jnp.sqrt(jnp.log(2 * d / delta) / (2 * safe))
    else:
        raise ValueError(f"bound={bound!r} is invalid: expected 'gaussian' or 'hoeffding'")
    return jnp.where(counts > 0, b, jnp.inf)


def lcb(rhat: jax.Array, counts: jax.Array, *, sigma, delta: float, bound: str = "gaussian"):
    """Pessimistic arm i* = argmax r̂_i − b_i. Returns (one-hot policy `[d]`, certificate r̂_i* − b_i*).
    With equal counts it picks the greedy arm; its pessimism shows only in the certificate."""
    score = rhat - lcb_bonus(counts, sigma=sigma, delta=delta, bound=bound)
    i = jnp.argmax(score)
    return jax.nn.one_hot(i, rhat.shape[0], dtype=rhat.dtype), score[i]


def behaviour(rhat: jax.Array, counts: jax.Array, *, sigma, delta: float):
    """The behaviour policy μ and its certificate μ·r̂ − sqrt(Σ μ_i² w_i)·sqrt(2 log(1/δ)) (= σ/sqrt(n)·…)."""
    mu = behaviour_policy(counts, rhat.dtype)
    return mu, mu @ rhat - reference_width(mu, counts=counts, sigma=sigma) * jnp.sqrt(2 * jnp.log(1 / delta))


def reference_width(mu: jax.Array, *, counts: jax.Array, sigma) -> jax.Array:
    """sqrt(Σ μ_i² w_i): the standard deviation of μ·r̂ (μ must be 0 on unsampled arms)."""
    return weighted_norm(mu, counts=counts, sigma=sigma)


# ----------------------------------------------------------------------------------------------- trust region


def _behaviour_segments(g: jax.Array, counts: jax.Array, sigma):
    """Sort-based description of the whole solution path of TRLinMax for the behaviour reference.

    With μ_i = N_i/n the KKT solution is π_i = N_i·max(0, u(g_i − A_k) + 1/C_k) on the top-k arms by g
    (u = τ/σ², C_k = Σ_top-k N, A_k = Σ_top-k N g / C_k). On the segment where the active set is the
    top k, ‖Δ‖_w² = σ²(u²Q_k + c_k) with Q_k = Σ_top-k N (g − A_k)² and c_k = 1/C_k − 1/n [D, derived
    here: the cross term vanishes because Σ_top-k N (g − A_k) = 0]. Arm k+1 enters at u = 1/s_{k+1},
    s_{k+1} = Σ_top-k N g − g_(k+1) C_k, so the radius at the small end of segment k is
    lo_k = σ²(Q_k/s_{k+1}² + c_k), non-increasing in k; lo_1 is the vertex distance, lo_K = 0.
    Returns sorted-order arrays; g is shifted by its maximum (ΣΔ = 0 makes the shift free) to keep
    the prefix sums well conditioned."""
    d = g.shape[0]
    pos = counts > 0
    order = jnp.argsort(-jnp.where(pos, g, -jnp.inf))  # descending; unsampled arms last
    rank = jnp.zeros(d, jnp.int32).at[order].set(jnp.arange(d, dtype=jnp.int32))
    ns = counts[order].astype(g.dtype)
    gmax = jnp.max(jnp.where(pos, g, -jnp.inf))
    gc = jnp.where(pos, g - gmax, 0.0)
    gs = gc[order]
    n = ns.sum()
    cn = jnp.cumsum(ns)
    cng = jnp.cumsum(ns * gs)
    cng2 = jnp.cumsum(ns * gs**2)
    safe_cn = jnp.maximum(cn, 1e-300)
    a = cng / safe_cn
    q = jnp.maximum(cng2 - cng * a, 0.0)
    c = jnp.maximum(1.0 / safe_cn - 1.0 / n, 0.0)
    num_pos = jnp.sum(pos)
    idx = jnp.arange(d)
    g_next = jnp.concatenate([gs[1:], jnp.zeros((1,), g.dtype)])
    s_next = jnp.maximum(cng - g_next * cn, 0.0)
    has_next = idx + 1 < num_pos
    ok = has_next & (q > 0) & (s_next > 0)
    term = jnp.where(ok, q / jnp.where(ok, s_next, 1.0) ** 2, 0.0)
    lo = sigma**2 * (term + c)
    lo = jnp.where(idx == num_pos - 1, 0.0, lo)
    lo = jnp.where(idx >= num_pos, jnp.inf, lo)
    return {"rank": rank, "gc": gc, "a": a, "q": q, "c": c, "cn": safe_cn, "lo": lo, "s_next": s_next,
            "num_pos": num_pos}


def _policy_on_segment(seg, counts, k, u):
    """π on segment k (top-k active) at scale u, renormalised; unsampled arms get 0. `[d]`."""
    km = k - 1
    active = (seg["rank"] < k) & (counts > 0)
    pi = counts * jnp.maximum(0.0, u * (seg["gc"] - seg["a"][km]) + 1.0 / seg["cn"][km])
    pi = jnp.where(active, pi, 0.0)
    return pi / pi.sum()


def tr_linmax_behaviour(g: jax.Array, counts: jax.Array, *, sigma, eps: jax.Array) -> jax.Array:
    """Exact TRLinMax for the behaviour reference: argmax_Δ g·Δ s.t. μ+Δ ∈ Δ_d, ‖Δ‖_w ≤ ε, μ = N/n.

    One sort of g, then for each radius the active-set size k* = min{k : lo_k ≤ ε²} and the closed-form
    u = sqrt((ε²/σ² − c_k)/Q_k) (see `_behaviour_segments`); O(d log d + J·d), no bisection. Radii beyond
    the vertex distance return the vertex e_{argmax g}; ε = 0 returns Δ = 0.
    g `[d]`, counts `[d]`, eps `[J]` (or scalar) → Δ `[J, d]` (or `[d]`)."""
    seg = _behaviour_segments(g, counts, sigma)
    mu = behaviour_policy(counts, g.dtype)
    eps = jnp.asarray(eps, g.dtype)

    def one(e):
        e2 = e**2
        k = jnp.argmax(seg["lo"] <= e2) + 1  # lo is non-increasing and lo_K = 0: a True always exists
        qk, ck = seg["q"][k - 1], seg["c"][k - 1]
        u = jnp.where(qk > 0, jnp.sqrt(jnp.maximum(e2 / sigma**2 - ck, 0.0) / jnp.where(qk > 0, qk, 1.0)), 0.0)
        return _policy_on_segment(seg, counts, k, u) - mu

    return jax.vmap(one)(eps.reshape(-1)).reshape(eps.shape + g.shape)


def tr_path_behaviour(g: jax.Array, counts: jax.Array, *, sigma, tau: jax.Array) -> jax.Array:
    """The KKT path Δ(τ) of TRLinMax for the behaviour reference (π_i = N_i max(0, 1/n + τ(g_i − ν)/σ²)
    with ν solving ΣΔ = 0), evaluated exactly from the sorted segments. τ `[T]` → Δ `[T, d]`."""
    seg = _behaviour_segments(g, counts, sigma)
    mu = behaviour_policy(counts, g.dtype)
    # segment k holds s = σ²/τ ∈ (s_k, s_{k+1}], s_1 = 0: k = 1 + #{j < K−1 : s_{j+2} < s}
    s_k = seg["s_next"]
    valid = jnp.arange(g.shape[0]) + 1 < seg["num_pos"]

    def one(t):
        s = sigma**2 / t
        k = 1 + jnp.sum(valid & (s_k < s))
        return _policy_on_segment(seg, counts, k, 1.0 / s) - mu

    tau = jnp.asarray(tau, g.dtype)
    return jax.vmap(one)(tau.reshape(-1)).reshape(tau.shape + g.shape)


def tr_linmax_general(g: jax.Array, mu: jax.Array, inv_w: jax.Array, *, eps, outer_iters: int = 45,
                      inner_iters: int = 60, log_tau_range: tuple[float, float] = (-30.0, 30.0)) -> jax.Array:
    """TRLinMax for a general reference μ by nested bisection (spec §2.3): Δ_i(τ, ν) = max(−μ_i, τ(g_i − ν)/w_i),
    ν the root of ΣΔ = 0 in [min g, max g] (inner), log τ chosen so ‖Δ‖_w = ε (outer). Arms with
    1/w_i = 0 keep Δ_i = 0. Radii beyond the best reachable vertex return that vertex.
    g, mu, inv_w `[d]`, eps scalar → Δ `[d]` (vmap over eps for a grid)."""
    act = inv_w > 0
    safe_iw = jnp.where(act, inv_w, 1.0)
    w = jnp.where(act, 1.0 / safe_iw, 0.0)
    big = jnp.finfo(g.dtype).max
    g_lo = jnp.min(jnp.where(act, g, big)) - 1e-12
    g_hi = jnp.max(jnp.where(act, g, -big)) + 1e-12

    def delta_of(tau, nu):
        return jnp.where(act, jnp.maximum(-mu, tau * (g - nu) * inv_w), 0.0)

    def nu_of(tau):
        def body(_, lh):
            lo, hi = lh
            mid = 0.5 * (lo + hi)
            pos = delta_of(tau, mid).sum() > 0  # ΣΔ decreases in ν
            return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

        lo, hi = jax.lax.fori_loop(0, inner_iters, body, (g_lo, g_hi))
        return 0.5 * (lo + hi)

    def clean(delta):  # exact ΣΔ = 0: rescale the sampled arms' mass of π = μ + Δ
        pi = jnp.where(act, jnp.maximum(mu + delta, 0.0), mu)
        mass = jnp.sum(jnp.where(act, mu, 0.0))
        pi = jnp.where(act, pi * mass / jnp.maximum(jnp.sum(jnp.where(act, pi, 0.0)), 1e-300), pi)
        return pi - mu

    def radius(tau):
        return jnp.sqrt(jnp.sum(w * delta_of(tau, nu_of(tau)) ** 2))

    def outer(_, lh):
        lo, hi = lh
        mid = 0.5 * (lo + hi)
        inside = radius(jnp.exp(mid)) <= eps
        return jnp.where(inside, mid, lo), jnp.where(inside, hi, mid)

    lo, _ = jax.lax.fori_loop(0, outer_iters, outer, (jnp.asarray(log_tau_range[0], g.dtype),
                                                      jnp.asarray(log_tau_range[1], g.dtype)))
    tau = jnp.exp(lo)
    interior = clean(delta_of(tau, nu_of(tau)))
    j = jnp.argmax(jnp.where(act, g, -big))
    mass = jnp.sum(jnp.where(act, mu, 0.0))
    vertex = jnp.where(act, jax.nn.one_hot(j, g.shape[0], dtype=g.dtype) * mass, mu) - mu
    v_dist = jnp.sqrt(jnp.sum(w * vertex**2))
    return jnp.where(eps >= v_dist, vertex, jnp.where(eps > 0, interior, 0.0))


# ----------------------------------------------------------------------------------------------- complexity, TRUST


def vertex_distances(counts: jax.Array, *, sigma) -> jax.Array:
    """‖e_j − μ‖_w for the behaviour reference: σ sqrt(1/N_j − 1/n) (∞ for unsampled arms). `[d]`."""
    n = counts.sum()
    safe = jnp.maximum(counts, 1)
    return jnp.where(counts > 0, sigma * jnp.sqrt(jnp.maximum(1.0 / safe - 1.0 / n, 0.0)), jnp.inf)


def radius_grid(counts: jax.Array, *, sigma, num: int = 20, decades: float = 3.0) -> jax.Array:
    """Data-independent geometric grid ε_j = ε_max·10^(−decades + decades(j−1)/(J−1)), j = 1..J, with
    ε_max = max_j ‖e_j − μ‖_w (behaviour reference). ε = 0 is handled separately by `trust`. `[J]`."""
    e_max = jnp.max(jnp.where(counts > 0, vertex_distances(counts, sigma=sigma), 0.0))
    expo = -decades + decades * jnp.arange(num, dtype=e_max.dtype) / max(num - 1, 1)
    return e_max * 10.0**expo


def gaussian_complexity(key: jax.Array, *, counts: jax.Array, sigma, grid: jax.Array, num_draws: int,
                        batch_size: int = 50, dtype=None):
    """Monte Carlo Ĝ(ε) = (1/M) Σ_m sup_{π∈C(ε)} (π − μ)·η^(m), η^(m)_i ~ N(0, σ²/N_i), behaviour μ.

    Depends only on (N, σ, grid, M, key), never on the data: give it its own key (spec pitfall 2).
    Returns (mean `[J]`, standard deviation over draws `[J]`); the standard error is std/sqrt(M)."""
    dtype = dtype or grid.dtype
    sd = jnp.where(counts > 0, sigma / jnp.sqrt(jnp.maximum(counts, 1)), 0.0).astype(dtype)

    def one(k):
        eta = sd * jax.random.normal(k, sd.shape, dtype)
        return tr_linmax_behaviour(eta, counts, sigma=sigma, eps=grid) @ eta

    sups = jax.lax.map(one, jax.random.split(key, num_draws), batch_size=batch_size)
    return sups.mean(0), sups.std(0)


def mc_slack(grid: jax.Array, *, num_draws: int, delta_mc: float) -> jax.Array:
    """Optional Monte Carlo slack ε·sqrt(2 log(2J/δ_mc)/M) added to Ĝ (sup is ε-Lipschitz in a
    standard Gaussian, so its M-sample mean deviates by at most this, for all J radii, w.p. 1−δ_mc)."""
    return grid * math.sqrt(2 * math.log(2 * grid.shape[0] / delta_mc) / num_draws)


def trust(rhat: jax.Array, counts: jax.Array, *, sigma, grid: jax.Array, complexity: jax.Array,
          delta: float) -> dict:
    """TRUST with the behaviour reference (spec §2.3 steps 5–7, reconstructed).

    LB(ε) = Δ_ε·r̂ − Ĝ(ε) − ε·sqrt(2 log(J/δ₁)) on the grid (δ₁ = δ/2), LB(0) = 0; ε̂ = argmax LB;
    π̂ = μ + Δ_ε̂; certificate μ·r̂ − sqrt(Σμ²w)·sqrt(2 log(1/δ₂)) + LB(ε̂) (δ₂ = δ/2): with
    probability ≥ 1−δ, V(π̂) ≥ certificate and V(π̂) ≥ V(μ).
    rhat, counts `[d]`; grid, complexity `[J]`. Returns {"policy" `[d]`, "certificate", "lower_bound",
    "radius", "index" (0 = stayed at μ, j = grid[j−1])}."""
    num = grid.shape[0]
    t = jnp.sqrt(2 * jnp.log(num / (delta / 2)))
    deltas = tr_linmax_behaviour(rhat, counts, sigma=sigma, eps=grid)  # [J, d]
    lbs = jnp.concatenate([jnp.zeros((1,), rhat.dtype), deltas @ rhat - complexity - grid * t])
    j = jnp.argmax(lbs)
    mu = behaviour_policy(counts, rhat.dtype)
    step = jnp.where(j > 0, deltas[jnp.maximum(j - 1, 0)], 0.0)
    cert = mu @ rhat - reference_width(mu, counts=counts, sigma=sigma) * jnp.sqrt(2 * jnp.log(2 / delta)) + lbs[j]
    radius = jnp.where(j > 0, grid[jnp.maximum(j - 1, 0)], 0.0)
    return {"policy": mu + step, "certificate": cert, "lower_bound": lbs[j], "radius": radius, "index": j}
