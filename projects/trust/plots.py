"""trust figures: value distributions per method per instance, certificate vs realised value, improvement
vs d, and the offline-RL reduction."""

from __future__ import annotations

import os

import numpy as np

from harness import plotting
from projects.trust import claims as claims_lib

COLORS = {"trust": "C0", "lcb": "C3", "greedy": "C2"}


def _main_instances(results: dict) -> list[str]:
    """Every non-minimax instance plus the two AC-T4 minimax ones (the other minimax look alike)."""
    keep = [n for n in results if not n.startswith("minimax")]
    return keep + [n for n in ("minimax_d2_n100_gap0.2", "minimax_d10_n100_gap0.2") if n in results]


def values(workdir: str, results: dict) -> str:
    names = _main_instances(results)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plotting.figure(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        r = results[name]
        s = claims_lib.summarise(r)
        data = [np.asarray(r[f"v_{m}"]) for m in claims_lib.METHODS]
        parts = ax.violinplot(data, showextrema=False, showmeans=True)
        for body, m in zip(parts["bodies"], claims_lib.METHODS, strict=True):
            body.set_facecolor(COLORS[m])
            body.set_alpha(0.5)
        ax.axhline(s["v_behaviour"], color="gray", ls="--", lw=1, label="V(μ)")
        ax.axhline(s["v_star"], color="k", ls=":", lw=1, label="V*")
        ax.set_xticks([1, 2, 3], ["TRUST", "LCB", "greedy"])
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("V(π̂)")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Policy value over data seeds (violins; mean marked)")
    fig.tight_layout()
    path = os.path.join(workdir, "values.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def certificates(workdir: str, results: dict) -> str:
    names = [n for n in ("trap_half_s0.5_d1000_n10000", "half01_s1_d1000_n1", "minimax_d10_n100_gap0.2")
             if n in results] or _main_instances(results)[:3]
    fig, axes = plotting.figure(1, len(names), figsize=(4.6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        r = results[name]
        for m in ("trust", "lcb"):
            ax.scatter(r[f"c_{m}"], r[f"v_{m}"], s=4, alpha=0.3, color=COLORS[m],
                       label=f"{m.upper()} (coverage {np.mean(r[f'v_{m}'] >= r[f'c_{m}']):.3f})")
        lo = min(np.min(r["c_trust"]), np.min(r["c_lcb"]))
        hi = max(np.max(r["v_trust"]), np.max(r["v_lcb"]))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="V = certificate")
        ax.set(xlabel="certificate (lower bound)", ylabel="realised V(π̂)", title=name)
        ax.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    path = os.path.join(workdir, "certificates.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def scaling(workdir: str, config, results: dict) -> str:
    ds = sorted(config.scaling_ds)
    summ = [claims_lib.summarise(results[claims_lib.scaling_name(d)]) for d in ds]
    fig, (a1, a2) = plotting.figure(1, 2, figsize=(10, 3.8))
    a1.plot(ds, [s["trust/mean_improvement"] for s in summ], "o-", label="TRUST: mean V(π̂) − V(μ)")
    a1.plot(ds, [s["lcb/mean"] - s["v_behaviour"] for s in summ], "s--", color=COLORS["lcb"],
            label="LCB (= greedy): mean V − V(μ)")
    a1.plot(ds, [s["trust/cert_mean"] - s["v_behaviour"] for s in summ], "^:", label="TRUST certificate − V(μ)")
    a1.set(xscale="log", xlabel="number of arms d (N=1, σ=1, half01)", ylabel="improvement over μ")
    a1.axhline(0, color="gray", lw=0.8)
    a1.legend(fontsize=8)
    a2.plot(ds, [s["trust/frac_leaves_behaviour"] for s in summ], "o-")
    a2.set(xscale="log", xlabel="d", ylabel="fraction of seeds where TRUST leaves μ", ylim=(-0.02, 1.02))
    fig.tight_layout()
    path = os.path.join(workdir, "scaling.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def complexity(workdir: str, config, results: dict) -> str:
    fig, ax = plotting.figure(figsize=(5.5, 4))
    for d in sorted(config.scaling_ds):
        r = results[claims_lib.scaling_name(d)]
        ax.plot(r["grid"], r["g_mean"], "o-", ms=3, label=f"Ĝ(ε), d={d}")
        ax.plot(r["grid"], np.sqrt(d - 1) * r["grid"], ":", color="gray", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="radius ε", ylabel="localized Gaussian complexity",
           title="Ĝ (σ=1, N=1); dotted: ε·√(d−1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(workdir, "complexity.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def offline_rl(workdir: str, rl: dict) -> str:
    fig, (a1, a2) = plotting.figure(1, 2, figsize=(10, 3.8))
    data = [rl["v_trust"], rl["v_lcb"], rl["v_greedy"], rl["v_trust_plugin"]]
    a1.violinplot(data, showextrema=False, showmeans=True)
    a1.set_xticks([1, 2, 3, 4], ["TRUST", "LCB", "greedy", "TRUST\nplug-in σ"])
    for v, ls, lab in ((rl["v_behaviour"], "--", "behaviour mixture"), (rl["v_best_logging"], ":", "best logging"),
                       (rl["v_default"], "-.", "default policy")):
        a1.axhline(v, color="gray", ls=ls, lw=1, label=lab)
    a1.set(ylabel="V/H", title="offline RL: value of the deployed policy")
    a1.legend(fontsize=8)
    a2.scatter(rl["betas"], rl["means"][1:], s=5, alpha=0.5, label="exploratory policies")
    a2.axhline(rl["v_default"], color="gray", ls="-.", lw=1, label="default policy")
    a2.set(xlabel="β (softmax(β Q*))", ylabel="V^π/H", title="logging policies (arms)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(workdir, "offline_rl.png")
    fig.savefig(path, dpi=110)
    return os.path.basename(path)


def make_all(config, workdir: str, results: dict, rl: dict | None) -> list[str]:
    files = [values(workdir, results), certificates(workdir, results)]
    if len(config.scaling_ds) > 0:
        files += [scaling(workdir, config, results), complexity(workdir, config, results)]
    if rl is not None:
        files.append(offline_rl(workdir, rl))
    return files
