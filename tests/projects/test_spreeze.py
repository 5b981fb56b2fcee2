"""spreeze: the smoke run reports every claim and resumes from its parts; bad configs are refused before any
process starts; the multi-process system restarts a SIGKILLed sampler and shuts down cleanly (spec B8)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from configs.spreeze import default
from harness import validation
from projects.spreeze import run, system
from tests.nbrun import execute_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {"B4.fused_reaches_threshold", "B4.training_time_cut", "B4.final_return", "B2.fused_sampler",
            "B3.large_batch_throughput"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("spreeze_smoke")
    return workdir, run.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_writes_every_claim_and_plot(smoke):
    """Smoke preset: results.json has every claim id with holds in {True, False, None}, the plot, and the
    registry marks spreeze as built; the fused sampler beats a loop of one-env jitted steps even at smoke size."""
    from projects.reproduce import REGISTRY

    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "spreeze" and on_disk["preset"] == "smoke"
    assert {c["id"] for c in on_disk["claims"]} == EXPECTED
    assert all(c["holds"] in (True, False, None) for c in on_disk["claims"])
    assert next(p for p in REGISTRY if p.name == "spreeze").built
    assert (workdir / "pendulum.png").stat().st_size > 10_000
    m = res["metrics"]
    assert m["sampler/fused_over_loop1"] > 2.0
    assert m["fused/updates_per_s/median"] > 0


def test_rerun_resumes_from_parts(smoke):
    """A second run in the same workdir reuses every saved part (files untouched) and reports the same numbers."""
    workdir, res = smoke
    parts = sorted((workdir / "parts").glob("*.json"))
    assert {p.stem for p in parts} == {"fused_seed0", "sequential_seed0", "sampler_bench", "learner_bench"}
    before = {p: p.stat().st_mtime_ns for p in parts}
    again = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    assert {p: p.stat().st_mtime_ns for p in parts} == before
    assert json.dumps(again["metrics"], sort_keys=True) == json.dumps(res["metrics"], sort_keys=True)  # NaN == NaN


@pytest.mark.parametrize("field,value,message", [
    ("system.n_samplers", 0, "config.system.n_samplers=0 is invalid: expected an integer >= 1 and <= 256"),
    ("system.batch_size", 20_000, "config.system.batch_size=20000 is invalid: expected an integer <= "
                                  "system.replay_capacity=10000"),
    ("fused.batch_size", 512, "config.fused.batch_size=512 is invalid: expected an integer <= "
                              "fused.warmup_steps=256"),
    ("env", "CartPole-v1", "config.env='CartPole-v1' is invalid: expected one of ['Pendulum-v1']"),
    ("system.learner", "async", "config.system.learner='async' is invalid: expected one of ['fused', 'split', 'data']"),
    ("system.num_processes", 2, "config.system.learner='fused' is invalid: expected 'data' with "
                                "system.num_processes=2"),
    ("system.process_id", 1, "config.system.process_id=1 is invalid: expected an integer >= 0 and <= 0"),
])
def test_bad_config_refused(field, value, message):
    """Each bad value is refused by validate with one sentence naming the field, the value and what is accepted."""
    config = default.get_config("smoke")
    group, _, name = field.rpartition(".")
    (config[group] if group else config)[name] = value
    with pytest.raises(validation.ConfigError) as e:
        system.validate(config)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("learner,devices,batch,message", [
    ("split", 3, 64, "config.system.learner_devices=3 is invalid: expected 2 with system.learner='split'"),
    ("data", 3, 64, "config.system.batch_size=64 is invalid: expected a multiple of system.learner_devices × "
                    "system.num_processes = 3"),
])
def test_bad_learner_mode_refused(learner, devices, batch, message):
    """A learner mode whose devices do not fit it is refused before any process starts."""
    config = default.get_config("smoke")
    config.system.learner, config.system.learner_devices, config.system.batch_size = learner, devices, batch
    with pytest.raises(validation.ConfigError) as e:
        system.validate(config)
    assert str(e.value).startswith(message)


def test_data_learner_mode_matches_the_fused_update():
    """The system's `data` learner on this process's 4 CPU devices (state replicated, batch rows sharded over the
    mesh) equals the fused `sac.update` on one device. (The `split` mode is `split.py`, checked against
    `sac.update_stale` in tests/lib/test_rl_split.py and run inside the system by a slow test.)"""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lib.rl import sac
    from lib.rl.types import Transition

    key = jax.random.key(3)
    state0 = sac.init(key, obs_dim=3, action_dim=1, hidden=(32, 32), actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    rng = np.random.default_rng(0)
    batches = [Transition(obs=rng.standard_normal((64, 3), np.float32), action=rng.uniform(-1, 1, (64, 1)).astype(
        np.float32), reward=rng.standard_normal(64).astype(np.float32), done=np.zeros(64, np.float32),
        next_obs=rng.standard_normal((64, 3), np.float32)) for _ in range(2)]
    cfg = {"learner": "data"}

    def run(mode, reference):
        fresh = jax.tree.map(jnp.array, state0)  # a copy: the modes donate their input state
        st, put, update, local = system.make_learner({**cfg, "learner": mode}, fresh, key)
        ref = state0
        for b in batches:
            st, m = update(st, put(b))
            ref, rm = reference(ref, b, key)
        got = system.params_checksum((st.actor.params, st.critic.params), local)
        want = system.params_checksum((ref.actor.params, ref.critic.params), np.asarray)
        return got, want, float(local(m["critic_loss"])), float(rm["critic_loss"])

    got, want, loss, ref_loss = run("data", jax.jit(sac.update))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-4) and loss == pytest.approx(ref_loss, rel=1e-4, abs=1e-5)


def test_unknown_env_id_refused():
    """An env id gymnasium does not know is refused before any process starts."""
    pytest.importorskip("gymnasium")
    config = default.get_config("smoke")
    config.system.env_id = "HalfCheetah-v99"
    with pytest.raises(validation.ConfigError, match=r"config.system.env_id='HalfCheetah-v99' is invalid"):
        system.validate(config)


def test_cli_refuses_zero_samplers_before_anything_starts(tmp_path):
    """The system launcher exits 2 with one line on stderr, writing nothing, for zero samplers."""
    workdir = tmp_path / "never"
    out = subprocess.run([sys.executable, "-m", "projects.spreeze.system", "--config=configs/spreeze/default.py:smoke",
                          f"--workdir={workdir}", "--config.system.n_samplers=0"], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, REPROJAX_HUGE_PAGES="0"), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "projects.spreeze.main: error: config.system.n_samplers=0 is invalid: expected an integer >= 1 and <= 256"]
    assert not workdir.exists()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _rows(path):
    try:
        return [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_system_restarts_a_killed_sampler_and_shuts_down_cleanly(tmp_path):
    """B8: SIGKILL one sampler → restarted while the learner keeps updating; SIGTERM to the launcher → every
    process joined within 10 s, results.json written, and the run's shared-memory segments gone from /dev/shm."""
    pytest.importorskip("gymnasium")
    workdir = tmp_path / "sys"
    sysdir = workdir / "system"
    proc = subprocess.Popen([sys.executable, "-m", "projects.spreeze.system",
                             "--config=configs/spreeze/default.py:smoke", f"--workdir={workdir}",
                             "--config.system.duration_s=600", "--config.system.n_samplers=2"], cwd=ROOT,
                            env=dict(os.environ, REPROJAX_HUGE_PAGES="0"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: len(_rows(sysdir / "learner.jsonl")) >= 2, 240, "the learner's first updates")
        pids = json.load(open(sysdir / "pids.json"))
        segments = json.load(open(sysdir / "segments.json"))
        os.kill(pids["sampler0"], signal.SIGKILL)
        _wait_for(lambda: any(r["restarts"] >= 1 for r in _rows(sysdir / "system.jsonl")), 60, "a restart")
        updates = _rows(sysdir / "learner.jsonl")[-1]["updates"]
        _wait_for(lambda: _rows(sysdir / "learner.jsonl")[-1]["updates"] > updates, 60, "more updates")
        new_pid = _wait_for(lambda: json.load(open(sysdir / "pids.json"))["sampler0"] != pids["sampler0"], 30,
                            "the new sampler's pid")
        assert new_pid
        _wait_for(lambda: _rows(sysdir / "system.jsonl")[-1]["sampling_hz"] > 0, 120, "sampling after the restart")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    res = json.load(open(sysdir / "results.json"))
    assert res["metrics"]["stopped_by"] == "SIGTERM"
    assert res["metrics"]["sampler_restarts"] >= 1
    assert res["metrics"]["shutdown_s"] <= 10.0 and elapsed <= 30.0  # the rest is writing results and the plot
    for name in segments.values():
        assert not os.path.exists(os.path.join("/dev/shm", name))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_process_jax_distributed_matches_one_process(tmp_path):
    """B7: two `jax.distributed` processes on 127.0.0.1 (gloo) keep bitwise-equal parameter checksums for 100 data-
    parallel SAC steps, and match a one-process run at the same global batch to float rounding."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "projects.spreeze.distributed", "--steps=100"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # default threading for collectives (DESIGN.md)
    procs = [subprocess.Popen([*cmd, "--num_processes=2", f"--process_id={i}", f"--coordinator=127.0.0.1:{port}",
                               f"--out={tmp_path}/p{i}.json"], cwd=ROOT, env=env) for i in (0, 1)]
    procs.append(subprocess.Popen([*cmd, "--num_processes=1", f"--out={tmp_path}/single.json"], cwd=ROOT, env=env))
    try:
        assert [p.wait(timeout=540) for p in procs] == [0, 0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    p0, p1, single = (json.load(open(tmp_path / f"{n}.json")) for n in ("p0", "p1", "single"))
    assert p0["processes"] == 2 and p0["devices"] == 2 and single["devices"] == 1
    assert len(p0["checksums"]) == 100 and p0["checksums"] == p1["checksums"]
    assert p0["critic_loss"] == pytest.approx(single["critic_loss"], rel=1e-4, abs=1e-5)
    assert p0["checksums"] == pytest.approx(single["checksums"], rel=1e-5, abs=1e-4)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_host_system_keeps_learners_equal(tmp_path):
    """The multi-host system on 127.0.0.1: two system launchers (process 0 and 1, each with its own sampler, replay
    ring and workdir; the evaluator and dashboard on process 0 only), the `data` learner spanning both through
    `jax.distributed`. Process 0 stops on its duration; process 1 (told to run far longer) stops at the same update
    because the learners agree on stopping; both end with the same update count and bitwise-equal parameters."""
    pytest.importorskip("gymnasium")
    port = _free_port()
    env = dict(os.environ, REPROJAX_HUGE_PAGES="0")
    procs = [subprocess.Popen([sys.executable, "-m", "projects.spreeze.system",
                               "--config=configs/spreeze/default.py:smoke", f"--workdir={tmp_path}/h{i}",
                               "--config.system.learner=data", "--config.system.learner_devices=1",
                               "--config.system.num_processes=2", f"--config.system.process_id={i}",
                               f"--config.system.coordinator=127.0.0.1:{port}",
                               f"--config.system.duration_s={60 if i == 0 else 400}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    try:
        outs = [p.communicate(timeout=560)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    r0, r1 = (json.load(open(tmp_path / f"h{i}" / "system" / "results.json"))["metrics"] for i in (0, 1))
    assert r0["num_processes"] == 2 and r0["learner_devices"] == 2 and r0["learner"] == "data"
    assert r0["learner_updates"] > 0 and r0["learner_updates"] == r1["learner_updates"]
    assert r0["params_checksum/final"] == r1["params_checksum/final"]
    assert r0["duration_s"] < 200  # process 1 stopped with process 0, not at its own 400 s
    assert (tmp_path / "h0" / "system" / "evaluator.jsonl").exists()
    assert not (tmp_path / "h1" / "system" / "evaluator.jsonl").read_text().strip()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_system_runs_the_split_learner(tmp_path):
    """The system with the split learner (critic and actor on two forced host devices) updates and stops cleanly."""
    pytest.importorskip("gymnasium")
    out = subprocess.run([sys.executable, "-m", "projects.spreeze.system", "--config=configs/spreeze/default.py:smoke",
                          f"--workdir={tmp_path}", "--config.system.learner=split"], cwd=ROOT,
                         env=dict(os.environ, REPROJAX_HUGE_PAGES="0"), capture_output=True, text=True, timeout=360)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.load(open(tmp_path / "system" / "results.json"))["metrics"]
    assert m["learner"] == "split" and m["learner_devices"] == 2 and m["learner_updates"] > 0
    assert m["shutdown_s"] <= 10.0


def test_notebook_runs_on_the_smoke_run(smoke, tmp_path, monkeypatch):
    """colab/spreeze.ipynb top to bottom on this module's smoke run: the notebook resumes it (the same config) and runs
    every one of its cells. The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("spreeze", tmp_path, monkeypatch, reuse=smoke[0])
