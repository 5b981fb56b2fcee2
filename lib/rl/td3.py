"""TD3 (Fujimoto et al. 2018) as pure, jit-able functions.

    state = td3.init(key, obs_dim=17, action_dim=6)
    update = jax.jit(td3.update, donate_argnums=0, static_argnames="policy_delay")
    state, metrics = update(state, batch, key)

The three TD3 tricks: twin critics with a min in the target; target policy smoothing
a' = clip(π̄(s') + clip(σε, −c, c), −1, 1); and delayed policy updates: the actor and both targets move
only on every `policy_delay`-th call. The delay counter is `state.step`, and the branch is a `lax.cond`,
so the fused step is one compiled program whichever branch a call takes.

    y      = r + γ(1 − done) min_i Q̄_i(s', a')
    critic = ½ Σ_i mean_B (Q_i(s, a) − y)²
    actor  = −mean_B Q_1(s, π(s))            (the first critic only, as in the paper)
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax

from lib.rl.common import (
    RLTrainState,
    bellman_target,
    copy_tree,
    critic_regression_step,
    init_critic,
    soft_update_target,
)
from lib.rl.networks import DeterministicActor
from lib.rl.types import Transition


class TD3State(flax.struct.PyTreeNode):
    """The whole TD3 learner state, a pytree: donate it to `update`.

    actor and critic each hold params, target params and Adam state; step: calls of `update` so far
    (int32 `[]`), which also drives the policy delay.
    """

    actor: RLTrainState
    critic: RLTrainState
    step: jax.Array


def init(key: jax.Array, *, obs_dim: int, action_dim: int, hidden: Sequence[int] = (256, 256),
         n_critics: int = 2, actor_lr: float = 3e-4, critic_lr: float = 3e-4) -> TD3State:
    """Fresh TD3 state: deterministic actor and twin critics of widths `hidden`, targets = online params."""
    k_actor, k_critic = jax.random.split(key)
    module = DeterministicActor(action_dim=action_dim, hidden=tuple(hidden))
    params = module.init(k_actor, jnp.zeros((1, obs_dim)))
    actor = RLTrainState.create(apply_fn=module.apply, params=params, target_params=copy_tree(params),
                                tx=optax.adam(actor_lr))
    critic = init_critic(k_critic, obs_dim=obs_dim, action_dim=action_dim, hidden=hidden, n_critics=n_critics,
                         learning_rate=critic_lr)
    return TD3State(actor=actor, critic=critic, step=jnp.zeros((), jnp.int32))


def act(apply_fn, params, obs: jax.Array, key: jax.Array, *, exploration_noise: float = 0.1) -> jax.Array:
    """Behaviour action clip(π(s) + N(0, σ²), −1, 1) `[..., A]`; `exploration_noise` σ = 0 gives π(s)."""
    action = apply_fn(params, obs)
    noise = exploration_noise * jax.random.normal(key, action.shape, action.dtype)
    return jnp.clip(action + noise, -1.0, 1.0)


def smoothed_target_action(target_action: jax.Array, key: jax.Array, *, policy_noise: float,
                           noise_clip: float) -> jax.Array:
    """clip(π̄(s') + clip(σε, −c, c), −1, 1) `[B, A]`: target policy smoothing."""
    noise = jnp.clip(policy_noise * jax.random.normal(key, target_action.shape, target_action.dtype),
                     -noise_clip, noise_clip)
    return jnp.clip(target_action + noise, -1.0, 1.0)


def critic_step(critic: RLTrainState, *, actor: RLTrainState, batch: Transition, key: jax.Array,
                gamma: float = 0.99, policy_noise: float = 0.2,
                noise_clip: float = 0.5) -> tuple[RLTrainState, dict[str, jax.Array]]:
    """One Adam step of the twin-Q regression on y = r + γ(1 − done) min_i Q̄_i(s', smoothed π̄(s')).

    Reads `actor.apply_fn` and `actor.target_params` only.
    """
    next_action = smoothed_target_action(actor.apply_fn(actor.target_params, batch.next_obs), key,
                                         policy_noise=policy_noise, noise_clip=noise_clip)
    next_q = critic.apply_fn(critic.target_params, batch.next_obs, next_action)
    y = bellman_target(reward=batch.reward, done=batch.done, next_value=jnp.min(next_q, axis=0), gamma=gamma)
    return critic_regression_step(critic, batch=batch, target=y)


def actor_step(actor: RLTrainState, *, critic: RLTrainState,
               batch: Transition) -> tuple[RLTrainState, dict[str, jax.Array]]:
    """One Adam step on −mean Q_1(s, π(s)); reads only `critic.apply_fn` and `critic.params`."""

    def loss_fn(params):
        q = critic.apply_fn(critic.params, batch.obs, actor.apply_fn(params, batch.obs))
        return -jnp.mean(q[0])

    loss, grads = jax.value_and_grad(loss_fn)(actor.params)
    return actor.apply_gradients(grads=grads), {"actor_loss": loss, "actor_grad_norm": optax.global_norm(grads)}


def update(state: TD3State, batch: Transition, key: jax.Array, *, gamma: float = 0.99, tau: float = 0.005,
           policy_noise: float = 0.2, noise_clip: float = 0.5,
           policy_delay: int = 2) -> tuple[TD3State, dict[str, jax.Array]]:
    """One fused TD3 step: the critic always; the actor and both Polyak targets when (step+1) % delay == 0.

    batch: `Transition` of `[B, ...]` arrays. Metrics: critic_loss, q means, critic_grad_norm, and
    actor_loss / actor_grad_norm, which are 0 on calls that skip the actor; `actor_updated` (0 or 1)
    says which, so a logger averaging actor_loss divides by the mean of `actor_updated`.
    """
    if policy_delay < 1:
        raise ValueError(f"policy_delay={policy_delay!r} is invalid: expected an integer >= 1")
    k_critic = jax.random.fold_in(key, state.step)
    critic, metrics = critic_step(state.critic, actor=state.actor, batch=batch, key=k_critic, gamma=gamma,
                                  policy_noise=policy_noise, noise_clip=noise_clip)
    do_actor = (state.step + 1) % policy_delay == 0

    def delayed(actor_critic):
        actor, critic = actor_critic
        actor, actor_metrics = actor_step(actor, critic=critic, batch=batch)
        return (soft_update_target(actor, tau=tau), soft_update_target(critic, tau=tau)), actor_metrics

    def skip(actor_critic):
        zero = jnp.zeros((), jnp.float32)
        return actor_critic, {"actor_loss": zero, "actor_grad_norm": zero}

    (actor, critic), actor_metrics = jax.lax.cond(do_actor, delayed, skip, (state.actor, critic))
    metrics = {**metrics, **actor_metrics, "actor_updated": do_actor.astype(jnp.float32)}
    return TD3State(actor=actor, critic=critic, step=state.step + 1), metrics
