"""The generator LM and the learned reward model of the TKL experiment (spec §5.2–5.3).

- Generator: a GPT-style decoder trained by next-token cross-entropy on the response tokens of corpus
  sequences `BOS t1 t2 t3 SEP y1 … EOS` (PAD after EOS is ignored).
- Reward model: the same backbone with a scalar head read at the last real token, trained by MSE on the
  standardised gold reward of **complete responses sampled from the trained generator** only. At decision
  tokens it scores prefixes "as if complete" (with EOS appended by default, as ArmoRM's chat template closes
  the assistant turn).

Both trainings are `lax.scan` chunks under one jit, checkpointed with orbax (`lib.checkpoint`), so a rerun
resumes.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import decoding, transformer
from lib.checkpoint import Checkpointer
from lib.metrics import MetricWriter, check_finite, progress, read_npz, write_npz_atomic
from lib.stats import round_up
from projects.speculative_rejection import tkl


def model_config(mc, *, max_new_tokens: int, head: str = "lm") -> transformer.TransformerConfig:
    """GPT-2-style blocks (learned positions, pre-LN, GELU, tied head) of width `mc.d_model`."""
    return transformer.TransformerConfig(
        vocab_size=tkl.VOCAB, d_model=mc.d_model, n_layers=mc.n_layers, n_heads=mc.n_heads,
        max_len=tkl.PROMPT_LEN + max_new_tokens + 1, positions="learned", mlp="gelu", head=head)


def _schedule(tc):
    return optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, min(100, tc.steps // 10 + 1), tc.steps,
                                              tc.learning_rate * 0.1)


def _optimizer(tc):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(_schedule(tc), weight_decay=tc.weight_decay))


def lm_loss(params, seqs, *, mc):
    """Mean cross-entropy of the response tokens (EOS included, PAD after it excluded) of `[b, 5+T]`."""
    inputs, labels = seqs[:, :-1], seqs[:, 1:]
    logits = transformer.forward(params, inputs, config=mc)["logits"]
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[..., None], -1)[..., 0]
    pos = jnp.arange(labels.shape[1])[None, :] + 1  # position of each label in seqs
    ended_before = jnp.cumsum(seqs == tkl.EOS, axis=1)[:, :-1] > 0  # an EOS strictly before the label
    mask = (pos >= tkl.PROMPT_LEN) & ~ended_before
    return -(logp * mask).sum() / mask.sum()


def _train(workdir: str, name: str, *, tc, mc, init_params, loss_fn, batch_fn, desc: str) -> dict:
    """Generic resumable AdamW training: `batch_fn(step) -> batch` (numpy), `loss_fn(params, batch)`."""
    tx = _optimizer(tc)
    state = {"step": jnp.zeros((), jnp.int32), "params": init_params, "opt": tx.init(init_params)}
    ckpt = Checkpointer(os.path.join(workdir, name), save_every=tc.log_every, keep=1)
    restored = ckpt.restore_latest(state)
    if restored is not None:
        state = restored[1]
    start = int(state["step"])
    writer = MetricWriter(workdir, filename=f"{name}_metrics.jsonl", resume_step=start if start else None)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates), "opt": opt}, loss

    losses = []
    with progress(tc.steps, desc=desc, initial=start) as bar:
        for s in range(start, tc.steps):
            state, loss = step(state, batch_fn(s))
            losses.append(loss)
            bar.update(1)
            if (s + 1) % tc.log_every == 0 or s + 1 == tc.steps:
                m = {"loss": float(np.mean(jax.device_get(losses)))}
                check_finite(s + 1, m)
                writer.write_scalars(s + 1, m)
                losses = []
                ckpt.save(s + 1, state)
    ckpt.close()
    writer.close()
    return state["params"]


def train_generator(workdir: str, *, config, lang: tkl.Language) -> tuple[dict, transformer.TransformerConfig]:
    """Trains (or resumes) the generator on fresh corpus batches; returns (params, model config)."""
    gc = config.generator
    mc = model_config(gc, max_new_tokens=config.max_new_tokens)
    params = transformer.init_params(mc, jax.random.key(config.seed), seq_len=tkl.PROMPT_LEN + config.max_new_tokens)

    def batch_fn(step):
        rng = np.random.default_rng([config.seed, 1, step])
        prompts = tkl.sample_prompts(gc.train.batch_size, rng)
        return jnp.asarray(np.concatenate([prompts, tkl.sample_corpus(prompts, lang, rng)], axis=1))

    params = _train(workdir, "generator", tc=gc.train, mc=mc, init_params=params,
                    loss_fn=functools.partial(lm_loss, mc=mc), batch_fn=batch_fn, desc="generator")
    return params, mc


def rm_inputs(prompts: np.ndarray, responses: np.ndarray, *, append_eos: bool) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded RM inputs `[n, 5 + L (+1)]` and their masks: prompt + response up to its EOS (or its
    end), with EOS appended to responses that have none when `append_eos` ("as if complete")."""
    prompts, responses = np.asarray(prompts), np.asarray(responses)
    n, L = responses.shape
    if prompts.ndim == 1:
        prompts = np.broadcast_to(prompts, (n, len(prompts)))
    ended = np.cumsum((responses == tkl.EOS) | (responses == tkl.PAD), axis=1) > 0
    has_eos = (responses == tkl.EOS).any(1)
    length = np.where(has_eos, np.argmax(responses == tkl.EOS, axis=1) + 1, (~ended).sum(1))
    resp = np.where(np.arange(L)[None, :] < length[:, None], responses, tkl.PAD)
    extra = np.full((n, 1), tkl.PAD, responses.dtype)
    seq = np.concatenate([prompts, resp, extra], axis=1)
    if append_eos:
        seq[np.arange(n)[~has_eos], tkl.PROMPT_LEN + length[~has_eos]] = tkl.EOS
        length = length + ~has_eos
    mask = (np.arange(seq.shape[1])[None, :] < (tkl.PROMPT_LEN + length)[:, None]).astype(np.int32)
    return seq.astype(np.int32), mask


def rm_loss(params, batch, *, mc):
    score = transformer.forward(params, batch["seq"], config=mc, attention_mask=batch["mask"])["score"]
    return jnp.mean((score - batch["target"]) ** 2)


@functools.partial(jax.jit, static_argnames=("mc", "n", "max_new_tokens", "temperature", "top_k"))
def sample_responses(params, prompts, key, *, mc, n: int, max_new_tokens: int, temperature: float = 1.0,
                     top_k: int = 0):
    """`n` responses per prompt `[p, 5]` → tokens `[p·n, T]`; row ids prompt·n + j under `key`."""
    rep = jnp.repeat(prompts, n, axis=0)
    out = decoding.generate(params, rep, jnp.ones_like(rep), key, config=mc, max_new_tokens=max_new_tokens,
                            temperature=temperature, top_k=top_k, eos_id=tkl.EOS, pad_id=tkl.PAD)
    return out["tokens"]


def rm_dataset(gen_params, gen_mc, *, config, lang: tkl.Language, path: str) -> dict:
    """Complete responses sampled from the trained generator with their gold rewards (cached atomically)."""
    if os.path.exists(path):
        return read_npz(path)
    rc = config.reward_model
    rng = np.random.default_rng([config.seed, 2])
    per = rc.samples_per_prompt
    n_prompts = -(-rc.num_samples // per)
    prompts = tkl.sample_prompts(n_prompts, rng)
    chunks = []
    chunk = max(1, 1024 // per)
    with progress(n_prompts, desc="RM data", unit="prompt") as bar:
        for i in range(0, n_prompts, chunk):
            p = jnp.asarray(prompts[i:i + chunk])
            key = jax.random.fold_in(jax.random.key(config.seed), 10_000 + i)
            chunks.append(np.asarray(sample_responses(gen_params, p, key, mc=gen_mc, n=per,
                                                      max_new_tokens=config.max_new_tokens)))
            bar.update(len(p))
    responses = np.concatenate(chunks)
    rep_prompts = np.repeat(prompts, per, axis=0)
    data = {"prompts": rep_prompts, "responses": responses, "gold": tkl.gold_reward(rep_prompts, responses, lang)}
    write_npz_atomic(path, data)
    return data


def train_reward_model(workdir: str, data: dict, *, config, gen_params: dict | None = None
                       ) -> tuple[dict, transformer.TransformerConfig, dict]:
    """Trains (or resumes) the RM on complete responses; returns (params, model config, target scaling).

    With `reward_model.init_from_generator` the backbone starts from the generator's weights (as RLHF reward
    models start from the SFT model) and only the scalar head is new; the RM then needs the generator's width
    and depth."""
    rc = config.reward_model
    mc = model_config(rc, max_new_tokens=config.max_new_tokens, head="scalar")
    seq, mask = rm_inputs(data["prompts"], data["responses"], append_eos=False)
    mean, std = float(data["gold"].mean()), float(data["gold"].std() + 1e-8)
    target = ((data["gold"] - mean) / std).astype(np.float32)
    n = len(seq)
    params = transformer.init_params(mc, jax.random.key(config.seed + 1), seq_len=seq.shape[1])
    if rc.init_from_generator:
        if gen_params is None:
            raise ValueError("reward_model.init_from_generator=True needs the generator's params")
        params = {**jax.tree.map(jnp.array, gen_params), "score": params["score"]}

    def batch_fn(step):
        idx = np.random.default_rng([config.seed, 3, step]).integers(n, size=rc.train.batch_size)
        return {"seq": jnp.asarray(seq[idx]), "mask": jnp.asarray(mask[idx]), "target": jnp.asarray(target[idx])}

    params = _train(workdir, "reward_model", tc=rc.train, mc=mc, init_params=params,
                    loss_fn=functools.partial(rm_loss, mc=mc), batch_fn=batch_fn, desc="reward model")
    return params, mc, {"mean": mean, "std": std}


@functools.partial(jax.jit, static_argnames=("mc",))
def rm_score(params, seq, mask, *, mc):
    return transformer.forward(params, seq, config=mc, attention_mask=mask)["score"]


def bucket_pow2(n: int, minimum: int = 8) -> int:
    return max(minimum, 1 << (int(n) - 1).bit_length())


def score_padded(params, seq: np.ndarray, mask: np.ndarray, *, mc, length_bucket: int = 64) -> np.ndarray:
    """RM scores of `[n, L]` with rows padded to a power of two and length to a multiple of
    `length_bucket` (at most the position table), so jit compiles a bounded number of shapes. Padding does not
    change a score."""
    n, L = seq.shape
    nb, Lb = bucket_pow2(n), max(L, min(round_up(L, length_bucket), mc.max_len))
    s = np.zeros((nb, Lb), np.int32)
    m = np.zeros((nb, Lb), np.int32)
    s[:n, :L], m[:n, :L] = seq, mask
    m[n:, 0] = 1
    return np.asarray(rm_score(params, jnp.asarray(s), jnp.asarray(m), mc=mc))[:n]
