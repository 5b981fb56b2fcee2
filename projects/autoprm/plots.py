"""autoprm figures: validation accuracy per expert-iteration round per method, test accuracy against ε, and the
AutoPRM − SFT-CoT gain against chain length (in-distribution and OOD)."""

from __future__ import annotations

import os

import numpy as np

from harness import plotting
from projects.autoprm import claims as claims_lib

LABELS = {"autoprm": "AutoPRM", "autoprm_nocgd": "AutoPRM − CGD", "autoprm_oraclev": "AutoPRM-oracleV",
          "orm_rl": "ORM-RL", "prm_rl": "PRM-RL", "hack_cgd": "hackable V, CGD", "hack_nocgd": "hackable V, no CGD",
          "autoprm_pg": "AutoPRM-PG (GRPO-style; our addition, not the paper's)"}


def rounds(workdir: str, histories: dict) -> str | None:
    if not histories:
        return None
    fig, axes = plotting.figure(1, 2, figsize=(10, 3.6))
    for method, by_seed in histories.items():
        val = np.array([[h["val"] for h in hs] for hs in by_seed.values()])
        axes[0].errorbar(np.arange(val.shape[1]), 100 * val.mean(0), yerr=100 * val.std(0), marker="o", capsize=3,
                         label=LABELS.get(method, method))
        gap = np.array([[float(h.get("tampering_gap", np.nan)) for h in hs[1:]] for hs in by_seed.values()], float)
        if gap.size and np.isfinite(gap).any():
            axes[1].plot(np.arange(1, gap.shape[1] + 1), np.nanmean(gap, 0), marker="o",
                         label=LABELS.get(method, method))
    axes[0].set(xlabel="expert-iteration round (0 = SFT)", ylabel="validation accuracy (%)",
                title="accuracy per EI round")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0, color="gray", lw=0.8)
    axes[1].set(xlabel="round", ylabel="predicted − true step correctness", title="tampering gap of chosen steps")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "ei_rounds.png"), dpi=110)
    return "ei_rounds.png"


def eps_sweep(workdir: str, evals: dict) -> str | None:
    keys = sorted(k for k in (evals.get(0) or {}) if k.startswith("eps") and k.endswith("/test"))
    if len(keys) < 2:
        return None
    eps = [float(k[3:6]) for k in keys]
    acc = [claims_lib.accuracy(evals, k) for k in keys]
    fig, ax = plotting.figure(figsize=(4.8, 3.4))
    ax.errorbar(eps, [100 * a[0] for a in acc], yerr=[100 * a[1] for a in acc], marker="o", capsize=3)
    ax.set(xlabel="granularity ε (QD control token)", ylabel="test accuracy (%)", title="AutoPRM accuracy vs ε")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "eps_sweep.png"), dpi=110)
    return "eps_sweep.png"


def gain_vs_length(workdir: str, evals: dict) -> str | None:
    first = evals.get(0) or {}
    if "autoprm/test" not in first or "sft_cot/test" not in first:
        return None
    fig, ax = plotting.figure(figsize=(4.8, 3.4))
    for split, color in (("test", "C0"), ("ood", "C3")):
        if f"autoprm/{split}" not in first:
            continue
        ns = sorted(set(first[f"autoprm/{split}"]["n_steps"]))
        gain = [claims_lib.bin_accuracy(evals, f"autoprm/{split}", n, n)
                - claims_lib.bin_accuracy(evals, f"sft_cot/{split}", n, n) for n in ns]
        ax.bar(ns, [100 * g for g in gain], color=color, label="in-distribution" if split == "test" else "OOD length")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="chain length n", ylabel="AutoPRM − SFT-CoT (pp)", title="gain vs chain length")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "gain_vs_length.png"), dpi=110)
    return "gain_vs_length.png"


def make_all(workdir: str, evals: dict, histories: dict, config) -> list[str]:
    del config
    return [p for p in (rounds(workdir, histories), eps_sweep(workdir, evals), gain_vs_length(workdir, evals)) if p]
