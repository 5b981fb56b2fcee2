"""ltb_icl figures: the Figure-1 analogue (test risk along training) and risk vs ‖β*‖."""

from __future__ import annotations

import os

import numpy as np

from harness import plotting
from lib import icl
from lib.metrics import read_jsonl
from lib.stats import mean_ci


def training_curves(config, workdir: str, ref: dict) -> str:
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    Ms = list(config.data.context_lengths)
    fig, axes = plotting.figure(1, len(Ms), figsize=(5.5 * len(Ms), 4), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, M in zip(axes[0], Ms, strict=True):
        for k, n in enumerate(config.data.beta_star_norms):
            color = f"C{k}"
            for model, ls in (("lsa", "--"), ("ltb", "-")):
                key = f"M{M}/{model}/norm{n:g}/test_risk"
                ax.plot(steps, [r[key] for r in rows], ls, color=color, label=f"{model.upper()} ‖β*‖={n:g}")
            ax.axhline(ref[f"M{M}"]["gd0"][k], color=color, lw=0.8, ls=":")
        ax.axhline(ref[f"M{M}"]["gd_beta"], color="k", lw=1, label="optimal GD-β")
        ax.axhline(ref[f"M{M}"]["bayes"], color="gray", lw=1, ls="-.", label="Bayes")
        ax.set(yscale="log", xlabel="Adam step", ylabel="test ICL risk")
        ax.set_title(f"M={M}: LTB solid, LSA dashed, GD-0 optimum dotted", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(workdir, "training_curves.png")
    fig.savefig(path, dpi=120)
    return path


def risk_vs_norm(config, workdir: str, risks: dict, ref: dict) -> str:
    Ms = list(config.data.context_lengths)
    norms = np.asarray(config.data.beta_star_norms, float)
    d = config.data.d
    grid = np.linspace(0, max(norms.max(), 1e-3), 50)
    fig, axes = plotting.figure(1, len(Ms), figsize=(5.5 * len(Ms), 4), squeeze=False)
    for ax, M in zip(axes[0], Ms, strict=True):
        r = risks[f"M{M}"]
        gd0 = [float(icl.gd0_optimum(H=np.eye(d), psi=config.data.psi * np.eye(d),
                                     beta_star=np.full(d, n / np.sqrt(d)), sigma2=config.data.sigma2,
                                     n_context=M)[1]) for n in grid]
        ax.plot(grid, gd0, ":", color="C0", label="optimal GD-0 (closed form)")
        ax.axhline(ref[f"M{M}"]["gd_beta"], color="C1", lw=1, label="optimal GD-β (closed form)")
        ax.axhline(ref[f"M{M}"]["bayes"], color="gray", ls="-.", lw=1, label="Bayes (Monte Carlo)")
        for m, (model, color) in enumerate((("LSA", "C0"), ("LTB", "C1"))):
            mean, err = np.array([mean_ci(r[:, k, m]) for k in range(r.shape[1])]).T
            ax.errorbar(norms, mean, yerr=err, fmt="o", color=color, capsize=3,
                        label=f"trained {model} (mean ± t 95% CI, {r.shape[0]} seeds)")
        ax.set(xlabel="‖β*‖", ylabel="test ICL risk", title=f"M={M}, d={d}, σ²={config.data.sigma2:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(workdir, "risk_vs_beta_norm.png")
    fig.savefig(path, dpi=120)
    return path


def make_all(config, workdir: str, risks: dict, ref: dict) -> list[str]:
    return [os.path.basename(training_curves(config, workdir, ref)),
            os.path.basename(risk_vs_norm(config, workdir, risks, ref))]
