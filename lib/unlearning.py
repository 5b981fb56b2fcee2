"""The TOFU unlearning benchmark protocol (Maini et al. 2024) as pure functions, plus a local-file reader.

Definitions follow the legacy TOFU / NPO / SimNPO evaluation CODE (spec ../shared/papers/unlearning.md §3.1),
which produced every reported number:

- length-normalised answer probability p̄(a|q) = exp((1/|a|) Σ_t log π(a_t|q, a_<t)) = π(a|q)^{1/|a|}
  ("avg_gt_loss" = −log p̄ in TOFU);
- Probability: forget / retain → mean p̄(a|q); real authors / world facts → mean p̄(a)/(p̄(a) + Σ_j p̄(â_j));
- truth ratio R = [Π_j p̄(â_j|q)]^{1/m} / p̄(ã|q) — GEOMETRIC mean over the m perturbed answers â_j, ã = the
  paraphrased answer (forget, retain) or the original answer (real authors, world facts). The papers' text
  writes an arithmetic mean; `truth_ratio(..., mean="arithmetic")` gives that variant;
- truth-ratio score: forget side mean min(R, 1/R) ("closer to 1 is better"); utility side (retain, real authors,
  world facts) mean max(0, 1 − R) ("true better");
- Forget Quality = p-value of scipy.stats.ks_2samp between the per-item truth ratios on the forget set of the
  unlearned model and of the retain model (any monotone transform of R gives the same p-value);
- Model Utility = harmonic mean of the nine numbers {Probability, ROUGE-L recall, truth-ratio score} ×
  {retain, real authors, world facts}; 0 if any of them is 0;
- ROUGE-L recall = rouge_score's `RougeScorer(["rougeL"], use_stemmer=True).score(gold, generated).recall`:
  own implementation (word-level LCS / number of gold tokens) with rouge_score's tokenisation (lower-case,
  non-alphanumerics → space, Porter stemming of tokens longer than 3 characters). The stemmer is the ORIGINAL
  Porter (1980) algorithm; rouge_score calls NLTK's PorterStemmer, whose default mode adds a few exceptions
  (irregular forms such as "dying", 4-letter "-ies" words, some step-2 suffixes), so rare words can stem
  differently;
- at most `DS_SIZE = 300` items per split (the first 300, as the legacy code's `ds_size`).

Models plug in through two callables: `logprob_fn(questions, answers) -> (sum_logp [n], n_tokens [n])`
(answer tokens only) and `generate_fn(questions) -> list[str]` (greedy answers); `evaluate_tofu_fns` scores any
model that way. For lib/transformer models the last section has the shared training pipeline: `make_optimizer`
(AdamW, TOFU warm-up/decay), jitted `finetune_step` (answer-token NLL) and `unlearn_step(params, ref_params,
opt_state, forget_batch, retain_batch, method, hparams, config=, optimizer=)` over lib.losses.METHODS,
`retain_pairing`, `batch_indices`, and `make_logprob_fn` / `make_generate_fn` / `evaluate_tofu` (FQ, MU, its nine
parts) for a `lib.text.WordTokenizer` or `lib.text.HFQAFormat`.

The synthetic TOFU-like generator lives in lib/tofu_synth.py (same record format; `write_tofu_like` writes files
that `read_tofu` reads back).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats

from lib import losses as _losses
from lib import text as _text
from lib.transformer import TransformerConfig, forward

DS_SIZE = 300
FORGET_SPLITS = ("forget01", "forget05", "forget10")
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
TRAIN_SPLITS = ("full", "forget01", "forget05", "forget10", "retain90", "retain95", "retain99",
                "real_authors", "world_facts")
EVAL_SPLITS = ("forget01_perturbed", "forget05_perturbed", "forget10_perturbed", "retain_perturbed",
               "real_authors_perturbed", "world_facts_perturbed")
TOFU_SPLITS = TRAIN_SPLITS + EVAL_SPLITS
# the four evaluation sets of one run, and which kind of statistics each one gets
EVAL_KINDS = {"forget": "forget", "retain": "retain", "real_authors": "options", "world_facts": "options"}
MU_SPLITS = ("retain", "real_authors", "world_facts")
MU_METRICS = ("prob", "rougeL_recall", "truth_ratio")
MU_KEYS = tuple(f"{s}/{m}" for s in MU_SPLITS for m in MU_METRICS)


# ---------------------------------------------------------------------------------------------------------------
# Reader / writer for TOFU-format files in a local directory (never a download)
# ---------------------------------------------------------------------------------------------------------------

def list_tofu_splits(directory: str) -> list[str]:
    """Names of the `*.json` / `*.jsonl` files in `directory` (without the extension), sorted."""
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.splitext(f)[0] for f in os.listdir(directory)
                  if f.endswith((".json", ".jsonl")) and not f.startswith("."))


def _split_path(directory: str, split: str) -> str:
    for ext in ("", ".json", ".jsonl"):
        path = os.path.join(directory, split + ext)
        if os.path.isfile(path) and (ext or split.endswith((".json", ".jsonl"))):
            return path
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"TOFU directory {directory!r} does not exist (TOFU data is read from a local "
                                f"directory, never downloaded; expected files like full.json, "
                                f"forget10_perturbed.json)")
    raise FileNotFoundError(f"TOFU split {split!r} not found in {directory!r}: no {split}.json or {split}.jsonl; "
                            f"available splits: {list_tofu_splits(directory)}")


def _read_records(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    else:  # JSON lines (the HF TOFU files are JSON lines despite the .json name)
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {n} is not valid JSON ({e})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected JSON objects (one per line or a JSON array of objects)")
    return rows


def _required_fields(split: str) -> tuple:
    base = os.path.splitext(os.path.basename(split))[0]
    if base.endswith("_perturbed"):
        if base.startswith(("real_authors", "world_facts")):
            return ("question", "answer", "perturbed_answer")
        return ("question", "answer", "paraphrased_answer", "perturbed_answer")
    return ("question", "answer")


def read_tofu(directory: str, split: str) -> list[dict]:
    """Records (dicts) of a TOFU-format split, e.g. read_tofu(d, "forget10_perturbed").

    Accepts `<split>.json` or `<split>.jsonl`, as JSON lines or a JSON array. Checks the fields the split needs
    (question, answer; *_perturbed also paraphrased_answer (not for real_authors/world_facts) and a
    perturbed_answer list) and raises naming the file, item and missing field."""
    path = _split_path(directory, split)
    rows = _read_records(path)
    need = _required_fields(split)
    for i, r in enumerate(rows):
        missing = [k for k in need if k not in r]
        if missing:
            raise ValueError(f"{path}: item {i} lacks field(s) {missing} (has {sorted(r)}); a {split!r} split "
                             f"needs {list(need)}")
        if "perturbed_answer" in need and not (isinstance(r["perturbed_answer"], list) and r["perturbed_answer"]):
            raise ValueError(f"{path}: item {i} perturbed_answer={r['perturbed_answer']!r} is invalid: expected a "
                             f"non-empty list of strings")
    return rows


def read_idk(directory: str, name: str = "idontknow.jsonl") -> list[str]:
    """The "I don't know" answers (TOFU's idontknow.jsonl: one plain string per line)."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} not found; files in {directory!r}: "
                                f"{sorted(os.listdir(directory)) if os.path.isdir(directory) else 'none'}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def write_tofu(directory: str, split: str, records: Sequence[dict]) -> str:
    """Writes records as TOFU-style JSON lines `<directory>/<split>.json` (atomically); returns the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, split + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def write_idk(directory: str, lines: Sequence[str], name: str = "idontknow.jsonl") -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def load_tofu_eval(directory: str, forget_split: str = "forget10", *, ds_size: int | None = DS_SIZE) -> dict:
    """The four evaluation sets of a run: {"forget": <forget_split>_perturbed, "retain": retain_perturbed,
    "real_authors": real_authors_perturbed, "world_facts": world_facts_perturbed}, each capped to `ds_size`."""
    if forget_split.endswith("_perturbed"):
        forget_split = forget_split[: -len("_perturbed")]
    names = {"forget": f"{forget_split}_perturbed", "retain": "retain_perturbed",
             "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}
    return {k: cap_items(read_tofu(directory, v), ds_size) for k, v in names.items()}


def cap_items(items: Sequence, ds_size: int | None = DS_SIZE) -> list:
    """The first `ds_size` items (legacy TOFU/NPO/SimNPO `ds_size = 300`; None = all)."""
    return list(items) if ds_size is None else list(items)[:ds_size]


# ---------------------------------------------------------------------------------------------------------------
# Per-item quantities and split statistics (pure numpy)
# ---------------------------------------------------------------------------------------------------------------

def avg_logp(sum_logp, n_tokens) -> np.ndarray:
    """Length-normalised log-prob (1/|a|)·log π(a|q) = log p̄ (= −TOFU's avg loss); any shape."""
    return np.asarray(sum_logp, np.float64) / np.maximum(np.asarray(n_tokens, np.float64), 1.0)


def probability(avg_logp_answer) -> float:
    """Probability on forget / retain: mean over items of p̄(a|q) = exp(avg log-prob)."""
    return float(np.mean(np.exp(np.asarray(avg_logp_answer, np.float64))))


def option_probability(avg_logp_answer, avg_logp_wrong) -> float:
    """Probability on real authors / world facts: mean of p̄(a)/(p̄(a) + Σ_j p̄(â_j)); wrong `[n, m]`."""
    t = np.exp(np.asarray(avg_logp_answer, np.float64))
    w = np.exp(np.asarray(avg_logp_wrong, np.float64)).sum(-1)
    return float(np.mean(t / (t + w)))


def truth_ratio(avg_logp_paraphrased, avg_logp_perturbed, *, mean: str = "geometric") -> np.ndarray:
    """Per-item R = mean_j p̄(â_j) / p̄(ã) with the geometric mean (code, default) or the arithmetic mean (paper
    text). `avg_logp_paraphrased` `[n]`, `avg_logp_perturbed` `[n, m]` (length-normalised log-probs)."""
    para = np.asarray(avg_logp_paraphrased, np.float64)
    pert = np.asarray(avg_logp_perturbed, np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"avg_logp_perturbed has shape {pert.shape}: expected [n, m] with n = {para.shape[0]}")
    if mean == "geometric":
        return np.exp(pert.mean(-1) - para)
    if mean == "arithmetic":
        return np.exp(pert).mean(-1) / np.exp(para)
    raise ValueError(f"mean={mean!r} is invalid: expected one of ['geometric', 'arithmetic']")


def truth_ratio_score(ratios, side: str) -> float:
    """The aggregated truth-ratio number: side="forget" → mean min(R, 1/R); side="utility" (retain, real authors,
    world facts) → mean max(0, 1 − R)."""
    r = np.asarray(ratios, np.float64)
    if side == "forget":
        return float(np.mean(np.minimum(r, 1.0 / r)))
    if side == "utility":
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    raise ValueError(f"side={side!r} is invalid: expected one of ['forget', 'utility']")


def forget_quality(unlearned_truth_ratios, retain_truth_ratios) -> float:
    """FQ: two-sided two-sample KS-test p-value (scipy default method) between the forget-set truth ratios of the
    unlearned model and of the retain model. Complete separation of n vs n gives 2/C(2n, n)."""
    a, b = np.asarray(unlearned_truth_ratios, np.float64), np.asarray(retain_truth_ratios, np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"forget_quality needs two non-empty samples (got sizes {a.size} and {b.size})")
    return float(scipy.stats.ks_2samp(a, b).pvalue)


def model_utility(parts) -> float:
    """MU: harmonic mean of the nine numbers (a dict with keys MU_KEYS, or a sequence of 9); 0 if any is 0."""
    if isinstance(parts, dict):
        missing = [k for k in MU_KEYS if k not in parts]
        if missing:
            raise ValueError(f"model_utility: missing {missing}; expected the nine keys {list(MU_KEYS)}")
        vals = np.array([parts[k] for k in MU_KEYS], np.float64)
    else:
        vals = np.asarray(parts, np.float64).ravel()
        if vals.size != 9:
            raise ValueError(f"model_utility: got {vals.size} numbers, expected 9 ({list(MU_KEYS)})")
    if np.any(vals < 0) or not np.all(np.isfinite(vals)):
        raise ValueError(f"model_utility: the nine numbers must be finite and >= 0, got {vals.tolist()}")
    if np.any(vals == 0):
        return 0.0
    return float(len(vals) / np.sum(1.0 / vals))


# ---------------------------------------------------------------------------------------------------------------
# ROUGE-L recall (rouge_score-style tokenisation + Porter stemmer + word-level LCS)
# ---------------------------------------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_VALID = re.compile(r"^[a-z0-9]+$")


def _is_cons(w: str, i: int) -> bool:
    c = w[i]
    if c in "aeiou":
        return False
    if c == "y":
        return i == 0 or not _is_cons(w, i - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]."""
    forms = "".join("c" if _is_cons(stem, i) else "v" for i in range(len(stem)))
    return len(re.findall("vc", re.sub(r"(.)\1+", r"\1", forms)))


def _has_vowel(stem: str) -> bool:
    return any(not _is_cons(stem, i) for i in range(len(stem)))


def _double_cons(w: str) -> bool:
    return len(w) >= 2 and w[-1] == w[-2] and _is_cons(w, len(w) - 1)


def _cvc(w: str) -> bool:
    n = len(w)
    return (n >= 3 and _is_cons(w, n - 3) and not _is_cons(w, n - 2) and _is_cons(w, n - 1)
            and w[-1] not in "wxy")


_STEP2 = (("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
          ("abli", "able"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
          ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
          ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"))
_STEP3 = (("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
          ("ness", ""))
_STEP4 = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate",
          "iti", "ous", "ive", "ize")


def _replace_longest(w: str, rules, cond) -> str:
    best = None
    for suf, rep in rules:
        if w.endswith(suf) and (best is None or len(suf) > len(best[0])):
            best = (suf, rep)
    if best is None:
        return w
    stem = w[: -len(best[0])]
    return stem + best[1] if cond(stem, best[0]) else w


def porter_stem(word: str) -> str:
    """The original Porter (1980) stemmer on a lower-case word (words of ≤ 2 letters are returned unchanged)."""
    w = word
    if len(w) <= 2:
        return w
    # step 1a
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies"):
        w = w[:-2]
    elif w.endswith("ss"):
        pass
    elif w.endswith("s"):
        w = w[:-1]
    # step 1b
    if w.endswith("eed"):
        if _measure(w[:-3]) > 0:
            w = w[:-1]
    else:
        for suf in ("ed", "ing"):
            if w.endswith(suf) and _has_vowel(w[: -len(suf)]):
                w = w[: -len(suf)]
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif _double_cons(w) and w[-1] not in "lsz":
                    w = w[:-1]
                elif _measure(w) == 1 and _cvc(w):
                    w += "e"
                break
    # step 1c
    if w.endswith("y") and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    # steps 2, 3
    w = _replace_longest(w, _STEP2, lambda s, _: _measure(s) > 0)
    w = _replace_longest(w, _STEP3, lambda s, _: _measure(s) > 0)
    # step 4
    w = _replace_longest(w, [(s, "") for s in _STEP4],
                         lambda s, suf: _measure(s) > 1 and (suf != "ion" or s.endswith(("s", "t"))))
    # step 5a
    if w.endswith("e"):
        m = _measure(w[:-1])
        if m > 1 or (m == 1 and not _cvc(w[:-1])):
            w = w[:-1]
    # step 5b
    if _measure(w) > 1 and _double_cons(w) and w.endswith("l"):
        w = w[:-1]
    return w


def rouge_tokenize(text: str, use_stemmer: bool = True) -> list[str]:
    """rouge_score's tokenizer: lower-case, [^a-z0-9]+ → space, split, Porter-stem tokens longer than 3 chars."""
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if use_stemmer:
        tokens = [porter_stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if _VALID.match(t)]


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (dynamic programming, O(|a|·|b|))."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_recall(reference: str, prediction: str, *, use_stemmer: bool = True) -> float:
    """ROUGE-L recall = LCS(reference, prediction) / len(reference tokens) (0 for an empty reference)."""
    ref, pred = rouge_tokenize(reference, use_stemmer), rouge_tokenize(prediction, use_stemmer)
    return lcs_length(ref, pred) / len(ref) if ref else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Evaluating a model given logprob_fn / generate_fn
# ---------------------------------------------------------------------------------------------------------------

LogprobFn = Callable[[Sequence[str], Sequence[str]], tuple]
GenerateFn = Callable[[Sequence[str]], Sequence[str]]


def split_logps(records: Sequence[dict], logprob_fn: LogprobFn, kind: str) -> dict:
    """Per-item length-normalised log-probs of a split: "answer" `[n]`, "paraphrased" `[n]` (the paraphrased
    answer; the answer itself for kind="options"), "perturbed" `[n, m]`."""
    if kind not in ("forget", "retain", "options"):
        raise ValueError(f"kind={kind!r} is invalid: expected one of ['forget', 'retain', 'options']")
    q = [r["question"] for r in records]
    out = {"answer": avg_logp(*logprob_fn(q, [r["answer"] for r in records]))}
    if kind == "options":
        out["paraphrased"] = out["answer"]
    else:
        out["paraphrased"] = avg_logp(*logprob_fn(q, [r["paraphrased_answer"] for r in records]))
    m = {len(r["perturbed_answer"]) for r in records}
    if len(m) != 1:
        raise ValueError(f"perturbed_answer lists have different lengths {sorted(m)}: expected one m per split")
    m = m.pop()
    flat_q = [x for x in q for _ in range(m)]
    flat_a = [a for r in records for a in r["perturbed_answer"]]
    out["perturbed"] = avg_logp(*logprob_fn(flat_q, flat_a)).reshape(len(records), m)
    return out


def split_stats(records: Sequence[dict], logps: dict, generations: Sequence[str] | None, kind: str) -> dict:
    """Statistics of one split from its per-item log-probs (`split_logps`) and greedy generations (optional):
    prob, rougeL_recall (None without generations), truth_ratio (the side's score), truth_ratios (per-item R)."""
    r = truth_ratio(logps["paraphrased"], logps["perturbed"])
    if kind == "options":
        prob = option_probability(logps["answer"], logps["perturbed"])
    else:
        prob = probability(logps["answer"])
    rouge = None
    rouges = None
    if generations is not None:
        rouges = [rouge_l_recall(rec["answer"], g) for rec, g in zip(records, generations, strict=True)]
        rouge = float(np.mean(rouges))
    return {"prob": prob, "rougeL_recall": rouge, "rougeL_recalls": rouges,
            "truth_ratio": truth_ratio_score(r, "forget" if kind == "forget" else "utility"),
            "truth_ratios": r, "n": len(records)}


def evaluate_split(records: Sequence[dict], logprob_fn: LogprobFn, generate_fn: GenerateFn | None = None, *,
                   kind: str, ds_size: int | None = DS_SIZE) -> dict:
    """`split_stats` of the first `ds_size` records, computing log-probs and (if generate_fn) generations."""
    records = cap_items(records, ds_size)
    logps = split_logps(records, logprob_fn, kind)
    gens = None if generate_fn is None else list(generate_fn([r["question"] for r in records]))
    out = split_stats(records, logps, gens, kind)
    out["generations"] = gens
    return out


def summarize(split_results: dict, retain_truth_ratios=None) -> dict:
    """FQ, MU and its nine parts from {"forget","retain","real_authors","world_facts"} → split_stats dicts.

    Returns {"forget_quality" (None without retain_truth_ratios), "model_utility" (None if a ROUGE is missing),
    "mu_parts" {MU_KEYS → value}, "forget_truth_ratio", "forget_prob", "forget_rougeL_recall"}."""
    parts = {f"{s}/{m}": split_results[s][m] for s in MU_SPLITS for m in MU_METRICS}
    mu = None if any(v is None for v in parts.values()) else model_utility(parts)
    f = split_results["forget"]
    fq = None if retain_truth_ratios is None else forget_quality(f["truth_ratios"], retain_truth_ratios)
    return {"forget_quality": fq, "model_utility": mu, "mu_parts": parts, "forget_truth_ratio": f["truth_ratio"],
            "forget_prob": f["prob"], "forget_rougeL_recall": f["rougeL_recall"]}


def evaluate_tofu_fns(data: dict, logprob_fn: LogprobFn, generate_fn: GenerateFn | None = None, *,
                      retain_truth_ratios=None, ds_size: int | None = DS_SIZE) -> dict:
    """Full TOFU evaluation of one model: `data` = {"forget","retain","real_authors","world_facts"} → records
    (see `load_tofu_eval`). Returns `summarize(...)` plus "splits" (every split's stats)."""
    missing = [k for k in EVAL_KINDS if k not in data]
    if missing:
        raise ValueError(f"data lacks evaluation sets {missing}: expected keys {list(EVAL_KINDS)}")
    splits = {k: evaluate_split(data[k], logprob_fn, generate_fn, kind=kind, ds_size=ds_size)
              for k, kind in EVAL_KINDS.items()}
    return {**summarize(splits, retain_truth_ratios), "splits": splits}


# ---------------------------------------------------------------------------------------------------------------
# Training and evaluating a lib/transformer model on TOFU-format QA (shared by the npo and simnpo projects)
#
# Batches are dicts of `[b, L]` int arrays from `lib.text.encode_qa`: input_ids, labels (−100 off the answer),
# attention_mask. IDK / IdkDPO methods take the "I don't know" version of the forget batch inside the forget batch
# under the keys idk_input_ids, idk_labels, idk_attention_mask (`with_idk`).
# ---------------------------------------------------------------------------------------------------------------

BATCH_KEYS = ("input_ids", "labels", "attention_mask")


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


def _logits(params, config, batch, prefix=""):
    return forward(params, batch[prefix + "input_ids"], config=config,
                   attention_mask=batch[prefix + "attention_mask"])["logits"]


def answer_nll(params, batch: dict, *, config: TransformerConfig) -> jnp.ndarray:
    """Fine-tuning loss: token-mean NLL over the answer tokens of the batch (HF `outputs.loss`)."""
    return _losses.nll_loss(_logits(params, config, batch), batch["labels"])


@functools.cache
def _finetune_step_fn(config, optimizer):
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(answer_nll)(params, batch, config=config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss, "grad_norm": optax.global_norm(grads)}
    return jax.jit(step)


def finetune_step(params, opt_state, batch: dict, *, config: TransformerConfig,
                  optimizer: optax.GradientTransformation):
    """One jitted fine-tuning step on answer tokens → (params, opt_state, {"loss", "grad_norm"}).
    (`config` and `optimizer` are static: one compilation per pair.)"""
    return _finetune_step_fn(config, optimizer)(params, opt_state, {k: batch[k] for k in BATCH_KEYS})


def _split_batches(batch: dict) -> dict:
    out = {"forget": {k: batch[k] for k in BATCH_KEYS}}
    if all(f"idk_{k}" in batch for k in BATCH_KEYS):
        out["idk"] = {k: batch[f"idk_{k}"] for k in BATCH_KEYS}
    return out


def unlearning_inputs(params, ref_params, forget_batch: dict, retain_batch: dict | None, method: str, hparams: dict,
                      *, config: TransformerConfig) -> dict:
    """The `inputs` dict of `lib.losses.forget_loss` for `method`: the model's logits on the batches the method
    needs and the frozen reference's quantities (stop-gradient), computed with the method's reduction."""
    needs = _losses.method_needs(method)
    hp = _losses.method_hparams(method, hparams)
    b = _split_batches(forget_batch)
    if "retain" in needs or "ref_retain_logits" in needs:
        if retain_batch is None:
            raise ValueError(f"unlearning method {method!r} needs a retain batch")
        b["retain"] = {k: retain_batch[k] for k in BATCH_KEYS}
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


@functools.cache
def _unlearn_step_fn(method, hp_items, config, optimizer):
    hp = dict(hp_items)

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
    return jax.jit(step)


def unlearn_step(params, ref_params, opt_state, forget_batch: dict, retain_batch: dict | None, method: str,
                 hparams: dict | None = None, *, config: TransformerConfig, optimizer: optax.GradientTransformation):
    """One jitted unlearning step of `method` (a key of lib.losses.METHODS) with `hparams` overriding its defaults
    → (params, opt_state, {"loss", "grad_norm", "forget_logp"}) where forget_logp is the mean per-sequence answer
    log-prob of the forget batch BEFORE the step. The reference model `ref_params` is frozen (its log-probs are
    recomputed per batch under stop_gradient). One compilation per (method, hparams, config, optimizer)."""
    hp = _losses.method_hparams(method, hparams)
    retain = None if retain_batch is None else {k: retain_batch[k] for k in BATCH_KEYS}
    fb = {k: v for k, v in forget_batch.items() if k in BATCH_KEYS or k.startswith("idk_")}
    fn = _unlearn_step_fn(method, tuple(sorted(hp.items())), config, optimizer)
    return fn(params, ref_params, opt_state, fb, retain)


def with_idk(forget_batch: dict, idk_batch: dict) -> dict:
    """The forget batch plus its IDK-answer version (keys prefixed "idk_"), for the idk / dpo methods."""
    return {**forget_batch, **{f"idk_{k}": idk_batch[k] for k in BATCH_KEYS}}


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
        n = min(L, _bucket(max(int(out["attention_mask"].sum(1).max()), 1), trim))
        out = {k: (v[:, :n] if v.ndim == 2 and v.shape[1] == L else v) for k, v in out.items()}
    return out


# --- evaluation glue ---------------------------------------------------------------------------------------------

@functools.cache
def _seq_logp_fn(config):
    def f(params, ids, labels, mask):
        logits = forward(params, ids, config=config, attention_mask=mask)["logits"]
        lp, m = _losses.shifted_answer_logprobs(logits, labels)
        return lp.sum(-1), m.sum(-1)
    return jax.jit(f)


def _bucket(n: int, step: int = 16) -> int:
    return -(-n // step) * step


def make_logprob_fn(params, config: TransformerConfig, tokenizer, *, batch_size: int = 64,
                    max_len: int | None = None) -> LogprobFn:
    """logprob_fn(questions, answers) → (Σ answer-token log-probs [n], number of answer tokens incl. EOS [n]) for
    a lib/transformer model with a `lib.text.WordTokenizer` or `lib.text.HFQAFormat`. Every batch is padded to
    `batch_size` rows and the call's longest row rounded up to a multiple of 32 tokens, at most `max_len`
    (default config.max_len; longer rows lose their answer tail), so only a few shapes compile."""
    f = _seq_logp_fn(config)
    limit = min(config.max_len, max_len or config.max_len)

    def logprob_fn(questions, answers):
        longest = max(len(tokenizer.prompt_ids(q)) + len(tokenizer.answer_ids(a)) + 1
                      for q, a in zip(questions, answers, strict=True))
        enc = _text.encode_qa(tokenizer, questions, answers, max_len=min(limit, _bucket(longest, 32)))
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
    from lib import decoding

    def generate_fn(questions):
        enc = _text.encode_prompts(tokenizer, questions)
        P = prompt_len or _bucket(enc["prompt_ids"].shape[1], 8)
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
                  generate: bool = True, ds_size: int | None = DS_SIZE, max_len: int | None = None) -> dict:
    """TOFU evaluation of a lib/transformer model: `data` = {"forget","retain","real_authors","world_facts"} →
    records (`load_tofu_eval`, or the synthetic generator's *_perturbed splits). Returns {"forget_quality" (None
    without `retain_truth_ratios`, the retain model's `out["splits"]["forget"]["truth_ratios"]`),
    "model_utility", "mu_parts" (the nine numbers), "forget_truth_ratio", "forget_prob", "forget_rougeL_recall",
    "splits"}. Greedy generation for ROUGE-L with `max_new_tokens` (default: longest gold answer + 4 tokens);
    generate=False skips it (ROUGE and MU are then None). Log-probs use sequences padded to `max_len` (default
    config.max_len); one compilation each for scoring and generation per (config, batch_size, lengths)."""
    logprob_fn = make_logprob_fn(params, config, tokenizer, batch_size=batch_size, max_len=max_len)
    gen_fn = None
    if generate:
        recs = [r for k in EVAL_KINDS if k in data for r in cap_items(data[k], ds_size)]
        if max_new_tokens is None:
            max_new_tokens = max(len(tokenizer.answer_ids(r["answer"])) for r in recs) + 4
        prompt_len = _bucket(max(len(tokenizer.prompt_ids(r["question"])) for r in recs), 8)
        gen_fn = make_generate_fn(params, config, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                  prompt_len=prompt_len)
    return evaluate_tofu_fns(data, logprob_fn, gen_fn, retain_truth_ratios=retain_truth_ratios, ds_size=ds_size)
