"""TOFU-format data (Maini et al. 2024) from a local directory, never downloaded: the split names, a reader and
writer for `<split>.json` / `.jsonl` files, and the pieces one unlearning run is built from.

Splits: `full` (every fictitious author's QA, 20 consecutive rows per author in the real files), `forgetXX` and
`retainYY` (XX + YY = 100), and the evaluation files `<forget>_perturbed`, `retain_perturbed` (question, answer,
paraphrased_answer, a list of perturbed_answer), `real_authors_perturbed`, `world_facts_perturbed` (question, answer,
a list of wrong perturbed_answer). `idontknow.jsonl` holds the "I don't know" answers, one per line.

`run_data(splits, ...)` arranges the splits of one run (training sets, the four evaluation sets of each forget
split, the real-author / world-fact QA that a tiny model learns as its "pre-training" knowledge); on the real files
`author_index` / `kept_authors` / `keep_authors` cut a run down to the forget authors plus a few others, and
`cut_per_author` / `shorten_answers` cut each author's questions and every answer (CPU-sized runs of a pretrained
model).
The synthetic TOFU-like generator lives in lib/tofu_synth.py (same record format; `write_tofu_like` writes files
that `read_tofu` reads back).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

DS_SIZE = 300  # legacy TOFU / NPO / SimNPO evaluate at most the first 300 items of a split (`ds_size`)
AUTHOR_QA = 20  # real TOFU: 20 consecutive QA per author in full.json
FORGET_SPLITS = ("forget01", "forget05", "forget10")
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
TRAIN_SPLITS = ("full", "forget01", "forget05", "forget10", "retain90", "retain95", "retain99",
                "real_authors", "world_facts")
EVAL_SPLITS = ("forget01_perturbed", "forget05_perturbed", "forget10_perturbed", "retain_perturbed",
               "real_authors_perturbed", "world_facts_perturbed")
TOFU_SPLITS = TRAIN_SPLITS + EVAL_SPLITS
# the four evaluation sets of one run, and which kind of statistics each one gets (lib.tofu_metrics)
EVAL_KINDS = {"forget": "forget", "retain": "retain", "real_authors": "options", "world_facts": "options"}


# ----------------------------------------------------------------------------------------------- files

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
    if text.lstrip().startswith("["):
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


def _write_text(path: str, text: str) -> str:
    """Writes `text` to `path` through a temporary file and a rename (atomic); creates the directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def write_tofu(directory: str, split: str, records: Sequence[dict]) -> str:
    """Writes records as TOFU-style JSON lines `<directory>/<split>.json` (atomically); returns the path."""
    return _write_text(os.path.join(directory, split + ".json"),
                       "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_idk(directory: str, lines: Sequence[str], name: str = "idontknow.jsonl") -> str:
    """Writes the "I don't know" answers, one per line (atomically); returns the path."""
    return _write_text(os.path.join(directory, name), "\n".join(lines) + "\n")


def cap_items(items: Sequence, ds_size: int | None = DS_SIZE) -> list:
    """The first `ds_size` items (legacy TOFU/NPO/SimNPO `ds_size = 300`; None = all)."""
    return list(items) if ds_size is None else list(items)[:ds_size]


def load_tofu_eval(directory: str, forget_split: str = "forget10", *, ds_size: int | None = DS_SIZE) -> dict:
    """The four evaluation sets of a run: {"forget": <forget_split>_perturbed, "retain": retain_perturbed,
    "real_authors": real_authors_perturbed, "world_facts": world_facts_perturbed}, each capped to `ds_size`."""
    forget_split = forget_split.removesuffix("_perturbed")
    names = {"forget": f"{forget_split}_perturbed", "retain": "retain_perturbed",
             "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}
    return {k: cap_items(read_tofu(directory, v), ds_size) for k, v in names.items()}


# ----------------------------------------------------------------------------------------------- one run's data

def run_split_names(forget_splits: Sequence[str]) -> tuple[str, ...]:
    """The splits a run over `forget_splits` reads: full, each forget split and its retain split, their evaluation
    files, retain_perturbed, real_authors_perturbed and world_facts_perturbed."""
    retains = [RETAIN_OF[s] for s in forget_splits]
    return ("full", *retains, *forget_splits, *[f"{f}_perturbed" for f in forget_splits], "retain_perturbed",
            "real_authors_perturbed", "world_facts_perturbed")


def author_index(full: Sequence[dict]) -> dict[str, int]:
    """question → author number in the real `full.json` (rows i·20 … i·20 + 19 are author i; a question asked of
    two authors keeps the first)."""
    out: dict[str, int] = {}
    for i, r in enumerate(full):
        out.setdefault(r["question"], i // AUTHOR_QA)
    return out


def kept_authors(n_authors: int, *, forget_splits: Sequence[str], retain_authors: int) -> tuple[set[int], int]:
    """(authors kept, number of forget authors): the last authors (those of the largest forget split, forgetXX
    being the last XX % of the authors) plus the first `retain_authors` others."""
    n_forget = max(round(int(f[-2:]) / 100 * n_authors) for f in forget_splits)
    kept = set(range(min(retain_authors, n_authors - n_forget))) | set(range(n_authors - n_forget, n_authors))
    return kept, n_forget


def keep_authors(records: Sequence[dict], author_of: Mapping[str, int], kept: set[int]) -> list[dict]:
    """The records whose question belongs to a kept author (questions of no known author are kept)."""
    return [r for r in records if author_of.get(r["question"], -1) in kept or r["question"] not in author_of]


def cut_to_authors(splits: Mapping[str, list[dict]], *, forget_splits: Sequence[str],
                   retain_authors: int) -> tuple[dict, int, int]:
    """The run's splits (`run_split_names`) with every author split cut to `kept_authors` (real authors and world
    facts untouched) → (splits, authors kept, authors in full)."""
    author_of = author_index(splits["full"])
    n_authors = len(splits["full"]) // AUTHOR_QA
    kept, _ = kept_authors(n_authors, forget_splits=forget_splits, retain_authors=retain_authors)
    by_author = {"full", "retain_perturbed", *forget_splits, *(RETAIN_OF[f] for f in forget_splits),
                 *(f"{f}_perturbed" for f in forget_splits)}
    out = {k: keep_authors(v, author_of, kept) if k in by_author else v for k, v in splits.items()}
    return out, len(kept), n_authors


def cut_per_author(splits: Mapping[str, list[dict]], *, forget_splits: Sequence[str], qa_per_author: int) -> dict:
    """The run's splits with every author split cut to each author's first `qa_per_author` questions (their order
    in `full.json`; real authors and world facts untouched): a smaller TOFU with the same authors."""
    position = {}
    for i, r in enumerate(splits["full"]):
        position.setdefault(r["question"], i % AUTHOR_QA)
    by_author = {"full", "retain_perturbed", *forget_splits, *(RETAIN_OF[f] for f in forget_splits),
                 *(f"{f}_perturbed" for f in forget_splits)}
    return {k: [r for r in v if position.get(r["question"], 0) < qa_per_author] if k in by_author else list(v)
            for k, v in splits.items()}


ANSWER_FIELDS = ("answer", "paraphrased_answer", "perturbed_answer")


def shorten_answers(splits: Mapping[str, list[dict]], max_words: int) -> dict:
    """Every answer field (answer, paraphrased_answer, each perturbed_answer) cut to its first `max_words`
    whitespace-separated words, in every split: shorter sequences, the same questions and answer order."""
    def cut(a: str) -> str:
        w = a.split()
        return a if len(w) <= max_words else " ".join(w[:max_words])

    def one(r: dict) -> dict:
        out = dict(r)
        for f in ANSWER_FIELDS:
            if f in out:
                out[f] = [cut(a) for a in out[f]] if isinstance(out[f], list) else cut(out[f])
        return out
    return {k: [one(r) for r in v] for k, v in splits.items()}


def run_data(splits: Mapping[str, list[dict]], *, forget_splits: Sequence[str], idk: Sequence[str],
             pretrain_mix: bool) -> dict:
    """One run's data from its splits (`run_split_names`; the synthetic generator's dict has them too):
    {"train": {full, retainXX, forgetXX → records}, "eval": {forget split → {"forget", "retain", "real_authors",
    "world_facts"} evaluation sets}, "pretrain": the real-author / world-fact QA mixed into every fine-tuning run
    when `pretrain_mix` (the tiny model's "pre-training" knowledge that MU's utility parts measure), "idk"}."""
    ra, wf = splits["real_authors_perturbed"], splits["world_facts_perturbed"]
    pretrain = [{"question": r["question"], "answer": r["answer"]} for r in list(ra) + list(wf)]
    train = {k: splits[k] for k in ("full", *(RETAIN_OF[s] for s in forget_splits), *forget_splits)}
    ev = {f: {"forget": splits[f"{f}_perturbed"], "retain": splits["retain_perturbed"], "real_authors": ra,
              "world_facts": wf} for f in forget_splits}
    return {"train": train, "eval": ev, "pretrain": pretrain if pretrain_mix else [], "idk": list(idk)}


def all_records(data: dict) -> list[dict]:
    """Every record of a `run_data` dict (training, pre-training, evaluation) and the IDK answers as {"answer"}:
    what a word vocabulary and the model length are built from."""
    recs = [r for v in data["train"].values() for r in v] + list(data["pretrain"])
    recs += [r for e in data["eval"].values() for v in e.values() for r in v]
    return recs + [{"answer": s} for s in data["idk"]]
