"""Calibration sweep for two_hop's quick preset: (learning rate × seed) runs of the model trained side by
side (one vmapped step), printing the probe-batch accuracy of every run every 100 steps.

    python -m projects.two_hop.calibrate --d_model=64 --batch_size=128 --steps=3000 --lrs=2e-3,5e-3

Measured on 2 shared CPU cores (2026-11-26) with a first version of this sweep (same model, optimiser and
probe batch; the data keys were derived differently), attention-only, d=64, batch 128, 3 seeds per lr:
lr 2e-3 — seed 0 jumped 0.40 → 1.00 between steps 2 700 and 2 800; seeds 1, 2 still on the plateau
(accuracy ≈ 0.25–0.30) at 3 000. lr 5e-3 — seed 2 jumped 0.38 → 1.00 between 2 300 and 2 400; seeds 0, 1 on
the early plateau (≈ 0.15–0.19) at 3 000 (≈ 11 min for the 6 runs). With this version, batch 512, lr 1e-3, 3 seeds:
seed 1 jumped 0.33 → 1.00 between steps 2 500 and 2 700, seed 2 0.32 → 1.00 between 2 700 and 2 900, seed 0 was on
the ≈ 0.30 plateau at 3 000 (≈ 18 min on 2 shared cores).

Wider sweep on one H100 (2026-11-26, `projects/two_hop/sweep.py --plan=gpu`, 5 seeds per setting, 2 000 steps, the
same init and, at batch 512, the same data stream as the project; raw output in `recorded_runs/two_hop/sweep_h100.txt`):
d=32 attention-only, lr {2e-3, 5e-3, 1e-2, 2e-2} × batch {64, 128, 256, 512} (+ β2 0.999, warm-up 100): 0 of 120 runs
jumped. d=16: 0/30. d=32 with ReLU FFN: 0/20. d=32, n_nodes=20: 2/30 (steps 1 800–1 900, batch 256).
d=64 attention-only (jump steps of the seeds that jumped, out of 5): lr 1e-3 — none at batch 128/256/512;
lr 2e-3 — batch 256: 1 700, 1 750; batch 512: 1 300, 1 500; lr 5e-3 — batch 128: 1 800; batch 256: 1 350, 1 650;
**batch 512: 550, 700**; lr 1e-2 — batch 256: 1 600, none at 128/512; β2 0.999 (lr 5e-3/1e-2, batch 128): none.
Layer-1 child→parent attention starts rising ≈ 100–200 steps before the accuracy jump (0.23–0.57 at the last probe
below 0.5 accuracy); layers 2 and 3 stay ≤ 0.25 until the jump. The quick preset is d=64, batch 512, lr 5e-3,
1 000 steps: on the CPU here seeds 0 and 1 jumped at 550 and 700 (as on the GPU), seed 2 did not, in 10 min wall
(load average ≈ 5 on the 2 cores).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from configs.two_hop import default
from lib import transformer
from projects.two_hop import data, model, train

_D = flags.DEFINE_integer("d_model", 64, "model width")
_B = flags.DEFINE_integer("batch_size", 128, "sequences per step")
_STEPS = flags.DEFINE_integer("steps", 3000, "training steps (a multiple of 100)")
_LRS = flags.DEFINE_list("lrs", ["2e-3", "5e-3"], "learning rates")
_SEEDS = flags.DEFINE_integer("seeds", 3, "seeds per learning rate")
_MLP = flags.DEFINE_string("mlp", "none", "none (attention-only) or relu")


def main(argv):
    del argv
    config = default.get_config("quick")
    config.model.d_model, config.model.mlp, config.train.batch_size = _D.value, _MLP.value, _B.value
    mc = model.model_config(config)
    runs = [(float(lr), s) for lr in _LRS.value for s in range(_SEEDS.value)]
    lrs = jnp.array([r[0] for r in runs])
    seeds = jnp.array([r[1] for r in runs])
    tx = optax.adamw(1.0, b1=0.9, b2=config.train.b2, eps=1e-8, weight_decay=config.train.weight_decay)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(config.seed), s))(seeds)
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(keys)
    opt = jax.vmap(tx.init)(params)
    K, N = config.data.n_chains, config.data.n_nodes

    def one(p, o, key, lr):
        batch = data.sample(key, batch=_B.value, n_chains=K, n_nodes=N)
        loss, g = jax.value_and_grad(train.query_loss)(p, batch, mc=mc, n_chains=K)
        u, o = tx.update(g, o, p)  # optax scales by lr=1; the run's lr scales the whole AdamW update
        return optax.apply_updates(p, jax.tree.map(lambda x: lr * x, u)), o, loss

    def step(carry, i):
        p, o = carry
        step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), i))(keys)
        p, o, loss = jax.vmap(one)(p, o, step_keys, lrs)
        return (p, o), loss

    hundred = jax.jit(lambda p, o, i0: jax.lax.scan(step, (p, o), i0 + jnp.arange(100)))
    probe, _ = train.make_probe(config, mc, batch_size=512, seed=config.eval.seed)
    print("runs (lr, seed):", runs, flush=True)
    t0 = time.time()
    for c in range(_STEPS.value // 100):
        (params, opt), _ = hundred(params, opt, c * 100)
        acc = np.asarray(probe(params)["accuracy"])
        print(f"step {(c + 1) * 100:5d} accuracy {np.round(acc, 2)} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    app.run(main)
