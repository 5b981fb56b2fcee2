"""The closed-form side of ltb_icl (spec criteria B0, B1, B3 and the reference risks for B2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lib import icl

# Spec §2.6: (d, σ², M) rows of the "nearly Bayes-optimal only at moderate SNR" table, ψ = 1.
BAYES_TABLE = ((5, 0.25, 20), (5, 1.0, 20), (5, 5.0, 20), (5, 5.0, 80), (10, 10.0, 20), (10, 1.0, 80))


def _iso(d: int, psi: float):
    return jnp.eye(d), psi * jnp.eye(d)


def reference_risks(config) -> dict:
    """Per M: R*_GDβ, R*_GD0 per ‖β*‖, Bayes risk (MC) and its s.e. (H = I, Ψ = ψI)."""
    d, s2, psi = config.data.d, config.data.sigma2, config.data.psi
    H, Psi = _iso(d, psi)
    out = {}
    for M in config.data.context_lengths:
        _, r_gd = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=s2, n_context=M)
        r_gd0 = [float(icl.gd0_optimum(H=H, psi=Psi, beta_star=jnp.full(d, n / np.sqrt(d)), sigma2=s2,
                                       n_context=M)[1]) for n in config.data.beta_star_norms]
        bayes, se = icl.bayes_risk_mc(jax.random.key(config.seed + 11), H=H, psi=Psi, sigma2=s2, n_context=M,
                                      num_draws=config.eval.bayes_draws)
        out[f"M{M}"] = {"gd_beta": float(r_gd), "gd0": r_gd0, "bayes": float(bayes), "bayes_se": float(se)}
    return out


def random_spd(key, d: int, scale: float = 1.0):
    a = jax.random.normal(key, (d, d)) / np.sqrt(d)
    return scale * (a @ a.T + 0.5 * jnp.eye(d))


def formula_vs_monte_carlo(*, key, d: int, n_context: int, sigma2: float, num_prompts: int,
                           isotropic: bool, beta_star_norm: float = 2.0, chunk: int = 10_000) -> dict:
    """B0: the closed-form GD-β risk against Monte Carlo at the optimum and at a random (β0, Γ)."""
    kh, kp, kb, kg, kd = jax.random.split(key, 5)
    if isotropic:
        H, Psi = _iso(d, 1.0)
    else:
        H, Psi = random_spd(kh, d), random_spd(kp, d, 0.5)
    beta_star = beta_star_norm * jax.random.normal(kb, (d,)) / np.sqrt(d)
    gamma_opt, _ = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=sigma2, n_context=n_context)
    points = {"optimum": (beta_star, gamma_opt),
              "random": (jax.random.normal(kg, (d,)), 0.3 * jax.random.normal(jax.random.fold_in(kg, 1), (d, d)))}
    h_sqrt, psi_sqrt = jnp.linalg.cholesky(H), jnp.linalg.cholesky(Psi)
    n_chunks = -(-num_prompts // chunk)
    out = {}
    for name, (b0, g) in points.items():
        formula = icl.gd_beta_risk(b0, g, H=H, psi=Psi, beta_star=beta_star, sigma2=sigma2, n_context=n_context)

        @jax.jit
        def errs(k, b0=b0, g=g):
            dr = icl.sample_standard(k, batch=chunk, n_context=n_context, d=d)
            pr = icl.make_prompts(dr, beta_star=beta_star, sigma=np.sqrt(sigma2), h_sqrt=h_sqrt, psi_sqrt=psi_sqrt)
            return (icl.gd_beta_predict(pr["X"], pr["y"], pr["x"], b0, g) - pr["y_q"]) ** 2

        e = jnp.concatenate([errs(k) for k in jax.random.split(kd, n_chunks)])
        mc, se = float(e.mean()), float(e.std() / np.sqrt(e.size))
        out[name] = {"formula": float(formula), "mc": mc, "se": se, "z": abs(float(formula) - mc) / se}
    return out


def gd_beta_gradient_descent(*, key, d: int = 5, n_context: int = 20, sigma2: float = 1.0,
                             steps: int = 5000, lr: float = 0.02) -> dict:
    """B1: plain gradient descent on the closed-form GD-β risk from (β0, Γ) = (0, 0), in float64.

    Non-isotropic random H, Ψ = I, ‖β*‖ ≈ 2.6 as in the spec §2.7. The objective is non-convex
    jointly (Γ·Ĥ·β0 couples the blocks); the paper proves gradient flow still finds the optimum."""
    with jax.enable_x64(True):
        kh, kb = jax.random.split(key)
        H = random_spd(kh, d).astype(jnp.float64)
        Psi = jnp.eye(d, dtype=jnp.float64)
        beta_star = (2.6 * jax.random.normal(kb, (d,)) / np.sqrt(d)).astype(jnp.float64)
        gamma_opt, r_opt = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=sigma2, n_context=n_context)

        def risk(p):
            return icl.gd_beta_risk(p[0], p[1], H=H, psi=Psi, beta_star=beta_star, sigma2=sigma2,
                                    n_context=n_context)

        @jax.jit
        def descend(p):
            def body(p, _):
                g = jax.grad(risk)(p)
                return jax.tree.map(lambda a, b: a - lr * b, p, g), risk(p)
            return jax.lax.scan(body, p, None, length=steps)

        p0 = (jnp.zeros(d, jnp.float64), jnp.zeros((d, d), jnp.float64))
        (b0, g), curve = descend(p0)
        return {"beta0_error": float(jnp.linalg.norm(b0 - beta_star)),
                "gamma_error": float(jnp.linalg.norm(g - gamma_opt)),
                "risk_gap": float(risk((b0, g)) - r_opt), "risk_start": float(curve[0]),
                "risk_optimum": float(r_opt), "curve": np.asarray(curve)}


def bayes_table(*, key, num_draws: int) -> list[dict]:
    """B3: Bayes risk vs the optimal GD-β risk across signal-to-noise (spec §2.6), ψ = 1, H = I."""
    rows = []
    for i, (d, s2, M) in enumerate(BAYES_TABLE):
        H, Psi = _iso(d, 1.0)
        _, r_gd = icl.gd_beta_optimum(H=H, psi=Psi, sigma2=s2, n_context=M)
        bayes, se = icl.bayes_risk_mc(jax.random.fold_in(key, i), H=H, psi=Psi, sigma2=s2, n_context=M,
                                      num_draws=num_draws)
        rows.append({"d": d, "sigma2": s2, "M": M, "bayes": float(bayes), "bayes_se": float(se),
                     "gd_beta": float(r_gd), "excess_ratio": (float(r_gd) - s2) / (float(bayes) - s2)})
    return rows
