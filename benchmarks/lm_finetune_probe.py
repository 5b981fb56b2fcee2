"""Benchmark: where SmolLM2-135M's fine-tuning step loses to PyTorch eager on one core (issue #18's ≥ 1.0× point).

    python benchmarks/lm_finetune_probe.py      # writes the "lm fine-tuning step" section of benchmarks/RESULTS.md

One fine-tuning step as in `benchmarks/lm_decode.py` (batch 8 × 128 tokens, next-token cross-entropy, full float32
model, AdamW), each variant in its own process pinned to one core with XLA's intra-op pool off: XLA's CPU dot
back-ends (its default YNNPACK fusions, YNNPACK off so Eigen does the dots, YNNPACK off for dots only, oneDNN),
the default with and without donating the parameters and optimizer state and with the head's logits materialised
instead of the fused head (these three interleaved in one process), and PyTorch eager with
`torch.set_num_threads(1)`. Median of `--repeats` steps after a warm-up (compile) step. Glibc's default pages, as
the first rows of the lm_decode table. A second table times the step's matrix products alone (1024 rows, the
model's shapes), forward `x·W`, input gradient `g·Wᵀ` and weight gradient `xᵀ·g`, XLA's default against PyTorch,
both on one core.
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

if "--child" in sys.argv:  # fix the core and XLA's flags before JAX starts
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ["OMP_NUM_THREADS"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_decode import _median_time, finetune_step, torch_finetune_step  # noqa: E402  (the same steps as its table)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {  # name -> extra XLA flags (after --xla_cpu_multi_thread_eigen=false)
    "XLA default (YNNPACK fusions)": "",
    "YNNPACK off (Eigen dots)": "--xla_cpu_experimental_ynn_fusion_type=",
    "YNNPACK dots off": "--xla_cpu_experimental_ynn_fusion_type=-individual_dot",
    "oneDNN (YNNPACK off)": "--xla_cpu_use_onednn=true --xla_cpu_experimental_ynn_fusion_type=",
}


SHAPES = {"q, o 576×576": (576, 576), "k, v 576×192": (576, 192), "gate, up 576×1536": (576, 1536),
          "down 1536×576": (1536, 576), "head 576×49152": (576, 49152)}


def gemm_child(repeats: int) -> dict:
    """GFLOP/s of each product of SHAPES at 1024 rows, XLA (jitted) and PyTorch, medians of `repeats`."""
    import jax
    import numpy as np
    import torch

    torch.set_num_threads(1)
    rng, m, out = np.random.default_rng(0), 1024, {}
    for name, (k, n) in SHAPES.items():
        x, w, g = (rng.standard_normal(s, dtype=np.float32) for s in ((m, k), (k, n), (m, n)))
        jx, jw, jg = map(jax.numpy.asarray, (x, w, g))
        tx, tw, tg = map(torch.from_numpy, (x, w, g))
        fns = {"jax_fw": (jax.jit(lambda a, b: a @ b), jx, jw), "jax_dx": (jax.jit(lambda a, b: a @ b.T), jg, jw),
               "jax_dw": (jax.jit(lambda a, b: a.T @ b), jx, jg),
               "jax_dw_contig": (jax.jit(lambda a, b: jax.lax.optimization_barrier(a.T) @ b), jx, jg),
               "torch_fw": (lambda a, b: a @ b, tx, tw), "torch_dx": (lambda a, b: a @ b.T, tg, tw),
               "torch_dw": (lambda a, b: a.T @ b, tx, tg)}
        for key, (f, a, b) in fns.items():
            def call(f=f, a=a, b=b):
                return jax.block_until_ready(f(a, b))

            call()  # compile / warm up
            out.setdefault(name, {})[key] = 2 * m * k * n / 1e9 / _median_time(call, repeats)
    return out


def child(kind: str, model: str, repeats: int, donation_ab: bool) -> dict:
    import numpy as np

    if kind == "gemm":
        return gemm_child(max(repeats, 5))

    tokens = np.random.default_rng(0).integers(3, 49152, (8, 128))
    if kind == "torch":
        import torch
        import transformers

        from lib import models

        torch.set_num_threads(1)
        path = models.resolve_model(model)
        ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                                dtype=torch.float32)
        run = torch_finetune_step(ref, tokens)
        run()
        return {"torch": _median_time(run, repeats)}

    import jax
    import jax.numpy as jnp
    import optax

    from lib import models

    lm = models.load_pretrained(model)
    cfg, params = lm.model.config, lm.model.params
    x = jnp.asarray(tokens, jnp.int32)
    opt = optax.adamw(1e-5)
    step = finetune_step(cfg, opt)
    fns = {"donated": jax.jit(step, donate_argnums=(0, 1))}
    if donation_ab:
        fns["undonated"] = jax.jit(step)
        fns["logits_head"] = jax.jit(finetune_step(cfg, opt, fused_head=False), donate_argnums=(0, 1))
    states = {k: [jax.tree.map(jnp.copy, params), opt.init(params)] for k in fns}
    out = {}
    for k, f in fns.items():
        t = time.perf_counter()
        states[k][0], states[k][1], loss = f(*states[k], x)
        jax.block_until_ready(loss)
        out[f"compile_{k}"] = time.perf_counter() - t
    times = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits both alike
        for k, f in fns.items():
            t = time.perf_counter()
            states[k][0], states[k][1], loss = f(*states[k], x)
            jax.block_until_ready(loss)
            times[k].append(time.perf_counter() - t)
    out.update({k: statistics.median(v) for k, v in times.items()})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--donation_ab", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.repeats, args.donation_ab)))
        return
    import jax
    import torch
    from _results import write_section

    def run(kind, flags="", donation_ab=False):
        env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=false {flags}".strip()}
        env.pop("GLIBC_TUNABLES", None)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--model", args.model,
               "--repeats", str(args.repeats)] + (["--donation_ab"] if donation_ab else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"child {kind} {flags!r} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(kind, flags, res, flush=True)
        return res

    load0 = os.getloadavg()[0]
    torch_s = run("torch")["torch"]
    rows = {name: run("jax", flags, donation_ab=(name == next(iter(VARIANTS)))) for name, flags in VARIANTS.items()}
    load1 = os.getloadavg()[0]
    default = rows[next(iter(VARIANTS))]
    lines = [
        "## lm fine-tuning step on SmolLM2-135M: XLA's CPU dot back-ends and donation vs PyTorch eager (one core)",
        "",
        f"`python benchmarks/lm_finetune_probe.py` on {os.cpu_count()} CPU cores ({platform.machine()}), jax "
        f"{jax.__version__}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, load average {load0:.1f} → "
        f"{load1:.1f}. The fine-tuning step of the SmolLM2-135M section (batch 8 × 128 tokens, float32, AdamW), each "
        "row in its own process pinned to one core (XLA without its intra-op pool, `torch.set_num_threads(1)`), "
        f"median of {args.repeats} steps after a warm-up; PyTorch eager in the same run: {torch_s:.2f} s.",
        "",
        "| our step | XLA flags | seconds | ÷ PyTorch eager (speed) |",
        "|---|---|---|---|",
    ]
    for name, flags in VARIANTS.items():
        lines.append(f"| {name}, donated | `{flags or '(none)'}` | {rows[name]['donated']:.2f} | "
                     f"{torch_s / rows[name]['donated']:.2f}× |")
    lines.append(f"| XLA default, not donated (interleaved with the donated row) | `(none)` | "
                 f"{default['undonated']:.2f} | {torch_s / default['undonated']:.2f}× |")
    lines.append(f"| XLA default, donated, the head's `[b, t, V]` logits materialised (interleaved) | `(none)` | "
                 f"{default['logits_head']:.2f} | {torch_s / default['logits_head']:.2f}× |")
    best = min(VARIANTS, key=lambda n: rows[n]["donated"])
    ab = default["undonated"] / default["donated"]
    lines += ["", f"Fastest of ours here: {best} ({torch_s / rows[best]['donated']:.2f}× PyTorch eager). Donating "
              f"the parameters and optimizer state changes the step by {ab:.2f}× "
              "(undonated ÷ donated time); the fused head and log-softmax (`forward(labels=...)`, `lib.losses."
              "head_label_logprobs`) against materialised logits: "
              f"{default['logits_head'] / default['donated']:.2f}× (logits ÷ fused time). The step is about 0.8 "
              "TFLOP of matrix products (the 49 152-word head alone about a fifth); the table below times them "
              "alone.", ""]
    gemm = run("gemm")
    lines += ["Matrix products alone, GFLOP/s on one core (1024 rows; `x·W`, `g·Wᵀ`, `xᵀ·g` as written, and our "
              "layers' weight gradient `(xᵀ)·g` with `xᵀ` made contiguous first, the form `lib/transformer` uses "
              "from kernel width 1536):", "",
              "| `W` shape | XLA `x·W` | torch `x·W` | XLA `g·Wᵀ` | torch `g·Wᵀ` | XLA `xᵀ·g` | XLA `(xᵀ)·g` | "
              "torch `xᵀ·g` |", "|---|---|---|---|---|---|---|---|"]
    for shape, r in gemm.items():
        lines.append(f"| {shape} | " + " | ".join(f"{r[k]:.0f}" for k in ("jax_fw", "torch_fw", "jax_dx", "torch_dx",
                                                                        "jax_dw", "jax_dw_contig", "torch_dw")) + " |")
    lines.append("")
    write_section("lm fine-tuning step on SmolLM2-135M", lines)


if __name__ == "__main__":
    main()
