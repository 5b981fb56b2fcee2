"""Every registered project's launcher turns bad input into one line on stderr: exit status 2, the field, the value
and what is accepted, no traceback, nothing written to the workdir. A new project joins by being registered as
built in projects/reproduce.py (and listing here any field where inf is meaningful)."""

import math
import os
import subprocess
import sys

import pytest

from harness import cli
from projects import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILT = [p for p in reproduce.REGISTRY if p.built]
MODULE = {"ltb_icl": "train", "two_hop": "train"}  # the others keep train_and_evaluate in run.py
INF_MEANS_SOMETHING: dict[str, set[str]] = {}  # project -> fields where inf is a documented value
BOUNDED = {  # project -> (field, out-of-range value): fields with an upper bound as well as a lower one
    "ltb_icl": [("data.sigma2", "-1.0")],
    "two_hop": [("train.b2", "1.5"), ("train.b2", "1.0")],
    "npo": [("synthetic.pretrain_lr", "-1.0")],
    "simnpo": [("tofu.unlearn.epochs", "0")],
    "speculative_rejection": [("experiment.alphas", "(0.5, 1.5)")],
    "trust": [("delta", "1.5"), ("delta", "0.0")],
    "nonreactive_exploration": [("design.beta", "-1.0")],
    "nes": [("data.resolution", "0"), ("data.resolution", "1024"), ("train.fg_fraction", "1.5")],
    "autoprm": [("data.restate_prob", "1.5"), ("eps_star", "1.5"), ("data.max_value", "100")],
    "spreeze": [("sac.gamma", "1.0"), ("sac.tau", "0.0"), ("system.n_samplers", "0"), ("fused.learning_rate", "2.0")],
}


def _launch(project, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REPROJAX_HUGE_PAGES", "0")  # never re-exec the test process
    monkeypatch.chdir(ROOT)
    try:
        cli.launch(project, module=MODULE.get(project, "run"), argv=argv)
    except SystemExit as e:
        return e.code, capsys.readouterr().err.strip()
    pytest.fail(f"{project} accepted {argv} and ran")


def _smoke(p):
    return f"--config={p.config_path}:smoke"


def _leaves(config, kind, prefix=""):
    for k, v in config.items():
        if hasattr(v, "items"):
            yield from _leaves(v, kind, f"{prefix}{k}.")
        elif isinstance(v, kind) and not isinstance(v, bool):
            yield f"{prefix}{k}"


def _assert_refused(code, err, workdir, *needles):
    assert code == 2, err
    assert 1 <= len(err.splitlines()) <= 2 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not os.path.exists(workdir), "bad input must write nothing"


@pytest.mark.parametrize("p", BUILT, ids=lambda p: p.name)
def test_config_and_flag_errors_are_one_line(p, tmp_path, capsys, monkeypatch):
    """Typos, an unknown preset, a missing file, a bad type, a group set as a value, a workdir that is a file."""
    wd = str(tmp_path / "wd")
    int_field = next(_leaves(cli.load_config(f"{os.path.join(ROOT, p.config_path)}:smoke"), int))
    cases = [
        ([_smoke(p), "--config.presett=quick"], ["config.presett is not a field", "did you mean config.preset"]),
        ([_smoke(p), "--config.nosuchgroup.x=1"], ["config.nosuchgroup is not a field", "config has:"]),
        ([f"--config={p.config_path}:quik"], ["preset 'quik'", "smoke"]),
        ([f"--config=configs/{p.name}/nope.py:smoke"], ["no config file", "nope.py"]),
        ([_smoke(p), f"--config.{int_field}=abc"], [f"config.{int_field}='abc'", "an integer"]),
        ([_smoke(p), "--bogus"], ["unknown argument '--bogus'"]),
    ]
    for argv, needles in cases:
        code, err = _launch(p.name, [*argv, f"--workdir={wd}"], tmp_path, capsys, monkeypatch)
        _assert_refused(code, err, wd, *needles)
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _launch(p.name, [_smoke(p), f"--workdir={afile}"], tmp_path, capsys, monkeypatch)
    assert code == 2 and "is a file" in err and len(err.splitlines()) == 1
    assert afile.read_text() == "x"


@pytest.mark.parametrize("p", BUILT, ids=lambda p: p.name)
def test_every_float_field_refuses_inf_and_nan(p, tmp_path, capsys, monkeypatch):
    """Non-finite numbers are refused in every float field of the smoke config unless the field means them."""
    config = cli.load_config(f"{os.path.join(ROOT, p.config_path)}:smoke")
    fields = [f for f in _leaves(config, float) if f not in INF_MEANS_SOMETHING.get(p.name, set())]
    assert fields, "expected float fields"
    wd = str(tmp_path / "wd")
    for field in fields:
        for value in ("inf", "nan"):
            code, err = _launch(p.name, [_smoke(p), f"--config.{field}={value}", f"--workdir={wd}"], tmp_path,
                                capsys, monkeypatch)
            _assert_refused(code, err, wd, f"config.{field}", value)
    assert math.isinf(float("inf"))


@pytest.mark.parametrize("p", BUILT, ids=lambda p: p.name)
def test_bounded_fields_have_both_bounds(p, tmp_path, capsys, monkeypatch):
    """A value past a field's documented range is refused with the range."""
    wd = str(tmp_path / "wd")
    for field, value in BOUNDED[p.name]:
        code, err = _launch(p.name, [_smoke(p), f"--config.{field}={value}", f"--workdir={wd}"], tmp_path, capsys,
                            monkeypatch)
        _assert_refused(code, err, wd, f"config.{field}")


@pytest.mark.parametrize("p", BUILT, ids=lambda p: p.name)
def test_launcher_subprocess_typo_is_one_line(p, tmp_path):
    """The real `python -m projects.<p>.main` with a typo: exit 2, one stderr line with the close match, no
    traceback, no workdir."""
    wd = tmp_path / "wd"
    out = subprocess.run([sys.executable, "-m", f"projects.{p.name}.main", _smoke(p), "--config.presetd=quick",
                          f"--workdir={wd}"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT, REPROJAX_HUGE_PAGES="0"))
    err = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert "config.presetd is not a field" in err[0] and "did you mean config.preset" in err[0]
    assert not wd.exists()


def test_registry_and_battery_agree():
    """Every built project has its bounded-field cases here, so a new project cannot join without them."""
    assert set(BOUNDED) == {p.name for p in BUILT}


def test_launcher_imports_no_jax_before_choosing_threads():
    """harness.cli (and what it imports) must not start JAX: XLA reads its thread flags when JAX starts."""
    out = subprocess.run([sys.executable, "-c", "import sys, harness.cli; print('jax' in sys.modules)"], cwd=ROOT,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.stdout.strip() == "False", out.stderr
