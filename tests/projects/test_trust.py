"""trust: the smoke run reports every claim and learns something, a rerun resumes from its files, bad configs
fail with clear errors, and the offline-RL pieces agree with simulation."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.trust import default
from harness import validation
from projects.trust import offline_rl, run
from tests.nbrun import execute_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {"T1.data_starved_win", "T1.data_starved_win_sigma1", "T2.safety_every_instance",
            "T3.one_sample_certificate", "T4.minimax_certificate_parity", "T5.localization_scaling",
            "T6.complexity_slope_saturation", "T6.solver_matches_slsqp", "T7.equal_counts_nonresult",
            "T8.suite_under_a_minute", "RL.logging_policy_mixture", "RL.improves_on_behaviour"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trust_smoke")
    return workdir, run.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_writes_every_claim_and_plot(smoke):
    """Smoke preset: results.json has every registered claim id, holds in {True, False, None}, and its plots."""
    from projects.reproduce import REGISTRY

    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "trust" and on_disk["preset"] == "smoke"
    ids = {c["id"] for c in on_disk["claims"]}
    assert ids == EXPECTED
    assert next(p for p in REGISTRY if p.name == "trust").built
    assert all(c["holds"] in (True, False, None) for c in on_disk["claims"])
    assert set(res["plots"]) == {"values.png", "certificates.png", "scaling.png", "complexity.png", "offline_rl.png"}
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 10_000


def test_smoke_outcomes(smoke):
    """Smoke numbers (fixed seed): TRUST beats LCB on the small trap, stays safe, the solver matches SLSQP,
    minimax certificates agree; in offline RL TRUST ≥ μ > LCB and moves away from μ with a plug-in σ̂."""
    _, res = smoke
    m = res["metrics"]
    name = "trap_half_s0.5_d200_n2000"
    assert m[f"{name}/trust_minus_lcb/mean"] - m[f"{name}/trust_minus_lcb/ci95"] > 0.15
    assert m[f"{name}/trust/frac_at_least_behaviour"] == 1.0
    claims = {c["id"]: c for c in res["claims"]}
    assert claims["T6.solver_matches_slsqp"]["holds"] is True
    assert claims["T4.minimax_certificate_parity"]["holds"] is True
    assert claims["T2.safety_every_instance"]["holds"] is True
    assert m["offline_rl/trust/frac_at_least_behaviour"] == 1.0
    assert m["offline_rl/trust_minus_lcb/mean"] > 0.05  # the mixture beats the default policy LCB is stuck with
    assert m["offline_rl/lcb/mean"] == pytest.approx(m["offline_rl/v_default"])
    assert m["offline_rl/trust_plugin/mean"] > m["offline_rl/v_behaviour"] + 0.05  # a small σ̂ lets TRUST move


def test_rerun_resumes_from_instance_files(smoke):
    """A second run in the same workdir reuses every instance file (untouched) and reports the same numbers."""
    workdir, res = smoke
    files = sorted((workdir / "instances").glob("*.npz"))
    assert len(files) == len(run.instance_list(default.get_config("smoke"))) + 1
    before = {f: f.stat().st_mtime_ns for f in files}
    again = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    assert {f: f.stat().st_mtime_ns for f in files} == before
    for k, v in res["metrics"].items():
        if "seconds" not in k:
            assert again["metrics"][k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("field,value,message", [
    ("delta", 1.5, "config.delta=1.5 is invalid: expected a number in (0, 1)"),
    ("instances", ("trap_half_d10",), "config.instances=('trap_half_d10',) is invalid: expected a list of at least 0 "
                                      "instance names of the forms trap_half_s<σ>_d<d>_n<N0>"),
    ("scaling_ds", (1,), "config.scaling_ds=(1,) is invalid: expected a list of at least 0 integers >= 2"),
    ("trust.grid_size", 1, "config.trust.grid_size=1 is invalid: expected an integer >= 2"),
    ("offline_rl.successors", 30,
     "config.offline_rl.successors=30 is invalid: expected an integer in [1, num_states=20]"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_cli_typo_is_refused(tmp_path):
    """lock_config turns a typo in a --config override into an error that names it."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-m", "projects.trust.main", "--config=configs/trust/default.py:smoke",
                          f"--workdir={tmp_path}", "--config.trust.grid_sise=5"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "grid_sise" in out.stderr


def test_offline_rl_values_match_rollouts():
    """Exact DP values of the logging policies match the mean of simulated episodes; Q* bounds every policy."""
    with jax.enable_x64(True):
        P, R = offline_rl.random_mdp(jax.random.key(0), num_states=8, num_actions=3, successors=3, reward_fraction=0.3)
        np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
        q = offline_rl.optimal_q(P, R, horizon=5)
        pols, _ = offline_rl.logging_policies(jax.random.key(1), q, num_explore=3, beta_max=3.0, default_eps=0.3)
        exact = offline_rl.policy_values(P, R, pols)
        assert np.all(np.asarray(exact) <= float(q[0, 0].max()) + 1e-12)
        sims = jax.jit(jax.vmap(lambda k: jax.vmap(lambda p: offline_rl.rollout_return(k, P, R, p))(pols)))(
            jax.random.split(jax.random.key(2), 20000))
        np.testing.assert_allclose(sims.mean(0), exact, atol=4 * float(jnp.max(sims.std(0))) / np.sqrt(20000))


def test_notebook_runs_on_the_smoke_run(smoke, tmp_path, monkeypatch):
    """colab/trust.ipynb top to bottom on this module's smoke run: the notebook resumes it (the same config) and runs
    every one of its cells. The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("trust", tmp_path, monkeypatch, reuse=smoke[0])
