"""Tests for lib/icl.py and lib/attention.py against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import icl
from lib.attention import linear_attention


def _prompts(key, *, batch=64, M=10, d=4, norm=1.5, sigma=0.7):
    dr = icl.sample_standard(key, batch=batch, n_context=M, d=d)
    return icl.make_prompts(dr, beta_star=jnp.full(d, norm / np.sqrt(d)), sigma=sigma)


def test_linear_attention_matches_matrix_formula():
    """f(E) = E + W_pv E Mask Eᵀ W_kq E / M, written out with numpy matrices."""
    rng = np.random.default_rng(0)
    d_e, n, M = 4, 7, 6
    E = rng.normal(size=(d_e, n))
    w_pv, w_kq = rng.normal(size=(d_e, d_e)), rng.normal(size=(d_e, d_e))
    mask = np.diag([1.0] * M + [0.0] * (n - M))
    expected = E + w_pv @ E @ mask @ E.T @ w_kq @ E / M
    got = linear_attention(jnp.asarray(E), jnp.asarray(E), jnp.asarray(w_pv), jnp.asarray(w_kq), n_context=M)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_embed_layout():
    """Tokens are columns (x_i; y_i) and the query column carries a zero label."""
    p = _prompts(jax.random.key(0), batch=2, M=3, d=2)
    E = icl.embed(p["X"], p["y"], p["x"])
    assert E.shape == (2, 3, 4)
    np.testing.assert_allclose(E[:, :2, :3], p["X"].swapaxes(1, 2))
    np.testing.assert_allclose(E[:, 2, :3], p["y"])
    np.testing.assert_allclose(E[:, :2, 3], p["x"])
    np.testing.assert_array_equal(E[:, 2, 3], 0.0)


def test_ltb_implements_gd_beta_and_reads_back():
    """LTB weights built from (β0, Γ) as in the spec §2.3 predict exactly like GD-β, and
    ltb_as_gd_beta recovers (β0, Γ); an LSA has no direct path (β0_direct = 0)."""
    d = 4
    rng = np.random.default_rng(1)
    beta0, gamma = rng.normal(size=d), rng.normal(size=(d, d))
    # u = e_{d+1} + W1ᵀW2ᵀe_{d+1} = (β0; 1) with W2 W1 = [[0, 0], [β0ᵀ, 0]] (rank one, d_ff = d+1).
    w1 = np.zeros((d + 1, d + 1))
    w1[0, :d] = beta0
    w2 = np.zeros((d + 1, d + 1))
    w2[d, 0] = 1.0
    # p' = W_pvᵀu = (−β0; 1): take W_pv with last row (−β0; 1) and zero elsewhere (u_y = 1 picks it).
    w_pv = np.zeros((d + 1, d + 1))
    w_pv[d, :d] = -beta0
    w_pv[d, d] = 1.0
    w_kq = np.zeros((d + 1, d + 1))
    w_kq[:d, :d] = gamma.T  # W = [Γᵀ; 0ᵀ]
    params = {k: jnp.asarray(v, jnp.float32) for k, v in
              {"w_pv": w_pv, "w_kq": w_kq, "w1": w1, "w2": w2}.items()}
    p = _prompts(jax.random.key(2), d=d)
    np.testing.assert_allclose(icl.predict(params, p["X"], p["y"], p["x"]),
                               icl.gd_beta_predict(p["X"], p["y"], p["x"], jnp.asarray(beta0, jnp.float32),
                                                   jnp.asarray(gamma, jnp.float32)), rtol=2e-4, atol=2e-4)
    read = icl.ltb_as_gd_beta(params)
    np.testing.assert_allclose(read["beta0_direct"], beta0, rtol=1e-5)
    np.testing.assert_allclose(read["beta0_attn"], beta0, rtol=1e-5)
    np.testing.assert_allclose(read["gamma"], gamma, rtol=1e-5)
    np.testing.assert_allclose(read["y_coupling"], 0.0)
    lsa = {"w_pv": params["w_pv"], "w_kq": params["w_kq"]}
    np.testing.assert_allclose(icl.ltb_as_gd_beta(lsa)["beta0_direct"], 0.0)


@pytest.mark.parametrize("point", ["optimum", "random"])
def test_gd_beta_risk_formula_matches_monte_carlo(point):
    """Closed-form GD-β risk = Monte Carlo on 2·10⁵ prompts within 3 s.e. (non-isotropic H, Ψ)."""
    d, M, s2 = 4, 12, 0.7
    k = jax.random.split(jax.random.key(3), 6)
    a, b = jax.random.normal(k[0], (d, d)), jax.random.normal(k[1], (d, d))
    H, Psi = a @ a.T / d + 0.5 * jnp.eye(d), 0.5 * (b @ b.T / d + 0.5 * jnp.eye(d))
    beta_star = jax.random.normal(k[2], (d,))
    gamma, _ = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=s2, n_context=M)
    b0 = beta_star if point == "optimum" else jax.random.normal(k[3], (d,))
    g = gamma if point == "optimum" else 0.3 * jax.random.normal(k[4], (d, d))
    formula = float(icl.gd_beta_risk(b0, g, H=H, psi=Psi, beta_star=beta_star, sigma2=s2, n_context=M))
    dr = icl.sample_standard(k[5], batch=200_000, n_context=M, d=d)
    pr = icl.make_prompts(dr, beta_star=beta_star, sigma=np.sqrt(s2), h_sqrt=jnp.linalg.cholesky(H),
                          psi_sqrt=jnp.linalg.cholesky(Psi))
    err = np.asarray((icl.gd_beta_predict(pr["X"], pr["y"], pr["x"], b0, g) - pr["y_q"]) ** 2, np.float64)
    assert abs(err.mean() - formula) <= 3 * err.std() / np.sqrt(err.size), (formula, err.mean())


def test_gd_beta_optimum_is_a_minimum_and_matches_isotropic_numbers():
    """Spec §2.4 numbers (γ* = 0.7407, R* = 2.2963 at d=5, M=20, σ²=1) and no perturbation helps."""
    d, M = 5, 20
    H, Psi = jnp.eye(d), jnp.eye(d)
    gamma, r = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=1.0, n_context=M)
    np.testing.assert_allclose(gamma, 0.74074 * np.eye(d), atol=1e-4)
    np.testing.assert_allclose(r, 2.29630, atol=1e-4)
    beta_star = jnp.full(d, 0.9)
    for i in range(20):
        kb, kg = jax.random.split(jax.random.key(10 + i))
        r_p = icl.gd_beta_risk(beta_star + 0.05 * jax.random.normal(kb, (d,)),
                               gamma + 0.05 * jax.random.normal(kg, (d, d)),
                               H=H, psi=Psi, beta_star=beta_star, sigma2=1.0, n_context=M)
        assert r_p > r
    gd0 = [float(icl.gd0_optimum(H=H, psi=Psi, beta_star=jnp.full(d, n / np.sqrt(d)), sigma2=1.0,
                                 n_context=M)[1]) for n in (0, 1, 2, 4, 8)]
    np.testing.assert_allclose(gd0, [2.296, 2.510, 3.072, 4.889, 10.236], atol=2e-3)


def test_bayes_risk_mc_matches_posterior_mean_predictor():
    """The design-averaged Bayes risk equals the risk of the posterior-mean predictor (Monte Carlo)."""
    d, M, s2 = 3, 8, 0.5
    H, Psi = jnp.eye(d), jnp.eye(d)
    bayes, se = icl.bayes_risk_mc(jax.random.key(4), H=H, psi=Psi, sigma2=s2, n_context=M, num_draws=40_000)
    p = _prompts(jax.random.key(5), batch=100_000, M=M, d=d, norm=2.0, sigma=np.sqrt(s2))
    err = (icl.bayes_predict(p["X"], p["y"], p["x"], beta_star=jnp.full(d, 2.0 / np.sqrt(d)), psi=Psi,
                             sigma2=s2) - p["y_q"]) ** 2
    tol = 3 * np.hypot(err.std() / np.sqrt(err.size), se)
    assert abs(float(err.mean()) - float(bayes)) <= tol
    assert float(bayes) < float(icl.gd_beta_optimum(H=H, psi=Psi, sigma2=s2, n_context=M)[1])
