"""TOFU training and evaluation helpers (lib/unlearning_train.py, lib/tofu_eval.py) on a tiny random lib/transformer
model and synthetic TOFU-like data: fine-tuning lowers the answer NLL, unlearning lowers the forget log-prob,
evaluation plugs the model in."""

import math

import jax
import numpy as np
import pytest

from lib import losses, text, tofu_synth
from lib import tofu_metrics as M
from lib import unlearning_train as U
from lib.tofu_eval import evaluate_tofu, make_logprob_fn, make_scorer
from lib.transformer import TransformerConfig, forward, init_params


@pytest.fixture(scope="module")
def setup():
    d = tofu_synth.generate_tofu_like(0, n_authors=20, n_questions=4, n_real_authors=10, n_world_facts=10)
    tok = text.WordTokenizer.from_records([r for k in ("full", "forget10_perturbed", "retain_perturbed",
                                                       "real_authors_perturbed", "world_facts_perturbed", "pretrain")
                                           for r in d[k]] + [{"answer": s} for s in d["idontknow"]])
    cfg = TransformerConfig(vocab_size=len(tok), d_model=32, n_layers=1, n_heads=2, max_len=64)
    params = init_params(cfg, jax.random.key(0))
    full = d["full"]
    enc = text.encode_qa(tok, [r["question"] for r in full], [r["answer"] for r in full], max_len=48)
    assert enc["truncated"] == 0
    opt = U.make_optimizer(1e-2, total_steps=60, warmup_steps=5)
    step_fn = U.make_finetune_step(config=cfg, optimizer=opt)
    state = opt.init(params)
    losses_ = []
    for step in range(60):
        idx = U.batch_indices(len(full), 16, seed=step // 5)[step % 5]
        params, state, m = step_fn(params, state, U.take(enc, idx))
        losses_.append(float(m["loss"]))
    return {"data": d, "tok": tok, "cfg": cfg, "params": params, "ft_losses": losses_,
            "init": init_params(cfg, jax.random.key(0)), "scorer": make_scorer(cfg)}


def _enc(tok, recs, answers=None, max_len=48):
    return text.encode_qa(tok, [r["question"] for r in recs], answers or [r["answer"] for r in recs], max_len=max_len)


def test_finetune_lowers_answer_nll(setup):
    """60 AdamW steps on 80 QA: the answer-token NLL falls well below its start."""
    ls = setup["ft_losses"]
    assert math.log(setup["cfg"].vocab_size) - 1.0 < ls[0] < math.log(setup["cfg"].vocab_size) + 1.0
    assert np.mean(ls[-5:]) < 0.5 * np.mean(ls[:5]), (ls[:5], ls[-5:])


def test_npo_unlearning_lowers_forget_logprob(setup):
    """NPO+RT from θ = θ_ref: the first loss is (2/β)log 2 + retain CE, and the forget log-prob keeps falling."""
    tok, cfg, params, d = setup["tok"], setup["cfg"], setup["params"], setup["data"]
    forget = _enc(tok, d["forget10"])                      # 2 authors x 4 = 8 QA
    retain_recs = d["retain90"]
    pair = U.retain_pairing(len(d["forget10"]), len(retain_recs), seed=0)
    retain = _enc(tok, [retain_recs[i] for i in pair])
    opt = U.make_optimizer(1e-3, total_steps=10, schedule="constant")
    step = U.make_unlearn_step("npo_rt", {"beta": 0.1}, config=cfg, optimizer=opt)
    state = opt.init(params)
    p, logps, first = params, [], None
    for _ in range(10):
        p, state, m = step(p, params, state, forget, retain)
        first = first if first is not None else float(m["loss"])
        logps.append(float(m["forget_logp"]))
    rt = float(jax.jit(U.answer_nll, static_argnames="config")(params, {k: retain[k] for k in U.BATCH_KEYS},
                                                                config=cfg))
    assert first == pytest.approx(2 / 0.1 * math.log(2) + rt, rel=1e-4)
    assert all(b < a for a, b in zip(logps[:5], logps[1:5], strict=False)), logps
    assert logps[-1] < logps[0] - 10.0, logps


def _one_step(setup, method):
    tok, cfg, params, d = setup["tok"], setup["cfg"], setup["params"], setup["data"]
    recs = d["forget10"][:4]
    forget = _enc(tok, recs)
    idk = _enc(tok, recs, [d["idontknow"][i] for i in range(4)])
    retain = _enc(tok, d["retain90"][:4])
    opt = U.make_optimizer(1e-3, total_steps=1, schedule="constant")
    step = U.make_unlearn_step(method, None, config=cfg, optimizer=opt)
    p, _, m = step(params, params, opt.init(params), U.with_idk(forget, idk), retain)
    assert np.isfinite(float(m["loss"])), method
    assert float(jax.tree.reduce(lambda a, b: a + b, jax.tree.map(lambda x, y: abs(x - y).sum(), p, params))) > 0
    return forget, retain, opt


def test_donating_steps_match_the_undonated_ones(setup):
    """donate=True: the same new parameters and metrics as the undonated step, and the donated inputs are deleted
    (the reference model of an unlearning step is not)."""
    tok, cfg, params, d = setup["tok"], setup["cfg"], setup["params"], setup["data"]
    forget, retain = _enc(tok, d["forget10"][:4]), _enc(tok, d["retain90"][:4])
    opt = U.make_optimizer(1e-3, total_steps=1, schedule="constant")
    ft = lambda **k: U.make_finetune_step(config=cfg, optimizer=opt, **k)  # noqa: E731
    ul = lambda **k: U.make_unlearn_step("npo_rt", None, config=cfg, optimizer=opt, **k)  # noqa: E731
    copies = [jax.tree.map(lambda x: x.copy(), params) for _ in range(2)]
    pairs = [(ft()(params, opt.init(params), forget),
              ft(donate=True)(copies[0], opt.init(params), forget)),
             (ul()(params, params, opt.init(params), forget, retain),
              ul(donate=True)(copies[1], params, opt.init(params), forget, retain))]
    for want, got in pairs:
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)
    assert all(x.is_deleted() for c in copies for x in jax.tree.leaves(c))
    assert not any(x.is_deleted() for x in jax.tree.leaves(params))


def test_idk_dpo_step_and_errors(setup):
    """IdkDPO (the IDK batch inside the forget batch, reference log-probs of both) takes a finite step that moves
    the parameters; missing IDK answers and an unknown method raise clear errors."""
    forget, retain, opt = _one_step(setup, "dpo")
    params, cfg = setup["params"], setup["cfg"]
    with pytest.raises(ValueError, match="needs the IDK answers"):
        U.make_unlearn_step("dpo", None, config=cfg, optimizer=opt)(params, params, opt.init(params), forget, retain)
    with pytest.raises(ValueError, match=r"method='npo-rt' is invalid: expected one of"):
        U.make_unlearn_step("npo-rt", None, config=cfg, optimizer=opt)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ga", "gd", "kl", "idk", "npo", "npo_kl", "dpo_rt", "simnpo", "simnpo_rt"])
def test_other_methods_step(setup, method):
    """Each remaining method takes one finite jitted step on the tiny model (one compilation each: slow)."""
    _one_step(setup, method)


def test_logprob_fn_matches_unpadded_forward_and_evaluate_tofu(setup):
    """make_logprob_fn (bucketed, batched) equals a single unpadded forward; evaluate_tofu returns FQ/MU with the
    model against itself at FQ = 1."""
    tok, cfg, params, d = setup["tok"], setup["cfg"], setup["params"], setup["data"]
    fn = make_logprob_fn(params, cfg, tok, batch_size=8)
    recs = [d["forget10_perturbed"][1], d["forget10_perturbed"][0]]  # answers of 13 and 4 tokens
    qs, ans = [r["question"] for r in recs], [r["paraphrased_answer"] for r in recs]
    sums, counts = fn(qs, ans)
    e = text.encode_qa(tok, qs, ans)  # padded to the longer row only, no attention mask
    logits = forward(params, e["input_ids"], config=cfg)["logits"]
    np.testing.assert_allclose(sums, losses.sequence_logps(logits, e["labels"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(counts, [len(tok.encode(a)) + 1 for a in ans])
    assert counts[0] != counts[1]
    data = {"forget": d["forget10_perturbed"], "retain": d["retain_perturbed"],
            "real_authors": d["real_authors_perturbed"], "world_facts": d["world_facts_perturbed"]}
    scorer = setup["scorer"]
    out = evaluate_tofu(params, cfg, data, tokenizer=tok, batch_size=16, scorer=scorer)
    again = evaluate_tofu(params, cfg, data, out["splits"]["forget"]["truth_ratios"], tokenizer=tok,
                          batch_size=16, generate=False, scorer=scorer)
    assert again["forget_quality"] == 1.0 and again["model_utility"] is None
    assert 0 <= out["model_utility"] <= 1 and set(out["mu_parts"]) == set(M.MU_KEYS)
    assert all(isinstance(g, str) for g in out["splits"]["forget"]["generations"])
    # fine-tuning raised ROUGE-L recall and probability on the (trained) retain authors' answers
    init = evaluate_tofu(setup["init"], cfg, data, tokenizer=tok, batch_size=16, scorer=scorer)
    assert out["mu_parts"]["retain/rougeL_recall"] > init["mu_parts"]["retain/rougeL_recall"] + 0.05
    assert out["mu_parts"]["retain/prob"] > 2 * init["mu_parts"]["retain/prob"]
