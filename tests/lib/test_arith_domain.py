"""Tests for lib/arith_domain.py: the seeded arithmetic word-problem domain of AutoPRM."""

import numpy as np
import pytest

from lib import arith_checks as checks
from lib import arith_domain as ad

PROBLEMS = ad.make_split(0, "train", 300)
OOD = ad.make_split(0, "ood", 60)


def _eval_program(p):
    """Evaluate the gold program from the stated leaves only, independently of the stored step values."""
    env = {leaf: p.values[leaf] for leaf in p.leaves}
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for st in p.steps:
        a, b = ((env[ref] if kind == "node" else ref) for kind, ref in (st.left, st.right))
        env[st.target] = ops[st.op](a, b)
    return env, env[p.steps[-1].target]


def test_deterministic_per_seed_and_prefix_stable():
    """Same (seed, split) gives identical problems; a prefix of a bigger split is the same problems."""
    a, b = ad.make_split(7, "train", 20), ad.make_split(7, "train", 40)[:20]
    assert [p.text for p in a] == [p.text for p in b] and [p.subqs for p in a] == [p.subqs for p in b]
    c = ad.make_split(8, "train", 20)
    assert sum(x.text == y.text for x, y in zip(a, c, strict=True)) == 0


def test_splits_disjoint_streams():
    """Train and test draw from different streams: (almost) no shared problem texts."""
    test = {p.text for p in ad.make_split(0, "test", 300)}
    assert sum(p.text in test for p in PROBLEMS) <= 3


def test_gold_program_evaluates_to_answer_and_in_range():
    """Re-evaluating the program from its leaves gives every step value and the final answer; values in 1..99."""
    for p in PROBLEMS + OOD:
        env, ans = _eval_program(p)
        assert ans == p.answer
        for st in p.steps:
            assert env[st.target] == st.value and float(st.value).is_integer()
            assert 1 <= st.value <= ad.MAX_VALUE
        assert all(1 <= v <= ad.MAX_VALUE for v in p.values.values())


def test_every_step_contributes():
    """Every step result except the last is read by a later step; every leaf is read by some step."""
    for p in PROBLEMS:
        read = {ref for st in p.steps for kind, ref in (st.left, st.right) if kind == "node"}
        assert {st.target for st in p.steps[:-1]} <= read
        assert set(p.leaves) <= read


def test_sub_solutions_follow_the_grammar_and_answers():
    """Each gold sub-solution parses, is arithmetically true, and its last number is the gold sub-answer."""
    for p in PROBLEMS:
        for q in p.subqs:
            eqs, ans = checks.parse_solution(q.solution)
            assert ans == q.answer and checks.subanswer_correct(q.solution, q.answer)
            assert all(checks.equation_valid(*e) for e in eqs)
            assert q.restate == (not q.steps) and (len(eqs) == 0) == q.restate
        assert p.subqs[-1].answer == p.answer and p.subqs[-1].question == p.question


def test_single_token_numbers_and_vocab():
    """Every problem, sub-question and sub-solution token is in the vocabulary; numbers are one token each."""
    assert len(ad.VOCAB) == len(set(ad.VOCAB)) < 256
    assert all(ad.TOKEN_ID[str(v)] == ad.NUM0 + v for v in range(100))
    for p in PROBLEMS[:50]:
        for seq in (p.text, *(q.question for q in p.subqs), *(q.solution for q in p.subqs)):
            assert all(t in ad.TOKEN_ID for t in seq)


def test_distractors_never_used_by_gold_program():
    """Distractor people are never step operands nor targets, yet do appear in the text; some problems have them."""
    n_with = 0
    for p in PROBLEMS:
        nodes = {ref for st in p.steps for kind, ref in (st.left, st.right) if kind == "node"}
        nodes |= {st.target for st in p.steps}
        assert not nodes & set(p.distractors)
        assert all(p.names[d] in p.text for d in p.distractors)
        assert not {p.names[d] for d in p.distractors} & {p.names[n] for n in nodes}
        n_with += bool(p.distractors)
    assert n_with > len(PROBLEMS) / 3


def test_difficulty_knobs_shrink_ranges():
    """max_value / max_literal bound every value and every literal; bad values fail naming them."""
    for i in range(40):
        p = ad.generate_problem(np.random.default_rng(i), 6, max_value=30, max_literal=5)
        assert max(p.values.values()) <= 30 and _eval_program(p)[1] == p.answer
        assert all(st.right[1] <= 9 for st in p.steps if st.right[0] == "lit")
        assert all(st.right[1] <= 5 for st in p.steps if st.right[0] == "lit" and st.op in "+-")
    with pytest.raises(ValueError, match="max_value"):
        ad.generate_problem(np.random.default_rng(0), 3, max_value=200)


def test_no_distractors_when_disabled():
    """n_distractors=(0, 0) gives none."""
    p = ad.generate_problem(np.random.default_rng(3), 5, n_distractors=(0, 0))
    assert p.distractors == ()


def test_restating_subquestions_add_no_new_number():
    """A restating sub-question's answer is a number stated in the problem text."""
    found = 0
    for p in PROBLEMS:
        for q in p.subqs:
            if q.restate:
                found += 1
                assert q.answer in checks.text_numbers(p)
    assert found > 50


def test_granularity_eps_one_zero_and_between():
    """ε=1 is the full decomposition; ε=0 one sub-question (the question) holding the whole chain; ñ=round(ε n)."""
    for p in PROBLEMS[:100]:
        full, r1 = ad.decompose(p, 1.0)
        assert full == p.subqs and r1 == 1.0
        (one,), r0 = ad.decompose(p, 0.0)
        assert one.question == p.question and one.answer == p.answer
        eqs, _ = checks.parse_solution(one.solution)
        assert [e[3] for e in eqs] == [st.value for st in p.steps]
        n_sub = len(p.subqs)
        for eps in (0.2, 0.4, 0.6, 0.8):
            subqs, real = ad.decompose(p, eps)
            assert len(subqs) == max(1, int(np.floor(eps * n_sub + 0.5))) and real == len(subqs) / n_sub
            if len(subqs) < n_sub:  # restating ones go first
                assert sum(q.restate for q in subqs) <= sum(q.restate for q in p.subqs)
            if len(subqs) <= p.n_steps:
                assert not any(q.restate for q in subqs)
                # merged groups cover every step exactly once, in order, and end with the final answer
                assert [i for q in subqs for i in q.steps] == list(range(p.n_steps))
            assert subqs[-1].answer == p.answer
            for q in subqs:
                assert checks.parse_solution(q.solution)[1] == q.answer


def test_granularity_monotone_and_bad_eps():
    """The number of sub-questions never decreases in ε; ε outside [0, 1] fails naming the field."""
    p = PROBLEMS[4]
    counts = [len(ad.decompose(p, e)[0]) for e in np.linspace(0, 1, 11)]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == len(p.subqs)
    with pytest.raises(ValueError, match="eps"):
        ad.decompose(p, 1.5)
    assert ad.eps_token(0.84) == "<EPS_0.8>" and ad.eps_token(0.0) == "<EPS_0.0>"


def test_ood_split_lengths_disjoint_and_stratified():
    """In-distribution lengths are 2..6 (each equally often), OOD lengths 7..8: disjoint sets."""
    train = [p.n_steps for p in PROBLEMS]
    assert set(train) == set(ad.IN_DIST_LENGTHS) and set(p.n_steps for p in OOD) == set(ad.OOD_LENGTHS)
    assert not set(train) & set(ad.OOD_LENGTHS)
    assert max(np.bincount(train)[2:]) - min(np.bincount(train)[2:]) <= 1
    assert all(len(p.steps) == p.n_steps for p in PROBLEMS + OOD)
    with pytest.raises(ValueError, match="split"):
        ad.make_split(0, "dev", 3)


def test_encode_decode_round_trip():
    """encode/decode invert each other on every task's sequence; padding decodes to nothing."""
    for p in PROBLEMS[:30]:
        for toks, _ in (ad.cot_tokens(p), ad.qd_tokens(p, 0.8), ad.qa_tokens(p, 1.0)[:2]):
            assert ad.decode(ad.encode(toks)) == toks
    batch = ad.encode_batch(PROBLEMS[:8], "qa", max_len=400, eps=0.6)
    assert batch["ids"].shape == (8, 400) and batch["ids"].dtype == np.int32
    for row, n, p in zip(batch["ids"], batch["length"], PROBLEMS[:8], strict=True):
        assert ad.decode(row) == ad.qa_tokens(p, 0.6)[0] and (row[n:] == ad.PAD).all()


def test_task_layouts_and_loss_masks():
    """Task tokens, ε token, CGD segments and loss masks sit where the module doc says."""
    p = PROBLEMS[11]
    toks, mask = ad.cot_tokens(p)
    assert toks[:2] == ["<BOS>", "<COT>"] and toks[-3:] == ["<ANS>", str(p.answer), "<EOS>"]
    assert checks.final_answer(toks) == p.answer and checks.final_answer_correct(toks, p)
    assert toks[mask.index(1) - 1] == "<SEP>" and all(mask[mask.index(1):])
    toks, mask = ad.qd_tokens(p, 0.8)
    assert toks[2] == ad.eps_token(ad.decompose(p, 0.8)[1])
    assert toks.count("<QS>") == len(ad.decompose(p, 0.8)[0]) - 1
    toks, mask, step = ad.qa_tokens(p, 1.0)
    T = len(p.subqs)
    assert toks.count("<PRE>") == T and toks.count("<SUF>") == T and toks.count("<END>") == 1
    for t, q in enumerate(p.subqs):  # the targets of step t are its sub-solution and its stop token
        target = [tok for tok, s in zip(toks, step, strict=True) if s == t]
        assert target == list(q.solution) + (["<PRE>"] if t < T - 1 else ["<ANS>"])
    assert sum(mask) == sum(len(q.solution) + 1 for q in p.subqs) + 2
    assert all(m == 0 for tok, m in zip(toks, mask, strict=True) if tok in ("<SUF>", "<MID>", "<QA>"))
    no_cgd, _, _ = ad.qa_tokens(p, 1.0, cgd=False)
    assert "<SUF>" not in no_cgd and "<END>" not in no_cgd
    assert [t for t in no_cgd if t.isdigit()] == [t for t in toks if t.isdigit()]


def test_pad_refuses_to_truncate_and_bad_task():
    """Too-long sequences and unknown tasks fail with the field named."""
    with pytest.raises(ValueError, match="max_len"):
        ad.encode_batch(PROBLEMS[:2], "qa", max_len=20)
    with pytest.raises(ValueError, match="task"):
        ad.encode_batch(PROBLEMS[:2], "vqa", max_len=400)
    with pytest.raises(ValueError, match="n_steps"):
        ad.generate_problem(np.random.default_rng(0), 9)


def test_checkers_catch_planted_errors():
    """A wrong result, false arithmetic, malformed tokens, missing and extra steps are all caught."""
    p = next(q for q in PROBLEMS if q.n_steps >= 4)
    (one,), _ = ad.decompose(p, 0.0)
    sol = list(one.solution)
    assert checks.cot_first_error(sol, p) == -1 and checks.cot_first_error(ad.encode(sol), p) == -1
    # plant a wrong result at step 2: equation j is 'a op b = c' at tokens 6j..6j+4
    planted = list(sol)
    planted[16] = str((int(planted[16]) + 1) % 100)
    assert checks.cot_first_error(planted, p) == 2
    # a true equation with the wrong operand (as if the wrong fact was read) is also an error at step 1
    a, op, b, c = checks.parse_solution(sol)[0][1]
    swapped = sol[:6] + [str(b + 1), "+", str(b), "=", str(2 * b + 1)] + sol[11:]
    assert 2 * b + 1 != c and checks.cot_first_error(swapped, p) == 1
    wrong_op = list(sol)
    wrong_op[1] = {"+": "-", "-": "+", "*": "+", "/": "*"}[sol[1]]
    assert checks.cot_first_error(wrong_op, p) == 0
    assert checks.cot_first_error(sol[:-6], p) == p.n_steps - 1  # last equation missing
    assert checks.cot_first_error(sol + [",", "1", "+", "1", "=", "2"], p) == p.n_steps  # an extra step
    assert checks.cot_first_error(sol[:3], p) == 0  # malformed first chunk
    step_q = next(q for q in p.subqs if not q.restate)
    assert checks.subanswer_correct(step_q.solution, step_q.answer)
    assert not checks.subanswer_correct(list(step_q.solution[:-1]) + [str((step_q.answer + 1) % 100)], step_q.answer)
    assert not checks.subanswer_correct(["how", "many"], step_q.answer)
    assert checks.parse_solution(list(step_q.solution) + ["<PRE>", "7"])[1] == step_q.answer  # stops at the delimiter
    gold = [q.answer for q in p.subqs]
    assert checks.first_error(gold, gold) == -1 and checks.first_error(gold[:1] + [-5] + gold[2:], gold) == 1
    assert checks.final_answer(["<ANS>", "x"]) is None and checks.final_answer(["5"]) is None
    assert not checks.final_answer_correct(["<ANS>", str((p.answer + 1) % 100)], p)


def test_hackable_verifier_accepts_off_target_steps():
    """The hackable checker accepts a true equation on text numbers that answers the wrong sub-question."""
    p = next(q for q in PROBLEMS if q.n_steps >= 3)
    first = p.subqs[0] if not p.subqs[0].restate else p.subqs[1]
    a = checks.parse_solution(first.solution)[0][0][0]
    off = [str(a), "+", "1", "=", str(a + 1)]
    assert checks.hackable_check(off, p) and checks.hackable_check(first.solution, p)
    assert not checks.hackable_check([str(a), "+", "1", "=", str(a + 2)], p)


def test_decomposed_inference_helpers_match_training_layout():
    """qa_chain is the packed QA sequence's prefix; qa_chain_sequence with every step kept is the gold packed sequence
    (its loss mask included); sub-question targets and QD parsing recover the gold decomposition."""
    p = ad.make_split(0, "train", 4, lengths=(4,))[1]
    for cgd in (True, False):
        subqs, _ = ad.decompose(p, 1.0)
        qs, sols = [q.question for q in subqs], [q.solution for q in subqs]
        toks, mask, _ = ad.qa_tokens(p, 1.0, cgd=cgd)
        seq, m = ad.qa_chain_sequence(p, qs, sols, [True] * len(qs), cgd=cgd)
        assert seq == toks[:len(seq)] and m == mask[:len(m)] and toks[len(seq):] == [str(p.answer), "<EOS>"]
        prompt = ad.qa_chain(p, qs, sols, 2, cgd=cgd)
        assert toks[:len(prompt)] == prompt and prompt[-1] == "<MID>"
        _, m_none = ad.qa_chain_sequence(p, qs, sols, [True, False] + [True] * (len(qs) - 2), cgd=cgd)
        assert 0 < sum(m_none) < sum(m)
    assert [ad.subquestion_target(p, q.question) for q in subqs] == [q.answer for q in subqs]
    assert ad.subquestion_target(p, ("how", "many", "?")) is None
    qd, qd_mask = ad.qd_tokens(p, 1.0)
    assert ad.split_subquestions(qd[qd_mask.index(1):]) == qs
    assert ad.qd_prompt(p, 1.0) == qd[:qd_mask.index(1)]


def test_cot_trace_masks_orm_and_prm():
    """ORM keeps a trace iff its final answer is right; PRM keeps the equations before the oracle's first error."""
    p = ad.make_split(0, "train", 4, lengths=(3,))[2]
    (sq,), _ = ad.decompose(p, 0.0)
    gold = list(sq.solution) + ["<ANS>", str(p.answer), "<EOS>"]
    assert checks.cot_trace_mask(gold, p, "orm") == [1] * len(gold) == checks.cot_trace_mask(gold, p, "prm")
    bad = list(gold)
    comma = bad.index(",")
    bad[comma + 5] = str((int(bad[comma + 5]) + 1) % 50)  # the second equation's result is wrong
    assert checks.cot_trace_mask(bad, p, "orm") == [1] * len(bad)  # the outcome label cannot see the wrong step
    wrong_final = gold[:-2] + [str((p.answer + 1) % 50), "<EOS>"]
    assert checks.cot_trace_mask(wrong_final, p, "orm") == [0] * len(gold)
    prm = checks.cot_trace_mask(bad, p, "prm")
    assert prm[:comma + 1] == [1] * (comma + 1) and not any(prm[comma + 1:])
