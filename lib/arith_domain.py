"""A seeded GSM8K-like domain of multi-step arithmetic word problems with known decompositions (AutoPRM spec §5.2).

Each problem is a small program DAG over people's counts of one object, verbalised with word templates:

    ann has 12 coins . ben has 3 more than ann . cal has 4 times as many as ben . fay has 7 coins .
    how many does cal have ?

Gold outputs: the atomic sub-questions q_t ("how many does ben have ?"), their sub-solutions s_t in one canonical
grammar (`12 + 3 = 15`; several equations joined by `,`; a restating step is the bare number `12`), the sub-answers
a_t and the final answer. Pure Python/NumPy, deterministic per (seed, split, index); nothing is downloaded.

Choices where the spec is silent (written here so results can name them):
- **Vocabulary** (`VOCAB`, 185 tokens): specials, 11 ε tokens `<EPS_0.0>`…`<EPS_1.0>`, the numbers 0–99 as single
  tokens, 5 operator tokens, 20 one-token names and 8 objects, and 28 template words. Task tokens: `<QD>` decompose,
  `<QA>` answer sub-questions, `<COT>` one-shot chain of thought; `<ANS>` opens the final answer in every task.
- **Program.** n steps (n = chain length); each step is one of: unary `x op k` on the newest pending quantity with a
  literal k (+/− k ∈ 1..20, × k ∈ 2..9, ÷ exact k ∈ 2..9), a combine `x ± y` of the two newest pending quantities, a
  combine with a freshly stated quantity, or a new branch (a stated quantity plus a unary step), scheduled so that
  exactly one pending quantity (the answer) remains. Every value lies in 1..99 (÷ exact, − strictly positive);
  stated quantities in 2..30. Difficulty knobs: `max_value` (≤ 99) and `max_literal` (≤ 20) shrink the ranges.
  Every step result is used downstream, so the gold program has exactly n contributing steps.
- **Distractors**: facts about other people (a stated count or one relative to a person already mentioned) that the
  gold program never reads; **restating** sub-questions ("how many does ann have ?" → `12`) about stated quantities,
  each present with probability `restate_prob`, placed before the first step that reads the quantity; they add no
  new number (the class the paper's ε heuristic drops first).
- **ε (granularity)**: the full decomposition has n_sub = n + #restating sub-questions. For a target ε keep
  ñ = max(1, round(ε·n_sub)) (round half up): drop restating sub-questions first (the latest first), then merge the
  n steps into ñ contiguous groups as evenly as possible (`np.array_split`; earlier groups take the extra step).
  A merged sub-question asks for the group's last quantity and its sub-solution lists all the group's equations.
  ε = 0 is one sub-question (the problem's own question) whose sub-solution is the whole chain, i.e. plain CoT.
  The realised ñ/n_sub, rounded to 0.1, is the control token `<EPS_x>`.
- **Sequences** (fixed-length int32 with a 0/1 loss mask over targets):
    CoT  `<BOS> <COT> p <SEP> s <ANS> c <EOS>`
    QD   `<BOS> <QD> <EPS_x> p <SEP> q_1 <QS> q_2 … q_T <EOS>`
    QA   `<BOS> <QA> p <PRE> q_1 <SUF> q_2 <MID> s_1 <PRE> q_2 <SUF> q_3 <MID> s_2 … <PRE> q_T <SUF> <END> <MID> s_T
          <ANS> c <EOS>` (context-guided decoding; `cgd=False` drops every `<SUF> q_{t+1}` segment). The loss covers
          each s_t and the delimiter after it (`<PRE>` or `<ANS>`, the sub-solver's stop token), and `c <EOS>`.
- **Splits**: lengths cycle through the split's range (stratified); in-distribution n ∈ 2..6, the OOD-length split
  n ∈ 7..8. Split names seed disjoint streams.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SPECIALS = ("<PAD>", "<BOS>", "<EOS>", "<QD>", "<QA>", "<COT>", "<ANS>", "<SEP>", "<QS>", "<PRE>", "<SUF>", "<MID>",
            "<END>")
EPS_TOKENS = tuple(f"<EPS_{i / 10:.1f}>" for i in range(11))
NUMBERS = tuple(str(i) for i in range(100))
OPS = ("+", "-", "*", "/", "=")
NAMES = ("ann", "ben", "cal", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lea", "max", "ned", "oli",
         "pam", "quin", "rob", "sam", "tia")
OBJECTS = ("apples", "pears", "coins", "books", "cards", "shells", "stamps", "marbles")
WORDS = ("has", "have", "does", "how", "many", "more", "fewer", "less", "than", "times", "as", "twice", "'s",
         "divided", "by", "and", "together", "the", "difference", "of", "plus", "there", "are", "with", "is", ".",
         "?", ",")
VOCAB = SPECIALS + EPS_TOKENS + NUMBERS + OPS + NAMES + OBJECTS + WORDS
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
assert len(TOKEN_ID) == len(VOCAB), "duplicate token"
PAD, BOS, EOS = TOKEN_ID["<PAD>"], TOKEN_ID["<BOS>"], TOKEN_ID["<EOS>"]
QD, QA, COT, ANS = TOKEN_ID["<QD>"], TOKEN_ID["<QA>"], TOKEN_ID["<COT>"], TOKEN_ID["<ANS>"]
SEP, QS, PRE, SUF, MID, END = (TOKEN_ID[t] for t in ("<SEP>", "<QS>", "<PRE>", "<SUF>", "<MID>", "<END>"))
NUM0 = TOKEN_ID["0"]  # number v has id NUM0 + v
MAX_VALUE = 99
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "ood": 3}
IN_DIST_LENGTHS = (2, 3, 4, 5, 6)
OOD_LENGTHS = (7, 8)
APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
          "/": lambda a, b: a // b if b and a % b == 0 else None}

# Surface forms: {P} target person, {A}/{B} operands, {k} literal, {o} object.
UNARY_TEMPLATES = {
    "+": ("{P} has {k} more than {A} .", "{P} has {A} 's {o} plus {k} ."),
    "-": ("{P} has {k} fewer than {A} .", "{P} has {k} {o} less than {A} ."),
    "*": ("{P} has {k} times as many as {A} .", "{P} has {k} times {A} 's {o} ."),
    "/": ("{P} has {A} 's {o} divided by {k} .", "{P} has {k} times fewer than {A} ."),
}
COMBINE_TEMPLATES = {
    "+": ("{P} has as many as {A} and {B} together .", "{P} has {A} 's and {B} 's {o} together ."),
    "-": ("{P} has the difference of {A} and {B} .", "{P} has as many as {A} has more than {B} ."),
}
LEAF_TEMPLATES = ("{P} has {k} .", "{P} has {k} {o} .")


@dataclasses.dataclass(frozen=True)
class Step:
    """One atomic step `value = left op right`; operands are ("node", id) or ("lit", k)."""
    target: int
    op: str
    left: tuple
    right: tuple
    value: int


@dataclasses.dataclass(frozen=True)
class SubQ:
    """A (possibly merged) gold sub-question: tokens, sub-solution tokens, sub-answer, the steps it covers."""
    question: tuple
    solution: tuple
    answer: int
    steps: tuple  # indices into Problem.steps; empty for a restating sub-question
    restate: bool = False


@dataclasses.dataclass(frozen=True)
class Problem:
    n_steps: int
    values: dict  # node id -> value (all nodes, distractors included)
    names: dict  # node id -> name token
    leaves: tuple  # node ids of quantities stated in the text and read by the gold program
    steps: tuple  # Step, in gold order
    distractors: tuple  # node ids never read by the gold program
    text: tuple  # problem tokens: facts, distractors and the question
    question: tuple
    subqs: tuple  # full-granularity gold decomposition (restating + atomic steps)
    answer: int
    obj: str


def _question(name: str) -> tuple:
    return ("how", "many", "does", name, "have", "?")


def _eq(a: int, op: str, b: int, c: int) -> tuple:
    return (str(a), op, str(b), "=", str(c))


def _fill(template: str, **kw) -> tuple:
    return tuple(template.format(**{k: str(v) for k, v in kw.items()}).split())


def _literal(rng, op: str, x: int, max_value: int = MAX_VALUE, max_literal: int = 20):
    """A literal k that keeps `x op k` in 1..max_value, or None when op is infeasible for x."""
    if op == "+":
        ks = range(1, min(max_literal, max_value - x) + 1)
    elif op == "-":
        ks = range(1, min(max_literal, x - 1) + 1)
    elif op == "*":
        ks = range(2, min(9, max_literal, max_value // x) + 1)
    else:
        ks = [k for k in range(2, min(9, max_literal) + 1) if x % k == 0]
    ks = list(ks)
    return int(rng.choice(ks)) if ks else None


def _combinable(va: int, vb: int, max_value: int = MAX_VALUE) -> bool:
    return va + vb <= max_value or va != vb


def generate_problem(rng: np.random.Generator, n_steps: int, *, n_distractors: tuple = (0, 2),
                     restate_prob: float = 0.5, p_branch: float = 0.2, p_combine: float = 0.5,
                     p_leaf_combine: float = 0.2, max_value: int = MAX_VALUE, max_literal: int = 20) -> Problem:
    """One problem with `n_steps` contributing steps and U{n_distractors} distractor facts; every value lies in
    1..max_value, literals of +/− in 1..max_literal (× and ÷ in 2..min(9, max_literal))."""
    if not 1 <= n_steps <= 8:
        raise ValueError(f"n_steps={n_steps} is invalid: expected 1..8")
    if not (10 <= max_value <= MAX_VALUE and 2 <= max_literal <= 20):
        raise ValueError(f"max_value={max_value}, max_literal={max_literal} are invalid: expected 10..{MAX_VALUE}, "
                         "2..20")
    if not 0 <= n_distractors[0] <= n_distractors[1] <= 19 - 2 * n_steps:
        raise ValueError(f"n_distractors={n_distractors!r} is invalid: expected 0 <= lo <= hi <= {19 - 2 * n_steps} "
                         f"(the {len(NAMES)} names must cover every person)")
    names = list(rng.permutation(NAMES))
    obj = str(rng.choice(OBJECTS))
    values, node_names, leaves, steps, sentences, first_use = {}, {}, [], [], [], {}
    leaf_hi = min(30, max_value // 2)
    lit = lambda op, x: _literal(rng, op, x, max_value, max_literal)

    def new_node(value):
        i = len(values)
        values[i], node_names[i] = value, names[i]
        return i

    def new_leaf(value=None):
        i = new_node(int(rng.integers(2, leaf_hi + 1)) if value is None else value)
        leaves.append(i)
        sentences.append(_fill(LEAF_TEMPLATES[rng.integers(2)], P=node_names[i], k=values[i], o=obj))
        return i

    def unary(x):
        op = str(rng.choice([op for op in "+-*/" if lit(op, values[x]) is not None]))
        k = lit(op, values[x])
        t = new_node(APPLY[op](values[x], k))
        steps.append(Step(t, op, ("node", x), ("lit", k), values[t]))
        if op == "*" and k == 2 and rng.random() < 0.5:
            sentences.append(_fill("{P} has twice as many as {A} .", P=node_names[t], A=node_names[x]))
        else:
            sentences.append(_fill(UNARY_TEMPLATES[op][rng.integers(2)], P=node_names[t], A=node_names[x], k=k,
                                   o=obj))
        return t

    def combine(a, b):
        va, vb = values[a], values[b]
        if not _combinable(va, vb, max_value):
            return None
        op = str(rng.choice((["+"] if va + vb <= max_value else []) + (["-"] if va != vb else [])))
        if op == "-" and va < vb:
            a, b, va, vb = b, a, vb, va
        t = new_node(APPLY[op](va, vb))
        steps.append(Step(t, op, ("node", a), ("node", b), values[t]))
        sentences.append(_fill(COMBINE_TEMPLATES[op][rng.integers(2)], P=node_names[t], A=node_names[a],
                               B=node_names[b], o=obj))
        return t

    pending = [new_leaf()]
    for j in range(n_steps):
        left = n_steps - j - 1  # steps after this one
        if len(pending) >= 2 and (len(pending) - 2 >= left or rng.random() < p_combine):
            t = combine(pending[-2], pending[-1])
            if t is not None:
                pending[-2:] = [t]
                continue
        if len(pending) <= left - 1 and rng.random() < p_branch:
            pending.append(unary(new_leaf()))
        elif rng.random() < p_leaf_combine and _combinable(values[pending[-1]], v := int(rng.integers(2, leaf_hi + 1)),
                                                          max_value):
            pending[-1] = combine(pending[-1], new_leaf(v))
        else:
            pending[-1] = unary(pending[-1])
    if len(pending) != 1:  # only when a forced combine was infeasible (equal large values): redraw
        return generate_problem(rng, n_steps, n_distractors=n_distractors, restate_prob=restate_prob,
                                p_branch=p_branch, p_combine=p_combine, p_leaf_combine=p_leaf_combine,
                                max_value=max_value, max_literal=max_literal)
    answer_node = pending[0]

    # Distractors: facts about new people, inserted after the sentence that introduces their referent
    # (gold node i is defined by sentence i: every node appends exactly one sentence when created).
    n_gold_sentences = len(sentences)
    distractors, text_sentences = [], list(sentences)
    inserts = []
    for _ in range(int(rng.integers(n_distractors[0], n_distractors[1] + 1))):
        d = new_node(0)
        if rng.random() < 0.5:
            values[d] = int(rng.integers(2, leaf_hi + 1))
            pos = int(rng.integers(0, n_gold_sentences + 1))
            sent = _fill(LEAF_TEMPLATES[rng.integers(2)], P=node_names[d], k=values[d], o=obj)
        else:
            ref = int(rng.integers(0, answer_node + 1))
            op = str(rng.choice([o for o in "+-" if lit(o, values[ref]) is not None]))
            k = lit(op, values[ref])
            values[d] = APPLY[op](values[ref], k)
            pos = int(rng.integers(ref + 1, n_gold_sentences + 1))
            sent = _fill(UNARY_TEMPLATES[op][0], P=node_names[d], A=node_names[ref], k=k, o=obj)
        distractors.append(d)
        inserts.append((pos, sent))
    for pos, sent in sorted(inserts, key=lambda x: -x[0]):
        text_sentences.insert(pos, sent)
    question = _question(node_names[answer_node])
    text = tuple(tok for s in text_sentences for tok in s) + question

    # Full-granularity gold decomposition: restating sub-questions before the first step reading the leaf.
    for si_, st in enumerate(steps):
        for kind, ref in (st.left, st.right):
            if kind == "node" and ref in leaves:
                first_use.setdefault(ref, si_)
    restate = {leaf for leaf in leaves if rng.random() < restate_prob}
    subqs = []
    for si_, st in enumerate(steps):
        for leaf in leaves:
            if leaf in restate and first_use.get(leaf) == si_:
                subqs.append(SubQ(_question(node_names[leaf]), (str(values[leaf]),), values[leaf], (), True))
        subqs.append(SubQ(_question(node_names[st.target]), _step_equation(st, values), st.value, (si_,)))
    return Problem(n_steps, dict(values), dict(node_names), tuple(leaves), tuple(steps), tuple(distractors), text,
                   question, tuple(subqs), values[answer_node], obj)


def _step_equation(st: Step, values: dict) -> tuple:
    a = values[st.left[1]] if st.left[0] == "node" else st.left[1]
    b = values[st.right[1]] if st.right[0] == "node" else st.right[1]
    return _eq(a, st.op, b, st.value)


def n_subquestions(problem: Problem) -> int:
    return len(problem.subqs)


def decompose(problem: Problem, eps: float) -> tuple[tuple, float]:
    """Gold decomposition at granularity ε ∈ [0, 1]: (sub-questions, realised ε = ñ / n_sub). See module doc."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps={eps!r} is invalid: expected a number in [0, 1]")
    n_sub = len(problem.subqs)
    keep = max(1, int(np.floor(eps * n_sub + 0.5)))
    restating = [i for i, q in enumerate(problem.subqs) if q.restate]
    n = problem.n_steps
    if keep >= n:
        drop = set(restating[keep - n:])  # keep the earliest restating sub-questions, drop the latest
        return tuple(q for i, q in enumerate(problem.subqs) if i not in drop), keep / n_sub
    out = []
    for group in np.array_split(np.arange(n), keep):
        sts = [problem.steps[int(i)] for i in group]
        sol = []
        for st in sts:
            sol += ([","] if sol else []) + list(_step_equation(st, problem.values))
        out.append(SubQ(_question(problem.names[sts[-1].target]), tuple(sol), sts[-1].value,
                        tuple(int(i) for i in group)))
    return tuple(out), keep / n_sub


def eps_token(eps: float) -> str:
    return EPS_TOKENS[int(np.floor(eps * 10 + 0.5))]


def make_split(seed: int, split: str, size: int, *, lengths: tuple | None = None, **kw) -> list:
    """`size` problems; chain lengths cycle through `lengths` (default: in-distribution 2..6, `ood` 7..8).

    Problem i depends only on (seed, split, i), so a prefix of a larger split is the same problems."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split={split!r} is invalid: expected one of {list(SPLIT_CODES)}")
    lengths = lengths or (OOD_LENGTHS if split == "ood" else IN_DIST_LENGTHS)
    return [generate_problem(np.random.default_rng([seed, SPLIT_CODES[split], i]), lengths[i % len(lengths)], **kw)
            for i in range(size)]


# ----------------------------------------------------------------------------------------------------- encoding

def encode(tokens) -> list:
    return [TOKEN_ID[t] for t in tokens]


def decode(ids) -> list:
    return [VOCAB[int(i)] for i in ids if int(i) != PAD]


def cot_tokens(problem: Problem) -> tuple[list, list]:
    """CoT sequence tokens and loss mask (1 on `s <ANS> c <EOS>`)."""
    (sq,), _ = decompose(problem, 0.0)
    prompt = ["<BOS>", "<COT>", *problem.text, "<SEP>"]
    target = [*sq.solution, "<ANS>", str(problem.answer), "<EOS>"]
    return prompt + target, [0] * len(prompt) + [1] * len(target)


def qd_tokens(problem: Problem, eps: float) -> tuple[list, list]:
    """Decomposition sequence at granularity ε; the loss covers the sub-questions and `<EOS>`."""
    subqs, real = decompose(problem, eps)
    prompt = ["<BOS>", "<QD>", eps_token(real), *problem.text, "<SEP>"]
    target = []
    for q in subqs:
        target += (["<QS>"] if target else []) + list(q.question)
    target.append("<EOS>")
    return prompt + target, [0] * len(prompt) + [1] * len(target)


def qa_prefix(problem: Problem) -> list:
    return ["<BOS>", "<QA>", *problem.text]


def qa_step_context(subqs, t: int, *, cgd: bool = True) -> list:
    """`<PRE> q_t <SUF> q_{t+1} <MID>` (`<END>` after the last); without CGD `<PRE> q_t <MID>`."""
    nxt = list(subqs[t + 1].question) if t + 1 < len(subqs) else ["<END>"]
    return ["<PRE>", *subqs[t].question] + (["<SUF>", *nxt] if cgd else []) + ["<MID>"]


def qa_tokens(problem: Problem, eps: float, *, cgd: bool = True) -> tuple[list, list, list]:
    """Packed QA sequence (all steps), loss mask, and the step index of each target token (-1 elsewhere)."""
    subqs, _ = decompose(problem, eps)
    toks, mask, step = qa_prefix(problem), [], []
    mask, step = [0] * len(toks), [-1] * len(toks)
    for t, q in enumerate(subqs):
        ctx = qa_step_context(subqs, t, cgd=cgd)
        if t:  # the `<PRE>` closing s_{t-1} (its stop token, a target of step t-1) opens step t
            ctx = ctx[1:]
        toks += ctx
        mask += [0] * len(ctx)
        step += [-1] * len(ctx)
        toks += list(q.solution) + ["<PRE>"]
        mask += [1] * (len(q.solution) + 1)
        step += [t] * (len(q.solution) + 1)
    toks[-1] = "<ANS>"
    toks += [str(problem.answer), "<EOS>"]
    mask += [1, 1]
    step += [-1, -1]
    return toks, mask, step


def pad(seqs, max_len: int, *, value: int = PAD) -> np.ndarray:
    """[batch, max_len] int32, right-padded; a sequence longer than max_len is an error, never truncated."""
    out = np.full((len(seqs), max_len), value, np.int32)
    for i, s in enumerate(seqs):
        if len(s) > max_len:
            raise ValueError(f"sequence {i} has {len(s)} tokens > max_len={max_len}; raise max_len")
        out[i, :len(s)] = s
    return out


def encode_batch(problems, task: str, *, max_len: int, eps: float = 1.0, cgd: bool = True) -> dict:
    """Task ∈ {cot, qd, qa} → {"ids", "loss_mask", "length"} with ids/loss_mask [batch, max_len] int32."""
    if task not in ("cot", "qd", "qa"):
        raise ValueError(f"task={task!r} is invalid: expected one of ['cot', 'qd', 'qa']")
    rows = [cot_tokens(p) if task == "cot" else qd_tokens(p, eps) if task == "qd" else qa_tokens(p, eps, cgd=cgd)[:2]
            for p in problems]
    return {"ids": pad([encode(t) for t, _ in rows], max_len), "loss_mask": pad([m for _, m in rows], max_len, value=0),
            "length": np.array([len(t) for t, _ in rows], np.int32)}


# ------------------------------------------------------------------------------------ decomposed inference helpers

def subquestion_target(problem: Problem, question) -> int | None:
    """The gold value a sub-question asks for (`how many does X have ?` names person X), None when it names nobody
    in the problem. Alignment of predicted and gold sub-questions is exact because each names its target quantity."""
    toks = [VOCAB[int(t)] if not isinstance(t, str) else t for t in question]
    by_name = {name: node for node, name in problem.names.items()}
    hits = [by_name[t] for t in toks if t in by_name]
    return problem.values[hits[-1]] if hits else None


def split_subquestions(tokens) -> list[tuple]:
    """Decomposition output (strings or ids, after `<SEP>`) -> sub-question token tuples, split at `<QS>`, up to
    `<EOS>`; empty pieces dropped."""
    toks = [VOCAB[int(t)] if not isinstance(t, str) else t for t in tokens]
    if "<EOS>" in toks:
        toks = toks[:toks.index("<EOS>")]
    out, cur = [], []
    for t in toks + ["<QS>"]:
        if t == "<QS>":
            if cur:
                out.append(tuple(cur))
            cur = []
        elif t != "<PAD>":
            cur.append(t)
    return out


def qd_prompt(problem: Problem, eps: float) -> list:
    """`<BOS> <QD> <EPS_x> p <SEP>` for a target granularity ε (rounded to the nearest 0.1)."""
    return ["<BOS>", "<QD>", eps_token(eps), *problem.text, "<SEP>"]


def cot_prompt(problem: Problem) -> list:
    return ["<BOS>", "<COT>", *problem.text, "<SEP>"]


def qa_chain(problem: Problem, questions, solutions, t: int, *, cgd: bool = True) -> list:
    """The packed QA prompt for step t (0-based) given sub-questions and the chosen sub-solutions of steps < t:
    `<BOS> <QA> p <PRE> q_1 <SUF> q_2 <MID> s_1 <PRE> … q_t <SUF> q_{t+1} <MID>` (the training layout's prefix)."""
    subqs = [SubQ(tuple(q), (), 0, ()) for q in questions]
    toks = qa_prefix(problem)
    for j in range(t):
        toks += qa_step_context(subqs, j, cgd=cgd) + list(solutions[j])
    return toks + qa_step_context(subqs, t, cgd=cgd)


def qa_chain_sequence(problem: Problem, questions, solutions, train_steps, *, cgd: bool = True) -> tuple[list, list]:
    """Tokens and loss mask of a sampled chain: the loss covers s_t and its stop token (`<PRE>`, or `<ANS>` after
    the last) for the steps t with `train_steps[t]` true (expert iteration's accepted steps)."""
    toks, mask = qa_chain(problem, questions, solutions, 0, cgd=cgd), []
    mask = [0] * len(toks)
    subqs = [SubQ(tuple(q), (), 0, ()) for q in questions]
    for t, sol in enumerate(solutions):
        w = int(bool(train_steps[t]))
        toks += list(sol) + ["<PRE>" if t + 1 < len(solutions) else "<ANS>"]
        mask += [w] * (len(sol) + 1)
        if t + 1 < len(solutions):
            ctx = qa_step_context(subqs, t + 1, cgd=cgd)[1:]
            toks += ctx
            mask += [0] * len(ctx)
    return toks, mask
