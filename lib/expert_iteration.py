"""Expert iteration with a step verifier (AutoPRM's RL [S]) and verifier-reranked step search, as small pure helpers.

The sampling and fine-tuning belong to a project (they know its model and data layout); what is reusable is the
bookkeeping between them, written here once:

- `choose_candidates`: at one step, k sampled candidates per problem with verifier rewards `[n, k]` → the one to
  continue from (highest reward, ties broken by model log-probability) and whether it is accepted (reward ≥ τ).
- `accepted_prefix`: a chain's steps are trained on only while every earlier step was accepted too
  (a step after a rejected one was conditioned on a wrong context).
- `rerank`: reward-reranked search (spec §2.9 [S]): score = log P(s) + log R(s); abstain when max R < τ.
- `tampering_gap`: mean verifier-predicted correctness minus true correctness of the chosen steps (spec §5.6).
- `auroc`: the verifier's ranking quality on held-out steps (Mann–Whitney form, ties counted half).
- `group_advantages`: per-sample advantages r − mean_k r over each group of k samples (optionally divided by the
  group's std), the critic-free baseline of group policy gradient (GRPO-style; autoprm's PG variant, our addition).
- `expert_iteration`: the loop itself — sample/label/keep (`collect`), fine-tune (`finetune`), evaluate on
  validation (`evaluate`) for `rounds` rounds, keeping the round with the best validation score (round 0 = start).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def choose_candidates(rewards, logps, *, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """rewards, logps `[n, k]` → (best `[n]` int, accepted `[n]` bool): the highest reward, ties broken by the
    higher log-probability; accepted when that reward is ≥ threshold."""
    rewards, logps = np.asarray(rewards, float), np.asarray(logps, float)
    order = np.lexsort((-logps, -rewards), axis=-1)  # primary key: reward (desc), then logp (desc)
    best = order[..., 0]
    return best, np.take_along_axis(rewards, best[..., None], -1)[..., 0] >= threshold


def accepted_prefix(accepted) -> np.ndarray:
    """`[..., T]` bool → `[..., T]` bool: step t kept iff steps 0..t were all accepted."""
    return np.cumprod(np.asarray(accepted, bool), axis=-1).astype(bool)


def rerank_score(logps, rewards, *, floor: float = 1e-6) -> np.ndarray:
    """A candidate's reranking score, log P + log max(R, floor) (elementwise)."""
    return np.asarray(logps, float) + np.log(np.maximum(np.asarray(rewards, float), floor))


def rerank(logps, rewards, *, tau: float, floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Reward-reranked choice among m candidates `[n, m]`: argmax of `rerank_score`; abstain `[n]` when every
    candidate's reward is below τ."""
    return rerank_score(logps, rewards, floor=floor).argmax(-1), np.asarray(rewards, float).max(-1) < tau


def tampering_gap(predicted, true) -> float:
    """Mean verifier-predicted correctness minus mean true correctness (over the same chosen steps)."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    return float(predicted.mean() - true.mean()) if predicted.size else float("nan")


def auroc(scores, labels) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (NaN when one class is missing)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not pos.size or not neg.size:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


ADV_NORMS = ("mean", "mean_std")


def group_advantages(rewards, *, norm: str = "mean", eps: float = 1e-6) -> np.ndarray:
    """rewards `[n, k]` (k samples of one group per row) → advantages `[n, k]`: r − mean_k r ("mean", the plain
    group baseline), or (r − mean_k r) / (std_k r + eps) ("mean_std", GRPO's; std with ddof 0). A group whose k
    rewards are equal gets zero advantages either way."""
    if norm not in ADV_NORMS:
        raise ValueError(f"norm={norm!r} is invalid: expected one of {list(ADV_NORMS)}")
    r = np.asarray(rewards, float)
    adv = r - r.mean(-1, keepdims=True)
    return adv / (r.std(-1, keepdims=True) + eps) if norm == "mean_std" else adv


def expert_iteration(params: Any, *, rounds: int, collect: Callable[[Any, int], Any],
                     finetune: Callable[[Any, Any, int], Any], evaluate: Callable[[Any], float],
                     on_round: Callable[[int, dict], None] | None = None) -> tuple[Any, list[dict]]:
    """Runs `rounds` rounds of: data = collect(params, round); params = finetune(params, data, round);
    score = evaluate(params) (validation). Returns (the best round's params, history), history[r] =
    {"round", "val", **stats} with round 0 the starting params; `collect` may return (data, stats dict), and
    `finetune` (params, stats dict), both merged into the round's stats."""
    best_params, best = params, evaluate(params)
    history = [{"round": 0, "val": best}]
    for r in range(1, rounds + 1):
        data = collect(params, r)
        extra = {}
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], dict):
            data, extra = data
        params = finetune(params, data, r)
        if isinstance(params, tuple) and len(params) == 2 and isinstance(params[1], dict):
            params, tuned = params
            extra = {**extra, **tuned}
        score = evaluate(params)
        history.append({"round": r, "val": score, **extra})
        if on_round is not None:
            on_round(r, history[-1])
        if score > best:
            best_params, best = params, score
    return best_params, history
