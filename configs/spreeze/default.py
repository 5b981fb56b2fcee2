"""spreeze: high-throughput asynchronous actor-critic RL on one machine (the fused JAX-native path and the
multi-process system).

Paper: Hou, Chen, Zhang, Li, Gu, Jiang, "Spreeze: High-Throughput Parallel Reinforcement Learning Framework"
(arXiv 2312.06126; TPDS 2025). The paper's body could not be read: the design, every threshold and every
acceptance point (B1–B8) are the reconstruction of `shared/papers/spreeze.md` §5.

Launch (from the repository root):
    python -m projects.spreeze.main --config=configs/spreeze/default.py:quick --workdir=runs/spreeze
Override any field, e.g. `--config.num_seeds=3 --config.fused.n_envs=32`.

Presets (2 CPU cores, single-threaded XLA):
  smoke  ~40 s   tiny networks and budgets: the code path, not the claims (41 s of CPU measured).
  quick  ~4 min  Pendulum-v1: fused SAC (vmap + scan sampler, ring and updates in one jit) against our sequential
                 SAC (C0: one env step, one update, one call) to return ≥ −200, 1 seed each; the fused-sampler rate
                 against Python-loop samplers (B2); the learner's update rate by batch size (B3). Measured: 6 min
                 with the 2 cores shared by other jobs (load ≈ 17).
  paper  ~12 min as quick with 3 seeds each; the system's group runs an hour on HalfCheetah.

The multi-process system (samplers, learner, evaluator, dashboard; gymnasium MuJoCo) is started by
`python -m projects.spreeze.system` with this same config's `system` group (see projects/spreeze/README.md).
"""

import ml_collections

from configs.common import new_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = new_config(arg)
    preset = c.preset
    c.seed = 0  # root key; seed s uses fold_in(key(seed), s)
    c.num_seeds = 1
    c.env = "Pendulum-v1"  # the JAX-native env (lib/rl/pendulum.py, gymnax's dynamics)

    c.sac = ml_collections.ConfigDict()
    c.sac.hidden = (256, 256)  # SB3/sbx defaults
    c.sac.gamma = 0.99
    c.sac.tau = 0.005

    c.eval = ml_collections.ConfigDict()
    c.eval.episodes = 10  # deterministic episodes per evaluation (spec §5.5)
    c.eval.threshold = -200.0  # Pendulum-v1 time-to-threshold (spec §5.5)
    c.eval.final_evals = 5  # evaluations after the threshold; "final return" is their mean

    # the system under test on the JAX-native path: n_envs env steps and updates_per_iter updates per iteration
    c.fused = ml_collections.ConfigDict()
    c.fused.n_envs = 16
    c.fused.updates_per_iter = 4  # replay ratio 4/16: sampling is nearly free, updates are the cost
    c.fused.iters_per_segment = 20  # one jit call = this many iterations; evaluation between calls
    c.fused.batch_size = 256
    c.fused.learning_rate = 1e-3
    c.fused.capacity = 100_000
    c.fused.warmup_steps = 1024  # random-action transitions before the first update
    c.fused.max_env_steps = 60_000
    c.fused.stale_updates = False  # True: the split mode's maths (actor and critic one step stale), one device

    # C0: our SAC, sequential (1 env, 1 env step then 1 update, one jitted call each), SB3's defaults
    c.sequential = ml_collections.ConfigDict()
    c.sequential.enabled = True
    c.sequential.batch_size = 256
    c.sequential.learning_rate = 3e-4
    c.sequential.warmup_steps = 100  # SB3's learning_starts
    c.sequential.eval_every = 200  # env steps between evaluations (one episode)
    c.sequential.max_env_steps = 10_000

    # B2: the fused sampler (actor in the loop) against a Python loop of one jitted call per step
    c.sampler_bench = ml_collections.ConfigDict()
    c.sampler_bench.n_envs = 64
    c.sampler_bench.steps = 200
    c.sampler_bench.repeats = 3

    # B3 (standalone part): learner transitions/s by batch size, fused SAC update, this process's threading
    c.learner_bench = ml_collections.ConfigDict()
    c.learner_bench.batch_sizes = (256, 1024, 4096)
    c.learner_bench.updates = 20
    c.learner_bench.obs_dim = 17  # HalfCheetah's sizes (spec §5.1)
    c.learner_bench.action_dim = 6

    # the multi-process system (projects/spreeze/system.py; gymnasium + MuJoCo from the `rl` extra)
    c.system = ml_collections.ConfigDict()
    c.system.env_id = "HalfCheetah-v5"
    c.system.n_samplers = 1  # 2 cores: one sampler beside the learner (evaluator and dashboard mostly sleep)
    c.system.envs_per_sampler = 16
    c.system.replay_capacity = 300_000
    c.system.batch_size = 256
    c.system.learning_rate = 3e-4
    c.system.warmup_steps = 5_000
    c.system.publish_every = 10  # updates between actor broadcasts
    c.system.duration_s = 300.0
    c.system.stop_at_threshold = False
    c.system.threshold = 3000.0  # HalfCheetah-v5 (spec §5.5); use -200 for Pendulum-v1
    c.system.eval_interval_s = 15.0
    c.system.eval_episodes = 2
    c.system.viz_interval_s = 5.0
    c.system.monitor_interval_s = 1.0
    c.system.autotune = False  # True: batch, envs per sampler, samplers and lr from system/autotune.json
    c.system.shutdown_timeout_s = 5.0  # cooperative stop, then SIGTERM, then SIGKILL (B8: all within 10 s)
    # the learner mode (projects/spreeze/system.py `make_learner`): "fused" one device; "split" critic and actor on
    # two forced host devices (B5's maths); "data" data-parallel over `learner_devices` devices per process and
    # over `num_processes` processes/hosts (jax.distributed; every host runs the same command with its process_id)
    c.system.learner = "fused"
    c.system.learner_devices = 2  # "split": exactly 2; "data": devices per process
    c.system.num_processes = 1
    c.system.process_id = 0
    c.system.coordinator = "127.0.0.1:12355"  # host:port of process 0, reachable from every host

    # spec §5.3 (projects/spreeze/autotune.py): candidates measured concurrently, chosen by rule
    c.autotune = ml_collections.ConfigDict()
    c.autotune.batch_sizes = (256, 512, 1024, 2048, 4096)
    c.autotune.envs_per_sampler = (1, 4, 16, 64)
    c.autotune.updates = 10
    c.autotune.sampler_seconds = 3.0

    if preset == "smoke":
        c.sac.hidden = (32, 32)
        c.eval.episodes = 4
        c.eval.final_evals = 1
        c.fused.iters_per_segment = 10
        c.fused.capacity = 5_000
        c.fused.warmup_steps = 256
        c.fused.max_env_steps = 800
        c.sequential.eval_every = 50
        c.sequential.max_env_steps = 100
        c.sampler_bench.steps = 20
        c.sampler_bench.repeats = 1
        c.learner_bench.batch_sizes = (64,)  # one compile; B3 is n/a without B = 256
        c.learner_bench.updates = 3
        c.system.env_id = "Pendulum-v1"  # gymnasium's classic control: no MuJoCo needed
        c.system.envs_per_sampler = 4
        c.system.replay_capacity = 10_000
        c.system.batch_size = 64
        c.system.warmup_steps = 200
        c.system.duration_s = 45.0  # children import JAX first: ~10 s on 2 busy cores
        c.system.threshold = -200.0
        c.system.eval_interval_s = 3.0
        c.system.eval_episodes = 1
        c.system.viz_interval_s = 2.0
        c.autotune.batch_sizes = (64, 128)
        c.autotune.envs_per_sampler = (1, 4)
        c.autotune.updates = 3
        c.autotune.sampler_seconds = 0.5
    elif preset == "paper":
        c.num_seeds = 3
        c.system.duration_s = 3600.0
        c.system.replay_capacity = 1_000_000
    return c
