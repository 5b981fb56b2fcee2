"""Benchmark B2 (spec §5.6): the fused vmap + `lax.scan` Pendulum sampler, actor in the loop, against a Python loop
that makes one jitted call (actor + env step of all envs) per time step.

    python benchmarks/spreeze_sampler.py            # writes the spreeze B2 section of benchmarks/RESULTS.md

Both run the same actor (SAC's tanh-Gaussian, 256×256) and the same env code (lib/rl/pendulum.py) on the same
n_envs, single-threaded XLA; compile excluded; median of 3 interleaved repeats (projects/spreeze/fused.py).
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

from projects.spreeze import fused  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n_envs", default="1,64,256,1024")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for n in (int(x) for x in args.n_envs.split(",")):
        r = fused.sampler_rates(n_envs=n, steps=args.steps, hidden=(256, 256), repeats=3)
        print(n, r, flush=True)
        gate = "" if n < 64 else (" ✅" if r["fused_over_loop1"] >= 10 else " ❌")
        rows.append(f"| {n} | {r['fused_transitions_per_s']:.0f} | {r['loop1_transitions_per_s']:.0f} | "
                    f"×{r['fused_over_loop1']:.1f}{gate} | {r['loop_transitions_per_s']:.0f} | "
                    f"×{r['fused_over_loop']:.1f} |")
    lines = [
        "## spreeze B2: fused Pendulum sampler vs a Python loop of jitted steps",
        "",
        f"`python benchmarks/spreeze_sampler.py` on {os.cpu_count()} CPU cores ({platform.machine()}), jax "
        f"{jax.__version__}, single-threaded XLA, {time.strftime('%Y-%m-%d')}. {args.steps} policy steps of n_envs "
        "pendulums (SAC actor 256×256 sampling, env step, auto-reset); transitions/s, median of 3 interleaved "
        "repeats, compile excluded. Gate (n_envs ≥ 64): fused ≥ 10× the spec's Python-loop sampler (one jitted call "
        "per env step). The vectorised loop does the same work per call as one fused step, so its ratio is the "
        f"dispatch overhead alone. Load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| n_envs | fused (vmap + scan), transitions/s | loop: one jit call per env step (1 env) | ratio (B2) | "
        "loop: one jit call per step of all n_envs | ratio |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("spreeze B2", lines)


if __name__ == "__main__":
    main()
