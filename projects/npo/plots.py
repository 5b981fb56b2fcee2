"""NPO synthetic figures: distances vs steps per method, the forget/retain trade-off, ‖θ_t − θ_0‖ growth."""

from __future__ import annotations

import os

import numpy as np

from harness import plotting
from lib.stats import mean_ci
from projects.npo.synthetic import METHOD_NAMES

COLORS = {"ga": "C3", "ga_rt": "C1", "idk_rt": "C7", "npo": "C0", "npo_rt": "C2", "dpo_rt": "C4"}
PANELS = (("forget_dist", "forget distance KL(π_retr‖π_θ)"), ("retain_dist", "retain distance KL(π_retr‖π_θ)"),
          ("param_dist", "‖θ_t − θ_ref‖"))


def _band(ax, x, arr, *, log=False, **kw):
    """Seed mean and its 95 % CI band (on a log axis the band's floor is clipped at mean/10 to stay readable)."""
    mean = arr.mean(0)
    ci = np.array([mean_ci(arr[:, i])[1] for i in range(arr.shape[1])]) if arr.shape[0] > 1 else 0 * mean
    ax.plot(x, mean, **kw)
    low = np.maximum(mean - ci, mean / 10) if log else mean - ci
    ax.fill_between(x, low, mean + ci, color=kw.get("color"), alpha=0.2, lw=0)


def metrics_vs_steps(workdir: str, tag: str, res: dict, config_s) -> str:
    steps = res["steps"]
    fig, axes = plotting.figure(1, 3, figsize=(15, 4))
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        for kind, m in res["methods"].items():
            _band(ax, steps, m[key], log=key != "param_dist", color=COLORS.get(kind), label=METHOD_NAMES[kind])
        ax.set(xlabel="unlearning step", ylabel=label, yscale="log" if key != "param_dist" else "linear")
        if key == "forget_dist":
            ax.axhline(config_s.forget_threshold, color="k", ls=":", lw=1, label=f"{config_s.forget_threshold:g}")
    axes[0].legend(fontsize=8)
    n = res["methods"][next(iter(res["methods"]))]["forget_dist"].shape[0]
    fig.suptitle(f"NPO synthetic, {tag.replace('alpha', 'α = ')}: mean ± 95% CI over {n} seeds")
    fig.tight_layout()
    name = f"synthetic_{tag}_metrics.png"
    fig.savefig(os.path.join(workdir, name), dpi=110)
    return name


def tradeoff(workdir: str, tag: str, res: dict) -> str:
    fig, ax = plotting.figure(figsize=(6, 4.5))
    for kind, m in res["methods"].items():
        f, r = m["forget_dist"].mean(0), m["retain_dist"].mean(0)
        ax.plot(f, r, "-", color=COLORS.get(kind), label=METHOD_NAMES[kind], lw=1.2)
        ax.plot(f[-1], r[-1], "o", color=COLORS.get(kind), ms=4)
    ax.set(xscale="log", yscale="log", xlabel="forget distance (seed mean)", ylabel="retain distance (seed mean)",
           title=f"trade-off along the trajectories, {tag.replace('alpha', 'α = ')} (dot: last step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = f"synthetic_{tag}_tradeoff.png"
    fig.savefig(os.path.join(workdir, name), dpi=110)
    return name


def drift(workdir: str, res: dict, config_s) -> str:
    steps, dr = res["drift_steps"], res["drift"]
    fig, axes = plotting.figure(1, 2, figsize=(12, 4.2))
    cmap = {k: f"C{i}" for i, k in enumerate(dr)}
    for ax, xscale in zip(axes, ("linear", "log"), strict=True):
        for k, v in dr.items():
            label = "GA" if k == "ga" else f"NPO β={k.removeprefix('npo_beta')}"
            sel = steps > 0 if xscale == "log" else slice(None)
            _band(ax, steps[sel], v[:, sel], color=cmap[k], label=label)
        ax.set(xscale=xscale, xlabel="step t" + (" (log)" if xscale == "log" else ""), ylabel="‖θ_t − θ_0‖",
               title=f"{xscale} t: GA linear, NPO ≈ log t" if xscale == "linear" else "log t: NPO ≈ straight line")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"parameter drift on the forget set (α = {config_s.drift.alpha:g}, lr {config_s.drift.lr:g}, "
                 "no retain term)")
    fig.tight_layout()
    name = "synthetic_drift.png"
    fig.savefig(os.path.join(workdir, name), dpi=110)
    return name


def make_all(config, workdir: str, synth: dict) -> list[str]:
    s = config.synthetic
    files = []
    for tag, res in synth.items():
        if res.get("in_main"):
            files += [metrics_vs_steps(workdir, tag, res, s), tradeoff(workdir, tag, res)]
        if "drift" in res:
            files.append(drift(workdir, res, s))
    return files
