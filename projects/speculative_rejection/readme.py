"""This project's README results block, rendered from a run's results.json (never typed by hand).

`python -m harness.readme speculative_rejection` calls `render` and writes the block.
"""

from __future__ import annotations

from harness.readme import claims_table


def _f(x, fmt="{:.2f}") -> str:
    return "–" if x is None or x != x else fmt.format(x)


def render(results: dict) -> str:
    m = results["metrics"]
    if f"bon/N{m['device_batch']}/ppl" in m:  # the self-reward experiment (self_reward.py)
        return render_self_reward(results)
    n0, mult = m["device_batch"], m["bon/multiples"]
    lines = [claims_table(results), "",
             f"{m['num_prompts']} prompts, N0 = {n0}, T_max = {m['max_new_tokens']}, memory budget M = "
             f"{m['memory_slots']} KV slots, b0 = {m['b0']}; generator {m['gen_params']:,} parameters (final "
             f"loss {m['generator_final_loss']:.3f}), reward model {m['rm_params']:,} (final MSE on standardised "
             f"gold {m['rm_final_mse']:.3f}; per-prompt Pearson with gold {m['rm_gold_pearson']:.2f}). Run time "
             f"{m['total_seconds']:.0f} s ({m['train_seconds']:.0f} s training). CPU wall times from "
             f"{m['wall_prompts']} prompts.", "",
             "| method | improvement score | rel. compute: roofline / FLOPs / wall | speedup at equal score: "
             "roofline / FLOPs / wall | gold reward | gold win rate vs Bo-N0 |", "|---|---|---|---|---|---|"]
    for k in mult:
        p = f"bon/N{n0 * k}"
        lines.append(f"| Best-of-{n0 * k} | {m[f'{p}/score']:.1f} | {k} / {k} / {k} | 1 | {m[f'{p}/gold']:.3f} | "
                     f"{100 * m[f'{p}/gold_win']:.1f} % |")
    alphas = sorted({float(k.split("/")[1]) for k in m if k.startswith("spr/") and k.endswith("/score")})
    for a in alphas:
        p = f"spr/{a:g}"
        rel = " / ".join(_f(m.get(f"{p}/rel_{c}")) for c in ("roofline", "flops", "wall"))
        sp = " / ".join(_f(m.get(f"{p}/speedup_{c}"), "{:.1f}×") for c in ("roofline", "flops", "wall"))
        lines.append(f"| SpR α={a:g} ({m[f'{p}/rounds']:.1f} rounds, winner survival "
                     f"{100 * m[f'{p}/winner_survival']:.0f} %) | {m[f'{p}/score']:.1f} | {rel} | {sp} | "
                     f"{m[f'{p}/gold']:.3f} | {100 * m[f'{p}/gold_win']:.1f} % |")
    taus = sorted(int(k.split("/")[1][3:]) for k in m if k.startswith("corr/") and k.endswith("/pearson_rm"))
    if taus:
        lines += ["", "Partial/final correlation (mean over prompts of the per-prompt value):", "",
                  "| τ (new tokens) | " + " | ".join(str(t) for t in taus) + " |", "|---|" + "---|" * len(taus)]
        for key, label in (("pearson_rm", "Pearson, RM(prefix) vs RM(final)"), ("kendall_rm", "Kendall τ, RM"),
                           ("pearson_gold", "Pearson, gold(prefix) vs gold(final)"),
                           ("pearson_rm_gold", "Pearson, RM(prefix) vs gold(final)")):
            lines.append(f"| {label} | " + " | ".join(_f(m[f'corr/tau{t}/{key}']) for t in taus) + " |")
    return "\n".join(lines)


def render_self_reward(results: dict) -> str:
    """The self-reward block: perplexity of the selected response, improvement score, relative compute and
    speedup under the three cost models, the paper's figures beside ours."""
    m = results["metrics"]
    n0, mult = m["device_batch"], m["bon/multiples"]
    alphas = sorted({float(k.split("/")[1]) for k in m if k.startswith("spr/") and k.endswith("/ppl")})
    lines = [claims_table(results), "",
             f"Generator and reward: the same model ({m['gen_params']:,} parameters, {m['n_layers']} layers, width "
             f"{m['d_model']}), reward = −perplexity of prompt + response. {m['num_prompts']} prompts (chat template, "
             f"{m['prompt_tokens_mean']:.1f} tokens on average), N0 = {n0}, T_max = {m['max_new_tokens']} new tokens "
             f"({100 * m['eos_rate']:.0f} % of samples end with EOS before it; mean length {m['mean_length']:.1f}). "
             f"Run time {m['total_seconds']:.0f} s; CPU wall times from {m['wall_prompts']} prompts.", "",
             "| method | perplexity of the selected response (paper) | improvement score | rel. compute: roofline / "
             "FLOPs / wall | speedup at equal score: roofline / FLOPs / wall |", "|---|---|---|---|---|"]
    for k in mult:
        p = f"bon/N{n0 * k}"
        paper = " (Bo120: 2.407)" if k == 1 else ""
        lines.append(f"| Best-of-{n0 * k} | {m[f'{p}/ppl']:.3f}{paper} | {m[f'{p}/score']:.1f} | {k} / {k} / {k} | "
                     "1 |")
    for a in alphas:
        p = f"spr/{a:g}"
        paper = " (1.554)" if abs(a - 0.5) < 1e-9 else ""
        sp_paper = " (paper: 39.9× on average)" if abs(a - 0.5) < 1e-9 else ""
        rel = " / ".join(_f(m.get(f"{p}/rel_{c}")) for c in ("roofline", "flops", "wall"))
        sp = " / ".join(_f(m.get(f"{p}/speedup_{c}"), "{:.1f}×") for c in ("roofline", "flops", "wall"))
        lines.append(f"| SpR α={a:g} (b0 = {m[f'{p}/b0']:.0f}, {m[f'{p}/rounds']:.1f} rounds; prompt 0: batches "
                     f"{m[f'{p}/batches_prompt0']}, decisions at {m[f'{p}/decision_tokens_prompt0']} new tokens) | "
                     f"{m[f'{p}/ppl']:.3f}{paper} | {m[f'{p}/score']:.1f} | {rel} | {sp}{sp_paper} |")
    lines += ["", f"A random sample's perplexity: {m['bon/ppl_mean_sample']:.3f}. Best-of-N for every N is the exact "
              f"expectation over N-subsets of {n0 * mult[-1]} samples per prompt."]
    return "\n".join(lines)
