"""A data-parallel SAC learner across processes with `jax.distributed` (spec §5.4), and its check (B7).

    # on each of P hosts (here: P processes on 127.0.0.1), the same command with its own --process_id:
    python -m projects.spreeze.distributed --num_processes=2 --process_id=0 --coordinator=127.0.0.1:12355 --out=p0.json
    python -m projects.spreeze.distributed --num_processes=2 --process_id=1 --coordinator=127.0.0.1:12355 --out=p1.json
    python -m projects.spreeze.distributed --num_processes=1 --process_id=0 --out=single.json   # the reference

Each process joins the global `"data"` mesh (one CPU device per process here; all local GPUs on a GPU host), keeps a
replicated copy of the SAC state, and feeds only its own rows of each global batch
(`jax.make_array_from_process_local_data`); `jax.jit` of `lib.rl.sac.update` then averages the gradients over all
processes, so the parameters stay identical everywhere. On CPU the collectives use gloo
(`jax_cpu_collectives_implementation`). The batches here are synthetic and seeded (row r of step t is the same in
every layout), so a P-process run and a one-process run see the same global batch and must give the same numbers;
in the system each host would fill its rows from its own replay ring. Every step writes a checksum of the
parameters, to compare across processes and with the one-process run.
"""

from __future__ import annotations

import argparse
import json
import os


def run(*, process_id: int, num_processes: int, coordinator: str, steps: int, global_batch: int, seed: int,
        hidden: tuple[int, ...] = (64, 64), obs_dim: int = 17, action_dim: int = 6) -> dict:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from lib.rl import sac
    from lib.rl.types import Transition
    from projects.spreeze.system import params_checksum

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if num_processes > 1:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=300)
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    replicated, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    if global_batch % jax.device_count():
        raise ValueError(f"global_batch={global_batch} must be a multiple of the {jax.device_count()} devices")
    state = jax.device_put(sac.init(jax.random.key(seed), obs_dim=obs_dim, action_dim=action_dim, hidden=hidden),
                           replicated)
    update = jax.jit(sac.update, donate_argnums=0)
    key = jax.random.key(seed + 1)
    local = global_batch // num_processes
    lo = process_id * local
    out = {"checksums": [], "critic_loss": [], "actor_loss": [], "devices": jax.device_count(),
           "processes": jax.process_count()}
    for t in range(steps):
        rng = np.random.default_rng([seed, t])  # the whole global batch, then this process's rows of it
        full = [rng.standard_normal((global_batch, obs_dim)), rng.uniform(-1, 1, (global_batch, action_dim)),
                rng.standard_normal(global_batch), np.zeros(global_batch), rng.standard_normal((global_batch, obs_dim))]
        mine = [np.asarray(x[lo:lo + local], np.float32) for x in full]
        batch = Transition(*(jax.make_array_from_process_local_data(rows, x) for x in mine))
        state, m = update(state, batch, key)
        out["checksums"].append(params_checksum((state.actor.params, state.critic.params),
                                                lambda x: np.asarray(x.addressable_data(0))))
        out["critic_loss"].append(float(np.asarray(m["critic_loss"].addressable_data(0))))
        out["actor_loss"].append(float(np.asarray(m["actor_loss"].addressable_data(0))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--process_id", type=int, default=0)
    ap.add_argument("--num_processes", type=int, default=1)
    ap.add_argument("--coordinator", default="127.0.0.1:12355")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--global_batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = run(process_id=a.process_id, num_processes=a.num_processes, coordinator=a.coordinator, steps=a.steps,
              global_batch=a.global_batch, seed=a.seed)
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(res, f)
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
