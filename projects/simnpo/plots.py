"""simnpo figures. Markov part: retain distance vs forget quality per case (the paper's Fig. 5, retrained model
marked ★ for Forget1 and ● for Forget2), the β sweeps, and KL against the iteration."""

from __future__ import annotations

import os

from harness import plotting
from projects.simnpo import claims as claims_lib

COLORS = {"ga": "C7", "npo": "C0", "simnpo": "C3"}
LABELS = {"ga": "GA", "npo": "NPO", "simnpo": "SimNPO"}


def _headline(config, case: str) -> list[tuple[str, float]]:
    u = config.markov.unlearn
    runs = [("npo", float(u.npo_beta[case])), ("simnpo", float(u.simnpo_beta[case]))]
    return ([("ga", 0.0)] if u.ga else []) + runs


def _label(method: str, beta: float) -> str:
    return LABELS[method] + ("" if method == "ga" else f" β={beta:g}")


def _subtitle(config, case: str) -> str:
    return f"Forget2 length {config.markov.short_length}" if case == "length" else "Forget2 never seen"


def _mark_references(ax, r: dict) -> None:
    orig, retr = r["original"].mean(0), r["retrained"].mean(0)
    ax.plot(retr[0], retr[1], "*", ms=16, color="gold", mec="k", zorder=5, label="retrained, Forget1")
    ax.plot(retr[0], retr[2], "o", ms=10, color="gold", mec="k", zorder=5, label="retrained, Forget2")
    ax.plot([orig[0]] * 2, orig[1:], "s", ms=6, color="k", mfc="none", zorder=5, label="original")


def tradeoff(config, workdir: str, results: dict) -> str:
    cases = list(results)
    fig, axes = plotting.figure(1, len(cases), figsize=(6.2 * len(cases), 4.8), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        r = results[case]
        for method, beta in _headline(config, case):
            t = claims_lib.trajectory(r, method, beta).mean(0)  # seed mean [E, 3]
            ax.plot(t[:, 0], t[:, 1], "-", marker=".", color=COLORS[method], label=f"{_label(method, beta)}: Forget1")
            ax.plot(t[:, 0], t[:, 2], "--", marker=".", color=COLORS[method], label=f"{_label(method, beta)}: Forget2")
        _mark_references(ax, r)
        ax.set(xscale="log", xlabel="retain distance: KL(T ‖ π) on retain-test (lower = better)",
               ylabel="forget quality: KL(T ‖ π) on forget-test (higher = more forgotten)",
               title=f"{case} case ({_subtitle(config, case)})")
        ax.set_ylim(0, min(3.0, ax.get_ylim()[1]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Mixture of Markov chains, {config.markov.unlearn.iterations} unlearning iterations, mean over "
                 f"seeds {list(config.markov.seeds)} ({config.preset} preset)", fontsize=10)
    fig.tight_layout()
    name = "markov_tradeoff.png"
    fig.savefig(os.path.join(workdir, name), dpi=110)
    return name


def sweep(config, workdir: str, results: dict) -> str:
    cases = list(results)
    fig, axes = plotting.figure(2, len(cases), figsize=(6.2 * len(cases), 8.5), squeeze=False)
    u = config.markov.unlearn
    for col, case in enumerate(cases):
        r = results[case]
        for row, (method, betas) in enumerate((("npo", u.npo_betas), ("simnpo", u.simnpo_betas))):
            ax = axes[row, col]
            colors = [f"C{i}" for i in range(len(betas))]
            for c, beta in zip(colors, betas, strict=True):
                t = claims_lib.trajectory(r, method, float(beta)).mean(0)
                ax.plot(t[:, 0], t[:, 1], "-", color=c, label=f"β={beta:g} Forget1")
                ax.plot(t[:, 0], t[:, 2], "--", color=c, label=f"β={beta:g} Forget2")
            _mark_references(ax, r)
            ax.set(xscale="log", xlabel="retain distance", ylabel="forget quality", title=f"{case}: {LABELS[method]}")
            ax.set_ylim(0, min(3.0, ax.get_ylim()[1]))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    name = "markov_sweep.png"
    fig.savefig(os.path.join(workdir, name), dpi=100)
    return name


def iterations(config, workdir: str, results: dict) -> str:
    cases = list(results)
    fig, axes = plotting.figure(len(cases), 3, figsize=(14, 3.6 * len(cases)), squeeze=False)
    for row, case in enumerate(cases):
        r = results[case]
        it = r["eval_iters"]
        for j, split in enumerate(("retain", "Forget1", "Forget2")):
            ax = axes[row, j]
            for method, beta in _headline(config, case):
                t = claims_lib.trajectory(r, method, beta)  # [K, E, 3]
                mean, lo, hi = t[..., j].mean(0), t[..., j].min(0), t[..., j].max(0)
                ax.plot(it, mean, color=COLORS[method], label=_label(method, beta))
                ax.fill_between(it, lo, hi, color=COLORS[method], alpha=0.2)
            ax.axhline(r["retrained"][:, j].mean(), color="gold", ls=":", label="retrained")
            ax.set(yscale="log", xlabel="unlearning iteration", ylabel="KL(T ‖ π)", title=f"{case}: {split}")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    name = "markov_iterations.png"
    fig.savefig(os.path.join(workdir, name), dpi=100)
    return name


def markov(config, workdir: str, results: dict) -> list[str]:
    return [tradeoff(config, workdir, results), sweep(config, workdir, results), iterations(config, workdir, results)]
