"""Benchmark: one two_hop training step (AdamW), our jitted JAX vs the same model in PyTorch eager.

    python benchmarks/two_hop_step.py        # writes the two_hop section of benchmarks/RESULTS.md (~10 min)

Same work on both sides: the authors' GPT (3 layers, 1 head, pre-LN, no biases, ReLU FFN 4d, learned
positions, untied head), batch of 24-token sequences, full forward with logits at every position, cross-
entropy at the query position only, AdamW (β2 0.99, wd 1e-4). Sizes: the paper's (d=256, batch 512) and the
small one (d=64, batch 128). A separate row shows the savings the task allows (stop the sequence at the
query, run the head only there), which are not folded into the comparison. Model FLOPs per step are
counted analytically (forward + backward = 3× the forward) and compared with the machine's measured float32
matmul peak (the best of numpy/torch/jax on 2048² matmuls in this run). Each variant runs in its own process
so its XLA flags apply: XLA's defaults, single-threaded, and YNNPACK fusions off
(`--xla_cpu_experimental_ynn_fusion_type=`: XLA's Eigen dots instead of YNNPACK's, which were slower here on
the skinny `[b·t, 256] × [256, 1024]` shapes). PyTorch uses its default thread count.

Process memory settings are a dimension too, since glibc reads them only at process start: XLA's CPU runtime maps
a fresh buffer for each execution's temporaries (about 700 MB at the paper size, ~171k page faults per step with
4 KB pages), so our variants also run with 2 MB pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, what the
projects' launchers set: harness/runtime.huge_pages_env); PyTorch runs with glibc's defaults, with a retained
heap (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`: fewer fresh mappings for its
activations) and with both. The ratio is taken against PyTorch's best setting.

The ceiling line times the step's dense-layer matmuls alone (per layer q, k, v, o, up, down: forward, input
gradient and weight gradient, `[12288, K] × [K, N]` at the paper size) with each library, to show how much of
the step the matmul libraries themselves take; everything else (norms, softmax, residuals, AdamW) must fit
in the rest. Measured on 2 shared cores: each variant runs in `--rounds` interleaved rounds (fresh processes) and
is reported at its best round, since other tenants on a shared VM only ever add time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINGLE = "--xla_cpu_multi_thread_eigen=false"
NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="
# process memory settings (environment variables glibc reads at start-up)
MEMORY = {
    "default": {},
    "2MB pages": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "retained heap": {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "8589934592",
                      "MALLOC_TOP_PAD_": "1073741824"},
}
MEMORY["retained heap + 2MB pages"] = {**MEMORY["retained heap"], **MEMORY["2MB pages"]}
SEQ, VOCAB, QUERY = 24, 34, 21


def flops(d: int, batch: int, seq: int, head_positions: int) -> float:
    """Matmul FLOPs of one training step (3× the forward): per layer q,k,v,o (8d²) + FFN (16d²) per token,
    attention scores and values (4·seq·d per token), the head (2·d·V) at `head_positions` per sequence."""
    per_layer = batch * seq * (24 * d * d + 4 * seq * d)
    return 3.0 * (3 * per_layer + batch * head_positions * 2 * d * VOCAB)


def time_steps(step, n: int) -> float:
    step()
    step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n


def jax_setup(d: int, batch: int, truncate: bool):
    """(params, optimizer, loss function of params) for the benchmark's model and batch."""
    sys.path.insert(0, ROOT)
    import jax
    import jax.numpy as jnp
    import optax

    from lib import transformer

    cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=d, n_layers=3, n_heads=1, max_len=256,
                                        positions="learned", norm="layernorm", mlp="relu", d_ff=4 * d,
                                        tied_head=False, qkv_bias=False, out_bias=False, mlp_bias=False,
                                        init="torch")
    params = transformer.init_params(cfg, jax.random.key(0))
    tx = optax.adamw(1e-3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-4)
    opt = tx.init(params)
    seq = QUERY + 1 if truncate else SEQ
    tokens = jax.random.randint(jax.random.key(1), (batch, seq), 0, VOCAB)
    target = jax.random.randint(jax.random.key(2), (batch,), 0, VOCAB)

    def loss(p):
        if truncate:
            logits = transformer.forward(p, tokens, config=cfg, select=jnp.full((batch,), QUERY))["logits"]
        else:
            logits = transformer.forward(p, tokens, config=cfg)["logits"][:, QUERY]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), target[:, None], 1).mean()

    return params, tx, opt, loss


def run_jax(d: int, batch: int, truncate: bool, n: int) -> float:
    import jax
    import optax

    params, tx, opt, loss = jax_setup(d, batch, truncate)

    @functools.partial(jax.jit, donate_argnums=(0, 1))  # in place, as projects/two_hop/train.py and PyTorch do
    def step(p, o):
        g = jax.grad(loss)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    state = [params, opt]

    def one():
        state[0], state[1] = step(*state)
        jax.block_until_ready(state[0])

    return time_steps(one, n)


def torch_setup(d: int, batch: int):
    """(model, optimizer, loss closure) for the same model and batch in PyTorch."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.o = nn.Linear(d, d, bias=False)
            self.ff = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.ReLU(), nn.Linear(4 * d, d, bias=False))

        def forward(self, x, mask):
            q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
            att = (q @ k.transpose(1, 2)) / d ** 0.5
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            x = x + self.o(att @ v)
            return x + self.ff(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(256, d)
            self.blocks = nn.ModuleList([Block() for _ in range(3)])
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB, bias=False)

        def forward(self, idx):
            t = idx.shape[1]
            x = self.tok(idx) + self.pos(torch.arange(t))
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
            for b in self.blocks:
                x = b(x, mask)
            return self.head(self.ln(x))

    torch.manual_seed(0)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-4)
    tokens = torch.randint(0, VOCAB, (batch, SEQ))
    labels = torch.full((batch, SEQ), -100)
    labels[:, QUERY] = torch.randint(0, VOCAB, (batch,))

    def loss():
        logits = model(tokens)
        return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)

    return model, opt, tokens, loss


def run_torch(d: int, batch: int, n: int) -> float:
    _, opt, _, loss = torch_setup(d, batch)

    def one():
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()

    return time_steps(one, n)


def breakdown(d: int, batch: int, n: int) -> dict:
    """Forward and gradient seconds for both libraries (this process's XLA flags), and the time our gradient
    spends in XLA's instrumented non-dot ops, by kind, from a profiler trace (the big dots run on Eigen's
    threads and are not in it)."""
    import collections
    import glob
    import gzip
    import re
    import tempfile

    import jax
    import torch

    params, _, _, loss = jax_setup(d, batch, False)
    fwd, grad = jax.jit(loss), jax.jit(jax.grad(loss))
    out = {"jax_forward": time_steps(functools.partial(_ready, fwd, params), n),
           "jax_grad": time_steps(functools.partial(_ready, grad, params), n)}
    model, _, tokens, tloss = torch_setup(d, batch)

    def tfwd():
        with torch.no_grad():
            model(tokens)

    def tgrad():
        model.zero_grad(set_to_none=True)
        tloss().backward()

    out["torch_forward"], out["torch_grad"] = time_steps(tfwd, n), time_steps(tgrad, n)
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(n):
                _ready(grad, params)
        trace = json.load(gzip.open(glob.glob(f"{tmp}/**/*perfetto_trace.json.gz", recursive=True)[-1]))
    kinds, counts = collections.Counter(), collections.Counter()
    for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
        name = e.get("name", "")
        if e.get("ph") == "X" and "dur" in e and not name.startswith("$") and "Thunk" not in name:
            kind = re.sub(r"\.\d+$", "", name)
            kinds[kind] += e["dur"] / 1e6 / n
            counts[kind] += 1 / n
    out["profile"] = {k: [v, round(counts[k])] for k, v in kinds.most_common(6)}
    return out


def matmul_peak() -> float:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    best = 0.0
    ta = torch.from_numpy(a)
    ja = jnp.asarray(a)
    jdot = jax.jit(jnp.dot)
    for fn in (lambda: a @ a, lambda: ta @ ta, lambda: jax.block_until_ready(jdot(ja, ja))):
        fn()
        t = time.perf_counter()
        for _ in range(5):
            fn()
        best = max(best, 2 * n ** 3 * 5 / (time.perf_counter() - t))
    return best


def _ready(fn, *args):
    import jax

    return jax.block_until_ready(fn(*args))


def dense_matmuls(d: int, batch: int, n: int) -> dict:
    """Seconds for one step's dense-layer matmuls alone (3 layers; q, k, v, o, up, down; forward, input
    gradient, weight gradient), jax (this process's XLA flags) and torch, each shape timed separately."""
    import jax
    import numpy as np
    import torch

    m, rng = batch * SEQ, np.random.default_rng(0)
    total = {"jax": 0.0, "torch": 0.0}
    fw, dx, dw = jax.jit(lambda a, w: a @ w), jax.jit(lambda g, w: g @ w.T), jax.jit(lambda a, g: a.T @ g)
    for k, nn_, count in ((d, d, 4), (d, 4 * d, 1), (4 * d, d, 1)):
        x, w, g = (rng.standard_normal(s, dtype=np.float32) for s in ((m, k), (k, nn_), (m, nn_)))
        jx, jw, jg = (jax.numpy.asarray(a) for a in (x, w, g))
        tx, tw, tg = (torch.from_numpy(a) for a in (x, w, g))
        for fn, a, b in ((fw, jx, jw), (dx, jg, jw), (dw, jx, jg)):
            total["jax"] += 3 * count * time_steps(functools.partial(_ready, fn, a, b), n)
        for a, b in ((tx, tw), (tg, tw.T), (tx.T, tg)):
            total["torch"] += 3 * count * time_steps(functools.partial(torch.matmul, a, b), n)
    return total


def child(kind: str, d: int, batch: int, n: int) -> None:
    if kind == "peak":
        print(json.dumps({"value": matmul_peak()}))
    elif kind == "matmuls":
        print(json.dumps({"value": dense_matmuls(d, batch, n)}))
    elif kind == "breakdown":
        print(json.dumps({"value": breakdown(d, batch, n)}))
    elif kind == "torch":
        print(json.dumps({"value": run_torch(d, batch, n)}))
    else:
        print(json.dumps({"value": run_jax(d, batch, kind == "jax_truncated", n)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds per variant; each variant is reported at its best round")
    ap.add_argument("--breakdown", action="store_true",
                    help="only the forward / gradient split and the gradient's profile (d=256, batch 512)")
    args = ap.parse_args()
    if args.child:
        kind, d, batch, n = args.child
        return child(kind, int(d), int(batch), int(n))

    def sub(kind, d=0, batch=0, flags="", memory="default"):
        env = dict(os.environ, PYTHONPATH=ROOT)
        for name in ("XLA_FLAGS", "GLIBC_TUNABLES", *MEMORY["retained heap"]):
            env.pop(name, None)
        env.update(MEMORY[memory])
        if flags:
            env["XLA_FLAGS"] = flags
        out = subprocess.run([sys.executable, __file__, "--child", kind, str(d), str(batch), str(args.steps)],
                             env=env, capture_output=True, text=True, timeout=1800)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])["value"]

    if args.breakdown:
        return write_breakdown(sub("breakdown", 256, 512, NO_YNN, "retained heap + 2MB pages"), args.steps)
    peak = max(sub("peak", memory=m) for m in ("default", "retained heap + 2MB pages"))
    # On a shared VM other tenants only ever add time: every variant runs in `--rounds` interleaved rounds (a fresh
    # process each) and is reported at its best round, so a slow spell cannot land on one side only.
    torch_v = [("torch", "", m) for m in ("default", "retained heap", "retained heap + 2MB pages")]
    jax_v = [("jax", f, "default") for f in ("", SINGLE, NO_YNN)] + [("jax", f, "2MB pages") for f in (SINGLE, NO_YNN)]
    trunc_v = [("jax_truncated", f, "2MB pages") for f in (SINGLE, NO_YNN)]
    variants = torch_v + jax_v + trunc_v
    rows = []
    for d, batch in ((256, 512), (64, 128)):
        times = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                times[v].append(sub(v[0], d, batch, v[1], v[2]))
        best = {v: min(t) for v, t in times.items()}
        rows.append((d, batch, best))
        print(d, batch, {f"{k} {f[:20]} {m}": [round(x, 3) for x in t] for (k, f, m), t in times.items()},
              flush=True)
    mm = [sub("matmuls", 256, 512, flags, memory) for flags, memory in (("", "default"), (NO_YNN, "default"),
                                                                         (NO_YNN, "retained heap + 2MB pages"))]
    mm_jax, mm_torch = min(m["jax"] for m in mm), min(m["torch"] for m in mm)
    mm_flops = 3 * 3 * 512 * SEQ * 24 * 256 ** 2  # 3 layers × (forward, input grad, weight grad)
    import jax
    import torch

    lines = [
        "## two_hop training step: jitted JAX vs PyTorch eager",
        "",
        f"`python benchmarks/two_hop_step.py` on {os.cpu_count()} CPU cores ({platform.machine()}), jax "
        f"{jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{time.strftime('%Y-%m-%d')}. One AdamW step of the authors' 3-layer GPT, 24-token sequences, full forward, "
        f"loss at the query; per variant the best of {args.rounds} interleaved rounds (fresh processes), each the "
        f"mean of {args.steps} steps after warm-up. Measured float32 matmul peak (best of numpy, "
        f"torch, jax on 2048² matmuls, default and tuned memory settings, this run): {peak / 1e9:.0f} GFLOP/s.",
        "",
        "s/step of each variant; memory settings in brackets (see the script's docstring): "
        "PyTorch eager [default / retained heap / retained heap + 2MB pages]; ours with glibc's default pages "
        "[XLA default threads / single-threaded / YNNPACK fusions off]; ours with 2MB pages, as the projects' "
        "launchers run [single-threaded / YNNPACK fusions off].",
        "",
        "| model | PyTorch eager | ours, default pages | ours, 2MB pages | speed ratio (PyTorch's best / ours' "
        "best) | vs PyTorch with default settings | ours model GFLOP/s (% of peak) | task savings: truncated at "
        "query, head at query only, s/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d, batch, best in rows:
        f_full = flops(d, batch, SEQ, SEQ)
        t_torch = [best[v] for v in torch_v]
        t_jax = [best[v] for v in jax_v]
        ours, theirs = min(t_jax), min(t_torch)
        lines.append(f"| d={d}, batch {batch} ({f_full / 1e9:.1f} GFLOP/step) | "
                     f"{' / '.join(f'{t:.3f}' for t in t_torch)} | {' / '.join(f'{t:.3f}' for t in t_jax[:3])} | "
                     f"{' / '.join(f'{t:.3f}' for t in t_jax[3:])} | **{theirs / ours:.2f}×** | "
                     f"{t_torch[0] / ours:.2f}× | {f_full / ours / 1e9:.0f} ({100 * f_full / ours / peak:.0f}%) | "
                     f"{min(best[v] for v in trunc_v):.3f} |")
    f_paper = flops(256, 512, SEQ, SEQ)
    lines += [
        "",
        f"Ceiling at d=256, batch 512: the step's dense-layer matmuls alone ({mm_flops / 1e9:.1f} of its "
        f"{f_paper / 1e9:.1f} GFLOP), each shape timed separately, take {mm_jax:.3f} s with XLA (best of default, "
        f"YNNPACK off, and YNNPACK off with tuned memory; {mm_flops / mm_jax / 1e9:.0f} GFLOP/s) and "
        f"{mm_torch:.3f} s with PyTorch ({mm_flops / mm_torch / 1e9:.0f} GFLOP/s). A whole step at 80% of the peak "
        f"would take {f_paper / (0.8 * peak):.3f} s.",
    ]
    lines.append("")
    write_section("two_hop training step", lines)


def write_breakdown(b: dict, steps: int) -> None:
    import jax
    import torch

    prof = ", ".join(f"`{k}` {v * 1e3:.0f} ms ({c} ops)" for k, (v, c) in b["profile"].items())
    write_section("two_hop step breakdown", [
        "## two_hop step breakdown: where the gap to PyTorch is",
        "",
        f"`python benchmarks/two_hop_step.py --breakdown` on {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"(YNNPACK fusions off), torch {torch.__version__}, both with a retained heap and 2MB pages, "
        f"{time.strftime('%Y-%m-%d')}; d=256, batch 512, mean of "
        f"{steps} calls after warm-up.",
        "",
        "| part | PyTorch eager s | ours s | ratio (PyTorch / ours) |",
        "|---|---|---|---|",
        f"| forward (loss) | {b['torch_forward']:.3f} | {b['jax_forward']:.3f} | "
        f"{b['torch_forward'] / b['jax_forward']:.2f}× |",
        f"| forward + backward (gradient) | {b['torch_grad']:.3f} | {b['jax_grad']:.3f} | "
        f"{b['torch_grad'] / b['jax_grad']:.2f}× |",
        "",
        f"Our gradient's largest ops per call in a profiler trace, besides the dense-layer matmuls (those run on "
        f"Eigen's threads and are not in it): {prof}. `dot` is the attention's batched matmuls; "
        f"`wrapped_reduce-window` is the row reductions (LayerNorm, softmax), which XLA's CPU backend splits into "
        f"windows of 32; `copy_bitcast_fusion` lays out the attention operands; `broadcast_maximum_fusion` is the "
        f"ReLU.",
        "",
    ])


if __name__ == "__main__":
    main()
