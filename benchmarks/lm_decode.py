"""Benchmark: KV-cached batched decoding and a forward pass, ours (JAX, lib/) vs Hugging Face transformers
(PyTorch) on the same CPU with the same random weights, at about 10M and 120M parameters.

    python benchmarks/lm_decode.py          # writes the "language-model core" section of benchmarks/RESULTS.md

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--fwd_len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
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
