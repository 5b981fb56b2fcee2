"""Benchmark B5 (spec §5.6): the dual-device actor/critic split against the fused update, on two forced CPU devices.

    python benchmarks/spreeze_split.py            # writes the spreeze B5 section of benchmarks/RESULTS.md

Throughput: SAC updates/s (HalfCheetah sizes, 256×256) of `sac.update` on device 0 against
`projects/spreeze/split.py` (critic on device 1, actor + α on device 0, one-step-stale exchange) at B = 256 and
1024; 3 interleaved repeats of 30 updates, median; run in a child process started with
`--xla_force_host_platform_device_count=2` and single-threaded XLA (the split has no collectives, so the
single-thread hang of spec pitfall 13 does not apply). Learning: the quick preset's fused Pendulum run with
`sac.update` against `sac.update_stale` (the split's exact maths on one device): env steps to return ≥ −200.
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


def throughput_worker(batch_sizes, updates: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from lib.rl import sac
    from lib.rl.types import Transition
    from projects.spreeze import split

    devs = jax.devices()
    assert len(devs) == 2, devs
    key = jax.random.key(0)
    fused = jax.jit(sac.update, donate_argnums=0)
    step = split.make_split_update(actor_device=devs[0], critic_device=devs[1])
    out = {}
    for b in batch_sizes:
        ks = jax.random.split(key, 3)
        batch = Transition(obs=jax.random.normal(ks[0], (b, 17)), action=jax.random.uniform(ks[1], (b, 6), minval=-1),
                           reward=jax.random.normal(ks[2], (b,)), done=jnp.zeros((b,)),
                           next_obs=jax.random.normal(ks[0], (b, 17)))
        s_f = jax.device_put(sac.init(key, obs_dim=17, action_dim=6), devs[0])
        s_s = split.place(sac.init(key, obs_dim=17, action_dim=6), actor_device=devs[0], critic_device=devs[1])
        b0 = jax.device_put(batch, devs[0])
        s_f, m = fused(s_f, b0, key)
        s_s, m = step(s_s, b0, key)
        jax.block_until_ready((s_f.step, s_s.step))
        s_f1 = jax.device_put(sac.init(key, obs_dim=17, action_dim=6), devs[1])
        b1 = jax.device_put(batch, devs[1])
        s_f1, m = fused(s_f1, b1, key)
        jax.block_until_ready(m)
        times = {"fused": [], "split": [], "two_fused": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(updates):
                s_f, m = fused(s_f, b0, key)
            jax.block_until_ready(m["critic_loss"])
            times["fused"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(updates):
                s_s, m = step(s_s, b0, key)
            jax.block_until_ready((m["critic_loss"], m["actor_loss"]))
            times["split"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # the machine's ceiling: two independent fused updates, one per device, at once
            for _ in range(updates):
                s_f, m = fused(s_f, b0, key)
                s_f1, m1 = fused(s_f1, b1, key)
            jax.block_until_ready((m["critic_loss"], m1["critic_loss"]))
            times["two_fused"].append((time.perf_counter() - t0) / 2)  # per update of the pair
        for k, ts in times.items():
            out[f"{k}/B{b}"] = updates / sorted(ts)[len(ts) // 2]
    return out


def learning_worker(stale: bool, seed: int) -> dict:
    from harness import runtime

    runtime.configure_xla_cpu_threads()
    from configs.spreeze import default
    from lib import stats
    from projects.spreeze import run

    config = default.get_config("quick")
    config.fused.stale_updates = stale
    r = run.fused_run(config, stats.seed_keys(config.seed, seed + 1)[seed], show_progress=False)
    return {k: r[k] for k in ("time_to_threshold_s", "env_steps_to_threshold", "updates_to_threshold",
                              "final_return")}


def _child(args: list[str], env_extra: dict) -> dict:
    env = dict(os.environ, REPROJAX_PROGRESS="0", **env_extra)
    out = subprocess.run([sys.executable, __file__, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default="")
    ap.add_argument("--stale", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--skip_learning", action="store_true")
    args = ap.parse_args()
    if args.worker == "throughput":
        print(json.dumps(throughput_worker((256, 1024), updates=30, repeats=3)))
        return
    if args.worker == "learning":
        print(json.dumps(learning_worker(bool(args.stale), args.seed)))
        return
    load0 = os.getloadavg()
    flags = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"
    tp = _child(["--worker=throughput"], {"XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"})
    print(tp, flush=True)
    rows = [f"| {b} | {tp[f'fused/B{b}']:.1f} | {tp[f'split/B{b}']:.1f} | ×{tp[f'split/B{b}'] / tp[f'fused/B{b}']:.2f}"
            f"{' ✅' if tp[f'split/B{b}'] / tp[f'fused/B{b}'] >= 1.10 else ' ❌'} | "
            f"{tp[f'two_fused/B{b}']:.1f} (×{tp[f'two_fused/B{b}'] / tp[f'fused/B{b}']:.2f}) |" for b in (256, 1024)]
    learn_lines = []
    if not args.skip_learning:
        res = {False: [], True: []}
        for seed in range(args.seeds):
            for stale in (False, True):
                res[stale].append(_child(["--worker=learning", f"--stale={int(stale)}", f"--seed={seed}"], {}))
                print(stale, res[stale][-1], flush=True)
        steps = {k: [r["env_steps_to_threshold"] for r in v] for k, v in res.items()}
        ok = all(s is not None for v in steps.values() for s in v)
        ratio = (sorted(steps[True])[len(steps[True]) // 2] / sorted(steps[False])[len(steps[False]) // 2]) if ok \
            else None
        learn_lines = [
            "",
            f"Learning (quick preset's fused Pendulum run, {args.seeds} seed(s)): env steps to −200 with `update` "
            f"{steps[False]}, with `update_stale` (the split's maths) {steps[True]}"
            + (f": ratio ×{ratio:.2f} (gate ≤ ×1.2: {'holds' if ratio <= 1.2 else 'fails'})." if ok
               else ": a run missed the threshold."),
        ]
    import jax

    lines = [
        "## spreeze B5: actor/critic split over two devices vs the fused update",
        "",
        f"`python benchmarks/spreeze_split.py` on {os.cpu_count()} CPU cores ({platform.machine()}), jax "
        f"{jax.__version__}, {time.strftime('%Y-%m-%d')}; two forced host devices, single-threaded XLA; SAC updates/s "
        "at HalfCheetah sizes (obs 17, act 6, 256×256), median of 3 interleaved repeats of 30 updates. The devices "
        "are the same two shared cores (spec pitfall 11: the paper's two-GPU gain cannot be shown here). Gate: "
        f"split ≥ ×1.10 fused. Load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| B | fused updates/s (device 0) | split updates/s (critic dev 1, actor dev 0) | ratio | ceiling: two "
        "independent fused updates at once, one per device, updates/s in all (× fused) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "The ceiling column is what two devices can give at all here: two unrelated updates running at once. The "
        "split cannot beat it (its two halves are smaller than one update and exchange parameters every step).",
        *learn_lines,
        "",
    ]
    write_section("spreeze B5", lines)


if __name__ == "__main__":
    main()
