"""Checking model outputs in the arithmetic domain of `lib/arith_domain.py`: parsing sub-solutions and final
answers, the oracle step verifier, first-error (PRM) labels, the deliberately hackable verifier of the A4 stress test,
and the ORM/PRM loss masks over sampled chain-of-thought traces. Pure Python; tokens may be strings or vocabulary
ids."""

from __future__ import annotations

from lib.arith_domain import APPLY, TOKEN_ID, VOCAB, Problem


def _num(tok):
    return int(tok) if tok in TOKEN_ID and tok.isdigit() else None


def parse_solution(tokens) -> tuple[list, int | None]:
    """Sub-solution tokens (strings or ids, up to the first delimiter) -> (equations (a, op, b, c), answer).

    The answer is the last number; a malformed chunk (not `NUM`, nor `NUM OP NUM = NUM`) gives answer None."""
    toks = [VOCAB[int(t)] if not isinstance(t, str) else t for t in tokens]
    for stop in ("<PRE>", "<ANS>", "<EOS>", "<PAD>", "<SEP>", "<QS>"):
        if stop in toks:
            toks = toks[:toks.index(stop)]
    eqs, chunks, cur = [], [], []
    for t in toks:
        if t == ",":
            chunks.append(cur)
            cur = []
        else:
            cur.append(t)
    chunks.append(cur)
    for c in chunks:
        if len(c) == 1 and _num(c[0]) is not None and len(chunks) == 1:
            return [], _num(c[0])
        bad_shape = len(c) != 5 or c[1] not in ("+", "-", "*", "/") or c[3] != "="
        if bad_shape or None in (_num(c[0]), _num(c[2]), _num(c[4])):
            return eqs, None
        eqs.append((_num(c[0]), c[1], _num(c[2]), _num(c[4])))
    return eqs, eqs[-1][3]


def equation_valid(a: int, op: str, b: int, c: int) -> bool:
    """Arithmetic truth of `a op b = c` (÷ must be exact)."""
    r = APPLY[op](a, b)
    return r is not None and r == c


def subanswer_correct(solution, gold: int) -> bool:
    """The oracle step verifier: extracted sub-answer equals the gold sub-answer (malformed = wrong)."""
    return parse_solution(solution)[1] == gold


def first_error(pred_answers, gold_answers) -> int:
    """Index of the first wrong/missing/extra sub-answer; -1 when the chain matches exactly."""
    for t, g in enumerate(gold_answers):
        if t >= len(pred_answers) or pred_answers[t] != g:
            return t
    return -1 if len(pred_answers) == len(gold_answers) else len(gold_answers)


def cot_first_error(solution, problem: Problem) -> int:
    """First-error index over the equations of a CoT trace (oracle PRM labels): an equation is wrong if its
    arithmetic is false or its result differs from the gold step value at that position; -1 if all right."""
    eqs, ans = parse_solution(solution)
    pred = [c if equation_valid(a, op, b, c) else None for a, op, b, c in eqs]
    if ans is None:
        pred.append(None)  # the malformed chunk is the error
    return first_error(pred, [st.value for st in problem.steps])


def final_answer(tokens) -> int | None:
    """The number after the first `<ANS>` (strings or ids); None if absent or not a number."""
    toks = [VOCAB[int(t)] if not isinstance(t, str) else t for t in tokens]
    if "<ANS>" not in toks:
        return None
    i = toks.index("<ANS>")
    return _num(toks[i + 1]) if i + 1 < len(toks) else None


def final_answer_correct(tokens, problem: Problem) -> bool:
    return final_answer(tokens) == problem.answer


def text_numbers(problem: Problem) -> set:
    return {_num(t) for t in problem.text if _num(t) is not None}


def hackable_check(solution, problem: Problem) -> bool:
    """A deliberately hackable step verifier (spec A4 stress test): accepts any arithmetically valid equation
    chain whose first operand appears in the problem text, regardless of the sub-question asked."""
    eqs, ans = parse_solution(solution)
    return ans is not None and bool(eqs) and all(equation_valid(*e) for e in eqs) and eqs[0][0] in text_numbers(problem)


def cot_trace_mask(solution, problem: Problem, mode: str) -> list:
    """Loss mask over a sampled CoT trace (tokens up to and including its stop): `orm` = all of it iff the final
    answer is right; `prm` = the equations before the first error (oracle first-error label) with their commas,
    all of it when there is no error."""
    toks = [VOCAB[int(t)] if not isinstance(t, str) else t for t in solution]
    if mode == "orm":
        return [int(final_answer_correct(toks, problem))] * len(toks)
    if mode != "prm":
        raise ValueError(f"mode={mode!r} is invalid: expected 'orm' or 'prm'")
    sep = toks.index("<ANS>") if "<ANS>" in toks else len(toks)
    e = cot_first_error(toks[:sep], problem)
    if e == -1 and final_answer_correct(toks, problem):
        return [1] * len(toks)
    mask, chunk = [], 0
    for tok in toks:
        mask.append(int(chunk < e))
        if tok == ",":
            chunk += 1
    return mask
