"""autoprm: controllable question decomposition, process supervision by expert iteration, context-guided decoding.

Paper: Chen, Zhao, Zhu, Zhang, Li, Raj, Yao, "AutoPRM: Automating Procedural Supervision for Multi-Step Reasoning via
Controllable Question Decomposition" (NAACL 2024, arXiv 2402.11452). No code exists; the method is the
reconstruction of `shared/papers/autoprm.md`, the domain is `lib/arith_domain.py` (spec §5.2).

Launch (from the repository root):
    python -m projects.autoprm.main --config=configs/autoprm/default.py:quick --workdir=runs/autoprm

Presets (2 CPU cores shared with other work; runtimes in projects/autoprm/README.md):
  smoke  seconds: d=32, 1 layer, 30 SFT steps, 1 EI round of 2 methods, tiny splits: the code path, not the claims.
  quick  ≈ 3 min of CPU: d=64, 2 layers, 200 SFT steps, one EI round of 4 methods on 48 problems, 1 seed. Far too
         small to learn the domain: it runs the whole pipeline; the claims report what it measured (they fail).
  paper  the calibrated scale (README): d=128, 2 layers, 3 seeds as a vmap axis in SFT, 2 EI rounds per method,
         the stages after SFT in 2 worker processes (one per core).
         AutoPRM-PG, our group-baseline policy-gradient addition, runs when `autoprm_pg` is added to ei.methods.
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0  # root key: domain splits (numpy, seeded by it) and model inits/batches (folded from it)
    c.num_seeds = 1  # model seeds: a vmap axis in SFT, a loop afterwards
    # processes for the stages after SFT (verifiers, EI methods, evaluations), each single-threaded, sharing the
    # workdir's stage cache; the results do not depend on it (every stage's keys are fixed by seed and method)
    c.workers = 1
    c.xla_cpu_threads = "single"  # XLA's CPU threads in the main process (harness/runtime.py): "single" | "default"
    c.eps_star = 0.8  # the QD granularity used by SFT-Decomp, AutoPRM and its variants (the paper's optimum [S])

    c.data = ml_collections.ConfigDict()
    c.data.n_train = 20_000  # training pool (stratified over data.lengths)
    c.data.n_val = 200
    c.data.n_test = 500
    c.data.n_ood = 300
    c.data.lengths = (2, 3, 4, 5)  # in-distribution chain lengths (train/val/test)
    c.data.ood_lengths = (6, 7)  # the OOD-length split
    c.data.n_distractors = (0, 1)  # distractor facts per problem, uniform in [lo, hi]
    c.data.restate_prob = 0.5  # probability that a stated quantity gets a restating sub-question
    c.data.max_value = 19  # every quantity in 1..max_value (numbers are single tokens); calibrated, see README
    c.data.max_literal = 5  # literals in 1..max_literal (x and / in 2..max_literal)

    c.model = ml_collections.ConfigDict()
    c.model.d_model = 128
    c.model.n_layers = 2
    c.model.n_heads = 4
    c.model.max_len = 384  # KV-cache/positions bound; every training sequence and OOD prompt must fit

    c.sft = ml_collections.ConfigDict()
    c.sft.eps_grid = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # ε per QD/QA training row, uniform over the grid
    c.sft.cgd_frac = 0.5  # fraction of QA rows with the next sub-question in context

    c.train = ml_collections.ConfigDict()
    c.train.steps = 1500  # calibrated with the domain: SFT-CoT in the spec's 35–60 % band (README)
    c.train.batch_cot = 16  # rows per step from each task's pool
    c.train.batch_qd = 16
    c.train.batch_qa = 16
    c.train.learning_rate = 2e-3
    c.train.warmup_steps = 100
    c.train.weight_decay = 0.05  # spec §3 [S]
    c.train.length_buckets = 4  # each task's batch drawn from this many length slices of its pool (less padding)
    c.train.log_every = 100
    c.train.checkpoint_every = 500

    c.verifier = ml_collections.ConfigDict()
    c.verifier.d_model = 64
    c.verifier.n_layers = 2
    c.verifier.n_heads = 4
    c.verifier.n_problems = 400  # training problems whose sampled sub-solutions label the verifier
    c.verifier.k = 4  # samples per sub-question
    c.verifier.steps = 400
    c.verifier.batch_size = 64
    c.verifier.learning_rate = 1e-3

    c.ei = ml_collections.ConfigDict()
    # also accepted: "autoprm_pg" (our addition, not the paper's; README); the recorded paper run has the seven below
    c.ei.methods = ("autoprm", "autoprm_nocgd", "autoprm_oraclev", "orm_rl", "prm_rl", "hack_cgd", "hack_nocgd")
    c.ei.rounds = 3
    c.ei.n_problems = 800  # problems per round
    c.ei.k = 4  # samples per sub-question (decomposed) or per problem (CoT baselines): equal samples per problem
    c.ei.temperature = 0.7  # 1.0 gave 27 % correct sampled sub-solutions, 0.7 gives 30 % (README, EI probes)
    c.ei.threshold = 0.5  # verifier reward needed to accept a step
    c.ei.steps = 100  # fine-tuning steps per round (200 at lr 5e-4 lowered validation accuracy: README, EI probes)
    c.ei.batch_size = 32
    c.ei.replay_batch = 8  # rows per step from each SFT pool
    c.ei.learning_rate = 2e-4
    # AutoPRM-PG (group-baseline policy gradient, spec §5.4 item 5, our addition): KL weight β to the SFT model
    # (k3 estimator on the sampled tokens) and the advantage: "mean" (r − mean_k r, the spec's) or "mean_std" (GRPO)
    c.ei.pg_kl = 0.05
    c.ei.pg_adv_norm = "mean"

    c.eval = ml_collections.ConfigDict()
    c.eval.eps_sweep = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    c.eval.batch_rows = 256  # rows per generation call
    c.eval.prompt_bucket = 64  # prompts are left-padded to a multiple of this (fewer compiled shapes)
    c.eval.rerank_m = 4  # reward-reranked search: candidates per step
    c.eval.rerank_tau = 0.2  # abstain when every candidate's verifier probability is below τ
    c.eval.rerank_beams = 2  # beams kept per problem (spec §5.4: top-k = 2; 1 = greedy reranking)
    c.eval.n_rerank = 200  # test problems for the reranked search (0 = skip)
    c.eval.max_subquestions = 10
    c.eval.n_examples = 4  # decoded test problems written to examples.json

    c.distill = ml_collections.ConfigDict()
    c.distill.steps = 1500  # Distilling-LM: QD and QA models with half the layers each, as many steps as SFT (0 = skip)

    if preset == "smoke":
        c.data.n_train, c.data.n_val, c.data.n_test, c.data.n_ood = 128, 8, 16, 8
        c.model.d_model, c.model.n_layers, c.model.n_heads = 32, 1, 2
        c.verifier.d_model, c.verifier.n_layers, c.verifier.n_heads = 16, 1, 2
        c.train.steps, c.train.warmup_steps = 30, 5
        c.train.batch_cot = c.train.batch_qd = c.train.batch_qa = 4
        c.train.log_every, c.train.checkpoint_every = 10, 10
        c.verifier.n_problems, c.verifier.k, c.verifier.steps, c.verifier.batch_size = 8, 2, 10, 8
        c.ei.methods = ("autoprm", "orm_rl")
        c.ei.rounds, c.ei.n_problems, c.ei.k, c.ei.steps, c.ei.batch_size, c.ei.replay_batch = 1, 8, 2, 5, 4, 2
        c.eval.eps_sweep = ()
        c.eval.batch_rows, c.eval.n_rerank, c.eval.n_examples, c.eval.max_subquestions = 16, 4, 2, 6
        c.eval.prompt_bucket = 320
        c.distill.steps = 0
    elif preset == "quick":
        c.data.n_train, c.data.n_val, c.data.n_test, c.data.n_ood = 4000, 48, 120, 60
        c.model.d_model, c.model.n_layers, c.model.n_heads = 64, 2, 4
        c.verifier.d_model, c.verifier.n_layers = 32, 1
        c.train.steps, c.train.warmup_steps = 200, 20
        c.train.log_every, c.train.checkpoint_every = 50, 100
        c.verifier.n_problems, c.verifier.k, c.verifier.steps = 32, 2, 60
        c.ei.methods = ("autoprm", "autoprm_nocgd", "orm_rl", "prm_rl")
        c.ei.rounds, c.ei.n_problems, c.ei.k, c.ei.steps = 1, 48, 2, 20
        c.eval.eps_sweep = (0.0, 0.4, 0.8, 1.0)
        c.eval.n_rerank, c.eval.batch_rows, c.eval.n_examples = 0, 128, 3
        c.distill.steps = 0
    elif preset == "paper":
        c.num_seeds = 3
        c.workers = 2  # the 2 cores, one process each, for everything after SFT
        c.xla_cpu_threads = "default"  # SFT (3 seeds): 0.98-1.13x single, noise (benchmarks/RESULTS.md)
        # kept: "single" sums in another order and would change the recorded SFT models and every result
        # cut to the ≈ 1 h target (README "The paper preset"): 2 EI rounds (the 3-round run's validation accuracy
        # peaked at round 1 and fell after), 300 problems and 50 fine-tuning steps a round (400 and 100 took
        # 77.0 min, this 57.7 min; 50 steps of 32 rows is ≈ 7 passes over a round's ≈ 210 kept AutoPRM chains),
        # reranked search on 100 test problems
        c.ei.rounds, c.ei.n_problems, c.ei.steps, c.eval.n_rerank = 2, 300, 50, 100
        # generation calls of 64 rows with prompts padded to 32 tokens: one EI round's rollouts (400 problems) 18.3 s
        # against 26.5 s at 256 rows / 64 tokens on one core, the same samples (rows keep their keys; README)
        c.eval.batch_rows, c.eval.prompt_bucket = 64, 32
    return c
