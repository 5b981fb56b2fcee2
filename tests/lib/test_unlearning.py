"""TOFU protocol: files (lib/tofu_data.py), metrics (lib/tofu_metrics.py), word tokenizer (lib/text.py) and
synthetic TOFU-like generator (lib/tofu_synth.py): hand-computed metric values, brute-force references, the
rouge-score package, reader round-trips, real TOFU files."""

import itertools
import json
import math
import os

import jax
import nltk
import numpy as np
import optax
import pytest
import scipy.special
from rouge_score import rouge_scorer

from lib import text, tofu_data, tofu_synth
from lib import tofu_metrics as M
from lib import unlearning_train as UT
from lib.transformer import TransformerConfig, init_params

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tofu_dir():
    return os.environ.get("REPROJAX_TOFU_DIR") or os.path.join(REPO, "..", "shared", "data", "tofu")


# --- metrics ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,floor", [(40, 1.86e-23), (200, 1.94e-119), (300, 1.48e-179)])
def test_forget_quality_complete_separation_floor(n, floor):
    """Two separated samples of n give the KS floor 2/C(2n, n) (spec §3.1: 1.94e-119 at n = 200)."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, n), rng.uniform(2, 3, n)
    p = M.forget_quality(a, b)
    assert p == pytest.approx(floor, rel=1e-2)
    assert p == pytest.approx(2 / scipy.special.comb(2 * n, n, exact=True), rel=1e-9)
    assert M.forget_quality(a, a) == 1.0
    # monotone transforms of the truth ratio do not change FQ (R vs 1/R vs log R)
    c = rng.uniform(0.2, 2, 50)
    d = rng.uniform(0.3, 3, 60)
    assert M.forget_quality(c, d) == pytest.approx(M.forget_quality(1 / c, 1 / d), rel=1e-12)
    assert M.forget_quality(c, d) == pytest.approx(M.forget_quality(np.log(c), np.log(d)), rel=1e-12)


def test_model_utility_harmonic_mean_and_zero():
    vals = [0.9, 0.5, 0.4, 0.6, 0.45, 0.55, 0.3, 0.98, 0.48]
    assert M.model_utility(vals) == pytest.approx(9 / sum(1 / v for v in vals), rel=1e-12)
    assert M.model_utility(dict(zip(M.MU_KEYS, vals, strict=True))) == pytest.approx(9 / sum(1 / v for v in vals))
    assert M.model_utility(vals[:8] + [0.0]) == 0.0
    # the SimNPO forget05 "Original" row: RA/WF/Retain (RL, P, TR) → MU 0.62
    orig = [0.98, 0.99, 0.48, 0.93, 0.44, 0.58, 0.91, 0.43, 0.55]
    assert M.model_utility(orig) == pytest.approx(0.62, abs=0.01)
    with pytest.raises(ValueError, match="got 8 numbers, expected 9"):
        M.model_utility(vals[:8])
    with pytest.raises(ValueError, match=r"missing \['world_facts/truth_ratio'\]"):
        M.model_utility({k: 0.5 for k in M.MU_KEYS[:8]})


def test_truth_ratio_variants_by_hand():
    """Geometric (code) vs arithmetic (paper) mean; forget side min(R,1/R), utility side max(0, 1−R);
    and a transcription of TOFU's code path (exp(mean perturbed avg loss − paraphrased avg loss) = 1/R)."""
    para = np.log([0.5, 0.1])                      # p̄(ã)
    pert = np.log([[0.25, 0.04], [0.2, 0.05]])     # p̄(â_j), m = 2
    geo = M.truth_ratio(para, pert)
    np.testing.assert_allclose(geo, [math.sqrt(0.25 * 0.04) / 0.5, math.sqrt(0.2 * 0.05) / 0.1])  # [0.2, 1.0]
    ari = M.truth_ratio(para, pert, mean="arithmetic")
    np.testing.assert_allclose(ari, [(0.25 + 0.04) / 2 / 0.5, (0.2 + 0.05) / 2 / 0.1])
    assert M.truth_ratio_score([0.2, 1.0, 4.0], "forget") == pytest.approx((0.2 + 1.0 + 0.25) / 3)
    assert M.truth_ratio_score([0.2, 1.0, 4.0], "utility") == pytest.approx((0.8 + 0 + 0) / 3)
    # TOFU aggregate_stat_eval, with avg losses = −avg log-probs
    avg_para_loss, avg_pert_loss = -para, -pert
    curr_stat_1 = np.exp(avg_pert_loss.mean(-1) - avg_para_loss)
    assert M.truth_ratio_score(geo, "forget") == pytest.approx(np.mean(np.minimum(curr_stat_1, 1 / curr_stat_1)))
    assert M.truth_ratio_score(geo, "utility") == pytest.approx(np.mean(np.maximum(0, 1 - 1 / curr_stat_1)))
    with pytest.raises(ValueError, match="side='retain' is invalid"):
        M.truth_ratio_score(geo, "retain")
    with pytest.raises(ValueError, match="mean='median' is invalid"):
        M.truth_ratio(para, pert, mean="median")


def test_probabilities_by_hand():
    assert M.probability(np.log([0.5, 0.25])) == pytest.approx(0.375)
    assert M.avg_logp([-6.0, -2.0], [3, 0]).tolist() == [-2.0, -2.0]
    got = M.option_probability(np.log([0.6]), np.log([[0.2, 0.1, 0.1]]))
    assert got == pytest.approx(0.6 / 1.0)


def _lcs_brute(a, b):
    """Longest common subsequence by enumerating the subsequences of the shorter list."""
    if len(a) > len(b):
        a, b = b, a
    for k in range(len(a), 0, -1):
        for idx in itertools.combinations(range(len(a)), k):
            sub = [a[i] for i in idx]
            it = iter(b)
            if all(x in it for x in sub):
                return k
    return 0


def test_rouge_l_recall_is_the_rouge_score_package_offline(monkeypatch):
    """ROUGE-L recall is rouge-score's RougeScorer(["rougeL"], use_stemmer=True) recall (TOFU's evaluation): stemmed
    ("unemployment" ~ "unemployed"), LCS / reference length (a brute-force LCS on unstemmed words), and it runs
    without NLTK data (any download attempt fails this test)."""
    def no_download(*args, **kwargs):
        raise AssertionError(f"nltk tried to download or load data: {args}")

    monkeypatch.setattr(nltk, "download", no_download)
    monkeypatch.setattr(nltk.data, "load", no_download)
    monkeypatch.setattr(nltk.data, "find", no_download)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert M.rouge_l_recall("unemployment", "unemployed") == 1.0 == scorer.score("unemployment", "unemployed")[
        "rougeL"].recall
    assert M.rouge_l_recall("The cat sat on the mat.", "the cat is on a mat") == pytest.approx(4 / 6)
    assert M.rouge_l_recall("Running dogs!", "a dog runs") == pytest.approx(1 / 2)   # running → run, dogs → dog
    assert M.rouge_l_recall("Running dogs!", "run dog", use_stemmer=False) == 0.0
    assert M.rouge_l_recall("", "anything") == 0.0
    rng = np.random.default_rng(1)
    words = ["a", "b", "c", "d", "e"]
    refs, preds = [], []
    for _ in range(30):
        refs.append(list(rng.choice(words, rng.integers(1, 8))))
        preds.append(list(rng.choice(words, rng.integers(0, 8))))
    got = M.rouge_l_recalls([" ".join(x) for x in refs], [" ".join(y) for y in preds], use_stemmer=False)
    assert got == pytest.approx([_lcs_brute(x, y) / len(x) for x, y in zip(refs, preds, strict=True)])


# --- reader -------------------------------------------------------------------------------------------------

def test_reader_round_trip_and_errors(tmp_path):
    recs = [{"question": "Q1?", "answer": "A one.", "paraphrased_answer": "One A.", "perturbed_answer": ["B.", "C."],
             "paraphrased_question": "Q one?"},
            {"question": "Q2?", "answer": "A two.", "paraphrased_answer": "Two A.", "perturbed_answer": ["D.", "E."],
             "paraphrased_question": "Q two?"}]
    tofu_data.write_tofu(str(tmp_path), "forget05_perturbed", recs)
    assert tofu_data.read_tofu(str(tmp_path), "forget05_perturbed") == recs
    # a JSON array in a .jsonl file reads the same
    (tmp_path / "full.jsonl").write_text(json.dumps([{"question": "q", "answer": "a"}]))
    assert tofu_data.read_tofu(str(tmp_path), "full") == [{"question": "q", "answer": "a"}]
    assert tofu_data.list_tofu_splits(str(tmp_path)) == ["forget05_perturbed", "full"]
    with pytest.raises(FileNotFoundError, match=r"'retain90' not found .* available splits: \['forget05_perturbed', "
                                                r"'full'\]"):
        tofu_data.read_tofu(str(tmp_path), "retain90")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tofu_data.read_tofu(str(tmp_path / "nope"), "full")
    tofu_data.write_tofu(str(tmp_path), "retain_perturbed",
                         [{"question": "q", "answer": "a", "perturbed_answer": ["b"]}])
    with pytest.raises(ValueError, match=r"item 0 lacks field\(s\) \['paraphrased_answer'\]"):
        tofu_data.read_tofu(str(tmp_path), "retain_perturbed")
    tofu_data.write_idk(str(tmp_path), ["I don't know.", "No idea."])
    assert tofu_data.read_idk(str(tmp_path)) == ["I don't know.", "No idea."]


# --- tokenizer ----------------------------------------------------------------------------------------------

def test_word_tokenizer_encode_qa_labels():
    tok = text.WordTokenizer.build(["Who wrote it?", "Ann Lee wrote \"The Tide\"."])
    assert tok.vocab[:5] == list(text.SPECIALS)
    b = text.encode_qa(tok, ["Who wrote it?", "Who?"], ["Ann Lee wrote it.", "Ann."])
    ids, labels, mask = b["input_ids"], b["labels"], b["attention_mask"]
    q0 = tok.encode("Who wrote it?")
    a0 = tok.encode("Ann Lee wrote it.")
    assert ids[0].tolist() == [text.BOS] + q0 + [text.SEP] + a0 + [text.EOS]
    assert labels[0].tolist() == [-100] * (len(q0) + 2) + a0 + [text.EOS]
    assert labels[1].tolist()[-3:] == [-100] * 3 and mask[1].sum() == 1 + 2 + 1 + 2 + 1  # bos who ? sep ann . eos
    assert tok.decode(ids[0][len(q0) + 2:]) == "ann lee wrote it ."
    assert tok.encode("zebra") == [text.UNK]
    p = text.encode_prompts(tok, ["Who?", "Who wrote it?"])
    assert p["prompt_ids"][0].tolist()[:2] == [text.PAD, text.PAD] and p["prompt_ids"][0, -1] == text.SEP
    t = text.encode_qa(tok, ["Who?"], ["Ann Lee wrote it."], max_len=6)
    assert t["truncated"] == 1 and t["labels"][0].tolist() == [-100, -100, -100, -100] + tok.encode("Ann Lee")
    with pytest.raises(ValueError, match="max_len=3 is invalid"):
        text.encode_qa(tok, ["Who wrote it?"], ["Ann."], max_len=3)
    assert text.WordTokenizer.from_json(tok.to_json()).vocab == tok.vocab


# --- synthetic generator ------------------------------------------------------------------------------------

def test_generator_determinism_splits_and_format():
    d = tofu_synth.generate_tofu_like(3, n_authors=100, n_questions=10, n_real_authors=30, n_world_facts=40)
    assert d == tofu_synth.generate_tofu_like(3, n_authors=100, n_questions=10, n_real_authors=30,
                                              n_world_facts=40)
    assert d["full"] != tofu_synth.generate_tofu_like(4, n_authors=100, n_questions=10, n_real_authors=30,
                                                      n_world_facts=40)["full"]
    assert len(d["full"]) == 1000 and len(d["forget01"]) == 10 and len(d["forget05"]) == 50
    assert len(d["forget10_perturbed"]) == 100 and len(d["retain_perturbed"]) == 100
    for pct, keep in ((1, "retain99"), (5, "retain95"), (10, "retain90")):
        assert d[keep] + d[f"forget{pct:02d}"] == d["full"]
    forget_authors = {r["author"] for r in d["forget10_perturbed"]}
    assert not forget_authors & {r["author"] for r in d["retain_perturbed"]}
    assert forget_authors == set(range(90, 100))
    for r in d["forget10_perturbed"] + d["retain_perturbed"]:
        assert len(r["perturbed_answer"]) == 5 and len(set(r["perturbed_answer"])) == 5
        assert r["paraphrased_answer"] != r["answer"] and r["paraphrased_answer"] not in r["perturbed_answer"]
        assert r["question"] != r["paraphrased_question"]
    for k in ("real_authors_perturbed", "world_facts_perturbed"):
        assert all(len(r["perturbed_answer"]) == 3 and r["answer"] not in r["perturbed_answer"] for r in d[k])
    assert all({r["option1"], r["option2"], r["option3"], r["option4"]} >= {r["answer"]} for r in d["real_authors"])
    assert len(d["idontknow"]) == 100 == len(set(d["idontknow"]))
    # every fact appears in the pre-training split, the evaluation phrasing included
    pre = {(r["question"], r["answer"]) for r in d["pretrain"]}
    assert all((r["question"], r["answer"]) in pre for r in d["real_authors_perturbed"] + d["world_facts_perturbed"])


def test_generator_templates_are_author_independent():
    """Template independence: the template of a paraphrased answer is used in TRAINING answers of other authors of
    the same question type, so only the slot values tie an answer to its author."""
    d = tofu_synth.generate_tofu_like(0, n_authors=40, n_questions=20, n_real_authors=10, n_world_facts=10)
    authors = d["authors"]
    qtypes = {q[0]: q for q in tofu_synth.QTYPES}

    def template_of(rec, ans):
        _, _, _, pool = qtypes[rec["qtype"]]
        a = authors[rec["author"]]
        hits = [i for i, t in enumerate(pool) if tofu_synth._fill(t, a) == ans]
        assert len(hits) >= 1
        return hits[0]

    full = d["forget10_perturbed"] + d["retain_perturbed"]
    train_templates, by_type = {}, {}
    for r in full:
        by_type.setdefault(r["qtype"], set()).add(template_of(r, r["answer"]))
        train_templates[(r["author"], r["qtype"])] = template_of(r, r["answer"])
    for r in full:
        tp = template_of(r, r["paraphrased_answer"])
        assert tp != train_templates[(r["author"], r["qtype"])]
        assert tp in by_type[r["qtype"]]  # seen in training with another author


def test_synthetic_written_files_read_back_and_score(tmp_path):
    d = tofu_synth.write_tofu_like(str(tmp_path), seed=1, n_authors=50, n_questions=8, n_real_authors=20,
                                   n_world_facts=20)
    assert tofu_data.read_tofu(str(tmp_path), "full") == d["full"]
    ev = tofu_data.load_tofu_eval(str(tmp_path), "forget05")
    assert ev["forget"] == d["forget05_perturbed"] and ev["real_authors"] == d["real_authors_perturbed"]
    assert tofu_data.read_idk(str(tmp_path)) == d["idontknow"]
    # a scorer that knows the answers: true answers get higher per-token log-prob than everything else
    truth = {(r["question"], r["answer"]) for k in ("full", "real_authors_perturbed", "world_facts_perturbed")
             for r in d[k]} | {(r["question"], r["paraphrased_answer"]) for r in d["forget05_perturbed"]
                                + d["retain_perturbed"]}

    def logprob_fn(qs, ans):
        n = np.array([len(text.words(a)) + 1 for a in ans], float)
        return np.where([(q, a) in truth for q, a in zip(qs, ans, strict=True)], -0.1, -1.0) * n, n

    def generate_fn(qs):
        return [r["answer"] for r in ev["forget"]][: len(qs)] if qs[0] == ev["forget"][0]["question"] else \
            ["nothing"] * len(qs)

    out = M.evaluate_tofu_fns(ev, logprob_fn, generate_fn, retain_truth_ratios=np.full(50, 0.5))
    r_true = math.exp(-1.0 + 0.1)  # geometric mean of perturbed / paraphrased
    assert out["forget_truth_ratio"] == pytest.approx(r_true)
    assert out["mu_parts"]["retain/truth_ratio"] == pytest.approx(1 - r_true)
    assert out["mu_parts"]["retain/prob"] == pytest.approx(math.exp(-0.1))
    assert out["mu_parts"]["real_authors/prob"] == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) +
                                                                                   3 * math.exp(-1.0)))
    assert out["forget_rougeL_recall"] == pytest.approx(1.0) and out["mu_parts"]["retain/rougeL_recall"] == 0.0
    assert out["model_utility"] == 0.0  # a zero part → MU = 0
    assert out["forget_quality"] == pytest.approx(2 / scipy.special.comb(100, 50, exact=True), rel=1e-6)


# --- the real TOFU files ------------------------------------------------------------------------------------

def test_real_tofu_reader_and_metrics():
    d = _tofu_dir()
    if not os.path.isfile(os.path.join(d, "full.json")):
        pytest.skip(f"real TOFU data not found at {d} (set REPROJAX_TOFU_DIR to a directory with full.json)")
    full = tofu_data.read_tofu(d, "full")
    assert len(full) == 4000
    assert tofu_data.read_tofu(d, "forget10") == full[-400:] and tofu_data.read_tofu(d, "retain90") == full[:3600]
    ev = tofu_data.load_tofu_eval(d, "forget10")
    assert {k: len(v) for k, v in ev.items()} == {"forget": 300, "retain": 300, "real_authors": 100,
                                                   "world_facts": 117}
    assert len(tofu_data.load_tofu_eval(d, "forget10", ds_size=None)["forget"]) == 400
    assert all(len(r["perturbed_answer"]) == 5 for r in ev["forget"] + ev["retain"])
    assert all(len(r["perturbed_answer"]) == 3 for r in ev["real_authors"] + ev["world_facts"])
    assert len(tofu_data.read_idk(d)) == 100
    # a unigram "model" from full.json scores every split; FQ of a model against itself is 1
    tok = text.WordTokenizer.from_records(full)
    counts = np.bincount([i for r in full for i in tok.encode(r["answer"])], minlength=len(tok)) + 1.0
    logp = np.log(counts / counts.sum())

    def logprob_fn(qs, ans):
        ids = [tok.encode(a) + [text.EOS] for a in ans]
        return np.array([logp[i].sum() for i in ids]), np.array([len(i) for i in ids], float)

    # "generations": the paraphrased answer (authors) or the first wrong option (real authors, world facts)
    gen = {r["question"]: r.get("paraphrased_answer", r["perturbed_answer"][0] + " " + r["answer"])
           for k in ev for r in ev[k]}
    out = M.evaluate_tofu_fns(ev, logprob_fn, lambda qs: [gen[q] for q in qs])
    fr = out["splits"]["forget"]["truth_ratios"]
    assert M.forget_quality(fr, fr) == 1.0
    assert 0 < out["model_utility"] < 1 and all(0 <= v <= 1 for v in out["mu_parts"].values())
    assert 0 < out["forget_truth_ratio"] <= 1
    # ROUGE-L recall of the paraphrased answers against the gold answers: partial overlap, strictly between 0 and 1
    rl = np.mean([M.rouge_l_recall(r["answer"], r["paraphrased_answer"]) for r in ev["forget"]])
    assert 0.2 < rl < 0.7


def test_hf_qa_format_with_a_tiny_tokenizers_vocab():
    """HFQAFormat gives a `tokenizers.Tokenizer` the QA interface: [BOS] + "[INST] q [/INST]" prompt masked,
    answer + EOS labelled, padding with EOS (TOFU's collator), decode stops at EOS."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "who", "wrote", "it", "?",
                                         "ann", "lee", "."])}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([tokenizers.pre_tokenizers.WhitespaceSplit(),
                                                           tokenizers.pre_tokenizers.Punctuation()])
    tk.normalizer = tokenizers.normalizers.Lowercase()
    tk.decoder = tokenizers.decoders.WordPiece(prefix="##")
    tk.add_special_tokens(["<s>", "</s>", "[INST]", "[/INST]"])
    fmt = text.HFQAFormat(tk)
    b = text.encode_qa(fmt, ["Who wrote it?", "Who?"], ["Ann Lee.", "Ann."])
    assert b["input_ids"][0].tolist() == [1, 3, 5, 6, 7, 8, 4, 9, 10, 11, 2]
    assert b["labels"][0].tolist() == [-100] * 7 + [9, 10, 11, 2]
    assert b["input_ids"][1].tolist()[-4:] == [2, 2, 2, 2] and b["labels"][1].tolist()[-3:] == [-100] * 3
    assert fmt.decode([9, 10, 11, 2, 5]) == "ann lee."
    assert text.encode_prompts(fmt, ["Who?", "Who wrote it?"])["prompt_ids"][0].tolist()[:2] == [2, 2]
    with pytest.raises(ValueError, match="token '<pad>' is not in the tokenizer's vocabulary"):
        text.HFQAFormat(tk, pad_token="<pad>")


def test_take_trim_cuts_only_padding_and_keeps_the_step():
    """take(trim=k) cuts a batch to its longest row rounded up to k; the fine-tuning step's loss is unchanged."""
    recs = [("who", "a b"), ("what is it", "c d e f g h i j k l m n o p q r s t")]
    tok = text.WordTokenizer.from_records([{"question": q, "answer": a} for q, a in recs])
    enc = text.encode_qa(tok, [q for q, _ in recs], [a for _, a in recs], max_len=64)
    short = UT.take(enc, np.array([0, 0]), trim=8)
    assert short["input_ids"].shape == (2, 8) and enc["input_ids"].shape == (2, 64)
    assert int(enc["attention_mask"][0].sum()) <= 8
    both = UT.take(enc, np.array([0, 1]), trim=8)
    assert both["input_ids"].shape[1] == 8 * -(-int(enc["attention_mask"][1].sum()) // 8)
    cfg = TransformerConfig(vocab_size=len(tok), d_model=16, n_layers=1, n_heads=2, max_len=64)
    params = init_params(cfg, jax.random.key(0))
    opt = optax.sgd(0.0)
    step = UT.make_finetune_step(config=cfg, optimizer=opt)
    full = step(params, opt.init(params), UT.take(enc, np.array([0, 1])))[2]
    cut = step(params, opt.init(params), both)[2]
    np.testing.assert_allclose(float(cut["loss"]), float(full["loss"]), rtol=1e-5)
