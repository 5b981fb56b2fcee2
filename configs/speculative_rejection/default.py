"""speculative_rejection: Best-of-N against Speculative Rejection on the synthetic Topic-Keyword Language.

Launch (from the repository root):
    python -m projects.speculative_rejection.main --config=configs/speculative_rejection/default.py:quick \
        --workdir=runs/speculative_rejection
Override any field, e.g. `--config.experiment.num_prompts=100 --config.experiment.alphas='(0.5,)'`.
Real checkpoints instead of the synthetic models: configs/speculative_rejection/real_models.py.

Presets (2 CPU cores, measured times in projects/speculative_rejection/README.md):
  smoke  seconds: tiny models, 4 prompts, N0 = 4; the code path only.
  quick  generator d=64 (2 layers, 400 steps of 32 sequences), RM d=64 (initialised from the generator, 400 steps
         on 8192 complete responses), 16 prompts, N0 = 16, Best-of-N up to 32·N0 = 512, α ∈ {0.1, 0.3, 0.5, 0.7, 0.9}.
  paper  the spec's §5.3 sizes: generator d=128 (2 layers, ≈0.4M parameters, 600 steps of 64 sequences), RM of
         the same shape trained on 16k complete responses, 80 prompts (the paper: 100), α ∈ {0.1, …, 0.9}.
  Measured run times are in projects/speculative_rejection/README.md.

The memory budget is M = N0·(5 + T_max) KV slots (one Best-of-N device holds N0 full-length rows); Speculative
Rejection starts with b0 = min(b_cap, ⌊M/(5 + τ_min)⌋) rows, b_cap = 8·N0 (the official code's 1000 vs its
Best-of-N batch of 120).
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0
    c.max_new_tokens = 128  # T_max (paper: 2048)

    c.language = ml_collections.ConfigDict(dict(
        z_a=2.0, z_b=3.0, epsilon=0.5, p_stay=0.6, hazard_before=0.004, hazard_lo=0.01, hazard_hi=0.04,
        grammar_seed=1234))

    train = dict(steps=600, batch_size=64, learning_rate=3e-3, weight_decay=0.01, log_every=100)
    c.generator = ml_collections.ConfigDict(dict(d_model=128, n_layers=2, n_heads=4, train=dict(train)))
    c.reward_model = ml_collections.ConfigDict(dict(
        d_model=128, n_layers=2, n_heads=4, num_samples=16384, samples_per_prompt=16,
        append_eos=True,  # score prefixes "as if complete" (ArmoRM's template closes the turn)
        init_from_generator=True,  # backbone from the generator (RLHF RMs start from the SFT model)
        train=dict(train)))

    c.experiment = ml_collections.ConfigDict(dict(
        num_prompts=80, prompt_seed=2024,  # the paper used 100; 80 keeps the paper preset near 20 CPU minutes
        device_batch=16,  # N0: rows one Best-of-N device holds at full length
        bon_multiples=(1, 2, 4, 8, 16, 32),  # Best-of-N for N = N0·k (all from one set of N0·32 samples)
        alphas=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        b_cap_multiple=8, tau_min=8, bucket=16,
        reprefill=False,  # True: re-prefill survivors after each rejection, as the official code (costed too)
        # which rows each rejection ranks: "active" (this round's rows) or "with_finished" (also the finished rows
        # the last ranking kept, as the official code); see lib.decoding.speculative_rejection and the README
        rank_pool="active",
        temperature=1.0, top_k=0,
        wall_prompts=4,  # prompts timed for the CPU wall-clock cost (a second, compiled pass)
        correlation_prompts=16, correlation_taus=(4, 8, 16, 32, 64)))

    c.cost = ml_collections.ConfigDict(dict(
        paper_max_new_tokens=2048,  # lengths scale by 2048 / T_max
        paper_device_batch=120,  # rows scale by 120 / N0
        weight_bytes_gen=16e9, weight_bytes_rm=16e9, params_gen=8e9, params_rm=8e9,
        kv_bytes_per_token=128 * 1024, bandwidth=3.35e12, flops_per_s=0.5 * 989e12))

    # real checkpoints instead of the synthetic models (configs/speculative_rejection/real_models.py)
    c.real = ml_collections.ConfigDict(dict(enabled=False, generator_dir="", reward_dir="", prompts_file="",
                                            num_prompts=8, max_prompt_tokens=16))
    # the generator scored by its own −perplexity (configs/speculative_rejection/self_reward.py)
    c.self_reward = ml_collections.ConfigDict(dict(
        enabled=False, model="", prompts_file="", num_prompts=12, max_prompt_tokens=64,
        prompt_kv_shared=True,  # the budget M counts response tokens (rows share the prompt's KV)
        score_chunk=8, length_bucket=16))  # rows per scoring call, scored lengths padded to a multiple of this

    if preset == "quick":
        c.generator.update(dict(d_model=64))
        c.generator.train.update(dict(steps=400, batch_size=32, learning_rate=5e-3))
        c.reward_model.update(dict(d_model=64, num_samples=8192))
        c.reward_model.train.update(dict(steps=400, batch_size=32, learning_rate=3e-3))
        c.experiment.update(dict(num_prompts=16, alphas=(0.1, 0.3, 0.5, 0.7, 0.9), wall_prompts=2,
                                 correlation_prompts=8))
    elif preset == "smoke":
        c.max_new_tokens = 32
        c.generator.update(dict(d_model=32, n_heads=2))
        c.generator.train.update(dict(steps=20, batch_size=16, log_every=10))
        c.reward_model.update(dict(d_model=32, n_heads=2, num_samples=256))
        c.reward_model.train.update(dict(steps=20, batch_size=16, log_every=10))
        c.experiment.update(dict(num_prompts=4, device_batch=4, bon_multiples=(1, 2, 4), alphas=(0.0, 0.5),
                                 tau_min=4, bucket=8, wall_prompts=1, correlation_prompts=2, correlation_taus=(4, 8)))
    return c
