"""autoprm's claims (spec §5.7: the domain calibration and A1–A7; and "PG", our group-baseline policy-gradient
addition against expert iteration, only where a run has it), computed from per-problem evaluation results.

Every accuracy is a mean over seeds (± the seeds' standard deviation); a paired comparison of two methods pools the
seeds per test problem (mean correctness over seeds) and resamples problems (`lib/stats.paired_bootstrap`). A claim
whose inputs the preset did not produce (a method not run, one seed where a p-value is asked) reports holds=None with
the reason; it never passes. The paper's numbers come from a secondary digest ([S] in the spec) and are marked so.
"""

from __future__ import annotations

import numpy as np

from harness.outputs import claim
from lib import stats

CALIBRATION_BAND = (0.35, 0.60)  # spec §5.7: SFT-CoT test accuracy, neither saturated nor hopeless
METHODS = ("sft_cot", "sft_decomp", "autoprm", "autoprm_nocgd", "autoprm_oraclev", "orm_rl", "prm_rl", "distill",
           "hack_cgd", "hack_nocgd", "autoprm_pg")


def _runs(evals: dict, key: str) -> list[dict] | None:
    runs = [ev[key] for ev in evals.values() if key in ev]
    return runs if runs and len(runs) == len(evals) else None


def accuracy(evals: dict, key: str) -> tuple[float, float] | None:
    """(mean, std over seeds) of a method/split's accuracy, None when it was not run."""
    runs = _runs(evals, key)
    if runs is None:
        return None
    acc = np.array([np.mean(r["correct"]) for r in runs])
    return float(acc.mean()), float(acc.std(ddof=1)) if acc.size > 1 else 0.0


def per_problem(evals: dict, key: str) -> np.ndarray | None:
    runs = _runs(evals, key)
    return None if runs is None else np.mean([np.asarray(r["correct"], float) for r in runs], axis=0)


def bin_accuracy(evals: dict, key: str, lo: int, hi: int) -> float | None:
    runs = _runs(evals, key)
    if runs is None:
        return None
    vals = []
    for r in runs:
        n = np.asarray(r["n_steps"])
        sel = (n >= lo) & (n <= hi)
        if not sel.any():
            return None
        vals.append(np.asarray(r["correct"], float)[sel].mean())
    return float(np.mean(vals))


def _pct(x) -> str:
    if x is None:
        return "–"
    return f"{100 * x[0]:.1f} ± {100 * x[1]:.1f} %" if isinstance(x, tuple) else f"{100 * x:.1f} %"


def summarise(evals: dict, histories: dict) -> dict:
    m: dict = {"num_seeds": len(evals)}
    keys = sorted({k for ev in evals.values() for k in ev if k != "verifier"})
    for key in keys:
        a = accuracy(evals, key)
        if a is None:
            continue
        m[f"{key}/accuracy"], m[f"{key}/accuracy_std"] = a
        runs = _runs(evals, key)
        for field in ("step_acc", "trace_correct", "parse_fail", "abstain", "answered_correct", "n_sub"):
            if field in runs[0]:
                m[f"{key}/{field}"] = float(np.mean([np.mean(r[field]) for r in runs]))
        if "n_steps" in runs[0]:
            for n in sorted(set(runs[0]["n_steps"])):
                m[f"{key}/accuracy_len{n}"] = bin_accuracy(evals, key, n, n)
    ver = [ev["verifier"] for ev in evals.values() if "verifier" in ev]
    if ver:
        for k in ("auroc", "heldout_acc", "pos_frac", "n_examples"):
            vals = np.array([float(v[k]) for v in ver])  # AUROC is NaN when a seed's held-out labels are one class
            m[f"verifier/{k}"] = float(np.mean(vals[np.isfinite(vals)])) if np.isfinite(vals).any() else float("nan")
    for method, by_seed in histories.items():
        rounds = max(len(h) for h in by_seed.values())
        for r in range(rounds):
            vals = [h[r] for h in by_seed.values() if r < len(h)]
            m[f"ei/{method}/val_round{r}"] = float(np.mean([v["val"] for v in vals]))
            for k in ("tampering_gap", "tokens_sampled", "kept_frac", "sample_true_frac", "cand_true_frac",
                      "reward_mean", "adv_true_minus_false", "pg_kl_last"):  # the last four: AutoPRM-PG's
                if k in vals[0]:
                    m[f"ei/{method}/{k}_round{r}"] = float(np.nanmean([float(v[k]) for v in vals]))
    return m


def _paired(evals, a: str, b: str) -> tuple[float, float] | None:
    pa, pb = per_problem(evals, a), per_problem(evals, b)
    return None if pa is None or pb is None else stats.paired_bootstrap(pa, pb)


def _need(*xs) -> str | None:
    return None if all(x is not None for x in xs) else "not measured: a method it compares was not run at this preset"


def compute(config, evals: dict, histories: dict) -> tuple[dict, list[dict]]:
    """evals: seed -> {"<method>/<split>": per-problem arrays}; histories: method -> seed -> EI history."""
    m = summarise(evals, histories)
    n_seeds = len(evals)
    claims = []
    lo, hi = CALIBRATION_BAND
    cot = accuracy(evals, "sft_cot/test")
    claims.append(claim("calibration", f"SFT-CoT test accuracy lies in [{lo:.0%}, {hi:.0%}] (the domain is neither "
                        "saturated nor hopeless)", paper="spec §5.7 calibration target (no paper number)",
                        ours=f"{_pct(cot)} over {n_seeds} seed(s) (OOD: {_pct(accuracy(evals, 'sft_cot/ood'))})",
                        holds=lo <= cot[0] <= hi))

    auto = accuracy(evals, "autoprm/test")

    def vs(cid, text, paper, other, margin, need_p):
        o = accuracy(evals, f"{other}/test")
        why = _need(auto, o)
        if why:
            return claim(cid, text, paper=paper, ours=why, holds=None)
        diff, p = _paired(evals, "autoprm/test", f"{other}/test")
        m[f"claims/{cid}_diff"], m[f"claims/{cid}_p"] = diff, p
        ours = f"AutoPRM {_pct(auto)} vs {other} {_pct(o)}: {100 * diff:+.1f} pp, paired bootstrap p = {p:.3f}"
        holds = diff >= margin and (not need_p or p < 0.05)
        if need_p and n_seeds < 3:
            return claim(cid, text, paper=paper, ours=ours + f" ({n_seeds} seed(s); the claim asks for 3)",
                         holds=None if holds else False)
        return claim(cid, text, paper=paper, ours=ours, holds=holds)

    claims.append(vs("A1", "AutoPRM final accuracy ≥ ORM-RL + 3 pp (3 seeds, paired bootstrap p < 0.05)",
                     "GSM8K: AutoPRM 59.3, PRM-RL 56.1, ORM-RL lower [S]", "orm_rl", 0.03, True))
    claims.append(vs("A2", "AutoPRM (automatic step labels) ≥ PRM-RL (oracle first-error labels) − 1 pp",
                     "+3.2 pp over PRM-RL on GSM8K [S]", "prm_rl", -0.01, False))

    # A3: RL helps, and validation accuracy rises over rounds
    a3 = vs("A3", "AutoPRM > SFT-Decomp by ≥ 3 pp, and validation accuracy rises over expert-iteration rounds",
            "5 EI rounds, best round by validation [S]", "sft_decomp", 0.03, False)
    hist = histories.get("autoprm")
    if a3["holds"] is not None and hist:
        val = np.mean([[h["val"] for h in hs] for hs in hist.values()], axis=0)
        r3 = min(3, len(val) - 1)
        rising = len(val) > 1 and val[r3] > val[0]
        a3 = claim("A3", a3["claim"], paper=a3["paper"], ours=a3["ours"] + "; validation accuracy by round "
                   + " → ".join(f"{100 * v:.1f}" for v in val) + " %", holds=bool(a3["holds"] and rising))
    claims.append(a3)

    # A4: CGD matters; hackable verifier stress test
    nocgd = accuracy(evals, "autoprm_nocgd/test")
    why = _need(auto, nocgd)
    text4 = ("without context-guided decoding accuracy drops ≥ 1 pp; under a hackable verifier the tampering gap grows "
             "over rounds without CGD and stays smaller with it")
    paper4 = "AutoPRM+CGD best among the decoding variants (Table 3) [S]"
    if why:
        claims.append(claim("A4", text4, paper=paper4, ours=why, holds=None))
    else:
        diff, p = _paired(evals, "autoprm/test", "autoprm_nocgd/test")
        m["claims/A4_diff"], m["claims/A4_p"] = diff, p
        ours = f"CGD {_pct(auto)} vs no CGD {_pct(nocgd)}: {100 * diff:+.1f} pp (p = {p:.3f})"
        holds = diff >= 0.01
        hc, hn = histories.get("hack_cgd"), histories.get("hack_nocgd")
        if hc and hn:
            gap = lambda h: np.nanmean([[float(r.get("tampering_gap", np.nan)) for r in hs[1:]] for hs in h.values()],  # noqa
                                       axis=0)
            gc, gn = gap(hc), gap(hn)
            grows = len(gn) > 1 and gn[-1] > gn[0]
            smaller = float(np.nanmean(gc)) < float(np.nanmean(gn))
            ours += (f"; hackable verifier, tampering gap by round: no CGD {' → '.join(f'{g:.2f}' for g in gn)}, "
                     f"CGD {' → '.join(f'{g:.2f}' for g in gc)}")
            holds = holds and grows and smaller
            claims.append(claim("A4", text4, paper=paper4, ours=ours, holds=holds))
        else:
            claims.append(claim("A4", text4, paper=paper4, ours=ours + "; the hackable-verifier stress test was not "
                                "run at this preset", holds=None if holds else False))

    # A5: granularity
    sweep = sorted(float(k[3:6]) for k in (evals.get(0) or {}) if k.startswith("eps") and k.endswith("/test"))
    text5 = "accuracy against ε peaks in ε ∈ [0.6, 1.0], is not monotone-decreasing, and beats ε = 0 by ≥ 3 pp"
    if len(sweep) < 3 or 0.0 not in sweep:
        claims.append(claim("A5", text5, paper="optimum ε = 0.8 (Fig. 3) [S]", ours="not measured: the ε sweep was "
                            "not run at this preset", holds=None))
    else:
        accs = [accuracy(evals, f"eps{e:.1f}/test")[0] for e in sweep]
        for e, a in zip(sweep, accs, strict=True):
            m[f"eps_sweep/{e:.1f}"] = a
        best = sweep[int(np.argmax(accs))]
        worst_two = sorted(range(len(accs)), key=lambda i: accs[i])[:2]
        holds = 0.6 <= best <= 1.0 and max(accs) - accs[0] >= 0.03 and 0 in worst_two
        claims.append(claim("A5", text5, paper="optimum ε = 0.8 (Fig. 3) [S]",
                            ours="ε " + ", ".join(f"{e:.1f}: {100 * a:.1f}" for e, a in zip(sweep, accs, strict=True))
                            + f" %; best ε = {best:.1f}", holds=holds))

    # A6: longer chains gain more (in-distribution long bin and OOD split vs the short bin)
    lens = sorted(config.data.lengths)
    short = (lens[0], lens[min(1, len(lens) - 1)])
    long_ = (lens[-2] if len(lens) > 2 else lens[-1], lens[-1])
    g_short = _gain(evals, "test", *short)
    g_long = _gain(evals, "test", *long_)
    g_ood = _gain(evals, "ood", min(config.data.ood_lengths), max(config.data.ood_lengths))
    text6 = (f"the AutoPRM − SFT-CoT gain is larger for n = {long_[0]}–{long_[1]} than for n = {short[0]}–{short[1]}, "
             f"and larger on the OOD-length split (n = {min(config.data.ood_lengths)}–{max(config.data.ood_lengths)})")
    if None in (g_short, g_long, g_ood):
        claims.append(claim("A6", text6, paper="gain over CoT grows with chain length (Fig. 4) [S]",
                            ours="not measured: AutoPRM was not run at this preset", holds=None))
    else:
        m["claims/A6_gain_short"], m["claims/A6_gain_long"], m["claims/A6_gain_ood"] = g_short, g_long, g_ood
        claims.append(claim("A6", text6, paper="gain over CoT grows with chain length (Fig. 4) [S]",
                            ours=f"gain {100 * g_short:+.1f} pp (short), {100 * g_long:+.1f} pp (long), "
                                 f"{100 * g_ood:+.1f} pp (OOD)", holds=g_long > g_short and g_ood > g_short))

    # A7: unified vs separate (reported, not gated)
    uni, sep = accuracy(evals, "sft_decomp/test"), accuracy(evals, "distill/test")
    why = _need(uni, sep)
    claims.append(claim("A7", "one model for QD and QA ≥ Distilling-LM (two models, same total layers) after SFT "
                        "(reported, not gated)", paper="unified model beats two separate ones [S]",
                        ours=why or f"unified {_pct(uni)} vs two models {_pct(sep)}",
                        holds=None if why else uni[0] >= sep[0]))
    if "autoprm_pg" in histories or any("autoprm_pg/test" in ev for ev in evals.values()):
        claims.append(_pg_claim(evals, histories, m, n_seeds))  # our addition: an entry only where it was run
    if not lo <= cot[0] <= hi:  # an uncalibrated domain cannot support a comparison: nothing may pass
        claims = [claims[0]] + [c if c["holds"] is not True else claim(
            c["id"], c["claim"], paper=c["paper"], ours=c["ours"] + " (not counted: SFT-CoT is outside the "
            "calibration band, so the comparison is not meaningful at this preset)", holds=None) for c in claims[1:]]
    return m, claims


def _val_rounds(histories: dict, method: str) -> str | None:
    hist = histories.get(method)
    if not hist:
        return None
    rounds = min(len(h) for h in hist.values())
    val = np.mean([[h[r]["val"] for r in range(rounds)] for h in hist.values()], axis=0)
    return " → ".join(f"{100 * v:.1f}" for v in val) + " %"


def _pg_claim(evals: dict, histories: dict, m: dict, n_seeds: int) -> dict:
    """AutoPRM-PG against AutoPRM's expert iteration (spec §5.4 item 5): our addition, reported, not gated."""
    text = ("AutoPRM-PG (group-baseline policy gradient with a KL penalty to the SFT model; GRPO-style, our addition, "
            "not the paper's) reaches at least AutoPRM's expert-iteration test accuracy under the same rollouts and "
            "verifier rewards (reported, not gated)")
    paper = "none: the paper's RL is expert iteration [S]; the PG variant is spec §5.4 item 5 (ours)"
    pg, auto = accuracy(evals, "autoprm_pg/test"), accuracy(evals, "autoprm/test")
    why = _need(pg, auto)
    if why:
        return claim("PG", text, paper=paper, ours=why, holds=None)
    diff, p = _paired(evals, "autoprm_pg/test", "autoprm/test")
    m["claims/PG_diff"], m["claims/PG_p"] = diff, p
    ours = (f"AutoPRM-PG {_pct(pg)} vs AutoPRM (EI) {_pct(auto)}: {100 * diff:+.1f} pp, paired bootstrap p = "
            f"{p:.3f} ({n_seeds} seed(s))")
    vp, ve = _val_rounds(histories, "autoprm_pg"), _val_rounds(histories, "autoprm")
    if vp and ve:
        ours += f"; validation accuracy by round: PG {vp}, EI {ve}"
    return claim("PG", text, paper=paper, ours=ours, holds=diff >= 0)


def _gain(evals, split: str, lo: int, hi: int) -> float | None:
    a, b = bin_accuracy(evals, f"autoprm/{split}", lo, hi), bin_accuracy(evals, f"sft_cot/{split}", lo, hi)
    return None if a is None or b is None else a - b
