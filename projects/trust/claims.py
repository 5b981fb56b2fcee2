"""trust's headline claims (spec §5.2 AC-T1..T7 and §5.3), computed from the per-seed results.

The paper's own numbers could not be read: the "paper" column gives the paper's qualitative claim and
the spec's threshold with the value of the spec's numpy calibration prototype ([C], not the paper's).
"""

from __future__ import annotations

import numpy as np

from harness.outputs import claim
from lib.stats import mean_ci

METHODS = ("trust", "lcb", "greedy")
SATURATION_SPEC = {100: 2.50, 1000: 3.24}  # spec §2.2 [C]: E[max η − mean η], σ = 1, N = 1


def scaling_name(d: int) -> str:
    """The d-scaling instance (AC-T5): half01 with N = 1, σ = 1."""
    return f"half01_s1_d{d}_n1"


def summarise(r: dict) -> dict:
    """Per-instance numbers: value mean/se/q01/q05 per method, certificates, paired TRUST − LCB, coverage."""
    inst = r["instance"]
    means, counts = inst["means"], inst["counts"]
    mu = counts / counts.sum()
    s = {"v_star": float(means[counts > 0].max()), "v_behaviour": float(mu @ means), "d": int(means.size)}
    for m in METHODS:
        v = np.asarray(r[f"v_{m}"])
        s[f"{m}/mean"], s[f"{m}/ci95"] = mean_ci(v)
        s[f"{m}/q01"], s[f"{m}/q05"] = float(np.quantile(v, 0.01)), float(np.quantile(v, 0.05))
    for m in ("trust", "lcb", "behaviour"):
        s[f"{m}/cert_mean"] = float(np.mean(r[f"c_{m}"]))
    s["trust/cert_coverage"] = float(np.mean(r["v_trust"] >= r["c_trust"]))
    s["lcb/cert_coverage"] = float(np.mean(r["v_lcb"] >= r["c_lcb"]))
    s["trust/frac_at_least_behaviour"] = float(np.mean(r["v_trust"] >= s["v_behaviour"] - 1e-12))
    s["trust/frac_leaves_behaviour"] = float(np.mean(r["index"] > 0))
    s["trust/mean_improvement"] = float(np.mean(r["v_trust"]) - s["v_behaviour"])
    s["trust_minus_lcb/mean"], s["trust_minus_lcb/ci95"] = mean_ci(r["v_trust"] - r["v_lcb"])
    s["seconds"] = float(r["seconds"] + r["g_seconds"])
    s["compile_seconds"] = float(r["compile_seconds"] + r["g_compile_seconds"])
    return s


def _na(cid: str, text: str, paper: str, missing) -> dict:
    return claim(cid, text, paper=paper, ours=f"instance(s) {missing} not in this preset", holds=None)


def mc_saturation(d: int, *, draws: int = 20_000, seed: int = 0) -> float:
    """Independent numpy Monte Carlo of E[max_i η_i − mean_i η_i], η ~ N(0, I_d) (what Ĝ saturates at for
    N = 1, σ = 1, ε ≥ ε_max)."""
    rng = np.random.default_rng(seed)
    total, done = 0.0, 0
    while done < draws:
        b = min(2000, draws - done)
        eta = rng.standard_normal((b, d))
        total += float(np.sum(eta.max(1) - eta.mean(1)))
        done += b
    return total / draws


def compute(config, results: dict, solver: dict, rl: dict | None) -> tuple[dict, list[dict]]:
    delta = float(config.delta)
    summ = {name: summarise(r) for name, r in results.items()}
    metrics: dict = {"root_seed": config.seed, "num_seeds": config.num_seeds, "delta": delta}
    for name, s in summ.items():
        for k, v in s.items():
            metrics[f"{name}/{k}"] = v
    claims = []

    # ---- AC-T1: data-starved win on trap-half
    name = "trap_half_s0.5_d1000_n10000"
    text = ("trap-half (σ=0.5, d=1000, N0=10⁴): mean V(TRUST) − V(LCB) ≥ 0.20 with paired 95% CI > 0, "
            "suboptimality ≤ 0.08, q05 V(TRUST) ≥ 0.85 and q05 V(LCB) ≤ 0.35")
    paper = ("TRUST ≫ LCB when few samples per arm (paper, qualitative); spec prototype +0.336 ± 0.022, "
             "subopt 0.025, q05 0.932 vs 0.300")
    if name in summ:
        s = summ[name]
        diff, ci = s["trust_minus_lcb/mean"], s["trust_minus_lcb/ci95"]
        sub = s["v_star"] - s["trust/mean"]
        claims.append(claim("T1.data_starved_win", text, paper=paper,
                            ours=f"{diff:+.3f} ± {ci:.3f}; subopt {sub:.3f}; q05 {s['trust/q05']:.3f} vs "
                                 f"{s['lcb/q05']:.3f} (TRUST {s['trust/mean']:.3f}, LCB {s['lcb/mean']:.3f})",
                            holds=diff >= 0.20 and diff - ci > 0 and sub <= 0.08 and s["trust/q05"] >= 0.85
                            and s["lcb/q05"] <= 0.35))
    else:
        claims.append(_na("T1.data_starved_win", text, paper, name))
    name = "trap_half_s1_d1000_n10000"
    text = "trap-half with σ=1.0: mean V(TRUST) − V(LCB) ≥ 0.30 with paired 95% CI > 0"
    paper = "spec prototype +0.44"
    if name in summ:
        s = summ[name]
        diff, ci = s["trust_minus_lcb/mean"], s["trust_minus_lcb/ci95"]
        claims.append(claim("T1.data_starved_win_sigma1", text, paper=paper, ours=f"{diff:+.3f} ± {ci:.3f}",
                            holds=diff >= 0.30 and diff - ci > 0))
    else:
        claims.append(_na("T1.data_starved_win_sigma1", text, paper, name))

    # ---- AC-T2: safety on every instance
    safe = {n: s["trust/frac_at_least_behaviour"] for n, s in summ.items()}
    cov = {n: s["trust/cert_coverage"] for n, s in summ.items()}
    worst_safe, worst_cov = min(safe, key=safe.get), min(cov, key=cov.get)
    claims.append(claim(
        "T2.safety_every_instance",
        f"On every instance ({len(summ)}), P(V(TRUST) ≥ V(μ)) ≥ 1−δ and certificate coverage P(V ≥ cert) ≥ 1−δ "
        f"(δ={delta:g})",
        paper="relative pessimism gives V(π̂) ≥ V(μ) and an actionable lower bound w.p. 1−δ; prototype ≥ 0.99, 1.00",
        ours=f"min P(V ≥ V(μ)) {safe[worst_safe]:.3f} ({worst_safe}); min coverage {cov[worst_cov]:.3f} "
             f"({worst_cov})",
        holds=safe[worst_safe] >= 1 - delta and cov[worst_cov] >= 1 - delta))

    # ---- AC-T3: one sample per arm, equal counts: certificates and lower quantiles
    name = "half01_s1_d1000_n1"
    text = ("half01 (N=1, σ=1, d=1000): mean cert(TRUST) ≥ 0.35 while mean cert(LCB) ≤ 0; "
            "q01 V(TRUST) ≥ V(μ) − 0.01 while q01 V(LCB) ≤ 0.1")
    paper = "reliable decisions with one sample per arm (paper); prototype cert 0.437 vs −0.41, q01 0.50 vs 0.0"
    if name in summ:
        s = summ[name]
        claims.append(claim(
            "T3.one_sample_certificate", text, paper=paper,
            ours=f"cert {s['trust/cert_mean']:.3f} vs {s['lcb/cert_mean']:.3f}; q01 {s['trust/q01']:.3f} vs "
                 f"{s['lcb/q01']:.3f}",
            holds=s["trust/cert_mean"] >= 0.35 and s["lcb/cert_mean"] <= 0
            and s["trust/q01"] >= s["v_behaviour"] - 0.01 and s["lcb/q01"] <= 0.1))
    else:
        claims.append(_na("T3.one_sample_certificate", text, paper, name))

    # ---- AC-T4: minimax parity of certificates
    names = ["minimax_d2_n100_gap0.2", "minimax_d10_n100_gap0.2"]
    text = "minimax (d ∈ {2, 10}, N=100, gap 0.2): |mean cert(TRUST) − mean cert(LCB)| ≤ 0.06"
    paper = "sample complexity comparable to LCB on minimax problems (paper); prototype 0.007 and 0.043"
    if all(n in summ for n in names):
        gaps = [abs(summ[n]["trust/cert_mean"] - summ[n]["lcb/cert_mean"]) for n in names]
        claims.append(claim(
            "T4.minimax_certificate_parity", text, paper=paper,
            ours="; ".join(f"d={summ[n]['d']}: {summ[n]['trust/cert_mean']:.3f} vs {summ[n]['lcb/cert_mean']:.3f} "
                           f"(|Δ| {g:.3f})" for n, g in zip(names, gaps, strict=True)),
            holds=max(gaps) <= 0.06))
    else:
        claims.append(_na("T4.minimax_certificate_parity", text, paper, [n for n in names if n not in summ]))

    # ---- AC-T5: localization / scaling in d
    ds = sorted(config.scaling_ds)
    names = [scaling_name(d) for d in ds]
    imp = [summ[n]["trust/mean_improvement"] for n in names]
    leave = [summ[n]["trust/frac_leaves_behaviour"] for n in names]
    text = (f"half01 (N=1, σ=1): TRUST's mean improvement V(π̂) − V(μ) is non-decreasing in d ∈ {ds} "
            "and the fraction of seeds leaving μ grows")
    paper = "prototype improvement ≈ 0.00, 0.13, 0.36 and fraction 0.00, 0.73, 1.00 at d = 100, 1000, 10⁴"
    claims.append(claim(
        "T5.localization_scaling", text, paper=paper,
        ours="; ".join(f"d={d}: +{i:.3f} ({f:.2f})" for d, i, f in zip(ds, imp, leave, strict=True)),
        holds=(bool(np.all(np.diff(imp) >= -1e-12)) and bool(np.all(np.diff(leave) >= 0))
               and leave[-1] > leave[0]) if len(ds) > 1 else None))

    # ---- AC-T6: numerics
    parts, ok = [], []
    for d, spec_sat in SATURATION_SPEC.items():
        n = scaling_name(d)
        if n not in results:
            continue
        grid, g = np.asarray(results[n]["grid"]), np.asarray(results[n]["g_mean"])
        slope, sat, mc = g[0] / grid[0], g[-1], mc_saturation(d, seed=config.seed)
        rel_slope, rel_sat, rel_spec = slope / np.sqrt(d - 1) - 1, sat / mc - 1, sat / spec_sat - 1
        metrics[f"complexity/d{d}/slope"], metrics[f"complexity/d{d}/saturation"] = float(slope), float(sat)
        metrics[f"complexity/d{d}/saturation_numpy_mc"] = mc
        parts.append(f"d={d}: slope {slope:.2f} vs √(d−1)={np.sqrt(d - 1):.2f} ({100 * rel_slope:+.1f}%), "
                     f"saturation {sat:.3f} vs MC {mc:.3f} ({100 * rel_sat:+.1f}%) / spec {spec_sat} "
                     f"({100 * rel_spec:+.1f}%)")
        ok.append(abs(rel_slope) <= 0.02 and abs(rel_sat) <= 0.02 and abs(rel_spec) <= 0.02)
    claims.append(claim(
        "T6.complexity_slope_saturation",
        "Ĝ (σ=1, N=1) has small-ε slope within 2% of √(d−1) and saturates within 2% of E[max η − mean η]",
        paper="spec [C]: slope 9.92 / 31.6, saturation 2.50 / 3.24 at d = 100 / 1000",
        ours="; ".join(parts) or "d = 100 and 1000 not in this preset", holds=all(ok) if ok else None))
    metrics.update({f"solver/{k}": v for k, v in solver.items()})
    claims.append(claim(
        "T6.solver_matches_slsqp",
        f"TRLinMax matches scipy SLSQP on {solver['instances']} random instances (d ≤ 8) within 1e-6 in objective, "
        "infeasibility < 1e-8",
        paper="spec AC-T6 (SOCP; paper cites Alizadeh & Goldfarb)",
        ours=f"max gap exact {solver['max_gap_exact']:.1e}, nested bisection {solver['max_gap_general']:.1e}; "
             f"infeasibility {solver['max_infeasibility']:.1e}",
        holds=(solver["max_gap_exact"] <= 1e-6 and solver["max_gap_general"] <= 1e-6
               and solver["max_infeasibility"] < 1e-8) if solver["instances"] else None))

    # ---- expected non-result (spec pitfall 1)
    names = [n for n in ("half01_s1_d1000_n1", "u01_s0.5_d1000_n1") if n in summ]
    text = ("Expected NON-result: with equal counts TRUST's mean value is ≤ LCB's (= greedy, Bayes-optimal under "
            "a permutation prior); holds = the non-result is observed")
    paper = "spec §6 pitfall 1 (derived); prototype half01 0.63 vs 0.96, U01 0.651 vs 0.848"
    if names:
        claims.append(claim(
            "T7.equal_counts_nonresult", text, paper=paper,
            ours="; ".join(f"{n}: {summ[n]['trust/mean']:.3f} vs {summ[n]['lcb/mean']:.3f}" for n in names),
            holds=all(summ[n]["trust/mean"] <= summ[n]["lcb/mean"] for n in names)))
    else:
        claims.append(_na("T7.equal_counts_nonresult", text, paper, "half01/u01 at d=1000"))

    # ---- speed
    small = [n for n, s in summ.items() if s["d"] <= 1001]
    secs = sum(summ[n]["seconds"] for n in small)
    comp = sum(summ[n]["compile_seconds"] for n in small)
    metrics["suite_seconds_d_le_1000"], metrics["suite_compile_seconds_d_le_1000"] = secs, comp
    claims.append(claim(
        "T8.suite_under_a_minute",
        f"The bandit suite with d ≤ 1000 ({len(small)} instances × {config.num_seeds} seeds, Ĝ included) runs "
        "in under 60 s after compilation",
        paper="spec: numpy prototype ~55 s per d=1000 instance",
        ours=f"{secs:.1f} s (+ {comp:.1f} s compilation)",
        holds=secs < 60 if config.num_seeds >= 1000 else None))

    # ---- offline RL
    claims.extend(_rl_claims(config, rl, metrics))
    return metrics, claims


def _rl_claims(config, rl: dict | None, metrics: dict) -> list[dict]:
    text = ("Offline RL with known logging policies (tabular MDP, 1 episode per exploratory policy): "
            "P(V(TRUST) ≥ V(behaviour mixture)) ≥ 0.9, paired 95% CI of V(TRUST) − V(LCB) above 0, coverage ≥ 0.9")
    paper = "TRUST applies to offline RL with known logging policies (paper, qualitative); spec §5.3 thresholds"
    text2 = ("Offline RL: TRUST improves on the behaviour mixture it starts from (paired 95% CI of "
             "V(TRUST) − V(μ) above 0), at the spec's σ = 1/2")
    paper2 = "not a spec criterion: added because the spec's three are met by μ itself (see ours)"
    if rl is None:
        return [claim("RL.logging_policy_mixture", text, paper=paper, ours="offline_rl disabled", holds=None),
                claim("RL.improves_on_behaviour", text2, paper=paper2, ours="offline_rl disabled", holds=None)]
    v_mu = float(rl["v_behaviour"])
    frac = float(np.mean(rl["v_trust"] >= v_mu - 1e-12))
    diff, ci = mean_ci(rl["v_trust"] - rl["v_lcb"])
    imp, imp_ci = mean_ci(rl["v_trust"] - v_mu)
    cov = float(np.mean(rl["v_trust"] >= rl["c_trust"]))
    cov_plug = float(np.mean(rl["v_trust_plugin"] >= rl["c_trust_plugin"]))
    pool = float(np.mean(rl["means"][1:]))
    gap = float(rl["v_best_logging"] - rl["v_default"])
    m = {"v_optimal": float(rl["v_optimal"]), "v_best_logging": float(rl["v_best_logging"]),
         "v_default": float(rl["v_default"]), "v_pool_mean": pool, "v_behaviour": v_mu,
         "trust/mean": float(np.mean(rl["v_trust"])), "lcb/mean": float(np.mean(rl["v_lcb"])),
         "greedy/mean": float(np.mean(rl["v_greedy"])), "trust/cert_mean": float(np.mean(rl["c_trust"])),
         "lcb/cert_mean": float(np.mean(rl["c_lcb"])), "trust/cert_coverage": cov,
         "trust/frac_at_least_behaviour": frac, "trust_minus_lcb/mean": diff, "trust_minus_lcb/ci95": ci,
         "trust_minus_behaviour/mean": imp, "trust_minus_behaviour/ci95": imp_ci,
         "trust/frac_leaves_behaviour": float(np.mean(rl["index"] > 0)),
         "trust_plugin/mean": float(np.mean(rl["v_trust_plugin"])), "trust_plugin/cert_coverage": cov_plug,
         "trust_plugin/frac_leaves_behaviour": float(np.mean(rl["index_plugin"] > 0)),
         "sigma_plugin/mean": float(np.mean(rl["sigma_plugin"])), "seconds": float(rl["seconds"])}
    metrics.update({f"offline_rl/{k}": v for k, v in m.items()})
    trap_like = gap >= 0.1 and pool > float(rl["v_default"])  # calibration: is there a trap to escape?
    ours = (f"calibration: V(default) {m['v_default']:.3f}, pool mean {pool:.3f}, best {m['v_best_logging']:.3f}, "
            f"V(μ) {v_mu:.3f}; P(V ≥ V(μ)) {frac:.3f}; TRUST − LCB {diff:+.3f} ± {ci:.3f} (TRUST "
            f"{m['trust/mean']:.3f}, LCB {m['lcb/mean']:.3f}); coverage {cov:.3f}")
    ours2 = (f"V(TRUST) − V(μ) {imp:+.4f} ± {imp_ci:.4f}; TRUST leaves μ in {m['trust/frac_leaves_behaviour']:.0%} "
             f"of seeds. Sensitivity, plug-in σ̂ ≈ {m['sigma_plugin/mean']:.2f} (default policy's return std): "
             f"V {m['trust_plugin/mean']:.3f}, leaves μ in {m['trust_plugin/frac_leaves_behaviour']:.0%}, coverage "
             f"{cov_plug:.3f}")
    return [claim("RL.logging_policy_mixture", text, paper=paper, ours=ours,
                  holds=(frac >= 0.9 and diff - ci > 0 and cov >= 0.9) if trap_like else None),
            claim("RL.improves_on_behaviour", text2, paper=paper2, ours=ours2, holds=imp - imp_ci > 1e-9)]
