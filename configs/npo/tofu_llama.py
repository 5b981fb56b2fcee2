"""npo part (b) with real weights: unlearn a local Llama-family checkpoint on TOFU (spec §5c).

The checkpoint (config.json + *.safetensors + tokenizer.json, e.g. Llama-2-7b-chat, Llama-3.2-1B-Instruct,
TinyLlama) is loaded with lib.hf_import.load_model and its tokenizer with lib.text.HFQAFormat (TOFU's
Llama-2-chat template "[INST] {question} [/INST]"); nothing is downloaded. The pipeline is the same as the
tiny-model one: fine-tune the checkpoint on TOFU `full` (5 epochs, lr 1e-5, batch 32, as TOFU), fine-tune the
retain90 models from the same checkpoint, then GA/GD/KL/IDK/DPO/NPO/NPO+RT on forget10 for 10 epochs (lr 1e-5,
β = 0.1) with FQ/MU per epoch. Part (a) is switched off.

    python -m projects.npo.main --config=configs/npo/tofu_llama.py:paper \
        --config.tofu.checkpoint=/path/to/llama --workdir=runs/npo_llama

Scale note: a 1B model trains on one accelerator; a 7B model needs ~13.5 GB in bf16 for the weights alone and
several accelerators for fine-tuning. `smoke` keeps the real-TOFU protocol's fields but is meant for the tests'
tiny random checkpoint (tests/projects/test_unlearning_tofu.py).
For Llama-3 chat checkpoints set --config.tofu.hf.prompt_template / bos_token / eos_token to that template's.
"""

import ml_collections

from configs.npo import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.synthetic.enabled = False
    t = c.tofu
    t.source = "tofu"
    t.checkpoint = "/path/to/llama"  # set --config.tofu.checkpoint; validation names this field if it is missing
    t.pretrain_mix = False  # real weights already know real authors / world facts
    t.model.max_len = 0  # auto: the longest TOFU row
    t.retain_seeds = (0,)
    t.forget_splits = ("forget10",)
    t.finetune.update(dict(epochs=5, batch_size=32, lr=1e-5, warmup_epochs=1, weight_decay=0.01, seed=0))
    t.unlearn.epochs = 10
    t.unlearn.batch_size = 32
    t.unlearn.lr = ml_collections.ConfigDict({m: 1e-5 for m in t.unlearn.lr})
    for m in t.unlearn.lr_grid:  # one lr per method (the tiny model's grid would not suit real weights)
        t.unlearn.lr_grid[m] = ()
    t.eval.batch_size = 16
    if c.preset == "smoke":
        t.source = "synthetic"
        t.unlearn.methods = ("npo_rt",)
        t.unlearn.epochs = 1
        t.unlearn.warmup_epochs = 0
        t.finetune.warmup_epochs = 0
        t.claims.decide = False
    return c
