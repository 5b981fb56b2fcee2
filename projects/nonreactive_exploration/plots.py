"""nonreactive_exploration figures: suboptimality vs online episodes (log-log), where online visits land,
and the local-coverage sweep."""

from __future__ import annotations

import os

import numpy as np

from harness import plotting
from projects.nonreactive_exploration.claims import METHODS

LABELS = {"rfnpd": "RF-NPD (non-reactive design)", "reactive": "reactive explorer (real counts)",
          "behaviour": "behaviour redeploy", "uniform": "uniform", "rfnpd_theory": "RF-NPD, theory bonus"}
STYLE = {"rfnpd": ("C0", "-o"), "reactive": ("C1", "--s"), "behaviour": ("C2", "-^"), "uniform": ("C3", "-v"),
         "rfnpd_theory": ("C4", ":x")}


def suboptimality_curves(config, workdir: str, points: dict) -> str:
    pt = points[config.offline.episodes]
    budgets = np.asarray(config.online.budgets)
    fig, axes = plotting.figure(1, 2, figsize=(12, 4.5))
    for ax, key, title in ((axes[0], "sub_dag", "inside the true sparsified MDP P† (benchmark)"),
                           (axes[1], "sub_true", "in the true MDP P")):
        x = pt[key].mean(-1)  # [N, M, B]
        n = x.shape[0]
        for i, m in enumerate(METHODS):
            color, fmt = STYLE[m]
            mean = x[:, i].mean(0)
            err = 1.96 * x[:, i].std(0, ddof=1) / np.sqrt(n)
            ax.errorbar(budgets, mean, yerr=err, fmt=fmt, color=color, capsize=2, ms=4, label=LABELS[m])
        off = pt["offline_" + key].mean()
        ax.axhline(off, color="gray", ls="-.", lw=1, label="offline-only")
        if key == "sub_true":
            ax.axhline(pt["coverage_gap"].mean(), color="k", ls=":", lw=1, label="coverage gap (V*−V*_P†)/H")
        ax.set(xscale="log", yscale="log", xlabel="online episodes K_de",
               ylabel="(V* − V^π)/H, mean over rewards", title=title)
        ax.legend(fontsize=7)
    fig.suptitle(f"lock & two regions, K_off={config.offline.episodes}, online-only final planner, "
                 f"{pt['sub_dag'].shape[0]} seeds (95% CI)", fontsize=9)
    fig.tight_layout()
    path = os.path.join(workdir, "suboptimality_vs_episodes.png")
    fig.savefig(path, dpi=110)
    return path


def visit_regions(config, workdir: str, points: dict) -> str:
    pt = points[config.offline.episodes]
    frac = pt["visit_frac"][:, :, -1].mean(0)  # [M, 3]
    names = ["offline data (behaviour)"] + [LABELS[m] for m in METHODS]
    rows = np.vstack([pt["offline_visit_frac"].mean(0)[None], frac])
    fig, ax = plotting.figure(figsize=(8, 4.2))
    y = np.arange(len(names))
    left = np.zeros(len(names))
    for r, (reg, color) in enumerate((("lock states", "0.7"), ("region A (well covered)", "C2"),
                                      ("region B (thinly covered)", "C3"))):
        ax.barh(y, rows[:, r], left=left, color=color, label=reg)
        left += rows[:, r]
    for i, v in enumerate(rows[:, 2]):
        ax.text(1.01, i, f"B: {v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set(xlim=(0, 1.18), xlabel=f"share of visits (online methods: {config.online.budgets[-1]} episodes; "
                                  f"offline: K_off={config.offline.episodes})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.13), ncol=3)
    ax.invert_yaxis()
    fig.tight_layout()
    path = os.path.join(workdir, "visit_regions.png")
    fig.savefig(path, dpi=110)
    return path


def local_coverage(config, workdir: str, points: dict) -> str:
    sweep = sorted(points)
    cb = list(config.online.budgets).index(config.claims.coverage_budget)
    gap = [points[k]["coverage_gap"].mean() for k in sweep]
    rt = [points[k]["sub_true"].mean(-1)[:, 0, cb].mean() for k in sweep]
    rb = [points[k]["sub_dag"].mean(-1)[:, 0, cb].mean() for k in sweep]
    fig, ax = plotting.figure(figsize=(5.5, 4))
    ax.plot(sweep, gap, "k:o", label="coverage gap (V*−V*_P†)/H")
    ax.plot(sweep, rt, "C0-o", label=f"RF-NPD in P, K_de={config.claims.coverage_budget}")
    ax.plot(sweep, rb, "C0--s", label=f"RF-NPD in P† (benchmark), K_de={config.claims.coverage_budget}")
    ax.set(xscale="log", xlabel="offline episodes K_off", ylabel="normalized suboptimality",
           title="local coverage: more offline data")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(workdir, "local_coverage.png")
    fig.savefig(path, dpi=110)
    return path


def make_all(config, workdir: str, points: dict) -> list[str]:
    return [os.path.basename(f(config, workdir, points)) for f in (suboptimality_curves, visit_regions, local_coverage)]
