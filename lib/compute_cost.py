"""Cost models for generation, computed from a run's logged (batch, length) schedule.

Speculative Rejection's headline is GPU time, and decoding an 8B model is memory-bandwidth bound: one decode
step of b rows costs about (weights + resident KV bytes) / bandwidth, nearly independent of b. A tiny model on
a CPU lives in a different regime, so (following the project's spec, §5.4) we report three costs side by side:

- `flops`: matmul FLOPs, hardware-agnostic. Per generated row-step 2·P_nonemb + 2·d·V + 4·n_layers·ℓ·d
  (ℓ = attended context); a prefill or reward-model pass over n tokens costs the same per token. Padded
  rows of a static batch are counted (they are computed).
- `roofline`: simulated-accelerator seconds, t_step(b, kv) = max((W_gen + κ·kv)/BW, 2·P_gen·b/F) for a
  decode step and t(n) = max(W/BW, 2·P·n/F) for a prefill / reward pass, with the paper's setting by
  default (8B generator and 8B reward model in bf16, KV 128 KiB/token, H100: 3.35 TB/s, 0.5·989 TFLOP/s).
  Lengths of a small experiment are scaled to the paper's by `length_scale` (e.g. 2048 / T_max).
- wall time is measured by the caller.

Inputs are plain numbers and lists, so the functions serve any decoding method that logs its schedule.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelDims:
    """What the FLOP model needs: non-embedding parameters, width, layers, vocabulary."""

    params_nonemb: float
    d_model: int
    n_layers: int
    vocab: int


@dataclasses.dataclass(frozen=True)
class Roofline:
    """An accelerator and the models on it (defaults: the paper's 8B + 8B in bf16 on an H100)."""

    weight_bytes_gen: float = 16e9
    weight_bytes_rm: float = 16e9
    params_gen: float = 8e9
    params_rm: float = 8e9
    kv_bytes_per_token: float = 128 * 1024
    bandwidth: float = 3.35e12
    flops_per_s: float = 0.5 * 989e12


def token_flops(dims: ModelDims, context: float) -> float:
    """Forward FLOPs of one token attending to `context` tokens."""
    return 2 * dims.params_nonemb + 2 * dims.d_model * dims.vocab + 4 * dims.n_layers * context * dims.d_model


def decode_flops(dims: ModelDims, *, batch: int, start: int, end: int) -> float:
    """FLOPs of decoding `batch` rows from total length `start` to `end` (each step attends to its prefix)."""
    steps = end - start
    mean_context = (start + end - 1) / 2  # context of the step writing position p is p (0-based) + 1
    return batch * steps * token_flops(dims, mean_context + 1)


def prefill_flops(dims: ModelDims, *, batch: int, length: int) -> float:
    """FLOPs of one full forward over `batch` sequences of `length` tokens (prefill or a reward pass)."""
    return batch * length * token_flops(dims, (length + 1) / 2)


def roofline_decode_seconds(hw: Roofline, *, batch: int, start: int, end: int, length_scale: float = 1.0,
                            batch_scale: float = 1.0) -> float:
    """Simulated seconds to decode `batch` rows from `start` to `end` (lengths scaled by `length_scale`, rows
    by `batch_scale`): each step is bandwidth-bound (weights + resident KV) or compute-bound, whichever is
    slower."""
    batch = batch * batch_scale
    s0, s1 = start * length_scale, end * length_scale
    steps = s1 - s0
    kv = batch * (s0 + s1) / 2  # mean resident KV tokens over the steps
    per_step = max((hw.weight_bytes_gen + hw.kv_bytes_per_token * kv) / hw.bandwidth,
                    2 * hw.params_gen * batch / hw.flops_per_s)
    return steps * per_step


def roofline_pass_seconds(hw: Roofline, *, batch: int, length: int, reward_model: bool,
                          length_scale: float = 1.0, batch_scale: float = 1.0) -> float:
    """Simulated seconds of one prefill (generator) or reward-model pass over batch × length tokens."""
    batch = batch * batch_scale
    w, p = (hw.weight_bytes_rm, hw.params_rm) if reward_model else (hw.weight_bytes_gen, hw.params_gen)
    return max(w / hw.bandwidth, 2 * p * batch * length * length_scale / hw.flops_per_s)


def schedule_cost(rounds: list[dict], rm_calls: list[dict], *, prompt_len: int, gen: ModelDims, rm: ModelDims,
                  hw: Roofline = Roofline(), length_scale: float = 1.0, batch_scale: float = 1.0,
                  initial_batch: int | None = None, prefills: list[dict] = (), scale_prompt: bool = True) -> dict:
    """Total cost of a logged schedule.

    `rounds`: [{"bucket" (rows computed), "start", "end"}] (lengths include the prompt, as
    `lib.decoding.speculative_rejection` logs them); `rm_calls`: [{"n", "length"}]. The first round's
    rows are prefilled over the prompt; `prefills` [{"n", "length"}] are later generator prefills
    (re-prefilling survivors, as the official Speculative Rejection code does). `length_scale` and
    `batch_scale` map a small experiment's lengths and rows to the simulated accelerator's (FLOPs are not
    scaled). `scale_prompt=False` scales only the new tokens (a length ℓ maps to P + (ℓ − P)·length_scale), for
    prompts already of the paper's size. Returns {"flops", "roofline_seconds"}."""
    sc = dict(length_scale=length_scale if scale_prompt else 1.0, batch_scale=batch_scale)
    L = (lambda x: x) if scale_prompt else (lambda x: prompt_len + (x - prompt_len) * length_scale)
    b0 = initial_batch if initial_batch is not None else rounds[0]["bucket"]
    flops = prefill_flops(gen, batch=b0, length=prompt_len)
    sim = roofline_pass_seconds(hw, batch=b0, length=L(prompt_len), reward_model=False, **sc)
    for r in rounds:
        flops += decode_flops(gen, batch=r["bucket"], start=r["start"], end=r["end"])
        sim += roofline_decode_seconds(hw, batch=r["bucket"], start=L(r["start"]), end=L(r["end"]), **sc)
    for c in prefills:
        flops += prefill_flops(gen, batch=c["n"], length=c["length"])
        sim += roofline_pass_seconds(hw, batch=c["n"], length=L(c["length"]), reward_model=False, **sc)
    for c in rm_calls:
        flops += prefill_flops(rm, batch=c["n"], length=c["length"])
        sim += roofline_pass_seconds(hw, batch=c["n"], length=L(c["length"]), reward_model=True, **sc)
    return {"flops": flops, "roofline_seconds": sim}


def best_of_n_cost(n: int, *, device_batch: int, prompt_len: int, max_new_tokens: int, gen: ModelDims,
                   rm: ModelDims, hw: Roofline = Roofline(), length_scale: float = 1.0,
                   batch_scale: float = 1.0, scale_prompt: bool = True) -> dict:
    """Best-of-N as the paper runs it: n / device_batch devices, each decoding `device_batch` rows for
    `max_new_tokens` steps (pass the device's longest response: generation stops when every row has
    finished) and scoring them once. Device-seconds add up (relative compute = time × devices)."""
    devices = n / device_batch
    one = schedule_cost([{"bucket": device_batch, "start": prompt_len, "end": prompt_len + max_new_tokens}],
                        [{"n": device_batch, "length": prompt_len + max_new_tokens}], prompt_len=prompt_len,
                        gen=gen, rm=rm, hw=hw, length_scale=length_scale, batch_scale=batch_scale,
                        scale_prompt=scale_prompt)
    return {k: v * devices for k, v in one.items()}
