"""Benchmark: how many cores a "single-threaded" XLA process uses, and what two processes side by side get.

    python benchmarks/xla_cpu_threads.py   # writes the "XLA CPU threads" section of benchmarks/RESULTS.md

Why it exists: the projects start XLA with `--xla_cpu_multi_thread_eigen=false` (`harness.runtime`'s "single"
mode) and several READMEs read that as one thread per process. On jax 0.10 it is not: the flag turns off Eigen's
thread pool, but XLA's CPU kernels (dots, large elementwise fusions) still run on an intra-op pool of one thread
per core. This measures it on three programs (a large dot, a large elementwise fusion, and 50 steps of a 256-wide
MLP at batch 256, the size of spreeze's SAC networks), each in a child process under the projects' flag, timed
over at least `--repeats` calls and `--seconds` after a warm-up call:
  - alone, free to use every core (process CPU time ÷ wall time says how many cores it kept busy);
  - alone, pinned to one core (`os.sched_setaffinity` before JAX starts: truly single-threaded);
  - two at once, each pinned to its own core (are the cores independent?);
  - two at once, unpinned (what two of the projects' processes get side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness import runtime  # noqa: E402

PROGRAMS = ("dot 1024×1024 · 1024×4096", "tanh over 4096×4096", "MLP 256×256, batch 256, 50 steps")


def child(core: int | None, repeats: int, seconds: float) -> dict:
    if core is not None:
        os.sched_setaffinity(0, {core})
    import jax
    import jax.numpy as jnp

    x, w, big = jnp.ones((1024, 1024)), jnp.ones((1024, 4096)), jnp.ones((4096, 4096))
    h, b = jnp.ones((256, 256)), jnp.ones((256, 256)) / 256
    programs = ((jax.jit(lambda x, w: x @ w), (x, w)),
                (jax.jit(lambda a: jnp.tanh(a) * 2.0), (big,)),
                (jax.jit(lambda h, b: jax.lax.fori_loop(0, 50, lambda i, z: jnp.tanh(z @ b), h)), (h, b)))
    out = {}
    for name, (f, args) in zip(PROGRAMS, programs, strict=True):
        jax.block_until_ready(f(*args))
        c, t, n = time.process_time(), time.perf_counter(), 0
        while n < repeats or time.perf_counter() - t < seconds:  # long enough for side-by-side runs to overlap
            jax.block_until_ready(f(*args))
            n += 1
        out[name] = {"wall": (time.perf_counter() - t) / n, "cpu": (time.process_time() - c) / n}
    return out


def launch(core: int | None, repeats: int, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, XLA_FLAGS=runtime.SINGLE_THREAD_XLA_FLAGS)
    args = [sys.executable, os.path.abspath(__file__), "--child", f"--repeats={repeats}", f"--seconds={seconds}"]
    if core is not None:
        args.append(f"--core={core}")
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def collect(procs) -> list[dict]:
    outs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"xla_cpu_threads: a child process failed with exit status {p.returncode}")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10, help="at least this many calls per program")
    ap.add_argument("--seconds", type=float, default=3.0, help="and at least this long per program")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.core, args.repeats, args.seconds)))
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("xla_cpu_threads: needs at least 2 cores")
    free = collect([launch(None, args.repeats, args.seconds)])[0]
    pinned = collect([launch(cores[0], args.repeats, args.seconds)])[0]
    both_pinned = collect([launch(c, args.repeats, args.seconds) for c in cores[:2]])
    both_free = collect([launch(None, args.repeats, args.seconds) for _ in range(2)])
    lines = [
        "## XLA CPU threads: what one \"single-threaded\" process uses, and two side by side",
        "",
        f"`python benchmarks/xla_cpu_threads.py` on {len(cores)} CPU cores "
        f"({platform.processor() or platform.machine()}), {time.strftime('%Y-%m-%d')}. Every process runs with the "
        f"projects' `XLA_FLAGS={runtime.SINGLE_THREAD_XLA_FLAGS}` (`harness.runtime`'s \"single\" mode); time per "
        f"call, the mean over at least {args.repeats} calls and {args.seconds:.0f} s after a warm-up call. "
        "\"Cores busy\" is process CPU time ÷ wall time.",
        "",
        "| program | alone (s) | cores busy | alone, pinned to one core (s) | two pinned, each on its own core (s) "
        "| two unpinned side by side (s) | throughput of two pinned ÷ one alone | two unpinned ÷ one alone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in PROGRAMS:
        a, p = free[name], pinned[name]
        bp = " / ".join(f"{o[name]['wall']:.3f}" for o in both_pinned)
        bf = " / ".join(f"{o[name]['wall']:.3f}" for o in both_free)
        gain_p = sum(a["wall"] / o[name]["wall"] for o in both_pinned)
        gain_f = sum(a["wall"] / o[name]["wall"] for o in both_free)
        lines.append(f"| {name} | {a['wall']:.3f} | {a['cpu'] / a['wall']:.2f} | {p['wall']:.3f} | {bp} | {bf} "
                     f"| ×{gain_p:.2f} | ×{gain_f:.2f} |")
    slow = [pinned[n]["wall"] / free[n]["wall"] for n in PROGRAMS]
    side = [o[n]["wall"] / pinned[n]["wall"] for n in PROGRAMS for o in both_pinned]
    lines += ["",
              f"The flag does not make XLA single-threaded here: alone, each program kept "
              f"{min(free[n]['cpu'] / free[n]['wall'] for n in PROGRAMS):.2f}–"
              f"{max(free[n]['cpu'] / free[n]['wall'] for n in PROGRAMS):.2f} cores busy, and pinned to one core it "
              f"ran {min(slow):.2f}–{max(slow):.2f}× slower. The cores themselves are independent: two pinned "
              f"processes side by side each ran at {1 / max(side):.2f}–{1 / min(side):.2f}× the speed of one pinned "
              "process alone. So a second process (a second worker, a sampler beside a learner, a second device's "
              "half of an update) finds little idle capacity: one process already keeps both cores busy, and two "
              "side by side get the throughput in the last two columns.",
              ""]
    print("\n".join(lines))
    if not args.no_write:
        write_section("XLA CPU threads", lines)


if __name__ == "__main__":
    main()
