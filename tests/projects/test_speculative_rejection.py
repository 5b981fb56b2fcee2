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
from tests.nbrun import execute_notebook

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


# ----------------------------------------------------------------------------- self-reward (spec §4.3)


def _tiny_lm():
    import jax

    from lib import transformer

    mc = transformer.TransformerConfig(vocab_size=37, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=24,
                                       max_len=64, positions="rotary", norm="rmsnorm", mlp="swiglu", tied_head=True)
    params = transformer.Transformer(mc).init(jax.random.key(0), np.zeros((1, 4), np.int32))["params"]
    return params, mc


def test_self_reward_batched_perplexity_equals_one_at_a_time():
    """The jitted batched −perplexity (left-padded prompts, right-padded responses, bucketed lengths) equals the
    official one-sequence-at-a-time definition on a tiny random model."""
    from projects.speculative_rejection import self_reward

    params, mc = _tiny_lm()
    rng = np.random.default_rng(0)
    seq = rng.integers(3, mc.vocab_size, (5, 13)).astype(np.int32)
    mask = np.ones_like(seq)
    mask[0, :3] = 0  # left padding (a shorter prompt)
    mask[1, 9:] = 0  # right padding (an early EOS)
    mask[2, :2], mask[2, 11:] = 0, 0
    seq[mask == 0] = 0
    ref = self_reward.neg_perplexity_reference(params, seq, mask, config=mc)
    score = self_reward.make_scorer(params, mc, chunk=2, length_bucket=8)
    np.testing.assert_allclose(score(seq, mask), ref, rtol=1e-5)
    assert (ref < -1).all()


def _tiny_checkpoint(tmp_path):
    """A tiny random Llama checkpoint with a word-level tokenizer.json (no chat template: raw text prompts)."""
    from hf_fixtures import VOCAB, save_tiny  # needs torch + transformers (skips without them)
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models

    save_tiny("llama_gqa", tmp_path)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, VOCAB)}}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    return str(tmp_path)


def test_self_reward_smoke(tmp_path):
    """The self-reward smoke preset on a tiny random checkpoint: claims and plot written, every chosen response is
    a Best-of-N sample, α=0 picks Best-of-b0's best, b0 = min(8·N0, N0·T/τ_min) with the shared prompt KV."""
    from configs.speculative_rejection import self_reward as self_cfg

    c = self_cfg.get_config("smoke")
    c.self_reward.model = _tiny_checkpoint(tmp_path / "ckpt")
    res = run.train_and_evaluate(c, str(tmp_path / "run"))
    m = res["metrics"]
    assert {x["id"] for x in res["claims"]} == {"SR.common_random_numbers", "SR.self.ppl_alpha05",
                                               "SR.self.speedup_alpha05_roofline", "SR.self.faster_all_costs"}
    assert next(x for x in res["claims"] if x["id"] == "SR.common_random_numbers")["holds"] is True
    assert m["spr/0/b0"] == 8 and m["spr/0.5/batches_prompt0"][0] == 8
    assert m["bon/N2/score"] == pytest.approx(100.0)
    records = [json.load(open(tmp_path / "run" / "prompts" / f"{j:04d}.json")) for j in range(2)]
    for r in records:  # α=0 keeps every row: its choice is the best of the first b0 samples
        assert r["spr"]["0.0"]["rm"] == pytest.approx(max(r["rm"][:8]), rel=1e-5)
    assert m["spr/0/ppl"] <= m["bon/N2/ppl"] + 1e-6 and m["wall_prompts"] == 1
    assert (tmp_path / "run" / "score_vs_compute.png").stat().st_size > 10_000


@pytest.mark.parametrize("field,value,match", [
    ("self_reward.model", "no-such-model", "self_reward.model"),
    ("self_reward.prompts_file", "/nonexistent.txt", "self_reward.prompts_file"),
    ("self_reward.score_chunk", 0, "self_reward.score_chunk"),
    ("experiment.bon_multiples", (1, 2), "Speculative Rejection.s b0 = 32"),
])
def test_self_reward_bad_config_names_field(field, value, match):
    from configs.speculative_rejection import self_reward as self_cfg

    c = self_cfg.get_config("quick")
    c.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=match):
        run.validate(c)


def test_notebook_runs_on_the_smoke_run(smoke, tmp_path, monkeypatch):
    """colab/speculative_rejection.ipynb top to bottom on this module's smoke run:
    the notebook resumes it (the same config) and runs every one of its cells.
    The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("speculative_rejection", tmp_path, monkeypatch, reuse=smoke[0])
