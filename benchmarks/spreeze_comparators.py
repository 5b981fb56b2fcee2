"""Benchmarks B1 and B3 (spec §5.5–5.6): the spreeze system and its learner against C0 (our sequential SAC),
C1 (Stable-Baselines3 SAC) and C2 (sbx SAC), side by side in one run, on HalfCheetah-v5.

    pip install -e '.[rl]'
    python benchmarks/spreeze_comparators.py      # ~7 min on 2 cores; writes the spreeze B1/B3 section of RESULTS.md

B1, sampling. S = the env steps/s written by the system's sampler processes (`projects/spreeze/system.py`, the quick
preset's `system` group on HalfCheetah-v5: 1 sampler of 16 envs, 1 learner at B = 256, evaluator and dashboard
running), over the window from 10 s after the first write (and no earlier than the learner's first logged second)
to the end of a `--system_s` run, read from its `system.jsonl`. Against the env-step rate of two training loops,
each one env step and one SAC update (B = 256) per step, timed for `--seq_steps` steps after SB3's learning_starts
(100 random steps) and a few compiling steps:
    C0  ours: `jax.jit` of (add the step to the `lib/rl/replay` ring, sample, `sac.update`, `sac.act` on the next
        observation), i.e. one jitted call per env step (spec §5.5's C0, on HalfCheetah instead of Pendulum);
    C1  `stable_baselines3.SAC("MlpPolicy")` with its defaults, `learn` in one call.
Rounds alternate system, then C0 and C1 (one process, order swapped every round); `--repeats` rounds, medians of
the per-round ratios. The same system run also gives B3b: its learner's transitions/s over the same window, with
the sampler busy on the same 2 cores, against C0's standalone update at B = 256 below.

B3, learner throughput at HalfCheetah sizes (obs 17, act 6, 256×256): ours is `projects/spreeze/run.py:
learner_rates` (the fused `sac.update` on random device-resident batches) at B ∈ `--batch_sizes`; B* is chosen from
this run's curve by the auto-tuner's rule (`autotune.choose`: smallest B within 10 % of the best); C0's figure is
the same update at B = 256 (C0 calls exactly this update once per env step). C1 and C2 are `SAC.train(gradient_steps,
256)` of SB3 and sbx with their defaults on a replay buffer filled with 10,000 HalfCheetah transitions (their
train includes sampling from that buffer; ours does not). All three in one process, interleaved `--repeats`
rounds, compile and warm-up excluded, medians of the per-round ratios. Threads: 1 (single-threaded XLA,
`torch.set_num_threads(1)`, OMP_NUM_THREADS=1) and, with `--threads=1,2`, 2 (XLA's default pool, torch 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness import runtime  # noqa: E402

runtime.configure_xla_cpu_threads()  # this process and its children; a 2-thread worker drops it (see _child)

ENV_ID, LEARNING_STARTS, BATCH = "HalfCheetah-v5", 100, 256


def _quiet_env(env_id: str = ENV_ID):
    import gymnasium as gym

    from projects.spreeze import system

    system.quiet_mujoco()
    return gym.make(env_id)


# ----------------------------------------------------------------------------------------------- B1 workers


def c0_env_steps_per_s(steps: int, seed: int = 0) -> float:
    """C0 on HalfCheetah: env steps/s of one env, one jitted call (ring add, sample, SAC update, next action) per
    env step, after LEARNING_STARTS random steps and 5 compiling steps."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    from lib.rl import replay, sac
    from lib.rl.types import Transition

    env = _quiet_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    key = jax.random.key(seed)
    state = sac.init(key, obs_dim=obs_dim, action_dim=act_dim)  # SB3's defaults: lr 3e-4, 256×256, α₀ = 1
    example = Transition(obs=jnp.zeros(obs_dim), action=jnp.zeros(act_dim), reward=jnp.zeros(()),
                         done=jnp.zeros(()), next_obs=jnp.zeros(obs_dim))
    ring = replay.init(capacity=LEARNING_STARTS + steps + 100, example=example)
    add = jax.jit(replay.add, donate_argnums=0)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def learn_step(state, ring, tr, act_obs, t):
        k = jax.random.fold_in(key, t)
        k_batch, k_update, k_act = jax.random.split(k, 3)
        ring = replay.add(ring, tr)
        state, metrics = sac.update(state, replay.sample(ring, k_batch, batch_size=BATCH), k_update)
        return state, ring, sac.act(state.actor.apply_fn, state.actor.params, act_obs, k_act)[0]

    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    action = rng.uniform(-1, 1, act_dim).astype(np.float32)

    def env_step(t, action):
        nonlocal obs
        next_obs, reward, term, trunc, _ = env.step(low + (action + 1.0) * 0.5 * (high - low))
        tr = Transition(obs=obs[None].astype(np.float32), action=action[None], reward=np.float32([reward]),
                        done=np.float32([term]), next_obs=next_obs[None].astype(np.float32))
        obs = env.reset(seed=seed + t)[0] if term or trunc else next_obs
        return tr

    for t in range(LEARNING_STARTS):
        ring = add(ring, env_step(t, action))
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)
    t = LEARNING_STARTS
    for _ in range(5):  # compile
        tr = env_step(t, action)
        state, ring, a = learn_step(state, ring, tr, obs[None].astype(np.float32), t)
        action, t = np.asarray(a), t + 1
    t0 = time.perf_counter()
    for _ in range(steps):
        tr = env_step(t, action)
        state, ring, a = learn_step(state, ring, tr, obs[None].astype(np.float32), t)
        action, t = np.asarray(a), t + 1  # the next env step needs it: one step, one update, in turn
    dt = time.perf_counter() - t0
    assert int(state.step) == steps + 5
    return steps / dt


def c1_env_steps_per_s(steps: int, seed: int = 0) -> float:
    """C1: SB3 SAC("MlpPolicy") defaults on HalfCheetah; env steps/s of `learn(steps)` after learning_starts and
    20 training steps (SB3: one env step, then one gradient step at B = 256)."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", _quiet_env(), seed=seed, verbose=0, device="cpu")
    assert model.learning_starts == LEARNING_STARTS and model.batch_size == BATCH
    model.learn(total_timesteps=LEARNING_STARTS + 20)
    n0 = model._n_updates
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    assert model._n_updates - n0 == steps, (model._n_updates, n0)
    return steps / dt


def worker_sequential(steps: int, c1_first: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    order = ("c1", "c0") if c1_first else ("c0", "c1")
    fns = {"c0": c0_env_steps_per_s, "c1": c1_env_steps_per_s}
    return {name: fns[name](steps) for name in order}


def worker_system(duration_s: float, workdir: str) -> dict:
    """One run of the system (quick preset's `system` group, HalfCheetah-v5) for `duration_s`; the sampling rate
    and the learner's transitions/s over the steady window (see the module docstring)."""
    from configs.spreeze import default
    from lib.metrics import read_jsonl
    from projects.spreeze import system

    config = default.get_config("quick")
    config.system.env_id = ENV_ID
    config.system.duration_s = float(duration_s)
    system.validate(config)
    t_start = time.time()
    res = system.train_and_evaluate(config, workdir)
    sysdir = os.path.join(workdir, "system")
    rows = read_jsonl(os.path.join(sysdir, "system.jsonl"))
    lrows = read_jsonl(os.path.join(sysdir, "learner.jsonl"))
    written = [r for r in rows if r["env_steps"] > 0]
    if not written or len(lrows) < 3:
        raise RuntimeError(f"the system did not reach steady state in {duration_s} s: {len(written)} sampling rows, "
                           f"{len(lrows)} learner rows; raise --system_s")
    w0 = max(written[0]["wall_s"] + 10.0, lrows[0]["wall_s"])
    win = [r for r in rows if r["wall_s"] >= w0]
    lwin = [r for r in lrows if r["wall_s"] >= w0]
    if len(win) < 2 or len(lwin) < 2 or win[-1]["wall_s"] - win[0]["wall_s"] < 10.0:
        raise RuntimeError(f"steady window shorter than 10 s (starts at {w0:.1f} s of {rows[-1]['wall_s']:.1f} s); "
                           "raise --system_s")
    s = config.system
    return {
        "sampling_hz": (win[-1]["env_steps"] - win[0]["env_steps"]) / (win[-1]["wall_s"] - win[0]["wall_s"]),
        "learner_transitions_per_s": s.batch_size * (lwin[-1]["updates"] - lwin[0]["updates"])
        / (lwin[-1]["wall_s"] - lwin[0]["wall_s"]),
        "window_s": [win[0]["wall_s"], win[-1]["wall_s"]], "learner_start_s": lrows[0]["wall_s"],
        "n_samplers": s.n_samplers, "envs_per_sampler": s.envs_per_sampler, "batch_size": s.batch_size,
        "policy_lag_mean": res["metrics"].get("policy_lag/mean"), "wall_s": time.time() - t_start,
    }


# ----------------------------------------------------------------------------------------------- B3 worker


def _filled(model, data) -> None:
    """SB3/sbx model: a no-output logger and its replay buffer filled with `data` (obs, next_obs, act, rew, done)."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    obs, next_obs, act, rew, done = data
    for i in range(len(obs)):
        model.replay_buffer.add(obs[i:i + 1], next_obs[i:i + 1], act[i:i + 1], rew[i:i + 1], done[i:i + 1], [{}])


def worker_learner(threads: int, batch_sizes: tuple[int, ...], updates: int, gradient_steps: int,
                   repeats: int, fill: int = 10_000) -> dict:
    """B3 in one process: ours (`run.learner_rates`) at each B, SB3 and sbx `train(gradient_steps, 256)`, interleaved
    `repeats` rounds; transitions/s per round."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import jax
    import sbx
    import stable_baselines3

    from projects.spreeze import run

    env = _quiet_env()
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for t in range(fill):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        rows.append((obs, nxt, a, r, term))
        obs = env.reset(seed=t)[0] if term or trunc else nxt
    data = tuple(np.asarray(x, np.float32) for x in zip(*rows, strict=True))
    models = {"c1": stable_baselines3.SAC("MlpPolicy", env, seed=0, verbose=0, device="cpu"),
              "c2": sbx.SAC("MlpPolicy", env, seed=0, verbose=0)}
    for m in models.values():
        assert m.batch_size == BATCH
        _filled(m, data)
        m.train(gradient_steps=gradient_steps, batch_size=BATCH)  # warm-up (sbx: compile)
    out = {"c1": [], "c2": [], **{f"ours/B{b}": [] for b in batch_sizes}}
    for _ in range(repeats):
        r = run.learner_rates(batch_sizes=batch_sizes, updates=updates, obs_dim=data[0].shape[1],
                              action_dim=data[2].shape[1], hidden=(256, 256), repeats=1)
        for b in batch_sizes:
            out[f"ours/B{b}"].append(r[f"transitions_per_s/B{b}"])
        for name, m in models.items():
            n0 = m._n_updates
            t0 = time.perf_counter()
            m.train(gradient_steps=gradient_steps, batch_size=BATCH)
            if name == "c2":
                jax.block_until_ready(m.policy.qf_state.params)
            dt = time.perf_counter() - t0
            assert m._n_updates - n0 == gradient_steps
            out[name].append(BATCH * gradient_steps / dt)
    return {"threads": threads, "rates": out, "xla_flags": os.environ.get("XLA_FLAGS", "default"),
            "torch_threads": torch.get_num_threads(), "sbx": sbx.__version__}


# ----------------------------------------------------------------------------------------------- driver


def _child(args: list[str], *, threads: int = 1, timeout_s: float = 900) -> dict:
    env = dict(os.environ, REPROJAX_PROGRESS="0", OMP_NUM_THREADS=str(threads))
    if threads != 1:  # XLA's default thread pool: drop the single-thread flags this process set
        env.pop("XLA_FLAGS", None)
        env["REPROJAX_XLA_THREADS"] = "default"
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        p = subprocess.run([sys.executable, __file__, *args, f"--out={out}"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout_s)
        if p.returncode != 0:
            raise RuntimeError(f"worker {args} failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.remove(out)


def _med(xs) -> float:
    return statistics.median(xs)


def _gate(ratio: float, bar: float) -> str:
    """The ratio as text, two decimals (one from ×10 on), with ✅ if it reaches `bar` and ❌ if not."""
    return (f"×{ratio:.1f}" if ratio >= 10 else f"×{ratio:.2f}") + (" ✅" if ratio >= bar else " ❌")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--system_s", type=float, default=60.0, help="seconds of each system run (B1)")
    ap.add_argument("--seq_steps", type=int, default=300, help="timed env steps of C0 and C1 per round (B1)")
    ap.add_argument("--batch_sizes", default="256,512,1024,2048", help="our learner's candidates (B3)")
    ap.add_argument("--updates", type=int, default=30, help="our updates per timing (B3)")
    ap.add_argument("--gradient_steps", type=int, default=50, help="SB3/sbx gradient steps per timing (B3)")
    ap.add_argument("--threads", default="1,2", help="B3 thread settings to run")
    ap.add_argument("--skip_b1", action="store_true")
    ap.add_argument("--worker", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    if BATCH not in batch_sizes:
        ap.error(f"--batch_sizes must include C0's B = {BATCH}")
    if args.worker:
        if args.worker == "sequential":
            res = worker_sequential(args.seq_steps, c1_first=bool(args.round % 2))
        elif args.worker == "system":
            res = worker_system(args.system_s, args.workdir)
        elif args.worker == "learner":
            res = worker_learner(int(args.threads), batch_sizes, args.updates, args.gradient_steps, args.repeats)
        else:
            ap.error(f"unknown --worker={args.worker!r}")
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(res, f)
        return

    t_run = time.perf_counter()
    load0 = os.getloadavg()
    b1 = {"system": [], "seq": []}
    if not args.skip_b1:
        for r in range(args.repeats):
            wd = tempfile.mkdtemp(prefix="spreeze_b1_")
            try:
                b1["system"].append(_child(["--worker=system", f"--system_s={args.system_s}", f"--workdir={wd}"],
                                             timeout_s=args.system_s + 300))
            finally:
                shutil.rmtree(wd, ignore_errors=True)
            b1["seq"].append(_child(["--worker=sequential", f"--seq_steps={args.seq_steps}", f"--round={r}"]))
            print(f"B1 round {r}: system {b1['system'][-1]['sampling_hz']:.0f} env steps/s (learner "
                  f"{b1['system'][-1]['learner_transitions_per_s']:.0f} transitions/s); C0 "
                  f"{b1['seq'][-1]['c0']:.1f}, C1 {b1['seq'][-1]['c1']:.1f} env steps/s", flush=True)
    b3 = {}
    for th in (int(x) for x in args.threads.split(",")):
        b3[th] = _child(["--worker=learner", f"--repeats={args.repeats}", f"--batch_sizes={args.batch_sizes}",
                         f"--updates={args.updates}", f"--gradient_steps={args.gradient_steps}", f"--threads={th}"],
                        threads=th)
        print(f"B3 threads={th}:", {k: round(_med(v)) for k, v in b3[th]["rates"].items()}, flush=True)
    load1 = os.getloadavg()
    wall = time.perf_counter() - t_run

    import gymnasium
    import jax
    import mujoco
    import stable_baselines3
    import torch

    from projects.spreeze import autotune

    lines = [
        "## spreeze B1 and B3: the system and its learner vs C0 (our sequential SAC), SB3 SAC (C1) and sbx SAC (C2)",
        "",
        f"`python benchmarks/spreeze_comparators.py` on {os.cpu_count()} CPU cores ({platform.machine()}), jax "
        f"{jax.__version__}, torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, sbx "
        f"{next(iter(b3.values()))['sbx'] if b3 else '?'}, gymnasium {gymnasium.__version__}, mujoco "
        f"{mujoco.__version__}, {time.strftime('%Y-%m-%d')}; load average {load0[0]:.1f} at the start and "
        f"{load1[0]:.1f} at the end; {wall / 60:.1f} min in all. {args.repeats} interleaved rounds; every ratio is "
        "the median of the per-round ratios, measured side by side; compile and warm-up excluded. Threads: C0 and "
        "our learner single-threaded XLA, SB3 `torch.set_num_threads(1)`, OMP_NUM_THREADS=1, unless a row says 2.",
    ]
    if b1["system"]:
        s0 = b1["system"][0]
        rows = []
        for r, (s, q) in enumerate(zip(b1["system"], b1["seq"], strict=True)):
            rows.append(f"| {r} | {s['sampling_hz']:.0f} | {q['c0']:.1f} | {q['c1']:.1f} | "
                        f"×{s['sampling_hz'] / q['c0']:.1f} | ×{s['sampling_hz'] / q['c1']:.1f} | "
                        f"{s['learner_transitions_per_s']:.0f} |")
        r0 = _med([s["sampling_hz"] / q["c0"] for s, q in zip(b1["system"], b1["seq"], strict=True)])
        r1 = _med([s["sampling_hz"] / q["c1"] for s, q in zip(b1["system"], b1["seq"], strict=True)])
        rows.append(f"| **median** | {_med([s['sampling_hz'] for s in b1['system']]):.0f} | "
                    f"{_med([q['c0'] for q in b1['seq']]):.1f} | {_med([q['c1'] for q in b1['seq']]):.1f} | "
                    f"**{_gate(r0, 20)}** | **{_gate(r1, 20)}** | "
                    f"{_med([s['learner_transitions_per_s'] for s in b1['system']]):.0f} |")
        lines += [
            "",
            f"**B1, sampling on {ENV_ID}** (gate: S ≥ 20× C0 and ≥ 20× C1). S = the system's sampler processes "
            f"({s0['n_samplers']} × {s0['envs_per_sampler']} envs, quick preset; learner B = {s0['batch_size']}, "
            f"evaluator and dashboard running), env steps/s over its steady window (from 10 s after the first "
            f"write and the learner's first logged second to the end of a {args.system_s:.0f} s run; in round 0 "
            f"{s0['window_s'][0]:.0f}–{s0['window_s'][1]:.0f} s). C0 and C1: env steps/s of their training loops "
            f"(one env step and one update at B = 256 each step), {args.seq_steps} steps after learning_starts = "
            f"{LEARNING_STARTS}.",
            "",
            "| round | S: system sampling, env steps/s | C0 (ours, sequential), env steps/s | C1 (SB3 SAC), env "
            "steps/s | S / C0 | S / C1 | system learner, transitions/s (same window) |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    if b3:
        rows, b3b = [], None
        for th, res in b3.items():
            rates = res["rates"]
            curve = {b: _med(rates[f"ours/B{b}"]) for b in batch_sizes}
            b_star = autotune.choose(curve, {1: 1.0}, nproc=1)["batch_size"]  # the tuner's B* rule on this curve
            ours = rates[f"ours/B{b_star}"]
            ratio = {k: _med([o / c for o, c in zip(ours, rates[k], strict=True)])
                     for k in ("ours/B256", "c1", "c2")}
            rows.append(f"| {th} | " + " / ".join(f"{curve[b]:.0f}" for b in batch_sizes) + f" | {b_star} | "
                        f"{_med(rates['ours/B256']):.0f} | {_med(rates['c1']):.0f} | {_med(rates['c2']):.0f} | "
                        f"{_gate(ratio['ours/B256'], 1.5)} | {_gate(ratio['c1'], 1.2)} | {_gate(ratio['c2'], 1.2)} |")
            if th == 1 and b1["system"]:
                b3b = _med([s["learner_transitions_per_s"] for s in b1["system"]]) / curve[BATCH]
        lines += [
            "",
            f"**B3, learner transitions/s** (B × updates/s; obs 17, act 6, 256×256; gates: ours at B* ≥ 1.5× C0 at "
            "B = 256, ≥ 1.2× C1 and ≥ 1.2× C2). Ours: `run.learner_rates` (fused `sac.update`, random device-resident "
            f"batches, {args.updates} updates per timing); C0's figure is that same update at B = 256, the one C0 "
            "calls every env step. B* = the smallest B within 10 % of this run's best (`autotune.choose`). C1 and "
            f"C2: SB3 / sbx `SAC.train({args.gradient_steps}, 256)` with their defaults on a buffer of 10,000 "
            "HalfCheetah transitions (their figure includes drawing the batches from that buffer; ours does not). "
            "Threads 2 = XLA's default thread pool and `torch.set_num_threads(2)`.",
            "",
            "| threads | ours by B (" + " / ".join(str(b) for b in batch_sizes) + ") | B* | C0 (ours, B = 256) | "
            "C1 (SB3, B = 256) | C2 (sbx, B = 256) | B* / C0 | B* / C1 | B* / C2 |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
        if b3b is not None:
            lines += ["", f"B3b (gate ≥ 1.1): the system's learner inside the B1 runs (B = {BATCH}, sampler busy on "
                      f"the same cores), median over rounds, against C0's standalone 1-thread figure above: "
                      f"**{_gate(b3b, 1.1)}** (not interleaved per round: the two come from different processes of "
                      "this run)."]
    print(f"total {wall:.0f} s", flush=True)
    write_section("spreeze B1 and B3", lines)


if __name__ == "__main__":
    main()
