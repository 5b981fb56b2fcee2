"""nonreactive_exploration's headline claims (spec AC-N1..N7), computed from the measured numbers.

The paper is theoretical (no experimental numbers); the "paper" column quotes the claim and the spec's
calibration values, which come from the spec author's numpy prototype, not from the paper.
All comparisons are paired over seeds (same MDP, rewards and offline data); CIs are normal 95 %.
"""

from __future__ import annotations

import numpy as np

from harness.outputs import claim
from lib.stats import mean_ci

METHODS = ("rfnpd", "reactive", "behaviour", "uniform", "rfnpd_theory")


def _fmt(m: float, h: float) -> str:
    return f"{m:.4f} ± {h:.4f}"


def per_seed(points: dict, k_off: int, key: str) -> np.ndarray:
    """Suboptimality averaged over rewards: `[N, M, B]` (or `[N]` for the offline-only arrays)."""
    return points[k_off][key].mean(-1)


def compute(config, points: dict) -> tuple[dict, list[dict]]:
    budgets = list(config.online.budgets)
    k_off = config.offline.episodes
    pt = points[k_off]
    M = {m: i for i, m in enumerate(METHODS)}
    bench = per_seed(points, k_off, "sub_dag")  # [N, M, B]: the benchmark metric, inside P†
    true = per_seed(points, k_off, "sub_true")
    worst = pt["sub_dag"].max(-1)  # worst reward, [N, M, B]
    frac = pt["visit_frac"]  # [N, M, B, 3]
    metrics: dict = {"root_seed": config.seed, "num_seeds": config.num_seeds, "offline_episodes": k_off}

    for m, i in M.items():
        for j, b in enumerate(budgets):
            for name, arr in (("bench", bench), ("true", true), ("worst_bench", worst),
                              ("pooled_bench", pt["pooled_sub_dag"].mean(-1)),
                              ("pooled_true", pt["pooled_sub_true"].mean(-1))):
                metrics[f"{m}/K{b}/{name}"], metrics[f"{m}/K{b}/{name}_ci95"] = mean_ci(arr[:, i, j])
            metrics[f"{m}/K{b}/frac_B"] = float(frac[:, i, j, 2].mean())
    for name in ("offline_sub_dag", "offline_sub_true"):
        metrics[f"offline_only/{name.split('_', 1)[1]}"] = float(pt[name].mean())
    metrics["coverage_gap"] = float(pt["coverage_gap"].mean())
    metrics["design_frac_B_exact"] = float(pt["design_b_share_exact"].mean())
    metrics["offline_frac_B"] = float(pt["offline_visit_frac"][:, 2].mean())
    metrics["supported_pairs"] = float(pt["supported_pairs"].mean())
    metrics["supported_pairs_B"] = float(pt["supported_pairs_b"].mean())
    claims = []

    def has(*bs):
        return all(b in budgets for b in bs)

    def at(b):
        return budgets.index(b)

    # ---- N1: where the online visits land (all E = max budget episodes)
    fb = {m: float(frac[:, M[m], -1, 2].mean()) for m in METHODS}
    base = max(fb["behaviour"], fb["uniform"])
    claims.append(claim(
        "N1.design_targets_low_coverage",
        "The design sends ≥ 15 % of online visits to the thinly covered region B, ≥ 10× behaviour and uniform",
        paper="spec calibration: RF-NPD 0.25 vs behaviour/uniform 0.013",
        ours=(f"share of visits in B over {budgets[-1]} episodes: RF-NPD {fb['rfnpd']:.3f} (exact occupancy "
              f"{metrics['design_frac_B_exact']:.3f}), behaviour {fb['behaviour']:.3f}, uniform {fb['uniform']:.3f} "
              f"({fb['rfnpd'] / max(base, 1e-12):.0f}×); reactive {fb['reactive']:.3f}"),
        holds=fb["rfnpd"] >= 0.15 and fb["rfnpd"] >= 10 * base))

    # ---- N2: benchmark suboptimality inside P†, paired CIs against behaviour and uniform
    if has(25, 100, 400):
        parts, ok = [], True
        for b in (25, 100, 400):
            row = []
            for other in ("behaviour", "uniform"):
                d = bench[:, M[other], at(b)] - bench[:, M["rfnpd"], at(b)]
                dm, dh = mean_ci(d)
                ok &= dm - dh > 0
                metrics[f"N2/K{b}/{other}_minus_rfnpd"], metrics[f"N2/K{b}/{other}_minus_rfnpd_ci95"] = dm, dh
                row.append(f"{other} {bench[:, M[other], at(b)].mean():.4f} (Δ {_fmt(dm, dh)})")
            parts.append(f"K={b}: RF-NPD {_fmt(*mean_ci(bench[:, M['rfnpd'], at(b)]))} vs " + ", ".join(row))
        r100, b100 = bench[:, M["rfnpd"], at(100)].mean(), bench[:, M["behaviour"], at(100)].mean()
        ok &= r100 <= 0.012 and b100 >= 0.025
        claims.append(claim(
            "N2.beats_behaviour_and_uniform_in_sparsified_mdp",
            "Inside the true sparsified MDP P†, RF-NPD's normalized suboptimality (mean over 20 rewards) is below "
            "behaviour's and uniform's at K_de ∈ {25, 100, 400}, paired 95 % CIs excluding 0; at 100: RF-NPD ≤ "
            "0.012, behaviour ≥ 0.025",
            paper="spec calibration (30 seeds): 0.032/0.006/0.001 vs behaviour 0.064/0.041/0.022, "
                  "uniform 0.071/0.048/0.026",
            ours="; ".join(parts), holds=ok))
    else:
        claims.append(claim("N2.beats_behaviour_and_uniform_in_sparsified_mdp", "RF-NPD below baselines in P†",
                            paper="-", ours=f"budgets {budgets} lack 25/100/400", holds=None))

    # ---- N3: rate
    fit_b = [b for b in budgets if b <= 1600]
    r = np.array([bench[:, M["rfnpd"], at(b)].mean() for b in fit_b])
    if len(fit_b) >= 3:
        slope = float(np.polyfit(np.log(fit_b), np.log(r), 1)[0])
        mono = bool(np.all(np.diff(r) < 0))
        metrics["N3/loglog_slope"] = slope
        claims.append(claim(
            "N3.epsilon_rate",
            f"RF-NPD's benchmark suboptimality decreases monotonically in K_de and its log-log slope over "
            f"K_de ∈ {{{fit_b[0]}, …, {fit_b[-1]}}} is ≤ −0.5",
            paper="ε ∝ 1/√K (reward-free rate); spec calibration 0.032 → 0.0004 over 25 → 1600",
            ours=f"slope {slope:.2f}; " + ", ".join(f"{b}: {v:.4f}" for b, v in zip(fit_b, r, strict=True)),
            holds=mono and slope <= -0.5))
    else:
        claims.append(claim("N3.epsilon_rate", "log-log slope ≤ −0.5", paper="-",
                            ours=f"budgets {budgets}: too few for a fit", holds=None))

    # ---- N4: non-reactive ≈ reactive, true MDP
    if has(100, 400):
        gaps = {b: float(abs(true[:, M["rfnpd"], at(b)].mean() - true[:, M["reactive"], at(b)].mean()))
                for b in (100, 400)}
        claims.append(claim(
            "N4.nonreactive_matches_reactive",
            "In the true MDP, |RF-NPD − reactive explorer| normalized suboptimality ≤ 0.005 at K_de ∈ {100, 400}",
            paper="spec calibration: ≤ 0.001 (0.037 vs 0.037, 0.034 vs 0.033)",
            ours="; ".join(f"K={b}: RF-NPD {true[:, M['rfnpd'], at(b)].mean():.4f} vs reactive "
                           f"{true[:, M['reactive'], at(b)].mean():.4f} (|Δ| {g:.4f})" for b, g in gaps.items()),
            holds=all(g <= 0.005 for g in gaps.values())))
    else:
        claims.append(claim("N4.nonreactive_matches_reactive", "RF-NPD ≈ reactive", paper="-",
                            ours=f"budgets {budgets} lack 100/400", holds=None))

    # ---- N5: data efficiency
    if has(100):
        target = bench[:, M["rfnpd"], at(100)].mean()
        beh = [bench[:, M["behaviour"], at(b)].mean() for b in budgets]
        match = next((b for b, v in zip(budgets, beh, strict=True) if v <= target), None)
        metrics["N5/behaviour_episodes_to_match"] = match if match is not None else f"> {budgets[-1]}"
        ratio = (match if match is not None else budgets[-1]) / 100
        claims.append(claim(
            "N5.data_efficiency_vs_behaviour",
            "Behaviour redeploy needs ≥ 4× the online episodes (≥ 400) to match RF-NPD's benchmark suboptimality "
            "at K_de = 100",
            paper="spec calibration: ≈ 1600 episodes (16×)",
            ours=(f"RF-NPD at 100: {target:.4f}; behaviour reaches it at K_de = "
                  f"{match if match is not None else f'> {budgets[-1]} (not within the grid)'} "
                  f"({'≥ ' if match is None else ''}{ratio:.0f}×); behaviour: "
                  + ", ".join(f"{b}: {v:.4f}" for b, v in zip(budgets, beh, strict=True))),
            holds=(match >= 400) if match is not None else (True if budgets[-1] >= 400 else None)))
    else:
        claims.append(claim("N5.data_efficiency_vs_behaviour", "≥ 4× episodes", paper="-",
                            ours="budget 100 not in this preset", holds=None))

    # ---- N6: local coverage, K_off sweep (paired over seeds)
    sweep = sorted(config.offline.sweep)
    cb = config.claims.coverage_budget
    lo, hi = sweep[0], sweep[-1]
    gap = {k: points[k]["coverage_gap"].mean(-1) for k in sweep}  # [N]
    rt = {k: per_seed(points, k, "sub_true")[:, M["rfnpd"], at(cb)] for k in sweep}
    for k in sweep:
        metrics[f"N6/K_off{k}/coverage_gap"] = float(gap[k].mean())
        metrics[f"N6/K_off{k}/rfnpd_true_K{cb}"] = float(rt[k].mean())
        metrics[f"N6/K_off{k}/rfnpd_bench_K{cb}"] = float(per_seed(points, k, "sub_dag")[:, M["rfnpd"], at(cb)].mean())
        metrics[f"N6/K_off{k}/offline_only_true"] = float(points[k]["offline_sub_true"].mean())
    dg, dgh = mean_ci(gap[lo] - gap[hi])
    dr, drh = mean_ci(rt[lo] - rt[hi])
    claims.append(claim(
        "N6.local_coverage",
        f"More offline data (K_off {lo} → {hi}) shrinks the coverage gap (V* − V*_P†)/H and RF-NPD's true-MDP "
        f"suboptimality at K_de = {cb} (sign of the paired difference; CI reported)",
        paper="the guarantee is relative to the offline data's local coverage (not calibrated in the spec)",
        ours=("coverage gap " + " → ".join(f"{gap[k].mean():.4f}" for k in sweep) + f" (Δ {_fmt(dg, dgh)}); "
              f"RF-NPD true subopt. " + " → ".join(f"{rt[k].mean():.4f}" for k in sweep) + f" (Δ {_fmt(dr, drh)})"),
        holds=(dg > 0 and dr > 0) if lo < hi else None))

    # ---- N7: the theoretical bonus degenerates at this scale
    if has(100):
        th, un = true[:, M["rfnpd_theory"], at(100)], true[:, M["uniform"], at(100)]
        d, dh = mean_ci(un - th)  # > 0 would mean the theory design is better than uniform
        claims.append(claim(
            "N7.theory_bonus_degenerates",
            "With the theory's bonus (saturated at this scale) the design is no better than uniform: B share ≤ 0.05 "
            "and true-MDP suboptimality at K_de = 100 not significantly below uniform's",
            paper="spec calibration: B share ≈ 0.01, 0.093 vs β-scaled 0.037 (uniform 0.086)",
            ours=(f"B share {fb['rfnpd_theory']:.3f}; true subopt. at 100: theory-bonus {th.mean():.4f} vs uniform "
                  f"{un.mean():.4f} (uniform − theory {_fmt(d, dh)}) vs RF-NPD with the configured "
                  f"{config.design.bonus!r} bonus "
                  f"{true[:, M['rfnpd'], at(100)].mean():.4f}"),
            holds=fb["rfnpd_theory"] <= 0.05 and d - dh <= 0))
    else:
        claims.append(claim("N7.theory_bonus_degenerates", "theory bonus degenerates", paper="-",
                            ours="budget 100 not in this preset", holds=None))
    return metrics, claims
