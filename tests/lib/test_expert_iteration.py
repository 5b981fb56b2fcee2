"""lib/expert_iteration: candidate choice, accepted prefixes, reranking with abstention, AUROC, group advantages, the
EI loop; and the
paired bootstrap of lib/stats and the multi-stop generation of lib/decoding that autoprm relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import decoding, stats, transformer
from lib import expert_iteration as ei


def test_choose_candidates_reward_then_logp():
    """Highest reward wins; a tie goes to the higher log-probability; acceptance needs reward ≥ threshold."""
    best, ok = ei.choose_candidates([[0.2, 0.9, 0.9], [0.1, 0.3, 0.2]], [[0.0, -2.0, -1.0], [0.0, 0.0, 0.0]],
                                    threshold=0.5)
    assert best.tolist() == [2, 1] and ok.tolist() == [True, False]


def test_accepted_prefix_and_rerank_abstain():
    """Steps after a rejected one are never kept; reranking abstains when no candidate reaches τ."""
    assert ei.accepted_prefix([True, True, False, True]).tolist() == [True, True, False, False]
    best, abstain = ei.rerank(np.log([[0.5, 0.5], [0.9, 0.1]]), [[0.1, 0.8], [0.05, 0.1]], tau=0.2)
    assert best.tolist() == [1, 0] and abstain.tolist() == [False, True]


def test_auroc_and_tampering_gap():
    assert ei.auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert ei.auroc([0.5, 0.5], [1, 0]) == 0.5 and np.isnan(ei.auroc([0.5], [1]))
    assert ei.tampering_gap([1, 1, 0, 1], [1, 0, 0, 0]) == 0.5


def test_group_advantages_by_hand():
    """r − mean over each row's k samples, or divided by the row's std (ddof 0); equal rewards give zeros."""
    r = [[1.0, 0.0, 0.0, 1.0], [0.2, 0.2, 0.2, 0.2], [0.9, 0.1, 0.5, 0.3]]
    want = [[0.5, -0.5, -0.5, 0.5], [0.0] * 4, [0.45, -0.35, 0.05, -0.15]]
    np.testing.assert_allclose(ei.group_advantages(r), want, atol=1e-12)
    std3 = np.sqrt((0.45 ** 2 + 0.35 ** 2 + 0.05 ** 2 + 0.15 ** 2) / 4)
    np.testing.assert_allclose(ei.group_advantages(r, norm="mean_std", eps=0.0 + 1e-12)[[0, 2]],
                               [[1.0, -1.0, -1.0, 1.0], np.array(want[2]) / std3], rtol=1e-9)
    assert not ei.group_advantages(r, norm="mean_std")[1].any()
    with pytest.raises(ValueError, match="norm='std' is invalid"):
        ei.group_advantages(r, norm="std")


def test_expert_iteration_keeps_best_validation_round():
    """The loop returns the params of the best validation round (round 0 included) and one history row per round."""
    vals = {0: 0.3, 1: 0.5, 2: 0.4}
    best, hist = ei.expert_iteration(0, rounds=2, collect=lambda p, r: (r, {"n": r}), finetune=lambda p, d, r: p + 1,
                                     evaluate=lambda p: vals[p])
    assert best == 1 and [h["val"] for h in hist] == [0.3, 0.5, 0.4] and hist[2]["n"] == 2
    _, hist = ei.expert_iteration(0, rounds=1, collect=lambda p, r: (r, {"n": r}),
                                  finetune=lambda p, d, r: (p + 1, {"kl": 0.1}), evaluate=lambda p: vals[p])
    assert hist[1] == {"round": 1, "val": 0.5, "n": 1, "kl": 0.1}  # finetune's stats join collect's


def test_paired_bootstrap():
    """A clearly better method has p ≈ 0; identical methods have difference 0 and p = 1."""
    rng = np.random.default_rng(0)
    a, b = (rng.random(400) < 0.7).astype(float), (rng.random(400) < 0.4).astype(float)
    diff, p = stats.paired_bootstrap(a, b, n_boot=2000)
    assert 0.2 < diff < 0.4 and p < 0.01
    assert stats.paired_bootstrap(a, a, n_boot=200) == (0.0, 1.0)


def test_generate_stops_at_any_of_several_ids():
    """eos_id may be a tuple: a row ends at the first of those ids it samples (an int still works as before)."""
    mc = transformer.TransformerConfig(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_len=32)
    params = transformer.init_params(mc, jax.random.key(0))
    ids, mask = jnp.ones((4, 3), jnp.int32), jnp.ones((4, 3), jnp.int32)
    free = decoding.generate(params, ids, mask, jax.random.key(1), config=mc, max_new_tokens=12, temperature=1.0)
    toks = np.asarray(free["tokens"])
    stops = (int(toks[0, 2]), int(toks[1, 3]))
    out = decoding.generate(params, ids, mask, jax.random.key(1), config=mc, max_new_tokens=12, temperature=1.0,
                            eos_id=stops)
    assert np.asarray(out["lengths"])[0] <= 3 and np.asarray(out["lengths"])[1] <= 4
    for row, n in zip(np.asarray(out["tokens"]), np.asarray(out["lengths"]), strict=True):
        first = next((i for i, t in enumerate(row[:n]) if t in stops), None)
        assert first == n - 1 or (first is None and n == 12)
