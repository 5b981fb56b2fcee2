"""Plots of speculative_rejection: score vs relative compute under three cost models, gold reward, partial/final
correlation, and the memory sawtooth of one run."""

from __future__ import annotations

import os

from harness.plotting import figure
from projects.speculative_rejection import tkl

COSTS = (("roofline", "simulated accelerator (roofline)"), ("flops", "FLOPs"), ("wall", "CPU wall time"))


def _alphas(m):
    return sorted({float(k.split("/")[1]) for k in m if k.startswith("spr/") and k.endswith("/score")})


def score_vs_compute(m: dict, config, path: str) -> None:
    n0, mult = config.experiment.device_batch, m["bon/multiples"]
    costs = [c for c in COSTS if f"spr/{_alphas(m)[0]:g}/rel_{c[0]}" in m]
    fig, axes = figure(1, len(costs), figsize=(5.2 * len(costs), 4.2), squeeze=False)
    bon = [m[f"bon/N{n0 * k}/score"] for k in mult]
    for ax, (c, title) in zip(axes[0], costs, strict=True):
        ax.plot(mult, bon, "o-", color="k", label="Best-of-N")
        for k, y in zip(mult, bon, strict=True):
            ax.annotate(f"N={n0 * k}", (k, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        xs = [m[f"spr/{a:g}/rel_{c}"] for a in _alphas(m)]
        ys = [m[f"spr/{a:g}/score"] for a in _alphas(m)]
        ax.plot(xs, ys, "s--", color="tab:red", label="Speculative Rejection")
        for a, x, y in zip(_alphas(m), xs, ys, strict=True):
            ax.annotate(f"α={a:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color="tab:red")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"relative compute (Best-of-{n0} = 1)")
        ax.set_ylabel(f"improvement score (Best-of-{n0} = 100)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def gold(m: dict, config, path: str) -> None:
    n0, mult = config.experiment.device_batch, m["bon/multiples"]
    fig, axes = figure(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "gold", "gold reward of the selected response"),
                           (axes[1], "gold_win", f"gold win rate vs Best-of-{n0}")):
        ax.plot(mult, [m[f"bon/N{n0 * k}/{key}"] for k in mult], "o-", color="k", label="Best-of-N")
        xs = [m[f"spr/{a:g}/rel_roofline"] for a in _alphas(m)]
        ax.plot(xs, [m[f"spr/{a:g}/{key}"] for a in _alphas(m)], "s--", color="tab:red", label="Speculative Rejection")
        for a, x in zip(_alphas(m), xs, strict=True):
            ax.annotate(f"α={a:g}", (x, m[f"spr/{a:g}/{key}"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("relative compute, simulated accelerator")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def correlation(m: dict, config, path: str) -> None:
    taus = list(config.experiment.correlation_taus)
    fig, axes = figure(1, 1, figsize=(5.5, 4))
    for key, label in (("pearson_rm", "RM(prefix) vs RM(final)"), ("kendall_rm", "Kendall τ, RM"),
                       ("pearson_gold", "gold(prefix) vs gold(final)"),
                       ("pearson_rm_gold", "RM(prefix) vs gold(final)")):
        axes.plot(taus, [m[f"corr/tau{t}/{key}"] for t in taus], "o-", label=label)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("decision length τ (new tokens)")
    axes.set_ylabel("correlation (mean over prompts)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def schedule(records: list[dict], config, path: str) -> None:
    """KV occupancy (rows × length) over generated tokens for prompt 0, every α: the paper's sawtooth."""
    M = records[0]["device_cost"] and config.experiment.device_batch * (tkl.PROMPT_LEN + config.max_new_tokens)
    fig, axes = figure(1, 1, figsize=(6, 4))
    for a, s in sorted(records[0]["spr"].items(), key=lambda kv: float(kv[0])):
        xs, ys = [], []
        for r in s["rounds"]:
            for t in range(r["start"], r["end"] + 1):
                xs.append(t - tkl.PROMPT_LEN)
                ys.append(r["batch"] * t)
        axes.plot(xs, ys, label=f"α={float(a):g}")
    axes.axhline(M, color="k", ls=":", label="memory budget M")
    axes.set_xlabel("generated tokens")
    axes.set_ylabel("KV slots in use (rows × length)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def make_all(m: dict, records: list[dict], config, workdir: str) -> list[str]:
    names = []
    for name, fn in (("score_vs_compute.png", lambda p: score_vs_compute(m, config, p)),
                     ("gold.png", lambda p: gold(m, config, p)),
                     ("correlation.png", lambda p: correlation(m, config, p)),
                     ("schedule.png", lambda p: schedule(records, config, p))):
        fn(os.path.join(workdir, name))
        names.append(name)
    return names
