"""Benchmark B4 (spec §5.6): wall-clock to Pendulum-v1 return ≥ −200, our fused SAC against Stable-Baselines3 SAC.

    pip install -e '.[rl]'
    python benchmarks/spreeze_time_to_threshold.py --seeds=3      # writes the spreeze B4 section of RESULTS.md

Each run is its own process, one thread each (ours: single-threaded XLA; SB3: torch.set_num_threads(1)), and the
runs alternate ours, SB3, ours, SB3, … so both see the same machine load. The clock starts when the learner is
built (imports excluded; our compilation included) and stops while the policy is evaluated: 10 deterministic
episodes after every 320 env steps (ours: every segment of 16 envs × 20 iterations) or 200 env steps (SB3:
`learn` in chunks of 200). A run stops 5 evaluations after reaching −200; its final return is the mean of those
5. Ours is the quick preset's `fused` group (configs/spreeze/default.py); SB3 is `SAC("MlpPolicy")` with its
defaults (lr 3e-4, B 256, one update per env step, learning_starts 100).
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

THRESHOLD, FINAL_EVALS, EVAL_EPISODES = -200.0, 5, 10


def worker_ours(seed: int, max_env_steps: int) -> dict:
    from harness import runtime

    runtime.configure_xla_cpu_threads()
    from configs.spreeze import default
    from lib import stats
    from projects.spreeze import run

    config = default.get_config("quick")
    config.fused.max_env_steps = max_env_steps
    key = stats.seed_keys(config.seed, seed + 1)[seed]
    return run.fused_run(config, key, show_progress=False)


def worker_sb3(seed: int, max_env_steps: int) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    paused = 0.0
    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), seed=seed, verbose=0)
    eval_env = gym.make("Pendulum-v1")
    curve = {"wall_s": [], "env_steps": [], "updates": [], "eval_return": []}
    reached = None
    t_first = steps_first = None
    while model.num_timesteps < max_env_steps:
        model.learn(total_timesteps=200, reset_num_timesteps=False)
        if t_first is None:
            t_first, steps_first = time.perf_counter(), model.num_timesteps
        t_eval = time.perf_counter()
        returns = []
        for ep in range(EVAL_EPISODES):
            obs, _ = eval_env.reset(seed=10_000 * (seed + 1) + 100 * len(curve["wall_s"]) + ep)
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        for name, value in (("wall_s", t_eval - t_start - paused), ("env_steps", model.num_timesteps),
                            ("updates", int(model._n_updates)), ("eval_return", float(np.mean(returns)))):
            curve[name].append(value)
        if reached is None and curve["eval_return"][-1] >= THRESHOLD:
            reached = len(curve["wall_s"]) - 1
        paused += time.perf_counter() - t_eval
        if reached is not None and len(curve["wall_s"]) - reached > FINAL_EVALS:
            break
    steps_per_s = (model.num_timesteps - steps_first) / max(curve["wall_s"][-1] - (t_first - t_start), 1e-9)
    return {**curve, "time_to_threshold_s": None if reached is None else curve["wall_s"][reached],
            "env_steps_to_threshold": None if reached is None else curve["env_steps"][reached],
            "updates_to_threshold": None if reached is None else curve["updates"][reached],
            "final_return": float(np.mean(curve["eval_return"][-FINAL_EVALS:])), "updates_per_s": steps_per_s}


def _run_worker(kind: str, seed: int, max_env_steps: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", REPROJAX_PROGRESS="0")
    out = subprocess.run([sys.executable, __file__, f"--worker={kind}", f"--seed={seed}",
                          f"--max_env_steps={max_env_steps}"], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max_env_steps", type=int, default=30_000)
    ap.add_argument("--worker", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="also write the raw runs to this JSON file")
    args = ap.parse_args()
    if args.worker:
        fn = {"ours": worker_ours, "sb3": worker_sb3}[args.worker]
        print(json.dumps(fn(args.seed, args.max_env_steps)))
        return
    runs = {"ours": [], "sb3": []}
    load0 = os.getloadavg()
    for seed in range(args.seeds):
        for kind in ("ours", "sb3"):
            r = _run_worker(kind, seed, args.max_env_steps)
            runs[kind].append(r)
            print(f"{kind} seed {seed}: time {r['time_to_threshold_s']} s, steps {r['env_steps_to_threshold']}, "
                  f"final {r['final_return']:.0f}", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(runs, f)
    import gymnasium
    import jax
    import stable_baselines3
    import torch

    rows, med = [], {}
    for kind, name in (("ours", "fused SAC (ours, quick preset's `fused`)"), ("sb3", "SB3 SAC (C1)")):
        rs = runs[kind]
        times = [r["time_to_threshold_s"] for r in rs]
        ok = all(t is not None for t in times)
        med[kind] = statistics.median(times) if ok else None
        steps = [r["env_steps_to_threshold"] for r in rs]
        rows.append(f"| {name} | {sum(t is not None for t in times)}/{len(rs)} | "
                    + (f"{med[kind]:.1f} ({min(times):.1f}–{max(times):.1f})" if ok else "–") + " | "
                    + (f"{statistics.median(steps):.0f}" if ok else "–") + " | "
                    + f"{statistics.median([r['final_return'] for r in rs]):.0f} |")
    ratio = med["ours"] / med["sb3"] if med["ours"] and med["sb3"] else None
    f_ours = statistics.median([r["final_return"] for r in runs["ours"]])
    f_sb3 = statistics.median([r["final_return"] for r in runs["sb3"]])
    holds = ratio is not None and ratio <= 0.5 and f_ours >= f_sb3 - 0.1 * abs(f_sb3)
    lines = [
        "## spreeze B4: time to Pendulum-v1 return ≥ −200, fused SAC vs Stable-Baselines3 SAC",
        "",
        f"`python benchmarks/spreeze_time_to_threshold.py --seeds={args.seeds}` on {os.cpu_count()} CPU cores "
        f"({platform.machine()}), jax {jax.__version__}, torch {torch.__version__} (1 thread), stable-baselines3 "
        f"{stable_baselines3.__version__}, gymnasium {gymnasium.__version__}, {time.strftime('%Y-%m-%d')}. Each run "
        "its own process, ours and SB3 alternating; clock from building the learner (compile included) to the "
        "first evaluation (10 deterministic episodes, not timed) with mean return ≥ −200; final return = mean of "
        f"the 5 evaluations after it. Load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        "(each run uses one of the 2 cores): compare the ratio, not the seconds.",
        "",
        "| system | seeds reaching −200 | seconds to −200, median (range) | env steps to −200, median | "
        "final return, median |",
        "|---|---|---|---|---|",
        *rows,
        "",
        (f"Time ratio ours / SB3: **×{ratio:.2f}**, a {100 * (1 - ratio):.0f} % cut (paper: 73 %; gate ≤ ×0.5 with "
         f"final return ≥ SB3's − 10 %): **{'holds' if holds else 'fails'}** "
         f"(time {'within' if ratio <= 0.5 else 'over'} the gate; final return {f_ours:.0f} against the bar "
         f"{f_sb3 - 0.1 * abs(f_sb3):.0f})." if ratio is not None
         else "A system missed the threshold in some seed: no ratio."),
        "",
    ]
    write_section("spreeze B4", lines)


if __name__ == "__main__":
    main()
