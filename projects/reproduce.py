"""Reproduce every paper's headline claims: run each project's quick preset and write a report.

    python -m projects.reproduce                 # all built projects, quick presets
    python -m projects.reproduce --only ltb_icl  # a subset (comma-separated)
    python -m projects.reproduce --preset smoke  # the code path only (seconds)

Each project runs in its own process (`python -m projects.<p>.main --config=... --workdir=runs/<p>`),
so one failure does not stop the others; a rerun resumes from the checkpoints in `runs/<p>`
(`--fresh` starts over). The report, `runs/report.md`, lists every claim with the paper's value,
ours and whether it holds, computed by the project's code and read from `runs/<p>/results.json`.
A project that failed, or a claim that is missing from its results, is shown as such.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

from projects import common


@dataclasses.dataclass(frozen=True)
class Project:
    name: str
    paper: str
    built: bool = False
    claims: tuple[str, ...] = ()  # the headline claim ids its results.json must contain
    config: str = ""  # defaults to configs/<name>/default.py
    note: str = ""  # for a project that is not (fully) built: what exists (shown beside "built" when it runs)

    @property
    def config_path(self) -> str:
        return self.config or f"configs/{self.name}/default.py"


REGISTRY: tuple[Project, ...] = (
    Project("ltb_icl", "In-Context Learning of a Linear Transformer Block (Zhang, Wu, Bartlett; NeurIPS 2024)",
            built=True, claims=(
                "B2.ltb_reaches_gd_beta_optimum", "B2.lsa_optimal_at_zero_mean", "B2.lsa_additive_gap",
                "B2.lsa_between_gd_beta_and_gd0", "B2.gap_does_not_vanish_with_context", "B2.ltb_is_gd_beta",
                "B0.closed_form_matches_monte_carlo", "B1.gd_beta_trainable_by_gradient_descent",
                "B3.near_bayes_at_moderate_snr")),
    Project("two_hop", "Two-hop reasoning with distractors: 3-layer transformer, phase transition", built=True,
            note="quick (≈3.5 min, d=64, batch 256) and paper (one H100) both meet all 4 transformer claims; the "
                 "LLM side needs a local checkpoint (projects/two_hop/README.md)",
            claims=("TH.abrupt_transition", "TH.random_guessing_plateau", "TH.sequential_query_mechanism",
                    "TH.three_parameter_model", "TH.llm_random_guessing", "TH.llm_finetune_fixes")),
    Project("npo", "Negative Preference Optimization (Zhang, Lin, Bai, Mei; 2024)", built=True,
            note="synthetic part (a) and TOFU part (b); quick runs (b) on the synthetic TOFU-like generator; the "
                 "real-TOFU paper preset (forget10, a learning-rate grid per method) ran on one H100: NPO+RT does not "
                 "beat IDK there, nor on a 20-author real-TOFU subset on the CPU (configs/npo/tofu_subset.py; "
                 "projects/npo/README.md)",
            claims=("S.pretrain_converged", "S.forget_below_threshold", "S.idk_never_forgets", "S.ga_retain_diverges",
                    "S.npo_plateaus", "S.npo_rt_best_tradeoff", "S.npo_beats_ga_without_retain",
                    "S.alpha0_npo_rt_smallest", "S.ga_linear_npo_log_drift", "T.calibration_fq",
                    "T.npo_rt_beats_ga_gd_idk", "T.ga_utility_collapses")),
    Project("simnpo", "Simplicity Prevails: Rethinking NPO for LLM Unlearning (Fan et al.; 2024)", built=True,
            note="Markov chains (a), TOFU (b) and relearning (c); quick runs (b, c) on the synthetic TOFU-like "
                 "generator; the real-TOFU paper preset (forget10) ran on one H100: SimNPO beats neither NPO+RT nor "
                 "IDK there, nor on a 20-author real-TOFU subset on the CPU (configs/simnpo/tofu_subset.py; "
                 "projects/simnpo/README.md)",
            claims=("M.reference_values", "M.reference_values_paper",
                    "M.simnpo_forgets_memorised_more", "M.simnpo_less_overforgetting",
                    "M.simnpo_short_forget2_at_lower_retain", "M.npo_short_sequence", "M.ga_collapses",
                    "T.calibration_fq", "T.simnpo_vs_npo", "T.simnpo_beats_ga_gd_idk", "R.relearning")),
    Project("speculative_rejection", "Fast Best-of-N Decoding via Speculative Rejection (Sun et al.; NeurIPS 2024)",
            built=True, note="quick checks the pipeline (its small reward model is too weak for the claims); the "
                             "paper preset is the experiment (projects/speculative_rejection/README.md)", claims=(
                "SR.speedup_alpha05_roofline", "SR.speedup_alpha05_flops", "SR.gold_win_alpha05",
                "SR.common_random_numbers", "SR.partial_final_correlation", "SR.bon_log_linear")),
    Project("trust", "Reliable Decisions in Data-Starved Bandits via Trust Region Enhancement (Zhang et al.; 2024)",
            built=True, claims=(
                "T1.data_starved_win", "T1.data_starved_win_sigma1", "T2.safety_every_instance",
                "T3.one_sample_certificate", "T4.minimax_certificate_parity", "T5.localization_scaling",
                "T6.complexity_slope_saturation", "T6.solver_matches_slsqp", "T7.equal_counts_nonresult",
                "T8.suite_under_a_minute", "RL.logging_policy_mixture", "RL.improves_on_behaviour")),
    Project("nonreactive_exploration", "Policy Finetuning via Design of Experiments using Offline Data (2023)",
            built=True, claims=(
                "N1.design_targets_low_coverage", "N2.beats_behaviour_and_uniform_in_sparsified_mdp",
                "N3.epsilon_rate", "N4.nonreactive_matches_reactive", "N5.data_efficiency_vs_behaviour",
                "N6.local_coverage", "N7.theory_bonus_degenerates")),
    Project("autoprm", "AutoPRM: question decomposition and RL on sub-question solvers"),
    Project("spreeze", "Spreeze: high-throughput asynchronous actor-critic RL on one machine"),
    Project("nes", "Neural Explicit Surface: pose-dependent 2D maps, rasterized"),
)

MARK = {True: "✅ holds", False: "❌ does not hold", None: "– not measurable at this preset"}


def run_project(p: Project, *, preset: str, runs_dir: str, fresh: bool) -> dict:
    """Runs one project's preset in a subprocess, teeing its output to the console and a log file."""
    workdir = os.path.join(runs_dir, p.name)
    if fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir, exist_ok=True)
    results_path = os.path.join(workdir, "results.json")
    if os.path.exists(results_path):
        os.remove(results_path)  # never report a stale result as this run's
    cmd = [sys.executable, "-m", f"projects.{p.name}.main", f"--config={p.config_path}:{preset}",
           f"--workdir={workdir}"]
    print(f"\n=== {p.name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    with open(os.path.join(workdir, "log.txt"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=common.huge_pages_env())
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk)
        code = proc.wait()
    seconds = time.time() - t0
    if code != 0 or not os.path.exists(results_path):
        return {"status": f"failed (exit code {code}; see {workdir}/log.txt)", "seconds": seconds, "claims": []}
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    return {"status": "ran", "seconds": seconds, **results}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(outcomes: dict[str, dict], *, preset: str, runs_dir: str) -> str:
    lines = [f"# reprojax reproduction report (preset `{preset}`)", "",
             "Every number below was computed by the project's code in this run; `holds` is decided by code.",
             "", "| project | status | claims holding | seconds |", "|---|---|---|---|"]
    for p in REGISTRY:
        o = outcomes.get(p.name)
        if o is None:
            status = (p.note or "not built yet") if not p.built else "not run (excluded by --only)"
            lines.append(f"| {p.name} | {status} | – | – |")
            continue
        n_hold = sum(c["holds"] is True for c in o["claims"])
        status = f"{o['status']} ({p.note})" if p.note else o["status"]
        lines.append(f"| {p.name} | {_cell(status)} | {n_hold}/{len(p.claims)} | {o['seconds']:.0f} |")
    for p in REGISTRY:
        o = outcomes.get(p.name)
        if o is None:
            continue
        lines += ["", f"## {p.name}", "", p.paper, "", f"Status: {o['status']}", ""]
        got = {c["id"]: c for c in o["claims"]}
        lines += ["| claim | paper | ours | holds? |", "|---|---|---|---|"]
        for cid in p.claims + tuple(c for c in got if c not in p.claims):
            c = got.get(cid)
            if c is None:
                lines.append(f"| `{cid}` | – | missing from results | ❌ missing |")
            else:
                lines.append(f"| `{cid}`: {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | "
                             f"{MARK[c['holds']]} |")
        for plot in o.get("plots", []):
            lines += ["", f"![{plot}]({p.name}/{plot})"]
    path = os.path.join(runs_dir, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated project names (default: every built one)")
    parser.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--runs_dir", default="runs")
    parser.add_argument("--fresh", action="store_true", help="delete each project's workdir first")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    args = parser.parse_args(argv)

    known = {p.name: p for p in REGISTRY}
    names = [n.strip() for n in args.only.split(",") if n.strip()] or [p.name for p in REGISTRY if p.built]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"--only: unknown project(s) {unknown}; known: {sorted(known)}")
    not_built = [n for n in names if not known[n].built]
    if not_built:
        print(f"not built yet, skipped: {not_built}")
    outcomes = {n: run_project(known[n], preset=args.preset, runs_dir=args.runs_dir, fresh=args.fresh)
                for n in names if known[n].built}
    report = write_report(outcomes, preset=args.preset, runs_dir=args.runs_dir)

    print("\n=== summary")
    failed_runs, failed_claims = [], []
    for name, o in outcomes.items():
        got = {c["id"]: c for c in o["claims"]}
        for cid in known[name].claims:
            c = got.get(cid)
            holds = None if c is None else c["holds"]
            if c is None or holds is False:
                failed_claims.append(f"{name}:{cid}")
            print(f"  {name:24s} {cid:45s} {'missing' if c is None else MARK[holds]}")
        if o["status"] != "ran":
            failed_runs.append(name)
            print(f"  {name}: {o['status']}")
    print(f"\nreport: {report}")
    if failed_runs or (args.strict and failed_claims):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
