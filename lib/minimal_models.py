"""Minimal models of training dynamics, as pure functions.

Three-parameter model of two-hop in-context reasoning (Guo, Zhu, Zhang, Jiao, Mei, Jordan, Russell,
"How Do LLMs Perform Two-Hop Reasoning in Context?", arXiv 2502.13913). Implemented as the authors'
notebook code computes it (their docstring describes a slightly different formula; the code produced
the published figures): with σ_N(u) = eᵘ / (eᵘ + N), the weight one special position with logit u gets
against N competitors at logit 0,

    y = β · σ₁₀(α)                          layer 2's effective logit (needs layer 1's parent copy)
    z = γ · (σ₁₀(y) + σ₁₀(0)) · σ₁₀(α)      effective logit of the correct end token
    L(α, β, γ) = −log(eᶻ / (eᶻ + 30))

α, β, γ read as the attention logits of layer-1 child→parent, layer-2 query→bridge and layer-3
query→end (an interpretation). Trained by plain gradient descent (Euler steps of the gradient flow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sigma_n(u: jnp.ndarray, n: float) -> jnp.ndarray:
    """eᵘ / (eᵘ + n), computed stably."""
    return jax.nn.sigmoid(u - jnp.log(n))


def three_param_loss(theta: jnp.ndarray, *, n_context: float = 10.0, n_output: float = 30.0) -> jnp.ndarray:
    """L(α, β, γ) for theta = (α, β, γ) `[3]` (or `[..., 3]`)."""
    alpha, beta, gamma = theta[..., 0], theta[..., 1], theta[..., 2]
    a = sigma_n(alpha, n_context)
    y = beta * a
    z = gamma * (sigma_n(y, n_context) + sigma_n(0.0, n_context)) * a
    return jax.nn.softplus(-(z - jnp.log(n_output)))  # −log(eᶻ/(eᶻ+n_output))


def three_param_descent(theta0: jnp.ndarray, *, lr: float = 0.1, steps: int = 2000, n_context: float = 10.0,
                        n_output: float = 30.0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Gradient descent from theta0 `[3]`: returns (thetas `[steps+1, 3]`, losses `[steps+1]`)."""
    loss = lambda th: three_param_loss(th, n_context=n_context, n_output=n_output)

    def step(th, _):
        return th - lr * jax.grad(loss)(th), th

    last, thetas = jax.lax.scan(step, jnp.asarray(theta0, jnp.float32), None, length=steps)
    thetas = jnp.concatenate([thetas, last[None]], axis=0)
    return thetas, jax.vmap(loss)(thetas)
