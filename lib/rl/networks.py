"""flax.linen networks for off-policy actor-critic, plus the tanh-squashed Gaussian's sampling and log-prob.

Actions live in [-1, 1]; an environment adapter rescales them to the env's bounds. Shapes: `[..., obs_dim]`
observations, `[..., action_dim]` actions, `[n_critics, ...]` Q-values (the leading axis is the ensemble).

The critic ensemble is one `nn.vmap`-ed module, as in araffin/sbx's `VectorCritic`: the `n_critics`
MLPs' parameters are stacked on a leading axis and evaluated in one batched matmul rather than a
Python loop over modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# SB3 / sbx clip the Gaussian's log-std to this range: below −20 the density overflows float32,
# above 2 (std ≈ 7.4) tanh saturates and the policy is effectively uniform on {−1, 1}.
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class MLP(nn.Module):
    """ReLU MLP: `[..., d_in] -> [..., out_dim]`; `hidden` gives the widths of the hidden layers."""

    hidden: Sequence[int] = (256, 256)
    out_dim: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


class GaussianActor(nn.Module):
    """SAC policy head: obs `[..., obs_dim]` -> (mean, log_std), each `[..., action_dim]`, log_std clipped.

    The action is tanh(mean + std·ε); see `sample_tanh_gaussian`.
    """

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(hidden=self.hidden, out_dim=2 * self.action_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class DeterministicActor(nn.Module):
    """TD3 policy: obs `[..., obs_dim]` -> action tanh(MLP(obs)) `[..., action_dim]` in (−1, 1)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(hidden=self.hidden, out_dim=self.action_dim)(obs))


class _QNetwork(nn.Module):
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return MLP(hidden=self.hidden, out_dim=1)(x)[..., 0]


class Critic(nn.Module):
    """Q ensemble: (obs `[..., obs_dim]`, action `[..., action_dim]`) -> Q `[n_critics, ...]`.

    Each member has its own initialisation (`split_rngs`); inputs are shared (`in_axes=None`).
    """

    hidden: Sequence[int] = (256, 256)
    n_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            _QNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_critics,
        )
        return ensemble(hidden=self.hidden)(obs, action)


def tanh_log_det_jacobian(pre_tanh: jax.Array) -> jax.Array:
    """log |d tanh(u)/du| = log(1 − tanh²u), elementwise `[..., A]`.

    Written as 2·(log 2 − u − softplus(−2u)) because 1 − tanh²u underflows to 0 (log → −inf) once
    |u| ≳ 9 in float32, while this form stays finite (the identity used by SB3, sbx and TFP).
    """
    return 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Diagonal Gaussian log-density summed over the last axis: `[..., A]` -> `[...]`."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - _HALF_LOG_2PI, axis=-1)


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log π(a) for a = tanh(u), u ~ N(mean, std²): log N(u) − Σ log(1 − tanh²u) (change of variables).

    Takes the pre-squash u `[..., A]` (not a) because atanh(a) is ill-conditioned near |a| = 1. Returns `[...]`.
    """
    return gaussian_log_prob(pre_tanh, mean, log_std) - jnp.sum(tanh_log_det_jacobian(pre_tanh), axis=-1)


def sample_tanh_gaussian(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + exp(log_std)·ε) `[..., A]` and its log π(a) `[...]`.

    Differentiable in (mean, log_std): this is what the SAC actor loss backpropagates through.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    pre_tanh = mean + jnp.exp(log_std) * eps
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std)
