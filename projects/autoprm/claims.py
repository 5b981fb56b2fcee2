"""autoprm's claims (spec §5.7 A1–A7 and the domain calibration), computed from per-problem evaluation results.

Step 1 of the project trains only SFT-CoT, so only the calibration is measured; A1–A7 report holds=None with the
reason. The paper's numbers come from a secondary digest ([S] in the spec) and are marked so.
"""

from __future__ import annotations

import numpy as np

from harness.outputs import claim

CALIBRATION_BAND = (0.35, 0.60)  # spec §5.7: SFT-CoT test accuracy, neither saturated nor hopeless
LENGTH_BINS = {"2-3": (2, 3), "4-5": (4, 5), "6-8": (6, 8)}
NOT_YET = "not measured yet: step 1 of the project trains only SFT-CoT (the domain's calibration)"
PENDING = (
    ("A1", "AutoPRM final accuracy ≥ ORM-RL + 3 pp (3 seeds, paired bootstrap p < 0.05)",
     "GSM8K 59.3 vs PRM-RL 56.1 [S]; ORM-RL lower"),
    ("A2", "AutoPRM ≥ PRM-RL (oracle first-error labels) − 1 pp", "+3.2 pp over PRM-RL on GSM8K [S]"),
    ("A3", "AutoPRM > SFT-Decomp by ≥ 3 pp; validation accuracy rises over expert-iteration rounds",
     "5 EI rounds, best by validation [S]"),
    ("A4", "without context-guided decoding accuracy drops ≥ 1 pp; with a hackable verifier the tampering gap grows "
     "without CGD and stays smaller with it", "CGD best in Table 3 [S]"),
    ("A5", "accuracy against ε peaks in [0.6, 1.0] and beats ε = 0 by ≥ 3 pp", "optimum ε = 0.8 (Fig. 3) [S]"),
    ("A6", "the AutoPRM − SFT-CoT gain is larger for n = 6–8 than for n = 2–3, also on the OOD-length split",
     "gain grows with chain length (Fig. 4) [S]"),
    ("A7", "unified model ≥ Distilling-LM (two models) at equal parameters (reported, not gated)",
     "one model for QD and QA beats two [S]"),
)


def mean_std(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def summarise(prefix: str, runs: list[dict]) -> dict:
    """Accuracy (mean, std over seeds), per-length-bin accuracy, parse failures, first-error position."""
    m = {}
    acc = [r["correct"].mean() for r in runs]
    m[f"{prefix}/accuracy"], m[f"{prefix}/accuracy_std"] = mean_std(acc)
    m[f"{prefix}/parse_fail"] = float(np.mean([r["parse_fail"].mean() for r in runs]))
    m[f"{prefix}/trace_correct"] = float(np.mean([(r["first_error"] == -1).mean() for r in runs]))
    for name, (lo, hi) in LENGTH_BINS.items():
        sel = [r["correct"][(r["n_steps"] >= lo) & (r["n_steps"] <= hi)] for r in runs]
        if all(s.size for s in sel):
            m[f"{prefix}/accuracy_n{name}"] = float(np.mean([s.mean() for s in sel]))
    for n in sorted(set(runs[0]["n_steps"].tolist())):
        m[f"{prefix}/accuracy_len{n}"] = float(np.mean([r["correct"][r["n_steps"] == n].mean() for r in runs]))
    return m


def compute(config, results: dict) -> tuple[dict, list[dict]]:
    """results: split -> list over seeds of `run.evaluate_cot` outputs. Returns (metrics, claims)."""
    metrics: dict = {"num_seeds": config.num_seeds}
    for split, runs in results.items():
        metrics.update(summarise(f"sft_cot/{split}", runs))
    acc, std = metrics["sft_cot/test/accuracy"], metrics["sft_cot/test/accuracy_std"]
    lo, hi = CALIBRATION_BAND
    claims = [claim("calibration", f"SFT-CoT test accuracy lies in [{lo:.0%}, {hi:.0%}] (the domain is neither "
                    "saturated nor hopeless)", paper="spec §5.7 calibration target (no paper number)",
                    ours=f"{100 * acc:.1f} ± {100 * std:.1f} % over {config.num_seeds} seed(s), "
                         f"{len(results['test'][0]['correct'])} test problems "
                         f"(OOD n=7–8: {100 * metrics['sft_cot/ood/accuracy']:.1f} %)",
                    holds=lo <= acc <= hi)]
    claims += [claim(cid, text, paper=paper, ours=NOT_YET, holds=None) for cid, text, paper in PENDING]
    return metrics, claims
