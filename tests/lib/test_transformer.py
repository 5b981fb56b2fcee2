"""lib/transformer.py + lib/hf_import.py: exact parity with Hugging Face transformers on tiny random models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hf_fixtures import random_ids, save_tiny, torch

from lib import hf_import, transformer


@pytest.mark.parametrize("kind", ["gpt2", "llama", "llama_gqa", "mistral", "qwen2"])
def test_logits_match_transformers(kind, tmp_path):
    """Logits of our forward on the imported weights equal transformers' to 1e-4 (float32)."""
    ref_model = save_tiny(kind, tmp_path)
    model = hf_import.load_model(tmp_path)
    ids = random_ids((2, 13))
    with torch.no_grad():
        ref = ref_model(torch.tensor(ids)).logits.numpy()
    got = np.asarray(model(ids))
    assert got.shape == (2, 13, 97)
    assert np.abs(ref).max() > 1.0  # weights large enough that a mapping error would show
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa"])
def test_padded_batch_matches_transformers(kind, tmp_path):
    """With an attention mask (right padding), real positions match transformers' logits."""
    ref_model = save_tiny(kind, tmp_path)
    model = hf_import.load_model(tmp_path)
    ids = random_ids((2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        ref = ref_model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    got = np.asarray(model(ids, attention_mask=jnp.asarray(mask)))
    np.testing.assert_allclose(got[mask == 1], ref[mask == 1], atol=1e-4, rtol=1e-4)


def test_reward_model_scalar_head_matches_transformers(tmp_path):
    """A LlamaForSequenceClassification (num_labels=1) scores right-padded batches like transformers."""
    ref_model = save_tiny("llama_gqa", tmp_path, reward=True)
    model = hf_import.load_model(tmp_path)
    assert model.config.head == "scalar"
    ids = random_ids((3, 8))
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    ids = np.where(mask == 1, ids, 0)  # pad id 0
    with torch.no_grad():
        ref = ref_model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()[:, 0]
    got = np.asarray(model(ids, attention_mask=jnp.asarray(mask)))
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_hidden_states_and_attention_weights_match_transformers(tmp_path):
    """return_hidden / return_attn give transformers' hidden states (before the final norm) and attentions."""
    ref_model = save_tiny("gpt2", tmp_path)
    model = hf_import.load_model(tmp_path)
    ids = random_ids((1, 7))
    with torch.no_grad():
        ref = ref_model(torch.tensor(ids), output_hidden_states=True, output_attentions=True)
    out = model.apply(ids, return_hidden=True, return_attn=True)
    for i in range(len(out["hidden"]) - 1):  # transformers' last entry is after ln_f
        np.testing.assert_allclose(out["hidden"][i], ref.hidden_states[i].numpy(), atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(out["attn"], ref.attentions, strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
        np.testing.assert_allclose(np.asarray(ours).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("options", [
    dict(positions="learned", norm="layernorm", prenorm=False, mlp="relu", tied_head=False),
    dict(positions="none", norm="rmsnorm", mlp="none", n_kv_heads=1, qkv_bias=False),
    dict(positions="rotary", norm="rmsnorm", mlp="swiglu", n_kv_heads=2, head="scalar"),
])
def test_option_combinations_run_and_are_causal(options):
    """Every option combination builds, and a token's output does not depend on later tokens."""
    cfg = transformer.TransformerConfig(vocab_size=31, d_model=16, n_layers=2, n_heads=4, max_len=16, **options)
    params = transformer.init_params(cfg, jax.random.key(0))
    ids = jnp.asarray(random_ids((1, 8)) % 31)
    key = "score" if cfg.head == "scalar" else "logits"
    out = transformer.forward(params, ids, config=cfg)
    changed = transformer.forward(params, ids.at[0, 6].set((ids[0, 6] + 1) % 31), config=cfg)
    if key == "logits":
        np.testing.assert_allclose(out[key][:, :6], changed[key][:, :6], atol=1e-6)
        assert not np.allclose(out[key][:, 6:], changed[key][:, 6:])
    else:
        np.testing.assert_allclose(out["token_scores"][:, :6], changed["token_scores"][:, :6], atol=1e-6)


def test_config_validation_names_field():
    """Bad sizes and options name the field, the value and what is accepted."""
    with pytest.raises(ValueError, match=r"n_kv_heads=3 is invalid: expected a divisor of n_heads=4"):
        transformer.TransformerConfig(vocab_size=8, d_model=16, n_layers=1, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match=r"mlp='geglu' is invalid: expected one of"):
        transformer.TransformerConfig(vocab_size=8, d_model=16, n_layers=1, n_heads=4, mlp="geglu")


@pytest.mark.parametrize("shape", [(2, 3, 8), (5, 16)])
def test_layer_norm_gradient_matches_autodiff(shape):
    """layer_norm's hand-written backward against autodiff of the plain expression (and torch's LayerNorm forward)."""
    import torch

    kx, ks, kb, kg = jax.random.split(jax.random.key(0), 4)
    x = 3.0 + 2.0 * jax.random.normal(kx, shape)
    scale = 1.0 + 0.1 * jax.random.normal(ks, shape[-1:])
    bias = 0.1 * jax.random.normal(kb, shape[-1:])
    g = jax.random.normal(kg, shape)

    def plain(x, scale, bias):
        mean = x.mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * scale + bias

    ours = jax.grad(lambda *a: jnp.sum(transformer.layer_norm(*a, 1e-5) * g), argnums=(0, 1, 2))(x, scale, bias)
    ref = jax.grad(lambda *a: jnp.sum(plain(*a) * g), argnums=(0, 1, 2))(x, scale, bias)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    t = torch.nn.functional.layer_norm(torch.tensor(np.asarray(x)), shape[-1:], torch.tensor(np.asarray(scale)),
                                       torch.tensor(np.asarray(bias)), 1e-5)
    np.testing.assert_allclose(np.asarray(transformer.layer_norm(x, scale, bias, 1e-5)), t.numpy(), atol=1e-5)
