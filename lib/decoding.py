"""Sampling and KV-cached generation as pure, jitted functions.

- `sample_logits`: temperature (0 = greedy), top-k, top-p (nucleus).
- `generate`: batched generation; the prompt is prefilled into a static-shape KV cache, then every new
  token is one step of a `lax.while_loop` (no Python loop per token), stopping when every row has
  emitted EOS or `max_new_tokens` are done; per-row lengths.
- Row `r`'s token at absolute position `p` (counting its real tokens) is drawn with key
  `fold_in(fold_in(key, row_ids[r]), p)`, so a row's sample depends neither on which other rows share
  the batch nor on its left padding.
- `best_of_n`: N samples per prompt, scored by a reward function, the best one chosen.

Prompts are **left-padded** `[b, P]` with `prompt_mask` 1 on real tokens, so every row's next token is
written at the same cache slot; positions count real tokens only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from lib import attention
from lib.transformer import TransformerConfig, forward


def row_keys(key: jax.Array, row_ids: jnp.ndarray, positions: jnp.ndarray) -> jax.Array:
    """Keys `[b]`: fold_in(fold_in(key, row_id), position), position = the token's absolute position
    (real tokens before it), so neither other rows nor the amount of left padding change a sample."""
    positions = jnp.broadcast_to(positions, row_ids.shape)
    return jax.vmap(lambda r, p: jax.random.fold_in(jax.random.fold_in(key, r), p))(row_ids, positions)


def sample_logits(logits: jnp.ndarray, keys: jax.Array, *, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> jnp.ndarray:
    """Tokens `[b]` from logits `[b, V]` with one key per row. temperature=0 is greedy (argmax)."""
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(f"temperature={temperature}, top_k={top_k}, top_p={top_p} are invalid: expected "
                         "temperature >= 0, top_k >= 0 (0 = off), 0 < top_p <= 1")
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    neg = jnp.finfo(jnp.float32).min
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, neg, logits)
    if top_p < 1.0:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        cum_before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly before each token
        sorted_logits = jnp.where(cum_before < top_p, sorted_logits, neg)  # always keeps the top token
        logits = jnp.full_like(logits, neg).at[jnp.arange(logits.shape[0])[:, None], order].set(sorted_logits)
    return jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(keys, logits).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "temperature", "top_k", "top_p",
                                             "eos_id", "pad_id"))
def generate(params: dict, prompt_ids: jnp.ndarray, prompt_mask: jnp.ndarray, key: jax.Array, *,
             config: TransformerConfig, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, eos_id: int | None = None, pad_id: int = 0,
             row_ids: jnp.ndarray | None = None) -> dict:
    """Generates up to `max_new_tokens` after left-padded prompts.

    Args:
      prompt_ids, prompt_mask: `[b, P]`, left-padded (mask 1 on real tokens; every row needs ≥ 1).
      key: the root key; row_ids `[b]` (default arange(b)) name the rows for the per-row key rule.
    Returns dict:
      tokens `[b, N]` (pad_id after a row's EOS), logprobs `[b, N]` (of each sampled token under the
      untempered model; 0 after EOS), lengths `[b]` (new tokens including EOS), steps (loop count).
    """
    b, P = prompt_ids.shape
    N = max_new_tokens
    row_ids = jnp.arange(b) if row_ids is None else row_ids
    mask = prompt_mask.astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    n_real = mask.sum(1)
    cache = attention.init_cache(batch=b, max_len=P + N, n_layers=config.n_layers, n_kv_heads=config.kv_heads,
                                 head_dim=config.head_dim, dtype=config.dtype)
    kv_mask = jnp.zeros((b, P + N), jnp.int32).at[:, :P].set(mask)
    out = forward(params, prompt_ids, config=config, positions=positions, attention_mask=kv_mask, cache=cache,
                  cache_index=0)
    state = {
        "i": jnp.zeros((), jnp.int32), "cache": out["cache"], "logits": out["logits"][:, -1],
        "kv_mask": kv_mask, "tokens": jnp.full((b, N), pad_id, jnp.int32),
        "logprobs": jnp.zeros((b, N), jnp.float32), "done": jnp.zeros((b,), bool),
        "lengths": jnp.zeros((b,), jnp.int32),
    }

    def cond(s):
        return (s["i"] < N) & ~jnp.all(s["done"])

    def body(s):
        i = s["i"]
        pos = n_real + i  # absolute position of the token being sampled
        tok = jax.vmap(lambda k, lg: sample_logits(lg[None], k[None], temperature=temperature, top_k=top_k,
                                                   top_p=top_p)[0])(row_keys(key, row_ids, pos), s["logits"])
        logp = jnp.take_along_axis(jax.nn.log_softmax(s["logits"], -1), tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(s["done"], pad_id, tok)
        lengths = s["lengths"] + (~s["done"]).astype(jnp.int32)
        done = s["done"] | (tok == eos_id) if eos_id is not None else s["done"]
        kv_mask = s["kv_mask"].at[:, P + i].set(1)
        o = forward(params, tok[:, None], config=config, positions=pos[:, None], attention_mask=kv_mask,
                    cache=s["cache"], cache_index=P + i)
        return {"i": i + 1, "cache": o["cache"], "logits": o["logits"][:, 0], "kv_mask": kv_mask,
                "tokens": s["tokens"].at[:, i].set(tok),
                "logprobs": s["logprobs"].at[:, i].set(jnp.where(s["done"], 0.0, logp)),
                "done": done, "lengths": lengths}

    s = jax.lax.while_loop(cond, body, state)
    return {"tokens": s["tokens"], "logprobs": s["logprobs"], "lengths": s["lengths"], "steps": s["i"]}


def best_of_n(params: dict, prompt_ids: jnp.ndarray, prompt_mask: jnp.ndarray, key: jax.Array, *,
              config: TransformerConfig, n: int, reward_fn: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
              max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
              eos_id: int | None = None, pad_id: int = 0) -> dict:
    """Best-of-N: `n` samples per prompt (row id = prompt_index·n + j), scored by
    `reward_fn(tokens [b·n, N], lengths [b·n]) -> [b·n]`, the highest-scoring one chosen per prompt.

    Returns {"tokens" [b, n, N], "lengths" [b, n], "scores" [b, n], "best" [b], "best_tokens" [b, N]}."""
    b = prompt_ids.shape[0]
    rep = lambda x: jnp.repeat(x, n, axis=0)
    out = generate(params, rep(prompt_ids), rep(prompt_mask), key, config=config, max_new_tokens=max_new_tokens,
                   temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos_id, pad_id=pad_id,
                   row_ids=jnp.arange(b * n))
    scores = reward_fn(out["tokens"], out["lengths"]).reshape(b, n)
    tokens = out["tokens"].reshape(b, n, -1)
    best = jnp.argmax(scores, axis=1)
    return {"tokens": tokens, "lengths": out["lengths"].reshape(b, n), "scores": scores, "best": best,
            "best_tokens": jnp.take_along_axis(tokens, best[:, None, None], axis=1)[:, 0]}
