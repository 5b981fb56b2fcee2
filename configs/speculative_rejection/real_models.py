"""speculative_rejection with local checkpoints: a generator (gpt2 / llama / mistral / qwen2) and a Llama-family
reward model with a scalar head (`*ForSequenceClassification`, num_labels = 1), sharing one vocabulary.

    python -m projects.speculative_rejection.main --config=configs/speculative_rejection/real_models.py:quick \
        --workdir=runs/speculative_rejection_real \
        --config.real.generator_dir=/path/to/generator --config.real.reward_dir=/path/to/reward_model \
        --config.real.prompts_file=prompts.txt      # one prompt per line; needs the generator's tokenizer.json

Nothing is downloaded. Without `prompts_file`, random-token prompts are used (for smoke tests on random
checkpoints). On 2 CPU cores a 124M-parameter GPT-2 decodes about 2–3 steps/s at batch 64, so the presets are
small: smoke (N0 = 4, 16 new tokens, 2 prompts), quick (N0 = 8, 64 new tokens, 8 prompts), paper (N0 = 16,
128 new tokens, 32 prompts). There is no gold reward: scores are the selecting reward model's, as in the paper.
"""

import os

from configs.speculative_rejection import default


def get_config(arg: str | None = None):
    c = default.get_config(arg)
    c.real.enabled = True
    c.real.generator_dir = os.environ.get("REPROJAX_SPR_GENERATOR", "")
    c.real.reward_dir = os.environ.get("REPROJAX_SPR_REWARD", "")
    c.experiment.alphas = (0.0, 0.5, 0.9)
    c.experiment.wall_prompts = 0
    if c.preset == "smoke":
        c.max_new_tokens, c.real.num_prompts = 16, 2
        c.experiment.update(dict(device_batch=4, bon_multiples=(1, 2, 4), tau_min=4))
    elif c.preset == "quick":
        c.max_new_tokens, c.real.num_prompts = 64, 8
        c.experiment.update(dict(device_batch=8, bon_multiples=(1, 2, 4, 8), tau_min=8))
    else:
        c.max_new_tokens, c.real.num_prompts = 128, 32
        c.experiment.update(dict(device_batch=16, bon_multiples=(1, 2, 4, 8), tau_min=8))
    return c
