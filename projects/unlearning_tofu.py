"""The TOFU pipeline shared by the npo and simnpo projects (spec ../shared/papers/unlearning.md §3.1, §5b, §5c).

Stages, each saved under `workdir/tofu/` so that a rerun skips what is finished:

1. data: the real TOFU files in `tofu.data_dir` (default ../shared/data/tofu, relative to the repository root),
   optionally cut to the forget authors plus the first `tofu.retain_authors` other authors, or the synthetic
   TOFU-like generator (lib/tofu_synth) — same record format, same metrics;
2. models (`models/<name>.npz`): the fine-tuned "original" model on `full` and the retain models (one per retain
   split and seed in `tofu.retain_seeds`, the first seed being the FQ reference), all with the same recipe
   (AdamW, TOFU warm-up/decay, answer-token NLL) from the same starting point: a fresh lib/transformer with a
   word tokenizer, or a local Hugging Face checkpoint (`tofu.checkpoint`, lib.hf_import + lib.text.HFQAFormat);
3. evaluations of those models (`evals/<name>_<split>.json`): FQ against the reference retain model (the
   calibration check: original ≈ 0, another retain seed high) and MU;
4. unlearning (`unlearn/<split>_<method>.json`, + `.npz` params where relearning needs them): every method of
   lib.losses.METHODS from the original model (= π_ref), TOFU's protocol (one epoch = one pass over the forget
   set, each forget item paired with one fixed retain item, warm-up one epoch then linear decay), FQ / MU and
   the nine parts evaluated after every epoch;
5. relearning attack (`relearn/<method>.json`): fine-tune an unlearned model on a fraction of the forget set for
   k steps and measure forget probability / ROUGE-L / truth ratio / FQ after each k.

`validate_tofu(config)` / `validate_relearn(config)` check the fields; `run_tofu(config, workdir)` returns the
raw results that the projects turn into claims (`tofu_claims`, `relearn_claims`) and plots (`tofu_plots`,
`relearn_plot`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from harness import outputs, plotting, validation
from lib import losses as L
from lib import text as T
from lib import tofu_synth
from lib import unlearning as U
from lib.metrics import progress, read_npz, write_json_atomic, write_npz_atomic
from lib.transformer import TransformerConfig, init_params

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("synthetic", "tofu")
SELECTIONS = ("random", "shortest")
METHOD_NAMES = {"ga": "GA", "gd": "GD", "kl": "KL", "idk": "IDK", "dpo": "DPO", "dpo_rt": "DPO+RT", "npo": "NPO",
                "npo_rt": "NPO+RT", "npo_kl": "NPO+KL", "simnpo": "SimNPO (no RT)", "simnpo_rt": "SimNPO"}
AUTHOR_QA = 20  # real TOFU: 20 consecutive QA per author in full.json


# ----------------------------------------------------------------------------------------------- files

save_npz, load_npz = write_npz_atomic, read_npz  # atomic writes; a rerun resumes from finished pieces


def params_to_arrays(params, prefix: str = "params/") -> dict:
    return {prefix + "/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def arrays_to_params(arrays: dict, prefix: str = "params/"):
    flat = {tuple(k[len(prefix):].split("/")): jnp.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
    return traverse_util.unflatten_dict(flat)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_json(path: str, signature: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    return saved if saved.get("signature") == signature else None


# ----------------------------------------------------------------------------------------------- config

def resolve_data_dir(path: str) -> str:
    """`tofu.data_dir` relative to the repository root (absolute paths unchanged)."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))


def _is_int(v, lo=0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def validate_tofu(config, key: str = "tofu") -> None:
    """Checks every field of `config.<key>` that the pipeline reads (ConfigError naming field, value, accepted)."""
    t = config[key]
    validation.require(isinstance(t.enabled, bool), f"{key}.enabled", t.enabled, "True or False")
    if not t.enabled:
        return
    src = validation.require_choice(config, f"{key}.source", SOURCES)
    if src == "tofu":
        d = resolve_data_dir(t.data_dir)
        validation.require(os.path.isdir(d) and os.path.isfile(os.path.join(d, "full.json")), f"{key}.data_dir",
                       t.data_dir, f"a directory with the TOFU JSON files (full.json, forget10_perturbed.json, ...); "
                       f"resolved to {d!r}, which does not hold them. Use {key}.source='synthetic' without TOFU")
        validation.require_int(config, f"{key}.retain_authors", min_value=0)
    else:
        for f, lo in (("seed", 0), ("n_authors", 10), ("n_questions", 1), ("n_real_authors", 4),
                      ("n_world_facts", 4)):
            validation.require_int(config, f"{key}.synth.{f}", min_value=lo)
        validation.require(t.synth.n_questions <= len(tofu_synth.QTYPES), f"{key}.synth.n_questions",
                       t.synth.n_questions, f"an integer in [1, {len(tofu_synth.QTYPES)}]")
    validation.require_sequence(config, f"{key}.forget_splits", item_ok=lambda v: v in U.FORGET_SPLITS,
                            item_desc=f"distinct names from {list(U.FORGET_SPLITS)}")
    validation.require(len(set(t.forget_splits)) == len(t.forget_splits), f"{key}.forget_splits", t.forget_splits,
                   f"distinct names from {list(U.FORGET_SPLITS)}")
    validation.require_int(config, f"{key}.ds_size", min_value=0)
    validation.require(isinstance(t.checkpoint, str), f"{key}.checkpoint", t.checkpoint,
                   "'' (a fresh lib/transformer) or the path of a local Hugging Face checkpoint directory")
    if t.checkpoint:
        p = os.path.expanduser(t.checkpoint)
        validation.require(os.path.isfile(os.path.join(p, "config.json")), f"{key}.checkpoint", t.checkpoint,
                       "a local Hugging Face checkpoint directory with config.json, *.safetensors and tokenizer.json")
        validation.require(os.path.isfile(os.path.join(p, "tokenizer.json")), f"{key}.checkpoint", t.checkpoint,
                       "a checkpoint directory that also holds tokenizer.json")
        for f in ("prompt_template", "answer_prefix", "eos_token", "bos_token"):
            validation.require(isinstance(t.hf[f], str), f"{key}.hf.{f}", t.hf[f], "a string")
        validation.require("{question}" in t.hf.prompt_template, f"{key}.hf.prompt_template", t.hf.prompt_template,
                       "a template containing {question}")
    else:
        d_model = validation.require_int(config, f"{key}.model.d_model", min_value=4)
        validation.require_int(config, f"{key}.model.n_layers", min_value=1)
        h = validation.require_int(config, f"{key}.model.n_heads", min_value=1)
        validation.require(d_model % h == 0, f"{key}.model.n_heads", h, f"a divisor of d_model={d_model}")
    validation.require_int(config, f"{key}.model.max_len", min_value=0)
    validation.require(isinstance(t.pretrain_mix, bool), f"{key}.pretrain_mix", t.pretrain_mix, "True or False")
    f = t.finetune
    validation.require_int(config, f"{key}.finetune.epochs", min_value=1)
    validation.require_int(config, f"{key}.finetune.batch_size", min_value=1)
    validation.require_float(config, f"{key}.finetune.lr", min_value=0.0, strict=True)
    validation.require_int(config, f"{key}.finetune.warmup_epochs", min_value=0)
    validation.require_int(config, f"{key}.finetune.trim", min_value=0)
    validation.require_float(config, f"{key}.finetune.weight_decay", min_value=0.0)
    validation.require_int(config, f"{key}.finetune.seed", min_value=0)
    validation.require(f.warmup_epochs < f.epochs, f"{key}.finetune.warmup_epochs", f.warmup_epochs,
                   f"an integer in [0, finetune.epochs={f.epochs})")
    validation.require_sequence(config, f"{key}.retain_seeds", item_ok=lambda v: _is_int(v),
                            item_desc="distinct integers >= 0 (the first is the FQ reference)")
    validation.require(len(set(t.retain_seeds)) == len(t.retain_seeds), f"{key}.retain_seeds", t.retain_seeds,
                   "distinct integers >= 0 (the first is the FQ reference)")
    u = t.unlearn
    validation.require_sequence(config, f"{key}.unlearn.methods", item_ok=lambda v: v in L.METHODS,
                            item_desc=f"distinct names from {sorted(L.METHODS)}")
    validation.require(len(set(u.methods)) == len(u.methods), f"{key}.unlearn.methods", u.methods,
                   f"distinct names from {sorted(L.METHODS)}")
    for m in u.methods:
        validation.require(m in u.lr, f"{key}.unlearn.lr", dict(u.lr),
                           f"a learning rate for every method (missing {m!r})")
        validation.require_float(config, f"{key}.unlearn.lr.{m}", min_value=0.0, strict=True)
        hp = dict(u.hparams[m]) if m in u.hparams else {}
        try:
            L.method_hparams(m, hp)
        except ValueError as e:
            raise validation.ConfigError(f"config.{key}.unlearn.hparams.{m}={hp!r} is invalid: {e}") from None
    for m, grid in (u.lr_grid.items() if "lr_grid" in u else ()):
        ok = (isinstance(grid, (tuple, list)) and len(set(grid)) == len(grid)
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in grid))
        validation.require(ok, f"{key}.unlearn.lr_grid.{m}", grid,
                       "a tuple of distinct learning rates > 0 (empty: just unlearn.lr)")
    validation.require_int(config, f"{key}.unlearn.epochs", min_value=1)
    validation.require_int(config, f"{key}.unlearn.batch_size", min_value=1)
    validation.require_int(config, f"{key}.unlearn.warmup_epochs", min_value=0)
    validation.require(u.warmup_epochs < u.epochs, f"{key}.unlearn.warmup_epochs", u.warmup_epochs,
                   f"an integer in [0, unlearn.epochs={u.epochs})")
    validation.require_float(config, f"{key}.unlearn.weight_decay", min_value=0.0)
    validation.require_int(config, f"{key}.unlearn.seed", min_value=0)
    validation.require_int(config, f"{key}.eval.batch_size", min_value=1)
    validation.require_int(config, f"{key}.eval.max_new_tokens", min_value=0)
    c = t.claims
    validation.require_float(config, f"{key}.claims.calibration_low", min_value=0.0, strict=True)
    validation.require_float(config, f"{key}.claims.calibration_high", min_value=0.0, strict=True)
    drop = validation.require_float(config, f"{key}.claims.mu_drop", min_value=0.0)
    validation.require(drop < 1, f"{key}.claims.mu_drop", c.mu_drop, "a number in [0, 1)")
    col = validation.require_float(config, f"{key}.claims.collapse_frac", min_value=0.0)
    validation.require(col < 1, f"{key}.claims.collapse_frac", c.collapse_frac, "a number in [0, 1)")
    validation.require_float(config, f"{key}.claims.noise_log10", min_value=0.0)
    validation.require(isinstance(c.decide, bool), f"{key}.claims.decide", c.decide, "True or False")


def validate_relearn(config, key: str = "relearn", tofu_key: str = "tofu") -> None:
    r, t = config[key], config[tofu_key]
    validation.require(t.enabled, f"{tofu_key}.enabled", t.enabled, f"True when the {key} part runs (it attacks the "
                   f"models unlearned by the TOFU part)")
    validation.require_sequence(config, f"{key}.methods", item_ok=lambda v: v in tuple(t.unlearn.methods),
                            item_desc=f"methods of {tofu_key}.unlearn.methods={list(t.unlearn.methods)}")
    validation.require_choice(config, f"{key}.forget_split", tuple(t.forget_splits))
    frac = validation.require_float(config, f"{key}.fraction", min_value=0.0, strict=True)
    validation.require(frac <= 1, f"{key}.fraction", frac, "a number in (0, 1]")
    validation.require_choice(config, f"{key}.selection", SELECTIONS)
    validation.require_sequence(config, f"{key}.steps", item_ok=lambda v: _is_int(v),
                            item_desc="increasing integers >= 0 starting with 0")
    st = tuple(r.steps)
    validation.require(st[0] == 0 and all(a < b for a, b in zip(st[:-1], st[1:], strict=True)), f"{key}.steps", st,
                   "increasing integers >= 0 starting with 0")
    validation.require_float(config, f"{key}.lr", min_value=0.0, strict=True)
    validation.require_int(config, f"{key}.batch_size", min_value=1)
    validation.require_int(config, f"{key}.seed", min_value=0)


# ----------------------------------------------------------------------------------------------- data

def _keep_authors(records: list[dict], author_of: dict, kept: set) -> list[dict]:
    return [r for r in records if author_of.get(r["question"], -1) in kept or r["question"] not in author_of]


def load_data(t) -> dict:
    """{"train": {split → records} (full, retainXX, forgetXX), "eval": {forget split → the four evaluation sets},
    "pretrain": records mixed into every fine-tuning run (real authors / world facts QA) when tofu.pretrain_mix,
    "idk": IDK strings, "source": a description}."""
    forget_splits = tuple(t.forget_splits)
    retains = [U.RETAIN_OF[s] for s in forget_splits]
    if t.source == "synthetic":
        s = t.synth
        d = tofu_synth.generate_tofu_like(s.seed, n_authors=s.n_authors, n_questions=s.n_questions,
                                          n_real_authors=s.n_real_authors, n_world_facts=s.n_world_facts)
        get = d.__getitem__
        idk = d["idontknow"]
        desc = (f"synthetic TOFU-like (lib/tofu_synth seed {s.seed}: {s.n_authors} authors x {s.n_questions} QA, "
                f"{s.n_real_authors} real-author / {s.n_world_facts} world-fact items)")
    else:
        directory = resolve_data_dir(t.data_dir)
        cache = {}

        def get(split):
            if split not in cache:
                cache[split] = U.read_tofu(directory, split)
            return cache[split]
        full = get("full")
        author_of = {}
        for i, r in enumerate(full):
            author_of.setdefault(r["question"], i // AUTHOR_QA)
        n_auth = len(full) // AUTHOR_QA
        if t.retain_authors:
            n_forget = max(round(int(f[-2:]) / 100 * n_auth) for f in forget_splits)
            kept = set(range(min(t.retain_authors, n_auth - n_forget))) | set(range(n_auth - n_forget, n_auth))
            for split in ["full", *retains, *forget_splits, "retain_perturbed",
                          *[f"{f}_perturbed" for f in forget_splits]]:
                cache[split] = _keep_authors(get(split), author_of, kept)
            desc = (f"real TOFU ({directory}) cut to {len(kept)} of {n_auth} authors (the forget authors + the "
                    f"first {min(t.retain_authors, n_auth - n_forget)} others)")
        else:
            desc = f"real TOFU ({directory}), all {n_auth} authors"
        idk = U.read_idk(directory)
    # the tiny model's "pre-training" knowledge that MU's real-author / world-fact parts measure: their QA pairs
    ra, wf = get("real_authors_perturbed"), get("world_facts_perturbed")
    pretrain = [{"question": r["question"], "answer": r["answer"]} for r in ra + wf]
    train = {k: get(k) for k in ("full", *retains, *forget_splits)}
    ev = {}
    for f in forget_splits:
        ev[f] = {"forget": get(f"{f}_perturbed"), "retain": get("retain_perturbed"),
                 "real_authors": get("real_authors_perturbed"), "world_facts": get("world_facts_perturbed")}
    return {"train": train, "eval": ev, "pretrain": pretrain if t.pretrain_mix else [], "idk": idk,
            "source": desc}


def _all_records(data: dict) -> list[dict]:
    recs = [r for v in data["train"].values() for r in v] + list(data["pretrain"])
    recs += [r for e in data["eval"].values() for v in e.values() for r in v]
    return recs + [{"answer": s} for s in data["idk"]]


# ----------------------------------------------------------------------------------------------- model

def build_model(t, data: dict):
    """(tokenizer, TransformerConfig, initial params, description): a fresh lib/transformer over a word vocabulary
    of the data, or the local Hugging Face checkpoint `tofu.checkpoint` with its tokenizer.json."""
    recs = _all_records(data)
    if t.checkpoint:
        from lib import hf_import

        model = hf_import.load_model(os.path.expanduser(t.checkpoint))
        hf = t.hf
        tok = T.HFQAFormat(hf_import.load_tokenizer(os.path.expanduser(t.checkpoint)),
                           prompt_template=hf.prompt_template, answer_prefix=hf.answer_prefix,
                           bos_token=hf.bos_token or None, eos_token=hf.eos_token)
        cfg = model.config
        need = _needed_len(tok, recs)
        if t.model.max_len:
            need = t.model.max_len
        if need > cfg.max_len and cfg.positions == "learned":
            raise validation.ConfigError(f"config.tofu.model.max_len: the data need {need} tokens but the checkpoint's "
                                     f"learned positions stop at {cfg.max_len}")
        import dataclasses
        cfg = dataclasses.replace(cfg, max_len=need)
        return tok, cfg, model.params, f"Hugging Face checkpoint {t.checkpoint} ({cfg.n_layers} layers, " \
                                       f"d={cfg.d_model}, vocab {cfg.vocab_size})"
    tok = T.WordTokenizer.from_records(recs)
    need = t.model.max_len or _needed_len(tok, recs)
    m = t.model
    cfg = TransformerConfig(vocab_size=len(tok), d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads,
                            max_len=need)
    params = init_params(cfg, jax.random.key(t.finetune.seed))
    n = sum(x.size for x in jax.tree.leaves(params))
    return tok, cfg, params, (f"lib/transformer d={m.d_model}, {m.n_layers} layers, {m.n_heads} heads, word vocab "
                              f"{len(tok)}, {n / 1e6:.2f}M params, max_len {need}")


def _bucket(n: int, step: int) -> int:
    return -(-n // step) * step


def _needed_len(tok, recs) -> int:
    """Model length: the longest scored row (prompt + any answer variant + EOS), rounded up to 32, and room for a
    padded prompt plus the longest gold answer + 4 generated tokens."""
    qa = [r for r in recs if "question" in r]
    answers = [[r["answer"], r.get("paraphrased_answer", "")] + list(r.get("perturbed_answer", [])) for r in qa]
    prompts = [len(tok.prompt_ids(r["question"])) for r in qa]
    longest_row = max(p + max(len(tok.answer_ids(a)) for a in ans) + 1 for p, ans in zip(prompts, answers,
                                                                                         strict=True))
    longest_answer = max(len(tok.answer_ids(r["answer"])) for r in qa)
    return max(_bucket(longest_row, 32), _bucket(max(prompts), 8) + longest_answer + 4)


# ----------------------------------------------------------------------------------------------- training

def _encode(tok, recs, answers=None, max_len=None):
    """encode_qa padded to the longest row rounded up to 8 tokens (at most max_len): one shape per data set, and
    no compute on a model-length padding tail."""
    enc = T.encode_qa(tok, [r["question"] for r in recs], answers or [r["answer"] for r in recs], max_len=max_len)
    n = _bucket(int(enc["attention_mask"].sum(1).max()), 8)
    return {k: (v[:, :n] if isinstance(v, np.ndarray) else v) for k, v in enc.items()}


def finetune(params, cfg, tok, records: list[dict], f, *, seed: int, bar=None) -> tuple[dict, list[float]]:
    """`f.epochs` epochs of answer-token NLL over `records` (AdamW, TOFU warm-up/decay), batches in a seeded order."""
    enc = _encode(tok, records, max_len=cfg.max_len)
    n = len(records)
    steps_per_epoch = -(-n // f.batch_size)
    opt = U.make_optimizer(f.lr, total_steps=f.epochs * steps_per_epoch,
                           warmup_steps=f.warmup_epochs * steps_per_epoch, weight_decay=f.weight_decay)
    state = opt.init(params)
    epoch_losses = []
    for e in range(f.epochs):
        ls = []
        for idx in U.batch_indices(n, min(f.batch_size, n), seed=seed * 100_003 + e):
            params, state, m = U.finetune_step(params, state, U.take(enc, idx, trim=f.trim), config=cfg,
                                                     optimizer=opt)
            ls.append(m["loss"])
        epoch_losses.append(float(np.mean([float(x) for x in ls])))
        if bar is not None:
            bar.update(1)
    return params, epoch_losses


def trained_model(workdir: str, name: str, init, cfg, tok, records: list[dict], f, *, seed: int, signature: dict,
                  bar=None) -> dict:
    """Loads `workdir/tofu/models/<name>.npz` when it was trained on these records with this recipe, else trains
    and saves it (atomically)."""
    path = os.path.join(workdir, "tofu", "models", f"{name}.npz")
    sig = _digest({**signature, "records": _digest([(r["question"], r["answer"]) for r in records]), "seed": seed})
    if os.path.exists(path):
        saved = load_npz(path)
        if str(saved["signature"]) == sig:
            if bar is not None:
                bar.update(f.epochs)
            return {"params": arrays_to_params(saved), "losses": saved["losses"].tolist(),
                    "seconds": float(saved["seconds"]), "resumed": True}
    t0 = time.time()
    params, losses = finetune(init, cfg, tok, records, f, seed=seed, bar=bar)
    seconds = time.time() - t0
    save_npz(path, {**params_to_arrays(params), "losses": np.array(losses), "signature": np.array(sig),
                    "seconds": np.float64(seconds)})
    return {"params": params, "losses": losses, "seconds": seconds, "resumed": False}


# ----------------------------------------------------------------------------------------------- evaluation

def _summary(ev: dict, keep_items: bool = False) -> dict:
    """The JSON-able part of an evaluate_tofu result."""
    out = {k: ev[k] for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob",
                              "forget_rougeL_recall")}
    out["mu_parts"] = dict(ev["mu_parts"])
    f = ev["splits"]["forget"]
    out["forget_truth_ratios"] = np.asarray(f["truth_ratios"]).tolist()
    out["samples"] = [{"answer": None, "generated": g} for g in (f.get("generations") or [])[:3]]
    if keep_items:
        out["forget_rougeL_recalls"] = f.get("rougeL_recalls")
    return out


class Evaluator:
    """evaluate_tofu with the run's tokenizer, batch size, generation length and ds_size (fixed shapes)."""

    def __init__(self, t, cfg, tok, data):
        self.cfg, self.tok, self.data = cfg, tok, data
        self.batch_size = t.eval.batch_size
        self.ds_size = t.ds_size or None
        recs = [r for e in data["eval"].values() for v in e.values() for r in U.cap_items(v, self.ds_size)]
        self.max_new = t.eval.max_new_tokens or max(len(tok.answer_ids(r["answer"])) for r in recs) + 4
        prompt = _bucket(max(len(tok.prompt_ids(r["question"])) for r in recs), 8)
        self.max_new = min(self.max_new, cfg.max_len - prompt)

    def __call__(self, params, split: str, retain_trs=None, *, generate: bool = True) -> dict:
        ev = U.evaluate_tofu(params, self.cfg, self.data["eval"][split], retain_trs, tokenizer=self.tok,
                             batch_size=self.batch_size, max_new_tokens=self.max_new, generate=generate,
                             ds_size=self.ds_size)
        out = _summary(ev)
        gold = [r["answer"] for r in U.cap_items(self.data["eval"][split]["forget"], self.ds_size)][:3]
        for s, a in zip(out["samples"], gold, strict=False):
            s["answer"] = a
        return out


# ----------------------------------------------------------------------------------------------- unlearning

def _hparams(u, method: str) -> dict:
    return dict(u.hparams[method]) if method in u.hparams else {}


def _explicit_grid(u, method: str) -> tuple[float, ...]:
    return tuple(float(x) for x in (u.lr_grid.get(method, ()) if "lr_grid" in u else ()))


def lr_grid(u, method: str) -> tuple[float, ...]:
    """The learning rates a method is run at: `unlearn.lr_grid.<method>` when set, else `(unlearn.lr.<method>,)`."""
    return _explicit_grid(u, method) or (float(u.lr[method]),)


def _run_base(workdir: str, split: str, method: str, lr: float | None) -> str:
    """The unlearning run's file path without extension: `<split>_<method>` (`_lr<lr>` for a grid point)."""
    tag = "" if lr is None else f"_lr{lr:g}"
    return os.path.join(workdir, "tofu", "unlearn", f"{split}_{method}{tag}")


def unlearn_run(workdir: str, split: str, method: str, t, cfg, tok, data: dict, original, retain_trs, evaluator,
                *, keep_params: bool, bar=None, lr: float | None = None) -> dict:
    """One unlearning run from the original model; per-epoch FQ / MU. Resumes from `unlearn/<split>_<method>.json`
    (`<split>_<method>_lr<lr>.json` for a point of a learning-rate grid; and its .npz when `keep_params`)."""
    u = t.unlearn
    hp = _hparams(u, method)
    base = _run_base(workdir, split, method, lr)
    lr = float(u.lr[method]) if lr is None else float(lr)
    sig = _digest({"split": split, "method": method, "hp": hp, "lr": lr, "epochs": u.epochs, "bs": u.batch_size,
                   "warmup": u.warmup_epochs, "wd": u.weight_decay, "seed": u.seed, "ds": t.ds_size,
                   "orig": original["signature"]})
    saved = _load_json(base + ".json", sig)
    if saved is not None and (not keep_params or os.path.exists(base + ".npz")):
        if bar is not None:
            bar.update(u.epochs)
        if keep_params:
            saved["params"] = arrays_to_params(load_npz(base + ".npz"))
        return saved
    forget = data["train"][split]
    retain = data["train"][U.RETAIN_OF[split]]
    n = len(forget)
    bs = min(u.batch_size, n)
    pair = U.retain_pairing(n, len(retain), seed=u.seed)
    f_enc = _encode(tok, forget, max_len=cfg.max_len)
    r_enc = _encode(tok, [retain[i] for i in pair], max_len=cfg.max_len)
    rng = np.random.default_rng([u.seed, 7])
    idk_answers = [data["idk"][i] for i in rng.integers(len(data["idk"]), size=n)]
    i_enc = _encode(tok, forget, idk_answers, max_len=cfg.max_len)
    steps_per_epoch = -(-n // bs)
    opt = U.make_optimizer(lr, total_steps=u.epochs * steps_per_epoch, warmup_steps=u.warmup_epochs * steps_per_epoch,
                           weight_decay=u.weight_decay)
    params, ref = original["params"], original["params"]
    state = opt.init(params)
    t0 = time.time()
    epochs = []
    for e in range(u.epochs):
        ls, flp = [], []
        for idx in U.batch_indices(n, bs, seed=u.seed * 1009 + e):
            fb = U.with_idk(U.take(f_enc, idx), U.take(i_enc, idx))
            params, state, m = U.unlearn_step(params, ref, state, fb, U.take(r_enc, idx), method, hp, config=cfg,
                                              optimizer=opt)
            ls.append(m["loss"])
            flp.append(m["forget_logp"])
        ev = evaluator(params, split, retain_trs)
        ev.pop("forget_truth_ratios")
        epochs.append({"epoch": e + 1, "loss": float(np.mean([float(x) for x in ls])),
                       "forget_logp_train": float(np.mean([float(x) for x in flp])), **ev})
        if bar is not None:
            bar.update(1)
    out = {"signature": sig, "split": split, "method": method, "lr": lr, "hparams": L.method_hparams(method, hp),
           "steps_per_epoch": steps_per_epoch, "epochs": epochs, "seconds": time.time() - t0}
    if keep_params:
        save_npz(base + ".npz", params_to_arrays(params))
    write_json_atomic(base + ".json", out)
    if keep_params:
        out["params"] = params
    return out


def select_lr(points: list[dict], mu_orig: float, mu_drop: float) -> dict:
    """The run of a learning-rate grid that a method is reported with: the highest best FQ over the epochs with
    MU ≥ (1 − mu_drop)·MU(original) (`best_at_comparable_mu`), ties (e.g. no point keeps MU) broken by the higher
    final MU. The same rule for every method; like the papers' per-method tuning it selects on the test metric.
    A grid of one is returned as is; otherwise the chosen run gains `grid`: one summary per point."""
    if len(points) == 1:
        return points[0]

    def key(run):
        return best_at_comparable_mu(run, mu_orig, mu_drop)[0], run["epochs"][-1]["model_utility"] or 0.0

    best = max(points, key=key)
    grid = []
    for run in points:
        fq, ep, mu = best_at_comparable_mu(run, mu_orig, mu_drop)
        grid.append({"lr": run["lr"], "best_fq_comparable_mu": fq, "epoch": ep, "mu": mu,
                     "final_mu": run["epochs"][-1]["model_utility"]})
    return {**best, "grid": grid}


# ----------------------------------------------------------------------------------------------- the pipeline

def _model_signature(t, cfg) -> dict:
    f = t.finetune
    return {"cfg": repr(cfg), "ft": [f.epochs, f.batch_size, f.lr, f.warmup_epochs, f.weight_decay],
            "ckpt": t.checkpoint, "init_seed": f.seed}


def run_tofu(config, workdir: str, *, keep_params_for=(), key: str = "tofu") -> dict:
    """Runs (or resumes) stages 1–4; returns {"data_source", "model", "models" {name → {losses, seconds, resumed}},
    "evals" {name → {split → summary}}, "runs" {split → {method → run}}, "seconds", and the live objects needed by
    relearning ("_ctx")}."""
    t = config[key]
    t_start = time.time()
    data = load_data(t)
    tok, cfg, init, model_desc = build_model(t, data)
    msig = _model_signature(t, cfg)
    f = t.finetune
    retains = sorted({U.RETAIN_OF[s] for s in t.forget_splits})
    jobs = [("original", data["train"]["full"], f.seed)]
    jobs += [(f"{r}_s{s}", data["train"][r], s) for r in retains for s in t.retain_seeds]
    n_runs = len(t.forget_splits) * sum(len(lr_grid(t.unlearn, m)) for m in t.unlearn.methods)
    models, times = {}, {}
    with progress(len(jobs) * f.epochs + n_runs * t.unlearn.epochs, desc=f"{key}", unit="epoch") as bar:
        t0 = time.time()
        for name, recs, seed in jobs:
            models[name] = trained_model(workdir, name, init, cfg, tok, recs + list(data["pretrain"]), f, seed=seed,
                                         signature=msig, bar=bar)
            models[name]["signature"] = _digest([msig, name, seed, len(recs)])
        times["train_models"] = time.time() - t0
        evaluator = Evaluator(t, cfg, tok, data)
        t0 = time.time()
        evals = {}
        for split in t.forget_splits:
            ref_name = f"{U.RETAIN_OF[split]}_s{t.retain_seeds[0]}"
            names = [ref_name] + [n for n in models if n != ref_name and (n == "original" or
                                                                        n.startswith(U.RETAIN_OF[split]))]
            trs = None
            for name in names:
                path = os.path.join(workdir, "tofu", "evals", f"{name}_{split}.json")
                sig = _digest([models[name]["signature"], split, t.ds_size, evaluator.max_new, trs])
                ev = _load_json(path, sig)
                if ev is None:
                    ev = {"signature": sig, **evaluator(models[name]["params"], split,
                                                        None if trs is None else np.array(trs))}
                    write_json_atomic(path, ev)
                evals.setdefault(name, {})[split] = ev
                if trs is None:
                    trs = ev["forget_truth_ratios"]
                    evals[name][split]["forget_quality"] = 1.0
        times["evaluate_models"] = time.time() - t0
        t0 = time.time()
        runs = {}
        orig = {"params": models["original"]["params"], "signature": models["original"]["signature"]}
        for split in t.forget_splits:
            trs = np.array(evals[f"{U.RETAIN_OF[split]}_s{t.retain_seeds[0]}"][split]["forget_truth_ratios"])
            mu0 = evals["original"][split]["model_utility"]
            for method in t.unlearn.methods:
                explicit = bool(_explicit_grid(t.unlearn, method))
                keep = method in keep_params_for
                grid = lr_grid(t.unlearn, method)
                one = functools.partial(unlearn_run, workdir, split, method, t, cfg, tok, data, orig, trs, evaluator,
                                        bar=bar)
                if len(grid) == 1:
                    runs.setdefault(split, {})[method] = one(keep_params=keep, lr=grid[0] if explicit else None)
                    continue
                # a grid: every point (saving params when kept), then only the selected point's params are needed
                # (a resumed point whose params were not saved is rerun, and only if it is the selected one)
                points = [one(keep_params=keep and not os.path.exists(_run_base(workdir, split, method, lr) + ".json"),
                              lr=lr) for lr in grid]
                best = select_lr(points, mu0, t.claims.mu_drop)
                if keep and "params" not in best:
                    i = [p["lr"] for p in points].index(best["lr"])
                    points[i] = one(keep_params=True, lr=grid[i])
                    best = {**points[i], "grid": select_lr(points, mu0, t.claims.mu_drop)["grid"]}
                runs.setdefault(split, {})[method] = best
        times["unlearn"] = time.time() - t0
    times["total"] = time.time() - t_start
    return {"data_source": data["source"], "model": model_desc,
            "models": {k: {kk: v[kk] for kk in ("losses", "seconds", "resumed")} for k, v in models.items()},
            "evals": evals, "runs": runs, "seconds": times,
            "_ctx": {"t": t, "cfg": cfg, "tok": tok, "data": data, "evaluator": evaluator, "models": models}}


# ----------------------------------------------------------------------------------------------- relearning

def relearn_subset(forget: list[dict], tok, fraction: float, selection: str, seed: int) -> list[int]:
    """Indices of the relearning set: the `fraction` shortest answers (tokens) or a seeded random subset."""
    k = max(1, round(fraction * len(forget)))
    if selection == "shortest":
        lengths = np.array([len(tok.answer_ids(r["answer"])) for r in forget])
        return sorted(np.argsort(lengths, kind="stable")[:k].tolist())
    return sorted(np.random.default_rng(seed).choice(len(forget), size=k, replace=False).tolist())


def run_relearn(config, workdir: str, tofu: dict, key: str = "relearn") -> dict:
    """Fine-tunes each unlearned model of `relearn.methods` on part of the forget set for relearn.steps[-1] steps
    (constant lr, answer NLL), evaluating on the whole forget split after each k in relearn.steps; also the
    original model's numbers. Resumes from `relearn/<method>.json`."""
    r = config[key]
    ctx = tofu["_ctx"]
    t, cfg, tok, data, evaluator = ctx["t"], ctx["cfg"], ctx["tok"], ctx["data"], ctx["evaluator"]
    split = r.forget_split
    forget = data["train"][split]
    subset = relearn_subset(forget, tok, r.fraction, r.selection, r.seed)
    enc = _encode(tok, [forget[i] for i in subset], max_len=cfg.max_len)
    ref_name = f"{U.RETAIN_OF[split]}_s{t.retain_seeds[0]}"
    trs = np.array(tofu["evals"][ref_name][split]["forget_truth_ratios"])
    out = {"subset": subset, "split": split, "runs": {}}
    t0 = time.time()
    with progress(len(r.methods) * r.steps[-1], desc=key, unit="step") as bar:
        for method in r.methods:
            run = tofu["runs"][split][method]
            path = os.path.join(workdir, "tofu", "relearn", f"{split}_{method}.json")
            sig = _digest([run["signature"], subset, list(r.steps), r.lr, r.batch_size, r.seed])
            saved = _load_json(path, sig)
            if saved is None:
                params = run["params"]
                opt = U.make_optimizer(r.lr, total_steps=r.steps[-1], schedule="constant", weight_decay=0.0)
                state = opt.init(params)
                bs = min(r.batch_size, len(subset))
                points = []
                step = 0
                batches = []
                e = 0
                while len(batches) < r.steps[-1]:
                    batches += U.batch_indices(len(subset), bs, seed=r.seed * 7919 + e)
                    e += 1
                for k in r.steps:
                    while step < k:
                        params, state, _ = U.finetune_step(params, state, U.take(enc, batches[step]), config=cfg,
                                                           optimizer=opt)
                        step += 1
                        bar.update(1)
                    ev = evaluator(params, split, trs, generate=True)
                    ev.pop("forget_truth_ratios")
                    points.append({"k": k, **{kk: ev[kk] for kk in ("forget_quality", "model_utility",
                                                                    "forget_prob", "forget_rougeL_recall",
                                                                    "forget_truth_ratio")}})
                saved = {"signature": sig, "method": method, "points": points}
                write_json_atomic(path, saved)
            else:
                bar.update(r.steps[-1])
            out["runs"][method] = saved
    out["seconds"] = time.time() - t0
    return out


# ----------------------------------------------------------------------------------------------- claims helpers

def best_at_comparable_mu(run: dict, mu_orig: float, mu_drop: float) -> tuple[float, int | None, float | None]:
    """(best FQ, its epoch, its MU) over the epochs whose MU ≥ (1 − mu_drop)·MU(original); (0, None, None) when no
    epoch keeps the utility (the method is then counted as failing the comparison)."""
    best = (0.0, None, None)
    for e in run["epochs"]:
        mu = e["model_utility"]
        if mu is not None and mu >= (1 - mu_drop) * mu_orig and e["forget_quality"] > best[0]:
            best = (e["forget_quality"], e["epoch"], mu)
    return best


def _lg(x: float) -> float:
    return math.log10(max(x, 1e-300))


def fmt(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2g}" if (x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e3)) else f"{x:.3f}"


def tofu_metrics(tofu: dict, t) -> dict:
    m = {"tofu/seconds/" + k: v for k, v in tofu["seconds"].items()}
    for name, mod in tofu["models"].items():
        m[f"tofu/models/{name}/final_loss"] = mod["losses"][-1]
        m[f"tofu/models/{name}/seconds"] = mod["seconds"]
    for name, per in tofu["evals"].items():
        for split, ev in per.items():
            for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rougeL_recall"):
                m[f"tofu/{split}/{name}/{k}"] = ev[k]
    for split, runs in tofu["runs"].items():
        mu0 = tofu["evals"]["original"][split]["model_utility"]
        for method, run in runs.items():
            last = run["epochs"][-1]
            pre = f"tofu/{split}/{method}"
            for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rougeL_recall"):
                m[f"{pre}/final_{k}"] = last[k]
            m[f"{pre}/fq_per_epoch"] = [e["forget_quality"] for e in run["epochs"]]
            m[f"{pre}/mu_per_epoch"] = [e["model_utility"] for e in run["epochs"]]
            fq, ep, mu = best_at_comparable_mu(run, mu0, t.claims.mu_drop)
            m[f"{pre}/best_fq_comparable_mu"], m[f"{pre}/best_fq_epoch"], m[f"{pre}/best_fq_mu"] = fq, ep, mu
            m[f"{pre}/peak_fq"] = max(e["forget_quality"] for e in run["epochs"])
            m[f"{pre}/seconds"] = run["seconds"]
            m[f"{pre}/lr"] = run["lr"]
            if "grid" in run:
                m[f"{pre}/lr_grid"] = [[g["lr"], g["best_fq_comparable_mu"], g["mu"]] for g in run["grid"]]
    return m


def calibration_claim(tofu: dict, t, prefix: str = "T") -> dict:
    split = "forget10" if "forget10" in t.forget_splits else t.forget_splits[-1]
    ref = f"{U.RETAIN_OF[split]}_s{t.retain_seeds[0]}"
    fq_orig = tofu["evals"]["original"][split]["forget_quality"]
    others = [n for n in tofu["evals"] if n.startswith(U.RETAIN_OF[split]) and n != ref]
    fq_rr = tofu["evals"][others[0]][split]["forget_quality"] if others else None
    lo, hi = t.claims.calibration_low, t.claims.calibration_high
    holds = None if (fq_rr is None or not t.claims.decide) else (fq_orig < lo and fq_rr > hi)
    tr_o = tofu["evals"]["original"][split]["forget_truth_ratio"]
    tr_r = tofu["evals"][ref][split]["forget_truth_ratio"]
    return outputs.claim(
        f"{prefix}.calibration_fq",
        f"Calibration on {split}: the fine-tuned model's FQ against the retain model (seed {t.retain_seeds[0]}) is "
        f"< {lo:g} and another retain seed's FQ against it is > {hi:g}",
        paper="Finetuned FQ 4.35e-25 on forget10 (open-unlearning, Llama-2-7b-chat; Retain = 1 by construction); "
              "the retain-vs-retain noise floor is not reported (spec pitfall 6)",
        ours=f"fine-tuned FQ {fmt(fq_orig)}, retain seed {others[0][-1] if others else '-'} FQ {fmt(fq_rr)}; forget "
             f"truth ratio fine-tuned {tr_o:.3f} vs retain {tr_r:.3f}",
        holds=holds)


def _best(tofu, t, split, method):
    mu0 = tofu["evals"]["original"][split]["model_utility"]
    return best_at_comparable_mu(tofu["runs"][split][method], mu0, t.claims.mu_drop)


def _at_lr(run: dict) -> str:
    """", lr x" for a run selected from a learning-rate grid (else "")."""
    return f", lr {run['lr']:g}" if "grid" in run else ""


def beats_claim(tofu: dict, t, winner: str, losers=("ga", "gd", "idk"), *, claim_id: str, paper: str) -> dict:
    split = "forget10" if "forget10" in t.forget_splits else t.forget_splits[-1]
    runs = tofu["runs"][split]
    present = [m for m in losers if m in runs]
    if winner not in runs or not present:
        return outputs.claim(claim_id, f"After unlearning {split}, {METHOD_NAMES[winner]} reaches a higher FQ than "
                            f"{'/'.join(METHOD_NAMES[m] for m in losers)} at comparable MU", paper=paper,
                            ours=f"not run at this preset (methods: {list(runs)})", holds=None)
    w = _best(tofu, t, split, winner)
    ls = {m: _best(tofu, t, split, m) for m in present}
    holds = all(w[0] > v[0] for v in ls.values()) if t.claims.decide else None
    mu0 = tofu["evals"]["original"][split]["model_utility"]
    parts = ", ".join(f"{METHOD_NAMES[m]} {fmt(v[0])}"
                      + (f" (ep {v[1]}{_at_lr(runs[m])})" if v[1] else " (no epoch keeps MU)") for m, v in ls.items())
    return outputs.claim(
        claim_id,
        f"After unlearning {split}: {METHOD_NAMES[winner]}'s best FQ over the epochs with MU ≥ "
        f"{1 - t.claims.mu_drop:.2f}×MU(fine-tuned) is higher than each of {'/'.join(METHOD_NAMES[m] for m in present)}"
        f"'s (a method with no such epoch counts as FQ 0)",
        paper=paper,
        ours=f"{METHOD_NAMES[winner]} {fmt(w[0])} (epoch {w[1]}, MU {fmt(w[2])}{_at_lr(runs[winner])}) vs {parts}; "
             f"MU(fine-tuned) {fmt(mu0)}", holds=holds)


def ga_collapse_claim(tofu: dict, t, prefix: str = "T") -> dict:
    split = "forget10" if "forget10" in t.forget_splits else t.forget_splits[-1]
    runs = tofu["runs"][split]
    frac = t.claims.collapse_frac
    text = (f"GA's model utility collapses on {split}: its MU after the last epoch is < {frac:g}×MU(fine-tuned)")
    paper = "GA forget10 MU 0.00 (SimNPO Table 1; open-unlearning: 0 for both Llama models)"
    if "ga" not in runs:
        return outputs.claim(f"{prefix}.ga_utility_collapses", text, paper=paper, ours="GA not run", holds=None)
    mu0 = tofu["evals"]["original"][split]["model_utility"]
    mus = [e["model_utility"] for e in runs["ga"]["epochs"]]
    holds = (mus[-1] < frac * mu0) if t.claims.decide else None
    return outputs.claim(f"{prefix}.ga_utility_collapses", text, paper=paper,
                        ours=f"GA MU per epoch {[fmt(x) for x in mus]} vs fine-tuned {fmt(mu0)}", holds=holds)


def compare_claim(tofu: dict, t, a: str, b: str, *, claim_id: str, paper: str) -> dict:
    """"a's FQ vs b's" (both at comparable MU): True if a's best FQ is higher by more than noise_log10 decades,
    False if lower by more than that, None within the noise."""
    split = "forget10" if "forget10" in t.forget_splits else t.forget_splits[-1]
    runs = tofu["runs"][split]
    noise = t.claims.noise_log10
    text = (f"On {split}, {METHOD_NAMES[a]} reaches a higher best FQ than {METHOD_NAMES[b]} (epochs with MU ≥ "
            f"{1 - t.claims.mu_drop:.2f}×MU(fine-tuned)); reported, not assumed: undecided (None) when the two "
            f"differ by less than {noise:g} in log10 FQ")
    if a not in runs or b not in runs:
        return outputs.claim(claim_id, text, paper=paper, ours="not run at this preset", holds=None)
    fa, fb = _best(tofu, t, split, a), _best(tofu, t, split, b)
    la, lb = runs[a]["epochs"][-1], runs[b]["epochs"][-1]
    diff = _lg(fa[0]) - _lg(fb[0]) if fa[0] > 0 and fb[0] > 0 else (math.inf if fa[0] > fb[0] else
                                                                    -math.inf if fb[0] > fa[0] else 0.0)
    holds = None if (abs(diff) < noise or not t.claims.decide) else diff > 0
    return outputs.claim(
        claim_id, text, paper=paper,
        ours=f"best FQ {METHOD_NAMES[a]} {fmt(fa[0])} (epoch {fa[1]}, MU {fmt(fa[2])}{_at_lr(runs[a])}) vs "
             f"{METHOD_NAMES[b]} {fmt(fb[0])} (epoch {fb[1]}, MU {fmt(fb[2])}{_at_lr(runs[b])}); last epoch FQ/MU "
             f"{fmt(la['forget_quality'])}/"
             f"{fmt(la['model_utility'])} vs {fmt(lb['forget_quality'])}/{fmt(lb['model_utility'])}",
        holds=holds)


def relearn_metrics_and_claim(rel: dict, tofu: dict, config, key: str = "relearn", prefix: str = "R") -> tuple:
    r, t = config[key], config["tofu"]
    m = {"relearn/seconds": rel["seconds"], "relearn/subset_size": len(rel["subset"])}
    for method, run in rel["runs"].items():
        for p in run["points"]:
            for kk in ("forget_quality", "model_utility", "forget_prob", "forget_rougeL_recall", "forget_truth_ratio"):
                m[f"relearn/{method}/k{p['k']}/{kk}"] = p[kk]
    orig = tofu["evals"]["original"][r.forget_split]
    ms = list(rel["runs"])

    def desc(method):
        pts = rel["runs"][method]["points"]
        return (f"{METHOD_NAMES[method]}: " + "; ".join(
            f"k={p['k']}: prob {fmt(p['forget_prob'])}, ROUGE {fmt(p['forget_rougeL_recall'])}, "
            f"FQ {fmt(p['forget_quality'])}" for p in pts))
    holds = None
    if len(ms) >= 2 and "simnpo_rt" in ms and "npo_rt" in ms and t.claims.decide:
        s, n = rel["runs"]["simnpo_rt"]["points"][-1], rel["runs"]["npo_rt"]["points"][-1]
        diff = _lg(s["forget_quality"]) - _lg(n["forget_quality"])
        holds = None if abs(diff) < t.claims.noise_log10 else diff > 0
    c = outputs.claim(
        f"{prefix}.relearning",
        f"Relearning attack on {r.forget_split}: fine-tuning the unlearned models on the {r.selection} "
        f"{r.fraction:.0%} of the forget set ({len(rel['subset'])} QA) for k ∈ {list(r.steps)} steps (lr {r.lr:g}); "
        f"holds = SimNPO keeps a higher FQ than NPO after the last k (None within {t.claims.noise_log10:g} decades "
        f"or when one of them is not run)",
        paper="SimNPO keeps higher FQ and degrades more slowly than NPO (SimNPO Fig. 6, forget05, 3 epochs on 20% "
              "of the forget set; figure only)",
        ours=" | ".join(desc(x) for x in ms) + f" | fine-tuned model before unlearning: prob "
             f"{fmt(orig['forget_prob'])}, ROUGE {fmt(orig['forget_rougeL_recall'])}",
        holds=holds)
    return m, [c]


# ----------------------------------------------------------------------------------------------- plots

def tofu_plots(workdir: str, tofu: dict, *, prefix: str = "tofu") -> list[str]:
    """Per forget split: the trade-off plot (MU vs log10 FQ, per-epoch trajectories from the fine-tuned model) and
    FQ / MU per epoch."""
    files = []
    for split, runs in tofu["runs"].items():
        ev0 = tofu["evals"]["original"][split]
        retain_names = [n for n in tofu["evals"] if n.startswith(U.RETAIN_OF[split])]
        fig, ax = plotting.figure(1, 1, figsize=(6.5, 4.8))
        colors = {}
        for method, run in runs.items():
            fq = [ev0["forget_quality"]] + [e["forget_quality"] for e in run["epochs"]]
            mu = [ev0["model_utility"]] + [e["model_utility"] for e in run["epochs"]]
            lg = [_lg(x) for x in fq]
            (line,) = ax.plot(lg, mu, "-o", ms=3, lw=1.2, label=METHOD_NAMES.get(method, method), alpha=0.85)
            colors[method] = line.get_color()
            ax.plot(lg[-1], mu[-1], "s", color=line.get_color(), ms=7)
        ax.plot(_lg(ev0["forget_quality"]), ev0["model_utility"], "k*", ms=14, label="fine-tuned (epoch 0)")
        for n in retain_names:
            e = tofu["evals"][n][split]
            ax.plot(_lg(e["forget_quality"]), e["model_utility"], "D", mfc="none", mec="k", ms=8,
                    label=f"retain model {n.split('_')[-1]}")
        ax.axvline(math.log10(0.05), color="grey", ls=":", lw=1)
        ax.set_xlabel("log10 Forget Quality")
        ax.set_ylabel("Model Utility")
        ax.set_title(f"TOFU {split}: trade-off per epoch (square = last epoch)")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        name = f"{prefix}_{split}_tradeoff.png"
        fig.savefig(os.path.join(workdir, name), dpi=110)
        files.append(name)
        fig, axes = plotting.figure(1, 2, figsize=(11, 4))
        for method, run in runs.items():
            ep = [0] + [e["epoch"] for e in run["epochs"]]
            axes[0].plot(ep, [_lg(ev0["forget_quality"])] + [_lg(e["forget_quality"]) for e in run["epochs"]], "-o",
                         ms=3, color=colors[method], label=METHOD_NAMES.get(method, method))
            axes[1].plot(ep, [ev0["model_utility"]] + [e["model_utility"] for e in run["epochs"]], "-o", ms=3,
                         color=colors[method], label=METHOD_NAMES.get(method, method))
        axes[0].axhline(math.log10(0.05), color="grey", ls=":", lw=1)
        axes[0].set_ylabel("log10 Forget Quality")
        axes[1].set_ylabel("Model Utility")
        for a in axes:
            a.set_xlabel("unlearning epoch")
        axes[1].legend(fontsize=7)
        fig.suptitle(f"TOFU {split}: per-epoch Forget Quality and Model Utility")
        fig.tight_layout()
        name = f"{prefix}_{split}_epochs.png"
        fig.savefig(os.path.join(workdir, name), dpi=110)
        files.append(name)
    return files


def relearn_plot(workdir: str, rel: dict, name: str = "relearn.png") -> list[str]:
    fig, axes = plotting.figure(1, 3, figsize=(13, 3.8))
    for method, run in rel["runs"].items():
        ks = [p["k"] for p in run["points"]]
        lab = METHOD_NAMES.get(method, method)
        axes[0].plot(ks, [p["forget_prob"] for p in run["points"]], "-o", label=lab)
        axes[1].plot(ks, [p["forget_rougeL_recall"] for p in run["points"]], "-o", label=lab)
        axes[2].plot(ks, [_lg(p["forget_quality"]) for p in run["points"]], "-o", label=lab)
    for a, yl in zip(axes, ("forget probability", "forget ROUGE-L recall", "log10 Forget Quality"), strict=True):
        a.set_xlabel("relearning steps k")
        a.set_ylabel(yl)
    axes[0].legend()
    fig.suptitle(f"Relearning attack on {rel['split']} ({len(rel['subset'])} QA of the forget set)")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, name), dpi=110)
    return [name]


# ----------------------------------------------------------------------------------------------- README tables

_METHOD_NAMES = {"ga": "GA", "gd": "GD", "kl": "KL", "idk": "IDK", "dpo": "DPO", "dpo_rt": "DPO+RT", "npo": "NPO",
                 "npo_rt": "NPO+RT", "npo_kl": "NPO+KL", "simnpo": "SimNPO", "simnpo_rt": "SimNPO (+RT)"}


def epoch_tables(results: dict) -> str:
    """Markdown: per forget split, each method's FQ / MU after every unlearning epoch, read from a results.json's
    `tofu/<split>/<method>/{fq,mu}_per_epoch` metrics (for harness.readme; nothing typed by hand)."""
    m = results["metrics"]
    out = []
    splits = sorted({k.split("/")[1] for k in m if k.startswith("tofu/") and k.endswith("/fq_per_epoch")})
    for split in splits:
        methods = [k.split("/")[2] for k in m if k.startswith(f"tofu/{split}/") and k.endswith("/fq_per_epoch")]
        n = max(len(m[f"tofu/{split}/{x}/fq_per_epoch"]) for x in methods)
        head = [f"FQ / MU after each unlearning epoch, {split} ({m.get('tofu/data', '')}; {m.get('tofu/model', '')}).",
                ""]
        if f"tofu/{split}/original/forget_quality" in m:
            head += [f"Before unlearning: fine-tuned FQ {fmt(m[f'tofu/{split}/original/forget_quality'])}, MU "
                     f"{m[f'tofu/{split}/original/model_utility']:.2f}.", ""]
        lrs = {x: m.get(f"tofu/{split}/{x}/lr") for x in methods}
        with_lr = any(v is not None for v in lrs.values())
        rows = ["| method | " + ("lr | " if with_lr else "") + " | ".join(f"ep {e + 1}" for e in range(n)) + " |",
                "|---|" + ("---|" if with_lr else "") + "---|" * n]
        for x in methods:
            fq, mu = m[f"tofu/{split}/{x}/fq_per_epoch"], m[f"tofu/{split}/{x}/mu_per_epoch"]
            cells = [f"{fmt(a)} / {b:.2f}" for a, b in zip(fq, mu, strict=True)] + [""] * (n - len(fq))
            lr = ([f"{lrs[x]:g}" if lrs[x] is not None else ""] if with_lr else [])
            rows.append("| " + " | ".join([_METHOD_NAMES.get(x, x), *lr, *cells]) + " |")
        grids = [(x, m[f"tofu/{split}/{x}/lr_grid"]) for x in methods if f"tofu/{split}/{x}/lr_grid" in m]
        if grids:
            rows += ["", "Learning-rate grids: each method's row above is its grid point with the highest FQ at "
                     "comparable MU (the claims' rule), listed per lr as that FQ and its epoch's MU (\"none\": no "
                     "epoch keeps MU):", ""]
            rows += [f"- {_METHOD_NAMES.get(x, x)}: " + ", ".join(
                f"lr {lr:g} → " + (f"{fmt(fq)} (MU {mu:.2f})" if mu is not None else "none") for lr, fq, mu in g)
                for x, g in grids]
        out.append("\n".join(head + rows))
    return "\n\n".join(out)


def readme_block(results: dict) -> str:
    """The npo / simnpo README block (`projects/<p>/readme.py: render`): the claims table, then the per-epoch
    FQ / MU tables of the same results.json."""
    from harness.readme import claims_table  # here, not at the top: harness.readme imports the registry

    tables = epoch_tables(results)
    return claims_table(results) + ("\n\n" + tables if tables else "")
