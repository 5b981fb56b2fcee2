"""The TOFU evaluation (lib/tofu_metrics.py) of a lib/transformer model with a `lib.text.WordTokenizer` or
`lib.text.HFQAFormat`: `make_logprob_fn` / `make_generate_fn` build the two callables `evaluate_tofu_fns` takes,
and `evaluate_tofu` does the whole evaluation (FQ, MU, its nine parts).

Scoring runs through `make_scorer(config)`, a jitted function the caller builds once and passes in
(`scorer=`) when it evaluates many models of one config; without it each call compiles its own. Generation is
lib.decoding.generate (greedy, KV cache).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lib import decoding
from lib import losses as _losses
from lib import text as _text
from lib.stats import round_up
from lib.tofu_data import DS_SIZE, EVAL_KINDS, cap_items
from lib.tofu_metrics import GenerateFn, LogprobFn, evaluate_tofu_fns
from lib.transformer import TransformerConfig, forward
from lib.unlearning_train import BATCH_KEYS


def make_scorer(config: TransformerConfig):
    """jit: (params, input_ids, labels, attention_mask) `[b, L]` → (Σ answer-token log-probs `[b]`, number of
    answer tokens `[b]`)."""
    def f(params, ids, labels, mask):
        logits = forward(params, ids, config=config, attention_mask=mask)["logits"]
        lp, m = _losses.shifted_answer_logprobs(logits, labels)
        return lp.sum(-1), m.sum(-1)
    return jax.jit(f)


def make_logprob_fn(params, config: TransformerConfig, tokenizer, *, batch_size: int = 64,
                    max_len: int | None = None, scorer=None) -> LogprobFn:
    """logprob_fn(questions, answers) → (Σ answer-token log-probs [n], number of answer tokens incl. EOS [n]).
    Every batch is padded to `batch_size` rows and the call's longest row rounded up to a multiple of 32 tokens, at
    most `max_len` (default config.max_len; longer rows lose their answer tail), so only a few shapes compile.
    `scorer`: a `make_scorer(config)` to reuse (default: a new one)."""
    f = scorer or make_scorer(config)
    limit = min(config.max_len, max_len or config.max_len)

    def logprob_fn(questions, answers):
        longest = max(len(tokenizer.prompt_ids(q)) + len(tokenizer.answer_ids(a)) + 1
                      for q, a in zip(questions, answers, strict=True))
        enc = _text.encode_qa(tokenizer, questions, answers, max_len=min(limit, round_up(longest, 32)))
        sums, counts = [], []
        for s in range(0, len(questions), batch_size):
            rows = {k: enc[k][s:s + batch_size] for k in BATCH_KEYS}
            r = rows["input_ids"].shape[0]
            pad = ((0, batch_size - r), (0, 0))
            ids = np.pad(rows["input_ids"], pad, constant_values=tokenizer.pad_id)
            lab = np.pad(rows["labels"], pad, constant_values=_text.IGNORE_INDEX)
            msk = np.pad(rows["attention_mask"], pad)
            msk[r:, 0] = 1  # padding rows: one real token so attention has a key
            a, c = f(params, ids, lab, msk)
            sums.append(np.asarray(a)[:r])
            counts.append(np.asarray(c)[:r])
        return np.concatenate(sums).astype(np.float64), np.concatenate(counts).astype(np.float64)

    return logprob_fn


def make_generate_fn(params, config: TransformerConfig, tokenizer, *, max_new_tokens: int,
                     batch_size: int = 64, prompt_len: int | None = None) -> GenerateFn:
    """generate_fn(questions) → greedy answers (text, up to EOS) with lib.decoding.generate (KV cache). Prompts are
    left-padded to `prompt_len` tokens (default: the batch's longest, rounded up to a multiple of 8) and batches
    to `batch_size` rows; a fixed prompt_len means one compilation."""
    def generate_fn(questions):
        enc = _text.encode_prompts(tokenizer, questions)
        P = prompt_len or round_up(enc["prompt_ids"].shape[1], 8)
        if enc["prompt_ids"].shape[1] > P:
            raise ValueError(f"prompt_len={prompt_len} is invalid: a prompt has {enc['prompt_ids'].shape[1]} tokens")
        if P + max_new_tokens > config.max_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} is invalid: prompts of {P} tokens (padded) + "
                             f"{max_new_tokens} new tokens exceed the model's max_len={config.max_len}")
        out = []
        for s in range(0, len(questions), batch_size):
            ids = enc["prompt_ids"][s:s + batch_size]
            msk = enc["prompt_mask"][s:s + batch_size]
            r = ids.shape[0]
            pad_rows, pad_cols = batch_size - r, P - ids.shape[1]
            ids = np.pad(ids, ((0, pad_rows), (pad_cols, 0)), constant_values=tokenizer.pad_id)
            msk = np.pad(msk, ((0, pad_rows), (pad_cols, 0)))
            msk[r:, -1] = 1
            g = decoding.generate(params, jnp.asarray(ids), jnp.asarray(msk), jax.random.key(0), config=config,
                                  max_new_tokens=max_new_tokens, temperature=0.0, eos_id=tokenizer.eos_id,
                                  pad_id=tokenizer.pad_id)
            toks = np.asarray(g["tokens"])[:r]
            out += [tokenizer.decode(t) for t in toks]
        return out

    return generate_fn


def evaluate_tofu(params, config: TransformerConfig, data: dict, retain_truth_ratios=None, *,
                  tokenizer, batch_size: int = 64, max_new_tokens: int | None = None,
                  generate: bool = True, ds_size: int | None = DS_SIZE, max_len: int | None = None,
                  scorer=None) -> dict:
    """TOFU evaluation of a lib/transformer model: `data` = {"forget","retain","real_authors","world_facts"} →
    records (`lib.tofu_data.load_tofu_eval`, or the synthetic generator's *_perturbed splits). Returns
    {"forget_quality" (None without `retain_truth_ratios`, the retain model's `out["splits"]["forget"]
    ["truth_ratios"]`), "model_utility", "mu_parts" (the nine numbers), "forget_truth_ratio", "forget_prob",
    "forget_rougeL_recall", "splits"}. Greedy generation for ROUGE-L with `max_new_tokens` (default: longest gold
    answer + 4 tokens); generate=False skips it (ROUGE and MU are then None). Log-probs use sequences padded to
    `max_len` (default config.max_len) and `scorer` (a `make_scorer(config)` to reuse across calls)."""
    logprob_fn = make_logprob_fn(params, config, tokenizer, batch_size=batch_size, max_len=max_len, scorer=scorer)
    gen_fn = None
    if generate:
        recs = [r for k in EVAL_KINDS if k in data for r in cap_items(data[k], ds_size)]
        if max_new_tokens is None:
            max_new_tokens = max(len(tokenizer.answer_ids(r["answer"])) for r in recs) + 4
        prompt_len = round_up(max(len(tokenizer.prompt_ids(r["question"])) for r in recs), 8)
        gen_fn = make_generate_fn(params, config, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                  prompt_len=prompt_len)
    return evaluate_tofu_fns(data, logprob_fn, gen_fn, retain_truth_ratios=retain_truth_ratios, ds_size=ds_size)
