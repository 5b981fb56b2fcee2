"""lib/mdp.py: planning against brute force, evaluation against Monte Carlo, occupancy, sparsification,
mixtures, the exploration recursion, and the theoretical bonus's degeneration at the experiment's scale."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import mdp

H = 3


def _tiny(seed=0, S=3, A=2):
    key = jax.random.key(seed)
    P = mdp.random_mdp(key, num_states=S, num_actions=A, num_successors=2)
    R = jax.random.uniform(jax.random.fold_in(key, 1), (S, A))
    return P, R


def _numpy_value(P, R, actions, s0=0):
    """Reference: value of a deterministic step-dependent policy by explicit numpy backward loops."""
    P, R = np.asarray(P, np.float64), np.asarray(R, np.float64)
    v = np.zeros(P.shape[0])
    for h in reversed(range(len(actions))):
        v = np.array([R[s, actions[h][s]] + P[s, actions[h][s]] @ v for s in range(P.shape[0])])
    return v[s0]


def test_value_iteration_matches_brute_force_over_all_policies():
    """VI's optimal value equals the max over all A^(S·H) deterministic step-dependent policies (numpy)."""
    P, R = _tiny()
    S, A = R.shape
    best = max(_numpy_value(P, R, np.reshape(acts, (H, S)))
               for acts in itertools.product(range(A), repeat=S * H))
    q, v = mdp.value_iteration(P, R, horizon=H)
    chex.assert_shape(q, (H, S, A))
    chex.assert_shape(v, (H + 1, S))
    np.testing.assert_allclose(float(v[0, 0]), best, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(v[H]), 0.0)
    greedy = mdp.greedy_policy(q)
    np.testing.assert_allclose(float(mdp.policy_evaluation(P, R, greedy)[0, 0]), best, rtol=1e-5)


def test_policy_evaluation_matches_monte_carlo_rollouts():
    """Exact evaluation of a stochastic policy agrees with the mean return of 40 000 vmapped rollouts."""
    P = mdp.random_mdp(jax.random.key(3), num_states=5, num_actions=3, num_successors=3)
    R = jax.random.uniform(jax.random.key(4), (5, 3))
    pi = jax.nn.softmax(jax.random.normal(jax.random.key(5), (6, 5, 3)), -1)
    exact = float(mdp.policy_evaluation(P, R, pi)[0, 0])
    states, actions = mdp.rollouts(jax.random.key(6), P=P, policy=pi, num_episodes=40_000)
    returns = np.asarray(R[states[:, :-1], actions].sum(-1))
    se = returns.std() / np.sqrt(returns.size)
    assert abs(returns.mean() - exact) < 4 * se, (returns.mean(), exact, se)


def test_occupancy_measures_sum_to_one_and_match_rollouts():
    """Each step's occupancy sums to 1 and matches the empirical (s, a) frequencies of rollouts."""
    P = mdp.random_mdp(jax.random.key(7), num_states=4, num_actions=2, num_successors=2)
    pi = jax.nn.softmax(jax.random.normal(jax.random.key(8), (5, 4, 2)), -1)
    d = mdp.occupancy_measures(P, pi, jnp.array([1.0, 0, 0, 0]))
    np.testing.assert_allclose(np.asarray(d.sum((1, 2))), 1.0, atol=1e-5)
    states, actions = mdp.rollouts(jax.random.key(9), P=P, policy=pi, num_episodes=30_000)
    emp = np.zeros((5, 4, 2))
    np.add.at(emp, (np.arange(5)[None].repeat(30_000, 0), np.asarray(states[:, :-1]), np.asarray(actions)), 1)
    np.testing.assert_allclose(emp / 30_000, np.asarray(d), atol=0.012)


def test_sparsify_thresholds_counts_and_sends_the_rest_to_the_absorbing_state():
    """P̂† keeps N/N(s,a) on {N ≥ Φ}, moves the rest (and unseen pairs) to s†, and s† is absorbing."""
    counts = jnp.zeros((2, 2, 2)).at[0, 0].set(jnp.array([3.0, 1.0]))  # (0,0): 3 → 0, 1 → 1; others unseen
    P_hat = mdp.sparsify(counts, mdp.coverage_support(counts, threshold=2))
    assert P_hat.shape == (3, 2, 3)
    np.testing.assert_allclose(np.asarray(P_hat[0, 0]), [0.75, 0.0, 0.25])
    np.testing.assert_allclose(np.asarray(P_hat[0, 1]), [0, 0, 1.0])  # N(s,a) = 0 → s† w.p. 1
    np.testing.assert_allclose(np.asarray(P_hat[2]), [[0, 0, 1.0]] * 2)
    np.testing.assert_allclose(np.asarray(P_hat.sum(-1)), 1.0, atol=1e-6)
    assert np.asarray(mdp.supported_pairs(counts >= 2)).tolist() == [[True, False], [False, False], [False, False]]
    # Φ = 1 keeps every observed transition: the empirical model on the observed pair
    np.testing.assert_allclose(np.asarray(mdp.sparsify(counts, counts >= 1)[0, 0]), [0.75, 0.25, 0.0])


def test_true_sparsified_mdp_lower_bounds_the_true_values():
    """P† = P·1{support} + rest → s†, and V^π_{P†} ≤ V^π_P for every policy and non-negative reward."""
    P, R = _tiny(seed=2, S=5, A=3)
    support = jax.random.bernoulli(jax.random.key(11), 0.6, P.shape) & (P > 0)
    P_dag = mdp.sparsify(P, support)
    np.testing.assert_allclose(np.asarray(P_dag[:5, :, :5]), np.asarray(jnp.where(support, P, 0)), atol=1e-6)
    Rp = mdp.pad_rewards(R)
    for k in range(5):
        pi = jax.nn.softmax(jax.random.normal(jax.random.key(20 + k), (4, 6, 3)), -1)
        v_dag = mdp.policy_evaluation(P_dag, Rp, pi)[0]
        v = mdp.policy_evaluation(mdp.add_absorbing(P), Rp, pi)[0]
        assert np.all(np.asarray(v_dag) <= np.asarray(v) + 1e-6)
    assert float(mdp.value_iteration(P_dag, Rp, horizon=4)[1][0, 0]) < float(
        mdp.value_iteration(mdp.add_absorbing(P), Rp, horizon=4)[1][0, 0])


def test_counts_by_prefix_equal_masked_counts():
    """Prefix counts for every budget equal count_transitions of the first b episodes."""
    P = mdp.random_mdp(jax.random.key(12), num_states=4, num_actions=2, num_successors=2)
    states, actions = mdp.rollouts(jax.random.key(13), P=P, policy=jnp.full((3, 4, 2), 0.5), num_episodes=50)
    by_prefix = mdp.count_transitions_by_prefix(states, actions, budgets=(5, 20, 50), num_states=4, num_actions=2)
    for i, b in enumerate((5, 20, 50)):
        ref = mdp.count_transitions(states[:b], actions[:b], num_states=4, num_actions=2)
        np.testing.assert_allclose(np.asarray(by_prefix[i]), np.asarray(ref))
    assert float(by_prefix[-1].sum()) == 50 * 3


def test_mixture_draws_one_member_per_episode():
    """rollout_mixture follows one member for a whole episode (not a per-state average), members ~ uniform."""
    P = mdp.random_mdp(jax.random.key(14), num_states=4, num_actions=2, num_successors=2)
    members = jnp.stack([jnp.zeros((5, 4), jnp.int32), jnp.ones((5, 4), jnp.int32)])  # always 0 / always 1
    states, actions, drawn = mdp.rollout_mixture(jax.random.key(15), P=P, member_actions=members, num_episodes=2000)
    actions, drawn = np.asarray(actions), np.asarray(drawn)
    assert np.all(actions == drawn[:, None])
    assert 0.45 < drawn.mean() < 0.55


def test_sample_categorical_and_random_tie_breaking():
    """Inverse-CDF draws follow the probabilities and never hit zero-probability entries; ties break uniformly."""
    probs = jnp.array([0.2, 0.0, 0.5, 0.3, 0.0])
    u = jax.random.uniform(jax.random.key(16), (50_000,))
    draws = np.asarray(mdp.sample_categorical(u, probs))
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / draws.size, probs, atol=0.01)
    assert int(mdp.sample_categorical(jnp.array(1.0), probs)) == 3
    vals = jnp.broadcast_to(jnp.array([1.0, 3.0, 3.0, 2.0]), (4000, 4))
    picks = np.asarray(mdp.argmax_random_ties(jax.random.key(17), vals))
    assert set(picks.tolist()) == {1, 2} and 0.45 < (picks == 1).mean() < 0.55
    assert int(mdp.argmax_random_ties(jax.random.key(0), jnp.array([0.0, 5.0, 1.0]))) == 1


def test_reward_free_explore_counts_its_own_visits_and_bounds_u():
    """The explorer's counts are the visits of its episodes; U ∈ [0, H], and 0 on pairs without a bonus."""
    P = mdp.add_absorbing(mdp.random_mdp(jax.random.key(18), num_states=5, num_actions=2, num_successors=2))
    mask = jnp.ones((6, 2), bool).at[5].set(False)
    out = mdp.reward_free_explore(jax.random.key(19), plan_P=P, sample_P=P, counts0=jnp.zeros((6, 2)),
                                  bonus_mask=mask, bonus_fn=lambda m: mdp.scaled_bonus(m, beta=1.0), horizon=4,
                                  num_episodes=30)
    assert out["policies"].shape == (30, 4, 6) and out["states"].shape == (30, 5)
    ref = mdp.count_transitions(out["states"], out["actions"], num_states=6, num_actions=2).sum(-1)
    np.testing.assert_allclose(np.asarray(out["counts"]), np.asarray(ref))
    u, _ = mdp.uncertainty_policy(jax.random.key(0), P=P, bonus=mdp.scaled_bonus(out["counts"], beta=1.0) * mask,
                                  horizon=4)
    assert float(u.min()) >= 0 and float(u.max()) <= 4 and float(jnp.abs(u[:, 5]).max()) == 0.0


def test_lock_instance_structure():
    """Lock instance: stochastic rows, closed regions, and behaviour reaches B at step 3 w.p. 0.3/16 exactly."""
    inst = mdp.lock_two_regions(jax.random.key(21))
    P, a, b = inst["P"], np.asarray(inst["region_a"]), np.asarray(inst["region_b"])
    assert P.shape == (19, 4, 19) and a.sum() == 8 and b.sum() == 8
    np.testing.assert_allclose(np.asarray(P.sum(-1)), 1.0, atol=1e-6)
    assert float(P[a][:, :, ~a].sum()) == 0.0 and float(P[b][:, :, ~b].sum()) == 0.0
    assert np.all((np.asarray(P[3:]) > 0).sum(-1) == 3)
    d = mdp.occupancy_measures(P, jnp.broadcast_to(inst["behaviour"], (10, 19, 4)), jnp.eye(19)[0]).sum(-1)
    np.testing.assert_allclose(float(d[3] @ b), 0.3 / 16, rtol=1e-5)


@pytest.fixture(scope="module")
def lock_design_setup():
    inst = mdp.lock_two_regions(jax.random.key(30))
    beh = jnp.broadcast_to(inst["behaviour"], (10, 19, 4))
    st, ac = mdp.rollouts(jax.random.key(31), P=inst["P"], policy=beh, num_episodes=300)
    n = mdp.count_transitions(st, ac, num_states=19, num_actions=4)
    support = mdp.coverage_support(n, threshold=1)
    return inst, mdp.sparsify(n, support), mdp.supported_pairs(support)


def _design_b_share(inst, P_hat, mask, bonus_fn):
    out = jax.jit(lambda k: mdp.reward_free_explore(k, plan_P=P_hat, sample_P=P_hat, counts0=jnp.zeros((20, 4)),
                                                    bonus_mask=mask, bonus_fn=bonus_fn, horizon=10,
                                                    num_episodes=300))(jax.random.key(32))
    P_ext = mdp.add_absorbing(inst["P"])
    b = jnp.append(inst["region_b"], False)
    occ = jax.vmap(lambda acts: mdp.occupancy_measures(P_ext, mdp.one_hot_policy(acts, 4), jnp.eye(20)[0]))(
        out["policies"])  # the mixture's occupancy is the mean of its members'
    return float(occ.sum(-1).mean(0).sum(0) @ b / 10), out


def test_theoretical_bonus_degenerates_at_this_scale(lock_design_setup):
    """At H=10, S=20, A=4, δ=0.1 the theory bonus is saturated (=1) for every count a 300-episode design can
    reach, so U ≡ H on every supported pair and the design is random: B share ≈ uniform's 0.01, while the
    scaled bonus β/m sends ≥ 15 % of visits to B (why the config uses the scaled bonus)."""
    theory = lambda m: mdp.theoretical_bonus(m, horizon=10, num_states=20, num_actions=4, delta=0.1)
    assert float(theory(jnp.arange(0.0, 1001.0)).min()) == 1.0  # saturated up to 1 000 visits
    assert float(theory(jnp.array(5000.0))) < 0.3  # it does decay eventually
    inst, P_hat, mask = lock_design_setup
    share_theory, out = _design_b_share(inst, P_hat, mask, theory)
    assert float(out["counts"].max()) < 1000  # every count the design reached is in the saturated range
    u, _ = mdp.uncertainty_policy(jax.random.key(0), P=P_hat, bonus=theory(out["counts"]) * mask, horizon=10)
    np.testing.assert_allclose(np.asarray(u[0])[np.asarray(mask)], 10.0)  # U ≡ H: every supported action ties
    share_scaled, _ = _design_b_share(inst, P_hat, mask, lambda m: mdp.scaled_bonus(m, beta=1.0))
    assert share_theory < 0.05, share_theory
    assert share_scaled >= 0.15, share_scaled


def test_step_indexed_models_match_brute_force_and_monte_carlo():
    """Step-indexed P `[H, S, A, S]`: VI equals brute force over all policies, equal steps reproduce the
    homogeneous values, and rollouts follow the per-step transitions (counts per step sum to pooled counts)."""
    Ps = jnp.stack([mdp.random_mdp(jax.random.key(40 + h), num_states=3, num_actions=2, num_successors=2)
                    for h in range(H)])
    R = jax.random.uniform(jax.random.key(50), (3, 2))

    def ref(actions):
        v = np.zeros(3)
        for h in reversed(range(H)):
            Ph = np.asarray(Ps[h], np.float64)
            v = np.array([float(R[s, actions[h][s]]) + Ph[s, actions[h][s]] @ v for s in range(3)])
        return v[0]

    best = max(ref(np.reshape(a, (H, 3))) for a in itertools.product(range(2), repeat=3 * H))
    q, v = mdp.value_iteration(Ps, R, horizon=H)
    np.testing.assert_allclose(float(v[0, 0]), best, rtol=1e-5)
    same = jnp.broadcast_to(Ps[0], Ps.shape)
    np.testing.assert_allclose(np.asarray(mdp.value_iteration(same, R, horizon=H)[1]),
                               np.asarray(mdp.value_iteration(Ps[0], R, horizon=H)[1]), rtol=1e-6)
    pi = jnp.full((H, 3, 2), 0.5)
    states, actions = mdp.rollouts(jax.random.key(51), P=Ps, policy=pi, num_episodes=40_000)
    returns = np.asarray(R[states[:, :-1], actions].sum(-1))
    exact = float(mdp.policy_evaluation(Ps, R, pi)[0, 0])
    assert abs(returns.mean() - exact) < 4 * returns.std() / np.sqrt(returns.size)
    per_step = mdp.count_transitions(states, actions, num_states=3, num_actions=2, step_indexed=True)
    assert per_step.shape == (H, 3, 2, 3)
    np.testing.assert_allclose(np.asarray(per_step.sum(0)),
                               np.asarray(mdp.count_transitions(states, actions, num_states=3, num_actions=2)))
    emp = np.asarray(per_step[1] / jnp.maximum(per_step[1].sum(-1, keepdims=True), 1))
    seen = np.asarray(per_step[1].sum(-1)) > 2000
    np.testing.assert_allclose(emp[seen], np.asarray(Ps[1])[seen], atol=0.03)  # step 1 follows Ps[1]
    P_hat = mdp.sparsify(per_step, per_step >= 1)
    assert P_hat.shape == (H, 4, 2, 4)
    np.testing.assert_allclose(np.asarray(P_hat[2]), np.asarray(mdp.sparsify(per_step[2], per_step[2] >= 1)))
