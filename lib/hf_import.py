"""Load a local Hugging Face checkpoint directory into `lib/transformer.py` params. Never downloads.

    model = load_model("/path/to/checkpoint")      # config.json + *.safetensors (sharded ok)
    logits = model(input_ids)                       # [batch, seq, vocab]
    tok = load_tokenizer("/path/to/checkpoint")    # tokenizer.json via the `tokenizers` package

Supported `model_type`s: gpt2, llama, mistral, qwen2 (SmolLM and most Llama derivatives use "llama");
`*ForSequenceClassification` checkpoints of the Llama family load with a scalar head (reward models,
pooled at the last real token like transformers). Only safetensors are read: pickle files
(`pytorch_model.bin`, `*.pt`) are refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lib.transformer import TransformerConfig, forward

SUPPORTED = ("gpt2", "llama", "mistral", "qwen2")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class CheckpointError(ValueError):
    """The checkpoint directory cannot be loaded; the message says which file or tensor and why."""


def _read_json_object(path: str) -> dict:
    """A JSON object from `path`; a truncated, empty or non-object file raises CheckpointError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not valid JSON ({type(e).__name__}: {e}): the file is truncated or "
                              "damaged") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a JSON {type(obj).__name__}: expected an object")
    return obj


@dataclasses.dataclass
class Model:
    """Params bound to the pure forward: `model(input_ids, **kw)` returns logits (or scores)."""

    config: TransformerConfig
    params: dict
    hf_config: dict

    def __call__(self, input_ids, **kwargs):
        out = forward(self.params, jnp.asarray(input_ids), config=self.config, **kwargs)
        return out["score"] if self.config.head == "scalar" else out["logits"]

    def apply(self, input_ids, **kwargs) -> dict:
        return forward(self.params, jnp.asarray(input_ids), config=self.config, **kwargs)


def _read_config(path: str) -> dict:
    if not os.path.isdir(path):
        raise CheckpointError(f"checkpoint directory {path!r} does not exist")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise CheckpointError(f"{path!r} has no config.json (expected a Hugging Face checkpoint directory)")
    return _read_json_object(cfg_path)


def transformer_config(hf: dict, *, dtype=None, source: str = "config.json") -> TransformerConfig:
    """Maps a Hugging Face config.json dict onto TransformerConfig (raises CheckpointError if unsupported or if a
    required size is missing; `source` names the file in the message)."""
    mt = hf.get("model_type")
    if mt not in SUPPORTED:
        raise CheckpointError(f"{source} model_type={mt!r} is not supported: expected one of {list(SUPPORTED)}")

    def size(key: str) -> int:
        """A required positive integer field of config.json."""
        if key not in hf:
            raise CheckpointError(f"{source} has no {key!r}: required for model_type={mt!r}")
        v = hf[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise CheckpointError(f"{source} {key}={v!r} is invalid: expected a positive integer")
        return v
    archs = hf.get("architectures") or []
    head = "scalar" if any(a.endswith("ForSequenceClassification") for a in archs) else "lm"
    if head == "scalar" and hf.get("num_labels", len(hf.get("id2label", {0: 0}))) != 1:
        raise CheckpointError("a sequence-classification checkpoint must have num_labels=1 (a scalar reward head)")
    if mt == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        mlp = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}.get(act)
        if mlp is None:
            raise CheckpointError(f"{source} activation_function={act!r} is not supported")
        return TransformerConfig(
            vocab_size=size("vocab_size"), d_model=size("n_embd"), n_layers=size("n_layer"), n_heads=size("n_head"),
            d_ff=hf.get("n_inner") or 4 * size("n_embd"), max_len=size("n_positions"), positions="learned",
            norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), prenorm=True, mlp=mlp, tied_head=True,
            qkv_bias=True, out_bias=True, mlp_bias=True, head=head, dtype=dtype or jnp.float32)
    # transformers 4.x writes rope_theta (+ rope_scaling); 5.x writes rope_parameters={rope_theta, rope_type}.
    rope = dict(hf.get("rope_parameters") or {})
    scaling = hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise CheckpointError(f"{source} rope type {rope_type!r} is not supported: expected plain RoPE ('default')")
    rope_theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    if hf.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"{source} hidden_act={hf['hidden_act']!r} is not supported: expected 'silu'")
    d = size("hidden_size")
    n_heads = size("num_attention_heads")
    if hf.get("head_dim") not in (None, d // n_heads):
        raise CheckpointError(f"{source} head_dim={hf['head_dim']} != hidden_size/num_attention_heads")
    qkv_bias = mt == "qwen2" or bool(hf.get("attention_bias", False))
    return TransformerConfig(
        vocab_size=size("vocab_size"), d_model=d, n_layers=size("num_hidden_layers"), n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_ff=size("intermediate_size"),
        max_len=hf.get("max_position_embeddings", 2048), positions="rotary", norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6), prenorm=True, mlp="swiglu",
        tied_head=bool(hf.get("tie_word_embeddings", False)), qkv_bias=qkv_bias,
        out_bias=bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False)),
        rope_theta=rope_theta, head=head, dtype=dtype or jnp.float32)


def _read_tensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint's safetensors file(s); a truncated or damaged file, a damaged index, a
    non-float tensor or one holding NaN or inf raises CheckpointError naming the file or tensor."""
    from safetensors import SafetensorError, safe_open  # the optional `llm` extra: imported only when loading

    names = sorted(os.listdir(path))
    pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = _read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index} has no weight_map object (tensor name -> shard file)")
        files = sorted(set(weight_map.values()))
    elif os.path.exists(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        hint = f" (found pickle files {pickles}: they are not accepted; convert them to safetensors)" if pickles else ""
        raise CheckpointError(f"{path!r} has no model.safetensors or model.safetensors.index.json{hint}")
    tensors = {}
    for name in files:
        fp = os.path.join(path, name)
        if not os.path.exists(fp):
            raise CheckpointError(f"shard {name!r} listed in the index is missing from {path!r}")
        try:
            with safe_open(fp, framework="flax") as f:
                shard = {key: f.get_tensor(key) for key in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{fp} is not a readable safetensors file ({type(e).__name__}: {e}): the file is "
                                  "truncated or damaged") from e
        for key, t in shard.items():
            if t.dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
                raise CheckpointError(f"tensor {key!r} has dtype {t.dtype}: expected float32, bfloat16 or float16")
            bad = int(t.size - np.count_nonzero(np.isfinite(np.asarray(t))))
            if bad:
                raise CheckpointError(f"tensor {key!r} in {fp} has {bad} non-finite values (NaN or inf) of "
                                      f"{t.size}: the checkpoint is damaged")
        tensors.update(shard)
    return tensors


class _Taker:
    """Pops tensors by name, checking shapes, so leftovers and mismatches are reported by name."""

    def __init__(self, tensors: dict, prefixes: tuple[str, ...], dtype):
        self.tensors, self.prefixes, self.dtype = dict(tensors), prefixes, dtype

    def __call__(self, name: str, shape: tuple, transpose: bool = False) -> jnp.ndarray:
        for p in self.prefixes:
            if p + name in self.tensors:
                t = self.tensors.pop(p + name)
                break
        else:
            raise CheckpointError(f"tensor {name!r} is missing from the checkpoint")
        t = t.T if transpose else t
        if tuple(t.shape) != tuple(shape):
            raise CheckpointError(f"tensor {name!r} has shape {tuple(t.shape)}: expected {tuple(shape)}")
        return jnp.asarray(t, self.dtype)


def convert(tensors: dict, cfg: TransformerConfig, model_type: str) -> dict:
    """Maps a Hugging Face state dict (name → array) onto `lib.transformer` params."""
    d, dh, h, kvh, ff = cfg.d_model, cfg.head_dim, cfg.n_heads, cfg.kv_heads, cfg.ff_dim
    dt = cfg.dtype
    params: dict[str, Any] = {}
    if model_type == "gpt2":
        take = _Taker(tensors, ("transformer.", ""), dt)
        params["embed"] = {"embedding": take("wte.weight", (cfg.vocab_size, d))}
        params["pos_embed"] = {"embedding": take("wpe.weight", (cfg.max_len, d))}
        for i in range(cfg.n_layers):
            p = f"h.{i}."
            w = take(p + "attn.c_attn.weight", (d, 3 * d))  # GPT-2 Conv1D stores [in, out]
            bias = take(p + "attn.c_attn.bias", (3 * d,))
            attn = {n: {"kernel": w[:, j * d:(j + 1) * d], "bias": bias[j * d:(j + 1) * d]}
                    for j, n in enumerate("qkv")}
            attn["o"] = {"kernel": take(p + "attn.c_proj.weight", (d, d)), "bias": take(p + "attn.c_proj.bias", (d,))}
            params[f"block_{i}"] = {
                "attn": attn,
                "norm_attn": {"scale": take(p + "ln_1.weight", (d,)), "bias": take(p + "ln_1.bias", (d,))},
                "norm_mlp": {"scale": take(p + "ln_2.weight", (d,)), "bias": take(p + "ln_2.bias", (d,))},
                "mlp": {"up": {"kernel": take(p + "mlp.c_fc.weight", (d, ff)),
                               "bias": take(p + "mlp.c_fc.bias", (ff,))},
                        "down": {"kernel": take(p + "mlp.c_proj.weight", (ff, d)),
                                 "bias": take(p + "mlp.c_proj.bias", (d,))}},
            }
        params["norm_final"] = {"scale": take("ln_f.weight", (d,)), "bias": take("ln_f.bias", (d,))}
        take.tensors.pop("lm_head.weight", None)  # tied to wte
        for k in [k for k in take.tensors if k.endswith((".attn.bias", ".attn.masked_bias"))]:
            take.tensors.pop(k)  # GPT-2's stored causal-mask buffers
    else:
        take = _Taker(tensors, ("model.", ""), dt)
        params["embed"] = {"embedding": take("embed_tokens.weight", (cfg.vocab_size, d))}

        def lin(name, out_dim, in_dim, bias):
            p = {"kernel": take(name + ".weight", (in_dim, out_dim), transpose=True)}  # torch Linear: [out, in]
            if bias:
                p["bias"] = take(name + ".bias", (out_dim,))
            return p

        for i in range(cfg.n_layers):
            p = f"layers.{i}."
            params[f"block_{i}"] = {
                "attn": {"q": lin(p + "self_attn.q_proj", h * dh, d, cfg.qkv_bias),
                         "k": lin(p + "self_attn.k_proj", kvh * dh, d, cfg.qkv_bias),
                         "v": lin(p + "self_attn.v_proj", kvh * dh, d, cfg.qkv_bias),
                         "o": lin(p + "self_attn.o_proj", d, h * dh, cfg.out_bias)},
                "norm_attn": {"scale": take(p + "input_layernorm.weight", (d,))},
                "norm_mlp": {"scale": take(p + "post_attention_layernorm.weight", (d,))},
                "mlp": {"gate": lin(p + "mlp.gate_proj", ff, d, cfg.mlp_bias),
                        "up": lin(p + "mlp.up_proj", ff, d, cfg.mlp_bias),
                        "down": lin(p + "mlp.down_proj", d, ff, cfg.mlp_bias)},
            }
        params["norm_final"] = {"scale": take("norm.weight", (d,))}
        if cfg.head == "scalar":
            params["score"] = {"kernel": take("score.weight", (d, 1), transpose=True)}
        elif not cfg.tied_head:
            params["lm_head"] = {"kernel": take("lm_head.weight", (d, cfg.vocab_size), transpose=True)}
        else:
            take.tensors.pop("lm_head.weight", None)
        for k in [k for k in take.tensors if k.endswith("rotary_emb.inv_freq")]:
            take.tensors.pop(k)
    if take.tensors:
        raise CheckpointError(f"unexpected tensors in the checkpoint: {sorted(take.tensors)[:8]}")
    return params


def load_model(path: str, *, dtype=None) -> Model:
    """Loads config.json + safetensors from a local directory. `dtype` defaults to the checkpoint's
    torch_dtype for bf16/fp16 checkpoints and float32 otherwise."""
    path = os.path.expanduser(os.fspath(path))
    hf = _read_config(path)
    if dtype is None:
        dtype = DTYPES.get(hf.get("torch_dtype") or hf.get("dtype") or "float32", jnp.float32)
    cfg = transformer_config(hf, dtype=dtype, source=os.path.join(path, "config.json"))
    params = convert(_read_tensors(path), cfg, hf["model_type"])
    return Model(config=cfg, params=jax.tree.map(jnp.asarray, params), hf_config=hf)


def load_tokenizer(path: str):
    """The `tokenizers.Tokenizer` of `path/tokenizer.json` (a directory or the file itself)."""
    from tokenizers import Tokenizer

    path = os.path.expanduser(os.fspath(path))
    file = path if path.endswith(".json") else os.path.join(path, "tokenizer.json")
    if not os.path.exists(file):
        raise CheckpointError(f"{file!r} does not exist (expected a tokenizer.json from the `tokenizers` library)")
    return Tokenizer.from_file(file)
