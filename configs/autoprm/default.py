"""autoprm: controllable question decomposition, process supervision by expert iteration, context-guided decoding.

Paper: Chen, Zhao, Zhu, Zhang, Li, Raj, Yao, "AutoPRM: Automating Procedural Supervision for Multi-Step Reasoning via
Controllable Question Decomposition" (NAACL 2024, arXiv 2402.11452). No code exists; the method is the
reconstruction of `shared/papers/autoprm.md`, the domain is `lib/arith_domain.py` (spec §5.2).

Launch (from the repository root):
    python -m projects.autoprm.main --config=configs/autoprm/default.py:quick --workdir=runs/autoprm

Presets (2 CPU cores, measured 2026-12-05 on the shared machine). Step 1 of the project trains only the SFT-CoT
baseline (the domain's calibration):
  smoke  ~15 s   d=32, 1 layer, 40 steps, 1 seed: the code path, not the claims.
  quick  ~1.5 min d=64, 2 layers (0.13 M params), 400 steps of batch 32, 1 seed: SFT-CoT test accuracy 2 %
                 (far below the 35–60 % calibration band: too small and too short to learn the arithmetic).
  paper  d=128, 3 layers (0.65 M params), 3000 steps of batch 32, 3 seeds as a vmap axis: about 1.4 steps/s for one
         seed (≈ 7 k padded tokens/s), so ≈ 36 min per seed. 1200 steps at lr 1e-3 gave 3.9 % test accuracy.
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0  # root key: domain splits (numpy, seeded by it) and model inits/batches (folded from it)
    c.num_seeds = 1  # model seeds, a vmap axis

    c.data = ml_collections.ConfigDict()
    c.data.n_train = 20_000  # training pool (lengths 2..6, stratified)
    c.data.n_val = 500
    c.data.n_test = 1000
    c.data.n_ood = 500  # lengths 7..8
    c.data.n_distractors = (0, 2)  # distractor facts per problem, uniform in [lo, hi]
    c.data.restate_prob = 0.5  # probability that a stated quantity gets a restating sub-question
    c.data.max_value = 99  # every quantity in 1..max_value (numbers are single tokens 0..99)
    c.data.max_literal = 20  # literals of +/- in 1..max_literal (x and / in 2..min(9, max_literal))

    c.model = ml_collections.ConfigDict()
    c.model.d_model = 128
    c.model.n_layers = 3
    c.model.n_heads = 4
    c.model.max_len = 256  # position table; every sequence must fit

    c.train = ml_collections.ConfigDict()
    c.train.steps = 3000
    c.train.batch_size = 32
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 100
    c.train.weight_decay = 0.05  # spec §3 [S]
    c.train.log_every = 100
    c.train.checkpoint_every = 500

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 250  # problems per generation call

    if preset == "smoke":
        c.data.n_train, c.data.n_val, c.data.n_test, c.data.n_ood = 256, 16, 32, 16
        c.model.d_model, c.model.n_layers, c.model.n_heads = 32, 1, 2
        c.train.steps, c.train.batch_size, c.train.warmup_steps = 40, 8, 5
        c.train.log_every, c.train.checkpoint_every = 10, 20
        c.eval.batch_size = 32
    elif preset == "quick":
        c.data.n_train, c.data.n_val, c.data.n_test, c.data.n_ood = 5000, 200, 400, 200
        c.model.d_model, c.model.n_layers, c.model.n_heads = 64, 2, 4
        c.train.steps, c.train.warmup_steps = 400, 40
        c.train.log_every, c.train.checkpoint_every = 50, 200
        c.eval.batch_size = 200
    elif preset == "paper":
        c.num_seeds = 3
    return c
