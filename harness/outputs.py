"""What a run reports: headline claims, and `results.json` in the shape `projects.reproduce` reads."""

from __future__ import annotations

import os
from collections.abc import Iterable

from lib.metrics import write_json_atomic


def claim(claim_id: str, text: str, *, paper: str, ours: str, holds: bool | None) -> dict:
    """One headline claim: `holds` is True/False computed by code, or None (not measurable here)."""
    return {"id": claim_id, "claim": text, "paper": paper, "ours": ours,
            "holds": None if holds is None else bool(holds)}


def write_results(workdir: str, *, project: str, preset: str, seeds: Iterable[int], metrics: dict,
                  claims: list[dict], plots: Iterable[str] = ()) -> dict:
    """Writes `workdir/results.json` atomically in the shape `projects.reproduce` reads."""
    for c in claims:
        if set(c) != {"id", "claim", "paper", "ours", "holds"} or c["holds"] not in (True, False, None):
            raise ValueError(f"malformed claim {c!r}: build claims with harness.outputs.claim")
    results = {"project": project, "preset": preset, "seeds": list(seeds), "metrics": metrics,
               "claims": claims, "plots": list(plots)}
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results
