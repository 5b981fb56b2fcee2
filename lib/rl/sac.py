"""Soft actor-critic (Haarnoja et al. 2018, with automatic temperature) as pure, jit-able functions.

    state = sac.init(key, obs_dim=17, action_dim=6)
    update = jax.jit(sac.update, donate_argnums=0)        # one fused step: critic, actor, alpha, target
    state, metrics = update(state, batch, key)              # batch: Transition of [B, ...] arrays

The parts are exposed separately so that a learner can place them on different devices (the spec's
`split` mode): `critic_step` reads only the actor's `apply_fn` and `params`, and `actor_step` only the
critic's, so either side can be handed the other's one-step-stale copy.

Targets and losses (B = batch, A = action_dim, α = exp(log_alpha)):
    y        = r + γ(1 − done)(min_i Q̄_i(s', a') − α log π(a'|s')),   a' ~ π(·|s')
    critic   = ½ Σ_i mean_B (Q_i(s, a) − y)²
    actor    = mean_B (α log π(ã|s) − min_i Q_i(s, ã)),               ã ~ π(·|s) reparameterised
    alpha    = −mean_B log α · (log π(ã|s) + H̄),                      H̄ = −A by default
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from lib.rl.common import RLTrainState, bellman_target, critic_regression_step, init_critic, soft_update_target
from lib.rl.networks import GaussianActor, sample_tanh_gaussian
from lib.rl.types import Transition


class SACState(flax.struct.PyTreeNode):
    """The whole learner state, a pytree: donate it to `update`.

    actor: `GaussianActor` params and Adam state; critic: twin-Q params, targets and Adam state;
    alpha: params `{"log_alpha": []}` and Adam state; step: fused updates done so far (int32 `[]`).
    """

    actor: TrainState
    critic: RLTrainState
    alpha: TrainState
    step: jax.Array


def init(key: jax.Array, *, obs_dim: int, action_dim: int, hidden: Sequence[int] = (256, 256),
         n_critics: int = 2, actor_lr: float = 3e-4, critic_lr: float = 3e-4, alpha_lr: float = 3e-4,
         init_alpha: float = 1.0) -> SACState:
    """Fresh SAC state: actor and critic MLPs of widths `hidden`, targets = critic, α = `init_alpha`.

    Defaults are SB3/sbx's (Adam 3e-4 everywhere, α₀ = 1, two critics of (256, 256)).
    """
    if init_alpha <= 0:
        raise ValueError(f"init_alpha={init_alpha!r} is invalid: expected a positive temperature")
    k_actor, k_critic = jax.random.split(key)
    actor_module = GaussianActor(action_dim=action_dim, hidden=tuple(hidden))
    actor = TrainState.create(apply_fn=actor_module.apply, params=actor_module.init(k_actor, jnp.zeros((1, obs_dim))),
                              tx=optax.adam(actor_lr))
    critic = init_critic(k_critic, obs_dim=obs_dim, action_dim=action_dim, hidden=hidden, n_critics=n_critics,
                         learning_rate=critic_lr)
    alpha = TrainState.create(apply_fn=None, params={"log_alpha": jnp.asarray(math.log(init_alpha), jnp.float32)},
                              tx=optax.adam(alpha_lr))
    return SACState(actor=actor, critic=critic, alpha=alpha, step=jnp.zeros((), jnp.int32))


def act(apply_fn, params, obs: jax.Array, key: jax.Array, *, deterministic: bool = False) -> jax.Array:
    """Policy action `[..., A]` in (−1, 1) for obs `[..., obs_dim]`: a tanh-Gaussian sample, or tanh(mean).

    `apply_fn` is `GaussianActor(action_dim, hidden).apply` (or `state.actor.apply_fn`), so a sampler
    process holding only published params can act without a train state.
    """
    mean, log_std = apply_fn(params, obs)
    if deterministic:
        return jnp.tanh(mean)
    action, _ = sample_tanh_gaussian(key, mean, log_std)
    return action


def critic_target(*, reward: jax.Array, done: jax.Array, next_q: jax.Array, next_log_prob: jax.Array,
                  alpha: jax.Array, gamma: float) -> jax.Array:
    """Soft Bellman target y = r + γ(1 − done)(min_i Q̄_i − α log π(a'|s')) `[B]`; next_q is `[n_critics, B]`."""
    return bellman_target(reward=reward, done=done, next_value=jnp.min(next_q, axis=0) - alpha * next_log_prob,
                          gamma=gamma)


def critic_step(critic: RLTrainState, *, actor: TrainState, log_alpha: jax.Array, batch: Transition,
                key: jax.Array, gamma: float = 0.99) -> tuple[RLTrainState, dict[str, jax.Array]]:
    """One Adam step of the twin-Q regression on the soft Bellman target (targets are not moved here).

    Reads `actor.apply_fn` and `actor.params` only, so a stale actor copy without optimizer state works.
    """
    mean, log_std = actor.apply_fn(actor.params, batch.next_obs)
    next_action, next_log_prob = sample_tanh_gaussian(key, mean, log_std)
    next_q = critic.apply_fn(critic.target_params, batch.next_obs, next_action)
    y = critic_target(reward=batch.reward, done=batch.done, next_q=next_q, next_log_prob=next_log_prob,
                      alpha=jnp.exp(log_alpha), gamma=gamma)
    return critic_regression_step(critic, batch=batch, target=y)


def actor_step(actor: TrainState, *, critic: RLTrainState, log_alpha: jax.Array, batch: Transition,
               key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step on mean(α log π(ã|s) − min_i Q_i(s, ã)); reads only `critic.apply_fn`/`critic.params`.

    Metrics carry `log_prob` (mean log π of the pre-update policy's samples), the input of `alpha_step`.
    """
    alpha = jnp.exp(jax.lax.stop_gradient(log_alpha))

    def loss_fn(params):
        mean, log_std = actor.apply_fn(params, batch.obs)
        action, log_prob = sample_tanh_gaussian(key, mean, log_std)
        q = jnp.min(critic.apply_fn(critic.params, batch.obs, action), axis=0)
        return jnp.mean(alpha * log_prob - q), log_prob

    (loss, log_prob), grads = jax.value_and_grad(loss_fn, has_aux=True)(actor.params)
    log_prob_mean = jnp.mean(log_prob)
    metrics = {"actor_loss": loss, "log_prob": log_prob_mean, "entropy": -log_prob_mean,
               "actor_grad_norm": optax.global_norm(grads)}
    return actor.apply_gradients(grads=grads), metrics


def alpha_step(alpha: TrainState, *, log_prob: jax.Array,
               target_entropy: float) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step on −log α · (mean log π + H̄): α rises while the entropy −log π is below H̄.

    `log_prob` (scalar or `[B]`) is treated as a constant; H̄ is the target entropy (−A in SAC's paper).
    """
    log_prob = jax.lax.stop_gradient(jnp.mean(log_prob))

    def loss_fn(params):
        return -params["log_alpha"] * (log_prob + target_entropy)

    loss, grads = jax.value_and_grad(loss_fn)(alpha.params)
    # report the α the losses of this step used, not the one after the step
    return alpha.apply_gradients(grads=grads), {"alpha_loss": loss, "alpha": jnp.exp(alpha.params["log_alpha"])}


def _sac_step(state: SACState, batch: Transition, key: jax.Array, *, gamma: float, tau: float,
              target_entropy: float | None, stale_actor_critic: bool) -> tuple[SACState, dict[str, jax.Array]]:
    if target_entropy is None:
        target_entropy = -float(batch.action.shape[-1])
    k_critic, k_actor = jax.random.split(jax.random.fold_in(key, state.step))
    log_alpha = state.alpha.params["log_alpha"]
    critic, critic_metrics = critic_step(state.critic, actor=state.actor, log_alpha=log_alpha, batch=batch,
                                         key=k_critic, gamma=gamma)
    actor_reads = state.critic if stale_actor_critic else critic
    actor, actor_metrics = actor_step(state.actor, critic=actor_reads, log_alpha=log_alpha, batch=batch,
                                      key=k_actor)
    alpha, alpha_metrics = alpha_step(state.alpha, log_prob=actor_metrics["log_prob"],
                                      target_entropy=target_entropy)
    critic = soft_update_target(critic, tau=tau)
    new = SACState(actor=actor, critic=critic, alpha=alpha, step=state.step + 1)
    return new, {**critic_metrics, **actor_metrics, **alpha_metrics}


def update(state: SACState, batch: Transition, key: jax.Array, *, gamma: float = 0.99, tau: float = 0.005,
           target_entropy: float | None = None) -> tuple[SACState, dict[str, jax.Array]]:
    """One fused SAC step: critic, then actor (against the new critic), then α, then Polyak targets.

    batch: `Transition` with obs `[B, obs_dim]`, action `[B, A]`, reward/done `[B]`, next_obs `[B, obs_dim]`.
    The key is folded with `state.step`, so passing the same key every call still gives fresh noise.
    target_entropy defaults to −A. Metrics: critic/actor/alpha losses, alpha, entropy, q means, grad norms.
    """
    return _sac_step(state, batch, key, gamma=gamma, tau=tau, target_entropy=target_entropy,
                     stale_actor_critic=False)


def update_stale(state: SACState, batch: Transition, key: jax.Array, *, gamma: float = 0.99, tau: float = 0.005,
                 target_entropy: float | None = None) -> tuple[SACState, dict[str, jax.Array]]:
    """The split mode's algorithm on one device: like `update`, but the actor step reads the critic from *before*
    this step's critic update (the critic step already reads the pre-update actor), so the two steps do not depend
    on each other and can run at once on two devices, each using the other's one-step-stale parameters.

    Same keys, same batch: equal (to float rounding) to `projects/spreeze/split.py`'s two-device step, which is how
    a one-device run checks that the staleness does not break learning (spec B5).
    """
    return _sac_step(state, batch, key, gamma=gamma, tau=tau, target_entropy=target_entropy,
                     stale_actor_critic=True)
