"""A rerun over damaged saved state, through the launcher: a damaged newest checkpoint is passed over for the newest
intact one (one warning line), a damaged saved result (.npz) is recomputed (one warning line naming it), and state
that cannot be recovered ends in one line naming the file (exit 1; exit 2 for a damaged config.json, which is
input). Never a raw BadZipFile, EOFError, JSONDecodeError or TensorStore traceback.

The runs are the smoke presets shrunk further, with each project's claims and plots (and nonreactive_exploration's
30 s compile of its per-seed experiment) replaced by stubs: what is tested here is the I/O of a rerun; the claims
have their own tests in tests/projects/."""

import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from harness import cli
from lib.metrics import read_jsonl, read_npz
from projects.ltb_icl import claims as ltb_claims
from projects.ltb_icl import plots as ltb_plots
from projects.ltb_icl import theory as ltb_theory
from projects.nonreactive_exploration import claims as nre_claims
from projects.nonreactive_exploration import plots as nre_plots
from projects.nonreactive_exploration import run as nre_run
from projects.trust import claims as trust_claims
from projects.trust import plots as trust_plots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch(project, module, argv, capsys, monkeypatch):
    """(exit status, stdout, stderr lines) of one launcher run in this process; every stderr line is one of ours:
    a warning or the launcher's one-line error (no traceback, no library's own report)."""
    monkeypatch.setenv("REPROJAX_HUGE_PAGES", "0")  # never re-exec the test process
    monkeypatch.chdir(ROOT)
    code = 0
    try:
        cli.launch(project, module=module, argv=argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert all(line.startswith(("warning: ", f"projects.{project}.main: error: ")) for line in err), err
    return code, captured.out, err


def _truncate(path):
    """Cuts every file under `path` (or `path` itself) to half its length."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in files:
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])


def _no_claims(monkeypatch, claims, plots):
    monkeypatch.setattr(claims, "compute", lambda *a, **k: ({}, []))
    monkeypatch.setattr(plots, "make_all", lambda *a, **k: [])


LTB = ["--config=configs/ltb_icl/default.py:smoke", "--config.num_devices=1", "--config.train.steps=20",
       "--config.train.log_every=10", "--config.train.checkpoint_every=10", "--config.eval.num_prompts=400",
       "--config.eval.curve_prompts=64", "--config.eval.chunk=200"]


def test_ltb_icl_resumes_from_the_newest_intact_checkpoint(tmp_path, capsys, monkeypatch):
    """Newest checkpoint truncated: resume from the one before with one warning line, finish, save it again;
    every checkpoint truncated: one line naming the directory, exit 1; config.json truncated: one line, exit 2."""
    _no_claims(monkeypatch, ltb_claims, ltb_plots)
    monkeypatch.setattr(ltb_theory, "reference_risks", lambda config: {})
    wd = tmp_path / "ltb"
    argv = [*LTB, f"--workdir={wd}"]
    code, _, err = _launch("ltb_icl", "train", argv, capsys, monkeypatch)
    assert code == 0 and err == [], err
    ckpts = wd / "checkpoints"
    assert sorted(os.listdir(ckpts)) == ["10", "20"]

    _truncate(ckpts / "20")
    with open(wd / "metrics.jsonl", "rb+") as f:  # a damaged byte in the first row: that row alone is lost
        f.write(b"\xff")
    code, out, err = _launch("ltb_icl", "train", argv, capsys, monkeypatch)
    assert code == 0, err
    assert len(err) == 1 and f"damaged checkpoint {ckpts / '20'}" in err[0], err
    assert "resuming from step 10" in err[0] and "resuming from step 10" in out
    assert sorted(os.listdir(ckpts)) == ["10", "20"] and (wd / "results.json").exists()
    assert [r["step"] for r in read_jsonl(wd / "metrics.jsonl")] == [20]  # step 10's row had the damaged byte
    ocp.StandardCheckpointer().restore(ckpts / "20" / "default")  # the step saved again reads back whole

    for step in ("10", "20"):
        _truncate(ckpts / step)
    code, _, err = _launch("ltb_icl", "train", argv, capsys, monkeypatch)
    assert code == 1 and len(err) == 1, err
    assert f"every checkpoint in {ckpts} is damaged" in err[0], err

    _truncate(wd / "config.json")
    code, _, err = _launch("ltb_icl", "train", argv, capsys, monkeypatch)
    assert code == 2 and len(err) == 1 and f"{wd / 'config.json'} is damaged" in err[0], err


TIMING = {"seconds", "compile_seconds", "g_seconds", "g_compile_seconds"}


def test_trust_recomputes_a_damaged_instance_and_cache(tmp_path, capsys, monkeypatch):
    """A truncated instance result and its truncated Ĝ cache: each named in one warning line, recomputed to the
    same numbers, rewritten intact."""
    _no_claims(monkeypatch, trust_claims, trust_plots)
    wd = tmp_path / "trust"
    argv = ["--config=configs/trust/default.py:smoke", "--config.instances=('minimax_d2_n100_gap0.2',)",
            "--config.scaling_ds=()", "--config.slsqp_instances=0", "--config.offline_rl.enabled=false",
            "--config.num_seeds=20", "--config.trust.mc_draws=20", f"--workdir={wd}"]
    code, _, err = _launch("trust", "run", argv, capsys, monkeypatch)
    assert code == 0 and err == [], err
    inst = wd / "instances" / "minimax_d2_n100_gap0.2.npz"
    (cache,) = (wd / "cache").iterdir()
    before = read_npz(inst)

    _truncate(inst)
    _truncate(cache)
    code, _, err = _launch("trust", "run", argv, capsys, monkeypatch)
    assert code == 0, err
    assert len(err) == 2 and f"{inst} is damaged" in err[0] and f"{cache} is damaged" in err[1], err
    after = read_npz(inst)
    assert set(after) == set(before)
    for k in set(before) - TIMING:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    read_npz(cache)


def test_nonreactive_recomputes_a_damaged_sweep_point(tmp_path, capsys, monkeypatch):
    """An emptied saved batch of the sweep: one warning line naming it, that batch alone computed again."""
    _no_claims(monkeypatch, nre_claims, nre_plots)
    calls = []

    def fake_batched(config):
        def fn(keys, k_off):
            calls.append(int(k_off))
            return {"v": jnp.full((keys.shape[0],), k_off, jnp.float32)}
        return fn

    monkeypatch.setattr(nre_run, "batched_seed_fn", fake_batched)
    wd = tmp_path / "nre"
    argv = ["--config=configs/nonreactive_exploration/default.py:smoke", f"--workdir={wd}"]
    code, _, err = _launch("nonreactive_exploration", "run", argv, capsys, monkeypatch)
    assert code == 0 and err == [], err
    assert calls == [100, 100, 300, 300]

    point = wd / "points" / "offline300_batch1.npz"
    point.write_bytes(b"")
    calls.clear()
    code, _, err = _launch("nonreactive_exploration", "run", argv, capsys, monkeypatch)
    assert code == 0, err
    assert len(err) == 1 and f"{point} is damaged" in err[0] and "recomputing it" in err[0], err
    assert calls == [300]
    assert read_npz(point)["v"].tolist() == [300.0] * 4

