"""The paper's dual-device learner (spec §2.3): the critic step on one device and the actor (+ temperature) step on
another, each reading the other's parameters from the previous step, so the two run at once under JAX's async
dispatch. Two parameter copies cross between the devices per update.

    step = make_split_update(actor_device=devs[0], critic_device=devs[1])
    state = place(state, actor_device=devs[0], critic_device=devs[1])
    state, metrics = step(state, batch, key)       # same maths as lib.rl.sac.update_stale

On a CPU-only machine the two devices are forced host devices (`--xla_force_host_platform_device_count=2`), so the
gain is only the overlap of two single-threaded computations on two cores (spec pitfall 11: the paper's two-GPU
speed-up is not reproduced here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax

from lib.rl import sac
from lib.rl.common import soft_update_target


class _ParamsOnly(flax.struct.PyTreeNode):
    """What `critic_step` needs of the actor (and `actor_step` of the critic): params and the static apply_fn."""

    params: Any
    apply_fn: Callable = flax.struct.field(pytree_node=False)


def place(state: sac.SACState, *, actor_device, critic_device) -> sac.SACState:
    """The state with the actor, α and the step counter on `actor_device` and the critic on `critic_device`."""
    return state.replace(actor=jax.device_put(state.actor, actor_device),
                         alpha=jax.device_put(state.alpha, actor_device),
                         step=jax.device_put(state.step, actor_device),
                         critic=jax.device_put(state.critic, critic_device))


def make_split_update(*, actor_device, critic_device, gamma: float = 0.99, tau: float = 0.005,
                      target_entropy: float | None = None):
    """`step(state, batch, key) -> (state, metrics)` running `sac.update_stale` split over two devices."""

    @functools.partial(jax.jit, donate_argnums=0)
    def critic_side(critic, actor_params, actor_apply_holder, log_alpha, batch, key):
        critic, metrics = sac.critic_step(critic, actor=actor_apply_holder.replace(params=actor_params),
                                          log_alpha=log_alpha, batch=batch, key=key, gamma=gamma)
        return soft_update_target(critic, tau=tau), metrics

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def actor_side(actor, alpha, critic_params, critic_apply_holder, batch, key):
        te = -float(batch.action.shape[-1]) if target_entropy is None else target_entropy
        actor, am = sac.actor_step(actor, critic=critic_apply_holder.replace(params=critic_params),
                                   log_alpha=alpha.params["log_alpha"], batch=batch, key=key)
        alpha, alm = sac.alpha_step(alpha, log_prob=am["log_prob"], target_entropy=te)
        return actor, alpha, {**am, **alm}

    def step(state: sac.SACState, batch, key):
        k_critic, k_actor = jax.random.split(jax.random.fold_in(key, state.step))
        # the exchange: copies of the other side's parameters from before this step (one step stale)
        actor_params = jax.device_put(state.actor.params, critic_device)
        log_alpha = jax.device_put(state.alpha.params["log_alpha"], critic_device)
        critic_params = jax.device_put(state.critic.params, actor_device)
        actor_holder = _ParamsOnly(params=None, apply_fn=state.actor.apply_fn)
        critic_holder = _ParamsOnly(params=None, apply_fn=state.critic.apply_fn)
        critic, cm = critic_side(state.critic, actor_params, actor_holder, log_alpha,
                                 jax.device_put(batch, critic_device), jax.device_put(k_critic, critic_device))
        actor, alpha, am = actor_side(state.actor, state.alpha, critic_params, critic_holder,
                                      jax.device_put(batch, actor_device), jax.device_put(k_actor, actor_device))
        return sac.SACState(actor=actor, critic=critic, alpha=alpha, step=state.step + 1), {**cm, **am}

    return step
