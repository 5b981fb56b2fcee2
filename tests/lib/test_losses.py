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
