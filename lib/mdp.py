"""Tabular episodic MDPs as pure functions: generators, planning, rollouts, coverage, exploration design.

Conventions (every function; all are jittable and vmappable, e.g. over seeds):
- A time-homogeneous transition tensor `P` is `[S, A, S]` with rows summing to 1; a reward table `R` is
  `[S, A]` in [0, 1]; the horizon `H` is a Python int (it sets `lax.scan` lengths).
- A policy table is `[H, S, A]` of action probabilities (step h = 0..H-1); deterministic policies are
  also kept as integer actions `[H, S]` (`one_hot` turns them into tables).
- Values: `v` is `[H+1, S]` with `v[H] = 0`; `q` is `[H, S, A]`.
- Sparsified models (local coverage) append one absorbing, zero-reward state `s† = S`, so they are
  `[S+1, A, S+1]`; `add_absorbing(P)` embeds a true MDP in the same state space (s† unreachable).
- Step-indexed (time-inhomogeneous) models: every function taking `P` also accepts `[H, S, A, S]`
  (one transition tensor per step), counts take `step_indexed=True` (`[H, S, A, S]`), and `sparsify`,
  `add_absorbing`, `supported_pairs` map over leading axes. Homogeneous tensors are never broadcast to
  `[H, ...]` (that would multiply memory by H inside vmapped planning).

Non-reactive exploration design (Zhang & Zanette 2023, reconstructed in
`papers/nonreactive_exploration.md`): `sparsify` builds P̂† from offline counts, `reward_free_explore`
runs the reward-free bonus recursion with random tie-breaking, episode by episode, either virtually in
P̂† (the design, RF-NPD) or in the real MDP (the reactive explorer), and `rollout_mixture` deploys the
uniform mixture of the design's policies, drawing one member per episode.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------------------- generators


def _flat_dirichlet(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
    """Dirichlet(1, …, 1) draws over the last axis as normalized Exp(1) variables (exact for unit concentration;
    compiles far faster than `jax.random.dirichlet`'s gamma rejection sampler)."""
    e = jax.random.exponential(key, shape)
    return e / e.sum(-1, keepdims=True)


def lock_two_regions(key: jax.Array, *, region_size: int = 8, num_actions: int = 4, lock_length: int = 3,
                     num_successors: int = 3, behaviour_correct_prob: float = 0.3) -> dict:
    """The spec's "lock & two regions" instance (§5.1); states: lock 0..L-1 (0 = start), A, then B.

    With the defaults S = 3 + 8 + 8 = 19: lock states 0, 1, 2; region A = 3..10; region B = 11..18.
    The secret action at lock state l moves to l+1 (from the last lock state: to one per-seed B state);
    any other action at a lock state moves to a fixed per-(s, a) random A state. Inside a region each
    (s, a) has `num_successors` distinct successors in the same region with Dirichlet(1, …, 1) weights.
    The behaviour policy plays the secret action at state 0 with `behaviour_correct_prob` and is uniform
    elsewhere, so it reaches B in p·(1/A)^(L-1) ≈ 1.9 % of episodes.

    Returns {"P": [S, A, S], "behaviour": [S, A], "region_a": bool [S], "region_b": bool [S],
    "secret": int [L]}; the start state is 0.
    """
    L, R, A = lock_length, region_size, num_actions
    S = L + 2 * R
    k_sec, k_entry, k_wrong, k_succ, k_w = jax.random.split(key, 5)
    secret = jax.random.randint(k_sec, (L,), 0, A)
    entry_b = jax.random.randint(k_entry, (), L + R, L + 2 * R)
    wrong = jax.random.randint(k_wrong, (L, A), L, L + R)
    lock_next = jnp.where(jnp.arange(A)[None] == secret[:, None],
                          jnp.append(jnp.arange(1, L), entry_b)[:, None], wrong)  # [L, A]
    P = jnp.zeros((S, A, S)).at[jnp.arange(L)[:, None], jnp.arange(A)[None], lock_next].set(1.0)

    n_pairs = 2 * R * A
    order = jnp.argsort(jax.random.uniform(k_succ, (n_pairs, R)), axis=-1)[:, :num_successors]  # distinct
    weights = _flat_dirichlet(k_w, (n_pairs, num_successors))
    s_reg = L + jnp.repeat(jnp.arange(2 * R), A)  # the (s, a) pairs of both regions, row-major
    a_reg = jnp.tile(jnp.arange(A), 2 * R)
    base = jnp.where(s_reg < L + R, L, L + R)  # successors stay in the pair's own region
    P = P.at[s_reg[:, None], a_reg[:, None], base[:, None] + order].set(weights)

    behaviour = jnp.full((S, A), 1.0 / A)
    first = jnp.where(jnp.arange(A) == secret[0], behaviour_correct_prob, (1 - behaviour_correct_prob) / (A - 1))
    behaviour = behaviour.at[0].set(first)
    idx = jnp.arange(S)
    return {"P": P, "behaviour": behaviour, "region_a": (idx >= L) & (idx < L + R),
            "region_b": idx >= L + R, "secret": secret}


def random_mdp(key: jax.Array, *, num_states: int, num_actions: int, num_successors: int) -> jnp.ndarray:
    """A random MDP: each (s, a) has `num_successors` distinct random successors, Dirichlet(1) weights.

    Returns P `[S, A, S]`."""
    S, A, k = num_states, num_actions, num_successors
    k1, k2 = jax.random.split(key)
    succ = jnp.argsort(jax.random.uniform(k1, (S, A, S)), axis=-1)[..., :k]
    w = _flat_dirichlet(k2, (S, A, k))
    return jnp.zeros((S, A, S)).at[jnp.arange(S)[:, None, None], jnp.arange(A)[None, :, None], succ].set(w)


def sparse_rewards(key: jax.Array, *, state_masks: jnp.ndarray, num_actions: int, density: float) -> jnp.ndarray:
    """One reward function per row of `state_masks` `[J, S]`: each (s, a) with s in the mask gets U[0, 1]
    with probability `density`, otherwise 0. Returns `[J, S, A]`."""
    k1, k2 = jax.random.split(key)
    J, S = state_masks.shape
    on = jax.random.bernoulli(k1, density, (J, S, num_actions)) & state_masks[:, :, None]
    return jnp.where(on, jax.random.uniform(k2, (J, S, num_actions)), 0.0)


def lock_rewards(key: jax.Array, *, region_a: jnp.ndarray, region_b: jnp.ndarray, num_actions: int,
                 num_rewards: int = 20, density: float = 0.2) -> jnp.ndarray:
    """The spec's reward family (§5.1): reward j even lives on region B, j odd on A ∪ B. `[J, S, A]`."""
    even = jnp.arange(num_rewards) % 2 == 0
    masks = jnp.where(even[:, None], region_b[None], (region_a | region_b)[None])
    return sparse_rewards(key, state_masks=masks, num_actions=num_actions, density=density)


# ------------------------------------------------------------------------------------------ planning


def _step_P(P: jnp.ndarray, h) -> jnp.ndarray:
    """The step-h transition tensor `[S, A, S]` of a homogeneous `[S, A, S]` or step-indexed `[H, S, A, S]` P."""
    return P if P.ndim == 3 else P[h]


def one_hot_policy(actions: jnp.ndarray, num_actions: int) -> jnp.ndarray:
    """Integer actions `[..., H, S]` → deterministic policy table `[..., H, S, A]`."""
    return jax.nn.one_hot(actions, num_actions)


def value_iteration(P: jnp.ndarray, R: jnp.ndarray, *, horizon: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Finite-horizon optimal values by backward induction (`lax.scan` over h).

    P `[S, A, S]` or `[H, S, A, S]`, R `[S, A]` → (q `[H, S, A]`, v `[H+1, S]`), v[H] = 0, v[h] = max_a q[h]."""
    S = P.shape[-1]

    def step(v_next, h):
        q = R + _step_P(P, h) @ v_next
        return q.max(-1), q

    _, q = jax.lax.scan(step, jnp.zeros(S, P.dtype), jnp.arange(horizon), reverse=True)
    v = jnp.concatenate([q.max(-1), jnp.zeros((1, S), P.dtype)])
    return q, v


def greedy_policy(q: jnp.ndarray) -> jnp.ndarray:
    """Deterministic greedy policy table `[H, S, A]` from q `[H, S, A]` (ties: the lowest action)."""
    return one_hot_policy(jnp.argmax(q, axis=-1), q.shape[-1])


def policy_evaluation(P: jnp.ndarray, R: jnp.ndarray, policy: jnp.ndarray) -> jnp.ndarray:
    """Exact value of a (possibly stochastic, step-dependent) policy by backward induction.

    P `[S, A, S]` or `[H, S, A, S]`, R `[S, A]`, policy `[H, S, A]` → v `[H+1, S]` with v[H] = 0."""
    S = P.shape[-1]

    def step(v_next, xs):
        h, pi_h = xs
        v = jnp.sum(pi_h * (R + _step_P(P, h) @ v_next), axis=-1)
        return v, v

    _, v = jax.lax.scan(step, jnp.zeros(S, P.dtype), (jnp.arange(policy.shape[0]), policy), reverse=True)
    return jnp.concatenate([v, jnp.zeros((1, S), P.dtype)])


def occupancy_measures(P: jnp.ndarray, policy: jnp.ndarray, start_dist: jnp.ndarray) -> jnp.ndarray:
    """d_h(s, a) = Pr(s_h = s, a_h = a) from `start_dist` `[S]` under policy `[H, S, A]` → `[H, S, A]`.

    P `[S, A, S]` or `[H, S, A, S]`. Each step's measure sums to 1 (P rows and policy rows are distributions)."""

    def step(d_s, xs):
        h, pi_h = xs
        d_sa = d_s[:, None] * pi_h
        return jnp.einsum("sa,sat->t", d_sa, _step_P(P, h)), d_sa

    _, d = jax.lax.scan(step, start_dist, (jnp.arange(policy.shape[0]), policy))
    return d


# ------------------------------------------------------------------------------------------ rollouts


def sample_categorical(u: jnp.ndarray, probs: jnp.ndarray) -> jnp.ndarray:
    """Inverse-CDF draw from `probs` `[..., K]` with a uniform `u` `[...]`; never returns a zero-probability index
    at the top end (the index is clipped to the last positive entry)."""
    cdf = jnp.cumsum(probs, axis=-1)
    idx = jnp.sum(cdf <= u[..., None] * cdf[..., -1:], axis=-1)
    last = probs.shape[-1] - 1 - jnp.argmax(jnp.flip(probs, -1) > 0, axis=-1)
    return jnp.minimum(idx, last)


def rollout(key: jax.Array, *, P: jnp.ndarray, policy: jnp.ndarray, start_state: int | jnp.ndarray = 0
            ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One episode: P `[S, A, S]` or `[H, S, A, S]`, policy `[H, S, A]` → (states `[H+1]`, actions `[H]`), int32.

    All randomness is drawn up front (one uniform per action and per transition, inverse-CDF sampling),
    which keeps the compiled program small. vmap over keys for many episodes, and again over seeds."""
    u = jax.random.uniform(key, (policy.shape[0], 2))

    def step(s, xs):
        h, u_h, pi_h = xs
        a = sample_categorical(u_h[0], pi_h[s])
        s_next = sample_categorical(u_h[1], _step_P(P, h)[s, a])
        return s_next, (s, a)

    xs = (jnp.arange(policy.shape[0]), u, policy)
    s_last, (states, actions) = jax.lax.scan(step, jnp.asarray(start_state, jnp.int32), xs)
    return jnp.append(states, s_last).astype(jnp.int32), actions.astype(jnp.int32)


def rollouts(key: jax.Array, *, P: jnp.ndarray, policy: jnp.ndarray, num_episodes: int,
             start_state: int | jnp.ndarray = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`num_episodes` independent episodes of one policy → (states `[E, H+1]`, actions `[E, H]`)."""
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(lambda k: rollout(k, P=P, policy=policy, start_state=start_state))(keys)


def rollout_mixture(key: jax.Array, *, P: jnp.ndarray, member_actions: jnp.ndarray, num_episodes: int,
                    start_state: int | jnp.ndarray = 0) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Deploys the uniform mixture of K deterministic policies, non-reactively: each episode draws ONE
    member k ~ Unif{0..K-1} at its start and follows it for the whole episode (not a per-state average
    of the members, which is a different Markov policy with different occupancies; spec pitfall 4).

    P `[S, A, S]`, member_actions `[K, H, S]` → (states `[E, H+1]`, actions `[E, H]`, members `[E]`)."""
    A = P.shape[-2]
    k_members, k_eps = jax.random.split(key)
    members = jax.random.randint(k_members, (num_episodes,), 0, member_actions.shape[0])
    keys = jax.random.split(k_eps, num_episodes)

    def episode(k, m):
        return rollout(k, P=P, policy=one_hot_policy(member_actions[m], A), start_state=start_state)

    states, actions = jax.vmap(episode)(keys, members)
    return states, actions, members


def count_transitions(states: jnp.ndarray, actions: jnp.ndarray, *, num_states: int, num_actions: int,
                      weights: jnp.ndarray | None = None, step_indexed: bool = False) -> jnp.ndarray:
    """Count table N(s, a, s') `[S, A, S]` pooled over steps (time-homogeneous) and episodes, or per step
    N_h(s, a, s') `[H, S, A, S]` with `step_indexed=True`.

    states `[E, H+1]`, actions `[E, H]`, optional per-episode weights `[E]` (e.g. a 0/1 prefix mask, so
    every online budget's counts come from one batch of episodes)."""
    s, a, s2 = states[:, :-1], actions, states[:, 1:]
    w = jnp.ones(s.shape) if weights is None else jnp.broadcast_to(weights[:, None], s.shape).astype(jnp.float32)
    if step_indexed:
        h = jnp.broadcast_to(jnp.arange(a.shape[1]), a.shape)
        return jnp.zeros((a.shape[1], num_states, num_actions, num_states)).at[h, s, a, s2].add(w)
    return jnp.zeros((num_states, num_actions, num_states)).at[s, a, s2].add(w)


def count_transitions_by_prefix(states: jnp.ndarray, actions: jnp.ndarray, *, budgets, num_states: int,
                                num_actions: int, step_indexed: bool = False) -> jnp.ndarray:
    """Count tables of the first b episodes for every b in `budgets` (increasing): `[B, S, A, S]`
    (`[B, H, S, A, S]` with `step_indexed=True`).

    One scatter of every episode into its budget segment [b_{i-1}, b_i), then a cumulative sum, so the
    cost does not grow with the number of budgets. states `[E, H+1]`, actions `[E, H]`, E ≥ max(budgets)."""
    budgets = jnp.asarray(budgets)
    seg = jnp.searchsorted(budgets, jnp.arange(states.shape[0]), side="right")  # [E]; len(budgets) = unused
    seg = jnp.broadcast_to(seg[:, None], actions.shape)
    if step_indexed:
        h = jnp.broadcast_to(jnp.arange(actions.shape[1]), actions.shape)
        out = jnp.zeros((budgets.shape[0] + 1, actions.shape[1], num_states, num_actions, num_states))
        out = out.at[seg, h, states[:, :-1], actions, states[:, 1:]].add(1.0)
    else:
        out = jnp.zeros((budgets.shape[0] + 1, num_states, num_actions, num_states))
        out = out.at[seg, states[:, :-1], actions, states[:, 1:]].add(1.0)
    return jnp.cumsum(out[:-1], axis=0)


# ---------------------------------------------------------------------------- coverage, sparsification


def add_absorbing(P: jnp.ndarray) -> jnp.ndarray:
    """Embeds P `[..., S, A, S]` in the sparsified state space `[..., S+1, A, S+1]`: s† = S is absorbing and
    unreachable from the original states."""
    S, A = P.shape[-3], P.shape[-2]
    out = jnp.zeros(P.shape[:-3] + (S + 1, A, S + 1), P.dtype).at[..., :S, :, :S].set(P)
    return out.at[..., S, :, S].set(1.0)


def pad_rewards(R: jnp.ndarray) -> jnp.ndarray:
    """Reward table(s) `[..., S, A]` → `[..., S+1, A]` with zero reward at s†."""
    return jnp.concatenate([R, jnp.zeros(R.shape[:-2] + (1, R.shape[-1]), R.dtype)], axis=-2)


def coverage_support(counts: jnp.ndarray, *, threshold: float) -> jnp.ndarray:
    """The offline support {N(s, a, s') ≥ Φ} as a bool `[S, A, S]` (Φ ≥ 1, so unseen transitions never count)."""
    return counts >= jnp.maximum(threshold, 1e-9)


def sparsify(weights: jnp.ndarray, support: jnp.ndarray) -> jnp.ndarray:
    """The sparsified MDP on `support`: P†(s'|s, a) = w(s, a, s') / Σ_{s''} w(s, a, s'') if (s, a, s') is in
    the support, else 0; the remaining mass goes to the absorbing s† = S; an (s, a) with Σ w = 0 goes to s†
    with probability 1; s† is absorbing.

    weights `[S, A, S]` are counts (the empirical P̂† from offline counts; the online-only or pooled final
    planner's P̃†) or true probabilities (the comparator P†, since Σ_{s'} P = 1); support bool `[S, A, S]`.
    Returns `[S+1, A, S+1]`. Leading axes (e.g. steps `[H, ...]`) are mapped over."""
    S, A = weights.shape[-3], weights.shape[-2]
    lead = jnp.broadcast_shapes(weights.shape, support.shape)[:-3]
    n_sa = weights.sum(-1, keepdims=True)
    p = jnp.where(support & (n_sa > 0), weights / jnp.where(n_sa > 0, n_sa, 1.0), 0.0)
    dagger = 1.0 - p.sum(-1, keepdims=True)
    top = jnp.broadcast_to(jnp.concatenate([p, jnp.clip(dagger, 0.0, 1.0)], axis=-1), lead + (S, A, S + 1))
    bottom = jnp.broadcast_to(jnp.zeros((1, A, S + 1), p.dtype).at[0, :, S].set(1.0), lead + (1, A, S + 1))
    return jnp.concatenate([top, bottom], axis=-3)


def supported_pairs(support: jnp.ndarray) -> jnp.ndarray:
    """Pairs (s, a) with at least one supported successor, in the sparsified space: bool `[..., S+1, A]`
    (s† row False). Others are known to go to s†, so they get no exploration bonus (spec pitfall 3)."""
    pairs = support.any(-1)  # [..., S, A]
    return jnp.concatenate([pairs, jnp.zeros(pairs.shape[:-2] + (1, pairs.shape[-1]), bool)], axis=-2)


# ------------------------------------------------------------------------------ reward-free exploration


def theoretical_bonus(m: jnp.ndarray, *, horizon: int, num_states: int, num_actions: int, delta: float
                      ) -> jnp.ndarray:
    """min(1, φ(m)) with the theory's φ(x) = (H/x)·[log(6HSA/δ) + S·log(e·(1 + x/S))], φ(0) = ∞.

    At H = 10, S = 20, A = 4, δ = 0.1, φ(x) ≥ 1 until x ≈ 1 100 visits, so the bonus saturates at any
    practical number of virtual episodes (spec pitfall 1; tests/lib/test_mdp.py shows the consequence)."""
    H, S, A = horizon, num_states, num_actions
    x = jnp.maximum(m, 1e-12)
    phi = (H / x) * (np.log(6 * H * S * A / delta) + S * jnp.log(np.e * (1 + x / S)))
    return jnp.where(m > 0, jnp.minimum(1.0, phi), 1.0)


def scaled_bonus(m: jnp.ndarray, *, beta: float) -> jnp.ndarray:
    """min(1, β/m) with value 1 at m = 0: the practical 1/n bonus (spec §5.1, β ∈ [0.3, 3])."""
    return jnp.where(m > 0, jnp.minimum(1.0, beta / jnp.maximum(m, 1e-12)), 1.0)


def argmax_random_ties(key: jax.Array, values: jnp.ndarray, *, atol: float = 1e-6) -> jnp.ndarray:
    """argmax over the last axis choosing uniformly among entries within `atol` of the maximum
    (deterministic argmax on a saturated U would silently pick one fixed policy; spec pitfall 2)."""
    top = values >= values.max(-1, keepdims=True) - atol
    noise = jax.random.uniform(key, values.shape)
    return jnp.argmax(jnp.where(top, noise, -1.0), axis=-1)


def uncertainty_policy(key: jax.Array, *, P: jnp.ndarray, bonus: jnp.ndarray, horizon: int
                       ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The reward-free uncertainty recursion U_h(s, a) = min{H, H·bonus(s, a) + Σ_s' P(s'|s, a) max_a' U_{h+1}(s', a')}
    and its greedy policy with random tie-breaking.

    P `[S, A, S]` or `[H, S, A, S]`, bonus `[S, A]` or `[H, S, A]` in [0, 1] (0 where no bonus is due)
    → (U `[H, S, A]`, actions `[H, S]`)."""
    H = horizon

    def step(u_next, h):
        b = bonus if bonus.ndim == 2 else bonus[h]
        u = jnp.minimum(float(H), H * b + _step_P(P, h) @ u_next.max(-1))
        return u, u

    _, u = jax.lax.scan(step, jnp.zeros(P.shape[-3:-1], P.dtype), jnp.arange(H), reverse=True)
    return u, argmax_random_ties(key, u)


def reward_free_explore(key: jax.Array, *, plan_P: jnp.ndarray, sample_P: jnp.ndarray, counts0: jnp.ndarray,
                        bonus_mask: jnp.ndarray, bonus_fn: Callable[[jnp.ndarray], jnp.ndarray], horizon: int,
                        num_episodes: int, start_state: int | jnp.ndarray = 0) -> dict:
    """Reward-free UCB-style exploration, one episode at a time (`lax.scan` over episodes).

    Each episode k: plan π^k greedily on U computed in `plan_P` with bonus `bonus_fn(m)·bonus_mask`,
    run one episode of π^k in `sample_P`, add its visits to the counts m. With sample_P = plan_P = P̂†
    this is RF-NPD's virtual exploration (no real interaction; the mixture of the π^k is the design);
    with sample_P = the real MDP it is the reactive explorer, whose episodes are the online data.

    plan_P, sample_P `[S, A, S]` or `[H, S, A, S]` (same state space), counts0 and bonus_mask `[S, A]`
    (homogeneous: visits pooled over steps) or `[H, S, A]` (step-indexed counts m_h(s, a)).
    Returns {"policies": int `[K, H, S]`, "states": `[K, H+1]`, "actions": `[K, H]`, "counts": like counts0}."""
    A = counts0.shape[-1]

    def episode(m, k):
        k_plan, k_roll = jax.random.split(jax.random.fold_in(key, k))
        _, acts = uncertainty_policy(k_plan, P=plan_P, bonus=bonus_fn(m) * bonus_mask, horizon=horizon)
        states, actions = rollout(k_roll, P=sample_P, policy=one_hot_policy(acts, A), start_state=start_state)
        if counts0.ndim == 3:
            m = m.at[jnp.arange(horizon), states[:-1], actions].add(1.0)
        else:
            m = m.at[states[:-1], actions].add(1.0)
        return m, (acts, states, actions)

    m, (policies, states, actions) = jax.lax.scan(episode, counts0.astype(jnp.float32), jnp.arange(num_episodes))
    return {"policies": policies, "states": states, "actions": actions, "counts": m}
