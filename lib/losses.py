"""Losses as pure functions of logits, labels and masks.

Conventions: logits `[b, t, V]` predict labels `[b, t]` at the same index (shift inputs/labels
yourself with `shift_for_next_token`); masks `[b, t]` are 1 where a token counts (answer tokens).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

REDUCTIONS = ("sum", "mean")


def shift_for_next_token(input_ids: jnp.ndarray, mask: jnp.ndarray | None = None):
    """(inputs `[b, t-1]`, labels `[b, t-1]`, label mask `[b, t-1]`) for next-token prediction."""
    labels = input_ids[:, 1:]
    lm = jnp.ones_like(labels, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    return input_ids[:, :-1], labels, lm


def token_logprobs(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """log p(label) per position `[b, t]` (float32 log-softmax)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def head_label_logprobs(hidden: jnp.ndarray, table: jnp.ndarray, labels: jnp.ndarray, chunk: int = 128):
    """log softmax(hidden · tableᵀ)[label] per row `[n]` (float32), for `hidden` `[n, d]`, an output table `[V, d]`
    (a tied head's embedding) and int `labels` `[n]`, without materialising the `[n, V]` logits.

    Same value as `token_logprobs(hidden @ table.T, labels)`. Rows go through in chunks of `chunk`; the backward
    recomputes each chunk's logits (one more `[chunk, d]·[d, V]` product) and accumulates the table's gradient, so
    the logits, their log-softmax and its gradient, each `[n, V]` (200 MB at 1024 rows of a 49 152-word vocabulary),
    never round-trip through memory. Any cotangent per row is supported (per-token, per-sequence or mean losses)."""
    return _head_fwd(hidden, table, labels, chunk)[0]


def _head_split(chunk, *arrays):
    pad = -arrays[0].shape[0] % chunk
    return [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(-1, chunk, *a.shape[1:]) for a in arrays]


def _head_logits(h, table):
    return jax.lax.dot_general(h, table, (((1,), (1,)), ((), ()))).astype(jnp.float32)


def _head_fwd(hidden, table, labels, chunk):
    def one(args):
        h, y = args
        logits = _head_logits(h, table)
        lse = jax.nn.logsumexp(logits, axis=-1)
        return jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0] - lse, lse

    lp, lse = jax.lax.map(one, _head_split(chunk, hidden, labels))
    n = hidden.shape[0]
    return lp.reshape(-1)[:n], (hidden, table, labels, lse.reshape(-1)[:n])


def _head_bwd(chunk, res, g):
    hidden, table, labels, lse = res

    def one(dtable, args):
        h, y, s, gy = args
        p = jnp.exp(_head_logits(h, table) - s[:, None])
        dlogits = (jax.nn.one_hot(y, table.shape[0], dtype=p.dtype) - p) * gy[:, None]
        dlogits = dlogits.astype(table.dtype)
        # [d, V]: XLA's CPU dot is fastest with hᵀ contiguous; the outer barrier keeps the final `.T` from being
        # folded into this product (XLA would then compute dlogitsᵀ·h directly, on its slower transposed-operand path)
        dt = jax.lax.optimization_barrier(jax.lax.optimization_barrier(h.T) @ dlogits)
        return dtable + dt.astype(dtable.dtype), (dlogits @ table).astype(hidden.dtype)

    dtable, dh = jax.lax.scan(one, jnp.zeros(table.shape[::-1], jnp.float32),
                              _head_split(chunk, hidden, labels, lse, g.astype(jnp.float32)))
    return dh.reshape(-1, hidden.shape[1])[:hidden.shape[0]], dtable.T.astype(table.dtype), None


head_label_logprobs.defvjp(_head_fwd, _head_bwd)


def token_cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Mean negative log-likelihood over the masked tokens of the whole batch (a scalar)."""
    nll = -token_logprobs(logits, labels)
    if mask is None:
        return nll.mean()
    mask = mask.astype(jnp.float32)
    return (nll * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def sequence_logprobs(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray, *,
                      reduction: str = "sum") -> jnp.ndarray:
    """Per-sequence log-probability `[b]` of the masked (answer) tokens.

    reduction="sum": log π(y|x) = Σ_t log p(y_t); "mean": the same divided by the number of answer
    tokens (length-normalised, as SimNPO uses)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is invalid: expected one of {list(REDUCTIONS)}")
    mask = mask.astype(jnp.float32)
    total = (token_logprobs(logits, labels) * mask).sum(-1)
    return total if reduction == "sum" else total / jnp.maximum(mask.sum(-1), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# LLM unlearning losses (NPO, arXiv 2404.05868; SimNPO, arXiv 2410.07163; spec ../shared/papers/unlearning.md §2)
#
# Every function below is a loss to be MINIMISED.
#
# Per-example primitives (`*_from_logps`) act on sequence log-probabilities log π(y|x) (any shape; a classifier's
# log p(y|x) works as well as an LM's sum over answer tokens) and return per-example losses of the same shape.
#
# Token-level wrappers take HF-style `(logits [b, t, V], labels [b, t])`: `logits` is the model run on the full
# sequence `input_ids [b, t]`, `labels` is `input_ids` with -100 on every position that is not an answer token
# (prompt, padding). They shift internally (logits[:, :-1] predict labels[:, 1:]), exactly like HF's `outputs.loss`
# and TOFU's `get_batch_loss`. Reference-model quantities are passed as per-sequence log-probs `ref_logp [b]`
# (compute them with `sequence_logps(ref_logits, labels, reduction=...)` under the SAME reduction; they can be
# cached because the reference model is frozen).
#
# Reductions (spec §2.1; they are not interchangeable, pitfall 1):
#   "token_mean": mean over all labelled tokens of the whole batch (HF `outputs.loss`; GA / GD / RT / IDK terms);
#   "seq_sum":    per-sequence SUM of token log-probs, then mean over sequences (NPO, DPO: TOFU `get_batch_loss`);
#   "seq_mean":   per-sequence MEAN over its labelled tokens, then mean over sequences (SimNPO).
# ---------------------------------------------------------------------------------------------------------------

IGNORE_INDEX = -100
UNLEARN_REDUCTIONS = ("token_mean", "seq_sum", "seq_mean")


def _check_reduction(reduction: str, allowed=UNLEARN_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction={reduction!r} is invalid: expected one of {list(allowed)}")


def _check_beta(beta) -> None:
    if isinstance(beta, (int, float)) and not beta > 0:
        raise ValueError(f"beta={beta!r} is invalid: expected a number > 0")


# --- per-example primitives ------------------------------------------------------------------------------------

def ga_from_logps(logp: jnp.ndarray) -> jnp.ndarray:
    """Gradient ascent: the loss is log π(y|x) itself, so minimising it ascends the NLL (unbounded below)."""
    return logp


def npo_from_logps(logp: jnp.ndarray, ref_logp: jnp.ndarray, *, beta: float) -> jnp.ndarray:
    """NPO: (2/β)·log(1 + (π/π_ref)^β) = (2/β)·softplus(β(logp − ref_logp)) = −(2/β)·log σ(−β(logp − ref_logp)).

    ≥ 0; equals (2/β)·log 2 at π = π_ref. d/d logp = 2π^β/(π^β + π_ref^β) (= 1 at π = π_ref; GA's weight is 1).
    The TOFU code writes it with neg_log_ratio = NLL_θ − NLL_ref = ref_logp − logp (spec §2.7, pitfall 2)."""
    _check_beta(beta)
    return (2.0 / beta) * jax.nn.softplus(beta * (logp - ref_logp))


def simnpo_from_logps(logp: jnp.ndarray, length: jnp.ndarray, *, beta: float, gamma: float = 0.0) -> jnp.ndarray:
    """SimNPO: −(2/β)·log σ(−(β/|y|)·log π(y|x) − γ) = (2/β)·softplus((β/|y|)·logp + γ).

    `logp` is the per-sequence SUM of answer-token log-probs and `length` = |y| (number of answer tokens).
    γ is the paper's margin (spec §2.10); the released code's `gamma` sits inside β(·): γ_paper = β·γ_code.
    d/d logp = (2/|y|)·σ((β/|y|)·logp + γ) ≤ 2/|y|."""
    _check_beta(beta)
    length = jnp.maximum(jnp.asarray(length, jnp.float32), 1.0)
    return (2.0 / beta) * jax.nn.softplus((beta / length) * logp + gamma)


def dpo_from_logps(logp_w: jnp.ndarray, ref_logp_w: jnp.ndarray, logp_l: jnp.ndarray, ref_logp_l: jnp.ndarray, *,
                   beta: float) -> jnp.ndarray:
    """DPO (IdkDPO when w = an "I don't know" answer, l = the true forget answer):
    −(2/β)·log σ(β[(logp_w − ref_logp_w) − (logp_l − ref_logp_l)]).

    The 2/β scaling follows the spec (§2.6: the NPO paper's eq. 2 writes 1/β, the code uses 2/β); it only rescales
    the loss, so with Adam it barely matters, but it makes DPO and NPO losses comparable."""
    _check_beta(beta)
    margin = (logp_w - ref_logp_w) - (logp_l - ref_logp_l)
    return -(2.0 / beta) * jax.nn.log_sigmoid(beta * margin)


# --- token-level helpers ---------------------------------------------------------------------------------------

def shifted_answer_logprobs(logits: jnp.ndarray, labels: jnp.ndarray):
    """(token log-probs `[b, t-1]` (0 where masked), mask `[b, t-1]` float) after the next-token shift;
    positions whose label is -100 are masked."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = (labels != IGNORE_INDEX)
    safe = jnp.where(mask, labels, 0)
    lp = token_logprobs(logits, safe)
    mask = mask.astype(jnp.float32)
    return lp * mask, mask


def next_token_targets(labels: jnp.ndarray):
    """(targets `[b, t]`, mask `[b, t]` float) for `transformer.forward(..., labels=targets)`: position i predicts
    labels[:, i + 1]; the last position and labels of -100 are masked (target 0 there). With the forward's
    "label_logprobs" `lp`, `(lp * mask)` equals `shifted_answer_logprobs` padded by one column."""
    nxt = jnp.concatenate([labels[:, 1:], jnp.full_like(labels[:, :1], IGNORE_INDEX)], axis=1)
    mask = nxt != IGNORE_INDEX
    return jnp.where(mask, nxt, 0), mask.astype(jnp.float32)


def answer_lengths(labels: jnp.ndarray) -> jnp.ndarray:
    """|y| per sequence `[b]`: the number of labelled tokens that are predicted (labels[:, 1:] != -100)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(-1).astype(jnp.float32)


def sequence_logps(logits: jnp.ndarray, labels: jnp.ndarray, *, reduction: str = "seq_sum") -> jnp.ndarray:
    """Per-sequence answer log-prob `[b]`: "seq_sum" = log π(y|x) = Σ_t log p(y_t|x, y_<t); "seq_mean" = that / |y|."""
    _check_reduction(reduction, ("seq_sum", "seq_mean"))
    lp, mask = shifted_answer_logprobs(logits, labels)
    total = lp.sum(-1)
    return total if reduction == "seq_sum" else total / jnp.maximum(mask.sum(-1), 1.0)


def mean_logp(logits: jnp.ndarray, labels: jnp.ndarray, *, reduction: str = "token_mean") -> jnp.ndarray:
    """Scalar mean answer log-likelihood under a reduction (−1 × the NLL loss):
    "token_mean": Σ over all labelled tokens / their count (HF `outputs.loss` = −this);
    "seq_sum": mean over sequences of log π(y|x); "seq_mean": mean over sequences of log π(y|x)/|y|."""
    _check_reduction(reduction)
    if reduction == "token_mean":
        lp, mask = shifted_answer_logprobs(logits, labels)
        return lp.sum() / jnp.maximum(mask.sum(), 1.0)
    return sequence_logps(logits, labels, reduction=reduction).mean()


def nll_loss(logits: jnp.ndarray, labels: jnp.ndarray, *, reduction: str = "token_mean") -> jnp.ndarray:
    """Answer-token negative log-likelihood (the retain "RT" term / fine-tuning loss); token-mean by default."""
    return -mean_logp(logits, labels, reduction=reduction)


def retain_kl(logits: jnp.ndarray, ref_logits: jnp.ndarray, labels: jnp.ndarray | None = None, *,
              positions: str = "all") -> jnp.ndarray:
    """KL(π_ref(·|x) ‖ π_θ(·|x)) summed over the vocabulary and averaged over positions.

    positions="all" (TOFU code, spec §2.4 / pitfall 10): logits flattened to (B·T, V) and
    `F.kl_div(log π_θ, log π_ref, reduction="batchmean", log_target=True)`, i.e. the mean over EVERY position of
    the padded sequence, prompt and padding included (no shift). positions="labelled": mean over the positions
    that predict an answer token (shifted, labels != -100; needs `labels`)."""
    if positions not in ("all", "labelled"):
        raise ValueError(f"positions={positions!r} is invalid: expected one of ['all', 'labelled']")
    lp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    lq = jax.nn.log_softmax(ref_logits.astype(jnp.float32), -1)
    kl = (jnp.exp(lq) * (lq - lp)).sum(-1)  # [b, t]
    if positions == "all":
        return kl.mean()
    if labels is None:
        raise ValueError("retain_kl(positions='labelled') needs labels")
    mask = (labels[:, 1:] != IGNORE_INDEX).astype(jnp.float32)
    return (kl[:, :-1] * mask).sum() / jnp.maximum(mask.sum(), 1.0)


# --- token-level method losses (scalars) -------------------------------------------------------------------------

def ga_loss(forget_logits, forget_labels, *, reduction: str = "token_mean") -> jnp.ndarray:
    """GA: mean forget log-likelihood (= −CE; TOFU `loss = -outputs.loss`). Minimising it ascends the NLL."""
    return mean_logp(forget_logits, forget_labels, reduction=reduction)


def gd_loss(forget_logits, forget_labels, retain_logits, retain_labels, *, forget_coeff: float = 1.0,
            retain_coeff: float = 1.0, reduction: str = "token_mean") -> jnp.ndarray:
    """Gradient difference (GA+RT): forget_coeff·(−CE_f) + retain_coeff·CE_r (NPO Table 2: 1 and 1)."""
    return (forget_coeff * ga_loss(forget_logits, forget_labels, reduction=reduction)
            + retain_coeff * nll_loss(retain_logits, retain_labels, reduction=reduction))


def kl_retain_loss(forget_logits, forget_labels, retain_logits, ref_retain_logits, retain_labels=None, *,
                   forget_coeff: float = 1.0, retain_coeff: float = 1.0, reduction: str = "token_mean",
                   kl_positions: str = "all") -> jnp.ndarray:
    """TOFU's "KL" method (GA+KL): forget_coeff·(−CE_f) + retain_coeff·KL(π_ref ‖ π_θ) on the retain batch
    (KL averaged over all positions by default, see `retain_kl`)."""
    return (forget_coeff * ga_loss(forget_logits, forget_labels, reduction=reduction)
            + retain_coeff * retain_kl(retain_logits, ref_retain_logits, retain_labels, positions=kl_positions))


def idk_loss(idk_logits, idk_labels, retain_logits, retain_labels, *, reduction: str = "token_mean") -> jnp.ndarray:
    """IDK(+RT): CE on (forget question, "I don't know" answer) and on the retain pair. TOFU concatenates both
    batches into one forward pass, so with "token_mean" this is the token-mean over the UNION of labelled tokens
    (not the average of the two means)."""
    _check_reduction(reduction)
    if reduction == "token_mean":
        lp1, m1 = shifted_answer_logprobs(idk_logits, idk_labels)
        lp2, m2 = shifted_answer_logprobs(retain_logits, retain_labels)
        return -(lp1.sum() + lp2.sum()) / jnp.maximum(m1.sum() + m2.sum(), 1.0)
    s1 = sequence_logps(idk_logits, idk_labels, reduction=reduction)
    s2 = sequence_logps(retain_logits, retain_labels, reduction=reduction)
    return -jnp.concatenate([s1, s2]).mean()


def dpo_unlearn_loss(idk_logits, idk_labels, forget_logits, forget_labels, ref_idk_logp, ref_forget_logp, *,
                     beta: float = 0.1, reduction: str = "seq_sum", retain_logits=None, retain_labels=None,
                     retain_coeff: float = 0.0, retain_reduction: str = "token_mean") -> jnp.ndarray:
    """IdkDPO: winner = IDK answer, loser = true forget answer; mean over sequences of `dpo_from_logps` with
    per-sequence SUM log-probs (β = 0.1 on TOFU). `ref_*_logp` are the frozen reference's per-sequence log-probs
    under the same reduction. retain_coeff > 0 adds retain_coeff·CE_r (DPO+RT)."""
    _check_reduction(reduction, ("seq_sum", "seq_mean"))
    lw = sequence_logps(idk_logits, idk_labels, reduction=reduction)
    ll = sequence_logps(forget_logits, forget_labels, reduction=reduction)
    loss = dpo_from_logps(lw, ref_idk_logp, ll, ref_forget_logp, beta=beta).mean()
    return loss + _retain_term(retain_logits, retain_labels, retain_coeff, retain_reduction, "dpo_unlearn_loss")


def _retain_term(retain_logits, retain_labels, retain_coeff, reduction, who):
    if isinstance(retain_coeff, (int, float)) and retain_coeff == 0:
        return 0.0
    if retain_logits is None or retain_labels is None:
        raise ValueError(f"{who}: retain_coeff={retain_coeff!r} needs retain_logits and retain_labels "
                         f"(pass retain_coeff=0.0 for the forget term alone)")
    return retain_coeff * nll_loss(retain_logits, retain_labels, reduction=reduction)


def npo_loss(forget_logits, forget_labels, ref_forget_logp, *, beta: float = 0.1, forget_coeff: float = 1.0,
             reduction: str = "seq_sum") -> jnp.ndarray:
    """NPO: forget_coeff · mean over sequences of (2/β)·softplus(β(log π_θ(y|x) − log π_ref(y|x))), sequence-SUM
    log-probs (TOFU `get_batch_loss`), β = 0.1 (TOFU default)."""
    _check_reduction(reduction, ("seq_sum", "seq_mean"))
    logp = sequence_logps(forget_logits, forget_labels, reduction=reduction)
    return forget_coeff * npo_from_logps(logp, ref_forget_logp, beta=beta).mean()


def npo_rt_loss(forget_logits, forget_labels, ref_forget_logp, retain_logits, retain_labels, *, beta: float = 0.1,
                forget_coeff: float = 1.0, retain_coeff: float = 1.0, reduction: str = "seq_sum",
                retain_reduction: str = "token_mean") -> jnp.ndarray:
    """NPO+RT (`npo_grad_diff`): forget_coeff·L_NPO + retain_coeff·CE_r (defaults 1.0 / 1.0; CE token-mean)."""
    return (npo_loss(forget_logits, forget_labels, ref_forget_logp, beta=beta, forget_coeff=forget_coeff,
                     reduction=reduction)
            + _retain_term(retain_logits, retain_labels, retain_coeff, retain_reduction, "npo_rt_loss"))


def npo_kl_loss(forget_logits, forget_labels, ref_forget_logp, retain_logits, ref_retain_logits, retain_labels=None,
                *, beta: float = 0.1, forget_coeff: float = 1.0, retain_coeff: float = 1.0,
                reduction: str = "seq_sum", kl_positions: str = "all") -> jnp.ndarray:
    """NPO+KL (`npo_KL`): forget_coeff·L_NPO + retain_coeff·KL(π_ref ‖ π_θ) on the retain batch."""
    return (npo_loss(forget_logits, forget_labels, ref_forget_logp, beta=beta, forget_coeff=forget_coeff,
                     reduction=reduction)
            + retain_coeff * retain_kl(retain_logits, ref_retain_logits, retain_labels, positions=kl_positions))


def simnpo_loss(forget_logits, forget_labels, retain_logits=None, retain_labels=None, *, beta: float = 2.5,
                gamma: float = 0.0, forget_coeff: float = 0.1375, retain_coeff: float = 1.0,
                reduction: str = "seq_mean", retain_reduction: str = "token_mean") -> jnp.ndarray:
    """SimNPO(+RT) as the released TOFU code (`simnpo_grad_diff`): forget_coeff · mean over sequences of
    −(2/β)·log σ(−β·log π(y|x)/|y| − γ) + retain_coeff · CE_r.

    Defaults = the TOFU forget05 config: β = 2.5, γ = 0, forget_coeff 0.1375 (the coefficient multiplies the FORGET
    term in code, spec §2.10 / pitfall 11), retain_coeff 1.0; forget10 uses β = 4.5, forget_coeff 0.125.
    reduction="seq_mean" is the paper's length normalisation; "seq_sum" drops it (|y| := 1).
    Plain SimNPO without a retain set: retain_coeff=0.0 (and usually forget_coeff=1.0)."""
    _check_reduction(reduction, ("seq_sum", "seq_mean"))
    logp = sequence_logps(forget_logits, forget_labels, reduction="seq_sum")
    length = answer_lengths(forget_labels) if reduction == "seq_mean" else jnp.ones_like(logp)
    forget = simnpo_from_logps(logp, length, beta=beta, gamma=gamma).mean()
    return forget_coeff * forget + _retain_term(retain_logits, retain_labels, retain_coeff, retain_reduction,
                                                "simnpo_loss")


# --- selecting a method by name ------------------------------------------------------------------------------

def _m(fn, needs, defaults):
    return {"fn": fn, "needs": tuple(needs), "defaults": dict(defaults)}


# Inputs a method may need (keys of the `inputs` dict of `forget_loss`):
#   forget_logits, forget_labels   model on (forget question, true answer)
#   retain_logits, retain_labels   model on a retain pair
#   idk_logits, idk_labels         model on (forget question, "I don't know" answer)
#   ref_forget_logp, ref_idk_logp  frozen reference's per-sequence log-probs (same reduction as the method's)
#   ref_retain_logits              frozen reference's logits on the retain batch (KL methods)
METHODS = {
    "ga": _m(lambda i, **h: ga_loss(i["forget_logits"], i["forget_labels"], **h),
             ["forget"], {"reduction": "token_mean"}),
    "gd": _m(lambda i, **h: gd_loss(i["forget_logits"], i["forget_labels"], i["retain_logits"], i["retain_labels"],
                                    **h),
             ["forget", "retain"], {"forget_coeff": 1.0, "retain_coeff": 1.0, "reduction": "token_mean"}),
    "kl": _m(lambda i, **h: kl_retain_loss(i["forget_logits"], i["forget_labels"], i["retain_logits"],
                                           i["ref_retain_logits"], i["retain_labels"], **h),
             ["forget", "retain", "ref_retain_logits"],
             {"forget_coeff": 1.0, "retain_coeff": 1.0, "reduction": "token_mean", "kl_positions": "all"}),
    "idk": _m(lambda i, **h: idk_loss(i["idk_logits"], i["idk_labels"], i["retain_logits"], i["retain_labels"], **h),
              ["idk", "retain"], {"reduction": "token_mean"}),
    "dpo": _m(lambda i, **h: dpo_unlearn_loss(i["idk_logits"], i["idk_labels"], i["forget_logits"],
                                              i["forget_labels"], i["ref_idk_logp"], i["ref_forget_logp"], **h),
              ["forget", "idk", "ref_forget_logp", "ref_idk_logp"], {"beta": 0.1, "reduction": "seq_sum"}),
    "dpo_rt": _m(lambda i, **h: dpo_unlearn_loss(i["idk_logits"], i["idk_labels"], i["forget_logits"],
                                                 i["forget_labels"], i["ref_idk_logp"], i["ref_forget_logp"],
                                                 retain_logits=i["retain_logits"],
                                                 retain_labels=i["retain_labels"], **h),
                 ["forget", "idk", "retain", "ref_forget_logp", "ref_idk_logp"],
                 {"beta": 0.1, "reduction": "seq_sum", "retain_coeff": 1.0}),
    "npo": _m(lambda i, **h: npo_loss(i["forget_logits"], i["forget_labels"], i["ref_forget_logp"], **h),
              ["forget", "ref_forget_logp"], {"beta": 0.1, "forget_coeff": 1.0, "reduction": "seq_sum"}),
    "npo_rt": _m(lambda i, **h: npo_rt_loss(i["forget_logits"], i["forget_labels"], i["ref_forget_logp"],
                                            i["retain_logits"], i["retain_labels"], **h),
                 ["forget", "retain", "ref_forget_logp"],
                 {"beta": 0.1, "forget_coeff": 1.0, "retain_coeff": 1.0, "reduction": "seq_sum"}),
    "npo_kl": _m(lambda i, **h: npo_kl_loss(i["forget_logits"], i["forget_labels"], i["ref_forget_logp"],
                                            i["retain_logits"], i["ref_retain_logits"], i["retain_labels"], **h),
                 ["forget", "retain", "ref_forget_logp", "ref_retain_logits"],
                 {"beta": 0.1, "forget_coeff": 1.0, "retain_coeff": 1.0, "reduction": "seq_sum",
                  "kl_positions": "all"}),
    "simnpo": _m(lambda i, **h: simnpo_loss(i["forget_logits"], i["forget_labels"], **h),
                 ["forget"], {"beta": 2.5, "gamma": 0.0, "forget_coeff": 1.0, "retain_coeff": 0.0,
                              "reduction": "seq_mean"}),
    "simnpo_rt": _m(lambda i, **h: simnpo_loss(i["forget_logits"], i["forget_labels"], i["retain_logits"],
                                               i["retain_labels"], **h),
                    ["forget", "retain"], {"beta": 2.5, "gamma": 0.0, "forget_coeff": 0.1375, "retain_coeff": 1.0,
                                           "reduction": "seq_mean"}),
}
# Which reduction the method's reference log-probs (ref_forget_logp / ref_idk_logp) must be computed with:
# that is METHODS[m]["defaults"]["reduction"] (or the override passed in hparams).


def check_method(method: str) -> dict:
    """The METHODS entry for `method`, or a ValueError naming the value and the accepted names."""
    if method not in METHODS:
        raise ValueError(f"unlearning method={method!r} is invalid: expected one of {sorted(METHODS)}")
    return METHODS[method]


def method_hparams(method: str, hparams: dict | None = None) -> dict:
    """The method's defaults updated with `hparams`; unknown names raise a ValueError listing the accepted ones."""
    spec = check_method(method)
    hparams = dict(hparams or {})
    unknown = sorted(set(hparams) - set(spec["defaults"]))
    if unknown:
        raise ValueError(f"hyperparameters {unknown} are invalid for unlearning method {method!r}: "
                         f"expected a subset of {sorted(spec['defaults'])}")
    return {**spec["defaults"], **hparams}


def method_needs(method: str) -> tuple:
    """The inputs a method needs: subset of ("forget", "retain", "idk", "ref_forget_logp", "ref_idk_logp",
    "ref_retain_logits")."""
    return check_method(method)["needs"]


def forget_loss(method: str, inputs: dict, **hparams) -> jnp.ndarray:
    """The scalar unlearning loss of `method` (a key of METHODS) on `inputs` (see the METHODS comment for keys),
    with the method's defaults overridden by `hparams` (e.g. beta=0.05). Missing inputs raise a clear error."""
    spec = check_method(method)
    full = method_hparams(method, hparams)
    keys = []
    for need in spec["needs"]:
        keys += [f"{need}_logits", f"{need}_labels"] if need in ("forget", "retain", "idk") else [need]
    missing = [k for k in keys if inputs.get(k) is None]
    if missing:
        raise ValueError(f"unlearning method {method!r} needs inputs {missing} (given: {sorted(k for k in inputs)})")
    return spec["fn"](inputs, **full)


# ---------------------------------------------------------------------------------------------------------------
# Policy gradient with a group baseline and a KL penalty to a frozen reference (GRPO-style, no critic; the
# advantages come from `lib/expert_iteration.group_advantages`). Token-level: `logp`, `ref_logp` `[b, t]` are the
# log-probabilities of the tokens that were sampled, `mask` `[b, t]` marks the sampled (action) tokens.
# ---------------------------------------------------------------------------------------------------------------

def kl_k3(logp: jnp.ndarray, ref_logp: jnp.ndarray) -> jnp.ndarray:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref) at tokens sampled from π_θ (Schulman's "approximating KL"; GRPO's
    penalty): exp(ref − logp) − (ref − logp) − 1, elementwise; ≥ 0, 0 where logp = ref, unbiased when the tokens are
    drawn from π_θ. d/d logp = 1 − exp(ref − logp) (pulls logp toward ref_logp from either side)."""
    d = ref_logp - logp
    return jnp.exp(d) - d - 1.0


def group_pg_loss(logp: jnp.ndarray, ref_logp: jnp.ndarray, advantages: jnp.ndarray, mask: jnp.ndarray, *,
                  beta: float) -> tuple[jnp.ndarray, dict]:
    """REINFORCE with per-sample advantages plus β·KL to the reference, token-mean over the batch's masked tokens:
    loss = Σ_{b,t} mask·(−A_b·logp_{b,t} + β·k3_{b,t}) / Σ mask. `advantages` `[b]` are constants (no gradient);
    `ref_logp` is treated as a constant. Returns (loss, {"pg": the −A·logp term, "kl": the mean k3 estimate})."""
    mask = mask.astype(jnp.float32)
    n = jnp.maximum(mask.sum(), 1.0)
    adv = jax.lax.stop_gradient(jnp.asarray(advantages, jnp.float32))[:, None]
    pg = -(adv * logp * mask).sum() / n
    kl = (kl_k3(logp, jax.lax.stop_gradient(ref_logp)) * mask).sum() / n
    return pg + beta * kl, {"pg": pg, "kl": kl}
