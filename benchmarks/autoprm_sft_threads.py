"""Benchmark: autoprm's paper-preset SFT step (3 seeds as a vmap axis) with XLA's CPU thread pool vs single-threaded.

    python benchmarks/autoprm_sft_threads.py   # writes the "autoprm SFT step" section of benchmarks/RESULTS.md

Why it exists: the projects run XLA single-threaded by default (their small steps ran faster that way on 2 cores),
but autoprm's paper preset trains its 3 SFT seeds in the main process with XLA's thread pool
(`config.xla_cpu_threads = "default"`). This measures that choice side by side. XLA reads its flags once per process,
so each mode runs in a child process of its own (the same step: the preset's pools, length plans, model, AdamW), and
the two modes alternate `--rounds` times. Each child compiles a chunk of `--steps` steps in one `lax.scan`, runs it
once to warm up, then times `--chunks` more; the table gives the median over rounds of each child's mean step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness import runtime  # noqa: E402

MODES = {"single": runtime.SINGLE_THREAD_XLA_FLAGS, "default": None}  # None: XLA_FLAGS unset, XLA's thread pool


def child(steps: int, chunks: int) -> dict:
    import jax
    import jax.numpy as jnp

    from configs.autoprm import default
    from lib import stats, transformer
    from projects.autoprm import run

    config = default.get_config("paper")
    R = run._setup(config, workdir="")  # the preset's splits, SFT pools and length plans, as the run builds them
    pools, batch, mc = R.pools, R.batch, R.mc
    tx = run.sft_optimizer(config)
    keys = stats.seed_keys(config.seed, config.num_seeds)
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(keys)
    opt = jax.vmap(tx.init)(params)
    chunk = run.make_chunk(run.make_step(mc, tx, batch), steps, vmapped=True)
    pools_j = jax.tree.map(jnp.asarray, pools)
    t = time.perf_counter()
    params, opt, _ = chunk(params, opt, keys, 0, pools_j)
    jax.block_until_ready(params)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(chunks):
        params, opt, _ = chunk(params, opt, keys, steps * (i + 1), pools_j)
    jax.block_until_ready(params)
    return {"step_s": (time.perf_counter() - t) / (steps * chunks), "first_chunk_s": first,
            "seeds": config.num_seeds, "rows": sum(r for plan in batch.values() for *_, r in plan)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10, help="steps per compiled chunk")
    ap.add_argument("--chunks", type=int, default=3, help="timed chunks per child, after the warm-up chunk")
    ap.add_argument("--rounds", type=int, default=2, help="children per mode, the modes alternating")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.steps, args.chunks)))
        return
    runs: dict = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode, flags in MODES.items():
            env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
            if flags:
                env["XLA_FLAGS"] = flags
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", f"--steps={args.steps}",
                                  f"--chunks={args.chunks}"], env=env, capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(res)
            print(f"round {r} {mode:7s} step {res['step_s']:.3f} s (first chunk {res['first_chunk_s']:.1f} s)",
                  flush=True)
    med = {m: statistics.median(x["step_s"] for x in v) for m, v in runs.items()}
    ratio = med["single"] / med["default"]
    print(f"single {med['single']:.3f} s  default {med['default']:.3f} s  thread pool {ratio:.2f}× as fast")
    if args.no_write:
        return
    one = runs["default"][0]
    lines = [
        "## autoprm SFT step: XLA's CPU thread pool vs single-threaded (paper preset, 3 seeds vmapped)",
        "",
        f"`python benchmarks/autoprm_sft_threads.py` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), {time.strftime('%Y-%m-%d')}. The paper preset's SFT step "
        f"({one['seeds']} seeds as a vmap axis, {one['rows']} length-bucketed rows per seed, d = 128, 2 layers, "
        f"AdamW), "
        f"each mode in its own process, the modes alternating {args.rounds} times; each process times "
        f"{args.chunks} chunks of {args.steps} steps after a warm-up chunk. Median over the processes.",
        "",
        "| XLA CPU threads | step (s) | each process (s) | first chunk, compile included (s) |",
        "|---|---|---|---|",
    ]
    for mode, label in (("single", "single (`--xla_cpu_multi_thread_eigen=false`, the projects' default)"),
                        ("default", "XLA's thread pool (`xla_cpu_threads = \"default\"`)")):
        each = " / ".join(f"{x['step_s']:.3f}" for x in runs[mode])
        first = " / ".join(f"{x['first_chunk_s']:.1f}" for x in runs[mode])
        lines.append(f"| {label} | {med[mode]:.3f} | {each} | {first} |")
    lines += ["", f"The thread pool runs the step **{ratio:.2f}×** as fast as one thread"
              + (", so the paper preset's SFT uses it (the stages after SFT run in single-threaded worker processes, "
                 "one per core)." if ratio > 1 else "; the paper preset's choice of the pool does not hold here."),
              ""]
    write_section("autoprm SFT step", lines)


if __name__ == "__main__":
    main()
