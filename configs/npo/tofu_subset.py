"""npo part (b) on a CPU-sized subset of the real TOFU files (configs/unlearning_tofu.real_tofu_subset).

20 authors (forget01's two + the first 18 others), so 10 % of the fine-tuning authors are forgotten, as in forget10;
the quick preset's model and schedule (d = 64, 1 layer); all seven NPO-paper methods. Part (a) is off (the quick
preset runs it). Needs the TOFU files in `tofu.data_dir` (default ../shared/data/tofu); about 9 minutes on 2 CPU
cores.

    python -m projects.npo.main --config=configs/npo/tofu_subset.py --workdir=runs/npo_tofu_subset
"""

import ml_collections

from configs.npo import default
from configs.unlearning_tofu import real_tofu_subset


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg or "quick")
    c.synthetic.enabled = False
    real_tofu_subset(c.tofu)
    return c
