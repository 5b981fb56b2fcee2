"""Load a GGUF file (llama.cpp's format) into `lib/transformer.py` params, with its tokenizer. Never downloads.

    model = load_model("SmolLM2-135M-Instruct.Q4_1.gguf")   # the same `hf_import.Model` a checkpoint dir gives
    tok = load_tokenizer(path)                               # a `tokenizers.Tokenizer` built from the metadata
    text = apply_chat_template(messages, template=chat_template(path))

The file is read with the `gguf` package (llama.cpp's own reader) over a read-only memory map; nothing in it
is pickled, imported or executed (the chat template's Jinja is not rendered: `apply_chat_template` writes
ChatML in Python). Every tensor is dequantised to float32 (`gguf.quants.dequantize`) and llama.cpp's
interleaving of the q/k rows (its converter's `permute`, for its rotary kernel) is undone, so the params are
those of the Hugging Face checkpoint the file was converted from, up to quantisation.

Supported: weights of `general.architecture = llama` without rope scaling or experts (SmolLM, Llama 1/2/3.0,
Mistral-as-llama; tested on SmolLM2); tokenizers of byte-level BPE (`tokenizer.ggml.model = gpt2`) with the
pre-tokenizers in `PRE_TOKENIZERS` (SmolLM's family). Anything else fails with a `GGUFError` naming the file and
the key or tensor, as do truncated and damaged files.

Open a file once with `open_gguf` and pass the result to the loaders to parse its metadata once (about 2 s
for a 49k-token vocabulary).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lib import hf_import

SUPPORTED = ("llama",)
HEADER_BYTES = 24  # magic, version (u32), tensor count (u64), metadata count (u64)
TOKEN_CONTROL, TOKEN_USER_DEFINED = 3, 4  # llama.cpp's token types (gguf.TokenType)
# llama.cpp's `tokenizer.ggml.pre` -> how text is split before BPE (llama-vocab.cpp's regex lists):
#   "smollm" (also starcoder, refact, command-r): every digit alone, then GPT-2's regex; "gpt-2"/"default": GPT-2's.
PRE_TOKENIZERS = ("smollm", "starcoder", "refact", "gpt-2", "default")


class GGUFError(hf_import.CheckpointError):
    """The GGUF file cannot be loaded; the message names the file and says what is wrong."""


@dataclasses.dataclass(frozen=True)
class GGUFFile:
    """A parsed GGUF file: `reader` is a `gguf.GGUFReader` over a read-only memory map of `path`."""

    path: str
    reader: Any

    def has(self, key: str) -> bool:
        return key in self.reader.fields

    def get(self, key: str, default: Any = None) -> Any:
        """The metadata value of `key` (int, float, bool, str, or a list of them), or `default`."""
        field = self.reader.fields.get(key)
        if field is None:
            return default
        try:
            return _value(field)
        except (UnicodeDecodeError, IndexError) as e:
            raise GGUFError(f"GGUF file {self.path!r} is damaged: metadata {key!r} cannot be read ({e})") from None

    def require(self, key: str) -> Any:
        if not self.has(key):
            raise GGUFError(f"GGUF file {self.path!r} has no metadata key {key!r}")
        return self.get(key)

    def metadata(self, *, max_array: int = 64) -> dict:
        """Every metadata key with its value; arrays longer than `max_array` as `"<array of N>"`."""
        out = {}
        for key, field in self.reader.fields.items():
            if key.startswith("GGUF."):
                continue
            out[key] = f"<array of {len(field.data)}>" if len(field.types) > 1 and len(field.data) > max_array \
                else self.get(key)
        return out


def _value(field) -> Any:
    """A metadata field's value from its raw parts (works across `gguf` versions)."""
    from gguf import GGUFValueType  # optional extra (llm): imported only when a GGUF file is read

    def one(part, kind):
        if kind == GGUFValueType.STRING:
            return bytes(part).decode("utf-8")
        x = part[0]
        return bool(x) if kind == GGUFValueType.BOOL else x.item()

    if field.types[0] == GGUFValueType.ARRAY:
        return [one(field.parts[i], field.types[-1]) for i in field.data]
    return one(field.parts[field.data[0]], field.types[0])


def open_gguf(path: str | os.PathLike) -> GGUFFile:
    """Parses the header, metadata and tensor table of a GGUF file (tensor data stays memory-mapped)."""
    from gguf import GGUFReader  # optional extra (llm): imported only when a GGUF file is read

    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise GGUFError(f"GGUF file {path!r} does not exist")
    if os.path.isdir(path):
        raise GGUFError(f"{path!r} is a directory, not a GGUF file (a Hugging Face checkpoint directory loads with "
                        "lib.hf_import)")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if size >= 4 and head[:4] != b"GGUF":
        raise GGUFError(f"{path!r} is not a GGUF file: it starts with {head[:4]!r}, expected b'GGUF'")
    if size < HEADER_BYTES:
        raise GGUFError(f"GGUF file {path!r} is truncated: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    try:
        reader = GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        raise GGUFError(f"GGUF file {path!r} is truncated or damaged: its metadata and tensor table could not be read "
                        f"from its {size:,} bytes ({type(e).__name__}: {e})") from None
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size:
            raise GGUFError(f"GGUF file {path!r} is truncated: tensor {t.name!r} ends at byte {end:,} but the file "
                            f"has {size:,} bytes")
    return GGUFFile(path=path, reader=reader)


def _open(source: str | os.PathLike | GGUFFile) -> GGUFFile:
    return source if isinstance(source, GGUFFile) else open_gguf(source)


def hf_config(source: str | os.PathLike | GGUFFile) -> dict:
    """The Hugging Face config.json equivalent of the file's metadata (raises GGUFError if unsupported)."""
    f = _open(source)
    arch = f.require("general.architecture")
    if arch not in SUPPORTED:
        raise GGUFError(f"GGUF file {f.path!r} has general.architecture={arch!r}, which is not supported: expected "
                        f"one of {list(SUPPORTED)}")

    def key(name, default=..., kind=int):
        """`{arch}.{name}` as one positive int (or float with kind=float, str with kind=str)."""
        full = f"{arch}.{name}"
        if not f.has(full):
            if default is ...:
                raise GGUFError(f"GGUF file {f.path!r} has no metadata key {full!r}")
            return default
        value = f.get(full)
        ok = isinstance(value, str) if kind is str else \
            isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool) and value > 0
        if not ok:
            expected = {int: "a positive integer", float: "a positive number", str: "a string"}[kind]
            raise GGUFError(f"GGUF file {f.path!r} has {full}={str(value)[:60]}: expected {expected}")
        return value

    if key("expert_count", 0):
        raise GGUFError(f"GGUF file {f.path!r} is a mixture of experts ({arch}.expert_count={key('expert_count')}): "
                        "not supported")
    scaling = key("rope.scaling.type", "none", kind=str)
    if scaling != "none":
        raise GGUFError(f"GGUF file {f.path!r} has {arch}.rope.scaling.type={scaling!r}: only plain RoPE is supported")
    d, n_heads = key("embedding_length"), key("attention.head_count")
    n_kv_heads = key("attention.head_count_kv", n_heads)
    if d % n_heads or n_heads % n_kv_heads or (d // n_heads) % 2:
        raise GGUFError(f"GGUF file {f.path!r} has embedding_length={d}, head_count={n_heads}, head_count_kv="
                        f"{n_kv_heads}: expected an even head size and head_count a multiple of head_count_kv")
    head_dim = d // n_heads
    for name in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if key(name, head_dim) != head_dim:
            raise GGUFError(f"GGUF file {f.path!r} has {arch}.{name}={key(name)}: expected embedding_length / "
                            f"head_count = {head_dim}")
    names = {t.name for t in f.reader.tensors}
    embed = next((t for t in f.reader.tensors if t.name == "token_embd.weight"), None)
    vocab = key("vocab_size", None) or (int(embed.shape[-1]) if embed is not None
                                        else len(f.get("tokenizer.ggml.tokens") or []))
    return {
        "model_type": arch, "architectures": ["LlamaForCausalLM"], "vocab_size": int(vocab), "hidden_size": d,
        "num_hidden_layers": key("block_count"), "num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads,
        "intermediate_size": key("feed_forward_length"), "max_position_embeddings": key("context_length", 2048),
        "rms_norm_eps": key("attention.layer_norm_rms_epsilon", kind=float),
        "rope_theta": float(key("rope.freq_base", 10000.0, kind=float)), "hidden_act": "silu",
        "tie_word_embeddings": "output.weight" not in names, "torch_dtype": "float32",
        "bos_token_id": f.get("tokenizer.ggml.bos_token_id"), "eos_token_id": f.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": f.get("tokenizer.ggml.padding_token_id"), "name_or_path": f.path,
        "gguf": {k: f.get(k) for k in ("general.name", "general.file_type", "general.quantization_version")
                 if f.has(k)},
    }


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undoes llama.cpp's q/k row permutation (convert_hf_to_gguf's `permute`, which interleaves each head's two
    rotary halves for its RoPE kernel); `w` is `[n_heads * head_dim, in]` in torch Linear layout."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_LAYER = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def _expected_shapes(hf: dict) -> dict[str, tuple]:
    """GGUF tensor name -> numpy shape (torch Linear layout `[out, in]`), for every tensor the file must hold."""
    d, h, kvh, ff, v = (hf[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                         "intermediate_size", "vocab_size"))
    dh = d // h
    shapes = {"token_embd.weight": (v, d), "output_norm.weight": (d,)}
    if not hf["tie_word_embeddings"]:
        shapes["output.weight"] = (v, d)
    per_layer = {"attn_q": (h * dh, d), "attn_k": (kvh * dh, d), "attn_v": (kvh * dh, d), "attn_output": (d, h * dh),
                 "ffn_gate": (ff, d), "ffn_up": (ff, d), "ffn_down": (d, ff), "attn_norm": (d,), "ffn_norm": (d,)}
    for i in range(hf["num_hidden_layers"]):
        shapes.update({f"blk.{i}.{n}.weight": s for n, s in per_layer.items()})
    return shapes


def _hf_name(name: str) -> str:
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, i, part, suffix = name.split(".")
    return f"model.layers.{i}.{_LAYER[part]}.{suffix}"


def _dequantize(f: GGUFFile, t) -> np.ndarray:
    from gguf.quants import dequantize  # optional extra (llm)

    try:
        w = np.asarray(dequantize(np.asarray(t.data), t.tensor_type), np.float32)  # plain view: no memmap overhead
    except NotImplementedError as e:
        raise GGUFError(f"GGUF file {f.path!r}: tensor {t.name!r} has type {t.tensor_type.name}, which the installed "
                        f"gguf package cannot dequantise ({e})") from None
    if np.may_share_memory(w, f.reader.data):  # an F32 tensor is a view of the mapped file: own a copy
        w = w.copy()
    if not np.isfinite(w).all():
        raise GGUFError(f"GGUF file {f.path!r} is damaged: tensor {t.name!r} ({t.tensor_type.name}) holds "
                        f"{int((~np.isfinite(w)).sum())} non-finite values")
    return w


def read_state_dict(source: str | os.PathLike | GGUFFile) -> tuple[dict, dict[str, np.ndarray]]:
    """`(hf_config, tensors)`: the file as a Hugging Face Llama state dict of float32 arrays (q/k unpermuted)."""
    f = _open(source)
    hf = hf_config(f)
    expected = _expected_shapes(hf)
    tensors = {t.name: t for t in f.reader.tensors}
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise GGUFError(f"GGUF file {f.path!r} lacks {len(missing)} tensor(s) a {hf['num_hidden_layers']}-layer "
                        f"{hf['model_type']} needs: {missing[:6]}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise GGUFError(f"GGUF file {f.path!r} has tensors this loader does not know: {extra[:6]}")
    out = {}
    for name, shape in expected.items():
        t = tensors[name]
        got = tuple(int(n) for n in reversed(t.shape))  # GGUF lists dimensions innermost first
        if got != shape:
            raise GGUFError(f"GGUF file {f.path!r}: tensor {name!r} has shape {got}: expected {shape}")
        w = _dequantize(f, t).reshape(shape)
        if ".attn_q." in name:
            w = _unpermute(w, hf["num_attention_heads"])
        elif ".attn_k." in name:
            w = _unpermute(w, hf["num_key_value_heads"])
        out[_hf_name(name)] = w
    return hf, out


def load_model(source: str | os.PathLike | GGUFFile, *, dtype=None) -> hf_import.Model:
    """A GGUF file as `hf_import.Model` (params dequantised to float32 unless `dtype`); `model.hf_config` is the
    config.json equivalent of its metadata, with the special token ids and `name_or_path`."""
    hf, tensors = read_state_dict(source)
    cfg = hf_import.transformer_config(hf, dtype=dtype or jnp.float32)
    params = hf_import.convert(tensors, cfg, hf["model_type"])
    return hf_import.Model(config=cfg, params=jax.tree.map(jnp.asarray, params), hf_config=hf)


def _pre_tokenizer(kind: str):
    from tokenizers import pre_tokenizers  # optional extra (llm)

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind in ("smollm", "starcoder", "refact"):
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return byte_level


def load_tokenizer(source: str | os.PathLike | GGUFFile):
    """A `tokenizers.Tokenizer` from the file's `tokenizer.ggml.*` metadata: byte-level BPE with its vocabulary
    and merges, control tokens (type 3, e.g. `<|im_start|>`) as special tokens, user-defined ones (type 4) as
    added tokens, BOS/EOS added only where `tokenizer.ggml.add_bos_token`/`add_eos_token` say so."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors  # optional extra (llm)

    f = _open(source)
    kind = f.require("tokenizer.ggml.model")
    if kind != "gpt2":
        raise GGUFError(f"GGUF file {f.path!r} has tokenizer.ggml.model={kind!r}, which is not supported: expected "
                        "'gpt2' (byte-level BPE)")
    pre = f.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise GGUFError(f"GGUF file {f.path!r} has tokenizer.ggml.pre={pre!r}, which is not supported: expected one "
                        f"of {list(PRE_TOKENIZERS)}")
    tokens, merge_list = f.require("tokenizer.ggml.tokens"), f.require("tokenizer.ggml.merges")
    types = f.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    for name, value, typ in (("tokens", tokens, str), ("merges", merge_list, str), ("token_type", types, int)):
        if not isinstance(value, list) or not all(isinstance(v, typ) for v in value):
            raise GGUFError(f"GGUF file {f.path!r} is damaged: tokenizer.ggml.{name} is not a list of {typ.__name__}")
    if len(types) != len(tokens):
        raise GGUFError(f"GGUF file {f.path!r} is damaged: {len(types)} token types for {len(tokens)} tokens")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise GGUFError(f"GGUF file {f.path!r} is damaged: tokenizer.ggml.tokens has duplicate entries")
    merges = []
    for i, m in enumerate(merge_list):
        pair = tuple(m.split(" "))
        if len(pair) != 2 or pair[0] not in vocab or pair[1] not in vocab:
            raise GGUFError(f"GGUF file {f.path!r} is damaged: tokenizer.ggml.merges[{i}]={m!r} is not two tokens of "
                            "its vocabulary")
        merges.append(pair)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _pre_tokenizer(pre)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(tokens, types, strict=True) if k == TOKEN_CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, k in zip(tokens, types, strict=True) if k == TOKEN_USER_DEFINED])
    bos, eos = (f.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos"))
    for name, i in (("bos", bos), ("eos", eos)):
        if i is not None and not (isinstance(i, int) and 0 <= i < len(tokens)):
            raise GGUFError(f"GGUF file {f.path!r} is damaged: tokenizer.ggml.{name}_token_id={i} is not a token id")
    pieces = ([tokens[bos]] if f.get("tokenizer.ggml.add_bos_token", False) and bos is not None else []) + ["$A"] + \
             ([tokens[eos]] if f.get("tokenizer.ggml.add_eos_token", False) and eos is not None else [])
    if len(pieces) > 1:
        specials = sorted({(tokens[i], i) for i in (bos, eos) if i is not None and tokens[i] in pieces})
        tok.post_processor = processors.TemplateProcessing(single=" ".join(pieces), special_tokens=specials)
    return tok


def chat_template(source: str | os.PathLike | GGUFFile) -> str | None:
    """The file's `tokenizer.chat_template` (a Jinja string), or None."""
    return _open(source).get("tokenizer.chat_template")


_CHATML_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)([^{}'\"]*?)<\|im_end\|>")


def apply_chat_template(messages: list[dict], *, template: str | None, add_generation_prompt: bool = True) -> str:
    """The ChatML prompt for `messages` (`[{"role": ..., "content": ...}]`):
    `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then `<|im_start|>assistant\\n` when
    `add_generation_prompt`. Written in Python rather than by rendering `template`: the template is only checked
    to be ChatML and searched for a literal default system prompt, which opens the conversation when the first
    message is not a system message (SmolLM2's "You are a helpful AI assistant named SmolLM, ...")."""
    if not template or "<|im_start|>" not in template or "<|im_end|>" not in template:
        raise ValueError(f"chat template {(template or '')[:60]!r}... is not ChatML (<|im_start|>...<|im_end|>); "
                         "only ChatML is written by apply_chat_template")
    for m in messages:
        if set(m) != {"role", "content"} or not all(isinstance(v, str) for v in m.values()):
            raise ValueError(f"message {m!r} is invalid: expected {{'role': str, 'content': str}}")
    parts = []
    if messages and messages[0]["role"] != "system":
        match = _CHATML_DEFAULT_SYSTEM.search(template)
        if match:
            parts.append(f"<|im_start|>system\n{match.group(1).replace(chr(92) + 'n', chr(10))}<|im_end|>\n")
        elif re.search(r"""!=\s*['"]system['"]""", template):
            raise ValueError("the chat template adds a default system prompt that apply_chat_template cannot read "
                             "as plain text; start the messages with a system message")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)
