"""Hyper-parameter sweep for two_hop's quick preset, meant for an accelerator (it runs on the CPU too, slowly).

Every group is one model shape (d_model, mlp, n_nodes); inside a group the runs (learning rate × batch × Adam β2
× warm-up × seed) train side by side as one vmapped step. The batch is a per-run mask over the group's largest
batch (every run samples `max(batch)` sequences and averages its loss over its first `batch`), so the batch is
a vmapped knob too. Every `log_every` steps the runs are probed on one fixed batch (eval seed 42, as the
project): accuracy, P(target end), P(distractor end) and the three attention scores. A run "jumps" as in
`claims.find_jump`: accuracy from < 0.5 to > 0.95 within 300 steps.

    python -m projects.two_hop.sweep --plan=gpu --out=/tmp/sweep            # the accelerator sweep
    python -m projects.two_hop.sweep --plan=tiny --out=/tmp/sweep           # seconds: checks the code path

Writes `<out>/sweep.txt` (one line per setting: the jump step of every seed) and `<out>/<group>.npz` (curves).
Only `lib`, `projects.two_hop.data`, `.model` and `.claims` are imported, so it runs where ml_collections is
missing.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from lib import transformer
from projects.two_hop import data
from projects.two_hop.claims import find_jump
from projects.two_hop.model import transformer_config

_PLAN = flags.DEFINE_string("plan", "tiny", "tiny | gpu")
_OUT = flags.DEFINE_string("out", "/tmp/two_hop_sweep", "output folder")
_DEADLINE = flags.DEFINE_float("deadline", 330.0, "stop starting/continuing groups after this many seconds")
_SEEDS = flags.DEFINE_integer("seeds", 5, "seeds per setting")


def _grid(lrs, batches, b2s=(0.99,), warmups=(0,)):
    return [dict(lr=lr, batch=b, b2=b2, warmup=w) for lr, b, b2, w in itertools.product(lrs, batches, b2s, warmups)]


def plan(name: str) -> list[dict]:
    """Groups: {name, d_model, mlp, n_nodes, steps, settings}."""
    if name == "tiny":
        return [dict(name="tiny", d_model=16, mlp="none", n_nodes=30, steps=20, log_every=10,
                     settings=_grid([1e-3, 1e-2], [8, 16], b2s=(0.99, 0.999), warmups=(0, 5)))]
    if name == "gpu":
        n30 = dict(mlp="none", n_nodes=30, steps=2000, log_every=50)
        return [
            dict(name="d32_none_n30", d_model=32, **n30,
                 settings=_grid([2e-3, 5e-3, 1e-2, 2e-2], [64, 128, 256, 512])
                 + _grid([5e-3, 1e-2], [128, 256], b2s=(0.999,))
                 + _grid([1e-2, 2e-2], [128, 256], warmups=(100,))),
            dict(name="d64_none_n30", d_model=64, **n30,
                 settings=_grid([1e-3, 2e-3, 5e-3, 1e-2], [128, 256, 512])
                 + _grid([5e-3, 1e-2], [128], b2s=(0.999,))),
            dict(name="d32_none_n20", d_model=32, mlp="none", n_nodes=20, steps=2000, log_every=50,
                 settings=_grid([5e-3, 1e-2, 2e-2], [128, 256])),
            dict(name="d16_none_n30", d_model=16, **n30, settings=_grid([5e-3, 1e-2, 2e-2], [128, 256])),
            dict(name="d32_relu_n30", d_model=32, mlp="relu", n_nodes=30, steps=2000, log_every=50,
                 settings=_grid([5e-3, 1e-2], [128, 256])),
        ]
    raise ValueError(f"--plan={name!r} is invalid: expected 'tiny' or 'gpu'")


def run_group(g: dict, n_seeds: int, deadline: float, t_start: float, out: str, log) -> None:
    K, N, wd = 5, g["n_nodes"], 1e-4
    mc = transformer_config(n_nodes=N, d_model=g["d_model"], mlp=g["mlp"])
    runs = [(i, s) for i in range(len(g["settings"])) for s in range(n_seeds)]
    st = g["settings"]
    lr = jnp.array([st[i]["lr"] for i, _ in runs], jnp.float32)
    bsz = jnp.array([st[i]["batch"] for i, _ in runs], jnp.int32)
    b2 = jnp.array([st[i]["b2"] for i, _ in runs], jnp.float32)
    warm = jnp.array([st[i]["warmup"] for i, _ in runs], jnp.float32)
    seeds = jnp.array([s for _, s in runs])
    bmax = max(s["batch"] for s in st)
    qpos = data.query_position(K)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(seeds)  # as train.seed_keys (seed 0)
    params = jax.vmap(lambda k: transformer.init_params(mc, jax.random.fold_in(k, 0)))(keys)
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = {"mu": zeros, "nu": zeros}

    def loss_fn(p, batch, b):
        logits = transformer.forward(p, batch["tokens"], config=mc, select=jnp.full((bmax,), qpos))["logits"]
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), batch["target"][:, None], 1)[:, 0]
        return jnp.sum(jnp.where(jnp.arange(bmax) < b, nll, 0.0)) / b

    def one(p, o, key, step, lr_, b_, b2_, w_):
        batch = data.sample(key, batch=bmax, n_chains=K, n_nodes=N)
        loss, gr = jax.value_and_grad(loss_fn)(p, batch, b_)
        t = (step + 1).astype(jnp.float32)  # AdamW as optax.adamw(b1=0.9, eps=1e-8, wd 1e-4 on every leaf)
        mu = jax.tree.map(lambda m, x: 0.9 * m + 0.1 * x, o["mu"], gr)
        nu = jax.tree.map(lambda v, x: b2_ * v + (1 - b2_) * x * x, o["nu"], gr)
        eta = lr_ * jnp.minimum(1.0, t / jnp.maximum(w_, 1.0))
        p = jax.tree.map(lambda x, m, v: x - eta * ((m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - b2_ ** t)) + 1e-8)
                                                    + wd * x), p, mu, nu)
        return p, {"mu": mu, "nu": nu}, loss

    def body(carry, step):
        p, o = carry
        k = jax.vmap(lambda kk: jax.random.fold_in(jax.random.fold_in(kk, 1), step))(keys)
        p, o, loss = jax.vmap(one, in_axes=(0, 0, 0, None, 0, 0, 0, 0))(p, o, k, step, lr, bsz, b2, warm)
        return (p, o), loss

    every = g["log_every"]
    chunk = jax.jit(lambda p, o, s0: jax.lax.scan(body, (p, o), s0 + jnp.arange(every)))
    pb = data.sample(jax.random.key(42), batch=512, n_chains=K, n_nodes=N)
    pos = data.positions(pb)
    rows = jnp.arange(512)

    def probe(p):
        out = transformer.forward(p, pb["tokens"], config=mc, return_attn=True)
        probs = jax.nn.softmax(out["logits"][:, qpos], -1)
        ends = jnp.take_along_axis(probs, pb["nodes"][:, :, 2], 1)
        is_q = jnp.arange(K)[None] == pb["query_chain"][:, None]
        pt = (ends * is_q).sum(1)
        a = [w[:, 0] for w in out["attn"]]
        return jnp.stack([(jnp.argmax(probs, -1) == pb["target"]).mean(), pt.mean(),
                          ((ends.sum(1) - pt) / (K - 1)).mean(),
                          a[0][:, pos["children"], pos["parents"]].mean(),
                          a[1][rows, pos["query"], pos["bridge_first"]].mean(),
                          a[2][rows, pos["query"], pos["end"]].mean()])

    probe_all = jax.jit(jax.vmap(probe))
    steps_logged, curves = [0], [np.asarray(probe_all(params))]
    t0 = time.time()
    for c in range(g["steps"] // every):
        if time.time() - t_start > deadline:
            log(f"  [{g['name']}: deadline reached at step {c * every}]")
            break
        (params, opt), loss = chunk(params, opt, c * every)
        curves.append(np.asarray(probe_all(params)))
        steps_logged.append((c + 1) * every)
        if c == 0:
            log(f"  [{g['name']}: {len(runs)} runs, first chunk incl. compile {time.time() - t0:.1f} s]")
    jax.block_until_ready(params)
    step = np.array(steps_logged)
    cv = np.stack(curves)  # [n_logs, runs, 6]
    log(f"  [{g['name']}: {step[-1]} steps in {time.time() - t0:.1f} s]")
    np.savez(os.path.join(out, g["name"] + ".npz"), step=step, curves=cv,
             settings=np.array([[s["lr"], s["batch"], s["b2"], s["warmup"]] for s in st]), n_seeds=n_seeds)
    log(f"{g['name']} (d={g['d_model']}, mlp={g['mlp']}, n_nodes={N}); jump = first logged step with acc > 0.95 "
        f"after < 0.5 within 300 steps; '-' none by {step[-1]}, final acc in ()")
    for i, s in enumerate(st):
        jumps, attn, finals = [], [], []
        for r in [j for j, (ii, _) in enumerate(runs) if ii == i]:
            acc = cv[:, r, 0]
            jp = find_jump(step, acc, 300)
            jumps.append(str(jp[1]) if jp else f"-({acc[-1]:.2f})")
            if jp:
                k = int(np.flatnonzero(step == jp[1])[0])
                kb = int(np.flatnonzero(step == jp[0])[0])
                attn.append((cv[kb, r, 3:6].max(), cv[k, r, 3], cv[k, r, 4], cv[k, r, 5]))
            finals.append(acc[-1])
        n_j = sum(1 for j in jumps if not j.startswith("-"))
        att = "" if not attn else (" | attn at jump min (l1,l2,l3) = "
                                   + ",".join(f"{np.min([a[q] for a in attn]):.2f}" for q in (1, 2, 3))
                                   + f", max before {np.max([a[0] for a in attn]):.2f}")
        log(f"  lr {s['lr']:.0e} B {s['batch']:3d} b2 {s['b2']} wu {s['warmup']:3d}: {n_j}/{len(jumps)} jump "
            f"at [{' '.join(jumps)}]{att}")


def main(argv):
    del argv
    out = _OUT.value
    os.makedirs(out, exist_ok=True)
    f = open(os.path.join(out, "sweep.txt"), "a")

    def log(msg):
        print(msg, flush=True)
        f.write(msg + "\n")
        f.flush()

    t_start = time.time()
    log(f"jax {jax.__version__} devices {jax.devices()} plan {_PLAN.value} python {sys.version.split()[0]}")
    for g in plan(_PLAN.value):
        if time.time() - t_start > _DEADLINE.value:
            log(f"skipped {g['name']}: deadline")
            continue
        run_group(g, _SEEDS.value, _DEADLINE.value, t_start, out, log)
    log(f"total {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")
    app.run(main)
