"""autoprm (step 1: domain + SFT-CoT): the smoke run trains and reports honestly, a SIGKILLed run resumes to the
same numbers, bad configs fail before anything runs naming the field."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from configs.autoprm import default
from harness import validation
from projects.autoprm import claims, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_smoke_trains_writes_claims_and_resumes(tmp_path):
    """Smoke: loss falls, results.json has the calibration claim and A1–A7 as holds=None with a reason; a rerun of
    a finished run resumes (no retraining) and reproduces the numbers."""
    config = default.get_config("smoke")
    res = run.train_and_evaluate(config, str(tmp_path))
    on_disk = json.load(open(tmp_path / "results.json"))
    assert on_disk["project"] == "autoprm" and on_disk["preset"] == "smoke"
    ids = [c["id"] for c in on_disk["claims"]]
    assert ids == ["calibration"] + [cid for cid, _, _ in claims.PENDING]
    assert all(c["holds"] is None and "not measured" in c["ours"] for c in on_disk["claims"][1:])
    assert on_disk["claims"][0]["holds"] in (True, False)
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["train_loss"][0] < rows[0]["train_loss"][0]
    m = res["metrics"]
    assert 0.0 <= m["sft_cot/test/accuracy"] <= 1.0 and "sft_cot/ood/accuracy_len7" in m
    res2 = run.train_and_evaluate(config, str(tmp_path))
    assert res2["metrics"]["sft_cot/test/accuracy"] == m["sft_cot/test/accuracy"]
    assert res2["metrics"]["sft_cot/test/parse_fail"] == m["sft_cot/test/parse_fail"]


def _cmd(workdir):
    return [sys.executable, "-m", "projects.autoprm.main", "--config=configs/autoprm/default.py:smoke",
            f"--workdir={workdir}", "--config.train.steps=80", "--config.train.checkpoint_every=10"]


@pytest.mark.slow  # ~80 s on 2 cores (three launches); the smoke test above checks resuming in-process
def test_sigkill_then_rerun_resumes_to_identical_results(tmp_path):
    """A run killed with SIGKILL after its first checkpoints resumes and ends with an uninterrupted run's metrics."""
    env = dict(os.environ, REPROJAX_PROGRESS="0", PYTHONPATH=ROOT)
    full = subprocess.run(_cmd(tmp_path / "full"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p) for p in os.listdir(ckpts) if p.isdigit()] if ckpts.is_dir() else []
        if steps and max(steps) >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    resumed = subprocess.run(_cmd(killed), cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step" in resumed.stdout
    a = json.load(open(tmp_path / "full" / "results.json"))["metrics"]
    b = json.load(open(killed / "results.json"))["metrics"]
    for k, v in a.items():
        if "seconds" not in k:
            assert b[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert [json.loads(line)["step"] for line in open(killed / "metrics.jsonl")] == list(range(10, 81, 10))


@pytest.mark.parametrize("field,value,message", [
    ("train.log_every", 7, "config.train.log_every=7 is invalid: expected a divisor of train.steps=40"),
    ("model.n_heads", 3, "config.model.n_heads=3 is invalid: expected a divisor of model.d_model=32"),
    ("data.restate_prob", 1.5, "config.data.restate_prob=1.5 is invalid: expected a finite number >= 0.0 and <= 1.0"),
    ("data.n_distractors", (3, 1), "config.data.n_distractors=(3, 1) is invalid: expected (lo, hi) with"),
    ("train.learning_rate", 0.0, "config.train.learning_rate=0.0 is invalid: expected a finite number > 0.0"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted, before anything runs."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_cli_bad_value_exits_2_before_writing(tmp_path):
    """A bad value on the command line is one line on stderr, exit status 2, and nothing is written."""
    cmd = [sys.executable, "-m", "projects.autoprm.main", "--config=configs/autoprm/default.py:smoke",
           f"--workdir={tmp_path / 'w'}", "--config.model.n_heads=3"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and "config.model.n_heads=3 is invalid" in out.stderr
    assert not (tmp_path / "w").exists()
