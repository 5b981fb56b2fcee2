"""autoprm: the smoke run goes through SFT, the verifier, expert iteration and the baselines and reports every claim
honestly; a rerun resumes from the cached stages to the same numbers; a SIGKILLed run resumes; bad configs fail before
anything runs naming the field."""

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
from tests.nbrun import execute_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLAIM_IDS = ["calibration", "A1", "A2", "A3", "A4", "A5", "A6", "A7"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("autoprm_smoke")
    t = time.time()
    res = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    return workdir, res, time.time() - t


def test_smoke_runs_every_stage_and_reports_claims(smoke):
    """results.json has the calibration claim and A1–A7; claims the smoke preset cannot measure are holds=None with a
    reason; the SFT loss falls; the EI history, the verifier and the decoded examples are written."""
    workdir, res, _ = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert on_disk["project"] == "autoprm" and on_disk["preset"] == "smoke"
    assert [c["id"] for c in on_disk["claims"]] == CLAIM_IDS
    by_id = {c["id"]: c for c in on_disk["claims"]}
    for cid in ("A2", "A4", "A5", "A7"):  # smoke runs neither PRM-RL, the no-CGD variant, the ε sweep nor Distilling-LM
        assert by_id[cid]["holds"] is None and "not" in by_id[cid]["ours"]
    assert by_id["A1"]["holds"] in (None, False)  # one seed: A1 asks for 3 and can never pass
    rows = [json.loads(line) for line in open(workdir / "sft" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["train_loss"][0] < rows[0]["train_loss"][0]
    m = res["metrics"]
    for key in ("sft_cot/test/accuracy", "sft_decomp/test/accuracy", "autoprm/test/accuracy", "orm_rl/ood/accuracy",
                "ei/autoprm/val_round1", "verifier/pos_frac"):
        assert key in m, key
    assert 0.0 <= m["autoprm/test/accuracy"] <= 1.0
    examples = json.load(open(workdir / "examples.json"))
    assert len(examples) == 2 and examples[0]["subquestions"]
    assert set(res["plots"]) <= {"ei_rounds.png", "eps_sweep.png", "gain_vs_length.png"} and res["plots"]


def test_rerun_resumes_from_cached_stages(smoke):
    """A second run in the same workdir trains nothing (every stage is cached) and reproduces the numbers."""
    workdir, res, first = smoke
    t = time.time()
    res2 = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    assert time.time() - t < first
    for k, v in res["metrics"].items():
        if not k.startswith("time/"):
            assert res2["metrics"][k] == pytest.approx(v, nan_ok=True), k


def _cmd(workdir):
    return [sys.executable, "-m", "projects.autoprm.main", "--config=configs/autoprm/default.py:smoke",
            f"--workdir={workdir}", "--config.train.steps=60"]


@pytest.mark.slow  # ~3 min on 2 cores (three launches); the smoke test above checks resuming in-process
def test_sigkill_then_rerun_resumes_to_identical_results(tmp_path):
    """A run killed with SIGKILL after its first SFT checkpoints resumes and ends with an uninterrupted run's
    metrics."""
    env = dict(os.environ, REPROJAX_PROGRESS="0", PYTHONPATH=ROOT)
    full = subprocess.run(_cmd(tmp_path / "full"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "sft"
    deadline = time.time() + 300
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
    assert "resuming sft from step" in resumed.stdout
    a = json.load(open(tmp_path / "full" / "results.json"))["metrics"]
    b = json.load(open(killed / "results.json"))["metrics"]
    for k, v in a.items():
        if not k.startswith("time/"):
            assert b[k] == pytest.approx(v, rel=1e-6, abs=1e-9, nan_ok=True), k


@pytest.mark.parametrize("field,value,message", [
    ("train.log_every", 7, "config.train.log_every=7 is invalid: expected a divisor of train.steps=30"),
    ("model.n_heads", 3, "config.model.n_heads=3 is invalid: expected a divisor of model.d_model=32"),
    ("data.restate_prob", 1.5, "config.data.restate_prob=1.5 is invalid: expected a finite number >= 0.0 and <= 1.0"),
    ("data.n_distractors", (3, 1), "config.data.n_distractors=(3, 1) is invalid: expected (lo, hi) with"),
    ("train.learning_rate", 0.0, "config.train.learning_rate=0.0 is invalid: expected a finite number > 0.0"),
    ("ei.methods", ("autoprm", "ppo"), "config.ei.methods=('autoprm', 'ppo') is invalid"),
    ("eps_star", 1.5, "config.eps_star=1.5 is invalid"),
    ("ei.pg_kl", -0.1, "config.ei.pg_kl=-0.1 is invalid: expected a finite number >= 0.0"),
    ("ei.pg_adv_norm", "std", "config.ei.pg_adv_norm='std' is invalid: expected one of ['mean', 'mean_std']"),
    ("workers", 0, "config.workers=0 is invalid: expected an integer >= 1 and <= 64"),
    ("xla_cpu_threads", "many", "config.xla_cpu_threads='many' is invalid: expected one of ['single', 'default']"),
])
def test_bad_config_names_field_value_and_accepted(field, value, message):
    """validate() names the field, the value and what is accepted, before anything runs."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        run.validate(config)


def test_presets_validate():
    for preset in ("smoke", "quick", "paper"):
        run.validate(default.get_config(preset))
    assert claims.CALIBRATION_BAND == (0.35, 0.60)


def test_pg_method_validates_and_keeps_the_other_methods_keys():
    """autoprm_pg is an accepted method (in no preset's default list; last in METHOD_SPEC, after the methods whose
    keys fold in their index there, which must not move); it needs k >= 2 samples for its group baseline."""
    paper = default.get_config("paper")
    assert "autoprm_pg" not in paper.ei.methods and paper.ei.pg_kl == 0.05 and paper.ei.pg_adv_norm == "mean"
    assert list(run.METHOD_SPEC)[:5] == ["autoprm", "autoprm_nocgd", "autoprm_oraclev", "hack_cgd", "hack_nocgd"]
    assert run.ROLLOUT_KEY_OF["autoprm_pg"] == "autoprm"
    config = default.get_config("smoke")
    config.ei.methods = ("autoprm", "autoprm_pg")
    run.validate(config)
    config.ei.k = 1
    with pytest.raises(validation.ConfigError, match=re.escape("config.ei.k=1 is invalid: expected >= 2 when "
                                                               "ei.methods has ['autoprm_pg']")):
        run.validate(config)


@pytest.mark.slow  # ≈ 5 s on 2 busy cores, nearly all compilation (lib/losses' PG test covers the loss by default)
def test_pg_step_raises_positive_and_lowers_negative_advantage_sample():
    """One fine-tuning step of AutoPRM-PG (`make_step` on a pool with advantages, KL to the unchanged start) on a
    toy batch of two sampled continuations of one prompt: the log-probability of the one with advantage +1 rises
    and that of the one with advantage −1 falls; the reported KL is 0 at the reference itself."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from lib import arith_domain as ad
    from lib import losses, transformer

    mc = transformer.TransformerConfig(vocab_size=len(ad.VOCAB), d_model=16, n_layers=1, n_heads=2, max_len=32,
                                       positions="rotary")
    prompt = ["<BOS>", "<QA>", "ann", "has", "5", "<PRE>", "how", "many", "<MID>"]
    rows = [(prompt + ["8", "<ANS>"], [0] * len(prompt) + [1] * 2),  # no token shared: the two moves cannot cancel
            (prompt + ["2", "<PRE>"], [0] * len(prompt) + [1] * 2)]
    pool = jax.tree.map(jnp.asarray, run._ei_pool(rows, adv=[1.0, -1.0]))
    tx = optax.sgd(0.1)
    step = run.make_step(mc, tx, {"ei": 16}, pg_beta=0.05)

    def seq_logp(p):
        inputs, labels, lm = losses.shift_for_next_token(pool["ids"][:2], pool["loss_mask"][:2])
        return losses.sequence_logprobs(transformer.forward(p, inputs, config=mc)["logits"], labels, lm)

    @jax.jit  # one compilation for the whole check (init, both evaluations, the step)
    def check(key):
        params = transformer.init_params(mc, key)
        new, _, metrics = step(params, tx.init(params), jax.random.fold_in(key, 1), {"ei": pool, "ref": params})
        return seq_logp(params), seq_logp(new), metrics

    before, after, metrics = jax.tree.map(np.asarray, check(jax.random.key(0)))
    assert after[0] > before[0] and after[1] < before[1], (before, after)
    assert abs(float(metrics["kl_ei"])) < 1e-6 and np.isfinite(float(metrics["pg_ei"]))


def test_cli_bad_value_exits_2_before_writing(tmp_path):
    """A bad value on the command line is one line on stderr, exit status 2, and nothing is written."""
    cmd = [sys.executable, "-m", "projects.autoprm.main", "--config=configs/autoprm/default.py:smoke",
           f"--workdir={tmp_path / 'w'}", "--config.model.n_heads=3"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and "config.model.n_heads=3 is invalid" in out.stderr
    assert not (tmp_path / "w").exists()


def test_notebook_runs_on_the_smoke_run(smoke, tmp_path, monkeypatch):
    """colab/autoprm.ipynb top to bottom on this module's smoke run: the notebook resumes it (the same config) and runs
    every one of its cells. The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("autoprm", tmp_path, monkeypatch, reuse=smoke[0])


def _greedy_rerank_reference(params, mc, problems, *, config, reward, key):
    """The one-beam reranked search written out directly (the pre-beam implementation): per step, m samples,
    keep argmax log P + log R, abstain once every candidate's R < τ."""
    import jax
    import numpy as np

    from lib import arith_domain as ad
    from lib import expert_iteration as ei

    questions = run.decompose(params, mc, problems, config.eps_star, config=config)
    n, m = len(problems), config.eval.rerank_m
    sols, abstain = [[] for _ in range(n)], np.zeros(n, bool)
    for t in range(max(len(q) for q in questions)):
        active = [i for i in range(n) if t < len(questions[i])]
        prompts = [ad.encode(ad.qa_chain(problems[i], questions[i], sols[i], t, cgd=True)) for i in active]
        g = run.sample(params, mc, prompts, max_new=run.sub_max_new(config), stop=run.STOPS, k=m,
                       temperature=config.ei.temperature, key=jax.random.fold_in(key, t),
                       batch_rows=config.eval.batch_rows, max_len=config.model.max_len,
                       bucket=config.eval.prompt_bucket)
        cands = [[run._strip_stop(c) for c in row] for row in g["tokens"]]
        r = np.asarray(reward([(i, t, c) for i, row in zip(active, cands, strict=True) for c in row], sols),
                       float).reshape(len(active), m)
        best, abst = ei.rerank(g["logp"], r, tau=config.eval.rerank_tau)
        for j, i in enumerate(active):
            sols[i].append(cands[j][best[j]])
            abstain[i] |= bool(abst[j])
    return [[tuple(x) for x in s] for s in sols], abstain


def test_rerank_one_beam_matches_the_greedy_reference_and_two_beams_run():
    """`evaluate_rerank` with one beam reproduces the greedy reranking written out independently (the same chosen
    chains and abstentions, some problems abstaining and some not); with two beams it returns one full chain per
    problem. A smoke-size random model and a deterministic fake reward of the problem, step and candidate."""
    import jax
    import numpy as np

    from lib import transformer

    config = default.get_config("smoke")
    config.eval.rerank_tau = 0.5
    mc = run.model_config(config)
    params = transformer.init_params(mc, jax.random.key(1))
    problems = run.build_splits(config)["test"][:6]

    def reward_fn_for(probs, questions):
        def reward(items, sols):
            return [float((i + len(c) + t) % 3 == 0) for i, t, c in items]
        return reward

    key = jax.random.key(2)
    config.eval.rerank_beams = 1
    one = run.evaluate_rerank(params, mc, problems, config=config, reward_fn_for=reward_fn_for, key=key)
    ref_sols, ref_abstain = _greedy_rerank_reference(params, mc, problems, config=config,
                                                     reward=reward_fn_for(None, None), key=key)
    assert one["sols"] == ref_sols
    assert np.array_equal(one["abstain"], ref_abstain) and 0 < ref_abstain.sum() < len(problems)
    config.eval.rerank_beams = 2
    two = run.evaluate_rerank(params, mc, problems, config=config, reward_fn_for=reward_fn_for, key=key)
    assert two["correct"].shape == two["abstain"].shape == (len(problems),)
    assert len(two["sols"]) == len(problems)
    assert all(len(a) == len(b) for a, b in zip(two["sols"], one["sols"], strict=True))


@pytest.mark.slow  # ~1 min on 2 cores: a whole smoke run with AutoPRM-PG beside AutoPRM
def test_smoke_with_pg_shares_autoprm_rollouts_and_reports_pg_claim(tmp_path):
    """The smoke preset with AutoPRM and AutoPRM-PG: PG's round-1 rollouts are AutoPRM's (the same key, the same
    SFT model: equal tokens sampled, kept fraction and tampering gap), its round records the PG statistics, and the
    claims gain a "PG" entry (reported, never passing here: smoke is outside the calibration band)."""
    config = default.get_config("smoke")
    config.ei.methods = ("autoprm", "autoprm_pg")
    res = run.train_and_evaluate(config, str(tmp_path))
    hist = {m: json.load(open(tmp_path / "stages" / f"ei_{m}_s0.json"))["history"] for m in config.ei.methods}
    for k in ("tokens_sampled", "kept_frac", "tampering_gap", "sample_true_frac"):
        assert hist["autoprm_pg"][1][k] == pytest.approx(hist["autoprm"][1][k], nan_ok=True), k
    for k in ("pg_rows", "reward_mean", "adv_abs_mean", "pg_kl_last", "pg_term_last"):
        assert k in hist["autoprm_pg"][1], k
    assert "pg_kl_last" not in hist["autoprm"][1]
    by_id = {c["id"]: c for c in res["claims"]}
    assert [c["id"] for c in res["claims"]] == CLAIM_IDS + ["PG"]
    assert by_id["PG"]["holds"] in (None, False) and "our addition" in by_id["PG"]["claim"]
    assert "autoprm_pg/test/accuracy" in res["metrics"] and "ei/autoprm_pg/pg_kl_last_round1" in res["metrics"]


def test_work_units_cover_every_stage_once_verifiers_first_and_claims_are_exclusive(tmp_path):
    """The units the worker processes share: Distilling-LM and every seed's learned verifier before any EI method,
    each (method, seed) and each seed's SFT evaluations exactly once; a unit is claimed by one process only, and
    a killed run's claims are cleared before the next run's workers start."""
    config = default.get_config("paper")
    units = run.work_units(config)
    assert len(units) == len(set(units))
    seeds = range(config.num_seeds)
    assert units[:4] == ["distill"] + [f"verifier_s{s}" for s in seeds]
    assert {u for u in units if u.startswith("ei_")} == {f"ei_{m}_s{s}" for m in config.ei.methods for s in seeds}
    assert units[-3:] == [f"sft_s{s}" for s in seeds]
    config.ei.methods, config.distill.steps = ("autoprm_oraclev", "orm_rl"), 0  # no learned verifier needed
    assert run.work_units(config) == ["ei_autoprm_oraclev_s0", "ei_orm_rl_s0", "ei_autoprm_oraclev_s1", "ei_orm_rl_s1",
                                      "ei_autoprm_oraclev_s2", "ei_orm_rl_s2", "sft_s0", "sft_s1", "sft_s2"]
    os.makedirs(tmp_path / "stages" / "claims")
    assert run._claim(str(tmp_path), "verifier_s0") and not run._claim(str(tmp_path), "verifier_s0")


@pytest.mark.slow  # ≈ 2.5 min on 2 cores: two launches of the smoke preset with two seeds and Distilling-LM
def test_two_worker_processes_give_the_single_process_results(tmp_path):
    """`workers=2` runs the stages after SFT in two spawned processes sharing the stage cache; every stage's
    parameters, every metric and the decoded examples equal a one-process run's (a stage's keys depend on its seed
    and method only, not on the process computing it); the claim files are gone afterwards. Both runs are launched
    the same way (the command line), so they run under the same XLA settings."""
    import numpy as np

    env = dict(os.environ, REPROJAX_PROGRESS="0", PYTHONPATH=ROOT)
    runs = {}
    for workers in (1, 2):
        workdir = tmp_path / f"w{workers}"
        cmd = [sys.executable, "-m", "projects.autoprm.main", "--config=configs/autoprm/default.py:smoke",
               f"--workdir={workdir}", "--config.num_seeds=2", "--config.distill.steps=10",
               f"--config.workers={workers}"]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[workers] = workdir
    one, two = runs[1], runs[2]
    assert not (two / "stages" / "claims").exists()
    a, b = (json.load(open(w / "results.json"))["metrics"] for w in (one, two))
    for k, v in a.items():
        if not k.startswith("time/"):
            assert b[k] == pytest.approx(v, rel=0, abs=0, nan_ok=True), k  # equal, NaN included
    names = sorted(p.name for p in (one / "stages").glob("*.npz"))
    assert len(names) == 6  # 2 verifiers and 2 EI methods x 2 seeds
    for name in names:
        x, y = np.load(one / "stages" / name), np.load(two / "stages" / name)
        assert all(np.array_equal(x[k], y[k]) for k in x), name
    for name in ("distill_qd", "distill_qa", "sft"):  # checkpoints of the trained models exist in both
        assert (one / name).is_dir() and (two / name).is_dir(), name
    assert json.load(open(one / "examples.json")) == json.load(open(two / "examples.json"))


def test_readme_shows_the_decoded_problems_of_the_run_it_quotes(tmp_path):
    """The README block renders the examples.json written beside the results.json it quotes (a recorded paper run's
    own problems, not the default quick run's), and none when that run wrote none."""
    from projects.autoprm import readme

    results = json.load(open(os.path.join(ROOT, "recorded_runs", "autoprm_paper_staged_cpu", "results.json")))
    examples = [{"problem": "ann has 3 . how many does ann have ?", "gold": 3, "n_steps": 1,
                 "subquestions": ["how many does ann have ?"], "subsolutions": ["3"], "correct": True}]
    json.dump(examples, open(tmp_path / "examples.json", "w"))
    block = readme.render(results, run_dir=str(tmp_path))
    assert "ann has 3 . how many does ann have ?   [gold 3, right]" in block
    assert "Decoded test problems" not in readme.render(results, run_dir=str(tmp_path / "elsewhere"))
