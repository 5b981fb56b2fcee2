"""Sampling and KV-cached generation as pure, jitted functions.

- `sample_logits`: temperature (0 = greedy), top-k, top-p (nucleus).
- `generate`: batched generation; the prompt is prefilled into a static-shape KV cache, then every new
  token is one step of a `lax.while_loop` (no Python loop per token), stopping when every row has
  emitted EOS or `max_new_tokens` are done; per-row lengths.
- Row `r`'s token at absolute position `p` (counting its real tokens) is drawn with key
  `fold_in(fold_in(key, row_ids[r]), p)`, so a row's sample depends neither on which other rows share
  the batch nor on its left padding.
- `best_of_n`: N samples per prompt, scored by a reward function, the best one chosen.
- `speculative_rejection`: Best-of-N's choice at a fraction of its compute: start with a large batch, prune
  the lowest-scoring partial responses whenever the KV budget fills (gathering survivors' KV rows), repeat.
  `prefill`, `decode` (resumable rounds) and `gather_rows` are its building blocks.

Prompts are **left-padded** `[b, P]` with `prompt_mask` 1 on real tokens, so every row's next token is
written at the same cache slot; positions count real tokens only.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from lib import attention, compute_cost
from lib.stats import round_up
from lib.transformer import TransformerConfig, decode_layout, forward


def row_keys(key: jax.Array, row_ids: jnp.ndarray, positions: jnp.ndarray) -> jax.Array:
    """Keys `[b]`: fold_in(fold_in(key, row_id), position), position = the token's absolute position
    (real tokens before it), so neither other rows nor the amount of left padding change a sample."""
    positions = jnp.broadcast_to(positions, row_ids.shape)
    return jax.vmap(lambda r, p: jax.random.fold_in(jax.random.fold_in(key, r), p))(row_ids, positions)


def greedy(logits: jnp.ndarray) -> jnp.ndarray:
    """`jnp.argmax(logits, -1)` (the first maximum; the first NaN if any) as two plain reductions, which XLA's CPU
    backend vectorises: its one-pass (value, index) reduction takes about 1.7 ms over `[8, 49152]`, this about 0.2."""
    top = jnp.max(logits, axis=-1, keepdims=True)
    hit = (logits == top) | jnp.isnan(logits)
    return jnp.min(jnp.where(hit, jnp.arange(logits.shape[-1], dtype=jnp.int32), logits.shape[-1]), axis=-1)


def sample_logits(logits: jnp.ndarray, keys: jax.Array, *, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> jnp.ndarray:
    """Tokens `[b]` from logits `[b, V]` with one key per row. temperature=0 is greedy (argmax)."""
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(f"temperature={temperature}, top_k={top_k}, top_p={top_p} are invalid: expected "
                         "temperature >= 0, top_k >= 0 (0 = off), 0 < top_p <= 1")
    if temperature == 0:
        return greedy(logits)
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


def prefill(params: dict, prompt_ids: jnp.ndarray, prompt_mask: jnp.ndarray, *, config: TransformerConfig,
            max_new_tokens: int, pad_id: int = 0, row_ids: jnp.ndarray | None = None) -> dict:
    """Runs the left-padded prompts `[b, P]` into a fresh static KV cache of length P + max_new_tokens and
    returns the decoding state (every per-row leaf, the cache's included, has the batch first)."""
    b, P = prompt_ids.shape
    N = max_new_tokens
    mask = prompt_mask.astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    cache = attention.init_cache(batch=b, max_len=P + N, n_layers=config.n_layers, n_kv_heads=config.kv_heads,
                                 head_dim=config.head_dim, dtype=config.dtype)
    kv_mask = jnp.zeros((b, P + N), jnp.int32).at[:, :P].set(mask)
    out = forward(params, prompt_ids, config=config, positions=positions, attention_mask=kv_mask, cache=cache,
                  cache_index=0, select=jnp.full((b,), P - 1))  # the head at the last position only
    return {"i": jnp.zeros((), jnp.int32), "cache": out["cache"], "logits": out["logits"],
            "kv_mask": kv_mask, "tokens": jnp.full((b, N), pad_id, jnp.int32),
            "logprobs": jnp.zeros((b, N), jnp.float32), "done": jnp.zeros((b,), bool),
            "lengths": jnp.zeros((b,), jnp.int32), "n_real": mask.sum(1),
            "row_ids": jnp.arange(b) if row_ids is None else jnp.asarray(row_ids)}


def decode(params: dict, state: dict, key: jax.Array, until, *, config: TransformerConfig, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, eos_id: int | None = None, pad_id: int = 0) -> dict:
    """Continues decoding `state` in one `lax.while_loop` until `until` new tokens exist (a traced value, so
    rounds of any length share one compilation) or every row has finished."""
    P = state["kv_mask"].shape[1] - state["tokens"].shape[1]
    N = state["tokens"].shape[1]
    until = jnp.minimum(until, N)

    def cond(s):
        return (s["i"] < until) & ~jnp.all(s["done"])

    def body(s):
        i = s["i"]
        pos = s["n_real"] + i  # absolute position of the token being sampled
        tok = jax.vmap(lambda k, lg: sample_logits(lg[None], k[None], temperature=temperature, top_k=top_k,
                                                   top_p=top_p)[0])(row_keys(key, s["row_ids"], pos), s["logits"])
        logp = jnp.take_along_axis(jax.nn.log_softmax(s["logits"], -1), tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(s["done"], pad_id, tok)
        lengths = s["lengths"] + (~s["done"]).astype(jnp.int32)
        # eos_id: one id, or a tuple of stop ids (any of them ends the row)
        done = s["done"] | jnp.isin(tok, jnp.asarray(eos_id)) if eos_id is not None else s["done"]
        kv_mask = s["kv_mask"].at[:, P + i].set(1)
        o = forward(params, tok[:, None], config=config, positions=pos[:, None], attention_mask=kv_mask,
                    cache=s["cache"], cache_index=P + i)
        return {**s, "i": i + 1, "cache": o["cache"], "logits": o["logits"][:, 0], "kv_mask": kv_mask,
                "tokens": s["tokens"].at[:, i].set(tok),
                "logprobs": s["logprobs"].at[:, i].set(jnp.where(s["done"], 0.0, logp)),
                "done": done, "lengths": lengths}

    return jax.lax.while_loop(cond, body, state)


def gather_rows(state: dict, idx: jnp.ndarray, *, dead: jnp.ndarray | None = None) -> dict:
    """The decoding state of rows `idx` `[b']` (KV rows gathered, not re-prefilled); rows flagged `dead`
    (bucket padding) are marked finished so they never change the result."""
    out = {k: (v if k == "i" else jax.tree.map(lambda x: jnp.take(x, idx, axis=0), v)) for k, v in state.items()}
    if dead is not None:
        out["done"] = out["done"] | dead
    return out


_prefill_jit = jax.jit(prefill, static_argnames=("config", "max_new_tokens", "pad_id"))
_decode_jit = jax.jit(decode, static_argnames=("config", "temperature", "top_k", "top_p", "eos_id", "pad_id"),
                      donate_argnums=(1,))
_gather_jit = jax.jit(gather_rows)


# the last standard-layout params `generate` saw: weak references to their leaves, and their decode layout
_LAYOUT: dict = {}


def _decode_params(params: dict) -> dict:
    """`decode_layout(params)` (new arrays for the kernels only, about 0.15 s for SmolLM2-135M on one core), made
    once per params object and kept while those arrays live; inside a trace, or for leaves that are not arrays,
    `params` itself."""
    leaves = jax.tree.leaves(params)
    if not leaves or not all(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) for x in leaves):
        return params
    refs = _LAYOUT.get("refs")
    if refs is not None and len(refs) == len(leaves) and all(r() is x for r, x in zip(refs, leaves, strict=True)):
        return _LAYOUT["params"]
    token = object()
    forget = lambda _, token=token: _LAYOUT.clear() if _LAYOUT.get("token") is token else None  # noqa: E731
    _LAYOUT.clear()  # the previous copy goes before the new one is made
    _LAYOUT.update(token=token, refs=[weakref.ref(x, forget) for x in leaves], params=decode_layout(params))
    return _LAYOUT["params"]


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "temperature", "top_k", "top_p",
                                             "eos_id", "pad_id"))
def _generate_jit(params, prompt_ids, prompt_mask, key, *, config, max_new_tokens, temperature, top_k, top_p, eos_id,
                  pad_id, row_ids):
    state = prefill(params, prompt_ids, prompt_mask, config=config, max_new_tokens=max_new_tokens, pad_id=pad_id,
                    row_ids=row_ids)
    s = decode(params, state, key, max_new_tokens, config=config, temperature=temperature, top_k=top_k,
               top_p=top_p, eos_id=eos_id, pad_id=pad_id)
    return {"tokens": s["tokens"], "logprobs": s["logprobs"], "lengths": s["lengths"], "steps": s["i"]}


def generate(params: dict, prompt_ids: jnp.ndarray, prompt_mask: jnp.ndarray, key: jax.Array, *,
             config: TransformerConfig, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, eos_id: int | None = None, pad_id: int = 0,
             row_ids: jnp.ndarray | None = None) -> dict:
    """Generates up to `max_new_tokens` after left-padded prompts (prefill + one `decode` loop, one jitted program).

    Args:
      prompt_ids, prompt_mask: `[b, P]`, left-padded (mask 1 on real tokens; every row needs ≥ 1).
      key: the root key; row_ids `[b]` (default arange(b)) name the rows for the per-row key rule.
    Returns dict:
      tokens `[b, N]` (pad_id after a row's EOS), logprobs `[b, N]` (of each sampled token under the
      untempered model; 0 after EOS), lengths `[b]` (new tokens including EOS), steps (loop count).

    With 2..128 rows it runs on `transformer.decode_layout(params)` (the kernels transposed, which XLA's CPU dots
    read faster with few rows; SmolLM2-135M at 8 rows: benchmarks/RESULTS.md), made once per params object and kept
    while those arrays live (`_decode_params`); same tokens, logits equal to float32 rounding.
    """
    if 2 <= prompt_ids.shape[0] <= 128:
        params = _decode_params(params)
    return _generate_jit(params, prompt_ids, prompt_mask, key, config=config, max_new_tokens=max_new_tokens,
                         temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos_id, pad_id=pad_id,
                         row_ids=row_ids)


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


# ----------------------------------------------------------------------------- speculative rejection


def keep_count(n: int, alpha: float) -> int:
    """Rows kept after a rejection step: max(1, floor((1−α)·n + 0.5)) (one explicit rule; the official
    code's Python round() rounds half to even)."""
    return max(1, int(np.floor((1.0 - alpha) * n + 0.5)))


RANK_POOLS = ("active", "with_finished")


def speculative_rejection(params: dict, prompt_ids, key: jax.Array, *, config: TransformerConfig,
                          score_fn: Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray],
                          alpha: float, memory_slots: int, max_new_tokens: int, b_cap: int, tau_min: int = 8,
                          bucket: int = 8, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                          eos_id: int | None = None, pad_id: int = 0, reprefill: bool = False,
                          rank_pool: str = "active", cost: dict | None = None, prompt_mask=None,
                          prompt_kv_shared: bool = False) -> dict:
    """Speculative Rejection (Sun et al., NeurIPS 2024) for one prompt `[P]`.

    Start with b0 = min(b_cap, ⌊M/(P+τ_min)⌋) rows; generate until the KV memory budget M (token slots) is
    full (the decision token ℓ = ⌊M/b⌋, at least τ_min new tokens in the first round and one in later
    ones); score every row with `score_fn(tokens [n, ℓ], mask [n, ℓ], row_ids [n]) -> [n]` (prompt +
    response so far, right-padded after EOS); keep the best `keep_count(n, α)` (ties broken by row id);
    gather the survivors' KV rows into a batch bucketed to a multiple of `bucket`; repeat until every row
    has finished or the length limit. Rows that finish in a round compete in that round's ranking with
    their final score; kept finished rows leave the batch and stay candidates. The choice is the best
    finished-and-kept row or last-round row. Row keys follow (row id, position), so α = 0 reproduces
    `generate` on b0 rows exactly.

    rank_pool: which rows each rejection step ranks (n and the keep slots are counted over them).
      "active" (the default): the rows decoded this round only. A finished row's score is final and it is
        already a candidate, so ranking it again cannot change the choice; it would only take a keep slot from
        a row that can still improve while holding no KV memory itself. This is the algorithm as the paper
        describes it (prune the partial responses that fill the memory budget), and the project's recorded
        numbers use it.
      "with_finished": the official code's pool (Zanette-Labs/SpeculativeRejection, `perform_speculative_rejection`):
        the finished rows kept by the previous ranking are ranked again with this round's rows, count toward n
        and take keep slots, so fewer unfinished rows survive when rows finish early. A held row that falls out
        stays a candidate (the official code stores it before ranking). Identical to "active" when no row
        finishes before the last round.

    reprefill=True does what the official code does instead of gathering: after each rejection the survivors'
    caches are dropped and prompt + response so far is prefilled again (logged in "prefills"; same samples up
    to floating-point differences between a prefilled and an incrementally written cache).

    prompt_mask: optional `[P]`, 1 on real tokens of a left-padded prompt (prompts padded to one length share
    one compilation); lengths in the log, the budget and the costs count real tokens only.
    prompt_kv_shared: the budget M counts response tokens only (the rows share the prompt's KV, as a prefix cache
    does): b0 = min(b_cap, ⌊M/τ_min⌋), decision token ⌊M/b⌋ new tokens. Default False: every row holds its prompt.

    cost: optional keyword arguments of `lib.compute_cost.schedule_cost` (gen=, rm= ModelDims; hw=, length_scale=,
    batch_scale=): the result then carries "flops" (bucketed rows, as computed) and "roofline_seconds" (real rows, as
    a simulated accelerator would run them).

    Returns dict: "candidates" (list of {row_id, tokens, length, score, finished, round}), "chosen" (row id),
    "chosen_tokens", "b0", "rounds" (list of {batch, bucket, start, end, kept, ranked} with lengths in tokens
    including the prompt; batch = rows decoded, ranked = rows ranked, kept = rows of those kept), "rm_calls"
    (list of {n, length}), "prefills" (re-prefills, list of {n, length}), "wall_seconds".
    """
    t0 = time.perf_counter()
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha={alpha!r} is invalid: expected 0 <= alpha < 1")
    if rank_pool not in RANK_POOLS:
        raise ValueError(f"rank_pool={rank_pool!r} is invalid: expected one of {list(RANK_POOLS)}")
    prompt_ids = jnp.asarray(prompt_ids, jnp.int32).reshape(-1)
    P, T = prompt_ids.shape[0], max_new_tokens
    pmask = np.ones(P, np.int32) if prompt_mask is None else np.asarray(prompt_mask, np.int32).reshape(P)
    Lp = int(pmask.sum())  # real prompt tokens
    held_prompt = 0 if prompt_kv_shared else Lp  # KV slots a row's prompt takes from the budget
    b0 = min(b_cap, memory_slots // (held_prompt + tau_min))
    if b0 < 1:
        raise ValueError(f"memory_slots={memory_slots} cannot hold one row of {held_prompt + tau_min} tokens")
    kw = dict(config=config, temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos_id, pad_id=pad_id)
    bb = round_up(b0, bucket)
    rows = np.concatenate([np.arange(b0), np.full(bb - b0, b0 - 1)])
    state = _prefill_jit(params, jnp.broadcast_to(prompt_ids, (bb, P)),
                         jnp.broadcast_to(jnp.asarray(pmask), (bb, P)), config=config, max_new_tokens=T,
                         pad_id=pad_id, row_ids=jnp.asarray(rows))
    state["done"] = state["done"] | jnp.asarray(np.arange(bb) >= b0)
    active = np.arange(b0)  # row ids of the real rows, in state order (first len(active) slots)
    candidates, rounds, rm_calls, prefills = {}, [], [], []
    held = []  # rank_pool="with_finished": row ids of finished rows kept by the last ranking, ranked again
    cur, first = 0, True  # new tokens so far
    offset, history = 0, np.zeros((b0, 0), np.int32)  # new tokens baked into the state's prompt (re-prefill)
    while True:
        n = len(active)
        target = min(T, memory_slots // n - held_prompt)
        target = max(target, tau_min if first else cur + 1)
        target = min(max(target, cur + 1), T)
        start = cur
        state = _decode_jit(params, state, key, target - offset, **kw)
        cur = offset + int(state["i"])
        tokens = np.concatenate([history[:n], np.asarray(state["tokens"][:n, :cur - offset])], axis=1)
        lengths = offset + np.asarray(state["lengths"][:n])
        done = np.asarray(state["done"][:n])
        seq = np.concatenate([np.broadcast_to(np.asarray(prompt_ids), (n, P)), tokens], axis=1)
        mask = (np.arange(P + cur)[None, :] < (P + lengths)[:, None]).astype(np.int32)
        mask[:, :P] = pmask
        scores = np.asarray(score_fn(jnp.asarray(seq), jnp.asarray(mask), jnp.asarray(active)), np.float64)
        rm_calls.append({"n": n, "length": Lp + cur})
        for j, rid in enumerate(active):
            candidates[int(rid)] = {"row_id": int(rid), "tokens": tokens[j, :lengths[j]], "length": int(lengths[j]),
                                    "score": float(scores[j]), "finished": bool(done[j]) or cur >= T,
                                    "round": len(rounds)}
        # (score, row id, batch index j or None for a finished row held over from the previous ranking)
        ranked = [(scores[j], int(active[j]), j) for j in range(n)]
        ranked += [(candidates[r]["score"], r, None) for r in held]
        ranked.sort(key=lambda x: (-x[0], x[1]))
        kept = ranked[:keep_count(len(ranked), alpha)]
        rounds.append({"batch": n, "bucket": int(state["done"].shape[0]), "start": Lp + start, "end": Lp + cur,
                       "kept": len(kept), "ranked": len(ranked)})
        for _, rid, j in ranked[len(kept):]:
            if j is not None:  # a held finished row that falls out stays a candidate (as the official code)
                candidates[rid]["rejected"] = True
        survivors = [j for _, _, j in kept if j is not None and not done[j]]
        if rank_pool == "with_finished":
            held = [rid for _, rid, j in kept if j is None or done[j]]
        first = False
        if not survivors or cur >= T:
            break
        bb = round_up(len(survivors), bucket)
        idx = np.array(survivors + [survivors[-1]] * (bb - len(survivors)))
        dead = np.arange(bb) >= len(survivors)
        if reprefill:
            history = tokens[idx]
            ids = np.concatenate([np.broadcast_to(np.asarray(prompt_ids), (bb, P)), history], axis=1)
            ids_mask = np.concatenate([np.broadcast_to(pmask, (bb, P)), np.ones(history.shape, np.int32)], axis=1)
            state = _prefill_jit(params, jnp.asarray(ids), jnp.asarray(ids_mask), config=config,
                                 max_new_tokens=T - cur, pad_id=pad_id, row_ids=jnp.asarray(active[idx]))
            state["done"] = state["done"] | jnp.asarray(dead)
            prefills.append({"n": len(survivors), "length": Lp + cur})
            offset = cur
        else:
            state = _gather_jit(state, jnp.asarray(idx), dead=jnp.asarray(dead))
        active = active[np.array(survivors)]
    pool = [c for c in candidates.values() if not c.get("rejected")]
    chosen = min(pool, key=lambda c: (-c["score"], c["row_id"]))
    out = {"candidates": sorted(candidates.values(), key=lambda c: c["row_id"]), "chosen": chosen["row_id"],
           "chosen_tokens": chosen["tokens"], "chosen_score": chosen["score"], "b0": b0, "rounds": rounds,
           "rm_calls": rm_calls, "prefills": prefills, "wall_seconds": time.perf_counter() - t0}
    if cost is not None:
        kw = dict(cost, prompt_len=Lp, prefills=prefills)
        scale = {k: kw.pop(k) for k in ("length_scale", "batch_scale") if k in kw}
        out["flops"] = compute_cost.schedule_cost(rounds, rm_calls, initial_batch=rounds[0]["bucket"], **kw)["flops"]
        real = [{**r, "bucket": r["batch"]} for r in rounds]
        out["roofline_seconds"] = compute_cost.schedule_cost(real, rm_calls, initial_batch=b0, **kw,
                                                             **scale)["roofline_seconds"]
    return out


def improvement_score(method_best: np.ndarray, baseline_scores: list[np.ndarray]) -> float:
    """The paper's score: 100·(1 + mean_j (max S_j^M − max S_j^B)/(max S_j^B − min S_j^B)), baseline = 100.
    `method_best` `[prompts]` is each prompt's best score under the method; `baseline_scores` lists each
    prompt's baseline (Best-of-N0) candidate scores. Prompts whose baseline spread is 0 are skipped."""
    imps = []
    for best, base in zip(np.asarray(method_best, float), baseline_scores, strict=True):
        base = np.asarray(base, float)
        spread = base.max() - base.min()
        if spread > 0:
            imps.append((best - base.max()) / spread)
    return 100.0 * (1.0 + float(np.mean(imps))) if imps else float("nan")


def speedup(bon_compute: np.ndarray, bon_score: np.ndarray, method_compute: float, method_score: float) -> dict:
    """Compute Best-of-N needs for `method_score`, interpolated linearly in log(compute) between its two
    neighbouring points (the paper's `interpolate_log`), divided by the method's compute. Below the first
    point or above the last, the end segment is extended and flagged (the official code's index −1 bug is
    not reproduced)."""
    x, y = np.log(np.asarray(bon_compute, float)), np.asarray(bon_score, float)
    if np.any(np.diff(y) <= 0):
        raise ValueError("the Best-of-N curve must increase strictly with compute (average over subsets first)")
    i = int(np.clip(np.searchsorted(y, method_score) - 1, 0, len(y) - 2))
    x_needed = x[i] + (method_score - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])
    return {"speedup": float(np.exp(x_needed) / method_compute), "bon_compute": float(np.exp(x_needed)),
            "extrapolated": bool(method_score < y[0] or method_score > y[-1])}


def subset_max_weights(m: int, n: int) -> np.ndarray:
    """`[m]` probabilities that the i-th smallest of m values (i = 0..m−1) is the largest of a uniformly
    random n-subset: C(i, n−1) / C(m, n) (order statistics; exact, no resampling noise)."""
    if not 1 <= n <= m:
        raise ValueError(f"n={n} is invalid: expected 1 <= n <= m={m}")
    i = np.arange(m)
    logw = np.where(i >= n - 1, gammaln(i + 1) - gammaln(n) - gammaln(i - n + 2), -np.inf)
    logw -= gammaln(m + 1) - gammaln(n + 1) - gammaln(m - n + 1)
    return np.exp(logw)


def expected_best_of(scores: np.ndarray, n: int, values: np.ndarray | None = None) -> float:
    """E over uniformly random n-subsets of `scores` `[m]` of the `values` (default: the scores) of the
    subset's highest-scoring member: Best-of-n's expected outcome estimated from m ≥ n samples."""
    scores = np.asarray(scores, float)
    order = np.argsort(scores, kind="stable")
    v = scores if values is None else np.asarray(values, float)
    return float(np.dot(subset_max_weights(len(scores), n), v[order]))
