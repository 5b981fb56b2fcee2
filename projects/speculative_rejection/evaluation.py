"""Pieces both experiments use: the synthetic one (`run.py`) and the one on real checkpoints (`real.py`).

`prompt_key` (per-prompt random numbers), `spr_options` (Speculative Rejection's settings from the config),
`per_prompt_records` (resumable per-prompt records), `improvement_fn` and `speedup_or_nan` (the paper's metrics).
They live here, not in run.py, so that run.py can import real.py without an import cycle.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from lib import decoding
from lib.metrics import progress, read_json, write_json_atomic


def prompt_key(config, j: int) -> jax.Array:
    """Prompt j's key: Best-of-N and Speculative Rejection draw row r's tokens from it (common random numbers)."""
    return jax.random.fold_in(jax.random.key(config.seed + 7), j)


def spr_options(config) -> dict:
    """Keyword arguments of `lib.decoding.speculative_rejection` set by `config.experiment`."""
    e = config.experiment
    return dict(b_cap=e.b_cap_multiple * e.device_batch, tau_min=e.tau_min, bucket=e.bucket,
                temperature=e.temperature, top_k=e.top_k, reprefill=e.reprefill, rank_pool=e.rank_pool)


def improvement_fn(records: list[dict], n0: int):
    """The paper's improvement score (Best-of-N0 = 100) as a function of each prompt's best RM score, with
    Best-of-N0's max and min taken in expectation over N0-subsets of the prompt's samples (`record["rm"]`)."""
    base = [(decoding.expected_best_of(np.asarray(r["rm"]), n0), -decoding.expected_best_of(-np.asarray(r["rm"]), n0))
            for r in records]

    def imp(best) -> float:
        vals = [(b - mx) / (mx - mn) for b, (mx, mn) in zip(best, base, strict=True) if mx > mn]
        return 100.0 * (1.0 + float(np.mean(vals))) if vals else float("nan")

    return imp


def speedup_or_nan(mult, bon_score, rel: float, score: float) -> tuple[float, bool]:
    """`lib.decoding.speedup` on the Best-of-N curve (relative compute N/N0); NaN when the curve does not
    increase (tiny or random models)."""
    try:
        sp = decoding.speedup(np.asarray(mult, float), np.asarray(bon_score, float), rel, score)
        return sp["speedup"], sp["extrapolated"]
    except ValueError:
        return float("nan"), True


def per_prompt_records(workdir: str, items, evaluate) -> list[dict]:
    """`evaluate(j, item)` for every item, each record written atomically to `workdir/prompts/<j>.json` and read
    back on a rerun (resume; a damaged record raises `DamagedStateError` naming it)."""
    pdir = os.path.join(workdir, "prompts")
    os.makedirs(pdir, exist_ok=True)
    records = []
    with progress(len(items), desc="prompts", unit="prompt") as bar:
        for j, item in enumerate(items):
            path = os.path.join(pdir, f"{j:04d}.json")
            if os.path.exists(path):
                records.append(read_json(path))
            else:
                records.append(evaluate(j, item))
                write_json_atomic(path, records[-1])
            bar.update(1)
    return records
