"""npo part (a): the smoke run writes every claim and plot, a rerun resumes from its files, bad configs fail with
clear errors, a fixed-seed run shows GA's collapse against NPO's bounded drift, and the losses match the formulas."""

import glob
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.npo import default
from harness import cli, validation
from projects.npo import claims as claims_lib
from projects.npo import run, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {"S.pretrain_converged", "S.forget_below_threshold", "S.idk_never_forgets", "S.ga_retain_diverges",
            "S.npo_plateaus", "S.npo_rt_best_tradeoff", "S.npo_beats_ga_without_retain", "S.alpha0_npo_rt_smallest",
            "S.ga_linear_npo_log_drift"}
PLOTS = {"synthetic_alpha1_metrics.png", "synthetic_alpha1_tradeoff.png", "synthetic_drift.png"}


TOFU_CLAIMS = {"T.calibration_fq", "T.npo_rt_beats_ga_gd_idk", "T.ga_utility_collapses"}
TOFU_PLOTS = {"tofu_forget10_tradeoff.png", "tofu_forget10_epochs.png"}


def _part_a():
    """The smoke preset with part (b) off (the TOFU part has its own smoke test below)."""
    c = default.get_config("smoke")
    c.tofu.enabled = False
    return c


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("npo_smoke")
    return workdir, run.train_and_evaluate(_part_a(), str(workdir))


def test_tofu_smoke_writes_claims_and_plots(tmp_path):
    """Part (b) alone at the smoke preset (synthetic TOFU-like data, GA and NPO+RT): the T.* claims (holds None at
    smoke), the trade-off and per-epoch plots, per-epoch FQ/MU for both methods."""
    c = default.get_config("smoke")
    c.synthetic.enabled = False
    res = run.train_and_evaluate(c, str(tmp_path))
    assert {x["id"] for x in res["claims"]} == TOFU_CLAIMS
    assert all(x["holds"] is None for x in res["claims"])
    assert set(res["plots"]) == TOFU_PLOTS
    for plot in TOFU_PLOTS:
        assert (tmp_path / plot).stat().st_size > 10_000
    m = res["metrics"]
    for method in ("ga", "npo_rt"):
        assert len(m[f"tofu/forget10/{method}/fq_per_epoch"]) == c.tofu.unlearn.epochs
        assert all(0 <= x <= 1 for x in m[f"tofu/forget10/{method}/fq_per_epoch"])
    assert m["tofu/forget10/retain90_s0/forget_quality"] == 1.0
    assert res["seeds"] == [0, 1]


def test_smoke_writes_every_claim_and_plot(smoke):
    """results.json has every claim id (holds None at smoke: the run is shortened) and the plots exist."""
    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "npo" and on_disk["preset"] == "smoke" and on_disk["seeds"] == [1000, 2000]
    assert {c["id"] for c in on_disk["claims"]} == EXPECTED
    assert all(c["holds"] is None for c in on_disk["claims"])  # smoke is shorter than the spec's settings
    assert set(res["plots"]) == PLOTS
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 10_000
    m = res["metrics"]
    assert m["synthetic/alpha1/npo_rt/forget_final/mean"] < 0.01 < m["synthetic/alpha1/idk_rt/forget_final/mean"]


def test_rerun_resumes_from_saved_part(smoke):
    """A second run loads workdir/synthetic/alpha1.npz untouched and reports identical numbers."""
    workdir, res = smoke
    path = workdir / "synthetic" / "alpha1.npz"
    before = path.stat().st_mtime_ns
    again = run.train_and_evaluate(_part_a(), str(workdir))
    assert path.stat().st_mtime_ns == before
    for k, v in res["metrics"].items():
        if "seconds" not in k:
            assert again["metrics"][k] == v, k


def _launch(argv, capsys, monkeypatch) -> tuple[int, str]:
    """`python -m projects.npo.main` in-process: (exit status, stderr)."""
    monkeypatch.setenv("REPROJAX_HUGE_PAGES", "0")  # never re-exec the test process
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        cli.launch("npo", module="run", argv=argv)
    return e.value.code, capsys.readouterr().err.strip()


def test_non_finite_pretraining_stops_with_one_line(tmp_path, capsys, monkeypatch):
    """A learning rate that makes pre-training overflow stops the run with one line naming the value and the step
    (exit 1), before any .npz, plot or results.json is written. (The logistic loss has bounded gradients, so in
    float64 θ stays finite up to lr ≈ 1e305: lr 1e30 gives a useless but finite model, 1e308 overflows.)"""
    wd = tmp_path / "wd"
    code, err = _launch(["--config=configs/npo/default.py:smoke", "--config.synthetic.pretrain_lr=1e308",
                         "--config.tofu.enabled=False", f"--workdir={wd}"], capsys, monkeypatch)
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "pretrain/" in err and "became non-finite" in err and "at step 2000" in err, err
    written = [os.path.relpath(f, wd) for f in glob.glob(str(wd / "**" / "*"), recursive=True) if os.path.isfile(f)]
    assert written == ["config.json"], written


def test_truncated_saved_part_is_named(smoke, tmp_path, capsys, monkeypatch):
    """A truncated workdir/synthetic/alpha1.npz (a killed disk, not a killed writer: writes are atomic) stops a rerun
    with one line naming the file (exit 1) instead of a zipfile traceback; nothing is recomputed over it."""
    workdir, _ = smoke
    wd = tmp_path / "wd"
    shutil.copytree(workdir, wd)
    path = wd / "synthetic" / "alpha1.npz"
    path.write_bytes(path.read_bytes()[:1000])
    code, err = _launch(["--config=configs/npo/default.py:smoke", "--config.tofu.enabled=False", f"--workdir={wd}"],
                        capsys, monkeypatch)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert f"{path} is damaged" in err and "delete it to recompute it" in err, err
    assert path.stat().st_size == 1000


def test_learning_outcome_fixed_seed(tmp_path):
    """Seed 1000, α = 1, 2000 unlearning steps: GA's retain distance ends > 5× NPO+RT's while NPO+RT forgets
    (forget distance < 0.02 from 1.4); over 4000 drift steps GA's ‖θ_t − θ_0‖ grows linearly (doubling ratio ≈ 2)
    and ends > 10× NPO's (β = 1), whose doubling ratio is ≤ 1.41."""
    c = default.get_config("smoke")
    c.synthetic.seeds = (1000,)
    c.synthetic.pretrain_steps = 5000
    c.synthetic.steps = 2000
    c.synthetic.eval_every = 100
    c.synthetic.methods = ("ga", "npo_rt")
    c.synthetic.drift.steps = 4000
    c.synthetic.drift.eval_every = 100
    c.synthetic.drift.betas = (1.0,)
    run.validate(c)
    res = synthetic.run_part(c.synthetic, str(tmp_path))["alpha1"]
    ga, npo_rt = res["methods"]["ga"], res["methods"]["npo_rt"]
    assert ga["retain_dist"][0, -1] > 5 * npo_rt["retain_dist"][0, -1]
    assert npo_rt["forget_dist"][0, 0] > 1.0 and npo_rt["forget_dist"][0, -1] < 0.02
    d_ga, d_npo = res["drift"]["ga"][0], res["drift"]["npo_beta1"][0]
    assert d_ga[-1] > 10 * d_npo[-1]
    assert 1.7 < claims_lib.doubling_ratio(d_ga) < 2.3
    assert claims_lib.doubling_ratio(d_npo) <= 1.41


def test_losses_match_the_formulas():
    """At θ = θ_ref the NPO loss is (2/β)·log 2 and its gradient equals GA's (weight 1); DPO with the winner equal
    to the loser is constant; the retain term is the retain NLL."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        z_f, z_r = jnp.asarray(rng.random((7, 5))), jnp.asarray(rng.random((9, 5)))
        yf, yr = jnp.asarray(rng.integers(0, 2, 7)), jnp.asarray(rng.integers(0, 2, 9))
        theta = jnp.asarray(rng.standard_normal(5))
        ref = synthetic.label_logp(theta, z_f, yf)
        batch = {"z_f": z_f, "z_r": z_r, "yf": yf, "yr": yr, "y_idk": yf, "ref_logp_f": ref, "ref_logp_idk": ref}
        loss = lambda kind, th, beta=0.5: synthetic.unlearning_loss(th, batch, kind=kind, beta=beta)  # noqa: E731
        assert float(loss("npo", theta)) == pytest.approx(2 / 0.5 * np.log(2))
        np.testing.assert_allclose(jax.grad(lambda t: loss("npo", t))(theta), jax.grad(lambda t: loss("ga", t))(theta),
                                   rtol=1e-12)
        np.testing.assert_allclose(jax.grad(lambda t: loss("dpo_rt", t))(theta),
                                   jax.grad(lambda t: -jnp.mean(synthetic.label_logp(t, z_r, yr)))(theta), atol=1e-12)
        p1 = jax.nn.sigmoid(-(z_r @ theta))  # class 1 has logit 0, class 0 has z·θ
        nll = -np.mean(np.where(np.asarray(yr) == 1, np.log(p1), np.log(1 - p1)))
        assert float(loss("ga_rt", theta) - loss("ga", theta)) == pytest.approx(nll)


@pytest.mark.parametrize("field,value,message", [
    ("synthetic.alphas", (0.5,), "config.synthetic.alphas=(0.5,) is invalid: expected a list of at least 1 values "
                                 "in [1.0, 0.0]"),
    ("synthetic.methods", ("ga", "kto"), "config.synthetic.methods=('ga', 'kto') is invalid: expected a list of at "
                                         "least 1 distinct names in ['ga', 'ga_rt', 'idk_rt', 'npo', 'npo_rt', "
                                         "'dpo_rt']"),
    ("synthetic.steps", 410, "config.synthetic.steps=410 is invalid: expected a multiple of "
                             "synthetic.eval_every=25"),
    ("synthetic.lr_alpha1.npo", -1.0, "config.synthetic.lr_alpha1.npo=-1.0 is invalid: expected a finite number > "
                                   "0.0"),
    ("synthetic.drift.alpha", 2.0, "config.synthetic.drift.alpha=2.0 is invalid: expected one of [1.0, 0.0]"),
    ("synthetic.drift.betas", (1.0, 0.0), "config.synthetic.drift.betas=(1.0, 0.0) is invalid: expected a list of "
                                          "at least 1 numbers > 0"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_presets_validate():
    """Every preset passes validation; quick and paper use the spec's settings."""
    for preset in ("smoke", "quick", "paper"):
        c = default.get_config(preset)
        if c.tofu.source == "tofu" and not os.path.isdir(os.path.join(os.path.dirname(run.__file__), "..", "..",
                                                                          "..", "shared", "data", "tofu")):
            c.tofu.source = "synthetic"  # the real TOFU files are not shipped (paper preset reads them)
        run.validate(c)
    q = default.get_config("quick").synthetic
    assert (q.num_forget, q.num_retain, q.dim, q.num_features, q.pretrain_steps, q.steps) == (200, 1000, 16, 128,
                                                                                             20_000, 2000)
    assert os.path.basename(default.__file__) == "default.py"
