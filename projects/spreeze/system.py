"""spreeze's asynchronous system on one machine (spec §2.3, §5.2): sampler processes, one learner, one evaluator
and one dashboard process, joined by a shared-memory replay ring and a seqlock parameter broadcast.

    python -m projects.spreeze.system --config=configs/spreeze/default.py:quick      # → runs/spreeze/system/
    python -m projects.spreeze.system --config=configs/spreeze/default.py:quick --config.system.env_id=Hopper-v5

    samplers ×N   gymnasium SyncVectorEnv of `envs_per_sampler` envs each; act with the latest published actor
                  (random actions until the ring holds `warmup_steps` rows); write rows to the ring (reserve-then-
                  write under the ring's lock, no pickling); report env steps and the param version they act with
    learner       uniform batches from the ring (the next batch is drawn while the previous update runs), fused SAC
                  update, publish the actor every `publish_every` updates (version = update count)
    evaluator     every `eval_interval_s`: the newest actor, `eval_episodes` deterministic episodes on its own env
    visualiser    every `viz_interval_s`: dashboard.png (rates, losses, returns, policy lag, replay fill)
    main          watches: sampling rate, replay fill, policy lag (learner version − oldest sampler version) into
                  system.jsonl; restarts a sampler that died (e.g. SIGKILL) without stopping the others; stops on
                  `duration_s`, on the threshold (`stop_at_threshold`), on Ctrl-C or SIGTERM.

Every child is started with the `spawn` method and pins itself to one thread (XLA, OpenMP) before importing JAX
(spec pitfalls 1–2). Shutdown: an Event, joins with a timeout, then terminate/kill; the shared segments are
unlinked in a `finally`, so /dev/shm is clean however the run ends. Bad config values (no samplers, a batch
larger than the ring, an unknown env id) are refused in `validate` before any process starts.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import ml_collections
import numpy as np

from harness import outputs, validation
from lib.metrics import read_json, read_jsonl, write_json_atomic
from lib.rl.paramsync import ParamSync, policy_lag
from lib.rl.shm_replay import SharedReplay

SPAWN = multiprocessing.get_context("spawn")
INSTALL_HINT = "pip install -e '.[rl]' (gymnasium with MuJoCo)"


def _pin_one_thread() -> None:
    """Before JAX starts in a child: one XLA thread, one OpenMP thread (spec §5.2 thread pinning)."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def quiet_mujoco() -> None:
    """MuJoCo 4's XML compiler warns that HalfCheetah's `settotalmass` is deprecated (harmless, spec pitfall 10) and
    appends each warning to MUJOCO_LOG.TXT in the working directory; a no-op warning handler keeps the tree clean."""
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(lambda message: None)


def env_dims(env_id: str) -> tuple[int, int]:
    import gymnasium as gym

    quiet_mujoco()

    env = gym.make(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"its action space is {env.action_space}, not a Box (SAC needs continuous actions)")
        return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    finally:
        env.close()


def validate(config) -> None:
    """Refuses bad `system` values before any process starts: one line naming the field, value and accepted."""
    from projects.spreeze import run

    run.validate(config)  # every number, the system group's included
    s = config.system
    try:
        import gymnasium as gym
    except ImportError:
        raise validation.ConfigError(f"config.system.env_id={s.env_id!r} needs gymnasium: {INSTALL_HINT}") from None
    validation.require(s.env_id in gym.envs.registry, "system.env_id", s.env_id,
              "a registered gymnasium env id with a Box action space, e.g. HalfCheetah-v5, Hopper-v5, Pendulum-v1")
    try:
        env_dims(s.env_id)
    except Exception as e:  # noqa: BLE001 - e.g. mujoco missing
        raise validation.ConfigError(f"config.system.env_id={s.env_id!r} cannot be built here ({type(e).__name__}: "
                                     f"{e}); {INSTALL_HINT}") from None


# ----------------------------------------------------------------------------------------------- children


def _actor(hidden, action_dim):
    from lib.rl import networks

    return networks.GaussianActor(action_dim=action_dim, hidden=tuple(hidden))


def _unravel_fn(hidden, obs_dim, action_dim):
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    params = _actor(hidden, action_dim).init(jax.random.key(0), jnp.zeros((1, obs_dim)))
    return ravel_pytree(params)[1]


def sampler_main(index: int, cfg: dict, replay: SharedReplay, sync: ParamSync, stop, steps, versions) -> None:
    """One sampler process: steps `envs_per_sampler` envs, acts with the newest published actor, writes rows."""
    _pin_one_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    import gymnasium as gym
    import jax

    from lib.rl import sac

    quiet_mujoco()
    n = cfg["envs_per_sampler"]
    envs = gym.make_vec(cfg["env_id"], num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    low, high = envs.single_action_space.low, envs.single_action_space.high
    apply = _actor(cfg["hidden"], replay.action_dim).apply
    unravel = _unravel_fn(cfg["hidden"], replay.obs_dim, replay.action_dim)
    act = jax.jit(lambda p, o, k: sac.act(apply, p, o, k))
    stream = cfg["seed"] * 1000 + index + 100_000 * cfg["process_id"]  # distinct on every sampler of every host
    rng = np.random.default_rng(stream)
    key = jax.random.key(stream)
    obs, _ = envs.reset(seed=int(rng.integers(1 << 31)))
    params, version = None, -1
    try:
        t = 0
        while not stop.is_set():
            if replay.count < cfg["warmup_steps"] or sync.version < 0:
                action = rng.uniform(-1, 1, (n, replay.action_dim)).astype(np.float32)
            else:
                fresh = sync.read_if_newer(version)
                if fresh is not None:
                    params, version = unravel(fresh[0]), fresh[1]
                    versions[index] = version
                action = np.asarray(act(params, obs.astype(np.float32), jax.random.fold_in(key, t)))
            next_obs, reward, terminated, truncated, info = envs.step(low + (action + 1.0) * 0.5 * (high - low))
            true_next = next_obs.copy()
            if "final_obs" in info:  # SAME_STEP autoreset: next_obs is already the reset obs there
                for i in np.flatnonzero(info["_final_obs"]):
                    true_next[i] = info["final_obs"][i]
            replay.add_rows(np.concatenate([obs.reshape(n, -1), action, reward.reshape(n, 1),
                                            terminated.reshape(n, 1), true_next.reshape(n, -1)],
                                           axis=1).astype(np.float32))
            steps[index] += n
            obs = next_obs
            t += 1
    finally:
        envs.close()
        replay.close()
        sync.close()


def _learner_env() -> None:
    """Before JAX starts in the learner: `_pin_one_thread`, without a device count inherited from the parent's
    XLA_FLAGS (`learner_main` sets the mode's own with `jax_num_cpu_devices`)."""
    kept = " ".join(f for f in os.environ.pop("XLA_FLAGS", "").split()
                    if not f.startswith("--xla_force_host_platform_device_count"))
    if kept:
        os.environ["XLA_FLAGS"] = kept
    _pin_one_thread()


def make_learner(cfg: dict, state, key):
    """The learner mode's `(state, put, update, local)`: `put(rows)` turns this process's sampled batch into the
    update's input, `update(state, batch) -> (state, metrics)`, `local(x)` reads a (possibly replicated) array.

    fused  `lib.rl.sac.update` in one jit on one device.
    split  `projects.spreeze.split`: critic step on device 0, actor + α on device 1, one step stale (B5's maths).
    data   `sac.update` over a `"data"` mesh of every device of every process (`jax.distributed` when
           `num_processes` > 1): the state replicated, each process feeding its own rows of the global batch;
           the gradients are averaged over all rows, so every copy of the parameters stays equal (B7).
    """
    import jax

    from lib.rl import sac
    from lib.rl.types import Transition

    mode = cfg["learner"]
    if mode == "fused":
        update = jax.jit(sac.update, donate_argnums=0)
        return state, (lambda b: b), (lambda st, b: update(st, b, key)), np.asarray
    if mode == "split":
        from projects.spreeze import split

        a, c = jax.local_devices()[:2]
        step = split.make_split_update(actor_device=a, critic_device=c)
        return split.place(state, actor_device=a, critic_device=c), (lambda b: b), (lambda st, b: step(st, b, key)), \
            np.asarray
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    rows = NamedSharding(mesh, P("data"))
    update = jax.jit(sac.update, donate_argnums=0)

    def put(b):
        return Transition(*(jax.make_array_from_process_local_data(rows, np.asarray(x, np.float32)) for x in b))

    def local(x):
        return np.asarray(x.addressable_data(0))

    return jax.device_put(state, NamedSharding(mesh, P())), put, (lambda st, b: update(st, b, key)), local


def params_checksum(params, local) -> float:
    """float64 sum of every parameter: equal across the processes of a data-parallel learner."""
    import jax

    return float(sum(local(x).astype(np.float64).sum() for x in jax.tree_util.tree_leaves(params)))


def learner_main(cfg: dict, replay: SharedReplay, sync: ParamSync, stop, workdir: str, t0: float) -> None:
    """The learner process: batches from the ring, SAC updates in the configured mode (`make_learner`), the actor
    published every `publish_every` updates. With several processes (`num_processes`), every learner joins
    `jax.distributed` first, and at each publish they agree whether to stop (any process stopping stops all, at
    the same update, so no learner waits in a collective for one that is gone)."""
    _learner_env()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import jax
    from jax.flatten_util import ravel_pytree

    from lib.rl import sac

    multi = cfg["num_processes"] > 1
    if cfg["learner"] != "fused":
        jax.config.update("jax_num_cpu_devices", cfg["learner_devices"])
    if cfg["learner"] == "data":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if multi:
        jax.distributed.initialize(coordinator_address=cfg["coordinator"], num_processes=cfg["num_processes"],
                                   process_id=cfg["process_id"], initialization_timeout=300)
    key = jax.random.key(cfg["seed"])
    lr = cfg["learning_rate"]
    state = sac.init(key, obs_dim=replay.obs_dim, action_dim=replay.action_dim, hidden=tuple(cfg["hidden"]),
                     actor_lr=lr, critic_lr=lr, alpha_lr=lr)
    state, put, update, local = make_learner(cfg, state, key)
    ravel = jax.jit(lambda p: ravel_pytree(p)[0])
    sync.publish_flat(local(ravel(state.actor.params)), version=0)
    rng = np.random.default_rng([cfg["seed"], cfg["process_id"]])
    rows = cfg["batch_size"] // cfg["num_processes"]  # this process's rows of the global batch
    log = open(os.path.join(workdir, "learner.jsonl"), "a", encoding="utf-8")

    def agreed_stop() -> bool:
        if not multi:
            return stop.is_set()
        from jax.experimental import multihost_utils

        return bool(np.asarray(multihost_utils.process_allgather(np.int32(stop.is_set()))).any())

    try:
        while replay.count < max(cfg["warmup_steps"], rows) and not stop.is_set():
            time.sleep(0.05)
        t_last = time.monotonic()
        updates = last_updates = 0
        batch = put(replay.sample(rng, rows)) if not stop.is_set() else None
        while batch is not None:
            state, metrics = update(state, batch)  # async dispatch: the next batch is drawn meanwhile
            batch = put(replay.sample(rng, rows))
            updates += 1
            if updates % cfg["publish_every"] == 0:
                sync.publish_flat(local(ravel(state.actor.params)), version=updates)
                if agreed_stop():
                    break
            elif not multi and stop.is_set():
                break
            now = time.monotonic()
            if now - t_last >= 1.0:
                row = {k: float(local(v)) for k, v in metrics.items()}
                row.update(wall_s=time.time() - t0, updates=updates,
                           updates_per_s=(updates - last_updates) / (now - t_last),
                           transitions_per_s=cfg["batch_size"] * (updates - last_updates) / (now - t_last))
                log.write(json.dumps(row) + "\n")
                log.flush()
                t_last, last_updates = now, updates
        if multi:
            stop.set()  # a peer asked to stop: this host's main process stops too
        write_json_atomic(os.path.join(workdir, "learner_final.json"), {
            "updates": updates, "learner": cfg["learner"], "devices": jax.device_count(),
            "processes": jax.process_count(),
            "checksum": params_checksum((state.actor.params, state.critic.params), local)})
    finally:
        log.close()
        replay.close()
        sync.close()


def evaluator_main(cfg: dict, sync: ParamSync, stop, steps, reached, workdir: str, t0: float) -> None:
    """The evaluator process: deterministic episodes with the newest actor every `eval_interval_s`."""
    _pin_one_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import gymnasium as gym
    import jax

    from lib.rl import sac

    quiet_mujoco()
    env = gym.make(cfg["env_id"])
    obs_dim, action_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    low, high = env.action_space.low, env.action_space.high
    apply = _actor(cfg["hidden"], action_dim).apply
    unravel = _unravel_fn(cfg["hidden"], obs_dim, action_dim)
    act = jax.jit(lambda p, o: sac.act(apply, p, o, jax.random.key(0), deterministic=True))
    log = open(os.path.join(workdir, "evaluator.jsonl"), "a", encoding="utf-8")
    version, k = -1, 0
    try:
        while not stop.wait(cfg["eval_interval_s"]):
            fresh = sync.read_if_newer(version)
            if fresh is None:
                continue
            params, version = unravel(fresh[0]), fresh[1]
            env_steps = int(sum(steps))
            wall = time.time() - t0
            returns = []
            for ep in range(cfg["eval_episodes"]):
                obs, _ = env.reset(seed=10_000 + 100 * k + ep)
                total, done = 0.0, False
                while not done and not stop.is_set():
                    a = np.asarray(act(params, obs.astype(np.float32)[None]))[0]
                    obs, r, term, trunc, _ = env.step(low + (a + 1.0) * 0.5 * (high - low))
                    total, done = total + float(r), term or trunc
                returns.append(total)
            if stop.is_set():
                break
            ret = float(np.mean(returns))
            if ret >= cfg["threshold"] and reached.value < 0:
                reached.value = wall
            log.write(json.dumps({"wall_s": wall, "version": version, "env_steps": env_steps,
                                  "eval_return": ret}) + "\n")
            log.flush()
            k += 1
    finally:
        log.close()
        env.close()
        sync.close()


def visualiser_main(cfg: dict, stop, workdir: str) -> None:
    """The dashboard process: redraws workdir/dashboard.png every `viz_interval_s`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while not stop.wait(cfg["viz_interval_s"]):  # the final dashboard is drawn by the main process after shutdown
        try:
            draw_dashboard(workdir)
        except Exception as e:  # noqa: BLE001 - a half-written line must not kill the dashboard
            print(f"spreeze visualiser: {e}", flush=True)


def draw_dashboard(workdir: str) -> str:
    """dashboard.png from system.jsonl, learner.jsonl and evaluator.jsonl (written atomically)."""
    from harness import plotting

    def rows(name):
        path = os.path.join(workdir, name)
        return read_jsonl(path) if os.path.exists(path) else []

    sysrows, lrows, erows = rows("system.jsonl"), rows("learner.jsonl"), rows("evaluator.jsonl")
    fig, axes = plotting.figure(2, 3, figsize=(15, 7))
    panels = [
        (axes[0, 0], sysrows, "sampling_hz", "sampling (env steps/s, all samplers)"),
        (axes[0, 1], lrows, "transitions_per_s", "learner (B × updates/s)"),
        (axes[0, 2], lrows, "critic_loss", "critic loss"),
        (axes[1, 0], erows, "eval_return", "deterministic return"),
        (axes[1, 1], sysrows, "policy_lag", "policy lag (updates)"),
        (axes[1, 2], sysrows, "replay_fill", "replay fill"),
    ]
    for ax, data, key, title in panels:
        pts = [(r["wall_s"], r[key]) for r in data if key in r and r[key] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), ".-", ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("wall-clock s")
    fig.tight_layout()
    path = os.path.join(workdir, "dashboard.png")
    fig.savefig(path + ".tmp.png", dpi=70)
    os.replace(path + ".tmp.png", path)
    return path


# ----------------------------------------------------------------------------------------------- main


def _cfg(config) -> dict:
    s = config.system
    return {"env_id": s.env_id, "envs_per_sampler": s.envs_per_sampler, "warmup_steps": s.warmup_steps,
            "hidden": tuple(config.sac.hidden), "seed": config.seed, "learning_rate": s.learning_rate,
            "batch_size": s.batch_size, "publish_every": s.publish_every, "eval_interval_s": s.eval_interval_s,
            "eval_episodes": s.eval_episodes, "threshold": s.threshold, "viz_interval_s": s.viz_interval_s,
            "learner": s.learner, "learner_devices": s.learner_devices, "num_processes": s.num_processes,
            "process_id": s.process_id, "coordinator": s.coordinator}


def train_and_evaluate(config, workdir: str) -> dict:
    """Starts the system, runs it for `system.duration_s` (or to the threshold, or until SIGINT/SIGTERM), stops it
    cleanly and writes results.json (sampling and learner rates, policy lag, restarts, returns)."""
    if config.system.autotune:  # the tuned values replace the config's (the run records both)
        from projects.spreeze import autotune

        path = os.path.join(workdir, "system", "autotune.json")
        tuned = read_json(path)["choice"] if os.path.exists(path) else autotune.autotune(config, workdir)["choice"]
        config = ml_collections.ConfigDict(config.to_dict())
        for k in ("batch_size", "envs_per_sampler", "n_samplers", "learning_rate"):
            config.system[k] = type(config.system[k])(tuned[k])
        config.system.batch_size = min(config.system.batch_size, config.system.replay_capacity)
    s = config.system
    cfg = _cfg(config)
    workdir = os.path.join(workdir, "system")  # beside, not over, the JAX-native run's results in the same workdir
    os.makedirs(workdir, exist_ok=True)
    obs_dim, action_dim = env_dims(s.env_id)
    for name in ("learner.jsonl", "evaluator.jsonl", "system.jsonl"):
        open(os.path.join(workdir, name), "w").close()
    if os.path.exists(os.path.join(workdir, "learner_final.json")):
        os.remove(os.path.join(workdir, "learner_final.json"))
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signal.Signals(signum).name

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop = SPAWN.Event()
    steps = SPAWN.Array("q", s.n_samplers, lock=False)
    versions = SPAWN.Array("q", [-1] * s.n_samplers, lock=False)
    reached = SPAWN.Value("d", -1.0, lock=False)
    t0 = time.time()
    restarts, shutdown_s = 0, None
    procs: dict[str, multiprocessing.Process] = {}
    sys_log = open(os.path.join(workdir, "system.jsonl"), "a", encoding="utf-8")
    with SharedReplay.create(capacity=s.replay_capacity, obs_dim=obs_dim, action_dim=action_dim) as replay, \
            ParamSync.create(size=_n_actor_params(cfg["hidden"], obs_dim, action_dim)) as sync:
        write_json_atomic(os.path.join(workdir, "segments.json"), {"replay": replay.name, "params": sync.name})

        def start_sampler(i):
            p = SPAWN.Process(target=sampler_main, name=f"sampler{i}", daemon=True,
                              args=(i, cfg, replay, sync, stop, steps, versions))
            p.start()
            procs[f"sampler{i}"] = p

        try:
            procs["learner"] = SPAWN.Process(target=learner_main, name="learner", daemon=True,
                                             args=(cfg, replay, sync, stop, workdir, t0))
            if s.process_id == 0:  # one evaluator and one dashboard for the whole (multi-host) system
                procs["evaluator"] = SPAWN.Process(target=evaluator_main, name="evaluator", daemon=True,
                                                   args=(cfg, sync, stop, steps, reached, workdir, t0))
                procs["visualiser"] = SPAWN.Process(target=visualiser_main, name="visualiser", daemon=True,
                                                    args=(cfg, stop, workdir))
            for p in procs.values():
                p.start()
            for i in range(s.n_samplers):
                start_sampler(i)
            last_t, last_steps = time.time(), 0
            while stopping["signal"] is None:
                time.sleep(s.monitor_interval_s)
                if stop.is_set():  # the learners of a multi-host system agreed to stop (a peer stopped)
                    break
                now = time.time()
                write_json_atomic(os.path.join(workdir, "pids.json"), {k: p.pid for k, p in procs.items()})
                total = int(sum(steps))
                live = [v for v in versions if v >= 0]
                row = {"wall_s": now - t0, "env_steps": total,
                       "sampling_hz": (total - last_steps) / (now - last_t),
                       "replay_fill": replay.size / s.replay_capacity,
                       "learner_version": sync.version,
                       "policy_lag": policy_lag(learner_version=sync.version, sampler_version=min(live))
                       if live and sync.version >= 0 else None, "restarts": restarts}
                sys_log.write(json.dumps(row) + "\n")
                sys_log.flush()
                last_t, last_steps = now, total
                for i in range(s.n_samplers):
                    if not procs[f"sampler{i}"].is_alive():  # died (e.g. SIGKILL): restart, training goes on
                        restarts += 1
                        versions[i] = -1
                        start_sampler(i)
                for name in ("learner", "evaluator", "visualiser"):
                    if name in procs and not procs[name].is_alive():
                        raise RuntimeError(f"the {name} process died (exit code {procs[name].exitcode}); "
                                           f"see its output above")
                if now - t0 >= s.duration_s or (s.stop_at_threshold and reached.value >= 0):
                    break
        finally:
            t_stop = time.time()
            stop.set()
            deadline = t_stop + s.shutdown_timeout_s
            for p in procs.values():  # a cooperative stop first: every loop checks the event at least once a step
                p.join(max(0.0, deadline - time.time()))
            late = [p for p in procs.values() if p.is_alive()]
            for p in late:  # then SIGTERM to all stragglers at once (e.g. a child still importing JAX), then SIGKILL
                p.terminate()
            for p in late:
                p.join(max(0.2, deadline + 1.0 - time.time()))
            for p in late:
                if p.is_alive():
                    p.kill()
                    p.join(1.0)
            shutdown_s = time.time() - t_stop
            sys_log.close()
            for sig, handler in old.items():
                signal.signal(sig, handler)
    procs.clear()
    draw_dashboard(workdir)
    return _write_results(config, workdir, restarts=restarts, shutdown_s=shutdown_s, signal_name=stopping["signal"],
                          reached_s=reached.value if reached.value >= 0 else None)


def _n_actor_params(hidden, obs_dim, action_dim) -> int:
    sizes = [obs_dim, *hidden, 2 * action_dim]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _write_results(config, workdir, *, restarts, shutdown_s, signal_name, reached_s) -> dict:
    s = config.system
    sysrows = read_jsonl(os.path.join(workdir, "system.jsonl"))
    lrows = read_jsonl(os.path.join(workdir, "learner.jsonl"))
    erows = read_jsonl(os.path.join(workdir, "evaluator.jsonl"))
    skip = max(1, len(sysrows) // 3)  # steady state: drop the first third (compile, warm-up; spec §5.5)
    hz = [r["sampling_hz"] for r in sysrows[skip:]]
    lags = [r["policy_lag"] for r in sysrows if r.get("policy_lag") is not None]
    tps = [r["transitions_per_s"] for r in lrows[max(1, len(lrows) // 3):]]
    final_path = os.path.join(workdir, "learner_final.json")
    final = read_json(final_path) if os.path.exists(final_path) else {}
    m = {"env_id": s.env_id, "autotuned": s.autotune, "learning_rate": s.learning_rate, "n_samplers": s.n_samplers,
         "envs_per_sampler": s.envs_per_sampler,
         "batch_size": s.batch_size, "learner": s.learner, "learner_devices": final.get("devices"),
         "num_processes": s.num_processes, "process_id": s.process_id,
         "params_checksum/final": final.get("checksum"), "duration_s": sysrows[-1]["wall_s"] if sysrows else 0.0,
         "env_steps": sysrows[-1]["env_steps"] if sysrows else 0,
         "sampling_hz/median": float(np.median(hz)) if hz else None,
         "learner_transitions_per_s/median": float(np.median(tps)) if tps else None,
         "learner_updates": final.get("updates", lrows[-1]["updates"] if lrows else 0),
         "policy_lag/mean": float(np.mean(lags)) if lags else None,
         "replay_ratio": (lrows[-1]["updates"] * s.batch_size / max(sysrows[-1]["env_steps"], 1))
         if lrows and sysrows else None,
         "eval_return/last": erows[-1]["eval_return"] if erows else None,
         "eval_return/best": max(r["eval_return"] for r in erows) if erows else None,
         "time_to_threshold_s": reached_s, "sampler_restarts": restarts, "shutdown_s": shutdown_s,
         "stopped_by": signal_name or "duration/threshold"}
    claims = [outputs.claim("B8.clean_shutdown", "The system stops within 10 s (samplers, learner, evaluator, "
                            "visualiser joined) and unlinks its shared memory",
                            paper="(spec B8)", ours=f"{shutdown_s:.1f} s", holds=shutdown_s <= 10.0)]
    return outputs.write_results(workdir, project="spreeze", preset=config.preset, seeds=[config.seed], metrics=m,
                                 claims=claims, plots=["dashboard.png"])


if __name__ == "__main__":
    from harness import cli

    cli.launch("spreeze", module="system")
