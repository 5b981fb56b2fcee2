"""nonreactive_exploration: RF-NPD and its baselines, one whole experiment per seed, seeds as a vmap axis.

Per seed (`make_seed_fn`): draw the lock instance, 20 rewards and offline behaviour data; build the
empirical sparsified MDP P̂†; run the design (RF-NPD: virtual reward-free exploration in P̂†) and the
baselines; collect online episodes (one batch per method, every budget K_de is a prefix of it); plan
for every reward with the online-only and the pooled final planner; evaluate exactly (DP) in the true
MDP P and the true sparsified MDP P†. Importable pieces: `validate`, `make_seed_fn`, `run_offline_point`,
`train_and_evaluate`.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from harness import outputs, rundir, validation
from lib import mdp, stats
from lib.metrics import check_finite, progress, read_npz_or_none, write_npz_atomic
from projects.nonreactive_exploration import claims as claims_lib
from projects.nonreactive_exploration import plots

# Methods that collect online data, in the order of the method axis of every per-seed array.
METHODS = claims_lib.METHODS
REGIONS = ("lock", "A", "B")


def validate(config) -> None:
    """Checks every field this project reads; raises ConfigError naming field, value, accepted."""
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    n = validation.require_int(config, "num_seeds", min_value=2)
    b = validation.require_int(config, "seed_batch", min_value=1)
    validation.require(n % b == 0, "seed_batch", b, f"a divisor of num_seeds={n}")
    validation.require_int(config, "env.region_size", min_value=3)
    validation.require_int(config, "env.num_actions", min_value=2)
    validation.require_int(config, "env.lock_length", min_value=1)
    k = validation.require_int(config, "env.num_successors", min_value=1)
    validation.require(k <= config.env.region_size, "env.num_successors", k,
                   f"at most env.region_size={config.env.region_size}")
    validation.require_int(config, "env.horizon", min_value=1)
    si = config.env.step_indexed
    validation.require(isinstance(si, bool), "env.step_indexed", si, "True or False")
    p = validation.require_float(config, "env.behaviour_correct_prob", min_value=0.0)
    validation.require(p <= 1.0, "env.behaviour_correct_prob", p, "a probability in [0, 1]")
    validation.require_int(config, "rewards.num_rewards", min_value=2)
    d = validation.require_float(config, "rewards.density", min_value=0.0, strict=True)
    validation.require(d <= 1.0, "rewards.density", d, "a probability in (0, 1]")
    k_off = validation.require_int(config, "offline.episodes", min_value=1)
    validation.require_sequence(config, "offline.sweep", item_desc="integers >= 1",
                            item_ok=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
    validation.require(k_off in config.offline.sweep, "offline.sweep", config.offline.sweep,
                   f"a list containing offline.episodes={k_off}")
    validation.require_int(config, "offline.threshold", min_value=1)
    validation.require_int(config, "design.virtual_episodes", min_value=1)
    validation.require_choice(config, "design.bonus", ["scaled", "theory"])
    validation.require_float(config, "design.beta", min_value=0.0, strict=True)
    delta = validation.require_float(config, "design.delta", min_value=0.0, strict=True)
    validation.require(delta < 1.0, "design.delta", delta, "a confidence level in (0, 1)")
    validation.require_choice(config, "design.init_counts", ["zero", "offline"])
    budgets = validation.require_sequence(config, "online.budgets", item_desc="strictly increasing integers >= 1",
                                      item_ok=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
    validation.require(all(x < y for x, y in zip(budgets, budgets[1:], strict=False)), "online.budgets", budgets,
                   "a list of at least 1 strictly increasing integers >= 1")
    cb = validation.require_int(config, "claims.coverage_budget", min_value=1)
    validation.require(cb in budgets, "claims.coverage_budget", cb, f"one of online.budgets={list(budgets)}")


def _bonus_fn(kind: str, *, beta: float, horizon: int, num_states: int, num_actions: int, delta: float):
    if kind == "scaled":
        return lambda m: mdp.scaled_bonus(m, beta=beta)
    return lambda m: mdp.theoretical_bonus(m, horizon=horizon, num_states=num_states, num_actions=num_actions,
                                           delta=delta)


def make_seed_fn(config):
    """Returns `seed_fn(key, k_off) -> dict` of one seed's whole experiment (jittable, vmappable over key).

    `k_off` may be traced: offline data is a prefix of max(offline.sweep) behaviour episodes, so every
    K_off of one seed shares its MDP, rewards and the first episodes (paired comparisons).
    Outputs (M methods, B budgets, J rewards): "sub_dag"/"sub_true" `[M, B, J]` normalized suboptimality
    (V* − V^π)/H in P† and in P with the online-only planner, "pooled_sub_dag"/"pooled_sub_true" likewise
    with the pooled planner, "offline_sub_dag"/"offline_sub_true" `[J]` (offline-only), "visit_frac"
    `[M, B, 3]` (lock, A, B shares of online visits), "coverage_gap" `[J]` (V* − V*_{P†})/H, ..."""
    e, H = config.env, config.env.horizon
    A = e.num_actions
    S = e.lock_length + 2 * e.region_size
    budgets = jnp.asarray(config.online.budgets)
    E = max(config.online.budgets)
    max_off = max(config.offline.sweep)
    K_ucb = config.design.virtual_episodes
    phi = config.offline.threshold
    si = config.env.step_indexed  # counts, support and models per step h (spec pitfall 8) instead of pooled
    bonus_kw = dict(beta=config.design.beta, horizon=H, num_states=S + 1, num_actions=A, delta=config.design.delta)
    bonus_main = _bonus_fn(config.design.bonus, **bonus_kw)
    bonus_theory = _bonus_fn("theory", **bonus_kw)

    def seed_fn(key, k_off):
        fk = lambda i: jax.random.fold_in(key, i)
        inst = mdp.lock_two_regions(fk(0), region_size=e.region_size, num_actions=A, lock_length=e.lock_length,
                                    num_successors=e.num_successors,
                                    behaviour_correct_prob=e.behaviour_correct_prob)
        P = inst["P"]
        R = mdp.pad_rewards(mdp.lock_rewards(fk(1), region_a=inst["region_a"], region_b=inst["region_b"],
                                             num_actions=A, num_rewards=config.rewards.num_rewards,
                                             density=config.rewards.density))  # [J, S+1, A]
        behaviour = jnp.broadcast_to(inst["behaviour"], (H, S, A))
        uniform = jnp.full((H, S, A), 1.0 / A)

        # ---- offline data and the sparsified models
        off_s, off_a = mdp.rollouts(fk(2), P=P, policy=behaviour, num_episodes=max_off)
        n_off = mdp.count_transitions(off_s, off_a, num_states=S, num_actions=A, step_indexed=si,
                                      weights=(jnp.arange(max_off) < k_off).astype(jnp.float32))
        support = mdp.coverage_support(n_off, threshold=phi)
        P_hat = mdp.sparsify(n_off, support)  # P̂†, what the design sees
        P_dag = mdp.sparsify(P, support)  # P†, the comparator (per step when step-indexed)
        P_ext = mdp.add_absorbing(P)
        bonus_mask = mdp.supported_pairs(support)  # [S+1, A], or [H, S+1, A] when step-indexed
        counts0 = jnp.zeros(bonus_mask.shape)
        if config.design.init_counts == "offline":
            counts0 = counts0.at[..., :S, :].set(n_off.sum(-1))

        # ---- the design, virtual (no real interaction), with the configured and with the theory bonus
        explore = dict(plan_P=P_hat, bonus_mask=bonus_mask, horizon=H)
        design = mdp.reward_free_explore(fk(3), sample_P=P_hat, counts0=counts0, bonus_fn=bonus_main,
                                         num_episodes=K_ucb, **explore)
        design_th = mdp.reward_free_explore(fk(4), sample_P=P_hat, counts0=counts0, bonus_fn=bonus_theory,
                                            num_episodes=K_ucb, **explore)
        designs = {"policies": jnp.stack([design["policies"], design_th["policies"]])}
        # ---- the reactive explorer: the same recursion on P̂†, real counts, real episodes (the online data)
        reactive = mdp.reward_free_explore(fk(5), sample_P=P_ext, counts0=jnp.zeros(bonus_mask.shape),
                                           bonus_fn=bonus_main, num_episodes=E, **explore)

        # ---- online data: E episodes per method; budget b uses the first b
        mix_s, mix_a, _ = jax.vmap(lambda k, acts: mdp.rollout_mixture(k, P=P, member_actions=acts[:, :, :S],
                                                                      num_episodes=E))(
            jnp.stack([fk(10), fk(14)]), designs["policies"])
        tab_s, tab_a = jax.vmap(lambda k, pi: mdp.rollouts(k, P=P, policy=pi, num_episodes=E))(
            jnp.stack([fk(12), fk(13)]), jnp.stack([behaviour, uniform]))
        online = {"rfnpd": (mix_s[0], mix_a[0]), "rfnpd_theory": (mix_s[1], mix_a[1]),
                  "reactive": (reactive["states"], reactive["actions"]),
                  "behaviour": (tab_s[0], tab_a[0]), "uniform": (tab_s[1], tab_a[1])}
        states = jnp.stack([online[m][0] for m in METHODS])  # [M, E, H+1]
        actions = jnp.stack([online[m][1] for m in METHODS])
        masks = (jnp.arange(E)[None] < budgets[:, None]).astype(jnp.float32)  # [B, E]

        counts = jax.vmap(lambda st, ac: mdp.count_transitions_by_prefix(
            st, ac, budgets=budgets, num_states=S, num_actions=A, step_indexed=si))(states, actions)
        # counts: [M, B, S, A, S], or [M, B, H, S, A, S] when step-indexed

        # ---- where the online visits land (the H states at which actions are taken)
        region_of = jnp.where(inst["region_b"], 2, jnp.where(inst["region_a"], 1, 0))
        reg = jax.nn.one_hot(region_of[states[:, :, :-1]], 3).mean(2)  # [M, E, 3]
        visit_frac = jnp.einsum("be,mer->mbr", masks, reg) / budgets[None, :, None]

        # ---- exact evaluation for every reward
        truth = jnp.stack([jnp.broadcast_to(P_ext, P_dag.shape), P_dag])  # [2, (H,) S+1, A, S+1]: P and P†
        opt = jax.vmap(lambda PP: jax.vmap(lambda r: mdp.value_iteration(PP, r, horizon=H)[1][0, 0])(R))(truth)
        v_true, v_dag = opt[0], opt[1]

        def final(model):
            """Plan in `model` for every reward; normalized suboptimality in P† and in P, `[J]` each."""

            def one(r, vt, vd):
                pi = mdp.greedy_policy(mdp.value_iteration(model, r, horizon=H)[0])
                v = jax.vmap(lambda PP: mdp.policy_evaluation(PP, r, pi)[0, 0])(truth)
                return (vd - v[1]) / H, (vt - v[0]) / H

            return jax.vmap(one)(R, v_true, v_dag)

        # one vmapped planner over every model: offline-only P̂†, then online-only and pooled for each (method, budget)
        n_mb = len(METHODS) * len(config.online.budgets)
        flat = counts.reshape((n_mb,) + counts.shape[2:])
        models = jnp.concatenate([P_hat[None], jax.vmap(lambda n: mdp.sparsify(n, support))(flat),
                                  jax.vmap(lambda n: mdp.sparsify(n + n_off, support))(flat)])
        all_dag, all_true = jax.vmap(final)(models)  # [1 + 2·M·B, J]
        shape = counts.shape[:2] + (-1,)
        off_dag, off_true = all_dag[0], all_true[0]
        sub_dag, sub_true = all_dag[1:1 + n_mb].reshape(shape), all_true[1:1 + n_mb].reshape(shape)
        pooled_dag, pooled_true = all_dag[1 + n_mb:].reshape(shape), all_true[1 + n_mb:].reshape(shape)
        region_b = jnp.append(inst["region_b"], False)
        pairs = bonus_mask if bonus_mask.ndim == 2 else bonus_mask.any(0)  # supported at some step
        start = jnp.zeros(S + 1).at[0].set(1.0)
        design_b = jax.vmap(lambda acts: (mdp.occupancy_measures(P_ext, mdp.one_hot_policy(acts, A), start)
                                          .sum(-1) @ region_b).sum() / H)(design["policies"])  # [K_ucb]
        return {
            "sub_dag": sub_dag, "sub_true": sub_true, "pooled_sub_dag": pooled_dag, "pooled_sub_true": pooled_true,
            "offline_sub_dag": off_dag, "offline_sub_true": off_true, "visit_frac": visit_frac,
            "coverage_gap": (v_true - v_dag) / H, "v_true": v_true, "v_dag": v_dag,
            "design_b_share_exact": design_b.mean(),  # exact B share of the mixture (mean of member occupancies)
            "offline_visit_frac": (jnp.arange(max_off) < k_off) @ jax.nn.one_hot(region_of[off_s[:, :-1]], 3).mean(1)
            / k_off,  # [3]
            "supported_pairs": pairs.sum(),
            "supported_pairs_b": (pairs[:S] & inst["region_b"][:, None]).sum(),
        }

    return seed_fn


def seed_keys(config, start: int, count: int) -> jax.Array:
    return stats.seed_keys(config.seed, count, start)


def _point_path(workdir: str, k_off: int, batch: int) -> str:
    return os.path.join(workdir, "points", f"offline{k_off}_batch{batch}.npz")


_COMPILED: dict[str, object] = {}  # one jitted batch function per config (a notebook rerun does not recompile)


def batched_seed_fn(config):
    """`jax.jit(jax.vmap(seed_fn, in_axes=(0, None)))`: (keys `[seed_batch]`, K_off) → per-seed arrays."""
    key = config.to_json_best_effort(sort_keys=True)
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(jax.vmap(make_seed_fn(config), in_axes=(0, None)))
    return _COMPILED[key]


def run_offline_points(config, workdir: str) -> dict[int, dict[str, np.ndarray]]:
    """Runs every (K_off, seed batch) not already saved in `workdir/points/` and returns
    {K_off: {name: array [num_seeds, ...]}}. A killed run resumes at the first missing batch; a damaged saved
    batch is named in one warning line and computed again."""
    batched = batched_seed_fn(config)
    n_batches = config.num_seeds // config.seed_batch
    todo = [(k, b) for k in config.offline.sweep for b in range(n_batches)]
    saved = [read_npz_or_none(_point_path(workdir, k, b)) for k, b in todo]
    out: dict[int, list] = {k: [] for k in config.offline.sweep}
    initial = sum(res is not None for res in saved)
    with progress(len(todo), desc="nonreactive sweep (K_off × seed batch)", initial=initial, unit="batch") as bar:
        for (k, b), res in zip(todo, saved, strict=True):
            if res is None:
                keys = seed_keys(config, b * config.seed_batch, config.seed_batch)
                res = jax.tree.map(np.asarray, batched(keys, jnp.int32(k)))
                check_finite(b, res)
                write_npz_atomic(_point_path(workdir, k, b), res)
                bar.update(1)
            out[k].append(res)
    return {k: {name: np.concatenate([r[name] for r in rows]) for name in rows[0]} for k, rows in out.items()}


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs the sweep (resuming from `workdir/points/` when `workdir/config.json` matches `config`), computes
    the claims, writes results and plots."""
    validate(config)
    t0 = time.time()
    rundir.save_config(config, workdir)  # refuses a workdir whose saved batches belong to another config
    points = run_offline_points(config, workdir)
    sweep_seconds = time.time() - t0
    metrics, claims = claims_lib.compute(config, points)
    metrics["sweep_seconds"] = sweep_seconds
    plot_files = plots.make_all(config, workdir, points)
    metrics["total_seconds"] = time.time() - t0
    return outputs.write_results(workdir, project="nonreactive_exploration", preset=config.preset,
                                seeds=list(range(config.num_seeds)), metrics=metrics, claims=claims,
                                plots=plot_files)
