"""Pieces SAC and TD3 share: a train state with target parameters, Polyak averaging, the critic regression step.

Follows araffin/sbx: each network is a flax `TrainState` (params, optax state, and the static
`apply_fn`/`tx`), and the critic's state also carries its target parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from lib.rl.networks import Critic
from lib.rl.types import Transition


class RLTrainState(TrainState):
    """A flax `TrainState` plus `target_params` (same tree as `params`), updated only by `polyak`."""

    target_params: Any = None


def copy_tree(tree: Any) -> Any:
    """Leafwise copies. Targets start as copies, not aliases, of the online params: a state whose two
    fields share one buffer cannot be donated to jit ("attempt to donate the same buffer twice")."""
    return jax.tree_util.tree_map(jnp.copy, tree)


def polyak(target: Any, online: Any, *, tau: float | jax.Array) -> Any:
    """Target ← τ·online + (1 − τ)·target, leafwise. τ = 1 copies, τ = 0 keeps the target."""
    return optax.incremental_update(online, target, step_size=tau)


def soft_update_target(state: RLTrainState, *, tau: float | jax.Array) -> RLTrainState:
    """`state` with its target parameters moved a fraction τ towards its online parameters."""
    return state.replace(target_params=polyak(state.target_params, state.params, tau=tau))


def init_critic(key: jax.Array, *, obs_dim: int, action_dim: int, hidden: Sequence[int], n_critics: int,
                learning_rate: float) -> RLTrainState:
    """Critic ensemble `Critic(hidden, n_critics)` with Adam and target params equal to the online ones."""
    module = Critic(hidden=tuple(hidden), n_critics=n_critics)
    params = module.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim)))
    return RLTrainState.create(apply_fn=module.apply, params=params, target_params=copy_tree(params),
                               tx=optax.adam(learning_rate))


def critic_regression_step(critic: RLTrainState, *, batch: Transition,
                           target: jax.Array) -> tuple[RLTrainState, dict[str, jax.Array]]:
    """One Adam step on ½·Σ_i mean_b (Q_i(s_b, a_b) − y_b)² (SB3's twin-Q loss); `target` y is `[batch]`.

    The target is a constant here (computed outside the gradient), which is what keeps the Bellman
    update a regression rather than a residual-gradient method.
    """
    target = jax.lax.stop_gradient(target)

    def loss_fn(params):
        q = critic.apply_fn(params, batch.obs, batch.action)  # [n_critics, batch]
        return 0.5 * jnp.sum(jnp.mean((q - target[None]) ** 2, axis=-1)), q

    (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(critic.params)
    metrics = {"critic_loss": loss, "q_mean": jnp.mean(q), "target_q_mean": jnp.mean(target),
               "critic_grad_norm": optax.global_norm(grads)}
    return critic.apply_gradients(grads=grads), metrics


def bellman_target(*, reward: jax.Array, done: jax.Array, next_value: jax.Array, gamma: float) -> jax.Array:
    """y = r + γ·(1 − done)·V(s'), all `[batch]`; `done` marks terminations only (not truncations)."""
    return reward + gamma * (1.0 - done) * next_value
