"""trust: offline bandits with one sample per arm, TRUST (trust region of stochastic policies) against LCB.

Paper: Zhang, Zhai, Zanette, "Is Offline Decision Making Possible with Only Few Samples? Reliable Decisions
in Data-Starved Bandits via Trust Region Enhancement" (arXiv 2402.15703). The paper's body could not be
read: the algorithm and every threshold are the reconstruction of `shared/papers/trust.md`.

Launch (from the repository root):
    python -m projects.trust.main --config=configs/trust/default.py:quick --workdir=runs/trust
Override any field, e.g. `--config.num_seeds=200 --config.offline_rl.enabled=False`.

Presets (2 CPU cores):
  smoke  ~20 s   d ≤ 200, 50 data seeds, 100 Monte Carlo draws: the code path, not the claims.
  quick  ~2 min  the spec's §5: every instance family (trap-half σ ∈ {0.5, 1}, trap-U01, half01, U01,
                 12 minimax instances, d-scaling up to 10⁴), 1000 data seeds, M = 1000 draws (500 at
                 d = 10⁴), the offline-RL reduction with 1000 seeds. About half of it is compilation.
  paper  ~2 min  as quick with M = 2000 draws (1000 at d = 10⁴) and 2000 data seeds.

Instance names (parsed by `projects.trust.run.make_instance`):
  trap_half_s<σ>_d<d>_n<N0>   arm 0 (mean 0.3, N0 samples) + d one-sample arms, half mean 1, half 0
  trap_u01_s<σ>_d<d>_n<N0>    the same with pool means U[0,1] (drawn once from config.seed)
  half01_s<σ>_d<d>_n<N>       equal counts N, half mean 1, half 0
  u01_s<σ>_d<d>_n<N>          equal counts N, means U[0,1]
  minimax_d<d>_n<N>_gap<g>    equal counts N, σ = 1, one arm 0.5+g, the rest 0.5
"""

import ml_collections

from configs.common import new_config

BASE_INSTANCES = (
    "trap_half_s0.5_d1000_n10000",  # AC-T1 headline
    "trap_half_s1_d1000_n10000",  # AC-T1, σ = 1
    "trap_half_s0.5_d100_n1000",
    "trap_u01_s0.5_d1000_n10000",
    "half01_s1_d1000_n1",  # AC-T3 and the expected non-result
    "u01_s0.5_d1000_n1",
)
MINIMAX_INSTANCES = tuple(
    f"minimax_d{d}_n{n}_gap{g:g}"
    for d in (2, 10) for n in (10, 100) for g in (round(k / n**0.5, 4) for k in (0.5, 1.0, 2.0)))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0  # root key: instance draws, Monte Carlo draws and data seeds are folded from it
    c.num_seeds = 1000  # data seeds, a vmap axis (chunked by lax.map in batches of seed_batch)
    c.seed_batch = 100
    c.delta = 0.1  # confidence of TRUST's rule, its certificate and LCB's bonus
    c.instances = BASE_INSTANCES + MINIMAX_INSTANCES
    c.scaling_ds = (100, 1000, 10_000)  # AC-T5: half01, N = 1, σ = 1 at each d
    c.max_elements = 4_000_000  # bound on seed_batch·J·d float64s per lax.map batch (memory)

    c.trust = ml_collections.ConfigDict()
    c.trust.grid_size = 20  # J radii, geometric over 3 decades below ε_max (plus ε = 0)
    c.trust.grid_decades = 3.0
    c.trust.mc_draws = 1000  # M draws of the localized Gaussian complexity
    c.trust.mc_draws_large_d = 500  # M for d ≥ 10⁴ (spec §2.3)
    c.trust.mc_slack = False  # add ε·sqrt(2 log(2J/δ_mc)/M) to Ĝ (spec pitfall 3); off: coverage is measured
    c.trust.mc_delta = 0.05

    c.slsqp_instances = 50  # AC-T6: TRLinMax vs scipy SLSQP on this many random instances with d ≤ 8

    c.offline_rl = ml_collections.ConfigDict()  # spec §5.3: logging policies as arms on a tabular MDP
    c.offline_rl.enabled = True
    c.offline_rl.num_states = 20
    c.offline_rl.num_actions = 4
    c.offline_rl.horizon = 10
    c.offline_rl.successors = 3
    c.offline_rl.reward_fraction = 0.2
    c.offline_rl.num_explore = 500  # exploratory policies softmax(β_k Q*), one episode each
    c.offline_rl.beta_max = 3.0  # β_k ~ U[0, beta_max]
    c.offline_rl.default_episodes = 200  # episodes of the default (ε-greedy around a random deterministic) policy
    c.offline_rl.default_eps = 0.3
    c.offline_rl.sigma = 0.5  # normalised returns lie in [0, 1]
    c.offline_rl.num_seeds = 1000

    if preset == "smoke":
        c.num_seeds = 50
        c.seed_batch = 25
        c.instances = ("trap_half_s0.5_d200_n2000", "half01_s1_d200_n1", "minimax_d2_n100_gap0.2",
                       "minimax_d10_n100_gap0.2")
        c.scaling_ds = (200,)  # one d: T5 is not measurable in smoke
        c.trust.mc_draws = 100
        c.trust.mc_draws_large_d = 100
        c.slsqp_instances = 5
        c.offline_rl.num_explore = 199  # 200 arms: shares its compiled Ĝ with half01 at d = 200
        c.offline_rl.default_episodes = 20
        c.offline_rl.num_seeds = 20
    elif preset == "paper":
        c.num_seeds = 2000
        c.trust.mc_draws = 2000
        c.trust.mc_draws_large_d = 1000
    return c
