"""simnpo parts (b) and (c) on a CPU-sized subset of the real TOFU files (configs/unlearning_tofu.real_tofu_subset).

20 authors (forget01's two + the first 18 others), so 10 % of the fine-tuning authors are forgotten, as in forget10;
the quick preset's model and schedule (d = 64, 1 layer); GA, GD and IDK next to NPO+RT and SimNPO (as at paper), so
that every TOFU claim is decided; relearning on 20 % of the forget set. The Markov part is off (the quick preset
runs it). Needs the TOFU files in `tofu.data_dir` (default ../shared/data/tofu); about 9 minutes on 2 CPU cores.

    python -m projects.simnpo.main --config=configs/simnpo/tofu_subset.py --workdir=runs/simnpo_tofu_subset
"""

import ml_collections

from configs.simnpo import default
from configs.unlearning_tofu import real_tofu_subset


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg or "quick")
    c.parts = ("tofu", "relearn")
    c.tofu.unlearn.methods = ("ga", "gd", "idk", "npo_rt", "simnpo_rt")
    real_tofu_subset(c.tofu, c.relearn)
    return c
