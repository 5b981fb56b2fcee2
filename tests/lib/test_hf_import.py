"""lib/hf_import.py: sharded checkpoints, clear errors, tokenizer round trip."""

import json
import os

import numpy as np
import pytest
from hf_fixtures import random_ids, save_tiny, torch

from lib import hf_import


def test_sharded_checkpoint_loads(tmp_path):
    """A checkpoint split into shards with an index loads to the same logits as transformers."""
    ref_model = save_tiny("llama_gqa", tmp_path, max_shard_size="20KB")
    assert os.path.exists(tmp_path / "model.safetensors.index.json")
    ids = random_ids((1, 5))
    with torch.no_grad():
        ref = ref_model(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(hf_import.load_model(tmp_path)(ids), ref, atol=1e-4, rtol=1e-4)


def test_missing_directory_and_config(tmp_path):
    """A missing directory or config.json is named in the error."""
    with pytest.raises(hf_import.CheckpointError, match="does not exist"):
        hf_import.load_model(tmp_path / "nope")
    with pytest.raises(hf_import.CheckpointError, match="has no config.json"):
        hf_import.load_model(tmp_path)


def test_pickle_checkpoints_are_refused(tmp_path):
    """Only safetensors are read; a pytorch_model.bin is refused with a hint."""
    save_tiny("gpt2", tmp_path)
    os.rename(tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin")
    with pytest.raises(hf_import.CheckpointError, match="pickle files .*pytorch_model.bin.* not accepted"):
        hf_import.load_model(tmp_path)


def test_unknown_architecture(tmp_path):
    """An unsupported model_type lists the supported ones."""
    save_tiny("gpt2", tmp_path)
    cfg = json.load(open(tmp_path / "config.json"))
    cfg["model_type"] = "bert"
    json.dump(cfg, open(tmp_path / "config.json", "w"))
    with pytest.raises(hf_import.CheckpointError, match=r"model_type='bert' is not supported: expected one of"):
        hf_import.load_model(tmp_path)


def test_shape_mismatch_and_dtype_name_the_tensor(tmp_path):
    """A tensor of the wrong shape or dtype is named with what was expected."""
    from safetensors.numpy import load_file, save_file

    save_tiny("gpt2", tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    name = next(k for k in tensors if k.endswith("h.0.ln_1.weight"))
    bad = dict(tensors)
    bad[name] = np.ones(31, np.float32)
    save_file(bad, tmp_path / "model.safetensors", metadata={"format": "pt"})
    msg = r"tensor 'h.0.ln_1.weight' has shape \(31,\): expected \(32,\)"
    with pytest.raises(hf_import.CheckpointError, match=msg):
        hf_import.load_model(tmp_path)
    bad[name] = np.ones(32, np.int32)
    save_file(bad, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(hf_import.CheckpointError, match=r"has dtype int32: expected float32, bfloat16 or float16"):
        hf_import.load_model(tmp_path)


def _cut(path, *, keep: float):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "empty"])
def test_damaged_safetensors_names_the_file(tmp_path, keep):
    """A truncated or empty model.safetensors is a CheckpointError naming the file, not a bare SafetensorError."""
    save_tiny("gpt2", tmp_path)
    _cut(tmp_path / "model.safetensors", keep=keep)
    with pytest.raises(hf_import.CheckpointError,
                       match=f"{tmp_path / 'model.safetensors'} is not a readable safetensors file .*truncated"):
        hf_import.load_model(tmp_path)


def test_damaged_config_index_and_shard_name_the_file(tmp_path):
    """A truncated config.json, a truncated or weight_map-less index, a truncated shard: each error names the file."""
    save_tiny("llama_gqa", tmp_path, max_shard_size="20KB")
    index = tmp_path / "model.safetensors.index.json"
    good_index, good_config = index.read_bytes(), (tmp_path / "config.json").read_bytes()
    _cut(tmp_path / "config.json", keep=0.5)
    with pytest.raises(hf_import.CheckpointError, match=f"{tmp_path / 'config.json'} is not valid JSON .*truncated"):
        hf_import.load_model(tmp_path)
    (tmp_path / "config.json").write_bytes(good_config)
    _cut(index, keep=0.5)
    with pytest.raises(hf_import.CheckpointError, match=f"{index} is not valid JSON"):
        hf_import.load_model(tmp_path)
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(hf_import.CheckpointError, match=f"{index} has no weight_map"):
        hf_import.load_model(tmp_path)
    index.write_bytes(good_index)
    shard = tmp_path / sorted(set(json.loads(good_index)["weight_map"].values()))[-1]
    _cut(shard, keep=0.9)
    with pytest.raises(hf_import.CheckpointError, match=f"{shard} is not a readable safetensors file"):
        hf_import.load_model(tmp_path)


@pytest.mark.parametrize("key", ["hidden_size", "vocab_size"])
def test_config_without_a_size_names_the_field(tmp_path, key):
    """A config.json without a required size says which field and which file, not a bare KeyError."""
    save_tiny("llama", tmp_path)
    cfg = json.load(open(tmp_path / "config.json"))
    del cfg[key]
    json.dump(cfg, open(tmp_path / "config.json", "w"))
    with pytest.raises(hf_import.CheckpointError,
                       match=f"{tmp_path / 'config.json'} has no '{key}': required for model_type='llama'"):
        hf_import.load_model(tmp_path)
    cfg[key] = "32"
    json.dump(cfg, open(tmp_path / "config.json", "w"))
    with pytest.raises(hf_import.CheckpointError, match=f"{key}='32' is invalid: expected a positive integer"):
        hf_import.load_model(tmp_path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    """A tensor holding NaN or inf is refused by name instead of loading silently."""
    from safetensors.numpy import load_file, save_file  # the optional `llm` extra, as in hf_import

    save_tiny("llama", tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    name = "model.layers.1.mlp.up_proj.weight"
    tensors[name][3, 5] = value
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(hf_import.CheckpointError, match=f"tensor '{name}' in .*model.safetensors has 1 non-finite"):
        hf_import.load_model(tmp_path)


def test_tokenizer_round_trip(tmp_path):
    """A tokenizer.json built with the tokenizers library loads and round-trips text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    text = ["the quick brown fox jumps over the lazy dog", "two hops from a to c via b"] * 20
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]", "[EOS]"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = hf_import.load_tokenizer(tmp_path)
    ids = loaded.encode("the lazy fox hops").ids
    assert loaded.decode(ids) == "the lazy fox hops"
    with pytest.raises(hf_import.CheckpointError, match="tokenizer.json"):
        hf_import.load_tokenizer(tmp_path / "missing")


def test_lm_sample_cli_on_a_tiny_checkpoint(tmp_path):
    """`python -m harness.lm_sample` loads a local checkpoint + tokenizer.json and prints greedy samples."""
    import subprocess
    import sys

    from tokenizers import Tokenizer, models, pre_tokenizers

    save_tiny("llama_gqa", tmp_path)
    vocab = {f"w{i}": i for i in range(97)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-m", "harness.lm_sample", f"--checkpoint={tmp_path}",
                          "--prompt=w5 w6 w7", "--max_new_tokens=6", "--num_samples=2"], cwd=root,
                         env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    samples = [line for line in out.stdout.splitlines() if line.startswith("w5 w6 w7 ")]
    assert len(samples) == 2 and samples[0] == samples[1]  # greedy: identical
    assert len(samples[0].split()) == 3 + 6
