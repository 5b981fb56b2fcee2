"""lib/decoding.speculative_rejection and the paper's metrics (improvement score, speedup)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import compute_cost, decoding, transformer

CFG = transformer.TransformerConfig(vocab_size=29, d_model=16, n_layers=2, n_heads=2, max_len=64,
                                    positions="rotary", norm="rmsnorm", mlp="swiglu", tied_head=False)
PARAMS = jax.tree.map(lambda x: 6 * x, transformer.init_params(CFG, jax.random.key(0)))
PROMPT = jnp.array([3, 7, 11, 2], jnp.int32)
T = 12


def toy_score(tokens, mask, row_ids):
    """A deterministic 'reward model': mean token id over the response so far."""
    resp = (tokens[:, 4:] * mask[:, 4:]).sum(1)
    return resp / jnp.maximum(mask[:, 4:].sum(1), 1)


def _bon(b0):
    out = decoding.generate(PARAMS, jnp.broadcast_to(PROMPT, (b0, 4)), jnp.ones((b0, 4), jnp.int32),
                            jax.random.key(5), config=CFG, max_new_tokens=T)
    return np.asarray(out["tokens"])


def test_alpha_zero_reproduces_best_of_b0():
    """With α = 0 every row survives: the candidates are exactly Best-of-b0's samples (common random numbers)."""
    res = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(5), config=CFG, score_fn=toy_score,
                                         alpha=0.0, memory_slots=10 * (4 + 8), max_new_tokens=T, b_cap=64)
    assert res["b0"] == 10
    bon = _bon(10)
    for c in res["candidates"]:
        np.testing.assert_array_equal(c["tokens"], bon[c["row_id"]])
    final = np.asarray(toy_score(jnp.concatenate([jnp.broadcast_to(PROMPT, (10, 4)), bon], 1),
                                 jnp.ones((10, 4 + T), jnp.int32), None))
    assert res["chosen"] == int(np.argmax(final))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_oracle_scorer_returns_best_of_b0_argmax(alpha):
    """If partial scores equal final scores, every α returns Best-of-b0's choice (and it is one of its samples)."""
    b0 = 20
    bon = _bon(b0)
    final = np.random.default_rng(0).permutation(b0).astype(float)  # any fixed final reward per row
    oracle = lambda tokens, mask, row_ids: jnp.asarray(final)[row_ids]
    res = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(5), config=CFG, score_fn=oracle,
                                         alpha=alpha, memory_slots=b0 * (4 + 8), max_new_tokens=T, b_cap=b0)
    assert res["chosen"] == int(np.argmax(final))
    np.testing.assert_array_equal(res["chosen_tokens"], bon[res["chosen"]])


def test_schedule_follows_memory_and_keep_rule():
    """Batch sizes shrink by the keep rule; each decision token is where b·ℓ fills the budget M."""
    M, alpha = 24 * (4 + 2), 0.5
    res = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(1), config=CFG, score_fn=toy_score,
                                         alpha=alpha, memory_slots=M, max_new_tokens=T, b_cap=24, tau_min=2,
                                         bucket=8)
    rounds = res["rounds"]
    assert rounds[0]["batch"] == 24 and rounds[0]["bucket"] == 24
    for r, nxt in zip(rounds, rounds[1:], strict=False):
        assert nxt["batch"] == decoding.keep_count(r["batch"], alpha) and nxt["bucket"] % 8 == 0
        assert r["batch"] * r["end"] <= M or r["end"] == r["start"] + 1
    assert rounds[-1]["end"] == 4 + T
    assert decoding.keep_count(5, 0.5) == 3 and decoding.keep_count(3, 0.9) == 1


def test_gathered_kv_equals_unpruned_decoding():
    """Decoding after gathering surviving rows' KV caches equals decoding the unpruned batch on those rows."""
    b = 6
    ids, mask = jnp.broadcast_to(PROMPT, (b, 4)), jnp.ones((b, 4), jnp.int32)
    full = decoding.generate(PARAMS, ids, mask, jax.random.key(9), config=CFG, max_new_tokens=T)
    state = decoding.prefill(PARAMS, ids, mask, config=CFG, max_new_tokens=T)
    state = decoding.decode(PARAMS, state, jax.random.key(9), 5, config=CFG)
    keep = jnp.array([1, 4, 4])  # the last one is bucket padding
    state = decoding.gather_rows(state, keep, dead=jnp.array([False, False, True]))
    state = decoding.decode(PARAMS, state, jax.random.key(9), T, config=CFG)
    np.testing.assert_array_equal(state["tokens"][:2], full["tokens"][jnp.array([1, 4])])
    np.testing.assert_allclose(state["logprobs"][:2], full["logprobs"][jnp.array([1, 4])], atol=1e-5)


def test_improvement_score_and_speedup():
    """The baseline scores 100; a method at the log-linear curve's midpoint gets its exact speedup."""
    base = [np.array([1.0, 3.0, 2.0]), np.array([0.0, 4.0])]
    assert decoding.improvement_score(np.array([3.0, 4.0]), base) == pytest.approx(100.0)
    assert decoding.improvement_score(np.array([5.0, 4.0]), base) == pytest.approx(150.0)
    compute = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    score = 100 + 7.0 * np.log(compute)  # exactly log-linear
    true_needed = 11.3
    out = decoding.speedup(compute, score, method_compute=0.5, method_score=100 + 7.0 * np.log(true_needed))
    assert out["speedup"] == pytest.approx(true_needed / 0.5, rel=1e-6) and not out["extrapolated"]
    below = decoding.speedup(compute, score, method_compute=1.0, method_score=99.0)
    assert below["extrapolated"] and below["speedup"] < 1
    with pytest.raises(ValueError, match="increase strictly"):
        decoding.speedup(compute, score[::-1], method_compute=1.0, method_score=100.0)


def test_expected_best_of_matches_enumeration():
    """Order-statistics Best-of-n equals the mean over every n-subset (enumerated), for scores and for other
    values read at the argmax."""
    rng = np.random.default_rng(0)
    s, g = rng.normal(size=7), rng.normal(size=7)
    for n in (1, 3, 7):
        subsets = list(itertools.combinations(range(7), n))
        want_s = np.mean([s[list(c)].max() for c in subsets])
        want_g = np.mean([g[list(c)[int(np.argmax(s[list(c)]))]] for c in subsets])
        assert decoding.expected_best_of(s, n) == pytest.approx(want_s, rel=1e-10)
        assert decoding.expected_best_of(s, n, g) == pytest.approx(want_g, rel=1e-10)
    assert decoding.subset_max_weights(512, 16).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n=9"):
        decoding.expected_best_of(s, 9)


# At α = 0 no row is rejected, so with the memory full every later round adds one token and re-prefills (a new
# shape to compile each time). A budget of 24·10 slots starts at 6 new tokens: 4 rounds (24 → 17 → 16 → 16 rows,
# buckets 24, 24, 16, 16) still cover rows finishing, dead bucket padding and a smaller bucket, with 3 re-prefills
# instead of 10 at 24·6 (about half the time).
@pytest.mark.parametrize("alpha,memory_slots", [(0.0, 24 * 10), (0.5, 24 * 6)])
def test_reprefill_matches_gathered_kv(alpha, memory_slots):
    """The official code's re-prefill of survivors gives the same candidates as gathering their KV rows, and
    its extra prefills are logged (and priced by compute_cost.schedule_cost)."""
    kw = dict(config=CFG, score_fn=toy_score, alpha=alpha, memory_slots=memory_slots, max_new_tokens=T, b_cap=24,
              tau_min=2, bucket=8, eos_id=5)
    a = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), **kw)
    b = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), reprefill=True, **kw)
    assert a["chosen"] == b["chosen"] and a["rounds"] == b["rounds"]
    for x, y in zip(a["candidates"], b["candidates"], strict=True):
        assert x["row_id"] == y["row_id"] and np.array_equal(x["tokens"], y["tokens"])
        assert x["score"] == pytest.approx(y["score"])
    assert a["prefills"] == [] and len(b["prefills"]) == len(b["rounds"]) - 1 + (b["rounds"][-1]["end"] < 4 + T)
    dims = compute_cost.ModelDims(params_nonemb=1e3, d_model=16, n_layers=2, vocab=29)
    kwc = dict(prompt_len=4, gen=dims, rm=dims)
    base = compute_cost.schedule_cost(b["rounds"], b["rm_calls"], **kwc)["flops"]
    more = compute_cost.schedule_cost(b["rounds"], b["rm_calls"], prefills=b["prefills"], **kwc)["flops"]
    assert (more > base) == bool(b["prefills"])


def test_cost_counters_returned():
    """With `cost=`, the result carries FLOPs of the computed (bucketed) rows and the roofline time of the real
    rows, equal to pricing the returned logs by hand."""
    dims = compute_cost.ModelDims(params_nonemb=1e3, d_model=16, n_layers=2, vocab=29)
    res = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), config=CFG, score_fn=toy_score, alpha=0.5,
                                         memory_slots=20 * 6, max_new_tokens=T, b_cap=20, tau_min=2, bucket=8,
                                         cost=dict(gen=dims, rm=dims, length_scale=16.0))
    kw = dict(prompt_len=4, gen=dims, rm=dims)
    assert res["flops"] == pytest.approx(compute_cost.schedule_cost(res["rounds"], res["rm_calls"], **kw)["flops"])
    real = [{**r, "bucket": r["batch"]} for r in res["rounds"]]
    sim = compute_cost.schedule_cost(real, res["rm_calls"], initial_batch=res["b0"], length_scale=16.0, **kw)
    assert res["roofline_seconds"] == pytest.approx(sim["roofline_seconds"])
    assert res["rounds"][0]["bucket"] == 24 and res["b0"] == 20  # padding rows are charged FLOPs only


def test_default_rank_pool_keeps_todays_schedule():
    """The default pool ranks this round's rows only: with early EOS (id 5) the schedule, the scores and the choice
    are the ones the code gave before `rank_pool` existed, and the default is rank_pool="active"."""
    kw = dict(config=CFG, score_fn=toy_score, alpha=0.5, memory_slots=24 * 6, max_new_tokens=T, b_cap=24, tau_min=2,
              bucket=8, eos_id=5)  # the shapes and EOS of test_reprefill_matches_gathered_kv: no new compilation
    res = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), **kw)
    assert [(r["batch"], r["end"], r["kept"]) for r in res["rounds"]] == [(24, 6, 12), (12, 12, 6), (4, 16, 2)]
    assert all(r["ranked"] == r["batch"] for r in res["rounds"])
    assert res["chosen"] == 11 and res["chosen_score"] == pytest.approx(22.083334, abs=1e-5)
    active = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), rank_pool="active", **kw)
    assert active["rounds"] == res["rounds"] and active["chosen"] == res["chosen"]
    with pytest.raises(ValueError, match="rank_pool='official'"):
        decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(3), rank_pool="official", **kw)


def test_with_finished_pool_ranks_held_rows_again():
    """The official code's pool: rows that finished (EOS) and were kept are ranked again next round, count toward n
    and take keep slots. With a scorer that puts every finished row above every partial one, the rows finished in
    round 0 (F0) take |F0| of round 1's keep_count(n1 + |F0|) slots, so fewer unfinished rows survive than with the
    default pool; complete rows score in reverse of their partials, so the crowded-out row held the default
    pool's choice. Until a finished row is held, the two pools agree."""
    eos = 5

    def finished_first(tokens, mask, row_ids):
        partial = toy_score(tokens, mask, row_ids)  # < 29 (the vocabulary)
        fin = ((tokens[:, 4:] == eos) & (mask[:, 4:] > 0)).any(1)
        if tokens.shape[1] - 4 >= T:
            return jnp.where(fin, 50.0 + partial, 100.0 - partial)
        return jnp.where(fin, 50.0, 0.0) + partial

    kw = dict(config=CFG, score_fn=finished_first, alpha=0.5, memory_slots=24 * 6, max_new_tokens=T, b_cap=24,
              tau_min=2, bucket=8, eos_id=eos)
    act = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(0), **kw)
    wf = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(0), rank_pool="with_finished", **kw)
    assert act["rounds"][:1] == wf["rounds"][:1]  # nothing held yet
    early = lambda r: [c for c in act["candidates"] if c["round"] == r and c["finished"] and c["length"] < T]
    f0, new1 = early(0), len(early(1))
    assert f0 and not any(c.get("rejected") for c in f0)  # finished rows outrank partial ones: all kept
    assert not any(c.get("rejected") for c in wf["candidates"] if c["row_id"] in {x["row_id"] for x in f0})
    n1 = act["rounds"][1]["batch"]
    assert wf["rounds"][1]["batch"] == n1 and act["rounds"][1]["ranked"] == n1
    assert wf["rounds"][1]["ranked"] == n1 + len(f0)
    assert wf["rounds"][1]["kept"] == decoding.keep_count(n1 + len(f0), 0.5)
    next_batch = lambda res: res["rounds"][2]["batch"] if len(res["rounds"]) > 2 else 0
    assert next_batch(act) == decoding.keep_count(n1, 0.5) - new1 > 0
    assert next_batch(wf) == max(0, decoding.keep_count(n1 + len(f0), 0.5) - len(f0) - new1)
    assert next_batch(wf) < next_batch(act) and act["chosen"] != wf["chosen"]
    by_row = {c["row_id"]: c["tokens"] for c in act["candidates"]}
    for c in wf["candidates"]:  # common random numbers: a row's tokens do not depend on the pool
        m = min(len(c["tokens"]), len(by_row[c["row_id"]]))
        np.testing.assert_array_equal(c["tokens"][:m], by_row[c["row_id"]][:m])


def test_left_padded_prompt_and_shared_prompt_kv():
    """A left-padded prompt (`prompt_mask`) gives the unpadded prompt's candidates, schedule and costs, with the
    scorer's mask 0 on the padding; `prompt_kv_shared` leaves the prompt out of the budget (b0 = ⌊M/τ_min⌋,
    decision tokens ⌊M/b⌋ new tokens)."""
    kw = dict(config=CFG, alpha=0.5, memory_slots=10 * (4 + 8), max_new_tokens=T, b_cap=64, bucket=4,
              cost=dict(gen=compute_cost.ModelDims(1e3, 16, 2, 29), rm=compute_cost.ModelDims(1e3, 16, 2, 29)))
    seen = []

    def score(tokens, mask, row_ids):  # depends on the row only, so both runs rank alike
        seen.append(np.asarray(mask))
        return jnp.asarray(np.asarray(row_ids) % 7, jnp.float32)

    ref = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(5), score_fn=score, **kw)
    padded = jnp.concatenate([jnp.zeros(3, jnp.int32), PROMPT])
    pm = np.array([0, 0, 0, 1, 1, 1, 1])
    res = decoding.speculative_rejection(PARAMS, padded, jax.random.key(5), score_fn=score, prompt_mask=pm, **kw)
    assert res["rounds"] == ref["rounds"] and res["chosen"] == ref["chosen"] and res["flops"] == ref["flops"]
    for a, b in zip(ref["candidates"], res["candidates"], strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert (seen[-1][:, :3] == 0).all() and (seen[-1][:, 3:7] == 1).all()
    shared = decoding.speculative_rejection(PARAMS, PROMPT, jax.random.key(5), score_fn=score,
                                            prompt_kv_shared=True, **{**kw, "memory_slots": 80})
    assert shared["b0"] == 80 // 8 and shared["rounds"][0]["end"] - 4 == 80 // 10  # held prompts: b0 = 80 // 12
