"""lib/decoding.py: KV-cached generation equals full recomputation and transformers; the per-row key
rule; one compilation per shape; top-k/top-p; best-of-N."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hf_fixtures import random_ids, save_tiny, torch

from lib import decoding, hf_import, losses, transformer

CFG = transformer.TransformerConfig(vocab_size=41, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_len=64,
                                    positions="rotary", norm="rmsnorm", mlp="swiglu", tied_head=False)


def _params(seed=0):
    params = transformer.init_params(CFG, jax.random.key(seed))
    return jax.tree.map(lambda x: x * 10, params)  # larger weights: peaked, prompt-dependent logits


def _left_padded(seed=0):
    ids = jnp.asarray(random_ids((3, 6), seed) % 41)
    mask = jnp.array([[1] * 6, [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]])
    return jnp.where(mask == 1, ids, 0), mask


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa"])
def test_greedy_generation_matches_transformers(kind, tmp_path):
    """Greedy KV-cached decoding produces transformers' greedy tokens."""
    ref_model = save_tiny(kind, tmp_path)
    model = hf_import.load_model(tmp_path)
    ids = random_ids((2, 7))
    with torch.no_grad():
        ref = ref_model.generate(torch.tensor(ids), max_new_tokens=12, do_sample=False, eos_token_id=None,
                                 pad_token_id=0).numpy()[:, 7:]
    out = decoding.generate(model.params, jnp.asarray(ids), jnp.ones((2, 7), jnp.int32), jax.random.key(0),
                            config=model.config, max_new_tokens=12, temperature=0.0)
    np.testing.assert_array_equal(out["tokens"], ref)


def test_kv_cache_equals_full_recomputation_with_left_padding():
    """Sampled tokens and their log-probs equal a full forward over prompt + continuation (padded rows too)."""
    params = _params()
    ids, mask = _left_padded()
    out = decoding.generate(params, ids, mask, jax.random.key(1), config=CFG, max_new_tokens=8, temperature=1.0)
    full = jnp.concatenate([ids, out["tokens"]], axis=1)
    full_mask = jnp.concatenate([mask, jnp.ones_like(out["tokens"])], axis=1)
    positions = jnp.maximum(jnp.cumsum(full_mask, axis=1) - 1, 0)
    logits = transformer.forward(params, full, config=CFG, positions=positions, attention_mask=full_mask)["logits"]
    lp = losses.token_logprobs(logits[:, 5:-1], out["tokens"])
    np.testing.assert_allclose(out["logprobs"], lp, atol=2e-4)
    # and the padded rows equal the same prompts run alone without padding
    for r, n_real in ((1, 4), (2, 1)):
        alone = decoding.generate(params, ids[r:r + 1, -n_real:], mask[r:r + 1, -n_real:], jax.random.key(1),
                                  config=CFG, max_new_tokens=8, temperature=1.0, row_ids=jnp.array([r]))
        np.testing.assert_array_equal(alone["tokens"][0], out["tokens"][r])


def test_row_sample_does_not_depend_on_other_rows():
    """Dropping rows from the batch leaves the remaining rows' samples unchanged (keys from row id, position)."""
    params = _params(1)
    ids = jnp.asarray(random_ids((4, 5), 3) % 41)
    mask = jnp.ones_like(ids)
    kw = dict(config=CFG, max_new_tokens=10, temperature=1.0, top_p=0.9)
    full = decoding.generate(params, ids, mask, jax.random.key(7), **kw)
    keep = jnp.array([1, 3])
    part = decoding.generate(params, ids[keep], mask[keep], jax.random.key(7), row_ids=keep, **kw)
    np.testing.assert_array_equal(part["tokens"], full["tokens"][keep])
    other = decoding.generate(params, ids, mask, jax.random.key(8), **kw)
    assert not np.array_equal(other["tokens"], full["tokens"])


def test_eos_stops_rows_and_sets_lengths():
    """After EOS a row emits pad tokens, its length counts the EOS, and the loop ends early when all rows stop."""
    params = _params(2)
    ids = jnp.asarray(random_ids((2, 4), 5) % 41)
    greedy = decoding.generate(params, ids, jnp.ones_like(ids), jax.random.key(0), config=CFG, max_new_tokens=6,
                               temperature=0.0)
    eos = int(greedy["tokens"][0, 2])  # make row 0's third token the EOS
    out = decoding.generate(params, ids, jnp.ones_like(ids), jax.random.key(0), config=CFG, max_new_tokens=6,
                            temperature=0.0, eos_id=eos, pad_id=40)
    first = int(np.argmax(np.asarray(greedy["tokens"][0]) == eos))
    assert int(out["lengths"][0]) == first + 1
    assert np.all(np.asarray(out["tokens"][0, first + 1:]) == 40)
    assert np.all(np.asarray(out["logprobs"][0, first + 1:]) == 0)


def test_generation_compiles_once_per_shape():
    """Two calls with new prompts and keys but the same shapes trace generation once."""
    params = _params()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def gen(p, ids, mask, key):
        return decoding.generate(p, ids, mask, key, config=CFG, max_new_tokens=5)

    before = decoding._generate_jit._cache_size()
    for seed in range(3):
        ids, mask = _left_padded(seed)
        gen(params, ids, mask, jax.random.key(seed))
        decoding.generate(params, ids, mask, jax.random.key(seed), config=CFG, max_new_tokens=5)
    assert decoding._generate_jit._cache_size() == before + 1


def test_top_k_and_top_p_restrict_the_support():
    """top-k samples only the k best tokens; top-p only the smallest set holding mass p; frequencies follow softmax."""
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    keys = jax.random.split(jax.random.key(0), 4000)
    draw = lambda **kw: np.asarray(jax.vmap(lambda k: decoding.sample_logits(logits, k[None], **kw)[0])(keys))
    assert set(draw(top_k=2)) == {0, 1}
    assert set(draw(top_p=0.7)) == {0, 1}  # 0.5 < 0.7 ≤ 0.8
    assert set(draw(top_p=0.4)) == {0}
    freq = np.bincount(draw(), minlength=4) / 4000
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    assert set(draw(temperature=0.0)) == {0}
    with pytest.raises(ValueError, match="top_p=1.5"):
        decoding.sample_logits(logits, keys[:1], top_p=1.5)


def test_best_of_n_picks_the_highest_reward_sample():
    """best_of_n returns n samples per prompt and, per prompt, the one the reward ranks highest."""
    params = _params()
    ids, mask = _left_padded()
    reward = lambda toks, lengths: -jnp.abs(toks - 20).sum(-1).astype(jnp.float32)
    out = decoding.best_of_n(params, ids, mask, jax.random.key(3), config=CFG, n=6, reward_fn=reward,
                             max_new_tokens=5)
    assert out["tokens"].shape == (3, 6, 5)
    np.testing.assert_array_equal(out["best"], np.argmax(out["scores"], axis=1))
    for b in range(3):
        np.testing.assert_array_equal(out["best_tokens"][b], out["tokens"][b, out["best"][b]])
        assert float(reward(out["best_tokens"][b:b + 1], None)[0]) == float(out["scores"][b].max())


@pytest.mark.parametrize("tied", [False, True])
def test_decode_layout_gives_the_same_outputs(tied):
    """`transformer.decode_layout` (kernels stored transposed, what `generate` runs on with 2..128 rows) gives the
    standard layout's logits, and batched greedy decoding gives each row's batch-1 tokens (tied head included)."""
    cfg = dataclasses.replace(CFG, tied_head=tied)
    params = jax.tree.map(lambda x: x * 10, transformer.init_params(cfg, jax.random.key(3)))
    fast = transformer.decode_layout(params)
    assert "kernel_t" in fast["block_0"]["attn"]["q"] and "kernel" not in fast["block_0"]["attn"]["q"]
    for rows in (1, 4, 40):  # one row, the few-rows path, the plain path
        ids = jnp.asarray(random_ids((rows, 1), 5) % 41)
        a = transformer.forward(params, ids, config=cfg)["logits"]
        b = transformer.forward(fast, ids, config=cfg)["logits"]
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # float32 sums in another order
    ids, mask = _left_padded(2)
    out = decoding.generate(params, ids, mask, jax.random.key(0), config=cfg, max_new_tokens=6, temperature=0.0)
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        alone = decoding.generate(params, ids[r:r + 1, -n:], mask[r:r + 1, -n:], jax.random.key(0), config=cfg,
                                  max_new_tokens=6, temperature=0.0)
        np.testing.assert_array_equal(alone["tokens"][0], out["tokens"][r])
