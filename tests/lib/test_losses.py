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
