"""Offline RL with known logging policies, reduced to the offline bandit (spec §2.6 and §5.3).

Each logging policy π_k is an arm; each logged episode's normalised return is one sample of arm k,
whose mean is V^{π_k}/H. TRUST returns mixture weights p ∈ Δ_K, deployed as "draw k ~ p at the start of
the episode, then follow π_k", so its value is Σ_k p_k V^{π_k} (exact, by dynamic programming).

The tabular MDP helpers live here, not in `lib/`, until a second project needs them (STYLE.md rule 2).
Shapes: P `[S, A, S]`, R `[S, A]`, policies `[H, S, A]`, Q `[H, S, A]`; the start state is 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_mdp(key: jax.Array, *, num_states: int, num_actions: int, successors: int, reward_fraction: float):
    """Random tabular MDP: each (s, a) moves to `successors` distinct states with Dirichlet(1) weights;
    r(s, a) ~ U[0, 1] on a `reward_fraction` of the pairs, 0 elsewhere. Returns (P `[S,A,S]`, R `[S,A]`)."""
    k_succ, k_w, k_r, k_mask = jax.random.split(key, 4)
    S, A = num_states, num_actions
    succ = jax.vmap(lambda k: jax.random.choice(k, S, (successors,), replace=False))(
        jax.random.split(k_succ, S * A))  # [S·A, successors]
    weights = jax.random.dirichlet(k_w, jnp.ones(successors), (S * A,))
    P = jnp.zeros((S * A, S)).at[jnp.arange(S * A)[:, None], succ].add(weights).reshape(S, A, S)
    R = jax.random.uniform(k_r, (S, A)) * jax.random.bernoulli(k_mask, reward_fraction, (S, A))
    return P, R


def optimal_q(P: jax.Array, R: jax.Array, *, horizon: int) -> jax.Array:
    """Q*_h(s, a) by backward induction. `[H, S, A]`."""
    def step(v_next, _):
        q = R + P @ v_next
        return q.max(-1), q

    _, qs = jax.lax.scan(step, jnp.zeros(P.shape[0], P.dtype), None, length=horizon)
    return qs[::-1]


def policy_values(P: jax.Array, R: jax.Array, policies: jax.Array) -> jax.Array:
    """Exact V^π_1(s=0) for a batch of time-dependent stochastic policies `[K, H, S, A]` → `[K]`."""
    def one(pi):
        def step(v_next, pi_h):
            return jnp.sum(pi_h * (R + P @ v_next), -1), None

        v, _ = jax.lax.scan(step, jnp.zeros(P.shape[0], P.dtype), pi[::-1])
        return v[0]

    return jax.vmap(one)(policies)


def logging_policies(key: jax.Array, q_star: jax.Array, *, num_explore: int, beta_max: float, default_eps: float):
    """Policy 0: ε-greedy around a uniformly random deterministic policy (the mediocre "default");
    policies 1..K: softmax(β_k Q*_h) with β_k ~ U[0, beta_max]. Returns (policies `[K+1, H, S, A]`, β `[K]`)."""
    k_det, k_beta = jax.random.split(key)
    H, S, A = q_star.shape
    det = jax.nn.one_hot(jax.random.randint(k_det, (H, S), 0, A), A)
    default = (1 - default_eps) * det + default_eps / A
    betas = jax.random.uniform(k_beta, (num_explore,), maxval=beta_max)
    explore = jax.vmap(lambda b: jax.nn.softmax(b * q_star, axis=-1))(betas)
    return jnp.concatenate([default[None], explore]), betas


def rollout_return(key: jax.Array, P: jax.Array, R: jax.Array, policy: jax.Array) -> jax.Array:
    """The return of one episode of `policy` `[H, S, A]` from state 0 (inverse-CDF sampling; one
    `[H, 2]` uniform draw per episode)."""
    def step(carry, xs):
        s, total = carry
        pi_h, u = xs
        a = jnp.sum(u[0] > jnp.cumsum(pi_h[s])[:-1], dtype=jnp.int32)
        s_next = jnp.sum(u[1] > jnp.cumsum(P[s, a])[:-1], dtype=jnp.int32)
        return (s_next, total + R[s, a]), None

    u = jax.random.uniform(key, (policy.shape[0], 2), P.dtype)
    (_, total), _ = jax.lax.scan(step, (jnp.zeros((), jnp.int32), jnp.zeros((), P.dtype)), (policy, u))
    return total


def logged_means(key: jax.Array, P: jax.Array, R: jax.Array, policies: jax.Array, *, default_episodes: int) -> dict:
    """One logged dataset: `default_episodes` episodes of policy 0 and one of each other policy.
    Returns {"means": normalised empirical returns `[K+1]`, "default_std": sample std of policy 0's}."""
    horizon = policies.shape[1]
    k0, k1 = jax.random.split(key)
    r0 = jax.vmap(lambda k: rollout_return(k, P, R, policies[0]))(jax.random.split(k0, default_episodes)) / horizon
    rest = jax.vmap(lambda k, pi: rollout_return(k, P, R, pi))(
        jax.random.split(k1, policies.shape[0] - 1), policies[1:]) / horizon
    return {"means": jnp.concatenate([r0.mean()[None], rest]), "default_std": r0.std(ddof=1)}
