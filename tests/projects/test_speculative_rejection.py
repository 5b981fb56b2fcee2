"""speculative_rejection: the TKL language and gold reward by hand, the smoke run end to end (claims, plots,
common random numbers, α=0 = Best-of-b0, resume), bad configs, and real checkpoints built by the test."""

import json
import os
import sys

import numpy as np
import pytest

from configs.speculative_rejection import default, real_models
from harness import validation
from projects.reproduce import REGISTRY
from projects.speculative_rejection import models, run, tkl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))  # tests/lib/hf_fixtures.py

EXPECTED = {"SR.speedup_alpha05_roofline", "SR.speedup_alpha05_flops", "SR.gold_win_alpha05",
            "SR.common_random_numbers", "SR.partial_final_correlation", "SR.bon_log_linear"}
LANG = tkl.Language()


def _w(cluster, i):
    return tkl.WORD0 + cluster * tkl.CLUSTER_SIZE + i


def test_gold_reward_by_hand():
    """Coverage, on-topic and good-word rates, violations, motifs, the missing-EOS penalty and length, on crafted
    responses."""
    prompt = np.array([tkl.BOS, tkl.TOPIC0 + 0, tkl.TOPIC0 + 1, tkl.TOPIC0 + 2, tkl.SEP])  # clusters 0, 1, 2
    succ = tkl.grammar(LANG)
    a = 0 * 10  # word index 0 (cluster 0's first word): the motif start
    m1, m2 = succ[a, 0], succ[succ[a, 0], 0]
    invalid = next(j for j in range(10) if j not in succ[m2] and j != m2)
    resp = np.array([[tkl.WORD0 + a, tkl.WORD0 + m1, tkl.WORD0 + m2, tkl.WORD0 + invalid, _w(5, 0), tkl.EOS, 0, 0]])
    c = tkl.gold_components(prompt, resp, LANG)
    assert c["coverage"][0] == 1 and c["motifs"][0] == 1 and c["length"][0] == 6 and not c["no_eos"][0]
    assert c["on_topic"][0] == pytest.approx(4 / 5) and c["violation"][0] == pytest.approx(1 / 5)
    good = np.mean([w % 10 < 5 for w in (a, m1, m2, invalid, 50)])
    assert c["good"][0] == pytest.approx(good)
    g = tkl.gold_reward(prompt, resp, LANG)[0]
    assert g == pytest.approx(2 / 3 + 0.8 + 1.5 * good - 0.4 + 0.0 * 1 - 0.012)
    with_motifs = tkl.Language(w_motif=0.5)
    assert tkl.gold_reward(prompt, resp, with_motifs)[0] == pytest.approx(g + 0.5)
    no_eos = resp.copy()
    no_eos[0, 5] = _w(1, 0)
    assert tkl.gold_reward(prompt, no_eos, LANG)[0] < tkl.gold_reward(prompt, no_eos, LANG, as_complete=True)[0]


def test_corpus_prefix_predicts_reward():
    """The corpus process's calibration (spec §5.2): gold(prefix) vs gold(final) Pearson rises from moderate at
    τ=8 to high at τ=64, and Best-of-N's gold grows with N."""
    rng = np.random.default_rng(0)
    p = np.repeat(tkl.sample_prompts(8, rng), 256, axis=0)
    y = tkl.sample_corpus(p, LANG, rng)
    g = tkl.gold_reward(p, y, LANG)
    r = {t: np.mean([np.corrcoef(tkl.gold_reward(p[i::8], y[i::8, :t], LANG, as_complete=True), g[i::8])[0, 1]
                     for i in range(8)]) for t in (8, 64)}
    assert 0.25 < r[8] < 0.65 and r[64] > 0.8
    assert (y[:, 0] != tkl.EOS).mean() > 0.9 and ((y == tkl.EOS).sum(1) <= 1).all()


def test_rm_inputs_append_eos_as_if_complete():
    """Prefixes get EOS appended (and the mask covers it) only when asked and only when they have none."""
    prompt = np.array([tkl.BOS, 4, 5, 6, tkl.SEP])
    resp = np.array([[20, 21, 22], [20, tkl.EOS, 0]])
    seq, mask = models.rm_inputs(prompt, resp, append_eos=True)
    assert seq[0, 5:9].tolist() == [20, 21, 22, tkl.EOS] and mask[0].sum() == 9
    assert seq[1, 5:7].tolist() == [20, tkl.EOS] and mask[1].sum() == 7
    seq, mask = models.rm_inputs(prompt, resp, append_eos=False)
    assert mask[0].sum() == 8 and seq[0, 8] == tkl.PAD


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("spr_smoke")
    return workdir, run.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_writes_every_claim_and_plot(smoke):
    """results.json has every claim (holds in {True, False, None}) and the four plots; the project is registered as
    built for projects.reproduce."""
    workdir, res = smoke
    on_disk = json.load(open(workdir / "results.json"))
    assert {c["id"] for c in on_disk["claims"]} == EXPECTED
    assert next(p for p in REGISTRY if p.name == "speculative_rejection").built  # reproduce runs it
    assert set(res["plots"]) == {"score_vs_compute.png", "gold.png", "correlation.png", "schedule.png"}
    for plot in res["plots"]:
        assert (workdir / plot).stat().st_size > 10_000


def test_smoke_common_random_numbers_and_alpha0(smoke):
    """Every chosen response is a Best-of-N sample token for token; α=0 picks Best-of-b0's argmax on every
    prompt; the schedule starts at b0 and respects the memory budget; Best-of-N rises with N."""
    _, res = smoke
    m = res["metrics"]
    assert m["spr/0/chosen_is_bon_sample"] == 1.0 and m["spr/0.5/chosen_is_bon_sample"] == 1.0
    assert m["spr/0/chose_bon_b0_winner"] == 1.0 and m["spr/0/winner_survival"] == 1.0
    assert m["b0"] == 16 and m["spr/0.5/batches_prompt0"][0] == 16
    for b, L in zip(m["spr/0.5/batches_prompt0"], m["spr/0.5/decision_lengths_prompt0"], strict=True):
        assert b * (L + tkl.PROMPT_LEN) <= m["memory_slots"] or L == m["spr/0.5/decision_lengths_prompt0"][0]
    scores = [m[f"bon/N{4 * k}/score"] for k in (1, 2, 4)]
    assert scores[0] == pytest.approx(100.0) and scores[0] < scores[1] < scores[2]
    assert m["spr/0/rel_roofline"] > m["spr/0.5/rel_roofline"]


def test_smoke_rerun_resumes(smoke, tmp_path):
    """A rerun in the same workdir reads the per-prompt records and trained models instead of recomputing."""
    workdir, res = smoke
    again = run.train_and_evaluate(default.get_config("smoke"), str(workdir))
    assert again["metrics"]["spr/0.5/score"] == res["metrics"]["spr/0.5/score"]
    assert again["metrics"]["train_seconds"] < 5


@pytest.mark.parametrize("field,value,match", [
    ("experiment.alphas", (0.5, 1.0), "rejection rates in"),
    ("experiment.bon_multiples", (1, 2), "Speculative Rejection.s b0 = 16"),
    ("experiment.tau_min", 500, "experiment.tau_min"),
    ("language.epsilon", 1.5, "language.epsilon"),
    ("experiment.rank_pool", "official", "one of \\['active', 'with_finished'\\]"),
    ("experiment.top_k", 10_000, "experiment.top_k=10000 is invalid"),
    ("generator.n_heads", 5, "a divisor of generator.d_model"),
])
def test_bad_config_names_field(field, value, match):
    c = default.get_config("smoke")
    c.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=match):
        run.validate(c)


def test_real_config_without_checkpoints_says_how_to_point_at_one():
    c = real_models.get_config("smoke")
    with pytest.raises(validation.ConfigError, match="real.generator_dir"):
        run.validate(c)


def test_real_checkpoints(tmp_path):
    """A tiny random GPT-2 generator and a tiny Llama reward model (scalar head) built by the test: the run
    writes its claims, chosen responses are Best-of-N samples, α=0 keeps every row."""
    from hf_fixtures import save_tiny  # here, not at the top: it needs torch + transformers (skips without them)

    save_tiny("gpt2", tmp_path / "gen")
    save_tiny("llama", tmp_path / "rm", reward=True)
    c = real_models.get_config("smoke")
    c.real.generator_dir, c.real.reward_dir = str(tmp_path / "gen"), str(tmp_path / "rm")
    res = run.train_and_evaluate(c, str(tmp_path / "run"))
    m = res["metrics"]
    assert {x["id"] for x in res["claims"]} == {"SR.common_random_numbers", "SR.real.speedup_alpha05"}
    assert next(x for x in res["claims"] if x["id"] == "SR.common_random_numbers")["holds"] is True
    assert m["bon/N4/score"] == pytest.approx(100.0)
    assert m["spr/0/rel_flops"] > m["spr/0.9/rel_flops"]
    c.real.reward_dir = str(tmp_path / "gen")
    with pytest.raises(validation.ConfigError, match="scalar head"):
        run.train_and_evaluate(c, str(tmp_path / "run2"))
