"""ltb_icl: the smoke run trains and reports, a SIGKILLed run resumes to the same numbers, bad
configs fail with clear errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs.ltb_icl import default
from harness import rundir, validation
from projects.ltb_icl import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {"B2.ltb_reaches_gd_beta_optimum", "B2.lsa_optimal_at_zero_mean", "B2.lsa_additive_gap",
            "B2.lsa_between_gd_beta_and_gd0", "B2.ltb_is_gd_beta", "B0.closed_form_matches_monte_carlo",
            "B1.gd_beta_trainable_by_gradient_descent", "B3.near_bayes_at_moderate_snr"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ltb_icl_smoke")
    return workdir, train.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_trains_and_writes_results(smoke):
    """Smoke preset: results.json has every claim, LTB beats LSA at ‖β*‖=2 and is near R*_GDβ."""
    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "ltb_icl" and on_disk["preset"] == "smoke"
    assert {c["id"] for c in on_disk["claims"]} == EXPECTED
    assert all(c["holds"] in (True, False, None) for c in on_disk["claims"])
    m = res["metrics"]
    assert m["M8/norm2/ltb"] < m["M8/norm2/lsa"] - 0.3  # the MLP's direct path helps
    assert abs(m["M8/norm2/ltb"] / m["M8/gd_beta_optimum"] - 1) < 0.12
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 10_000
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [50, 100, 150, 200]


def test_data_parallel_training_matches_single_device(tmp_path):
    """The same smoke run on 4 devices (prompts split over the "data" mesh) gives the same risks."""
    base = default.get_config("smoke")
    base.train.steps, base.eval.num_prompts = 100, 2000
    runs = {}
    for n in (1, 4):
        c = default.get_config("smoke")
        c.train.steps, c.eval.num_prompts, c.num_devices = 100, 2000, n
        state = train.create_train_state(c, __import__("jax").random.key(0))
        chunk = train.make_train_chunk(c, train.parallel.make_mesh(n) if n > 1 else None)
        for _ in range(2):
            state, _ = chunk(state)
        runs[n] = np.asarray(state["runs"]["M8"]["params"]["w_kq"])
    np.testing.assert_allclose(runs[4], runs[1], rtol=1e-4, atol=1e-5)


def _cmd(workdir, *overrides):
    return [sys.executable, "-m", "projects.ltb_icl.main", "--config=configs/ltb_icl/default.py:smoke",
            f"--workdir={workdir}", "--config.train.steps=400", "--config.train.log_every=50",
            "--config.train.checkpoint_every=50", "--config.eval.num_prompts=500", *overrides]


def test_sigkill_then_rerun_resumes_to_identical_results(tmp_path):
    """A run killed with SIGKILL after its first checkpoints resumes and ends with the metrics of an
    uninterrupted run."""
    env = dict(os.environ, REPROJAX_PROGRESS="0", PYTHONPATH=ROOT)
    full = subprocess.run(_cmd(tmp_path / "full"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p) for p in os.listdir(ckpts) if p.isdigit()] if ckpts.is_dir() else []
        if steps and max(steps) >= 100:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    done = [int(p) for p in os.listdir(ckpts) if p.isdigit()]
    assert 0 < max(done) < 400

    resumed = subprocess.run(_cmd(killed), cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step" in resumed.stdout
    a = json.load(open(tmp_path / "full" / "results.json"))["metrics"]
    b = json.load(open(killed / "results.json"))["metrics"]
    for k, v in a.items():
        if "seconds" not in k:
            assert b[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    steps = [json.loads(line)["step"] for line in open(killed / "metrics.jsonl")]
    assert steps == list(range(50, 401, 50))


@pytest.mark.parametrize("field,value,message", [
    ("train.log_every", 7, "config.train.log_every=7 is invalid: expected a divisor of train.steps=200"),
    ("model.d_ff", 3, "config.model.d_ff=3 is invalid: expected 0 (= d+1) or >= d+1 = 6"),
    ("data.sigma2", -1.0, "config.data.sigma2=-1.0 is invalid: expected a finite number > 0.0"),
    ("data.context_lengths", (), "config.data.context_lengths=() is invalid: expected a list of at least 1"),
    ("num_devices", 9, "config.num_devices=9 is invalid: expected 0 (all) or at most the 4 local devices"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        train.validate(config)


def test_cli_typo_and_changed_config_are_refused(tmp_path):
    """lock_config turns a typo into an error; a rerun with another config in the same workdir is refused."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    typo = subprocess.run(_cmd(tmp_path / "w", "--config.train.stepz=5"), cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert typo.returncode != 0 and "stepz" in typo.stderr
    rundir.save_config(default.get_config("smoke"), str(tmp_path / "w2"))
    other = default.get_config("smoke")
    other.train.steps = 400
    with pytest.raises(validation.ConfigError, match="different config"):
        rundir.save_config(other, str(tmp_path / "w2"))


def test_divergence_stops_with_a_clear_message(tmp_path):
    """An absurd learning rate makes the loss non-finite; the run stops naming the metric and step."""
    from lib.metrics import NonFiniteError

    config = default.get_config("smoke")
    config.train.learning_rate = 1e4
    with pytest.raises(NonFiniteError, match=r"M8/(train_loss|grad_norm) became non-finite .* at step 50 in runs \["):
        train.train_and_evaluate(config, str(tmp_path))

