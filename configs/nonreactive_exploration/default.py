"""nonreactive_exploration: design ONE non-reactive exploration policy from offline data (RF-NPD).

Paper: Zhang, Zanette, "Policy Finetuning in Reinforcement Learning via Design of Experiments using
Offline Data", NeurIPS 2023 (arXiv 2307.04354). The paper is theoretical; the algorithm and the
experiment are the reconstruction and calibration of `papers/nonreactive_exploration.md` (§2, §5).

Launch (from the repository root):
    python -m projects.nonreactive_exploration.main \
        --config=configs/nonreactive_exploration/default.py:quick --workdir=runs/nonreactive_exploration
Override any field, e.g. `--config.num_seeds=50 --config.design.beta=0.3` (num_seeds: a multiple of seed_batch).

Presets (2 CPU cores):
  smoke  ~35 s   8 seeds, budgets {25, 100}, 60 virtual episodes: the code path, not the claims (~30 s of it
                 is the one-off XLA compilation of the per-seed experiment).
  quick  ~1 min  100 seeds, K_off ∈ {100, 300, 1000}, K_de ∈ {25·2^j ≤ 1600}, K_ucb = 300: every claim
                 (measured 60–85 s wall on 2 shared cores, ~20 s of it compilation).
  paper  untimed 300 seeds, K_de up to 6400: about 12× quick's compute (estimate; GPU: seconds).

Instance (spec §5.1): "lock & two regions", S = 19 (+ s†), A = 4, H = 10; behaviour policy plays the
first lock action w.p. 0.3 and is uniform elsewhere; 20 sparse reward functions per seed.

Why the scaled bonus (design.bonus = "scaled", φ_β(m) = β/m, β = 1): the theory's bonus
φ(x) = (H/x)[log(6HSA/δ) + S log(e(1 + x/S))] is ≥ 1 until x ≈ 1 100 virtual visits of a pair at
H = 10, S = 20, A = 4, δ = 0.1, while K_ucb = 300 virtual episodes make K_ucb·H = 3 000 visits in all,
spread over ~60 supported pairs.
So min(1, φ) = 1 everywhere, U ≡ H on every supported pair and the design is a random policy
(tests/lib/test_mdp.py::test_theoretical_bonus_degenerates_at_this_scale; the run also reports the
theory-bonus design as the ablation "rfnpd_theory", claim N7). Φ = 1 for the same reason: the theory's
Φ ≈ 6H² log(·) would sparsify almost every transition at these data sizes (spec pitfall 7).
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0
    c.num_seeds = 100  # a vmap axis: every seed draws its own MDP, rewards, offline data and online data
    c.seed_batch = 25  # seeds per jitted call; every finished batch is saved, so a rerun resumes

    c.env = ml_collections.ConfigDict()
    c.env.region_size = 8  # states per region (A and B)
    c.env.num_actions = 4
    c.env.lock_length = 3  # lock states 0..L-1; 0 is the start
    c.env.num_successors = 3
    c.env.horizon = 10
    c.env.behaviour_correct_prob = 0.3
    # False: transitions and counts pooled over h (the spec's calibrated choice). True: counts, support Φ and
    # models per step h, as a step-indexed analysis would use; needs about H× more data (spec pitfall 8).
    c.env.step_indexed = False

    c.rewards = ml_collections.ConfigDict()
    c.rewards.num_rewards = 20  # evaluated simultaneously: the design is reward-free
    c.rewards.density = 0.2

    c.offline = ml_collections.ConfigDict()
    c.offline.episodes = 300  # K_off of the main experiment
    c.offline.sweep = (100, 300, 1000)  # K_off values for the local-coverage claim; must contain episodes
    c.offline.threshold = 1  # Φ: the support is {N(s,a,s') ≥ Φ}

    c.design = ml_collections.ConfigDict()
    c.design.virtual_episodes = 300  # K_ucb
    c.design.bonus = "scaled"  # "scaled" (β/m) | "theory" (see the module docstring)
    c.design.beta = 1.0
    c.design.delta = 0.1
    c.design.init_counts = "zero"  # "zero" (theory-faithful, online-only planner) | "offline" (the 3P code)

    c.online = ml_collections.ConfigDict()
    c.online.budgets = (25, 50, 100, 200, 400, 800, 1600)  # K_de; prefixes of one batch of episodes

    c.claims = ml_collections.ConfigDict()
    c.claims.coverage_budget = 400  # the fixed K_de of the local-coverage claim

    if preset == "smoke":
        c.num_seeds = 8
        c.seed_batch = 4
        c.rewards.num_rewards = 6
        c.offline.sweep = (100, 300)
        c.design.virtual_episodes = 60
        c.online.budgets = (25, 100)
        c.claims.coverage_budget = 100
    elif preset == "paper":
        c.num_seeds = 300
        c.seed_batch = 50
        c.online.budgets = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400)
    return c
