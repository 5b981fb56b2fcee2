"""Benchmark: the jitted, seed-vmapped TRUST suite against a straightforward numpy loop of the same algorithm.

    python benchmarks/trust_suite.py            # writes the trust section of benchmarks/RESULTS.md

Workload per instance: Ĝ on J = 20 radii from M Monte Carlo draws, then TRUST (and LCB) on S data seeds.
Both sides run the same sort-based exact trust-region solver (lib.bandits.tr_linmax_behaviour); the numpy side
loops over draws, seeds and radii in Python, on the same r̂ and η (drawn by JAX beforehand and not timed for
numpy), and its numbers are checked against the JAX ones. JAX is timed after compilation (AOT-compiled
executables, best of `--repeats`); compile time is reported separately. float64 on both sides.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness import runtime  # noqa: E402

runtime.configure_xla_cpu_threads()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lib import bandits  # noqa: E402


# ------------------------------------------------------------------------------- the numpy reference
def np_tr_linmax(g, counts, sigma, eps_list):
    """Sort-based exact TRLinMax for the behaviour reference, one radius at a time (numpy)."""
    pos = counts > 0
    order = np.argsort(-np.where(pos, g, -np.inf), kind="stable")
    rank = np.empty(g.size, int)
    rank[order] = np.arange(g.size)
    gmax = g[pos].max()
    gc = np.where(pos, g - gmax, 0.0)
    ns, gs = counts[order], gc[order]
    n = ns.sum()
    cn, cng, cng2 = np.cumsum(ns), np.cumsum(ns * gs), np.cumsum(ns * gs**2)
    a = cng / cn
    q = np.maximum(cng2 - cng * a, 0.0)
    c = np.maximum(1 / cn - 1 / n, 0.0)
    num_pos = pos.sum()
    s_next = np.maximum(cng - np.r_[gs[1:], 0.0] * cn, 0.0)
    idx = np.arange(g.size)
    ok = (idx + 1 < num_pos) & (q > 0) & (s_next > 0)
    lo = sigma**2 * (np.where(ok, q / np.where(ok, s_next, 1.0) ** 2, 0.0) + c)
    lo[idx == num_pos - 1] = 0.0
    lo[idx >= num_pos] = np.inf
    mu = counts / n
    out = []
    for eps in eps_list:
        k = int(np.argmax(lo <= eps**2)) + 1
        u = np.sqrt(max(eps**2 / sigma**2 - c[k - 1], 0.0) / q[k - 1]) if q[k - 1] > 0 else 0.0
        pi = np.where((rank < k) & pos, counts * np.maximum(0.0, u * (gc - a[k - 1]) + 1 / cn[k - 1]), 0.0)
        out.append(pi / pi.sum() - mu)
    return np.array(out)


def np_suite(means, counts, sigma, grid, etas, rhats, delta):
    """Ĝ from the draws `etas` `[M, d]`, then TRUST and LCB on every dataset `rhats` `[S, d]`."""
    g_hat = np.mean([np_tr_linmax(eta, counts, sigma, grid) @ eta for eta in etas], axis=0)
    t = np.sqrt(2 * np.log(grid.size / (delta / 2)))
    mu = counts / counts.sum()
    d_pos = (counts > 0).sum()
    bonus = np.where(counts > 0, sigma * np.sqrt(2 * np.log(2 * d_pos / delta) / np.maximum(counts, 1)), np.inf)
    v_trust, v_lcb = [], []
    for rhat in rhats:
        deltas = np_tr_linmax(rhat, counts, sigma, grid)
        lbs = np.r_[0.0, deltas @ rhat - g_hat - grid * t]
        j = int(np.argmax(lbs))
        pi = mu + (deltas[j - 1] if j > 0 else 0.0)
        v_trust.append(pi @ means)
        v_lcb.append(means[int(np.argmax(rhat - bonus))])
    return g_hat, np.array(v_trust), np.array(v_lcb)


# ------------------------------------------------------------------------------- the JAX suite
def jax_suite_fn(num_seeds: int, num_draws: int, delta: float):
    def suite(means, counts, sigma, grid, etas, rhats):
        g_hat = jax.lax.map(lambda eta: bandits.tr_linmax_behaviour(eta, counts, sigma=sigma, eps=grid) @ eta,
                            etas, batch_size=100).mean(0)

        def one(rhat):
            tr = bandits.trust(rhat, counts, sigma=sigma, grid=grid, complexity=g_hat, delta=delta)
            pol, _ = bandits.lcb(rhat, counts, sigma=sigma, delta=delta)
            return tr["policy"] @ means, pol @ means

        v_trust, v_lcb = jax.lax.map(one, rhats, batch_size=100)
        return g_hat, v_trust, v_lcb

    return jax.jit(suite)


def bench_instance(inst, *, num_seeds, num_draws, delta, repeats):
    means, counts, sigma = inst["means"], inst["counts"].astype(float), inst["sigma"]
    grid = np.asarray(bandits.radius_grid(jnp.asarray(counts), sigma=sigma, num=20))
    sd = np.where(counts > 0, sigma / np.sqrt(np.maximum(counts, 1)), 0.0)
    etas = np.asarray(jax.random.normal(jax.random.key(1), (num_draws, counts.size))) * sd
    rhats = np.asarray(jax.vmap(lambda k: bandits.sample_means(k, means=jnp.asarray(means), counts=jnp.asarray(counts),
                                                               sigma=sigma))(
        jax.random.split(jax.random.key(2), num_seeds)))
    args = tuple(jnp.asarray(a) for a in (means, counts, sigma, grid, etas, rhats))
    t0 = time.perf_counter()
    compiled = jax_suite_fn(num_seeds, num_draws, delta).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ref = np_suite(means, counts, sigma, grid, etas, rhats, delta)
    np_s = time.perf_counter() - t0
    err = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(out, ref, strict=True))
    return {"jax": min(times), "compile": compile_s, "numpy": np_s, "max_abs_diff": err,
            "trust_mean": float(np.mean(ref[1])), "lcb_mean": float(np.mean(ref[2]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    instances = [bandits.trap_half(d=1000, n0=10_000, sigma=0.5), bandits.half01(d=1000, n=1, sigma=1.0),
                 bandits.minimax(d=10, n=100, gap=0.2)]
    rows = []
    with jax.enable_x64(True):
        for inst in instances:
            r = bench_instance(inst, num_seeds=args.seeds, num_draws=args.draws, delta=0.1, repeats=args.repeats)
            rows.append((inst["name"], r))
            print(f"{inst['name']:28s} jax {r['jax']:6.2f} s (compile {r['compile']:.1f} s)  "
                  f"numpy {r['numpy']:7.2f} s  ratio {r['numpy'] / r['jax']:6.1f}x  max |Δ| {r['max_abs_diff']:.1e}",
                  flush=True)
    tot_j, tot_n = sum(r["jax"] for _, r in rows), sum(r["numpy"] for _, r in rows)
    section = [
        "## trust bandit suite (TRUST + LCB, jitted and seed-vmapped vs a numpy loop)",
        "",
        f"`python benchmarks/trust_suite.py` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), jax {jax.__version__}, float64, "
        f"{time.strftime('%Y-%m-%d')}. Per instance: Ĝ on 20 radii from "
        f"{args.draws} Monte Carlo draws, then TRUST and LCB on {args.seeds} data seeds. Both sides run the same "
        "sort-based exact trust-region solver on the same draws; the numpy side loops over draws, seeds and radii. "
        f"JAX: best of {args.repeats} runs of the AOT-compiled suite (compilation listed apart).",
        "",
        "| instance | JAX s | JAX compile s | numpy loop s | numpy / JAX | max abs difference |",
        "|---|---|---|---|---|---|",
        *[f"| {n} | {r['jax']:.2f} | {r['compile']:.1f} | {r['numpy']:.2f} | {r['numpy'] / r['jax']:.1f}× | "
          f"{r['max_abs_diff']:.1e} |" for n, r in rows],
        f"| **total** | {tot_j:.2f} | | {tot_n:.2f} | **{tot_n / tot_j:.1f}×** | |",
        "",
        "Both sides use the closed-form sort-based solver (no bisection), which is already vectorised over arms in "
        "numpy: at d = 1000 each solve is a few O(d) array operations, so one XLA program over all seeds gains only "
        "what Python's per-seed and per-radius dispatch cost (about 1.5–2×; XLA's CPU sort is no faster than "
        "numpy's). At small d (minimax) dispatch is everything and the jitted suite is two orders of magnitude "
        "faster. For scale, the spec's numpy prototype with the 45-step bisection solver took ~55 s per d = 1000 "
        "instance. The machine is shared with other jobs, so absolute seconds are noisy; each ratio is measured in "
        "one process, back to back.",
        "",
    ]
    write_section("trust bandit suite", section)


if __name__ == "__main__":
    main()
