"""autoprm's README results block: the claims table, the accuracy of every method, and a few decoded problems.

Called by `python -m harness.readme autoprm` with the run's `results.json` and its directory; the decoded problems
come from the `examples.json` the same run wrote beside it, when it exists."""

from __future__ import annotations

import json
import os

from harness.readme import claims_table

ROWS = (("SFT-CoT", "sft_cot"), ("SFT-Decomp (ε*)", "sft_decomp"), ("AutoPRM", "autoprm"),
        ("AutoPRM − CGD", "autoprm_nocgd"), ("AutoPRM-oracleV", "autoprm_oraclev"), ("ORM-RL", "orm_rl"),
        ("PRM-RL (oracle first error)", "prm_rl"), ("Distilling-LM (two models)", "distill"),
        ("AutoPRM + reranked search (abstain = wrong)", "rerank"),
        ("AutoPRM-PG (GRPO-style; our addition, not the paper's)", "autoprm_pg"))


def _cell(m: dict, key: str) -> str:
    if f"{key}/accuracy" not in m:
        return "–"
    return f"{100 * m[f'{key}/accuracy']:.1f} ± {100 * m.get(f'{key}/accuracy_std', 0.0):.1f}"


def render(results: dict, run_dir: str | None = None) -> str:
    m = results["metrics"]
    out = [claims_table(results), "", "| method | test accuracy (%) | OOD-length accuracy (%) | step accuracy (test) |",
           "|---|---|---|---|"]
    for label, key in ROWS:
        if f"{key}/test/accuracy" not in m:
            continue
        step = m.get(f"{key}/test/step_acc")
        out.append(f"| {label} | {_cell(m, key + '/test')} | {_cell(m, key + '/ood')} | "
                   f"{'–' if step is None else f'{100 * step:.1f}'} |")
    extra = []
    if "verifier/auroc" in m:
        extra.append(f"learned verifier: held-out AUROC {m['verifier/auroc']:.3f}, accuracy "
                     f"{100 * m['verifier/heldout_acc']:.1f} % on {int(m['verifier/n_examples'])} labelled steps "
                     f"({100 * m['verifier/pos_frac']:.0f} % correct)")
    if "rerank/test/abstain" in m:
        extra.append(f"reranked search abstained on {100 * m['rerank/test/abstain']:.1f} % of problems; accuracy on "
                     f"the answered ones {100 * m['rerank/test/answered_correct']:.1f} % (all problems)")
    secs = m.get("time/total_seconds")
    if secs is not None:
        extra.append(f"wall time {secs / 60:.1f} min (SFT {m.get('time/sft_seconds', 0) / 60:.1f} min)")
    if extra:
        out += ["", "; ".join(extra) + "."]
    path = os.path.join(run_dir, "examples.json") if run_dir else ""
    if path and os.path.exists(path) and "autoprm/test/accuracy" in m:  # AutoPRM's own decoded problems
        examples = json.load(open(path, encoding="utf-8"))
        if examples:
            out += ["", f"Decoded test problems ({results['preset']} preset, greedy, ε* = 0.8; the model's own "
                    "sub-questions and sub-solutions):", "", "```"]
            for ex in examples:
                out.append(f"{ex['problem']}   [gold {ex['gold']}, {'right' if ex['correct'] else 'wrong'}]")
                out += [f"    {q}  →  {s}" for q, s in zip(ex["subquestions"], ex["subsolutions"], strict=False)]
            out.append("```")
    return "\n".join(out)
