"""nonreactive_exploration: the smoke run reports every claim and shows the design's effect, a rerun resumes
from its saved seed batches, bad configs fail with clear errors."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from configs.nonreactive_exploration import default
from harness import validation
from projects.nonreactive_exploration import run
from tests.nbrun import execute_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {"N1.design_targets_low_coverage", "N2.beats_behaviour_and_uniform_in_sparsified_mdp",
            "N3.epsilon_rate", "N4.nonreactive_matches_reactive", "N5.data_efficiency_vs_behaviour",
            "N6.local_coverage", "N7.theory_bonus_degenerates"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nre_smoke")
    config = default.get_config("smoke")
    return config, workdir, run.train_and_evaluate(config, str(workdir))


def test_smoke_writes_results_with_every_claim(smoke_run):
    """results.json has the project, preset, every claim id (holds computed: True/False/None) and the plots."""
    _, workdir, _ = smoke_run
    res = json.load(open(workdir / "results.json"))
    assert res["project"] == "nonreactive_exploration" and res["preset"] == "smoke"
    assert {c["id"] for c in res["claims"]} == EXPECTED
    assert all(c["holds"] in (True, False, None) for c in res["claims"])
    assert len(res["plots"]) == 3
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 10_000


def test_smoke_design_learns_to_target_the_thin_region(smoke_run):
    """Fixed seeds, 60 virtual episodes: the design sends ≥ 3× behaviour's share of visits to region B and, at
    K_de = 100, plans better than behaviour redeploy inside P† (the benchmark metric)."""
    _, _, res = smoke_run
    m = res["metrics"]
    assert m["rfnpd/K100/frac_B"] >= 3 * max(m["behaviour/K100/frac_B"], m["uniform/K100/frac_B"])
    assert m["rfnpd/K100/bench"] < m["behaviour/K100/bench"] - 0.005
    assert m["rfnpd/K100/bench"] < m["offline_only/sub_dag"]
    assert 0 < m["coverage_gap"] < 1


def test_rerun_resumes_from_saved_batches(smoke_run):
    """A rerun with one saved seed batch deleted recomputes only that batch and gives identical metrics."""
    config, workdir, first = smoke_run
    os.remove(workdir / "points" / f"offline{config.offline.episodes}_batch1.npz")
    again = run.train_and_evaluate(config, str(workdir))
    for k, v in first["metrics"].items():
        if "seconds" not in k:
            assert again["metrics"][k] == (pytest.approx(v, rel=1e-6, abs=1e-9) if isinstance(v, float) else v), k


def test_rerun_with_another_config_is_refused(smoke_run):
    """Saved seed batches are never mixed with a different config's: the rerun fails naming the workdir."""
    config, workdir, _ = smoke_run
    other = default.get_config("smoke")
    other.design.beta = 3.0
    with pytest.raises(validation.ConfigError, match="different config"):
        run.train_and_evaluate(other, str(workdir))


@pytest.mark.parametrize("field,value,message", [
    ("seed_batch", 3, "config.seed_batch=3 is invalid: expected a divisor of num_seeds=8"),
    ("design.bonus", "ucb", "config.design.bonus='ucb' is invalid: expected one of ['scaled', 'theory']"),
    ("offline.sweep", (100, 1000), "config.offline.sweep=(100, 1000) is invalid: expected a list containing "
                                   "offline.episodes=300"),
    ("online.budgets", (100, 25), "config.online.budgets=(100, 25) is invalid: expected a list of at least 1 "
                                  "strictly increasing"),
    ("claims.coverage_budget", 400, "config.claims.coverage_budget=400 is invalid: expected one of "
                                    "online.budgets=[25, 100]"),
    ("design.delta", 1.5, "config.design.delta=1.5 is invalid: expected a confidence level in (0, 1)"),
    ("offline.threshold", 0, "config.offline.threshold=0 is invalid: expected an integer >= 1"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_cli_rejects_a_typo_before_running(tmp_path):
    """lock_config turns a misspelt override into an error naming it."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-m", "projects.nonreactive_exploration.main",
                          "--config=configs/nonreactive_exploration/default.py:smoke", f"--workdir={tmp_path}",
                          "--config.design.betta=2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "betta" in out.stderr
    assert not (tmp_path / "results.json").exists()


def test_seed_fn_is_vmappable_and_paired_over_offline_sizes(smoke_run):
    """The per-seed experiment vmaps over seeds; two K_off values of one seed share the MDP (same V*)."""
    config = smoke_run[0]
    fn = run.batched_seed_fn(config)  # compiled once per config: the smoke run's function is reused
    keys = run.seed_keys(config, 0, config.seed_batch)
    a, b = fn(keys, np.int32(100)), fn(keys, np.int32(300))
    assert a["sub_dag"].shape == (config.seed_batch, len(run.METHODS), 2, config.rewards.num_rewards)
    np.testing.assert_allclose(np.asarray(a["v_true"]), np.asarray(b["v_true"]))
    assert not np.allclose(np.asarray(a["v_true"][0]), np.asarray(a["v_true"][1]))  # seeds differ


def test_notebook_runs_on_the_smoke_run(smoke_run, tmp_path, monkeypatch):
    """colab/nonreactive_exploration.ipynb top to bottom on this module's smoke run:
    the notebook resumes it (the same config) and runs every one of its cells.
    The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("nonreactive_exploration", tmp_path, monkeypatch, reuse=smoke_run[1])
