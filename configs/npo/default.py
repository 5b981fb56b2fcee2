"""npo: Negative Preference Optimization (Zhang, Lin, Bai, Mei; arXiv 2404.05868).

Part (a), built: the paper's binary-classification synthetic experiment (spec `shared/papers/unlearning.md` §4.1,
§5a′): a random-features logistic model (W ∈ R^{128×16} fixed, only θ ∈ R^128 trained), forget 200 / retain 1000
points, the original model π_ref trained on D_f ∪ D_r and the retrained model π_retr on D_r (full-batch GD from 0,
20,000 steps, lr 0.05), then 2000 full-batch GD unlearning steps per method with the spec's learning-rate table,
forget/retain distance KL(π_retr ‖ π_θ) every 25 steps; plus the ‖θ_t − θ_0‖ drift run (GA vs NPO with
β ∈ {0.01, 0.1, 0.2, 0.5, 1}, lr 5e-4, 10,000 steps). Seeds are a vmap axis.
Part (b), TOFU (`tofu` sub-config, shared with simnpo: configs/unlearning_tofu.py, projects/npo/tofu.py):
fine-tuned + retain models, GA/GD/KL/IDK/DPO/NPO/NPO+RT unlearning with FQ / MU per epoch, the trade-off plot.
Real weights: configs/npo/tofu_llama.py.

Launch (from the repository root):
    python -m projects.npo.main --config=configs/npo/default.py:quick --workdir=runs/npo
Override any field, e.g. `--config.synthetic.alphas='(1.0,)' --config.synthetic.drift.enabled=False`,
`--config.tofu.enabled=False` (part (a) only), `--config.tofu.source=tofu --config.tofu.retain_authors=20` (real TOFU).

Presets (2 CPU cores, measured):
  smoke  ~10 s  2 seeds, α = 1 only, 2000 pre-training steps, 400 unlearning steps, 1000 drift steps: the code path.
  quick  ~55 s  the spec's full synthetic settings: 5 seeds (1000…5000), α ∈ {1, 0}, 20,000 pre-training steps,
                2000 unlearning steps (eval every 25), drift 10,000 steps (eval every 25);
                most of it the 2 × 10 pre-training runs (measured 52 s CPU, 78 s wall on a busy machine).
  paper  ~60 s  as quick with the drift run evaluated every 5 steps (the official README's plot setting).
Part (b) adds (see configs/unlearning_tofu.py): smoke GA + NPO+RT on 20 synthetic authors x 4 QA (~25 s);
quick the seven methods on synthetic TOFU-like data, 30 authors x 10 QA, d = 64, 1 layer, 5 epochs (TOFU_QUICK);
paper the real TOFU files, all 200 authors, forget01/05/10, d = 128, 4 layers, 10 epochs, a learning-rate grid per
method (an accelerator run; forget10 alone took 506 s on one H100 as four parallel processes, see the README).
"""

import ml_collections

from configs.common import new_config
from configs.unlearning_tofu import NPO_METHODS, tofu_config

METHODS = ("ga", "ga_rt", "idk_rt", "npo", "npo_rt", "dpo_rt")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset

    s = c.synthetic = ml_collections.ConfigDict()
    s.enabled = True
    s.seeds = (1000, 2000, 3000, 4000, 5000)  # numpy data seeds of the official code; a vmap axis
    s.alphas = (1.0, 0.0)  # covariate gap μ_f = −μ_r = α·1_d; the spec's table defines α ∈ {1, 0}
    s.dim = 16
    s.num_features = 128
    s.num_forget = 200
    s.num_retain = 1000
    s.num_eval = 1000  # fresh retain and forget evaluation points each
    s.pretrain_steps = 20_000
    s.pretrain_lr = 0.05
    s.steps = 2000
    s.eval_every = 25
    s.methods = METHODS
    s.forget_threshold = 0.005  # "forget distance < 0.005 within 1200 steps" (spec §4.1)
    s.forget_within = 1200
    # Spec §4.1 Table 1: learning rate and β per method and α (GA, GA+RT and IDK+RT have no β).
    s.lr_alpha1 = ml_collections.ConfigDict(dict(ga=5e-4, ga_rt=5e-4, idk_rt=5e-4, npo=5e-3, npo_rt=5e-3, dpo_rt=5e-3))
    s.lr_alpha0 = ml_collections.ConfigDict(dict(ga=1e-4, ga_rt=1e-4, idk_rt=1e-4, npo=5e-2, npo_rt=5e-2, dpo_rt=5e-2))
    s.beta_alpha1 = ml_collections.ConfigDict(dict(npo=1.0, npo_rt=1.0, dpo_rt=0.1))
    s.beta_alpha0 = ml_collections.ConfigDict(dict(npo=10.0, npo_rt=10.0, dpo_rt=5.0))

    d = s.drift = ml_collections.ConfigDict()  # ‖θ_t − θ_0‖ growth, GA vs NPO (Theorem 2; official README)
    d.enabled = True
    d.alpha = 1.0
    d.lr = 5e-4
    d.steps = 10_000
    d.eval_every = 25
    d.betas = (0.01, 0.1, 0.2, 0.5, 1.0)

    if preset == "smoke":
        s.seeds = (1000, 2000)
        s.alphas = (1.0,)
        s.pretrain_steps = 2000
        s.steps = 400
        s.forget_within = 400
        d.steps = 1000
        d.betas = (0.1, 1.0)
    elif preset == "paper":
        d.eval_every = 5

    # part (b): TOFU (shared with simnpo; fields and presets in configs/unlearning_tofu.py)
    c.tofu = tofu_config(preset, methods=NPO_METHODS)
    if preset == "smoke":  # the code path with two methods (one compilation each)
        c.tofu.unlearn.methods = ("ga", "npo_rt")
    return c
