"""ltb_icl: in-context linear regression with a Linear Transformer Block vs linear attention.

Paper: Zhang, Wu, Bartlett, "In-Context Learning of a Linear Transformer Block: Benefits of the MLP
Component and One-Step GD Initialization", NeurIPS 2024 (arXiv 2402.14951).

Launch (from the repository root):
    python -m projects.ltb_icl.main --config=configs/ltb_icl/default.py:quick --workdir=runs/ltb_icl
Override any field, e.g. `--config.train.steps=2000 --config.num_seeds=5`.

Presets (2 CPU cores):
  smoke  ~15 s   tiny run for tests: the code path, not the claims.
  quick  ~2 min  3 seeds, M ∈ {20, 40}, ‖β*‖ ∈ {0, 2, 4}, batch 512, 4 000 Adam steps: every claim.
  paper  ~15 min the spec's setting of §4.2: batch 1 024, 6 000 steps, 5 seeds (GPU: seconds).

Setting (spec §4.2): d = 5, H = I, Ψ = I, σ² = 1, β* = (‖β*‖/√d)·1; LSA and LTB (d_ff = d+1) with
all weights N(0, 0.01²), Adam lr 1e-3 on fresh prompts every step; test risk on 200 000 fresh prompts.
LSA is trained as an LTB whose MLP output is masked to zero, so both share one vmapped step.
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0
    c.num_seeds = 3  # a vmap axis: every run is repeated over this many seeds in one jit
    c.num_devices = 0  # data-parallel over this many local devices; 0 = all

    c.data = ml_collections.ConfigDict()
    c.data.d = 5
    c.data.context_lengths = (20, 40)  # M; every M trains the whole (‖β*‖ × model × seed) grid
    c.data.beta_star_norms = (0.0, 2.0, 4.0)  # ‖β*‖, β* = ‖β*‖/√d · 1
    c.data.sigma2 = 1.0
    c.data.psi = 1.0  # Ψ = psi·I; H = I

    c.model = ml_collections.ConfigDict()
    c.model.d_ff = 0  # 0 = d + 1
    c.model.init_scale = 0.01

    c.train = ml_collections.ConfigDict()
    c.train.steps = 4000
    c.train.batch_size = 512
    c.train.learning_rate = 1e-3
    c.train.log_every = 250  # steps per jitted chunk; test risk and progress are reported per chunk
    c.train.checkpoint_every = 1000  # a multiple of log_every
    c.train.keep_checkpoints = 2

    c.eval = ml_collections.ConfigDict()
    c.eval.num_prompts = 200_000  # final test risk; ≥ 2·10⁵ resolves 0.5 % at R ≈ 2.3 (spec pitfall 9)
    c.eval.curve_prompts = 8192  # test risk logged along training
    c.eval.chunk = 10_000
    c.eval.bayes_draws = 20_000
    c.eval.gd_steps = 5000  # B1: gradient descent on the closed-form GD-β risk from (0, 0)
    c.eval.gd_lr = 0.02

    c.tensorboard = False

    if preset == "smoke":
        c.num_seeds = 2
        c.data.context_lengths = (8,)
        c.data.beta_star_norms = (0.0, 2.0)
        c.train.steps = 200
        c.train.batch_size = 64
        c.train.learning_rate = 1e-2
        c.train.log_every = 50
        c.train.checkpoint_every = 100
        c.eval.num_prompts = 4000
        c.eval.curve_prompts = 512
        c.eval.chunk = 2000
        c.eval.bayes_draws = 2000
        c.eval.gd_steps = 500
    elif preset == "paper":
        c.num_seeds = 5
        c.train.steps = 6000
        c.train.batch_size = 1024
        c.train.log_every = 500
    return c
