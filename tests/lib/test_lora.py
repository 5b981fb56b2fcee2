"""lib/lora.py: a fresh adapter changes nothing, merged == unmerged, training lowers a loss, clear errors."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import lora, transformer

CFG = transformer.TransformerConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48,
                                    positions="rotary", norm="rmsnorm", mlp="swiglu", qkv_bias=False, out_bias=False,
                                    mlp_bias=False)
IDS = jax.random.randint(jax.random.key(1), (3, 7), 0, 50)


def _params():
    return transformer.init_params(CFG, jax.random.key(0))


def _randomise_b(adapters, key):
    """Adapters with a non-zero B (a fresh one has B = 0), as after some training."""
    leaves, tree = jax.tree.flatten(adapters)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, x.shape) * 0.1 for k, x in zip(keys, leaves, strict=True)])


def test_fresh_adapter_gives_identical_logits():
    """B starts at zero: the adapted forward equals the plain one exactly; adapters sit on q, k, v, o only."""
    params = _params()
    ad = lora.init(params, jax.random.key(2), rank=4)
    assert sorted(ad) == ["block_0", "block_1"] and sorted(ad["block_0"]["attn"]) == ["k", "o", "q", "v"]
    chex.assert_shape(ad["block_0"]["attn"]["k"]["a"], (32, 4))
    chex.assert_shape(ad["block_0"]["attn"]["k"]["b"], (4, 16))  # 2 kv heads of size 8
    plain = transformer.forward(params, IDS, config=CFG)["logits"]
    adapted = lora.forward(params, ad, IDS, config=CFG, scale=2.0)["logits"]
    np.testing.assert_array_equal(np.asarray(adapted), np.asarray(plain))
    assert lora.count(ad) == 2 * (32 * 4 + 4 * 32) * 2 + 2 * (32 * 4 + 4 * 16) * 2


def test_merged_equals_unmerged():
    """forward(params, adapters) == forward(merge(params, adapters)) for a trained-looking adapter, with select=."""
    params = _params()
    ad = _randomise_b(lora.init(params, jax.random.key(2), rank=4, targets=("q", "v", "up")), jax.random.key(3))
    sel = jnp.array([6, 3, 0])
    unmerged = lora.forward(params, ad, IDS, config=CFG, scale=0.5, select=sel)["logits"]
    merged = transformer.forward(lora.merge(params, ad, scale=0.5), IDS, config=CFG, select=sel)["logits"]
    plain = transformer.forward(params, IDS, config=CFG, select=sel)["logits"]
    np.testing.assert_allclose(np.asarray(unmerged), np.asarray(merged), atol=2e-5)
    assert np.abs(np.asarray(merged) - np.asarray(plain)).max() > 1e-2  # the adapter does something
    assert jax.tree.structure(lora.merge(params, ad, scale=0.5)) == jax.tree.structure(params)


def test_gradient_reaches_the_adapters_and_training_lowers_the_loss():
    """A few Adam steps on the adapters alone lower a next-token loss; the base params are untouched."""
    params = _params()
    ad = lora.init(params, jax.random.key(2), rank=4)

    def loss(a):
        logits = lora.forward(params, a, IDS[:, :-1], config=CFG, scale=2.0)["logits"]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), IDS[:, 1:, None], axis=-1).mean()

    g = jax.grad(loss)(ad)
    assert float(jnp.abs(g["block_0"]["attn"]["q"]["b"]).max()) > 0  # B's gradient is non-zero from the start
    lr, first = 3e-2, float(loss(ad))
    grad_fn = jax.jit(jax.value_and_grad(loss))
    for _ in range(30):
        _, g = grad_fn(ad)
        ad = jax.tree.map(lambda p, d: p - lr * d, ad, g)
    assert float(loss(ad)) < first - 0.05


def test_bad_arguments_are_one_clear_error():
    """A rank below 1, targets matching no layer, and adapters for layers the model lacks are refused by name."""
    params = _params()
    with pytest.raises(ValueError, match="rank=0 is invalid"):
        lora.init(params, jax.random.key(0), rank=0)
    with pytest.raises(ValueError, match=r"targets=\('qq',\) match no Dense kernel: expected names among"):
        lora.init(params, jax.random.key(0), rank=2, targets=("qq",))
    other = transformer.init_params(dataclasses.replace(CFG, n_layers=3), jax.random.key(0))
    ad = lora.init(other, jax.random.key(0), rank=2)  # has block_2, which CFG's model lacks
    with pytest.raises(ValueError, match="match no Dense layer of the model"):
        lora.forward(params, ad, IDS, config=CFG, scale=1.0)
