"""ltb_icl's headline claims (spec criteria B0–B3), computed from measured numbers.

The paper's own experimental numbers are not known (its body was not available); the "paper"
column quotes the paper's claim and the closed-form / reference-run values of the spec.
"""

from __future__ import annotations

import jax
import numpy as np

from harness.outputs import claim
from lib import icl
from lib.stats import mean_ci
from projects.ltb_icl import theory

TOL = 0.02  # "within 2 %" of the closed-form optimum


def compute(config, risks: dict, ref: dict, read: dict) -> tuple[dict, list[dict]]:
    norms = list(config.data.beta_star_norms)
    Ms = list(config.data.context_lengths)
    d = config.data.d
    metrics: dict = {"root_seed": config.seed, "num_seeds": config.num_seeds}
    claims = []

    # ---- B2 numbers: risks [S, K, 2] per M
    for M in Ms:
        r, rf = risks[f"M{M}"], ref[f"M{M}"]
        metrics[f"M{M}/gd_beta_optimum"] = rf["gd_beta"]
        metrics[f"M{M}/bayes"] = rf["bayes"]
        for k, n in enumerate(norms):
            metrics[f"M{M}/norm{n:g}/gd0_optimum"] = rf["gd0"][k]
            for m, model in enumerate(("lsa", "ltb")):
                mean, ci = mean_ci(r[:, k, m])
                metrics[f"M{M}/norm{n:g}/{model}"] = mean
                metrics[f"M{M}/norm{n:g}/{model}_ci95"] = ci

    M0 = Ms[0]
    r0, rf0 = risks[f"M{M0}"], ref[f"M{M0}"]
    opt = rf0["gd_beta"]
    ltb = r0[:, :, 1].mean(0)
    lsa = r0[:, :, 0].mean(0)
    ci = {model: [metrics[f"M{M0}/norm{n:g}/{model}_ci95"] for n in norms] for model in ("lsa", "ltb")}
    ltb_rel = np.abs(ltb - opt) / opt
    claims.append(claim(
        "B2.ltb_reaches_gd_beta_optimum",
        f"Trained LTB's ICL risk is within {TOL:.0%} of the closed-form optimal GD-β risk for every β* (M={M0})",
        paper=f"LTB attains the optimal GD-β risk, independent of β* (closed form R*={opt:.3f}; spec run 2.301-2.304)",
        ours="; ".join(f"‖β*‖={n:g}: {ltb[k]:.3f} ± {ci['ltb'][k]:.3f} ({100 * ltb_rel[k]:+.2f}%)"
                       for k, n in enumerate(norms)),
        holds=bool(np.all(ltb_rel <= TOL))))

    if 0.0 in norms:
        k0 = norms.index(0.0)
        rel = abs(lsa[k0] - opt) / opt
        claims.append(claim(
            "B2.lsa_optimal_at_zero_mean",
            f"At β* = 0 linear attention alone also reaches the GD-β optimum (within {TOL:.0%})",
            paper=f"LSA = GD-0 is optimal for zero-mean priors (R*={opt:.3f}; spec run 2.303)",
            ours=f"{lsa[k0]:.3f} ± {ci['lsa'][k0]:.3f} ({100 * rel:+.2f}%)", holds=rel <= TOL))
    else:
        claims.append(claim("B2.lsa_optimal_at_zero_mean", "LSA optimal at β* = 0", paper="-",
                            ours="β* = 0 not in this preset", holds=None))

    gaps = lsa - opt
    thresholds = {2.0: 0.4, 4.0: 1.5}
    checks = [gaps[norms.index(n)] >= t for n, t in thresholds.items() if n in norms]
    increasing = bool(np.all(np.diff(gaps[np.argsort(norms)]) > 0)) if len(norms) > 1 else None
    claims.append(claim(
        "B2.lsa_additive_gap",
        "Linear attention alone keeps an additive gap above the GD-β optimum that grows with ‖β*‖ "
        "(≥ 0.4 at ‖β*‖=2, ≥ 1.5 at ‖β*‖=4)",
        paper="LSA pays an irreducible approximation error for non-zero-mean priors (spec run: 0.63, 2.37)",
        ours="; ".join(f"‖β*‖={n:g}: gap {gaps[k]:.3f} ± {ci['lsa'][k]:.3f}" for k, n in enumerate(norms)),
        holds=(bool(all(checks)) and bool(increasing)) if checks and increasing is not None else None))

    gd0 = np.array(rf0["gd0"])
    claims.append(claim(
        "B2.lsa_between_gd_beta_and_gd0",
        f"Trained LSA is never worse than its GD-0 sub-model (R_LSA ≤ (1+{TOL}) R*_GD0 for every β*)",
        paper="LSA ⊇ GD-0 (spec run: LSA slightly below R*_GD0)",
        ours="; ".join(f"‖β*‖={n:g}: {lsa[k]:.3f} vs {gd0[k]:.3f}" for k, n in enumerate(norms)),
        holds=bool(np.all(lsa <= (1 + TOL) * gd0))))

    # ---- M-scaling: the gap relative to the Bayes excess risk does not shrink with more context
    n_big = max(norms)
    kb = norms.index(n_big)
    if len(Ms) > 1 and n_big > 0:
        ratios, parts = [], []
        for M in Ms:
            rM, rfM = risks[f"M{M}"], ref[f"M{M}"]
            gap = rM[:, kb, 0].mean() - rfM["gd_beta"]
            ratio = gap / (rfM["bayes"] - config.data.sigma2)
            ltb_ok = abs(rM[:, kb, 1].mean() - rfM["gd_beta"]) / rfM["gd_beta"] <= TOL
            ratios.append(ratio)
            parts.append(f"M={M}: gap {gap:.2f} = {ratio:.1f}× Bayes excess, LTB "
                         f"{rM[:, kb, 1].mean():.3f} vs {rfM['gd_beta']:.3f}{'' if ltb_ok else ' (off)'}")
            metrics[f"M{M}/norm{n_big:g}/lsa_gap_over_bayes_excess"] = float(ratio)
        ltb_all = all(abs(risks[f"M{M}"][:, kb, 1].mean() - ref[f"M{M}"]["gd_beta"]) / ref[f"M{M}"]["gd_beta"]
                      <= TOL for M in Ms)
        claims.append(claim(
            "B2.gap_does_not_vanish_with_context",
            f"At ‖β*‖={n_big:g} the LSA gap, relative to the Bayes excess risk, does not shrink as M grows, "
            "while LTB stays at the GD-β optimum",
            paper="additive error irreducible relative to Bayes excess (spec: 7× at M=20 → 11× at M=40)",
            ours="; ".join(parts), holds=bool(np.all(np.diff(ratios) >= 0)) and ltb_all))

    # ---- LTB read as GD-β
    rd = read[f"M{M0}"]  # leaves [S, K, 2, ...]
    betas = np.asarray(norms)[:, None] * np.ones((1, d)) / np.sqrt(d)
    gamma_opt, _ = icl.gd_beta_optimum(H=np.eye(d), psi=config.data.psi * np.eye(d), sigma2=config.data.sigma2,
                                       n_context=M0)
    gamma_opt = np.asarray(gamma_opt)
    e_direct = np.linalg.norm(rd["beta0_direct"][:, :, 1] - betas[None], axis=-1)  # [S, K]
    e_attn = np.linalg.norm(rd["beta0_attn"][:, :, 1] - betas[None], axis=-1)
    e_gamma = np.linalg.norm(rd["gamma"][:, :, 1] - gamma_opt, axis=(-2, -1)) / np.linalg.norm(gamma_opt)
    coupling = np.linalg.norm(rd["y_coupling"][:, :, 1], axis=-1)
    implied = np.array([[float(icl.gd_beta_risk(rd["beta0_direct"][s, k, 1], rd["gamma"][s, k, 1],
                                                 H=np.eye(d), psi=config.data.psi * np.eye(d),
                                                 beta_star=betas[k], sigma2=config.data.sigma2, n_context=M0))
                         for k in range(len(norms))] for s in range(config.num_seeds)])
    metrics.update({"ltb_read/beta0_direct_error_max": float(e_direct.max()),
                    "ltb_read/beta0_attn_error_max": float(e_attn.max()),
                    "ltb_read/gamma_rel_error_max": float(e_gamma.max()),
                    "ltb_read/y_coupling_max": float(coupling.max()),
                    "ltb_read/implied_gd_beta_risk_rel_max": float((implied / opt - 1).max())})
    claims.append(claim(
        "B2.ltb_is_gd_beta",
        "The trained LTB is a GD-β estimator: its direct path and its attention both encode β0 ≈ β* "
        "(error ≤ 0.1), Γ ≈ Γ* (≤ 10 % rel.), and the GD-β it implies has risk within 2 % of R*",
        paper="every in-class risk-minimising LTB is effectively GD-β with β0 = β*",
        ours=(f"max over seeds/β*: ‖β0_direct−β*‖={e_direct.max():.3f}, ‖β0_attn−β*‖={e_attn.max():.3f}, "
              f"‖Γ−Γ*‖/‖Γ*‖={e_gamma.max():.3f}, y-coupling {coupling.max():.3f}, implied risk "
              f"{100 * (implied / opt - 1).max():+.2f}%"),
        holds=bool(e_direct.max() <= 0.1 and e_attn.max() <= 0.1 and e_gamma.max() <= 0.1
                   and (implied / opt - 1).max() <= TOL)))

    # ---- B0: closed form vs Monte Carlo
    b0 = {}
    for iso in (True, False):
        res = theory.formula_vs_monte_carlo(key=jax.random.key(config.seed + 3), d=d, n_context=M0,
                                            sigma2=config.data.sigma2, num_prompts=config.eval.num_prompts,
                                            isotropic=iso, chunk=min(config.eval.chunk, config.eval.num_prompts))
        for pt, v in res.items():
            name = f"{'iso' if iso else 'spd'}/{pt}"
            b0[name] = v
            metrics[f"B0/{name}/formula"], metrics[f"B0/{name}/mc"] = v["formula"], v["mc"]
            metrics[f"B0/{name}/z"] = v["z"]
    claims.append(claim(
        "B0.closed_form_matches_monte_carlo",
        f"The closed-form GD-β risk matches Monte Carlo ({config.eval.num_prompts} prompts) within 3 s.e., "
        "isotropic and random SPD H, Ψ, at the optimum and at a random (β0, Γ)",
        paper="formula (spec §2.4); spec MC: 2.2963 vs 2.2883, 1.6341 vs 1.6312",
        ours="; ".join(f"{k}: {v['formula']:.4f} vs {v['mc']:.4f} ({v['z']:.1f} s.e.)" for k, v in b0.items()),
        holds=all(v["z"] <= 3 for v in b0.values())))

    # ---- B1: gradient descent on the non-convex closed-form objective
    b1 = theory.gd_beta_gradient_descent(key=jax.random.key(config.seed + 5), d=d, n_context=20,
                                         sigma2=1.0, steps=config.eval.gd_steps, lr=config.eval.gd_lr)
    metrics.update({f"B1/{k}": v for k, v in b1.items() if k != "curve"})
    claims.append(claim(
        "B1.gd_beta_trainable_by_gradient_descent",
        f"Gradient descent (step {config.eval.gd_lr}) on the non-convex GD-β risk from (0, 0) reaches "
        f"(β*, Γ*): errors < 1e-3 and risk within 1e-6 after {config.eval.gd_steps} steps",
        paper="gradient flow provably finds the optimal GD-β (spec: ‖β0−β*‖ < 1e-5 by 2 000 steps)",
        ours=(f"‖β0−β*‖={b1['beta0_error']:.1e}, ‖Γ−Γ*‖={b1['gamma_error']:.1e}, "
              f"risk gap {b1['risk_gap']:.1e} ({b1['risk_start']:.2f} → {b1['risk_optimum']:.4f})"),
        holds=b1["beta0_error"] < 1e-3 and b1["gamma_error"] < 1e-3 and b1["risk_gap"] < 1e-6))

    # ---- B3: nearly Bayes-optimal only at moderate SNR
    table = theory.bayes_table(key=jax.random.key(config.seed + 13), num_draws=config.eval.bayes_draws)
    for row in table:
        metrics[f"B3/d{row['d']}_s{row['sigma2']:g}_M{row['M']}/excess_ratio"] = row["excess_ratio"]
        metrics[f"B3/d{row['d']}_s{row['sigma2']:g}_M{row['M']}/bayes"] = row["bayes"]
    moderate = [r for r in table if r["d"] == 5 and r["sigma2"] == 5.0]
    low_noise = [r for r in table if r["d"] == 5 and r["sigma2"] in (0.25, 1.0)]
    claims.append(claim(
        "B3.near_bayes_at_moderate_snr",
        "Optimal GD-β (= trained LTB) is nearly Bayes-optimal at moderate SNR (excess ratio ≤ 2.3 when "
        "σ² = tr HΨ) but not at high SNR (ratio ≥ 3 for σ² ∈ {0.25, 1})",
        paper="LTB 'nearly Bayes optimal' under reasonable SNR (spec: 1.46, 1.92 vs 13.7, 4.0)",
        ours="; ".join(f"d={r['d']} σ²={r['sigma2']:g} M={r['M']}: {r['excess_ratio']:.2f}" for r in table),
        holds=all(r["excess_ratio"] <= 2.3 for r in moderate) and all(r["excess_ratio"] >= 3 for r in low_noise)))
    return metrics, claims
