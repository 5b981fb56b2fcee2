"""TEMPORARY stand-in for the unlearning primitives that branch `unlearn-lib` adds to lib/losses.py.

Same names and formulas; deleted once that branch is merged (projects.npo.synthetic imports lib.losses first)."""

import jax
import jax.numpy as jnp


def ga_from_logps(logp):
    return logp


def npo_from_logps(logp, ref_logp, *, beta):
    return (2.0 / beta) * jax.nn.softplus(beta * (logp - ref_logp))


def simnpo_from_logps(logp, length, *, beta, gamma=0.0):
    return -(2.0 / beta) * jax.nn.log_sigmoid(-(beta / length) * logp - gamma)


__all__ = ["ga_from_logps", "npo_from_logps", "simnpo_from_logps", "jnp"]
