"""The TOFU pipeline of npo part (b) (spec ../shared/papers/unlearning.md §3.1, §5b, §5c). NPO introduced this use
of the TOFU protocol, so the pipeline lives here; simnpo's parts (b) and (c) import it from this module
(`from projects.npo import tofu`) rather than keeping a copy. The pure pieces are in lib/: tofu_data (files, one
run's splits), tofu_metrics (truth ratio, Forget Quality, Model Utility, ROUGE-L), tofu_eval (a model's
evaluation), unlearning_train (optimiser, jitted steps, batches).

Stages, each saved under `workdir/tofu/` so that a rerun skips what is finished:

1. data: the real TOFU files in `tofu.data_dir` (default ../shared/data/tofu, relative to the repository root),
   optionally cut to the forget authors plus the first `tofu.retain_authors` other authors, or the synthetic
   TOFU-like generator (lib/tofu_synth) — same record format, same metrics;
2. models (`models/<name>.npz`): the fine-tuned "original" model on `full` and the retain models (one per retain
   split and seed in `tofu.retain_seeds`, the first seed being the FQ reference), all with the same recipe
   (AdamW, TOFU warm-up/decay, answer-token NLL) from the same starting point: a fresh lib/transformer with a
   word tokenizer, or a pretrained model (`tofu.checkpoint`: a name, a .gguf file or a Hugging Face checkpoint
   directory, through lib.models + lib.text.HFQAFormat);
3. evaluations of those models (`evals/<name>_<split>.json`): FQ against the reference retain model (the
   calibration check: original ≈ 0, another retain seed high) and MU;
4. unlearning (`unlearn/<split>_<method>.json`, + `.npz` params where relearning needs them): every method of
   lib.losses.METHODS from the original model (= π_ref), TOFU's protocol (one epoch = one pass over the forget
   set, each forget item paired with one fixed retain item, warm-up one epoch then linear decay), FQ / MU and
   the nine parts evaluated after every epoch;
5. relearning attack (`relearn/<method>.json`): fine-tune an unlearned model on a fraction of the forget set for
   k steps and measure forget probability / ROUGE-L / truth ratio / FQ after each k.

Every training loop stops with `lib.metrics.NonFiniteError` on a non-finite loss or gradient norm before it saves
anything; a damaged saved file raises `lib.metrics.DamagedStateError` naming it.

`validate_tofu(config)` / `validate_relearn(config)` check the fields; `run_tofu(config, workdir)` /
`run_relearn(...)` return the raw results that the projects turn into metrics (`tofu_metrics`), claims
(`calibration_claim`, `beats_claim`, `ga_collapse_claim`, `compare_claim`, `relearn_metrics_and_claim`), plots
(`tofu_plots`, `relearn_plot`) and README tables (`readme_block`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from harness import outputs, plotting, validation
from harness.readme import claims_table
from lib import losses as L
from lib import models, tofu_data, tofu_synth
from lib import text as T
from lib import unlearning_train as UT
from lib.metrics import check_finite, progress, read_json, read_npz, write_json_atomic, write_npz_atomic
from lib.stats import round_up
from lib.tofu_eval import evaluate_tofu, make_scorer
from lib.transformer import TransformerConfig, init_params

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = ("synthetic", "tofu")
SELECTIONS = ("random", "shortest")
METHOD_NAMES = {"ga": "GA", "gd": "GD", "kl": "KL", "idk": "IDK", "dpo": "DPO", "dpo_rt": "DPO+RT", "npo": "NPO",
                "npo_rt": "NPO+RT", "npo_kl": "NPO+KL", "simnpo": "SimNPO (no RT)", "simnpo_rt": "SimNPO"}
HPARAM_RANGES = {"beta": (0.0, True), "gamma": (0.0, False), "forget_coeff": (0.0, False),
                 "retain_coeff": (0.0, False)}  # hyperparameter → (lower bound, strict); all finite
HPARAM_CHOICES = {"reduction": L.UNLEARN_REDUCTIONS, "kl_positions": ("all", "labelled")}


# ----------------------------------------------------------------------------------------------- files

def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_json(path: str, signature: str):
    """The saved JSON at `path` when it was written for `signature`, else None (a damaged file raises)."""
    if not os.path.exists(path):
        return None
    saved = read_json(path)
    return saved if saved.get("signature") == signature else None


def _check_steps(first_step: int, metrics: list[dict]) -> None:
    """NaN guard: `metrics` of consecutive steps from `first_step` (device scalars, read back here)."""
    for i, m in enumerate(metrics):
        check_finite(first_step + i, m)


# ----------------------------------------------------------------------------------------------- config

def resolve_data_dir(path: str) -> str:
    """`tofu.data_dir` relative to the repository root (absolute paths unchanged)."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))


def _is_int(v, lo=0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _validate_unlearn(config, key: str) -> None:
    """`<key>.unlearn`: methods, every learning rate and hyperparameter in the config (run or not)."""
    u = config[key].unlearn
    validation.require_sequence(config, f"{key}.unlearn.methods", item_ok=lambda v: v in L.METHODS,
                                item_desc=f"distinct names from {sorted(L.METHODS)}")
    validation.require(len(set(u.methods)) == len(u.methods), f"{key}.unlearn.methods", u.methods,
                       f"distinct names from {sorted(L.METHODS)}")
    for m in u.methods:
        validation.require(m in u.lr, f"{key}.unlearn.lr", dict(u.lr),
                           f"a learning rate for every method (missing {m!r})")
    for m in u.lr:
        validation.require_float(config, f"{key}.unlearn.lr.{m}", min_value=0.0, strict=True)
    for m in u.hparams:
        hp = dict(u.hparams[m])
        try:
            L.method_hparams(m, hp)
        except ValueError as e:
            raise validation.ConfigError(f"config.{key}.unlearn.hparams.{m}={hp!r} is invalid: {e}") from None
        for name in hp:
            field = f"{key}.unlearn.hparams.{m}.{name}"
            if name in HPARAM_CHOICES:
                validation.require_choice(config, field, HPARAM_CHOICES[name])
            else:
                lo, strict = HPARAM_RANGES[name]
                validation.require_float(config, field, min_value=lo, strict=strict)
    for m, grid in (u.lr_grid.items() if "lr_grid" in u else ()):
        ok = (isinstance(grid, (tuple, list)) and len(set(grid)) == len(grid)
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < math.inf for x in grid))
        validation.require(ok, f"{key}.unlearn.lr_grid.{m}", grid,
                           "a tuple of distinct learning rates > 0 (finite; empty: just unlearn.lr)")
    validation.require_int(config, f"{key}.unlearn.epochs", min_value=1)
    validation.require_int(config, f"{key}.unlearn.batch_size", min_value=1)
    validation.require_int(config, f"{key}.unlearn.warmup_epochs", min_value=0)
    validation.require(u.warmup_epochs < u.epochs, f"{key}.unlearn.warmup_epochs", u.warmup_epochs,
                       f"an integer in [0, unlearn.epochs={u.epochs})")
    validation.require_float(config, f"{key}.unlearn.weight_decay", min_value=0.0)
    validation.require_int(config, f"{key}.unlearn.seed", min_value=0)


def _validate_model(config, key: str) -> None:
    """`<key>.checkpoint` / `<key>.hf` (real weights) or `<key>.model` (a fresh lib/transformer)."""
    t = config[key]
    validation.require(isinstance(t.checkpoint, str), f"{key}.checkpoint", t.checkpoint,
                       "'' (a fresh lib/transformer), a model name, a .gguf file or a checkpoint directory")
    if t.checkpoint:
        validation.require_pretrained(config, f"{key}.checkpoint")
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
                           t.data_dir, f"a directory with the TOFU JSON files (full.json, forget10_perturbed.json, "
                           f"...); resolved to {d!r}, which does not hold them. Use {key}.source='synthetic' "
                           f"without TOFU")
        validation.require_int(config, f"{key}.retain_authors", min_value=0)
        if "qa_per_author" in t:  # absent in configs saved before these fields existed
            validation.require_int(config, f"{key}.qa_per_author", min_value=0, max_value=tofu_data.AUTHOR_QA)
        if "answer_words" in t:
            validation.require_int(config, f"{key}.answer_words", min_value=0)
    else:
        for f, lo in (("seed", 0), ("n_authors", 10), ("n_questions", 1), ("n_real_authors", 4),
                      ("n_world_facts", 4)):
            validation.require_int(config, f"{key}.synth.{f}", min_value=lo)
        validation.require_int(config, f"{key}.synth.n_questions", min_value=1, max_value=len(tofu_synth.QTYPES))
    validation.require_sequence(config, f"{key}.forget_splits", item_ok=lambda v: v in tofu_data.FORGET_SPLITS,
                                item_desc=f"distinct names from {list(tofu_data.FORGET_SPLITS)}")
    validation.require(len(set(t.forget_splits)) == len(t.forget_splits), f"{key}.forget_splits", t.forget_splits,
                       f"distinct names from {list(tofu_data.FORGET_SPLITS)}")
    validation.require_int(config, f"{key}.ds_size", min_value=0)
    _validate_model(config, key)
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
    _validate_unlearn(config, key)
    validation.require_int(config, f"{key}.eval.batch_size", min_value=1)
    validation.require_int(config, f"{key}.eval.max_new_tokens", min_value=0)
    # FQ thresholds are p-values; mu_drop and collapse_frac fractions of the fine-tuned model's MU
    validation.require_probability(config, f"{key}.claims.calibration_low", open_low=True)
    validation.require_probability(config, f"{key}.claims.calibration_high", open_low=True)
    validation.require_probability(config, f"{key}.claims.mu_drop", open_high=True)
    validation.require_probability(config, f"{key}.claims.collapse_frac", open_high=True)
    validation.require_float(config, f"{key}.claims.noise_log10", min_value=0.0)
    validation.require(isinstance(t.claims.decide, bool), f"{key}.claims.decide", t.claims.decide, "True or False")


def validate_relearn(config, key: str = "relearn", tofu_key: str = "tofu") -> None:
    r, t = config[key], config[tofu_key]
    validation.require(t.enabled, f"{tofu_key}.enabled", t.enabled, f"True when the {key} part runs (it attacks "
                       f"the models unlearned by the TOFU part)")
    validation.require_sequence(config, f"{key}.methods", item_ok=lambda v: v in tuple(t.unlearn.methods),
                                item_desc=f"methods of {tofu_key}.unlearn.methods={list(t.unlearn.methods)}")
    validation.require_choice(config, f"{key}.forget_split", tuple(t.forget_splits))
    validation.require_probability(config, f"{key}.fraction", open_low=True)
    validation.require_choice(config, f"{key}.selection", SELECTIONS)
    validation.require_sequence(config, f"{key}.steps", item_ok=lambda v: _is_int(v),
                                item_desc="increasing integers >= 0 starting with 0")
    st = tuple(r.steps)
    validation.require(st[0] == 0 and all(a < b for a, b in zip(st[:-1], st[1:], strict=True)), f"{key}.steps", st,
                       "increasing integers >= 0 starting with 0")
    validation.require_float(config, f"{key}.lr", min_value=0.0, strict=True)
    validation.require_int(config, f"{key}.batch_size", min_value=1)
    validation.require_int(config, f"{key}.seed", min_value=0)


# ----------------------------------------------------------------------------------------------- data and model

def load_data(t) -> dict:
    """lib.tofu_data.run_data of the configured source, plus "source" (a description)."""
    forget_splits = tuple(t.forget_splits)
    if t.source == "synthetic":
        s = t.synth
        splits = tofu_synth.generate_tofu_like(s.seed, n_authors=s.n_authors, n_questions=s.n_questions,
                                               n_real_authors=s.n_real_authors, n_world_facts=s.n_world_facts)
        idk = splits["idontknow"]
        desc = (f"synthetic TOFU-like (lib/tofu_synth seed {s.seed}: {s.n_authors} authors x {s.n_questions} QA, "
                f"{s.n_real_authors} real-author / {s.n_world_facts} world-fact items)")
    else:
        directory = resolve_data_dir(t.data_dir)
        splits = {name: tofu_data.read_tofu(directory, name) for name in tofu_data.run_split_names(forget_splits)}
        idk = tofu_data.read_idk(directory)
        if t.retain_authors:
            splits, n_kept, n_auth = tofu_data.cut_to_authors(splits, forget_splits=forget_splits,
                                                              retain_authors=t.retain_authors)
            _, n_forget = tofu_data.kept_authors(n_auth, forget_splits=forget_splits, retain_authors=0)
            desc = (f"real TOFU ({directory}) cut to {n_kept} of {n_auth} authors (the forget authors + the "
                    f"first {n_kept - n_forget} others)")
        else:
            desc = f"real TOFU ({directory}), all {len(splits['full']) // tofu_data.AUTHOR_QA} authors"
        if t.get("qa_per_author"):
            splits = tofu_data.cut_per_author(splits, forget_splits=forget_splits, qa_per_author=t.qa_per_author)
            desc += f", each author's first {t.qa_per_author} QA"
        if t.get("answer_words"):
            splits = tofu_data.shorten_answers(splits, t.answer_words)
            desc += f", answers cut to {t.answer_words} words"
    data = tofu_data.run_data(splits, forget_splits=forget_splits, idk=idk, pretrain_mix=t.pretrain_mix)
    return {**data, "source": desc}


def build_model(t, data: dict):
    """(tokenizer, TransformerConfig, initial params, description): a fresh lib/transformer over a word vocabulary
    of the data, or the local Hugging Face checkpoint `tofu.checkpoint` with its tokenizer.json."""
    recs = tofu_data.all_records(data)
    if t.checkpoint:
        model = models.load_model(t.checkpoint)
        hf = t.hf
        tok = T.HFQAFormat(models.load_tokenizer(t.checkpoint),
                           prompt_template=hf.prompt_template, answer_prefix=hf.answer_prefix,
                           bos_token=hf.bos_token or None, eos_token=hf.eos_token)
        cfg = model.config
        need = t.model.max_len or UT.model_length(tok, recs)
        if need > cfg.max_len and cfg.positions == "learned":
            raise validation.ConfigError(f"config.tofu.model.max_len: the data need {need} tokens but the "
                                         f"checkpoint's learned positions stop at {cfg.max_len}")
        cfg = dataclasses.replace(cfg, max_len=need)
        return tok, cfg, model.params, (f"pretrained {t.checkpoint} ({cfg.n_layers} layers, "
                                        f"d={cfg.d_model}, vocab {cfg.vocab_size})")
    tok = T.WordTokenizer.from_records(recs)
    need = t.model.max_len or UT.model_length(tok, recs)
    m = t.model
    cfg = TransformerConfig(vocab_size=len(tok), d_model=m.d_model, n_layers=m.n_layers, n_heads=m.n_heads,
                            max_len=need)
    params = init_params(cfg, jax.random.key(t.finetune.seed))
    n = sum(x.size for x in jax.tree.leaves(params))
    return tok, cfg, params, (f"lib/transformer d={m.d_model}, {m.n_layers} layers, {m.n_heads} heads, word vocab "
                              f"{len(tok)}, {n / 1e6:.2f}M params, max_len {need}")


# ----------------------------------------------------------------------------------------------- fine-tuning

def finetune_recipe(cfg, f, n: int):
    """(optimizer, jitted step) of `f.epochs` epochs over n records (AdamW, TOFU warm-up/decay); runs with the same
    n share them (one compilation per batch shape)."""
    steps_per_epoch = -(-n // f.batch_size)
    opt = UT.make_optimizer(f.lr, total_steps=f.epochs * steps_per_epoch,
                            warmup_steps=f.warmup_epochs * steps_per_epoch, weight_decay=f.weight_decay)
    return opt, UT.make_finetune_step(config=cfg, optimizer=opt, donate=True)


def finetune(params, cfg, tok, records: list[dict], f, *, seed: int, recipe=None, bar=None) -> tuple[dict, list]:
    """`f.epochs` epochs of answer-token NLL over `records` (`finetune_recipe`), batches in a seeded order."""
    enc = UT.encode_records(tok, records, max_len=cfg.max_len)
    n = len(records)
    opt, step = recipe or finetune_recipe(cfg, f, n)
    params = jax.tree.map(jnp.copy, params)  # the step donates what it trains; the caller's params stay intact
    state = opt.init(params)
    epoch_losses = []
    for e in range(f.epochs):
        ms = []
        for idx in UT.batch_indices(n, min(f.batch_size, n), seed=seed * 100_003 + e):
            params, state, m = step(params, state, UT.take(enc, idx, trim=f.trim))
            ms.append(m)
        _check_steps(e * len(ms), ms)
        epoch_losses.append(float(np.mean([float(m["loss"]) for m in ms])))
        if bar is not None:
            bar.update(1)
    return params, epoch_losses


def trained_model(workdir: str, name: str, init, cfg, tok, records: list[dict], f, *, seed: int, signature: dict,
                  recipe=None, bar=None) -> dict:
    """Loads `workdir/tofu/models/<name>.npz` when it was trained on these records with this recipe, else trains
    and saves it (atomically)."""
    path = os.path.join(workdir, "tofu", "models", f"{name}.npz")
    sig = _digest({**signature, "records": _digest([(r["question"], r["answer"]) for r in records]), "seed": seed})
    if os.path.exists(path):
        saved = read_npz(path)
        if str(saved["signature"]) == sig:
            if bar is not None:
                bar.update(f.epochs)
            return {"params": UT.arrays_to_params(saved), "losses": saved["losses"].tolist(),
                    "seconds": float(saved["seconds"]), "resumed": True}
    t0 = time.time()
    params, losses = finetune(init, cfg, tok, records, f, seed=seed, recipe=recipe, bar=bar)
    seconds = time.time() - t0
    write_npz_atomic(path, {**UT.params_to_arrays(params), "losses": np.array(losses), "signature": np.array(sig),
                            "seconds": np.float64(seconds)})
    return {"params": params, "losses": losses, "seconds": seconds, "resumed": False}


# ----------------------------------------------------------------------------------------------- evaluation

def _summary(ev: dict) -> dict:
    """The JSON-able part of an evaluate_tofu result."""
    out = {k: ev[k] for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob",
                              "forget_rougeL_recall")}
    out["mu_parts"] = dict(ev["mu_parts"])
    f = ev["splits"]["forget"]
    out["forget_truth_ratios"] = np.asarray(f["truth_ratios"]).tolist()
    out["samples"] = [{"answer": None, "generated": g} for g in (f.get("generations") or [])[:3]]
    return out


class Evaluator:
    """evaluate_tofu with the run's tokenizer, batch size, generation length and ds_size (fixed shapes), and one
    scorer compiled for the whole run (dropped with the evaluator)."""

    def __init__(self, t, cfg, tok, data):
        self.cfg, self.tok, self.data = cfg, tok, data
        self.batch_size = t.eval.batch_size
        self.ds_size = t.ds_size or None
        recs = [r for e in data["eval"].values() for v in e.values() for r in tofu_data.cap_items(v, self.ds_size)]
        self.max_new = t.eval.max_new_tokens or max(len(tok.answer_ids(r["answer"])) for r in recs) + 4
        prompt = round_up(max(len(tok.prompt_ids(r["question"])) for r in recs), 8)
        self.max_new = min(self.max_new, cfg.max_len - prompt)
        self.scorer = make_scorer(cfg)

    def __call__(self, params, split: str, retain_trs=None, *, generate: bool = True) -> dict:
        ev = evaluate_tofu(params, self.cfg, self.data["eval"][split], retain_trs, tokenizer=self.tok,
                           batch_size=self.batch_size, max_new_tokens=self.max_new, generate=generate,
                           ds_size=self.ds_size, scorer=self.scorer)
        out = _summary(ev)
        gold = tofu_data.cap_items(self.data["eval"][split]["forget"], self.ds_size)[:3]
        for s, r in zip(out["samples"], gold, strict=False):
            s["answer"], s["question"] = r["answer"], r["question"]
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
            saved["params"] = UT.arrays_to_params(read_npz(base + ".npz"))
        return saved
    forget = data["train"][split]
    retain = data["train"][tofu_data.RETAIN_OF[split]]
    n = len(forget)
    bs = min(u.batch_size, n)
    pair = UT.retain_pairing(n, len(retain), seed=u.seed)
    f_enc = UT.encode_records(tok, forget, max_len=cfg.max_len)
    r_enc = UT.encode_records(tok, [retain[i] for i in pair], max_len=cfg.max_len)
    rng = np.random.default_rng([u.seed, 7])
    idk_answers = [data["idk"][i] for i in rng.integers(len(data["idk"]), size=n)]
    i_enc = UT.encode_records(tok, forget, idk_answers, max_len=cfg.max_len)
    steps_per_epoch = -(-n // bs)
    opt = UT.make_optimizer(lr, total_steps=u.epochs * steps_per_epoch,
                            warmup_steps=u.warmup_epochs * steps_per_epoch, weight_decay=u.weight_decay)
    step = UT.make_unlearn_step(method, hp, config=cfg, optimizer=opt, donate=True)
    ref = original["params"]
    params = jax.tree.map(jnp.copy, ref)  # donated to the step; the frozen reference stays intact
    state = opt.init(params)
    t0 = time.time()
    epochs = []
    for e in range(u.epochs):
        ms = []
        for idx in UT.batch_indices(n, bs, seed=u.seed * 1009 + e):
            fb = UT.with_idk(UT.take(f_enc, idx), UT.take(i_enc, idx))
            params, state, m = step(params, ref, state, fb, UT.take(r_enc, idx))
            ms.append(m)
        _check_steps(e * steps_per_epoch, ms)
        ev = evaluator(params, split, retain_trs)
        ev.pop("forget_truth_ratios")
        epochs.append({"epoch": e + 1, "loss": float(np.mean([float(m["loss"]) for m in ms])),
                       "forget_logp_train": float(np.mean([float(m["forget_logp"]) for m in ms])), **ev})
        if bar is not None:
            bar.update(1)
    out = {"signature": sig, "split": split, "method": method, "lr": lr, "hparams": L.method_hparams(method, hp),
           "steps_per_epoch": steps_per_epoch, "epochs": epochs, "seconds": time.time() - t0}
    if keep_params:
        write_npz_atomic(base + ".npz", UT.params_to_arrays(params))
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

def _reference(t, split: str) -> str:
    """The FQ reference model of a forget split: its retain model with the first retain seed."""
    return f"{tofu_data.RETAIN_OF[split]}_s{t.retain_seeds[0]}"


def _headline_split(t) -> str:
    """The forget split the claims are judged on: forget10 when it runs, else the last one."""
    return "forget10" if "forget10" in t.forget_splits else t.forget_splits[-1]


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
    retains = sorted({tofu_data.RETAIN_OF[s] for s in t.forget_splits})
    jobs = [("original", data["train"]["full"], f.seed)]
    jobs += [(f"{r}_s{s}", data["train"][r], s) for r in retains for s in t.retain_seeds]
    n_runs = len(t.forget_splits) * sum(len(lr_grid(t.unlearn, m)) for m in t.unlearn.methods)
    models, times = {}, {}
    with progress(len(jobs) * f.epochs + n_runs * t.unlearn.epochs, desc=f"{key}", unit="epoch") as bar:
        t0 = time.time()
        recipes = {}  # number of records → (optimizer, jitted step): the retain seeds share one compilation
        for name, recs, seed in jobs:
            train = recs + list(data["pretrain"])
            if len(train) not in recipes:
                recipes[len(train)] = finetune_recipe(cfg, f, len(train))
            models[name] = trained_model(workdir, name, init, cfg, tok, train, f, seed=seed, signature=msig,
                                         recipe=recipes[len(train)], bar=bar)
            models[name]["signature"] = _digest([msig, name, seed, len(recs)])
        del recipes, init  # the starting weights are not needed after fine-tuning (a pretrained model's are large)
        times["train_models"] = time.time() - t0
        evaluator = Evaluator(t, cfg, tok, data)
        t0 = time.time()
        evals = {}
        for split in t.forget_splits:
            ref_name = _reference(t, split)
            names = [ref_name] + [n for n in models if n != ref_name and (n == "original" or
                                                                        n.startswith(tofu_data.RETAIN_OF[split]))]
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
        for name in models:  # only the fine-tuned model's weights are used after its evaluation (π_ref, the start)
            if name != "original":
                models[name].pop("params")
        times["evaluate_models"] = time.time() - t0
        t0 = time.time()
        runs = {}
        orig = {"params": models["original"]["params"], "signature": models["original"]["signature"]}
        for split in t.forget_splits:
            trs = np.array(evals[_reference(t, split)][split]["forget_truth_ratios"])
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

def run_relearn(config, workdir: str, tofu: dict, key: str = "relearn") -> dict:
    """Fine-tunes each unlearned model of `relearn.methods` on part of the forget set for relearn.steps[-1] steps
    (constant lr, answer NLL), evaluating on the whole forget split after each k in relearn.steps; also the
    original model's numbers. Resumes from `relearn/<method>.json`."""
    r = config[key]
    ctx = tofu["_ctx"]
    t, cfg, tok, data, evaluator = ctx["t"], ctx["cfg"], ctx["tok"], ctx["data"], ctx["evaluator"]
    split = r.forget_split
    forget = data["train"][split]
    subset = UT.relearn_subset(forget, tok, r.fraction, r.selection, r.seed)
    enc = UT.encode_records(tok, [forget[i] for i in subset], max_len=cfg.max_len)
    trs = np.array(tofu["evals"][_reference(t, split)][split]["forget_truth_ratios"])
    opt = UT.make_optimizer(r.lr, total_steps=r.steps[-1], schedule="constant", weight_decay=0.0)
    finetune_step = UT.make_finetune_step(config=cfg, optimizer=opt, donate=True)  # one compilation for all methods
    out = {"subset": subset, "split": split, "runs": {}}
    t0 = time.time()
    with progress(len(r.methods) * r.steps[-1], desc=key, unit="step") as bar:
        for method in r.methods:
            run = tofu["runs"][split][method]
            path = os.path.join(workdir, "tofu", "relearn", f"{split}_{method}.json")
            sig = _digest([run["signature"], subset, list(r.steps), r.lr, r.batch_size, r.seed])
            saved = _load_json(path, sig)
            if saved is None:
                params = jax.tree.map(jnp.copy, run["params"])  # donated to the step; the unlearned model stays
                state = opt.init(params)
                bs = min(r.batch_size, len(subset))
                points = []
                step = 0
                batches = []
                e = 0
                while len(batches) < r.steps[-1]:
                    batches += UT.batch_indices(len(subset), bs, seed=r.seed * 7919 + e)
                    e += 1
                for k in r.steps:
                    ms = []
                    while step < k:
                        params, state, m = finetune_step(params, state, UT.take(enc, batches[step]))
                        ms.append(m)
                        step += 1
                        bar.update(1)
                    _check_steps(step - len(ms), ms)
                    if k == 0:  # the unlearned model itself: its last epoch's evaluation (same params, same numbers)
                        ev = run["epochs"][-1]
                    else:
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
    samples = bool(t.checkpoint)  # a pretrained model's greedy answers on the first forget questions (readable text)
    for name, per in tofu["evals"].items():
        for split, ev in per.items():
            for k in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_prob", "forget_rougeL_recall"):
                m[f"tofu/{split}/{name}/{k}"] = ev[k]
            if samples:
                m[f"tofu/{split}/{name}/samples"] = ev["samples"]
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
            if samples:
                m[f"{pre}/samples"] = last["samples"]
            if "grid" in run:
                m[f"{pre}/lr_grid"] = [[g["lr"], g["best_fq_comparable_mu"], g["mu"]] for g in run["grid"]]
    return m


def calibration_claim(tofu: dict, t, prefix: str = "T") -> dict:
    split = _headline_split(t)
    ref = _reference(t, split)
    fq_orig = tofu["evals"]["original"][split]["forget_quality"]
    others = [n for n in tofu["evals"] if n.startswith(tofu_data.RETAIN_OF[split]) and n != ref]
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
    split = _headline_split(t)
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
    split = _headline_split(t)
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
    split = _headline_split(t)
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
        retain_names = [n for n in tofu["evals"] if n.startswith(tofu_data.RETAIN_OF[split])]
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


def _cell(text) -> str:
    return "" if text is None else " ".join(str(text).split()).replace("|", "\\|")


def sample_tables(results: dict) -> str:
    """Markdown: per forget split, the greedy answers of the fine-tuned model, a retain model and each method after
    its last unlearning epoch to the first forget questions (`tofu/<split>/<name>/samples` metrics, written for
    pretrained checkpoints); "" when the results hold none."""
    m = results["metrics"]
    out = []
    for split in sorted({k.split("/")[1] for k in m if k.startswith("tofu/") and k.endswith("/samples")}):
        names = [k.split("/")[2] for k in m if k.startswith(f"tofu/{split}/") and k.endswith("/samples")]
        models = [n for n in names if n == "original"] + [n for n in names if n.startswith("retain")][:1]
        methods = [n for n in names if n not in ("original",) and not n.startswith("retain")]
        first = m[f"tofu/{split}/{(models or methods)[0]}/samples"]
        rows = [f"Greedy answers to the first forget questions of {split} (after the last unlearning epoch; "
                "answers cut at the evaluation's generation length):", ""]
        for i, s0 in enumerate(first):
            rows += [f"**Q{i + 1}: {_cell(s0.get('question', '?'))}** (gold: {_cell(s0.get('answer'))})", "",
                     "| model | answer |", "|---|---|"]
            for n in models + methods:
                got = m[f"tofu/{split}/{n}/samples"]
                label = {"original": "fine-tuned"}.get(n, n.replace("_s", " seed ") if n.startswith("retain")
                                                      else _METHOD_NAMES.get(n, n))
                rows.append(f"| {label} | {_cell(got[i]['generated']) if i < len(got) else ''} |")
            rows.append("")
        out.append("\n".join(rows).rstrip())
    return "\n\n".join(out)


def readme_block(results: dict) -> str:
    """The npo / simnpo README block (`projects/<p>/readme.py: render`): the claims table, then the per-epoch
    FQ / MU tables of the same results.json and (pretrained checkpoints) sample answers."""
    parts = [claims_table(results), epoch_tables(results), sample_tables(results)]
    return "\n\n".join(p for p in parts if p)
