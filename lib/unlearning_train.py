"""Fine-tuning and unlearning a lib/transformer model on TOFU-format QA (the recipe the TOFU / NPO / SimNPO code
uses): AdamW with TOFU's warm-up/decay schedule, jitted steps, fixed-shape batches.

Batches are dicts of `[b, L]` int arrays from `lib.text.encode_qa`: input_ids, labels (−100 off the answer),
attention_mask. The IDK / IdkDPO methods find the "I don't know" version of the forget batch inside the forget
batch under the keys idk_input_ids, idk_labels, idk_attention_mask (`with_idk`).

Step builders return a jitted function that the caller holds for as long as it needs it (one compilation per
built step and batch shape; nothing is cached here):

    step = make_finetune_step(config=cfg, optimizer=opt)          # (params, opt_state, batch) → ..., metrics
    step = make_unlearn_step("npo_rt", {"beta": 0.1}, config=cfg, optimizer=opt)
    params, opt_state, m = step(params, ref_params, opt_state, forget_batch, retain_batch)

Data helpers: `retain_pairing` (TOFU pairs each forget item with one fixed retain item), `batch_indices` (one
seeded epoch of fixed-size batches), `take` (rows of a batch, cut to its longest row), `encode_records`,
`model_length`, `relearn_subset`; `params_to_arrays` / `arrays_to_params` turn params into the flat dict of arrays
that `lib.metrics.write_npz_atomic` saves.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from lib import losses as _losses
from lib import text as _text
from lib.stats import round_up
from lib.transformer import TransformerConfig, forward

BATCH_KEYS = ("input_ids", "labels", "attention_mask")


# ----------------------------------------------------------------------------------------------- optimiser

def tofu_schedule(lr: float, *, total_steps: int, warmup_steps: int) -> optax.Schedule:
    """TOFU/NPO learning-rate schedule: linear warm-up from 0 over `warmup_steps` (one epoch), then linear decay
    to 0 at `total_steps`."""
    warmup_steps = max(int(warmup_steps), 0)
    decay = max(int(total_steps) - warmup_steps, 1)
    if warmup_steps == 0:
        return optax.linear_schedule(lr, 0.0, decay)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup_steps), optax.linear_schedule(lr, 0.0, decay)],
                                [warmup_steps])


def make_optimizer(lr: float, *, total_steps: int, warmup_steps: int = 0, weight_decay: float = 0.01,
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, clip_norm: float | None = None,
                   schedule: str = "tofu") -> optax.GradientTransformation:
    """AdamW (TOFU: weight decay 0.01) with the TOFU warm-up/decay schedule ("tofu") or a constant lr
    ("constant"); optional global-norm clipping."""
    if schedule == "tofu":
        sched = tofu_schedule(lr, total_steps=total_steps, warmup_steps=warmup_steps)
    elif schedule == "constant":
        sched = lr
    else:
        raise ValueError(f"schedule={schedule!r} is invalid: expected one of ['tofu', 'constant']")
    tx = optax.adamw(sched, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    return optax.chain(optax.clip_by_global_norm(clip_norm), tx) if clip_norm else tx


# ----------------------------------------------------------------------------------------------- steps

def _logits(params, config, batch, prefix=""):
    return forward(params, batch[prefix + "input_ids"], config=config,
                   attention_mask=batch[prefix + "attention_mask"])["logits"]


def _qa(batch: dict, prefix: str = "") -> dict:
    return {k: batch[prefix + k] for k in BATCH_KEYS}


def answer_nll(params, batch: dict, *, config: TransformerConfig) -> jnp.ndarray:
    """Fine-tuning loss: token-mean NLL over the answer tokens of the batch (HF `outputs.loss`), through the fused
    head (`forward(labels=...)`: the `[b, t, V]` logits are never materialised)."""
    targets, mask = _losses.next_token_targets(batch["labels"])
    lp = forward(params, batch["input_ids"], config=config, attention_mask=batch["attention_mask"],
                 labels=targets)["label_logprobs"]
    return -(lp * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def make_finetune_step(*, config: TransformerConfig, optimizer: optax.GradientTransformation, donate: bool = False):
    """jit: (params, opt_state, batch) → (params, opt_state, {"loss", "grad_norm"}): one step of answer-token NLL.
    Keys of `batch` other than BATCH_KEYS are ignored. `donate=True` donates params and opt_state (updated in place:
    no second copy of the model and optimizer state per step; the arrays passed in are deleted, so pass copies of
    any you keep)."""
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(answer_nll)(params, _qa(batch), config=config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss, "grad_norm": optax.global_norm(grads)}
    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def unlearning_inputs(params, ref_params, forget_batch: dict, retain_batch: dict | None, method: str, hparams: dict,
                      *, config: TransformerConfig) -> dict:
    """The `inputs` dict of `lib.losses.forget_loss` for `method`: the model's logits on the batches the method
    needs and the frozen reference's quantities (stop-gradient), computed with the method's reduction."""
    needs = _losses.method_needs(method)
    hp = _losses.method_hparams(method, hparams)
    b = {"forget": _qa(forget_batch)}
    if all(f"idk_{k}" in forget_batch for k in BATCH_KEYS):
        b["idk"] = _qa(forget_batch, "idk_")
    if "retain" in needs or "ref_retain_logits" in needs:
        if retain_batch is None:
            raise ValueError(f"unlearning method {method!r} needs a retain batch")
        b["retain"] = _qa(retain_batch)
    if ("idk" in needs or "ref_idk_logp" in needs) and "idk" not in b:
        raise ValueError(f"unlearning method {method!r} needs the IDK answers in the forget batch "
                         f"(keys idk_input_ids, idk_labels, idk_attention_mask; see with_idk)")
    inputs = {}
    for part in ("forget", "retain", "idk"):
        if part in needs:
            inputs[f"{part}_logits"] = _logits(params, config, b[part])
            inputs[f"{part}_labels"] = b[part]["labels"]
    red = hp.get("reduction", "seq_sum")
    for part in ("forget", "idk"):
        if f"ref_{part}_logp" in needs:
            ref_logits = jax.lax.stop_gradient(_logits(ref_params, config, b[part]))
            inputs[f"ref_{part}_logp"] = _losses.sequence_logps(ref_logits, b[part]["labels"], reduction=red)
    if "ref_retain_logits" in needs:
        inputs["ref_retain_logits"] = jax.lax.stop_gradient(_logits(ref_params, config, b["retain"]))
    return inputs


def make_unlearn_step(method: str, hparams: dict | None = None, *, config: TransformerConfig,
                      optimizer: optax.GradientTransformation, donate: bool = False):
    """jit: (params, ref_params, opt_state, forget_batch, retain_batch) → (params, opt_state, {"loss", "grad_norm",
    "forget_logp"}): one step of `method` (a key of lib.losses.METHODS) with `hparams` overriding its defaults;
    forget_logp is the mean per-sequence answer log-prob of the forget batch BEFORE the step. The reference model
    `ref_params` is frozen (its log-probs are recomputed per batch under stop_gradient); retain_batch may be None
    for methods without a retain term. An unknown method or hyperparameter raises here, before any tracing.
    `donate=True` donates params and opt_state (as in `make_finetune_step`; never ref_params, which may not be the
    same arrays as params then)."""
    hp = _losses.method_hparams(method, hparams)

    def loss_fn(params, ref_params, forget_batch, retain_batch):
        inputs = unlearning_inputs(params, ref_params, forget_batch, retain_batch, method, hp, config=config)
        logits = inputs.get("forget_logits")
        if logits is None:  # the idk method never looks at the true forget answers; measure them anyway
            logits = _logits(params, config, forget_batch)
        flp = _losses.sequence_logps(jax.lax.stop_gradient(logits), forget_batch["labels"]).mean()
        return _losses.forget_loss(method, inputs, **hp), flp

    def step(params, ref_params, opt_state, forget_batch, retain_batch):
        (loss, flp), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, ref_params, forget_batch,
                                                                       retain_batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        new = optax.apply_updates(params, updates)
        return new, opt_state, {"loss": loss, "grad_norm": optax.global_norm(grads), "forget_logp": flp}
    return jax.jit(step, donate_argnums=(0, 2) if donate else ())


def with_idk(forget_batch: dict, idk_batch: dict) -> dict:
    """The forget batch plus its IDK-answer version (keys prefixed "idk_"), for the idk / dpo methods."""
    return {**forget_batch, **{f"idk_{k}": idk_batch[k] for k in BATCH_KEYS}}


# ----------------------------------------------------------------------------------------------- batches

def retain_pairing(n_forget: int, n_retain: int, *, seed: int = 0) -> np.ndarray:
    """TOFU pairs forget item i with ONE fixed retain item (torch.manual_seed(i); randint), so each run only uses
    n_forget retain examples. Same structure here with numpy: index i → default_rng([seed, i]).integers(n_retain)."""
    return np.array([np.random.default_rng([seed, i]).integers(n_retain) for i in range(n_forget)], np.int64)


def batch_indices(n: int, batch_size: int, *, seed: int, shuffle: bool = True) -> list[np.ndarray]:
    """One epoch of fixed-size index batches: a permutation (seeded) cut into ceil(n / batch_size) batches, the
    last one completed by wrapping around to the start (fixed shapes for jit)."""
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    k = -(-n // batch_size)
    padded = np.concatenate([order, order[: k * batch_size - n]]) if k * batch_size > n else order
    if padded.size < k * batch_size:  # batch_size > 2n
        padded = np.resize(order, k * batch_size)
    return [padded[i * batch_size:(i + 1) * batch_size] for i in range(k)]


def take(batch: dict, idx, *, trim: int = 0) -> dict:
    """Rows `idx` of every array in an encoded batch. With `trim` > 0 the `[n, L]` arrays are cut to these rows'
    longest `attention_mask` row rounded up to a multiple of `trim` (right padding only: nothing scored is cut), so a
    batch of short rows does not pay for the data set's longest one (at most L / trim shapes to compile)."""
    out = {k: np.asarray(v)[idx] for k, v in batch.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    if trim and "attention_mask" in out:
        L = out["attention_mask"].shape[1]
        n = min(L, round_up(max(int(out["attention_mask"].sum(1).max()), 1), trim))
        out = {k: (v[:, :n] if v.ndim == 2 and v.shape[1] == L else v) for k, v in out.items()}
    return out


def encode_records(tok, records: Sequence[dict], answers: Sequence[str] | None = None, *,
                   max_len: int | None = None) -> dict:
    """`lib.text.encode_qa` of the records' questions and answers (or `answers`), padded to the longest row rounded
    up to 8 tokens (at most max_len): one shape per data set, and no compute on a model-length padding tail."""
    enc = _text.encode_qa(tok, [r["question"] for r in records], answers or [r["answer"] for r in records],
                          max_len=max_len)
    n = round_up(int(enc["attention_mask"].sum(1).max()), 8)
    return {k: (v[:, :n] if isinstance(v, np.ndarray) else v) for k, v in enc.items()}


def model_length(tok, records: Sequence[dict]) -> int:
    """Model length for these records: the longest scored row (prompt + any answer variant + EOS) rounded up to 32,
    and room for a padded prompt plus the longest gold answer + 4 generated tokens."""
    qa = [r for r in records if "question" in r]
    answers = [[r["answer"], r.get("paraphrased_answer", "")] + list(r.get("perturbed_answer", [])) for r in qa]
    prompts = [len(tok.prompt_ids(r["question"])) for r in qa]
    longest_row = max(p + max(len(tok.answer_ids(a)) for a in ans) + 1
                      for p, ans in zip(prompts, answers, strict=True))
    longest_answer = max(len(tok.answer_ids(r["answer"])) for r in qa)
    return max(round_up(longest_row, 32), round_up(max(prompts), 8) + longest_answer + 4)


def relearn_subset(forget: Sequence[dict], tok, fraction: float, selection: str, seed: int) -> list[int]:
    """Indices of a relearning set: the `fraction` shortest answers (tokens; selection="shortest") or a seeded
    random subset (selection="random")."""
    k = max(1, round(fraction * len(forget)))
    if selection == "shortest":
        lengths = np.array([len(tok.answer_ids(r["answer"])) for r in forget])
        return sorted(np.argsort(lengths, kind="stable")[:k].tolist())
    return sorted(np.random.default_rng(seed).choice(len(forget), size=k, replace=False).tolist())


# ----------------------------------------------------------------------------------------------- params as arrays

def params_to_arrays(params, prefix: str = "params/") -> dict:
    """{"params/<path/to/leaf>": numpy array} of a params tree (for `lib.metrics.write_npz_atomic`)."""
    return {prefix + "/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def arrays_to_params(arrays: dict, prefix: str = "params/"):
    """The params tree back from `params_to_arrays`' dict (other keys are ignored)."""
    flat = {tuple(k[len(prefix):].split("/")): jnp.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
    return traverse_util.unflatten_dict(flat)
