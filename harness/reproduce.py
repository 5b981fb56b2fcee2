"""The runner behind `python -m projects.reproduce` (the registry of projects is `projects/reproduce.py`).

Each project runs in its own process (`python -m projects.<p>.main --config=... --workdir=runs/<p>`), so one
failure does not stop the others; a rerun resumes from the checkpoints in `runs/<p>` (`--fresh` starts over).
The report, `runs/report.md`, lists every claim with the paper's value, ours and whether it holds, as the
project's code computed them into `runs/<p>/results.json`; this module adds no fact of its own.
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
from collections.abc import Sequence

from harness import runtime
from lib.metrics import write_json_atomic


@dataclasses.dataclass(frozen=True)
class Project:
    """A registered paper: its name (`projects/<name>/`), the paper, whether it is built, which module has its
    `train_and_evaluate`, and its main config (default `configs/<name>/default.py`)."""
    name: str
    paper: str
    built: bool = False
    config: str = ""

    @property
    def config_path(self) -> str:
        return self.config or f"configs/{self.name}/default.py"


MARK = {True: "✅ holds", False: "❌ does not hold", None: "– not measurable at this preset"}


def read_results(path: str) -> dict | None:
    """A project's results.json, or None when it is missing or damaged (a run killed before writing it)."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and isinstance(results.get("claims"), list) else None


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
    last = b""
    with open(os.path.join(workdir, "log.txt"), "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=runtime.huge_pages_env())
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk)
            last = (last + chunk)[-2000:]
        code = proc.wait()
    seconds = time.time() - t0
    results = read_results(results_path)
    if code != 0 or results is None:
        lines = [ln for ln in last.decode("utf-8", "replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else "no output"
        hint = "; `--fresh` starts this project over" if code == 2 else ""
        return {"status": f"failed (exit code {code}: {why}; log: {workdir}/log.txt{hint})", "seconds": seconds,
                "claims": []}
    return {"status": "ran", "seconds": seconds, **results}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(registry: Sequence[Project], outcomes: dict[str, dict], *, preset: str, runs_dir: str) -> str:
    lines = [f"# reprojax reproduction report (preset `{preset}`)", "",
             "Every number below was computed by the project's code in this run; `holds` is decided by code.",
             "", "| project | status | claims holding | seconds |", "|---|---|---|---|"]
    for p in registry:
        o = outcomes.get(p.name)
        if o is None:
            status = "not built yet" if not p.built else "not run (excluded by --only)"
            lines.append(f"| {p.name} | {status} | – | – |")
            continue
        n_hold = sum(c["holds"] is True for c in o["claims"])
        lines.append(f"| {p.name} | {_cell(o['status'])} | {n_hold}/{len(o['claims'])} | {o['seconds']:.0f} |")
    for p in registry:
        o = outcomes.get(p.name)
        if o is None:
            continue
        lines += ["", f"## {p.name}", "", p.paper, "", f"Status: {_cell(o['status'])}", ""]
        lines += ["| claim | paper | ours | holds? |", "|---|---|---|---|"]
        for c in o["claims"]:
            lines.append(f"| `{c['id']}`: {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | "
                         f"{MARK[c['holds']]} |")
        for plot in o.get("plots", []):
            lines += ["", f"![{plot}]({p.name}/{plot})"]
    os.makedirs(runs_dir, exist_ok=True)
    path = os.path.join(runs_dir, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    write_json_atomic(os.path.join(runs_dir, "report.json"),
                      {name: {k: o[k] for k in ("status", "seconds", "claims")} for name, o in outcomes.items()})
    return path


def main(registry: Sequence[Project], argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projects.reproduce",
                                     description="Run every built project's preset and write runs/report.md.")
    parser.add_argument("--only", default="", help="comma-separated project names (default: every built one)")
    parser.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--runs_dir", default="runs")
    parser.add_argument("--fresh", action="store_true", help="delete each project's workdir first")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    known = {p.name: p for p in registry}
    built = [p.name for p in registry if p.built]
    names = [n.strip() for n in args.only.split(",") if n.strip()] or built
    unknown = [n for n in names if n not in known]
    if unknown:
        return fail(f"--only={args.only!r} is invalid: unknown project(s) {unknown}; accepted: {built}")
    not_built = [n for n in names if not known[n].built]
    if not_built:
        return fail(f"--only={args.only!r} is invalid: {not_built} registered but not built yet; accepted: {built}")
    if os.path.exists(args.runs_dir) and not os.path.isdir(args.runs_dir):
        return fail(f"--runs_dir={args.runs_dir!r} is invalid: it is a file, expected a directory")
    try:
        # a bad REPROJAX_HUGE_PAGES or REPROJAX_RETAIN_HEAP fails here, once, not in every child
        runtime.huge_pages_env()
        runtime.retain_heap_enabled()
    except ValueError as e:
        return fail(str(e))
    outcomes = {n: run_project(known[n], preset=args.preset, runs_dir=args.runs_dir, fresh=args.fresh)
                for n in names}
    report = write_report(registry, outcomes, preset=args.preset, runs_dir=args.runs_dir)

    print("\n=== summary")
    failed_runs, failed_claims = [], []
    for name, o in outcomes.items():
        for c in o["claims"]:
            if c["holds"] is False:
                failed_claims.append(f"{name}:{c['id']}")
            print(f"  {name:24s} {c['id']:45s} {MARK[c['holds']]}")
        if o["status"] != "ran":
            failed_runs.append(name)
            print(f"  {name}: {o['status']}")
    print(f"\nreport: {report}")
    if failed_runs or (args.strict and failed_claims):
        return 1
    return 0
