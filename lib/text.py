"""A word-level tokenizer for small QA corpora (TOFU and the synthetic TOFU-like data).

Text is lower-cased and split into words (letters/digits, with inner apostrophes and hyphens kept) and single
punctuation marks. Special tokens: PAD=0, BOS=1, EOS=2, UNK=3, SEP=4. A QA pair is encoded as
`<bos> question <sep> answer <eos>` with labels −100 on `<bos> question <sep>` and on padding, the answer tokens
and the EOS labelled (TOFU masks the question and keeps one EOS in the labels, spec §2.1 / §5b.2).
Sequences are right-padded; `encode_prompts` left-pads questions for `lib.decoding.generate`.
`HFQAFormat` gives a Hugging Face `tokenizers.Tokenizer` the same interface (prompt_ids, answer_ids, eos_id,
pad_id, decode) with TOFU's chat prompt template, so the same encoders and the lib.unlearning_train /
lib.tofu_eval helpers serve real checkpoints.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK, SEP = 0, 1, 2, 3, 4
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>", "<sep>")
IGNORE_INDEX = -100
_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased word / punctuation pieces of `text`."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Word-level vocabulary; `encode(text) -> list[int]`, `decode(ids) -> str` (specials dropped)."""

    def __init__(self, vocab: Sequence[str]):
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocab must start with the special tokens {list(SPECIALS)}, got {vocab[:5]}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab has duplicate entries")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Vocabulary of every word seen at least `min_count` times (most frequent first, ties alphabetical),
        at most `max_size` entries including the specials."""
        counts = collections.Counter(w for t in texts for w in words(t))
        items = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            items = items[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + items)

    @classmethod
    def from_records(cls, records: Iterable[dict], **kwargs) -> WordTokenizer:
        """Vocabulary from every text field of TOFU-format records (question, answer, paraphrased_answer,
        paraphrased_question, perturbed_answer list, option1..4)."""
        return cls.build((t for r in records for t in record_texts(r)), **kwargs)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, UNK) for w in words(text)]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS) and i < len(self.vocab):
                out.append(self.vocab[i])
        return " ".join(out)

    # the QA-format interface used by encode_qa / encode_prompts / lib.tofu_eval (HFQAFormat has the same)
    eos_id = EOS
    pad_id = PAD

    def prompt_ids(self, question: str) -> list[int]:
        """`<bos> question <sep>`."""
        return [BOS] + self.encode(question) + [SEP]

    def answer_ids(self, answer: str) -> list[int]:
        return self.encode(answer)

    def unk_rate(self, texts: Iterable[str]) -> float:
        ids = [i for t in texts for i in self.encode(t)]
        return float(np.mean([i == UNK for i in ids])) if ids else 0.0

    def to_json(self) -> str:
        return json.dumps({"vocab": self.vocab})

    @classmethod
    def from_json(cls, text: str) -> WordTokenizer:
        return cls(json.loads(text)["vocab"])


class HFQAFormat:
    """The QA-format interface for a Hugging Face `tokenizers.Tokenizer` (e.g. `lib.hf_import.load_tokenizer`):
    prompt = [BOS] + tokens of prompt_template.format(question=q), answer = tokens of answer_prefix + a, then EOS;
    padding with `pad_token` (default the EOS token, as TOFU's collator pads with EOS).

    Default template = TOFU's Llama-2-chat one: "[INST] {question} [/INST]" with the answer appended directly
    (phi-style: prompt_template="Question: {question}\nAnswer:", answer_prefix=" "). Question and answer are
    tokenised separately (TOFU tokenises the concatenation and masks the question's token count; the two can differ
    by a merge at the boundary)."""

    def __init__(self, tokenizer, *, prompt_template: str = "[INST] {question} [/INST]", answer_prefix: str = " ",
                 bos_token: str | None = "<s>", eos_token: str = "</s>", pad_token: str | None = None):
        self.tokenizer = tokenizer
        self.prompt_template, self.answer_prefix = prompt_template, answer_prefix

        def tid(t):
            i = tokenizer.token_to_id(t)
            if i is None:
                raise ValueError(f"token {t!r} is not in the tokenizer's vocabulary")
            return i

        self.bos_id = None if bos_token is None else tid(bos_token)
        self.eos_id = tid(eos_token)
        self.pad_id = self.eos_id if pad_token is None else tid(pad_token)
        self.vocab_size = tokenizer.get_vocab_size()

    def prompt_ids(self, question: str) -> list[int]:
        ids = self.tokenizer.encode(self.prompt_template.format(question=question), add_special_tokens=False).ids
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def answer_ids(self, answer: str) -> list[int]:
        return list(self.tokenizer.encode(self.answer_prefix + answer, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            if int(i) == self.eos_id:
                break
            out.append(int(i))
        return self.tokenizer.decode(out, skip_special_tokens=True).strip()


def record_texts(r: dict) -> list[str]:
    texts = [r.get("question", ""), r.get("answer", ""), r.get("paraphrased_answer", ""),
             r.get("paraphrased_question", "")]
    texts += list(r.get("perturbed_answer", []))
    texts += [r[k] for k in ("option1", "option2", "option3", "option4") if k in r]
    return [t for t in texts if t]


def encode_qa(tok, questions: Sequence[str], answers: Sequence[str], *, max_len: int | None = None) -> dict:
    """Right-padded `<bos> q <sep> a <eos>` batches (for a WordTokenizer; `tok.prompt_ids(q) + tok.answer_ids(a) +
    [tok.eos_id]` for any tokenizer with that interface, e.g. HFQAFormat) as numpy int32: input_ids, labels (−100
    on prompt and padding), attention_mask `[n, L]`, plus "truncated" (how many rows lost answer tokens to
    `max_len`).

    L = max_len, or the longest row when None. A row longer than max_len keeps its prompt and cuts the answer
    (the EOS is then cut too); a prompt alone longer than max_len raises."""
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    rows, n_prompt = [], []
    for q, a in zip(questions, answers, strict=True):
        p = tok.prompt_ids(q)
        rows.append(p + tok.answer_ids(a) + [tok.eos_id])
        n_prompt.append(len(p))
    L = max(len(r) for r in rows) if max_len is None else int(max_len)
    ids = np.full((len(rows), L), tok.pad_id, np.int32)
    labels = np.full((len(rows), L), IGNORE_INDEX, np.int32)
    mask = np.zeros((len(rows), L), np.int32)
    truncated = 0
    for i, (r, p) in enumerate(zip(rows, n_prompt, strict=True)):
        if p >= L:
            raise ValueError(f"max_len={max_len} is invalid: question {i} alone takes {p} tokens (with <bos>, <sep>)"
                             f" and leaves no room for its answer")
        truncated += len(r) > L
        r = r[:L]
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
        labels[i, p: len(r)] = r[p:]
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "truncated": truncated}


def encode_prompts(tok, questions: Sequence[str], *, max_len: int | None = None) -> dict:
    """Left-padded prompts (`tok.prompt_ids(q)`, e.g. `<bos> q <sep>`): prompt_ids, prompt_mask `[n, P]` for
    `lib.decoding.generate`."""
    rows = [tok.prompt_ids(q) for q in questions]
    P = max(len(r) for r in rows) if max_len is None else int(max_len)
    if any(len(r) > P for r in rows):
        raise ValueError(f"max_len={max_len} is invalid: the longest prompt has {max(len(r) for r in rows)} tokens")
    ids = np.full((len(rows), P), tok.pad_id, np.int32)
    mask = np.zeros((len(rows), P), np.int32)
    for i, r in enumerate(rows):
        ids[i, P - len(r):] = r
        mask[i, P - len(r):] = 1
    return {"prompt_ids": ids, "prompt_mask": mask}
