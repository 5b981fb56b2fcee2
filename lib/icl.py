"""In-context linear regression: data model, linear transformer blocks, GD-β, closed-form risks.

Reference: Zhang, Wu, Bartlett, "In-Context Learning of a Linear Transformer Block: Benefits of the
MLP Component and One-Step GD Initialization", NeurIPS 2024 (arXiv 2402.14951). The paper body was
not available; the formulas follow the reconstruction in the project's spec and were checked
against Monte Carlo (tests/lib/test_icl.py).

Data model, per prompt: β ~ N(β*, Ψ); x_1..x_M, x ~ N(0, H); y_i = x_iᵀβ + ε_i, ε ~ N(0, σ²).
Token matrix E = [[x_1 .. x_M x], [y_1 .. y_M 0]] ∈ R^{(d+1)×(M+1)}; the prediction is read from the
label row of the query column.

Models (pure functions of a params dict):
  LSA  (linear self-attention):  params {w_pv, w_kq}           ŷ = [E_q + W_pv Ĉ W_kq E_q]_{d+1}
  LTB  (LSA + linear MLP):       params {w_pv, w_kq, w1, w2}   ŷ = [h + W2 W1 h]_{d+1}, h = LSA output
GD-β (one preconditioned GD step from a learnable start): β̂ = β0 + Γ Xᵀ(y − Xβ0)/M, ŷ = xᵀβ̂.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lib.attention import linear_attention

# ----------------------------------------------------------------------------- data model


def sample_standard(key: jax.Array, *, batch: int, n_context: int, d: int,
                    dtype=jnp.float32) -> dict[str, jnp.ndarray]:
    """Standard-normal draws of one batch of prompts, independent of (β*, H, Ψ, σ).

    Returns {"x": [batch, M+1, d], "noise": [batch, M+1], "beta": [batch, d]}; the query is the
    last of the M+1 inputs. Sharing these draws across settings gives common random numbers."""
    kx, ke, kb = jax.random.split(key, 3)
    return {
        "x": jax.random.normal(kx, (batch, n_context + 1, d), dtype),
        "noise": jax.random.normal(ke, (batch, n_context + 1), dtype),
        "beta": jax.random.normal(kb, (batch, d), dtype),
    }


def make_prompts(draws: dict[str, jnp.ndarray], *, beta_star: jnp.ndarray, sigma: float | jnp.ndarray,
                 h_sqrt: jnp.ndarray | None = None, psi_sqrt: jnp.ndarray | None = None) -> dict:
    """Turns standard draws into prompts of the data model.

    Args: beta_star `[d]`; sigma the label-noise std; h_sqrt, psi_sqrt `[d, d]` square roots of
    H and Ψ (identity when None).
    Returns {"X": [b, M, d], "y": [b, M], "x": [b, d], "y_q": [b], "beta": [b, d]}."""
    x_all, beta = draws["x"], draws["beta"]
    if h_sqrt is not None:
        x_all = x_all @ h_sqrt.T
    if psi_sqrt is not None:
        beta = beta @ psi_sqrt.T
    beta = beta + beta_star
    y_all = jnp.einsum("bnd,bd->bn", x_all, beta) + sigma * draws["noise"]
    return {"X": x_all[:, :-1], "y": y_all[:, :-1], "x": x_all[:, -1], "y_q": y_all[:, -1], "beta": beta}


def embed(X: jnp.ndarray, y: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Token matrix E `[b, d+1, M+1]` from context `X [b, M, d]`, labels `y [b, M]`, query `x [b, d]`."""
    inputs = jnp.concatenate([X, x[:, None, :]], axis=1)  # [b, M+1, d]
    labels = jnp.concatenate([y, jnp.zeros_like(y[:, :1])], axis=1)  # [b, M+1]
    return jnp.concatenate([inputs, labels[..., None]], axis=-1).swapaxes(-1, -2)


# ----------------------------------------------------------------------------- models


def init_lsa(key: jax.Array, *, d: int, scale: float = 0.01) -> dict[str, jnp.ndarray]:
    """Small random init; zero is a saddle of the bilinear parametrisation (all gradients vanish)."""
    k1, k2 = jax.random.split(key)
    return {"w_pv": scale * jax.random.normal(k1, (d + 1, d + 1)),
            "w_kq": scale * jax.random.normal(k2, (d + 1, d + 1))}


def init_ltb(key: jax.Array, *, d: int, d_ff: int | None = None, scale: float = 0.01) -> dict:
    """LTB params: LSA params plus a linear MLP W1 `[d_ff, d+1]`, W2 `[d+1, d_ff]` (d_ff ≥ d+1)."""
    d_ff = d + 1 if d_ff is None else d_ff
    k1, k2, k3 = jax.random.split(key, 3)
    params = init_lsa(k1, d=d, scale=scale)
    params["w1"] = scale * jax.random.normal(k2, (d_ff, d + 1))
    params["w2"] = scale * jax.random.normal(k3, (d + 1, d_ff))
    return params


def lsa_forward(params: dict, tokens: jnp.ndarray, *, n_context: int, queries: jnp.ndarray | None = None):
    """LSA layer on token matrices `[b, d+1, n]`; returns the updated `queries` columns."""
    queries = tokens if queries is None else queries
    return linear_attention(tokens, queries, params["w_pv"], params["w_kq"], n_context=n_context)


def ltb_forward(params: dict, tokens: jnp.ndarray, *, n_context: int, queries: jnp.ndarray | None = None):
    """LTB layer: LSA followed by a residual linear MLP h + W2 W1 h (applied per token column)."""
    h = lsa_forward(params, tokens, n_context=n_context, queries=queries)
    return h + jnp.einsum("if,fj,...jq->...iq", params["w2"], params["w1"], h)


def predict(params: dict, X: jnp.ndarray, y: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """ŷ `[b]` of an LSA (params without w1/w2) or an LTB: the label row of the query column."""
    tokens = embed(X, y, x)
    query = tokens[..., -1:]
    forward = ltb_forward if "w1" in params else lsa_forward
    out = forward(params, tokens, n_context=X.shape[-2], queries=query)
    return out[..., -1, 0]


def ltb_as_gd_beta(params: dict) -> dict[str, jnp.ndarray]:
    """Reads an LTB (or LSA) as the GD-β estimator it implements.

    ŷ = uᵀh_q with u = e_{d+1} + W1ᵀW2ᵀe_{d+1}. Writing p = W_pvᵀu (p = (p_x; p_y)) and
    W = W_kq[:, :d]:  ŷ = u_xᵀx + (1/M)Σ_i (p_xᵀx_i + p_y y_i)(x_iᵀW[:d] + y_i W[d]) x.
    A GD-β estimator has W[d] = 0 and then β0 = −p_x/p_y, Γ = p_y W[:d]ᵀ, and the direct path
    u_x = β0 (the path LSA lacks: there u_x = 0).

    Returns {"beta0_direct": u_x, "beta0_attn": −p_x/p_y, "gamma": Γ, "y_coupling": p_y·W[d]}."""
    d = params["w_pv"].shape[-1] - 1
    u = jnp.zeros(d + 1).at[d].set(1.0)
    if "w1" in params:
        u = u + params["w1"].T @ (params["w2"].T @ u)
    p = params["w_pv"].T @ u
    w = params["w_kq"][:, :d]
    return {"beta0_direct": u[:d], "beta0_attn": -p[:d] / p[d], "gamma": (p[d] * w[:d]).T,
            "y_coupling": p[d] * w[d]}


# ----------------------------------------------------------------------------- GD-β and Bayes


def gd_beta_predict(X, y, x, beta0, gamma):
    """One preconditioned GD step from β0: ŷ = xᵀ(β0 + Γ Xᵀ(y − Xβ0)/M). Shapes as `predict`."""
    resid = y - X @ beta0
    beta_hat = beta0 + jnp.einsum("ij,bmj,bm->bi", gamma, X, resid) / X.shape[-2]
    return jnp.einsum("bd,bd->b", x, beta_hat)


def bayes_predict(X, y, x, *, beta_star, psi, sigma2):
    """Posterior-mean prediction xᵀ(β* + (Ψ⁻¹ + XᵀX/σ²)⁻¹ Xᵀ(y − Xβ*)/σ²)."""
    prec = jnp.linalg.inv(psi) + jnp.einsum("bmi,bmj->bij", X, X) / sigma2
    rhs = jnp.einsum("bmi,bm->bi", X, y - X @ beta_star) / sigma2
    return jnp.einsum("bd,bd->b", x, beta_star + jnp.linalg.solve(prec, rhs[..., None])[..., 0])


def gd_beta_risk(beta0, gamma, *, H, psi, beta_star, sigma2, n_context):
    """Closed-form ICL risk E(ŷ − y)² of GD-β (Gaussian fourth moments).

    With m = β* − β0, Ψ̃ = Ψ + mmᵀ:
      R = σ² + tr(HΨ̃) − 2 tr(HΓHΨ̃) + tr(ΓᵀHΓ S̃),  S̃ = (1+1/M) HΨ̃H + ((tr HΨ̃ + σ²)/M) H."""
    M = n_context
    m = beta_star - beta0
    psi_t = psi + jnp.outer(m, m)
    tr_hp = jnp.trace(H @ psi_t)
    s = (1 + 1 / M) * H @ psi_t @ H + (tr_hp + sigma2) / M * H
    return sigma2 + tr_hp - 2 * jnp.trace(H @ gamma @ H @ psi_t) + jnp.trace(gamma.T @ H @ gamma @ s)


def gd_beta_optimum(*, H, psi, sigma2, n_context):
    """The optimal GD-β preconditioner and risk (β0 = β* is optimal for every Γ).

    Γ* = Ψ[(1+1/M)HΨ + ((tr HΨ + σ²)/M) I]⁻¹,  R* = σ² + tr(HΨ) − tr(HΓ*HΨ)  (independent of β*).
    Returns (Γ*, R*)."""
    M = n_context
    d = H.shape[0]
    gamma = psi @ jnp.linalg.inv((1 + 1 / M) * H @ psi + (jnp.trace(H @ psi) + sigma2) / M * jnp.eye(d))
    return gamma, sigma2 + jnp.trace(H @ psi) - jnp.trace(H @ gamma @ H @ psi)


def gd0_optimum(*, H, psi, beta_star, sigma2, n_context):
    """Optimal one-step GD from zero (GD-0): the optimum above with Ψ replaced by Ψ + β*β*ᵀ.

    Equals the optimal LSA risk when β* = 0, and bounds it from above otherwise. Returns (Γ0*, R0*)."""
    return gd_beta_optimum(H=H, psi=psi + jnp.outer(beta_star, beta_star), sigma2=sigma2,
                           n_context=n_context)


def bayes_risk_mc(key: jax.Array, *, H, psi, sigma2, n_context: int, num_draws: int, chunk: int = 4096):
    """Bayes risk σ² + E_X tr(H (Ψ⁻¹ + XᵀX/σ²)⁻¹) by Monte Carlo over designs X (β*-independent).

    Returns (mean, standard error)."""
    d = H.shape[0]
    h_sqrt = jnp.linalg.cholesky(H)
    psi_inv = jnp.linalg.inv(psi)
    n_chunks = -(-num_draws // chunk)

    def one_chunk(k):
        X = jax.random.normal(k, (chunk, n_context, d)) @ h_sqrt.T
        prec = psi_inv + jnp.einsum("bmi,bmj->bij", X, X) / sigma2
        return sigma2 + jnp.trace(H @ jnp.linalg.inv(prec), axis1=-2, axis2=-1)

    vals = jax.lax.map(one_chunk, jax.random.split(key, n_chunks)).reshape(-1)[:num_draws]
    return vals.mean(), vals.std() / np.sqrt(num_draws)
