"""projects.reproduce: runs registered projects, reports claims, never shows a failure as passing."""

import os
import subprocess
import sys

from projects import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_registry_lists_all_ten_projects_and_configs_exist():
    """All ten papers are registered; every built one has its config and main module."""
    names = [p.name for p in reproduce.REGISTRY]
    assert len(names) == 10 and len(set(names)) == 10
    for p in reproduce.REGISTRY:
        if p.built:
            assert os.path.exists(os.path.join(ROOT, p.config_path)), p.name
            assert os.path.exists(os.path.join(ROOT, "projects", p.name, "main.py")), p.name
            assert p.claims, p.name


def test_report_shows_failures_and_missing_claims(tmp_path):
    """A failed run, a false claim and a claim missing from results never render as holding."""
    ltb = next(p for p in reproduce.REGISTRY if p.name == "ltb_icl")
    outcomes = {"ltb_icl": {"status": "ran", "seconds": 1.0, "plots": [], "claims": [
        {"id": ltb.claims[0], "claim": "c", "paper": "p", "ours": "o", "holds": False}]}}
    text = open(reproduce.write_report(outcomes, preset="quick", runs_dir=str(tmp_path))).read()
    assert "❌ does not hold" in text and "❌ missing" in text and "✅" not in text
    assert "| 0/" in text
    assert "| trust | not run (excluded by --only) |" in text  # built, but not in these outcomes
    failed = {"ltb_icl": {"status": "failed (exit code 1; see log)", "seconds": 1.0, "claims": []}}
    text = open(reproduce.write_report(failed, preset="quick", runs_dir=str(tmp_path))).read()
    assert "failed (exit code 1" in text and "✅" not in text


def test_reproduce_smoke_end_to_end(tmp_path):
    """`python -m projects.reproduce --preset smoke --only ltb_icl` runs and writes runs/report.md."""
    env = dict(os.environ, PYTHONPATH=ROOT, REPROJAX_PROGRESS="0")
    out = subprocess.run([sys.executable, "-m", "projects.reproduce", "--preset", "smoke", "--only", "ltb_icl",
                          "--runs_dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert "| ltb_icl | ran |" in report
    assert "![training_curves.png](ltb_icl/training_curves.png)" in report
    assert (tmp_path / "ltb_icl" / "results.json").exists()


def test_unknown_project_is_a_clear_error():
    """--only with a name that is not registered exits non-zero naming the known projects."""
    out = subprocess.run([sys.executable, "-m", "projects.reproduce", "--only", "ltb_icll"], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    assert out.returncode == 2 and "unknown project(s) ['ltb_icll']" in out.stderr and "ltb_icl" in out.stderr
