"""simnpo claims, computed from the saved trajectories (spec §5a.7 acceptance checks and the issue's list).

Conventions: KL triples are (retain distance, Forget1 quality, Forget2 quality) — all KL(T_chain ‖ π_θ) averaged
over the valid tokens of the test split; forget quality higher = more forgotten (the target is the retrained
model's value), retain distance lower = better. "Matched retain distance": each trajectory's forget quality is
interpolated as a function of its (running-maximum) retain distance on a common grid over the retain range both
trajectories cover. Claims are computed per model seed; a claim holds when the seed-mean says so and more than
half of the seeds agree. The smoke preset reports numbers with holds = None (a 1-layer d = 16 model).
"""

from __future__ import annotations

import numpy as np

from harness import outputs

# spec §5a.6 table (scratch JAX run, torch-like init): (retain, Forget1, Forget2)
SPEC_REFERENCE = {
    ("length", "original"): (0.019, 0.048, 0.098),
    ("length", "retrained"): (0.0056, 0.476, 0.425),
    ("memorisation", "original"): (0.024, 0.029, 0.431),
    ("memorisation", "retrained"): (0.0035, 0.436, 0.423),
}
PAPER_FIGURE = ("paper figures (approx.): original retain ≈ 0.02, Forget1 ≈ 0.04–0.05, Forget2 ≈ 0.10 (length) / "
                "0.42 (memorisation); retrained retain ≈ 0.004, Forget1 ≈ Forget2 ≈ 0.42–0.44")
# the paper's figures as the spec reads them (§4.7, §5a.7: "retain ≈ 0.02 vs ≈ 0.004; Forget1 ≈ 0.04 vs ≈ 0.45"):
# Fig. 5a (length) original (0.022, 0.04, 0.10), retrained (0.004, 0.42, 0.44); Fig. 5b (memorisation) original
# Forget1 ≈ 0.05, Forget2 ≈ 0.42, retrained ≈ 0.42–0.43 for both; original retain ≈ 0.02 in both panels
PAPER_REFERENCE = {
    ("length", "original"): (0.022, 0.04, 0.10),
    ("length", "retrained"): (0.004, 0.42, 0.44),
    ("memorisation", "original"): (0.02, 0.05, 0.42),
    ("memorisation", "retrained"): (0.004, 0.425, 0.425),
}
TOLERANCE = 0.30
GA_FACTOR = 1.5  # "≫": GA's final retain distance at least this multiple of NPO's and SimNPO's
GRID = 25


def _fmt(x) -> str:
    return f"{x:.3g}" if np.isfinite(x) else "n/a"


def _pm(values) -> str:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.3g} ± {v.std():.2g}" if v.size > 1 else f"{v.mean():.3g}"


def run_index(result: dict, method: str, beta: float) -> int:
    for i, (m, b) in enumerate(result["runs"]):
        if m == method and (method == "ga" or np.isclose(b, beta)):
            return i
    raise KeyError(f"no {method} run with beta={beta} in {result['runs']}")


def trajectory(result: dict, method: str, beta: float = 0.0) -> np.ndarray:
    """KL `[seeds, evals, 3]` of one (method, β)."""
    return result["kl"][run_index(result, method, beta)]


def _monotone(retain: np.ndarray) -> np.ndarray:
    """Running maximum plus a negligible ramp, so np.interp sees strictly increasing x."""
    return np.maximum.accumulate(retain) + 1e-12 * np.arange(retain.size)


def matched(traj_a: np.ndarray, traj_b: np.ndarray, comp: int, num: int = GRID):
    """(grid, fq_a, fq_b): forget quality of component comp (1 = Forget1, 2 = Forget2) of two single-seed
    trajectories `[E, 3]` on a common retain-distance grid; empty when their retain ranges do not overlap."""
    ra, rb = _monotone(traj_a[:, 0]), _monotone(traj_b[:, 0])
    lo, hi = max(ra[0], rb[0]), min(ra[-1], rb[-1])
    if not hi > lo:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    grid = np.geomspace(lo, hi, num)
    return grid, np.interp(grid, ra, traj_a[:, comp]), np.interp(grid, rb, traj_b[:, comp])


def retain_at_level(traj: np.ndarray, comp: int, level: float) -> float:
    """Retain distance (interpolated) at which component comp first reaches `level`; inf if it never does."""
    fq, r = traj[:, comp], _monotone(traj[:, 0])
    above = np.flatnonzero(fq >= level)
    if above.size == 0:
        return float("inf")
    j = above[0]
    if j == 0:
        return float(r[0])
    w = (level - fq[j - 1]) / (fq[j] - fq[j - 1])
    return float(r[j - 1] + w * (r[j] - r[j - 1]))


def _first_minus_second(a: float, b: float) -> float:
    """a − b for retain distances where inf = never reached: ±1 when only one is reached, nan when neither."""
    if np.isinf(a) and np.isinf(b):
        return float("nan")
    if np.isinf(a) or np.isinf(b):
        return 1.0 if np.isinf(a) else -1.0
    return a - b


def _agree(per_seed, sign: float = 1.0) -> bool:
    v = sign * np.asarray(per_seed, float)
    finite = v[np.isfinite(v)]
    return finite.size > 0 and finite.mean() > 0 and (finite > 0).sum() > v.size / 2


def markov(config, results: dict) -> tuple[dict, list[dict]]:
    """(metrics, claims) of the Markov-chain part."""
    u = config.markov.unlearn
    measurable = config.preset != "smoke"
    seeds = list(config.markov.seeds)
    metrics: dict = {}
    claims = []

    for case, r in results.items():
        pre = f"markov/{case}"
        for which in ("original", "retrained"):
            for j, split in enumerate(("retain", "forget1", "forget2")):
                metrics[f"{pre}/{which}/{split}"] = float(r[f"{which}_full"][:, j].mean())
                metrics[f"{pre}/{which}/{split}/std"] = float(r[f"{which}_full"][:, j].std())
        for i, (method, beta) in enumerate(r["runs"]):
            name = method if method == "ga" else f"{method}_beta{beta:g}"
            final = r["kl"][i][:, -1]
            for j, split in enumerate(("retain", "forget1", "forget2")):
                metrics[f"{pre}/{name}/final/{split}"] = float(final[:, j].mean())
        for k, v in r["seconds"].items():
            metrics[f"{pre}/seconds/{k}"] = float(v)
        metrics[f"{pre}/pretrain_final_loss"] = float(np.asarray(r["pretrain_losses"])[:, -1].mean())

    # M.reference_values (the spec's scratch run) and M.reference_values_paper (the paper's figures)
    means = {(case, which): r[f"{which}_full"].mean(0) for case, r in results.items()
             for which in ("original", "retrained")}
    claims += [c if measurable else {**c, "holds": None} for c in reference_claims(means, len(seeds))]

    # memorisation case: matched-retain comparisons of the paper's β
    if "memorisation" in results:
        r = results["memorisation"]
        bn, bs = float(u.npo_beta.memorisation), float(u.simnpo_beta.memorisation)
        npo, sim = trajectory(r, "npo", bn), trajectory(r, "simnpo", bs)
        d_f1, d_gap, f2_n, f2_s, ranges = [], [], [], [], []
        for k in range(len(seeds)):
            grid, s1, n1 = matched(sim[k], npo[k], 1)
            _, s2, n2 = matched(sim[k], npo[k], 2)
            if grid.size == 0:
                d_f1.append(np.nan)
                d_gap.append(np.nan)
                continue
            ranges.append(f"[{grid[0]:.3g}, {grid[-1]:.3g}]")
            d_f1.append(float(np.mean(s1 - n1)))
            d_gap.append(float(np.mean(np.abs(n1 - n2) - np.abs(s1 - s2))))
            f2_n.append(float(np.mean(n2)))
            f2_s.append(float(np.mean(s2)))
        for k, v in (("simnpo_minus_npo_forget1", d_f1), ("npo_gap_minus_simnpo_gap", d_gap)):
            metrics[f"markov/memorisation/matched/{k}"] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        claims.append(outputs.claim(
            "M.simnpo_forgets_memorised_more",
            f"Memorisation case: at matched retain distance SimNPO (β={bs:g}) has forgotten the strongly memorised "
            f"Forget1 more than NPO (β={bn:g}).",
            paper="SimNPO Fig. 5b: SimNPO's Forget1 reaches 1.0 by retain ≈ 0.2, NPO's needs ≈ 0.29; spec §5a.6 "
                  "scratch run: at retain ≈ 0.19 SimNPO 0.82 vs NPO 0.58",
            ours=f"mean over the matched retain grid of SimNPO − NPO Forget1 KL, per seed {seeds}: "
                 f"{[_fmt(x) for x in d_f1]} (mean {_pm(d_f1)}); grids {ranges}",
            holds=_agree(d_f1) if measurable else None))
        claims.append(outputs.claim(
            "M.simnpo_less_overforgetting",
            f"Memorisation case: at matched retain distance the gap |Forget1 − Forget2| (over-forgetting of the "
            f"never-seen Forget2 relative to Forget1) is smaller for SimNPO (β={bs:g}) than for NPO (β={bn:g}).",
            paper="SimNPO Fig. 5b: NPO's Forget2 shoots to 1.0 by retain ≈ 0.08 while its Forget1 lags; SimNPO's "
                  "Forget2 rises slower (≈ 1.0 at retain ≈ 0.14); spec: at retain ≈ 0.19 Forget2 SimNPO 1.41 vs "
                  "NPO 1.50",
            ours=f"mean over the matched grid of NPO gap − SimNPO gap, per seed: {[_fmt(x) for x in d_gap]} "
                 f"(mean {_pm(d_gap)}); matched-grid mean Forget2 NPO {_pm(f2_n)} vs SimNPO {_pm(f2_s)}",
            holds=_agree(d_gap) if measurable else None))

    # length case: Forget2 (short) reaches the retrained level at a smaller retain distance with SimNPO
    if "length" in results:
        r = results["length"]
        bn, bs = float(u.npo_beta.length), float(u.simnpo_beta.length)
        npo, sim = trajectory(r, "npo", bn), trajectory(r, "simnpo", bs)
        level = r["retrained"][:, 2]
        rn = [retain_at_level(npo[k], 2, level[k]) for k in range(len(seeds))]
        rs = [retain_at_level(sim[k], 2, level[k]) for k in range(len(seeds))]
        diff = [_first_minus_second(a, b) for a, b in zip(rn, rs, strict=True)]
        claims.append(outputs.claim(
            "M.simnpo_short_forget2_at_lower_retain",
            f"Length case: SimNPO (β={bs:g}) brings the short Forget2 to the retrained model's level at a smaller "
            f"retain distance than NPO (β={bn:g}).",
            paper="SimNPO Fig. 5a: SimNPO reaches Forget2 FQ 0.5 at retain ≈ 0.035, NPO only ≈ 0.46 at retain ≈ 0.2; "
                  "spec §5a.7: holds in the scratch run",
            ours=f"retain distance at Forget2 = retrained level, per seed {seeds}: NPO {[_fmt(x) for x in rn]}, "
                 f"SimNPO {[_fmt(x) for x in rs]}",
            holds=_agree(diff) if measurable else None))

        # M.npo_short_sequence: report the NPO Forget1-vs-Forget2 ordering over the β sweep
        lv1 = r["retrained"][:, 1]
        sweep, signs_head = [], []
        for beta in u.npo_betas:
            t = trajectory(r, "npo", float(beta))
            r1 = [retain_at_level(t[k], 1, lv1[k]) for k in range(len(seeds))]
            r2 = [retain_at_level(t[k], 2, level[k]) for k in range(len(seeds))]
            lag = [np.sign(_first_minus_second(b, a)) for a, b in zip(r1, r2, strict=True)]
            sweep.append(f"β={beta:g}: F1 at {[_fmt(x) for x in r1]}, F2 at {[_fmt(x) for x in r2]}")
            if np.isclose(beta, bn):
                signs_head = lag
        if signs_head and all(s > 0 for s in signs_head):
            holds = True
        elif signs_head and all(s < 0 for s in signs_head):
            holds = False
        else:
            holds = None
        claims.append(outputs.claim(
            "M.npo_short_sequence",
            f"Length case (reported, not asserted): NPO under-forgets the short Forget2 — it needs a larger retain "
            f"distance to bring Forget2 than Forget1 to the retrained level (holds = None when seeds disagree; "
            f"judged at the paper's β={bn:g}, the β sweep reported).",
            paper="SimNPO Fig. 5a: NPO reaches FQ 0.5 on Forget1 at retain ≈ 0.037 but only ≈ 0.46 on Forget2 at "
                  "retain ≈ 0.2; spec §5a.6 scratch run could NOT reproduce it (Forget2 rose faster for NPO)",
            ours="retain distance at the retrained level per seed; " + "; ".join(sweep),
            holds=holds if measurable else None))

    # M.ga_collapses: both cases
    rows, ok = [], set(results) == {"length", "memorisation"}
    for case, r in results.items():
        if not config.markov.unlearn.ga:
            ok = False
            continue
        b = config.markov.unlearn
        ga = trajectory(r, "ga")[:, -1, 0]
        npo = trajectory(r, "npo", float(b.npo_beta[case]))[:, -1, 0]
        sim = trajectory(r, "simnpo", float(b.simnpo_beta[case]))[:, -1, 0]
        orig = r["original"][:, 0]
        ratio = ga / np.maximum(npo, sim)
        ok &= bool(np.all(ratio >= GA_FACTOR) and np.all(ga >= 10 * orig))
        rows.append(f"{case}: GA {_pm(ga)}, NPO {_pm(npo)}, SimNPO {_pm(sim)} (original {_pm(orig)})")
    claims.append(outputs.claim(
        "M.ga_collapses",
        f"GA's retain distance after {u.iterations} iterations is ≫ NPO's and SimNPO's in both cases (here: ≥ "
        f"{GA_FACTOR}× both, and ≥ 10× the original model's, for every seed).",
        paper="spec §5a.6: GA retain distance 0.27–0.35 after 10 iterations, > 3 after 50; NPO 1.98 / SimNPO 0.26 "
              "(length), 0.50 / 0.51 (memorisation) after 50",
        ours=f"final retain distance (seed mean ± std): {'; '.join(rows)}",
        holds=(ok if config.markov.unlearn.ga and len(results) == 2 else None) if measurable else None))
    return metrics, _with_missing(claims)


def reference_claims(means: dict, n_seeds: int) -> list[dict]:
    """M.reference_values and M.reference_values_paper from the seed-mean KL triples (retain, Forget1, Forget2)
    `means[(case, "original" | "retrained")]`. For a saved run: `reference_claims(means_from_metrics(m), n)` with
    m the `metrics` of its results.json, e.g. projects/simnpo/figures/results_paper_h100.json."""
    spec_text = ("spec §5a.6: length orig (0.019, 0.048, 0.098), retr (0.0056, 0.476, 0.425); memorisation orig "
                 "(0.024, 0.029, 0.431), retr (0.0035, 0.436, 0.423); " + PAPER_FIGURE)
    paper_text = ("paper Fig. 5a (length): original (0.022, 0.04, 0.10), retrained (0.004, 0.42, 0.44); Fig. 5b "
                  "(memorisation): original (≈0.02, 0.05, 0.42), retrained (0.004, 0.42–0.43, 0.42–0.43)")
    out = []
    for cid, table, source, paper in (
            ("M.reference_values", SPEC_REFERENCE, "the spec's reference table (its single-seed scratch run, §5a.6)",
             spec_text),
            ("M.reference_values_paper", PAPER_REFERENCE, "the paper's figures as the spec reads them (Fig. 5a/5b; "
                                                          "§4.7, §5a.7)", paper_text)):
        rows, ok = [], True
        for key, ours in means.items():
            ref = np.array(table[key])
            rel = np.abs(np.asarray(ours) - ref) / ref
            ok &= bool(np.all(rel <= TOLERANCE))
            rows.append(f"{key[0]} {key[1]}: ({', '.join(_fmt(x) for x in ours)}) vs "
                        f"({', '.join(f'{x:g}' for x in ref)}), max rel. dev. {rel.max():.0%}")
        out.append(outputs.claim(
            cid, f"Original and retrained models' KL to the true transitions (retain, Forget1, Forget2) are within "
                 f"±{TOLERANCE:.0%} of {source}.",
            paper=paper, ours=f"seed mean over {n_seeds} seeds: " + "; ".join(rows), holds=ok))
    return out


def means_from_metrics(metrics: dict) -> dict:
    """The `means` argument of `reference_claims` from a results.json's `markov/<case>/<which>/<split>` metrics."""
    return {(case, which): np.array([metrics[f"markov/{case}/{which}/{split}"]
                                     for split in ("retain", "forget1", "forget2")])
            for case in ("length", "memorisation") for which in ("original", "retrained")
            if f"markov/{case}/{which}/retain" in metrics}


CLAIM_IDS = ("M.reference_values", "M.reference_values_paper",
             "M.simnpo_forgets_memorised_more", "M.simnpo_less_overforgetting",
             "M.simnpo_short_forget2_at_lower_retain", "M.npo_short_sequence", "M.ga_collapses")
_CASE_OF = {"M.simnpo_forgets_memorised_more": "memorisation", "M.simnpo_less_overforgetting": "memorisation",
            "M.simnpo_short_forget2_at_lower_retain": "length", "M.npo_short_sequence": "length"}


def _with_missing(claims: list[dict]) -> list[dict]:
    """Every claim id in CLAIM_IDS order; a claim of a case that was not run is reported with holds = None."""
    have = {c["id"]: c for c in claims}
    out = []
    for cid in CLAIM_IDS:
        out.append(have.get(cid) or outputs.claim(
            cid, f"(needs the {_CASE_OF[cid]} case)", paper="see the full preset", ours=f"not run: the "
            f"{_CASE_OF[cid]} case is not in config.markov.cases", holds=None))
    return out
