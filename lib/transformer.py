"""A decoder-only transformer that GPT-2 and Llama-family checkpoints map onto exactly.

Written with flax **linen**, used as pure functions: `params = model.init(...)["params"]` is a plain
pytree and `model.apply({"params": params}, ...)` a pure function of it, so jit, vmap, grad, orbax and
the Hugging Face weight mapping (`lib/hf_import.py`) all see one nested dict. The KV cache is an explicit
argument and return value (no mutable collections), so decoding stays a pure `lax.while_loop` body.
(NNX would give the same pytrees after `nnx.split` at every jit boundary; linen needs no split.)

One implementation covers: learned absolute, rotary or no positions; LayerNorm or RMSNorm; pre- or
post-norm; GELU (exact or tanh), ReLU, SwiGLU or no MLP (attention-only); tied or untied output head;
biases on/off (separately for q/k/v, the attention output and the MLP, as Qwen2 needs); grouped-query
attention; a scalar head for reward models pooled at the last real token.

Shapes: input_ids `[batch, seq]`; logits `[batch, seq, vocab]`; hidden states `[batch, seq, d_model]`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lib import attention, losses

POSITIONS = ("learned", "rotary", "none")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "gelu_tanh", "relu", "swiglu", "none")
HEADS = ("lm", "scalar")
INITS = ("normal", "torch")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None  # None = n_heads (multi-head); fewer = grouped-query attention
    d_ff: int | None = None  # None = 4 * d_model
    max_len: int = 1024  # learned position table size, and the default KV-cache length
    positions: str = "learned"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    prenorm: bool = True
    mlp: str = "gelu"
    tied_head: bool = True
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True  # LayerNorm only
    rope_theta: float = 10000.0
    head: str = "lm"  # "scalar": one number per sequence (reward models)
    init: str = "normal"  # "normal": N(0, 0.02) (GPT-2); "torch": PyTorch defaults, N(0,1) embeddings, U(±1/√fan_in)
    dtype: Any = jnp.float32

    def __post_init__(self):
        def bad(field, value, accepted):
            raise ValueError(f"TransformerConfig.{field}={value!r} is invalid: expected {accepted}")

        for field in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                bad(field, getattr(self, field), "an integer >= 1")
        if self.d_model % self.n_heads:
            bad("n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")
        if self.n_kv_heads is not None and (self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads):
            bad("n_kv_heads", self.n_kv_heads, f"a divisor of n_heads={self.n_heads}")
        for field, options in (("positions", POSITIONS), ("norm", NORMS), ("mlp", MLPS), ("head", HEADS),
                               ("init", INITS)):
            if getattr(self, field) not in options:
                bad(field, getattr(self, field), f"one of {list(options)}")
        if self.positions == "rotary" and self.head_dim % 2:
            bad("positions", self.positions, f"learned/none with an odd head_dim={self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ff_dim(self) -> int:
        return self.d_ff or 4 * self.d_model


def _row_mean(a):
    return a.mean(-1, keepdims=True)


def _col_sum(a):
    return a.reshape(-1, a.shape[-1]).sum(0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x, scale, bias, eps):
    """LayerNorm over the last axis, `(x − mean) / √(var + eps) · scale + bias`, with a hand-written backward.

    The backward is the textbook closed form, `dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with `ĝ = g·scale`, two
    row reductions, where autodiff of the forward emits about twice as many (XLA's CPU backend splits each row
    reduction into windows of 32). Same forward numerics as the plain expression; the gradient agrees with
    autodiff's to float32 rounding (tests/lib/test_transformer.py). Its effect on a training step is measured by
    benchmarks/two_hop_step.py."""
    return _layer_norm_fwd(x, scale, bias, eps)[0]


def _layer_norm_fwd(x, scale, bias, eps):
    xc = x - _row_mean(x)
    r = jax.lax.rsqrt(_row_mean(xc * xc) + eps)
    xh = xc * r
    return xh * scale + bias, (xh, r, scale)


def _layer_norm_bwd(eps, res, g):
    xh, r, scale = res
    gh = g * scale
    dx = r * (gh - _row_mean(gh) - xh * _row_mean(gh * xh))
    return dx, _col_sum(g * xh).astype(scale.dtype), _col_sum(g).astype(scale.dtype)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class Norm(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        x32 = x.astype(jnp.float32)
        if c.norm == "rmsnorm":
            y = x32 * jax.lax.rsqrt(jnp.mean(x32 ** 2, axis=-1, keepdims=True) + c.norm_eps)
            return (y * self.param("scale", nn.initializers.ones, (x.shape[-1],))).astype(c.dtype)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],)) if c.norm_bias else jnp.zeros_like(scale)
        return layer_norm(x32, scale.astype(jnp.float32), bias.astype(jnp.float32), c.norm_eps).astype(c.dtype)


def _torch_uniform(key, shape, dtype=jnp.float32):
    """PyTorch's nn.Linear default for weights and biases: U(±1/√fan_in) (fan_in = shape[0] of a kernel)."""
    bound = 1.0 / jnp.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


# Rows per chunk of the fused head + log-softmax (forward(labels=...), losses.head_label_logprobs). Up to 1024 rows
# (SmolLM2-135M's fine-tuning step at 8 × 128 tokens) the head is one chunk, and XLA computes its logits once for
# forward and backward (it merges the backward's recomputation with the forward's product); with 128-row chunks the
# backward recomputes them and accumulates the table's gradient over 8 short products. Same process, one core,
# interleaved (2026-12-07, ad hoc, not in RESULTS.md): 1024 rows 16.0-17.4 s against 128 rows 19.4-20.0 s with
# glibc's default heap (user time 12.0-13.6 s against 13.6-15.4 s). The cost: one [1024, V] logits block (200 MB
# for a 49 152-word vocabulary) among the step's temporaries.
HEAD_CHUNK = 1024
WIDE_DW_MIN = 1536  # kernel sides from which the weight gradient's xᵀ is made contiguous first (see _dot)


@jax.custom_vjp
def _matmul_wide(x, w):
    return x @ w


def _matmul_wide_fwd(x, w):
    return x @ w, (x, w)


def _matmul_wide_bwd(res, g):
    x, w = res
    return g @ w.T, jax.lax.optimization_barrier(x.T) @ g


_matmul_wide.defvjp(_matmul_wide_fwd, _matmul_wide_bwd)


def _dot(x, w, dimension_numbers, precision=None):
    """nn.Dense's dot. For a 2-D `x` and a kernel with a side of at least WIDE_DW_MIN (SmolLM2's gate/up 576×1536 and
    down 1536×576), the weight gradient `xᵀ·g` is computed from a contiguous copy of `xᵀ` (kept apart from the dot by
    an optimization barrier): with 1024 rows XLA's CPU dot runs `xᵀ·g` with the transposed left operand at 46 GFLOP/s
    for gate/up and from the contiguous copy at 60 (PyTorch 83; one core, the matrix-product table of
    benchmarks/RESULTS.md, "lm fine-tuning step"). For down, inside SmolLM2's whole step, XLA's profile (2026-12-07,
    one core, heap retained) put autodiff's form on its generic dot at 1.26× the time of down's forward product and
    the contiguous copy's on the same kernels as the forward, at 1.01×. Smaller kernels keep autodiff's dot, no slower
    there. Same sums: equal to float32 rounding (tests/lib/test_losses.py)."""
    if x.ndim == 2 and w.ndim == 2 and max(w.shape) >= WIDE_DW_MIN and dimension_numbers == (((1,), (0,)), ((), ())):
        return _matmul_wide(x, w)
    return jax.lax.dot_general(x, w, dimension_numbers, precision=precision)


def _dense(features, use_bias, name, config, parent, init_std=0.02):
    """An nn.Dense (parameters `name/kernel`, `name/bias`) applied as one 2-D matmul over the flattened
    leading dimensions. Same math as Dense on `[b, t, d]`, but XLA's CPU backend then computes the
    kernel gradient as a plain `[b·t, d]ᵀ·[b·t, n]` dot. With a rank-3 input it instead transposes the
    incoming gradient into a copy and fuses the whole residual-stream gradient chain (every later
    layer's norm backward) into that copy, once per layer: about a quarter of a training step on 2 CPU
    cores (benchmarks/two_hop_step.py). Parameters in `decode_layout` (`name/kernel_t`) use `_DenseT`."""
    if "kernel_t" in parent.variables.get("params", {}).get(name, {}):
        layer = _DenseT(features, use_bias, config.dtype, name=name)
    elif config.init == "torch":
        layer = nn.Dense(features, use_bias=use_bias, name=name, dtype=config.dtype, kernel_init=_torch_uniform,
                         bias_init=nn.initializers.zeros, dot_general=_dot)
    else:
        layer = nn.Dense(features, use_bias=use_bias, name=name, dtype=config.dtype,
                         kernel_init=nn.initializers.normal(init_std), dot_general=_dot)

    def apply(x):
        return layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], features)

    return apply


def matmul_t(x, w, few_rows=128):
    """`x @ w.T` for `x` `[m, k]` and a weight `w` `[n, k]` (the torch Linear layout; the tied head's embedding).

    With 2..few_rows rows (batched decoding) it is computed as `(w · xᵀ)ᵀ`, the small transposes kept apart from
    the dot by optimization barriers (XLA would fold them back in): XLA's CPU dot then reads `w` in place as its
    left operand instead of packing it (SmolLM2-135M decoding at 8 rows, with the rest of `decode_layout`: 1.22× ->
    1.71× transformers' tokens/s on one core, benchmarks/RESULTS.md). One row or more than `few_rows` (128 suits
    the layers, 32 the wide head): the plain product. The same sums in another order: equal to float32 rounding."""
    if 2 <= x.shape[0] <= few_rows:
        return jax.lax.optimization_barrier(w @ jax.lax.optimization_barrier(x.T)).T
    return jax.lax.dot_general(x, w, (((1,), (1,)), ((), ())))


class _DenseT(nn.Module):
    """A Dense layer whose kernel is stored transposed, `kernel_t` `[out, in]` (`decode_layout`); same outputs."""
    features: int
    use_bias: bool
    dtype: Any

    @nn.compact
    def __call__(self, x):
        y = matmul_t(x.astype(self.dtype), self.get_variable("params", "kernel_t").astype(self.dtype))
        return y + self.get_variable("params", "bias").astype(self.dtype) if self.use_bias else y


DENSE_NAMES = ("q", "k", "v", "o", "gate", "up", "down", "lm_head")


def decode_layout(params: dict) -> dict:
    """The same parameters with every layer's Dense kernel stored transposed (`kernel` `[in, out]` -> `kernel_t`
    `[out, in]`), the layout in which XLA's CPU dots are fastest with few rows (`matmul_t`): what
    `lib/decoding.generate` runs its loop on. `forward` takes either layout and gives the same outputs; train,
    adapt (lib/lora.py) and save the standard one. Idempotent."""
    def convert(tree, name=None):
        if not isinstance(tree, Mapping):
            return tree
        if name in DENSE_NAMES and "kernel" in tree and tree["kernel"].ndim == 2:
            return {("kernel_t" if k == "kernel" else k): (v.T if k == "kernel" else v) for k, v in tree.items()}
        return {k: convert(v, k) for k, v in tree.items()}

    return convert(dict(params))


def _embed_init(config, std):
    return nn.initializers.normal(1.0 if config.init == "torch" else std)


class Attention(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x, *, positions, mask, cache_kv, cache_index, return_weights):
        c = self.config
        b, t, _ = x.shape
        q = _dense(c.n_heads * c.head_dim, c.qkv_bias, "q", c, self)(x).reshape(b, t, c.n_heads, c.head_dim)
        k = _dense(c.kv_heads * c.head_dim, c.qkv_bias, "k", c, self)(x).reshape(b, t, c.kv_heads, c.head_dim)
        v = _dense(c.kv_heads * c.head_dim, c.qkv_bias, "v", c, self)(x).reshape(b, t, c.kv_heads, c.head_dim)
        if c.positions == "rotary":
            q = attention.apply_rotary(q, positions, theta=c.rope_theta)
            k = attention.apply_rotary(k, positions, theta=c.rope_theta)
        new_cache = None
        if cache_kv is not None:
            ck, cv = attention.update_cache(cache_kv[0], cache_kv[1], k, v, cache_index)
            k, v, new_cache = ck, cv, (ck, cv)
        out = attention.dot_product_attention(q, k, v, mask=mask, return_weights=return_weights,
                                              kv_head_major=cache_kv is not None)
        weights = None
        if return_weights:
            out, weights = out
        out = _dense(c.d_model, c.out_bias, "o", c, self)(out.reshape(b, t, c.d_model))
        return out, new_cache, weights


class MLP(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        if c.mlp == "swiglu":
            gate = _dense(c.ff_dim, c.mlp_bias, "gate", c, self)(x)
            up = _dense(c.ff_dim, c.mlp_bias, "up", c, self)(x)
            return _dense(c.d_model, c.mlp_bias, "down", c, self)(nn.silu(gate) * up)
        act = {"gelu": lambda h: nn.gelu(h, approximate=False), "gelu_tanh": lambda h: nn.gelu(h, approximate=True),
               "relu": nn.relu}[c.mlp]
        return _dense(c.d_model, c.mlp_bias, "down", c, self)(act(_dense(c.ff_dim, c.mlp_bias, "up", c, self)(x)))


class Block(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x, *, positions, mask, cache_kv, cache_index, return_weights):
        c = self.config
        attn = Attention(c, name="attn")
        kw = dict(positions=positions, mask=mask, cache_kv=cache_kv, cache_index=cache_index,
                  return_weights=return_weights)
        if c.prenorm:
            a, new_cache, w = attn(Norm(c, name="norm_attn")(x), **kw)
            x = x + a
            if c.mlp != "none":
                x = x + MLP(c, name="mlp")(Norm(c, name="norm_mlp")(x))
        else:  # post-norm (original Transformer / BERT order)
            a, new_cache, w = attn(x, **kw)
            x = Norm(c, name="norm_attn")(x + a)
            if c.mlp != "none":
                x = Norm(c, name="norm_mlp")(x + MLP(c, name="mlp")(x))
        return x, new_cache, w


class Transformer(nn.Module):
    """`apply({"params": p}, input_ids, ...)` → dict with "logits" (or "score"), and optionally
    "hidden" (embeddings + every block's output), "attn" (per layer `[b, heads, t, s]`), "cache"."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, input_ids, *, positions=None, attention_mask=None, cache=None, cache_index=0,
                 return_hidden: bool = False, return_attn: bool = False, select=None, labels=None):
        """Args:
          input_ids: `[b, t]` int tokens.
          positions: `[b, t]` absolute positions (default arange(t) + cache_index).
          attention_mask: `[b, s]` 1 for real tokens, 0 for padding, over the keys: s = t without a
            cache, s = cache length with one (the caller tracks which cache slots hold real tokens).
          cache: None, or {"k","v": n_layers arrays `[b, kv_heads, max_len, d_h]`} (attention.init_cache);
            this call's keys/values are written at slot `cache_index` and the new cache is returned.
          select: optional `[b]` positions: the final norm and the head run only there (logits `[b, V]`),
            for losses that use one position.
          labels: optional int `[b, t]`: instead of "logits", return "label_logprobs" `[b, t]`, log p(label) at
            every position, computed by `lib.losses.head_label_logprobs` (the logits never materialised) for a tied
            head; what training steps want.
        """
        c = self.config
        b, t = input_ids.shape
        if labels is not None and (select is not None or c.head == "scalar"):
            raise ValueError("labels= is for the language-model head at every position: not with select= or a "
                             "scalar head")
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t)[None, :] + cache_index, (b, t))
        s = t if cache is None else cache["k"][0].shape[2]
        mask = attention.causal_mask(t, s, offset=0 if cache is None else cache_index)[None, None]
        if attention_mask is not None:
            mask = mask & attention.padding_mask(attention_mask)
        embed = nn.Embed(c.vocab_size, c.d_model, name="embed", embedding_init=_embed_init(c, 0.02))
        x = embed(input_ids).astype(c.dtype)
        if c.positions == "learned":
            x = x + nn.Embed(c.max_len, c.d_model, name="pos_embed",
                             embedding_init=_embed_init(c, 0.01))(positions).astype(c.dtype)
        hidden, weights, new_k, new_v = [x], [], [], []
        for i in range(c.n_layers):
            kv = None if cache is None else (cache["k"][i], cache["v"][i])
            x, nc, w = Block(c, name=f"block_{i}")(x, positions=positions, mask=mask, cache_kv=kv,
                                                   cache_index=cache_index, return_weights=return_attn)
            hidden.append(x)
            weights.append(w)
            if nc is not None:
                new_k.append(nc[0])
                new_v.append(nc[1])
        if select is not None:
            if c.head == "scalar":
                raise ValueError("select= is for the language-model head; a scalar head pools at the last real token")
            x = jnp.take_along_axis(x, select[:, None, None], axis=1)[:, 0]  # [b, d]
        if c.prenorm:
            x = Norm(c, name="norm_final")(x)
        out = {}
        if c.head == "scalar":
            score = nn.Dense(1, use_bias=False, name="score", dtype=c.dtype)(x)[..., 0]  # [b, t]
            valid = jnp.ones((b, t), bool) if attention_mask is None or cache is not None \
                else attention_mask.astype(bool)
            last = jnp.max(jnp.where(valid, jnp.arange(t)[None, :], 0), axis=-1)
            out["score"] = jnp.take_along_axis(score, last[:, None], axis=1)[:, 0].astype(jnp.float32)
            out["token_scores"] = score.astype(jnp.float32)
        elif labels is not None and c.tied_head:  # (labels with select= or a scalar head: refused above)
            rows, table = nn.dtypes.promote_dtype(x.reshape(-1, c.d_model), embed.embedding, dtype=embed.dtype)
            out["label_logprobs"] = losses.head_label_logprobs(rows, table, labels.reshape(-1),
                                                               HEAD_CHUNK).reshape(labels.shape)
        elif c.tied_head:
            rows = x.reshape(-1, c.d_model)
            if 2 <= rows.shape[0] <= 32:  # embed.attend's x·Eᵀ with E [V, d] read in place (matmul_t)
                rows, table = nn.dtypes.promote_dtype(rows, embed.embedding, dtype=embed.dtype)
                logits = matmul_t(rows, table, few_rows=32)
            else:
                logits = embed.attend(rows)
            out["logits"] = logits.reshape(*x.shape[:-1], -1).astype(jnp.float32)
        else:
            out["logits"] = _dense(c.vocab_size, False, "lm_head", c, self)(x).astype(jnp.float32)
        if labels is not None and "logits" in out:  # untied head
            out["label_logprobs"] = losses.token_logprobs(out.pop("logits"), labels)
        if return_hidden:
            out["hidden"] = hidden
        if return_attn:
            out["attn"] = weights
        if cache is not None:
            out["cache"] = {"k": tuple(new_k), "v": tuple(new_v)}
        return out


def init_params(config: TransformerConfig, key: jax.Array, *, seq_len: int = 8) -> dict:
    """Random parameters (N(0, 0.02) weights) as a plain pytree."""
    return Transformer(config).init(key, jnp.zeros((1, seq_len), jnp.int32))["params"]


def forward(params: dict, input_ids: jnp.ndarray, *, config: TransformerConfig, **kwargs) -> dict:
    """Pure forward: `Transformer(config).apply({"params": params}, input_ids, **kwargs)`."""
    return Transformer(config).apply({"params": params}, input_ids, **kwargs)


def count_params(params: dict) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
