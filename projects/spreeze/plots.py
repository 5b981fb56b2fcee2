"""spreeze figures: return against wall-clock and env steps (fused vs sequential), sampler and learner rates."""

from __future__ import annotations

import os

from harness import plotting

COLORS = {"fused": "C0", "sequential": "C3"}


def make_plots(workdir: str, *, runs: dict, metrics: dict, config) -> list[str]:
    fig, axes = plotting.figure(1, 3, figsize=(15, 4))
    for method, seeds in runs.items():
        for s, r in enumerate(seeds):
            label = method if s == 0 else None
            axes[0].plot(r["wall_s"], r["eval_return"], color=COLORS[method], alpha=0.8, label=label)
            axes[1].plot(r["env_steps"], r["eval_return"], color=COLORS[method], alpha=0.8, label=label)
    for ax, xlabel in zip(axes[:2], ("wall-clock s (compile included, evaluation excluded)", "env steps"),
                          strict=True):
        ax.axhline(config.eval.threshold, color="gray", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("deterministic return")
        ax.legend()
    axes[1].set_xscale("log")
    sizes = tuple(config.learner_bench.batch_sizes)
    axes[2].plot(sizes, [metrics[f"learner/transitions_per_s/B{b}"] for b in sizes], "o-", label="SAC update")
    axes[2].set_xscale("log", base=2)
    axes[2].set_xlabel("batch size B")
    axes[2].set_ylabel("update transitions/s (B × updates/s)")
    axes[2].set_title(f"B2: fused sampler ×{metrics['sampler/fused_over_loop1']:.1f} over one-env jitted steps",
                      fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "pendulum.png"), dpi=90)
    return ["pendulum.png"]
