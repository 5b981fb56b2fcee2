"""Unlearning losses in lib/losses.py (spec ../shared/papers/unlearning.md §2) against hand-computed values,
jax.grad identities, a numpy reference on a ragged batch and a torch transcription of the TOFU/NPO/SimNPO code."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib import losses

V = 7


def _ragged(seed=0):
    """A ragged batch: 3 sequences of length 6 whose prompt/padding positions carry label -100."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (3, 6, V)).astype(np.float32)
    ids = rng.integers(0, V, (3, 6))
    labels = ids.copy()
    labels[0, :2] = -100            # prompt of 2, answer of 4
    labels[1, :3] = -100            # prompt 3, answer 2, padding 1
    labels[1, 5] = -100
    labels[2, :1] = -100            # prompt 1, answer 5
    return logits, labels


def _np_token_logps(logits, labels):
    """Reference: list over sequences of the answer-token log-probs (next-token shift, -100 skipped)."""
    lg = logits.astype(np.float64)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    out = []
    for b in range(labels.shape[0]):
        out.append(np.array([logp[b, t - 1, labels[b, t]] for t in range(1, labels.shape[1]) if labels[b, t] != -100]))
    return out


def test_reductions_on_ragged_batch_match_numpy():
    """token_mean / seq_sum / seq_mean of the answer log-probs equal a loop-based numpy reference."""
    logits, labels = _ragged()
    toks = _np_token_logps(logits, labels)
    assert [len(t) for t in toks] == [4, 2, 5]
    ref = {"token_mean": np.concatenate(toks).mean(), "seq_sum": np.mean([t.sum() for t in toks]),
           "seq_mean": np.mean([t.mean() for t in toks])}
    for red, val in ref.items():
        np.testing.assert_allclose(losses.ga_loss(logits, labels, reduction=red), val, rtol=1e-5)
        np.testing.assert_allclose(losses.nll_loss(logits, labels, reduction=red), -val, rtol=1e-5)
    np.testing.assert_allclose(losses.sequence_logps(logits, labels), [t.sum() for t in toks], rtol=1e-5)
    np.testing.assert_allclose(losses.answer_lengths(labels), [4, 2, 5])
    # the three reductions really differ on a ragged batch
    assert len({round(float(v), 4) for v in ref.values()}) == 3
    with pytest.raises(ValueError, match="reduction='mean' is invalid"):
        losses.ga_loss(logits, labels, reduction="mean")


def test_masked_positions_do_not_matter():
    """Logits at positions predicting a -100 label, and the padded tail, do not change any loss."""
    logits, labels = _ragged(1)
    ref_logp = losses.sequence_logps(logits, labels) - 0.3
    noisy = logits.copy()
    noisy[0, 0] += 50.0   # predicts labels[0, 1] = -100
    noisy[1, 4] -= 30.0   # predicts labels[1, 5] = -100 (padding)
    noisy[:, -1] += 9.0   # last position predicts nothing
    for fn in (lambda lg: losses.ga_loss(lg, labels), lambda lg: losses.npo_loss(lg, labels, ref_logp),
               lambda lg: losses.simnpo_loss(lg, labels, retain_coeff=0.0),
               lambda lg: losses.ga_loss(lg, labels, reduction="seq_mean")):
        np.testing.assert_allclose(fn(noisy), fn(logits), rtol=1e-6)
    # but an answer position does matter
    moved = logits.copy()
    moved[0, 3, 0] += 5.0
    assert abs(float(losses.ga_loss(moved, labels) - losses.ga_loss(logits, labels))) > 1e-3


@pytest.mark.parametrize("beta", [0.05, 0.1, 1.0, 4.0])
def test_npo_at_reference_is_2_log2_over_beta(beta):
    """L_NPO(θ = ref) = (2/β)·log 2 for every example and for the token-level loss."""
    logits, labels = _ragged(2)
    ref = losses.sequence_logps(logits, labels)
    np.testing.assert_allclose(losses.npo_from_logps(ref, ref, beta=beta), np.full(3, 2 / beta * math.log(2)),
                               rtol=1e-6)
    np.testing.assert_allclose(losses.npo_loss(logits, labels, ref, beta=beta), 2 / beta * math.log(2), rtol=1e-6)


def test_npo_gradient_weight_against_ga():
    """d L_NPO / d logp = 2π^β/(π^β + π_ref^β) (=1 at π = π_ref) while GA's is 1 — through the full token-level
    loss as well: ∇_logits L_NPO = W · ∇_logits log π(y|x) for a single sequence."""
    beta = 0.5
    logp = jnp.array([-3.0, -10.0, -1.0, -2.0])
    ref = jnp.array([-3.0, -2.0, -6.0, -2.5])
    w = jax.grad(lambda lp: losses.npo_from_logps(lp, ref, beta=beta).sum())(logp)
    pi, pr = np.exp(np.asarray(logp, np.float64)), np.exp(np.asarray(ref, np.float64))
    np.testing.assert_allclose(w, 2 * pi ** beta / (pi ** beta + pr ** beta), rtol=1e-5)
    assert float(w[0]) == pytest.approx(1.0)
    assert float(w[1]) < 0.1 and float(w[2]) > 1.5  # unlearned sample ≈ 0 weight; above reference > 1
    np.testing.assert_allclose(jax.grad(lambda lp: losses.ga_from_logps(lp).sum())(logp), np.ones(4))

    logits, labels = _ragged(3)
    lg, lb = logits[:1], labels[:1]
    ref1 = losses.sequence_logps(lg, lb) + 1.7
    g_npo = jax.grad(lambda x: losses.npo_loss(x, lb, ref1, beta=beta))(jnp.asarray(lg))
    g_lp = jax.grad(lambda x: losses.sequence_logps(x, lb)[0])(jnp.asarray(lg))
    lp1 = float(losses.sequence_logps(lg, lb)[0])
    w1 = 2 * math.exp(beta * lp1) / (math.exp(beta * lp1) + math.exp(beta * float(ref1[0])))
    np.testing.assert_allclose(g_npo, w1 * g_lp, atol=1e-6)


def test_npo_small_beta_tends_to_ga():
    """Prop. 1: L_NPO,β − (2/β)log 2 → log π − log π_ref and ∇L_NPO → ∇L_GA as β → 0."""
    logp, ref = jnp.array([-4.0, -0.5]), jnp.array([-1.0, -2.0])
    errs = []
    for beta in (1.0, 1e-1, 1e-2):
        diff = losses.npo_from_logps(logp, ref, beta=beta) - 2 / beta * math.log(2)
        errs.append(float(jnp.abs(diff - (logp - ref)).max()))
    # the gap is the second-order term β·(logp − ref)²/4 (= 0.0225 at β = 0.01 here): O(β)
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.03
    g = jax.grad(lambda lp: losses.npo_from_logps(lp, ref, beta=1e-4).sum())(logp)
    np.testing.assert_allclose(g, np.ones(2), atol=1e-3)


def test_simnpo_values_and_weight_bound():
    """SimNPO loss equals −(2/β)log σ(−β·logp/|y| − γ); its weight (2/|y|)σ(β logp/|y| + γ) is ≤ 2/|y|."""
    beta, gamma = 2.5, 0.3
    logp = jnp.array([-1.0, -20.0, -0.01, -7.0])
    length = jnp.array([1.0, 10.0, 3.0, 40.0])
    val = losses.simnpo_from_logps(logp, length, beta=beta, gamma=gamma)
    lp, n = np.asarray(logp, np.float64), np.asarray(length, np.float64)
    expect = -(2 / beta) * np.log(1 / (1 + np.exp(beta * lp / n + gamma)))
    np.testing.assert_allclose(val, expect, rtol=1e-5)
    w = jax.grad(lambda x: losses.simnpo_from_logps(x, length, beta=beta, gamma=gamma).sum())(logp)
    np.testing.assert_allclose(w, (2 / n) / (1 + np.exp(-(beta * lp / n + gamma))), rtol=1e-5)
    assert np.all(np.asarray(w) <= 2 / n)
    # β → 0 (γ = 0): length-weighted GA, weight 1/|y|
    w0 = jax.grad(lambda x: losses.simnpo_from_logps(x, length, beta=1e-4).sum())(logp)
    np.testing.assert_allclose(w0, 1 / n, rtol=1e-3)


def test_simnpo_token_level_matches_numpy_with_coefficients():
    """simnpo_loss = forget_coeff · mean_b(−(2/β)logσ(−β·mean_t logp − γ)) + retain_coeff · token-mean CE_r."""
    logits, labels = _ragged(4)
    rlogits, rlabels = _ragged(5)
    toks, rtoks = _np_token_logps(logits, labels), _np_token_logps(rlogits, rlabels)
    beta, gamma, fc, rc = 4.5, 0.5, 0.125, 1.0
    forget = np.mean([-(2 / beta) * np.log(1 / (1 + np.exp(beta * t.mean() + gamma))) for t in toks])
    retain = -np.concatenate(rtoks).mean()
    got = losses.simnpo_loss(logits, labels, rlogits, rlabels, beta=beta, gamma=gamma, forget_coeff=fc,
                             retain_coeff=rc)
    np.testing.assert_allclose(got, fc * forget + rc * retain, rtol=1e-5)
    with pytest.raises(ValueError, match="needs retain_logits"):
        losses.simnpo_loss(logits, labels)  # default retain_coeff=1.0 without a retain batch


def test_npo_and_simnpo_match_torch_transcription_of_released_code():
    """Torch transcription of TOFU `get_batch_loss` + NPO (`npo`) and SimNPO (`simnpo_grad_diff` forget term)."""
    torch = pytest.importorskip("torch")
    logits, labels = _ragged(6)
    ref_logits, _ = _ragged(7)

    def get_batch_loss(output, lab):
        shifted_labels = lab[..., 1:].contiguous()
        output = output[..., :-1, :].contiguous()
        loss_function = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="none")
        return loss_function(output.transpose(-1, -2), shifted_labels).sum(dim=-1)

    tl, tr, tlab = (torch.tensor(logits, dtype=torch.float64), torch.tensor(ref_logits, dtype=torch.float64),
                    torch.tensor(labels))
    beta = 0.1
    neg_log_ratios = get_batch_loss(tl, tlab) - get_batch_loss(tr, tlab)
    npo_ref = (-torch.nn.functional.logsigmoid(beta * neg_log_ratios).mean() * 2 / beta).item()
    ref_logp = losses.sequence_logps(ref_logits, labels)
    np.testing.assert_allclose(losses.npo_loss(logits, labels, ref_logp, beta=beta), npo_ref, rtol=1e-5)

    beta_s, gamma_code = 2.5, 0.2
    loss_mask = tlab != -100
    avg = get_batch_loss(tl, tlab) / loss_mask.sum(-1) - gamma_code
    sim_ref = (-torch.nn.functional.logsigmoid(beta_s * avg).mean() * 2 / beta_s).item()
    # γ_paper = β·γ_code; labels[:, 0] is -100 in every row, so the unshifted and shifted counts agree
    got = losses.simnpo_loss(logits, labels, beta=beta_s, gamma=beta_s * gamma_code, forget_coeff=1.0,
                             retain_coeff=0.0)
    np.testing.assert_allclose(got, sim_ref, rtol=1e-5)


def test_dpo_hand_value_and_token_level():
    """DPO: −(2/β)logσ(β[(w−rw)−(l−rl)]) by hand; the token-level IdkDPO uses sequence-sum log-probs."""
    beta = 0.1
    v = losses.dpo_from_logps(jnp.array(-2.0), jnp.array(-3.0), jnp.array(-5.0), jnp.array(-4.0), beta=beta)
    assert float(v) == pytest.approx(-(2 / beta) * math.log(1 / (1 + math.exp(-beta * 2.0))), rel=1e-6)
    # at θ = ref the DPO loss is (2/β) log 2, like NPO
    w_logits, w_labels = _ragged(8)
    l_logits, l_labels = _ragged(9)
    rw, rl = losses.sequence_logps(w_logits, w_labels), losses.sequence_logps(l_logits, l_labels)
    np.testing.assert_allclose(losses.dpo_unlearn_loss(w_logits, w_labels, l_logits, l_labels, rw, rl, beta=beta),
                               2 / beta * math.log(2), rtol=1e-6)


def test_idk_is_token_mean_over_union_and_gd_kl_combinations():
    """IDK = token-mean CE over the union of both batches (as one concatenated forward pass);
    GD = −CE_f + CE_r; KL = −CE_f + KL(ref‖θ) averaged over ALL positions (zero when θ = ref)."""
    a_logits, a_labels = _ragged(10)
    b_logits, b_labels = _ragged(11)
    ta, tb = _np_token_logps(a_logits, a_labels), _np_token_logps(b_logits, b_labels)
    tc = tb[1:]  # 7 answer tokens vs 11: the union mean differs from the mean of the two means
    union = -np.concatenate(ta + tc).mean()
    np.testing.assert_allclose(losses.idk_loss(a_logits, a_labels, b_logits[1:], b_labels[1:]), union, rtol=1e-5)
    assert abs(union - 0.5 * (-np.concatenate(ta).mean() - np.concatenate(tc).mean())) > 1e-3
    gd = losses.gd_loss(a_logits, a_labels, b_logits, b_labels)
    np.testing.assert_allclose(gd, np.concatenate(ta).mean() - np.concatenate(tb).mean(), rtol=1e-5)
    kl0 = losses.kl_retain_loss(a_logits, a_labels, b_logits, b_logits)
    np.testing.assert_allclose(kl0, np.concatenate(ta).mean(), rtol=1e-5)
    lp = b_logits - np.log(np.exp(b_logits.astype(np.float64)).sum(-1, keepdims=True))
    lq = a_logits - np.log(np.exp(a_logits.astype(np.float64)).sum(-1, keepdims=True))
    kl_all = (np.exp(lq) * (lq - lp)).sum(-1).mean()  # ref = a, model = b, every position
    np.testing.assert_allclose(losses.retain_kl(b_logits, a_logits), kl_all, rtol=1e-5)
    assert float(losses.retain_kl(b_logits, a_logits, b_labels, positions="labelled")) != pytest.approx(kl_all)


def test_forget_loss_dispatch_and_errors():
    """forget_loss(method, inputs, **hparams) equals the direct call; bad names, hparams, inputs raise clearly."""
    f_logits, f_labels = _ragged(12)
    r_logits, r_labels = _ragged(13)
    ref = losses.sequence_logps(f_logits, f_labels) + 0.5
    inputs = {"forget_logits": f_logits, "forget_labels": f_labels, "retain_logits": r_logits,
              "retain_labels": r_labels, "ref_forget_logp": ref}
    np.testing.assert_allclose(losses.forget_loss("npo_rt", inputs, beta=0.2),
                               losses.npo_rt_loss(f_logits, f_labels, ref, r_logits, r_labels, beta=0.2), rtol=1e-6)
    np.testing.assert_allclose(losses.forget_loss("simnpo_rt", inputs),
                               losses.simnpo_loss(f_logits, f_labels, r_logits, r_labels), rtol=1e-6)
    np.testing.assert_allclose(losses.forget_loss("ga", inputs), losses.ga_loss(f_logits, f_labels), rtol=1e-6)
    assert set(losses.METHODS) >= {"ga", "gd", "kl", "idk", "dpo", "dpo_rt", "npo", "npo_rt", "npo_kl", "simnpo",
                                   "simnpo_rt"}
    with pytest.raises(ValueError, match=r"method='npo\+rt' is invalid: expected one of \['dpo'"):
        losses.forget_loss("npo+rt", inputs)
    with pytest.raises(ValueError, match=r"hyperparameters \['lr'\] are invalid for unlearning method 'npo'"):
        losses.forget_loss("npo", inputs, lr=1.0)
    with pytest.raises(ValueError, match=r"needs inputs \['ref_retain_logits'\]"):
        losses.forget_loss("kl", inputs)
    with pytest.raises(ValueError, match="beta=0.0 is invalid"):
        losses.npo_from_logps(ref, ref, beta=0.0)


def test_losses_jit():
    """Every METHODS entry runs under jax.jit with hparams closed over."""
    f_logits, f_labels = _ragged(14)
    inputs = {"forget_logits": f_logits, "forget_labels": f_labels, "retain_logits": f_logits,
              "retain_labels": f_labels, "idk_logits": f_logits, "idk_labels": f_labels,
              "ref_forget_logp": losses.sequence_logps(f_logits, f_labels),
              "ref_idk_logp": losses.sequence_logps(f_logits, f_labels), "ref_retain_logits": f_logits}
    for m in losses.METHODS:
        v = jax.jit(lambda i, m=m: losses.forget_loss(m, i))(inputs)
        assert np.isfinite(float(v)), m
