"""simnpo: SimNPO vs NPO vs GA unlearning. Part (a), the mixture-of-Markov-chains experiment (spec
`shared/papers/unlearning.md` §5a); part (b), SimNPO vs NPO+RT on TOFU (`tofu` sub-config, the pipeline shared with
npo: configs/unlearning_tofu.py, projects/npo/tofu.py); part (c), the relearning attack (`relearn`).
`parts` chooses which run.

Launch (from the repository root):
    python -m projects.simnpo.main --config=configs/simnpo/default.py:quick --workdir=runs/simnpo
Override any field, e.g. `--config.markov.cases=memorisation --config.markov.seeds=42,43`,
`--config.parts='("tofu", "relearn")'`.

Presets (2 shared CPU cores, XLA single-threaded):
  smoke  ~35 s   1/10 of the data, d = 32, 1 layer, 2 epochs, 6 unlearning iterations: the code path only
                 (mostly compilation).
  quick  85-105 s both cases, all of the data; the model scaled down to d = 64 and
                 2 layers (the spec's is d = 128, 4 layers: 8× the FLOPs), 3 pretraining epochs (spec 5),
                 evaluation on the first 500 sequences of each test split at 12 of the 51 iterations, 2 model
                 seeds, β sweep NPO {0.2, 1}, SimNPO {4}.
  paper  the spec's full settings: d = 128, 4 layers, 5 epochs, every iteration evaluated on the full test
         splits, 3 model seeds (42, 43, 44), NPO β ∈ {0.05, 0.1, 0.2, 0.5, 1}, SimNPO β ∈ {2, 4, 8}, GA.
         75 s on one H100 (recorded in projects/simnpo/README.md); on 2 CPU cores ≈ 5 min pretraining per
         seed plus the per-iteration evaluations (tens of minutes).
Parts (b) + (c) add (configs/unlearning_tofu.py): smoke NPO+RT and SimNPO on 20 synthetic authors x 4 QA
(~25 s); quick the same on 30 authors x 10 QA, d = 64, 1 layer, 5 epochs, relearning k in {0, 2, 5, 10, 20}
(TOFU_QUICK); paper the real TOFU files with GA/GD/IDK as well and a learning-rate grid per method (an accelerator
run; forget10 took 506 s on one H100 as four parallel processes, see projects/npo/README.md).
"""

import ml_collections

from configs.common import new_config
from configs.unlearning_tofu import relearn_config, tofu_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.parts = ("markov", "tofu", "relearn")

    m = c.markov = ml_collections.ConfigDict()
    m.cases = ("length", "memorisation")  # spec Case A (Forget2 of length 5) and Case B (Forget2 never seen)
    m.num_states = 10
    m.leakage = 0.2
    m.num_retain = 10_000
    m.num_forget1 = 5_000
    m.num_forget2 = 5_000
    m.length = 20  # retain and Forget1 length; Forget2 too in the memorisation case
    m.short_length = 5  # Forget2 length in the length case
    m.test_fraction = 0.2
    m.data_seed = 42
    m.seeds = (42, 43, 44)  # model seeds (init, pretraining order, unlearning batches): a vmap axis

    m.model = ml_collections.ConfigDict()
    m.model.variant = "simnpo_code"  # or "standard" (lib.transformer, pre-LN, multi-head)
    m.model.d_model = 128
    m.model.n_layers = 4
    m.model.n_heads = 4  # used by "standard" only; the code-faithful model has one head over all d dims

    m.pretrain = ml_collections.ConfigDict()
    m.pretrain.lr = 5e-4
    m.pretrain.batch_size = 128
    m.pretrain.epochs = 5
    m.pretrain.adam_eps = 1e-6
    m.pretrain.weight_decay = 0.0

    u = m.unlearn = ml_collections.ConfigDict()
    u.iterations = 50
    u.batch_size = 4
    u.lr = 5e-4
    u.adam_eps = 1e-6
    u.weight_decay = 0.0
    u.npo_betas = (0.05, 0.1, 0.2, 0.5, 1.0)  # spec §5a.6: sweep before asserting the short-sequence claim
    u.simnpo_betas = (2.0, 4.0, 8.0)
    u.ga = True
    # the paper's β per case (App. H); the headline claims compare these runs
    u.npo_beta = ml_collections.ConfigDict({"length": 0.2, "memorisation": 1.0})
    u.simnpo_beta = ml_collections.ConfigDict({"length": 4.0, "memorisation": 4.0})
    u.eval_iters = tuple(range(51))  # iterations at which the KL metrics are computed (0 = before unlearning)
    u.eval_max_seqs = 0  # first n sequences of each test split (0 = all)

    if preset == "smoke":
        m.num_retain, m.num_forget1, m.num_forget2 = 1000, 500, 500
        m.seeds = (42,)
        m.model.d_model = 32
        m.model.n_layers = 1
        m.pretrain.epochs = 2
        m.pretrain.batch_size = 64
        u.iterations = 6
        u.npo_betas = (0.2, 1.0)
        u.simnpo_betas = (4.0,)
        u.eval_iters = (0, 1, 3, 6)
        u.eval_max_seqs = 0
    elif preset == "quick":
        m.seeds = (42, 43)
        m.model.d_model = 64
        m.model.n_layers = 2
        m.pretrain.epochs = 3
        u.npo_betas = (0.2, 1.0)
        u.simnpo_betas = (4.0,)
        u.eval_iters = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50)
        u.eval_max_seqs = 500

    # parts (b) TOFU and (c) relearning: the pipeline shared with npo (configs/unlearning_tofu.py)
    methods = ("ga", "gd", "idk", "npo_rt", "simnpo_rt") if preset == "paper" else ("npo_rt", "simnpo_rt")
    c.tofu = tofu_config(preset, methods=methods)
    c.relearn = relearn_config(preset)
    return c
