"""lib/losses.py against independent references (numpy and torch)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import losses


def _data(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    logits = 3 * jax.random.normal(k1, (3, 7, 11))
    labels = jax.random.randint(k2, (3, 7), 0, 11)
    mask = (jax.random.uniform(k3, (3, 7)) > 0.4).astype(jnp.int32).at[:, 0].set(1)
    return logits, labels, mask


def test_token_cross_entropy_matches_torch_with_ignore_index():
    """Masked mean NLL equals torch's cross_entropy with ignored positions."""
    torch = pytest.importorskip("torch")
    logits, labels, mask = _data()
    ref = torch.nn.functional.cross_entropy(
        torch.tensor(np.asarray(logits)).reshape(-1, 11),
        torch.tensor(np.where(np.asarray(mask) == 1, np.asarray(labels), -100)).reshape(-1).long(),
        ignore_index=-100)
    np.testing.assert_allclose(losses.token_cross_entropy(logits, labels, mask), ref.item(), rtol=1e-5)


def test_sequence_logprobs_sum_and_mean():
    """Sum and per-answer-token mean of log p(label) match a numpy log-softmax."""
    logits, labels, mask = _data(1)
    lg = np.asarray(logits, np.float64)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    per_tok = np.take_along_axis(logp, np.asarray(labels)[..., None], -1)[..., 0] * np.asarray(mask)
    np.testing.assert_allclose(losses.sequence_logprobs(logits, labels, mask, reduction="sum"), per_tok.sum(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(losses.sequence_logprobs(logits, labels, mask, reduction="mean"),
                               per_tok.sum(-1) / np.asarray(mask).sum(-1), rtol=1e-5)
    with pytest.raises(ValueError, match="reduction='max' is invalid"):
        losses.sequence_logprobs(logits, labels, mask, reduction="max")


def test_shift_for_next_token():
    """Inputs drop the last token, labels the first, and the mask follows the labels."""
    ids = jnp.array([[5, 6, 7, 8]])
    inp, lab, m = losses.shift_for_next_token(ids, jnp.array([[1, 1, 1, 0]]))
    np.testing.assert_array_equal(inp, [[5, 6, 7]])
    np.testing.assert_array_equal(lab, [[6, 7, 8]])
    np.testing.assert_array_equal(m, [[1, 1, 0]])


def test_group_pg_loss_and_k3_kl_match_numpy_with_gradient():
    """The group policy-gradient loss (token mean of −A·logp + β·k3) and its gradient in logp equal a numpy
    computation written from the formulas: k3 = e^(ref−logp) − (ref−logp) − 1, d/dlogp = (−A + β(1 − e^(ref−logp)))/N
    on masked tokens, 0 elsewhere; the advantages and the reference get no gradient."""
    rng = np.random.default_rng(0)
    logp = -rng.random((4, 6)) * 3
    ref = -rng.random((4, 6)) * 3
    adv = np.array([0.5, -0.25, 0.0, -0.25])
    mask = (rng.random((4, 6)) > 0.3).astype(np.float64)
    beta = 0.05
    n = mask.sum()
    k3 = np.exp(ref - logp) - (ref - logp) - 1
    want_pg = -(adv[:, None] * logp * mask).sum() / n
    want_kl = (k3 * mask).sum() / n
    loss, aux = losses.group_pg_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(ref, jnp.float32),
                                     jnp.asarray(adv, jnp.float32), jnp.asarray(mask), beta=beta)
    np.testing.assert_allclose([float(aux["pg"]), float(aux["kl"]), float(loss)],
                               [want_pg, want_kl, want_pg + beta * want_kl], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(losses.kl_k3(jnp.asarray(logp), jnp.asarray(ref)), k3, rtol=1e-5, atol=1e-7)
    assert float(losses.kl_k3(jnp.zeros(()), jnp.zeros(()))) == 0.0 and (k3 >= 0).all()
    g_logp, g_ref, g_adv = jax.grad(lambda a, b, c: losses.group_pg_loss(a, b, c, jnp.asarray(mask), beta=beta)[0],
                                    argnums=(0, 1, 2))(jnp.asarray(logp, jnp.float32), jnp.asarray(ref, jnp.float32),
                                                       jnp.asarray(adv, jnp.float32))
    want_g = mask * (-adv[:, None] + beta * (1 - np.exp(ref - logp))) / n
    np.testing.assert_allclose(g_logp, want_g, rtol=1e-4, atol=1e-7)
    assert not np.asarray(g_ref).any() and not np.asarray(g_adv).any()


def test_group_pg_step_raises_positive_and_lowers_negative_advantage_sample():
    """One gradient step of the group PG loss on a shared per-position logit table (one "context", two sampled
    continuations of 3 tokens with advantages +1 and −1, KL to the starting table): the log-probability of the
    positive sample rises and that of the negative one falls; the KL starts at 0 and becomes positive."""
    table = jnp.asarray(np.random.default_rng(1).normal(size=(3, 7)), jnp.float32)  # [t, V]: both rows share it
    labels = jnp.array([[1, 2, 3], [4, 5, 6]])
    mask, adv = jnp.ones((2, 3)), jnp.array([1.0, -1.0])
    ref = losses.token_logprobs(jnp.broadcast_to(table, (2, 3, 7)), labels)

    def loss(t):
        logp = losses.token_logprobs(jnp.broadcast_to(t, (2, 3, 7)), labels)
        return losses.group_pg_loss(logp, ref, adv, mask, beta=0.05)

    (_, aux0), g = jax.value_and_grad(loss, has_aux=True)(table)
    new = table - 0.5 * g
    before = ref.sum(-1)
    after = losses.token_logprobs(jnp.broadcast_to(new, (2, 3, 7)), labels).sum(-1)
    assert after[0] > before[0] and after[1] < before[1]
    assert float(aux0["kl"]) == 0.0 and float(loss(new)[1]["kl"]) > 0.0


@pytest.mark.parametrize("n,chunk", [(300, 128), (64, 64), (5, 128)])
def test_fused_head_logprobs_equal_materialised_logits_with_gradient(n, chunk):
    """head_label_logprobs (chunked, logits never materialised, hand-written backward) equals the log-softmax of
    the full `h·Eᵀ` at the labels, and its gradients under per-row cotangents equal autodiff's."""
    r = np.random.default_rng(n)
    h = jnp.asarray(r.standard_normal((n, 16), np.float32))
    table = jnp.asarray(r.standard_normal((50, 16), np.float32))
    y = jnp.asarray(r.integers(0, 50, n))
    w = jnp.asarray(r.standard_normal(n, np.float32))
    got = losses.head_label_logprobs(h, table, y, chunk)
    np.testing.assert_allclose(got, losses.token_logprobs(h @ table.T, y), atol=1e-5)
    g1 = jax.jit(jax.grad(lambda h, t: (losses.head_label_logprobs(h, t, y, chunk) * w).sum(), (0, 1)))(h, table)
    g0 = jax.grad(lambda h, t: (losses.token_logprobs(h @ t.T, y) * w).sum(), (0, 1))(h, table)
    for a, b in zip(g1, g0, strict=True):
        assert np.abs(np.asarray(b)).max() > 0.1
        np.testing.assert_allclose(a, b, atol=2e-5 * np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("tied", [True, False])
def test_forward_with_labels_and_fused_answer_nll(tied, monkeypatch):
    """transformer.forward(labels=) gives log p(label) of the logits it would return (tied head: through the fused
    head; untied: from the logits), and the fine-tuning loss built on it (unlearning_train.answer_nll) equals the
    logits-based nll_loss, value and gradient; the dense layers' custom-VJP matmul (wide kernels' weight gradient
    from a contiguous xᵀ) gives autodiff's gradient."""
    from lib import transformer, unlearning_train
    cfg = transformer.TransformerConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=16, d_ff=1600,
                                        mlp="swiglu", norm="rmsnorm", positions="rotary", tied_head=tied)
    params = transformer.init_params(cfg, jax.random.key(1))
    r = np.random.default_rng(0)
    ids = jnp.asarray(r.integers(0, 61, (3, 11)))
    labels = jnp.where(jnp.asarray(r.random((3, 11)) < 0.3), losses.IGNORE_INDEX, ids)
    attn = jnp.ones_like(ids).at[2, 8:].set(0)
    targets, mask = losses.next_token_targets(labels)
    fwd = jax.jit(transformer.forward, static_argnames="config")
    lp = fwd(params, ids, config=cfg, attention_mask=attn, labels=targets)["label_logprobs"]
    logits = fwd(params, ids, config=cfg, attention_mask=attn)["logits"]
    np.testing.assert_allclose(lp, losses.token_logprobs(logits, targets), atol=1e-5)
    batch = {"input_ids": ids, "attention_mask": attn, "labels": labels}

    def reference(p):
        return losses.nll_loss(transformer.forward(p, ids, config=cfg, attention_mask=attn)["logits"], labels)

    v1, g1 = jax.jit(jax.value_and_grad(unlearning_train.answer_nll), static_argnames="config")(params, batch,
                                                                                                config=cfg)
    monkeypatch.setattr(transformer, "_dot", jax.lax.dot_general)  # the reference: autodiff of plain dots
    v0, g0 = jax.jit(jax.value_and_grad(reference))(params)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5 * (1 + np.abs(np.asarray(b)).max()))
