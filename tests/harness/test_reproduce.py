"""projects.reproduce: runs registered projects, reports claims from results.json, never shows a failure as passing."""

import json
import os
import re
import subprocess
import sys

import pytest

from harness import reproduce as runner
from projects import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_registry_lists_all_ten_projects_and_configs_exist():
    """All ten papers are registered; every built one has its config and main module."""
    names = [p.name for p in reproduce.REGISTRY]
    assert len(names) == 10 and len(set(names)) == 10
    for p in reproduce.REGISTRY:
        if p.built:
            assert os.path.exists(os.path.join(ROOT, p.config_path)), p.name
            assert os.path.exists(os.path.join(ROOT, "projects", p.name, "main.py")), p.name


def test_report_shows_failures_and_takes_claims_from_results(tmp_path):
    """A failed run and a false claim never render as holding; claims come from the results, not the registry."""
    outcomes = {"ltb_icl": {"status": "ran", "seconds": 1.0, "plots": [], "claims": [
        {"id": "X.one", "claim": "c", "paper": "p", "ours": "o", "holds": False},
        {"id": "X.two", "claim": "c", "paper": "p", "ours": "o", "holds": None}]}}
    registry = (*reproduce.REGISTRY, runner.Project("unbuilt_example", "a registered paper not built yet"))
    text = open(runner.write_report(registry, outcomes, preset="quick", runs_dir=str(tmp_path))).read()
    assert "❌ does not hold" in text and "`X.two`" in text and "✅" not in text
    assert "| ltb_icl | ran | 0/2 |" in text
    assert "| trust | not run (excluded by --only) |" in text  # built, but not in these outcomes
    assert "| unbuilt_example | not built yet |" in text
    failed = {"ltb_icl": {"status": "failed (exit code 1: boom)", "seconds": 1.0, "claims": []}}
    text = open(runner.write_report(reproduce.REGISTRY, failed, preset="quick", runs_dir=str(tmp_path))).read()
    assert "failed (exit code 1" in text and "✅" not in text
    assert json.load(open(tmp_path / "report.json"))["ltb_icl"]["status"].startswith("failed")


def test_damaged_results_file_reads_as_missing(tmp_path):
    """A truncated results.json (a run killed while another wrote it) is reported as no result, not a crash."""
    path = tmp_path / "results.json"
    path.write_text('{"project": "x", "claims": [')
    assert runner.read_results(str(path)) is None
    path.write_text(json.dumps({"project": "x", "claims": []}))
    assert runner.read_results(str(path)) == {"project": "x", "claims": []}


def test_reproduce_smoke_end_to_end(tmp_path):
    """`python -m projects.reproduce --preset smoke --only nonreactive_exploration` (the quickest smoke run) runs
    and writes runs/report.md."""
    env = dict(os.environ, PYTHONPATH=ROOT, REPROJAX_PROGRESS="0")
    p = "nonreactive_exploration"
    out = subprocess.run([sys.executable, "-m", "projects.reproduce", "--preset", "smoke", "--only", p,
                          "--runs_dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert f"| {p} | ran |" in report
    assert f"![local_coverage.png]({p}/local_coverage.png)" in report
    assert (tmp_path / p / "results.json").exists()
    # the same runs dir with another preset: the child refuses in one line, and the report says how to go on
    out = subprocess.run([sys.executable, "-m", "projects.reproduce", "--preset", "quick", "--only", p,
                          "--runs_dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    report = (tmp_path / "report.md").read_text()
    assert "exit code 2" in report and "--fresh" in report and "Traceback" not in out.stdout


def _reproduce(*args):
    return subprocess.run([sys.executable, "-m", "projects.reproduce", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)


def test_unknown_or_unbuilt_project_is_one_clear_line(tmp_path, capsys):
    """--only with an unknown or a registered-but-unbuilt name exits 2 in one line naming the accepted projects."""
    out = _reproduce("--only", "ltb_icll", "--runs_dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "unknown project(s) ['ltb_icll']" in out.stderr and "ltb_icl" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    # every paper of projects/reproduce.py is built now: an unbuilt one is added to a copy of the registry
    registry = (*reproduce.REGISTRY, runner.Project("unbuilt_example", "a registered paper not built yet"))
    code = runner.main(registry, ["--only", "unbuilt_example", "--runs_dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "['unbuilt_example'] registered but not built yet" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_readme_table_keeps_rows_of_projects_without_results(tmp_path):
    """Refreshing one project's README block rewrites the top table from runs/; a built project with no results
    there keeps its current row instead of turning into "–"."""
    from harness import readme

    text = open(os.path.join(readme.ROOT, "README.md"), encoding="utf-8").read()
    current = readme._current_rows(text)
    rows = readme.project_rows(str(tmp_path), current)
    built = [p.name for p in readme.reproduce.REGISTRY if p.built]
    assert all(current[name] in rows.splitlines() for name in built)


def test_xla_thread_mode_from_config_is_checked_and_the_environment_overrides_it(monkeypatch):
    """A config's xla_cpu_threads must be 'single' or 'default' (one line naming the field); REPROJAX_XLA_THREADS
    overrides it; with JAX already started nothing is changed."""
    from harness import runtime
    from harness.validation import ConfigError

    with pytest.raises(ConfigError, match=re.escape("config.xla_cpu_threads='many' is invalid: expected one of "
                                                    "['single', 'default']")):
        runtime.configure_xla_cpu_threads("many")
    monkeypatch.setenv("REPROJAX_XLA_THREADS", "bogus")
    with pytest.raises(ConfigError, match="REPROJAX_XLA_THREADS='bogus' is invalid"):
        runtime.configure_xla_cpu_threads("default")
    monkeypatch.delenv("REPROJAX_XLA_THREADS")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert runtime.configure_xla_cpu_threads("default") == "default"
