"""npo experiments: part (a) synthetic, part (b) TOFU (the pipeline in projects/npo/tofu.py, which simnpo imports).

`validate(config)` checks every field read here; `train_and_evaluate(config, workdir)` runs each enabled part,
each saving its finished pieces under `workdir/<part>/` so that a rerun resumes, then writes the claims, the plots
and `results.json`. A new part (e.g. `tofu`) adds a `_validate_<part>` and a `_run_<part>` returning
(metrics, claims, plots) and registers itself in PARTS.
"""

from __future__ import annotations

import time

from harness import outputs, validation
from lib.metrics import progress
from projects.npo import claims as claims_lib
from projects.npo import plots, synthetic
from projects.npo import tofu as tofu_lib

ALPHAS = (1.0, 0.0)  # the spec's learning-rate table defines only these
KINDS_WITH_LR = synthetic.KINDS
KINDS_WITH_BETA = ("npo", "npo_rt", "dpo_rt")  # GA, GA+RT and IDK+RT have no β


def _is_bool(v) -> bool:
    return isinstance(v, bool)


def _validate_synthetic(config) -> None:
    s = config.synthetic
    validation.require(_is_bool(s.enabled), "synthetic.enabled", s.enabled, "True or False")
    validation.require_sequence(config, "synthetic.seeds", item_desc="distinct integers >= 0",
                            item_ok=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    validation.require(len(set(s.seeds)) == len(s.seeds), "synthetic.seeds", s.seeds, "distinct integers >= 0")
    validation.require_sequence(config, "synthetic.alphas", item_desc=f"values in {list(ALPHAS)}",
                            item_ok=lambda v: v in ALPHAS)
    for f in ("dim", "num_features", "num_forget", "num_retain", "num_eval", "pretrain_steps"):
        validation.require_int(config, f"synthetic.{f}", min_value=1)
    validation.require_float(config, "synthetic.pretrain_lr", min_value=0.0, strict=True)
    every = validation.require_int(config, "synthetic.eval_every", min_value=1)
    steps = validation.require_int(config, "synthetic.steps", min_value=4 * every)
    validation.require(steps % every == 0, "synthetic.steps", steps, f"a multiple of synthetic.eval_every={every}")
    validation.require_sequence(config, "synthetic.methods", item_desc=f"distinct names in {list(synthetic.KINDS)}",
                            item_ok=lambda v: v in synthetic.KINDS)
    validation.require(len(set(s.methods)) == len(s.methods), "synthetic.methods", s.methods,
                   f"distinct names in {list(synthetic.KINDS)}")
    validation.require_float(config, "synthetic.forget_threshold", min_value=0.0, strict=True)
    validation.require_int(config, "synthetic.forget_within", min_value=0)
    for tag in ("alpha1", "alpha0"):  # every entry of the tables, and one for each method that needs it
        for table, needs in (("lr", KINDS_WITH_LR), ("beta", KINDS_WITH_BETA)):
            field = f"synthetic.{table}_{tag}"
            for kind in s.methods:
                validation.require(kind not in needs or kind in s[f"{table}_{tag}"], field, dict(s[f"{table}_{tag}"]),
                                   f"an entry for every method in {list(needs)} (missing {kind!r})")
            for kind in s[f"{table}_{tag}"]:
                validation.require_float(config, f"{field}.{kind}", min_value=0.0, strict=True)
    d = s.drift
    validation.require(_is_bool(d.enabled), "synthetic.drift.enabled", d.enabled, "True or False")
    validation.require_choice(config, "synthetic.drift.alpha", ALPHAS)
    validation.require_float(config, "synthetic.drift.lr", min_value=0.0, strict=True)
    every = validation.require_int(config, "synthetic.drift.eval_every", min_value=1)
    steps = validation.require_int(config, "synthetic.drift.steps", min_value=4 * every)
    validation.require(steps % every == 0, "synthetic.drift.steps", steps,
                   f"a multiple of synthetic.drift.eval_every={every}")
    validation.require_sequence(config, "synthetic.drift.betas", item_desc="numbers > 0",
                            item_ok=lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)


def validate(config) -> None:
    """Checks every field this project reads; raises ConfigError naming field, value and what is accepted."""
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    for name, (check, _) in PARTS.items():
        validation.require(name in config, name, None, f"a `{name}` sub-config (configs/npo/default.py)")
        check(config)
    validation.require(any(config[name].enabled for name in PARTS), "synthetic.enabled", config.synthetic.enabled,
                   "True when tofu.enabled is False")


def _run_synthetic(config, workdir: str):
    s = config.synthetic
    n = len(set(list(s.alphas) + ([s.drift.alpha] if s.drift.enabled else [])))
    with progress(n, desc="npo synthetic", unit="α") as bar:
        synth = synthetic.run_part(s, workdir, bar=bar)
    metrics, claims = claims_lib.compute(config, synth)
    return metrics, claims, plots.make_all(config, workdir, synth)


def _run_tofu(config, workdir: str):
    """Part (b): fine-tuned and retain models, calibration, GA/GD/KL/IDK/DPO/NPO/NPO+RT on TOFU (shared pipeline)."""
    t = config.tofu
    res = tofu_lib.run_tofu(config, workdir)
    metrics = tofu_lib.tofu_metrics(res, t)
    metrics["tofu/data"] = res["data_source"]
    metrics["tofu/model"] = res["model"]
    claims = [
        tofu_lib.calibration_claim(res, t),
        tofu_lib.beats_claim(res, t, "npo_rt", ("ga", "gd", "idk"), claim_id="T.npo_rt_beats_ga_gd_idk",
                             paper="NPO paper Fig. 5: in forget10 NPO+RT is the only method with FQ > 0.05; SimNPO "
                                   "Table 1 forget10: NPO 0.29 vs GA 2.2e-16, GradDiff 3.7e-15, IDK 2.9e-14"),
        tofu_lib.ga_collapse_claim(res, t),
    ]
    return metrics, claims, tofu_lib.tofu_plots(workdir, res)


PARTS = {"synthetic": (_validate_synthetic, _run_synthetic),
         "tofu": (lambda config: tofu_lib.validate_tofu(config), _run_tofu)}


def seeds(config) -> list[int]:
    out = [int(x) for x in config.synthetic.seeds] if config.synthetic.enabled else []
    if config.tofu.enabled:  # the TOFU fine-tuning seeds (original model, retain models)
        for x in (config.tofu.finetune.seed, *config.tofu.retain_seeds):
            if int(x) not in out:
                out.append(int(x))
    return out


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs (or resumes) every enabled part; writes `results.json` and the plots into workdir."""
    validate(config)
    t0 = time.time()
    metrics, claims, plot_files = {}, [], []
    for name, (_, run_part) in PARTS.items():
        if config[name].enabled:
            m, c, p = run_part(config, workdir)
            metrics.update(m)
            claims += c
            plot_files += p
    metrics["total_seconds"] = time.time() - t0
    return outputs.write_results(workdir, project="npo", preset=config.preset, seeds=seeds(config),
                                metrics=metrics, claims=claims, plots=plot_files)
