"""lib.bandits: the trust-region solvers against scipy, the complexity's shape against the spec's numbers,
LCB/greedy against numpy loops, and TRUST's guarantees on small instances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from lib import bandits


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _random_instance(rng, d_max=8, zero_prob=0.3):
    d = int(rng.integers(2, d_max + 1))
    counts = rng.integers(1, 6, d).astype(float)
    if rng.random() < zero_prob:
        counts[rng.integers(d)] = 0.0
    if (counts > 0).sum() < 2:
        counts[:2] = (1.0, 2.0)
    sigma = float(rng.uniform(0.3, 2.0))
    v_dist = float(np.max(np.asarray(bandits.vertex_distances(jnp.asarray(counts), sigma=sigma))[counts > 0]))
    return d, counts, sigma, rng.normal(size=d), float(rng.uniform(0.02, 1.2)) * v_dist


def _slsqp(g, counts, sigma, eps, rng):
    """max g·Δ s.t. ΣΔ = 0, μ+Δ ≥ 0, ‖Δ‖_w ≤ ε (unsampled arms fixed), best feasible point of 5 starts."""
    d = g.size
    mu = counts / counts.sum()
    act = counts > 0
    w = np.where(act, sigma**2 / np.maximum(counts, 1), 0.0)
    cons = [{"type": "eq", "fun": lambda x: x.sum()},
            {"type": "ineq", "fun": lambda x: eps**2 - np.sum(w * x**2)},
            {"type": "ineq", "fun": lambda x: mu + x}]
    best = -np.inf
    for start in range(5):
        x0 = np.zeros(d) if start == 0 else np.where(act, rng.dirichlet(np.ones(d)) - mu, 0.0) * 0.1 * eps
        res = minimize(lambda x: -g @ x, x0, jac=lambda x: -g, method="SLSQP", constraints=cons,
                       bounds=[(None, None) if a else (0.0, 0.0) for a in act],
                       options={"ftol": 1e-14, "maxiter": 1000})
        x = res.x * min(1.0, eps / max(np.sqrt(np.sum(w * res.x**2)), 1e-300))
        if abs(x.sum()) < 1e-9 and np.min(mu + x) > -1e-9:
            best = max(best, g @ x)
    return best, w, mu


def test_exact_and_general_solvers_match_slsqp():
    """Both TRLinMax solvers reach SLSQP's optimum within 1e-6 on 50 random instances (d ≤ 8), feasible to 1e-8.
    Instances are padded to 8 arms with unsampled ones (one compilation), which must stay at Δ = 0."""
    rng = np.random.default_rng(0)

    @jax.jit
    def solve(g, n, s, e):
        mu = bandits.behaviour_policy(n, g.dtype)
        return (bandits.tr_linmax_behaviour(g, n, sigma=s, eps=e),
                bandits.tr_linmax_general(g, mu, bandits.inv_variance(n, s), eps=e))

    for _ in range(50):
        d, counts, sigma, g, eps = _random_instance(rng)
        best, w, mu = _slsqp(g, counts, sigma, eps, rng)
        pad = lambda x, d=d: jnp.asarray(np.r_[x, np.zeros(8 - d)])  # noqa: E731
        for delta in solve(pad(g), pad(counts), sigma, eps):
            delta = np.asarray(delta)
            assert np.all(delta[d:] == 0)
            delta = delta[:d]
            assert abs(g @ delta - best) < 1e-6, (counts, sigma, eps, g @ delta, best)
            assert np.sqrt(np.sum(w * delta**2)) - eps < 1e-8
            assert np.min(mu + delta) > -1e-8 and abs(delta.sum()) < 1e-8
            assert np.all(delta[counts == 0] == 0)


def test_general_solver_with_uniform_reference_matches_slsqp():
    """The nested-bisection solver with a uniform (non-behaviour) reference matches SLSQP within 1e-6."""
    rng = np.random.default_rng(1)
    for _ in range(15):
        d = int(rng.integers(2, 7))
        counts = rng.integers(1, 6, d).astype(float)
        sigma, g = float(rng.uniform(0.5, 1.5)), rng.normal(size=d)
        mu = np.full(d, 1.0 / d)
        w = sigma**2 / counts
        eps = float(rng.uniform(0.05, 1.0)) * np.sqrt(np.max([np.sum(w * (np.eye(d)[j] - mu) ** 2) for j in range(d)]))
        delta = np.asarray(bandits.tr_linmax_general(jnp.asarray(g), jnp.asarray(mu), jnp.asarray(1 / w), eps=eps))
        cons = [{"type": "eq", "fun": lambda x: x.sum()},
                {"type": "ineq", "fun": lambda x, w=w, eps=eps: eps**2 - np.sum(w * x**2)},
                {"type": "ineq", "fun": lambda x, mu=mu: mu + x}]
        res = minimize(lambda x, g=g: -g @ x, np.zeros(d), jac=lambda x, g=g: -g, method="SLSQP", constraints=cons,
                       options={"ftol": 1e-14, "maxiter": 1000})
        x = res.x * min(1.0, eps / np.sqrt(np.sum(w * res.x**2)))
        assert abs(g @ delta - g @ x) < 1e-6
        assert np.sqrt(np.sum(w * delta**2)) <= eps + 1e-8


def test_exact_solver_agrees_with_general_at_large_d():
    """On d = 300 with unequal counts the sort-based solver equals the nested bisection on a whole radius grid."""
    rng = np.random.default_rng(2)
    counts = jnp.asarray(np.r_[1000, rng.integers(0, 4, 299)].astype(float))
    g = jnp.asarray(rng.normal(size=300))
    grid = bandits.radius_grid(counts, sigma=0.7, num=12)
    exact = bandits.tr_linmax_behaviour(g, counts, sigma=0.7, eps=grid)
    general = jax.jit(jax.vmap(lambda e: bandits.tr_linmax_general(
        g, bandits.behaviour_policy(counts, g.dtype), bandits.inv_variance(counts, 0.7), eps=e)))(grid)
    np.testing.assert_allclose(exact @ g, general @ g, rtol=1e-8, atol=1e-10)
    # the largest radii reach the vertex of argmax g, which may be nearer than the farthest vertex ε_max
    vertex = float(bandits.vertex_distances(counts, sigma=0.7)[jnp.argmax(jnp.where(counts > 0, g, -jnp.inf))])
    np.testing.assert_allclose(bandits.weighted_norm(exact, counts=counts, sigma=0.7), np.minimum(grid, vertex),
                               rtol=1e-9)


def test_radius_monotone_in_tau_and_path_matches_solver():
    """‖Δ(τ)‖_w is non-decreasing along the KKT path, and TRLinMax at that radius returns Δ(τ)."""
    rng = np.random.default_rng(3)
    counts = jnp.asarray(rng.integers(1, 20, 60).astype(float))
    g = jnp.asarray(rng.normal(size=60))
    taus = jnp.exp(jnp.linspace(-8, 6, 200))
    path = bandits.tr_path_behaviour(g, counts, sigma=1.3, tau=taus)
    radii = np.asarray(bandits.weighted_norm(path, counts=counts, sigma=1.3))
    assert np.all(np.diff(radii) >= -1e-12) and radii[-1] > 10 * radii[0]
    back = bandits.tr_linmax_behaviour(g, counts, sigma=1.3, eps=jnp.asarray(radii))
    np.testing.assert_allclose(back, path, atol=1e-9)


def test_solver_edge_cases():
    """ε = 0 gives Δ = 0; ε beyond the vertex distance gives the vertex of argmax g; unsampled arms never move."""
    counts = jnp.array([3.0, 0.0, 1.0, 5.0])
    g = jnp.array([0.2, 9.0, 0.9, 0.1])
    mu = bandits.behaviour_policy(counts)
    out = bandits.tr_linmax_behaviour(g, counts, sigma=1.0, eps=jnp.array([0.0, 10.0]))
    np.testing.assert_allclose(out[0], 0.0, atol=1e-15)
    np.testing.assert_allclose(mu + out[1], [0, 0, 1, 0], atol=1e-12)
    v = bandits.vertex_distances(counts, sigma=1.0)
    np.testing.assert_allclose(bandits.weighted_norm(out[1], counts=counts, sigma=1.0), v[2], rtol=1e-12)
    general = bandits.tr_linmax_general(g, mu, bandits.inv_variance(counts, 1.0), eps=10.0)
    np.testing.assert_allclose(general, out[1], atol=1e-12)


@pytest.mark.parametrize("d,saturation", [(100, 2.50), (1000, 3.24)])
def test_complexity_slope_and_saturation_match_spec(d, saturation):
    """Ĝ (σ=1, N=1): small-ε slope within 2% of √(d−1), saturation within 2% of the spec's 2.50 / 3.24."""
    counts = jnp.ones(d)
    grid = bandits.radius_grid(counts, sigma=1.0, num=20)
    mean, std = jax.jit(lambda k: bandits.gaussian_complexity(k, counts=counts, sigma=1.0, grid=grid,
                                                              num_draws=1000))(jax.random.key(0))
    assert abs(mean[0] / grid[0] / np.sqrt(d - 1) - 1) < 0.02
    assert abs(mean[-1] / saturation - 1) < 0.02
    m = np.asarray(mean)
    assert np.all(np.diff(m) > 0) and np.all(np.diff(m / np.asarray(grid)) <= 1e-9)  # star-shaped: G/ε falls
    assert np.all(np.asarray(std) >= 0)


def test_complexity_depends_only_on_its_key():
    """Ĝ is a deterministic function of (N, σ, grid, M, key): same key, same numbers; another key, nearby."""
    counts = jnp.asarray(np.r_[100.0, np.ones(50)])
    grid = bandits.radius_grid(counts, sigma=0.5, num=8)
    f = jax.jit(lambda k: bandits.gaussian_complexity(k, counts=counts, sigma=0.5, grid=grid, num_draws=400)[0])
    a, b, c = f(jax.random.key(7)), f(jax.random.key(7)), f(jax.random.key(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a, c, rtol=0.1)


def _numpy_lcb(rhat, counts, sigma, delta):
    d = int((counts > 0).sum())
    best, best_i = -np.inf, -1
    for i in range(rhat.size):
        if counts[i] == 0:
            continue
        score = rhat[i] - sigma * np.sqrt(2 * np.log(2 * d / delta) / counts[i])
        if score > best:
            best, best_i = score, i
    return best_i, best


def test_lcb_and_greedy_match_numpy_loops():
    """LCB's arm and certificate and greedy's arm equal straightforward numpy loops; unsampled arms are never picked."""
    rng = np.random.default_rng(4)
    d = 40
    for _ in range(30):
        counts = rng.integers(0, 30, d).astype(float)
        counts[0] = max(counts[0], 1)
        rhat = np.where(counts > 0, rng.normal(size=d), 50.0)  # a huge r̂ on an unsampled arm must be ignored
        pol, cert = bandits.lcb(jnp.asarray(rhat), jnp.asarray(counts), sigma=0.8, delta=0.1)
        i, ref = _numpy_lcb(rhat, counts, 0.8, 0.1)
        assert int(np.argmax(pol)) == i and float(cert) == pytest.approx(ref, rel=1e-12)
        greedy = np.asarray(bandits.greedy(jnp.asarray(rhat), jnp.asarray(counts)))
        assert int(np.argmax(greedy)) == int(np.argmax(np.where(counts > 0, rhat, -np.inf)))
    hoeff = bandits.lcb_bonus(jnp.array([4.0, 0.0]), sigma=0.5, delta=0.1, bound="hoeffding")
    np.testing.assert_allclose(hoeff[0], np.sqrt(np.log(2 / 0.1) / 8))
    assert np.isinf(hoeff[1])


def test_sample_means_have_the_right_law():
    """r̂_i has mean r_i and variance σ²/N_i; unsampled arms give 0."""
    means, counts = jnp.array([0.3, 1.0, 0.5]), jnp.array([4.0, 1.0, 0.0])
    draws = jax.vmap(lambda k: bandits.sample_means(k, means=means, counts=counts, sigma=2.0))(
        jax.random.split(jax.random.key(0), 20000))
    np.testing.assert_allclose(draws[:, :2].mean(0), means[:2], atol=0.05)
    np.testing.assert_allclose(draws[:, :2].var(0), [1.0, 4.0], rtol=0.05)
    assert np.all(draws[:, 2] == 0)


def test_instances_have_the_spec_values():
    """trap-half: V(μ) = 0.318 and V* = 1 with d+1 arms; minimax d=10: V(μ) = 0.52; half01: V(μ) = 0.5."""
    trap = bandits.trap_half(d=1000, n0=10_000, sigma=0.5)
    assert trap["means"].size == 1001 and trap["counts"][0] == 10_000
    mu = bandits.behaviour_policy(jnp.asarray(trap["counts"]))
    assert float(mu @ trap["means"]) == pytest.approx(0.318, abs=5e-4)
    mm = bandits.minimax(d=10, n=100, gap=0.2)
    assert float(bandits.behaviour_policy(jnp.asarray(mm["counts"])) @ mm["means"]) == pytest.approx(0.52)
    assert bandits.half01(d=10, n=1, sigma=1.0)["means"].mean() == 0.5
    u = bandits.u01(jax.random.key(0), d=500, n=1, sigma=0.5)["means"]
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.05


def test_trust_beats_lcb_on_a_trap_and_keeps_its_guarantees():
    """trap-half (σ=0.5, d=200, N0=2000), 200 seeds: TRUST beats LCB by > 0.15, never falls below V(μ),
    and its certificate covers the realised value in ≥ 90% of seeds; it compiles once for all seeds."""
    inst = bandits.trap_half(d=200, n0=2000, sigma=0.5)
    means, counts = jnp.asarray(inst["means"]), jnp.asarray(inst["counts"], jnp.float64)
    grid = bandits.radius_grid(counts, sigma=0.5, num=20)
    g_hat, _ = bandits.gaussian_complexity(jax.random.key(1), counts=counts, sigma=0.5, grid=grid, num_draws=300)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def one(k):
        rhat = bandits.sample_means(k, means=means, counts=counts, sigma=0.5)
        tr = bandits.trust(rhat, counts, sigma=0.5, grid=grid, complexity=g_hat, delta=0.1)
        pol, cert = bandits.lcb(rhat, counts, sigma=0.5, delta=0.1)
        return tr["policy"] @ means, tr["certificate"], pol @ means, tr["policy"]

    vt, ct, vl, pols = jax.vmap(one)(jax.random.split(jax.random.key(2), 200))
    v_mu = float(bandits.behaviour_policy(counts) @ means)
    assert float(vt.mean() - vl.mean()) > 0.15
    assert float(jnp.min(vt)) >= v_mu - 1e-12
    assert float(jnp.mean(vt >= ct)) >= 0.9
    np.testing.assert_allclose(pols.sum(-1), 1.0, atol=1e-12)
    assert float(pols.min()) >= 0


def test_trust_stays_at_behaviour_without_signal():
    """With all arms equal (no improvement possible) TRUST returns μ in (nearly) every seed and LB(ε̂) = 0."""
    counts = jnp.full(20, 5.0)
    means = jnp.full(20, 0.5)
    grid = bandits.radius_grid(counts, sigma=1.0, num=20)
    g_hat, _ = bandits.gaussian_complexity(jax.random.key(3), counts=counts, sigma=1.0, grid=grid, num_draws=500)
    out = jax.jit(jax.vmap(lambda k: bandits.trust(bandits.sample_means(k, means=means, counts=counts, sigma=1.0),
                                                   counts, sigma=1.0, grid=grid, complexity=g_hat, delta=0.1)))(
        jax.random.split(jax.random.key(4), 200))
    assert float(jnp.mean(out["index"] == 0)) >= 0.95
    np.testing.assert_allclose(out["policy"][out["index"] == 0], 1 / 20, atol=1e-14)
