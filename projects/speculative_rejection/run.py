"""speculative_rejection: Best-of-N against Speculative Rejection on the Topic-Keyword Language (spec §5).

Flow of one run (every stage resumes from the workdir):
  1. train the generator LM on the TKL corpus (`models.train_generator`, orbax checkpoints);
  2. sample complete responses from it, score them with the gold reward, train the reward model on them
     (`models.rm_dataset`, `models.train_reward_model`);
  3. per prompt (one prompt at a time, as the official code): N0·32 Best-of-N samples once (Best-of-N for
     every N is read off them by order statistics), Speculative Rejection for every α with the same per-row
     random numbers (so its candidates are Best-of-b0's samples), partial/final correlations; each prompt's
     record is written atomically to `prompts/<j>.json`;
  4. a second, compiled pass over `wall_prompts` prompts for CPU wall time;
  5. metrics (improvement score, relative compute under FLOPs / simulated accelerator / CPU wall time,
     speedup at equal score, gold reward and gold win rate), claims and plots.

Importable pieces: `validate`, `language`, `prompts`, `evaluate_prompt`, `aggregate`, `train_and_evaluate`.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from scipy import stats

from harness import outputs, validation
from lib import compute_cost, decoding, transformer
from lib.metrics import read_json, read_jsonl, write_json_atomic
from projects.speculative_rejection import claims as claims_lib
from projects.speculative_rejection import evaluation, models, plots, real, self_reward, tkl


def validate(config) -> None:
    """Every field the run reads, checked before anything runs (harness/validation.py)."""
    v = validation
    v.require_choice(config, "preset", ["smoke", "quick", "paper"])
    v.require_int(config, "seed", min_value=0)
    T = v.require_int(config, "max_new_tokens", min_value=4)
    for part in ("generator", "reward_model"):
        d = v.require_int(config, f"{part}.d_model", min_value=1)
        h = v.require_int(config, f"{part}.n_heads", min_value=1)
        v.require(d % h == 0, f"{part}.n_heads", h, f"a divisor of {part}.d_model={d}")
        v.require_int(config, f"{part}.n_layers", min_value=1)
        v.require_int(config, f"{part}.train.steps", min_value=1)
        v.require_int(config, f"{part}.train.batch_size", min_value=1)
        v.require_int(config, f"{part}.train.log_every", min_value=1)
        v.require_float(config, f"{part}.train.learning_rate", min_value=0.0, strict=True)
        v.require_float(config, f"{part}.train.weight_decay", min_value=0.0)
    v.require_int(config, "reward_model.num_samples", min_value=2)
    v.require_int(config, "reward_model.samples_per_prompt", min_value=1)
    for f in ("append_eos", "init_from_generator"):
        flag = config.reward_model[f]
        v.require(isinstance(flag, bool), f"reward_model.{f}", flag, "True or False")
    if config.reward_model.init_from_generator:
        for f in ("d_model", "n_layers", "n_heads"):
            v.require(config.reward_model[f] == config.generator[f], f"reward_model.{f}", config.reward_model[f],
                      f"the generator's {f}={config.generator[f]} (reward_model.init_from_generator=True)")
    lc = config.language
    for f in ("z_a", "z_b"):  # the skill's Beta(z_a, z_b) parameters
        v.require_float(config, f"language.{f}", min_value=0.0, strict=True)
    for f in ("epsilon", "p_stay", "hazard_before", "hazard_lo", "hazard_hi"):
        v.require_probability(config, f"language.{f}")
    v.require(lc.hazard_lo <= lc.hazard_hi, "language.hazard_lo", lc.hazard_lo, f"<= language.hazard_hi={lc.hazard_hi}")
    v.require_int(config, "language.grammar_seed", min_value=0)
    v.require_int(config, "experiment.num_prompts", min_value=1)
    v.require_int(config, "experiment.prompt_seed", min_value=0)
    n0 = v.require_int(config, "experiment.device_batch", min_value=2)
    mult = v.require_sequence(config, "experiment.bon_multiples", item_ok=lambda k: isinstance(k, int) and k >= 1,
                              item_desc="integers >= 1")
    v.require(list(mult) == sorted(set(mult)) and mult[0] == 1 and len(mult) >= 2, "experiment.bon_multiples", mult,
              "an increasing sequence of at least two integers starting at 1 (N = N0·k)")
    v.require_sequence(config, "experiment.alphas", item_ok=lambda a: isinstance(a, (int, float)) and 0 <= a < 1,
                       item_desc="rejection rates in [0, 1)")
    v.require_int(config, "experiment.b_cap_multiple", min_value=1)
    tau = v.require_int(config, "experiment.tau_min", min_value=1)
    v.require(tau < T, "experiment.tau_min", tau, f"< max_new_tokens={T}")
    v.require_int(config, "experiment.bucket", min_value=1)
    v.require(isinstance(config.experiment.reprefill, bool), "experiment.reprefill", config.experiment.reprefill,
              "True (re-prefill survivors, as the official code) or False (gather their KV rows)")
    v.require_choice(config, "experiment.rank_pool", list(decoding.RANK_POOLS))
    v.require_float(config, "experiment.temperature", min_value=0.0, strict=True)
    real_mode = config.real.enabled
    v.require(isinstance(real_mode, bool), "real.enabled", real_mode, "True or False")
    self_mode = config.self_reward.enabled
    v.require(isinstance(self_mode, bool), "self_reward.enabled", self_mode, "True or False")
    v.require(not (real_mode and self_mode), "self_reward.enabled", self_mode, "False when real.enabled=True")
    v.require_int(config, "experiment.top_k", min_value=0,
                  max_value=None if real_mode or self_mode else tkl.VOCAB)  # 0 = off
    v.require_int(config, "experiment.wall_prompts", min_value=0)
    v.require_int(config, "experiment.correlation_prompts", min_value=0)
    v.require_sequence(config, "experiment.correlation_taus", item_ok=lambda t: isinstance(t, int) and 1 <= t <= T,
                       item_desc=f"integers in [1, max_new_tokens={T}]")
    b0 = self_reward.b0_bound(config) if self_mode else b0_of(config)
    v.require(b0 <= n0 * mult[-1], "experiment.bon_multiples", mult,
              f"a largest N = N0·k of at least Speculative Rejection's b0 = {b0}, so its samples are "
              "Best-of-N's (common random numbers)")
    for f in ("paper_max_new_tokens", "paper_device_batch"):
        v.require_int(config, f"cost.{f}", min_value=1)
    for f in ("weight_bytes_gen", "weight_bytes_rm", "params_gen", "params_rm", "kv_bytes_per_token", "bandwidth",
              "flops_per_s"):
        v.require_float(config, f"cost.{f}", min_value=0.0, strict=f in ("bandwidth", "flops_per_s"))
    if real_mode:
        real.validate(config)
    if self_mode:
        self_reward.validate(config)


def memory_slots(config) -> int:
    """M = N0·(prompt + T_max): the KV slots one Best-of-N device fills with N0 full-length rows."""
    return config.experiment.device_batch * (tkl.PROMPT_LEN + config.max_new_tokens)


def b0_of(config) -> int:
    e = config.experiment
    return min(e.b_cap_multiple * e.device_batch, memory_slots(config) // (tkl.PROMPT_LEN + e.tau_min))


def language(config) -> tkl.Language:
    return tkl.Language(**config.language.to_dict(), max_new_tokens=config.max_new_tokens)


def prompts(config) -> np.ndarray:
    return tkl.sample_prompts(config.experiment.num_prompts, np.random.default_rng(config.experiment.prompt_seed))


def response_lengths(tokens: np.ndarray) -> np.ndarray:
    """New tokens per response, EOS included (the whole row when it never emits EOS)."""
    tokens = np.asarray(tokens)
    has = (tokens == tkl.EOS).any(1)
    return np.where(has, np.argmax(tokens == tkl.EOS, axis=1) + 1, (tokens != tkl.PAD).sum(1))


class Setup:
    """Everything a prompt's evaluation needs: trained models, cost models, the language."""

    def __init__(self, config, gen_params, gen_mc, rm_params, rm_mc):
        self.config, self.lang = config, language(config)
        self.gen_params, self.gen_mc, self.rm_params, self.rm_mc = gen_params, gen_mc, rm_params, rm_mc
        dims = lambda p, mc: compute_cost.ModelDims(
            params_nonemb=float(transformer.count_params(p) - p["embed"]["embedding"].size
                                - p.get("pos_embed", {}).get("embedding", np.zeros(0)).size),
            d_model=mc.d_model, n_layers=mc.n_layers, vocab=mc.vocab_size)
        self.gen_dims, self.rm_dims = dims(gen_params, gen_mc), dims(rm_params, rm_mc)
        cc = config.cost
        self.hw = compute_cost.Roofline(
            weight_bytes_gen=cc.weight_bytes_gen, weight_bytes_rm=cc.weight_bytes_rm, params_gen=cc.params_gen,
            params_rm=cc.params_rm, kv_bytes_per_token=cc.kv_bytes_per_token, bandwidth=cc.bandwidth,
            flops_per_s=cc.flops_per_s)
        self.scale = dict(length_scale=cc.paper_max_new_tokens / config.max_new_tokens,
                          batch_scale=cc.paper_device_batch / config.experiment.device_batch)

    def rm_scores(self, prompt, responses, *, append_eos: bool) -> np.ndarray:
        seq, mask = models.rm_inputs(prompt, responses, append_eos=append_eos)
        out = [models.score_padded(self.rm_params, seq[i:i + 512], mask[i:i + 512], mc=self.rm_mc)
               for i in range(0, len(seq), 512)]
        return np.concatenate(out)

    def score_fn(self, prompt):
        """Speculative Rejection's scorer: a prefix is scored as if complete (EOS appended when
        `reward_model.append_eos`); a row at T_max or finished is scored as a complete response."""
        T = self.config.max_new_tokens

        def fn(seq, mask, row_ids):
            seq, mask = np.asarray(seq), np.asarray(mask)
            resp = np.where(mask[:, tkl.PROMPT_LEN:] > 0, seq[:, tkl.PROMPT_LEN:], tkl.PAD)
            complete = resp.shape[1] >= T
            return self.rm_scores(prompt, resp, append_eos=self.config.reward_model.append_eos and not complete)

        return fn

    def sample(self, prompt, key, n: int) -> np.ndarray:
        e = self.config.experiment
        return np.asarray(models.sample_responses(
            self.gen_params, jax.numpy.asarray(prompt[None]), key, mc=self.gen_mc, n=n,
            max_new_tokens=self.config.max_new_tokens, temperature=e.temperature, top_k=e.top_k))

    def spr(self, prompt, key, alpha: float) -> dict:
        return decoding.speculative_rejection(
            self.gen_params, prompt, key, config=self.gen_mc, score_fn=self.score_fn(prompt), alpha=alpha,
            memory_slots=memory_slots(self.config), max_new_tokens=self.config.max_new_tokens, eos_id=tkl.EOS,
            pad_id=tkl.PAD, cost=dict(gen=self.gen_dims, rm=self.rm_dims, hw=self.hw, **self.scale),
            **evaluation.spr_options(self.config))

    def spr_cost(self, res: dict) -> dict:
        """FLOPs count the bucketed (computed) rows; the simulated accelerator sees the real rows."""
        return {"flops": res["flops"], "roofline": res["roofline_seconds"]}

    def device_cost(self, lengths: np.ndarray) -> dict:
        """One Best-of-N device (N0 rows; generation stops when all have finished), averaged over the
        disjoint N0-row devices of the sample."""
        n0 = self.config.experiment.device_batch
        kw = dict(prompt_len=tkl.PROMPT_LEN, gen=self.gen_dims, rm=self.rm_dims, hw=self.hw)
        out = {"flops": [], "roofline": []}
        for dev in np.asarray(lengths).reshape(-1, n0):
            L = int(dev.max())
            out["flops"].append(compute_cost.best_of_n_cost(n0, device_batch=n0, max_new_tokens=L, **kw)["flops"])
            out["roofline"].append(compute_cost.best_of_n_cost(n0, device_batch=n0, max_new_tokens=L, **kw,
                                                               **self.scale)["roofline_seconds"])
        return {k: float(np.mean(v)) for k, v in out.items()}


def evaluate_prompt(setup: Setup, prompt: np.ndarray, j: int) -> dict:
    """One prompt's record: Best-of-N samples' RM and gold scores, Speculative Rejection for every α,
    partial/final correlations (for the first `correlation_prompts` prompts)."""
    config = setup.config
    e = config.experiment
    key = evaluation.prompt_key(config, j)
    n_bon = e.device_batch * e.bon_multiples[-1]
    tokens = setup.sample(prompt, key, n_bon)
    lengths = response_lengths(tokens)
    rm = setup.rm_scores(prompt, tokens, append_eos=False)
    gold = tkl.gold_reward(prompt, tokens, setup.lang)
    rec = {"prompt": prompt.tolist(), "rm": rm.tolist(), "gold": gold.tolist(), "lengths": lengths.tolist(),
           "device_cost": setup.device_cost(lengths), "spr": {}}
    for alpha in e.alphas:
        res = setup.spr(prompt, key, alpha)
        c = res["chosen"]
        same = bool(np.array_equal(res["chosen_tokens"], tokens[c, :lengths[c]]))
        b0 = res["b0"]
        bon_b0_winner = int(np.argmax(rm[:b0]))
        survived = not next(x for x in res["candidates"] if x["row_id"] == bon_b0_winner).get("rejected", False)
        early = [x for x in res["candidates"] if not x.get("rejected") and x["length"] < config.max_new_tokens
                 and x["finished"]]
        pool = [x for x in res["candidates"] if not x.get("rejected")]
        rec["spr"][str(alpha)] = {
            "chosen": c, "chosen_is_bon_sample": same, "rm": float(rm[c]), "gold": float(gold[c]), "b0": b0,
            "winner_survived": survived, "chose_bon_b0_winner": c == bon_b0_winner,
            "finished_early_share": len(early) / max(1, len(pool)),
            "rounds": res["rounds"], "rm_calls": res["rm_calls"], "cost": setup.spr_cost(res),
            "wall_first_pass": res["wall_seconds"]}
    if j < e.correlation_prompts:
        corr = {}
        for tau in e.correlation_taus:
            part_rm = setup.rm_scores(prompt, tokens[:, :tau], append_eos=config.reward_model.append_eos)
            part_gold = tkl.gold_reward(prompt, tokens[:, :tau], setup.lang, as_complete=True)
            corr[str(tau)] = {"pearson_rm": float(np.corrcoef(part_rm, rm)[0, 1]),
                              "kendall_rm": float(stats.kendalltau(part_rm, rm).statistic),
                              "pearson_gold": float(np.corrcoef(part_gold, gold)[0, 1]),
                              "pearson_rm_gold": float(np.corrcoef(part_rm, gold)[0, 1])}
        rec["correlation"] = corr
    rec["rm_gold_pearson"] = float(np.corrcoef(rm, gold)[0, 1])
    return rec


def time_prompt(setup: Setup, prompt: np.ndarray, j: int) -> dict:
    """CPU wall seconds after compilation: one Best-of-N device (N0 rows to completion + RM) and SpR per α."""
    e = setup.config.experiment
    key = evaluation.prompt_key(setup.config, j)
    out = {}
    for _ in range(2):  # the first pass compiles every shape
        t0 = time.perf_counter()
        toks = setup.sample(prompt, jax.random.fold_in(key, 99), e.device_batch)
        setup.rm_scores(prompt, toks, append_eos=False)
        out["device"] = time.perf_counter() - t0
        for alpha in e.alphas:
            out[str(alpha)] = setup.spr(prompt, key, alpha)["wall_seconds"]
    return out


def _win(g_method: float, gold_sorted_by_rm: np.ndarray, w: np.ndarray) -> float:
    return float(np.dot(w, (g_method > gold_sorted_by_rm) + 0.5 * (g_method == gold_sorted_by_rm)))


def aggregate(records: list[dict], walls: list[dict], config) -> dict:
    """Improvement score, relative compute and speedup per cost model, gold metrics, diagnostics."""
    e = config.experiment
    n0, mult = e.device_batch, list(e.bon_multiples)
    m: dict = {"num_prompts": len(records), "device_batch": n0, "memory_slots": memory_slots(config),
               "b0": b0_of(config), "max_new_tokens": config.max_new_tokens}
    imp = evaluation.improvement_fn(records, n0)
    w0 = [None] * len(records)
    for i, r in enumerate(records):
        rm, gold = np.asarray(r["rm"]), np.asarray(r["gold"])
        w0[i] = (decoding.subset_max_weights(len(rm), n0), gold[np.argsort(rm, kind="stable")])
    bon_score, bon_gold, bon_win = [], [], []
    for k in mult:
        best = [decoding.expected_best_of(np.asarray(r["rm"]), n0 * k) for r in records]
        bon_score.append(imp(best))
        bon_gold.append(float(np.mean([decoding.expected_best_of(np.asarray(r["rm"]), n0 * k, np.asarray(r["gold"]))
                                       for r in records])))
        wins = []
        for w, gs in w0:
            wk = decoding.subset_max_weights(len(gs), n0 * k)
            wins.append(float(sum(wk[i] * _win(gs[i], gs, w) for i in np.flatnonzero(wk > 1e-12))))
        bon_win.append(float(np.mean(wins)))
        m[f"bon/N{n0 * k}/score"], m[f"bon/N{n0 * k}/gold"], m[f"bon/N{n0 * k}/gold_win"] = \
            bon_score[-1], bon_gold[-1], bon_win[-1]
    m["bon/multiples"] = mult
    m["bon/score_per_doubling"] = float(np.polyfit(np.log2(mult), bon_score, 1)[0])
    dev = {c: float(np.sum([r["device_cost"][c] for r in records])) for c in ("flops", "roofline")}
    wall_dev = float(np.sum([w["device"] for w in walls])) if walls else float("nan")
    for alpha in e.alphas:
        a = str(alpha)
        s = [r["spr"][a] for r in records]
        score = imp([x["rm"] for x in s])
        p = f"spr/{alpha:g}"
        m[f"{p}/score"] = score
        m[f"{p}/gold"] = float(np.mean([x["gold"] for x in s]))
        m[f"{p}/gold_win"] = float(np.mean([_win(x["gold"], gs, w) for x, (w, gs) in zip(s, w0, strict=True)]))
        m[f"{p}/chosen_is_bon_sample"] = float(np.mean([x["chosen_is_bon_sample"] for x in s]))
        m[f"{p}/winner_survival"] = float(np.mean([x["winner_survived"] for x in s]))
        m[f"{p}/chose_bon_b0_winner"] = float(np.mean([x["chose_bon_b0_winner"] for x in s]))
        m[f"{p}/finished_early_share"] = float(np.mean([x["finished_early_share"] for x in s]))
        m[f"{p}/rounds"] = float(np.mean([len(x["rounds"]) for x in s]))
        m[f"{p}/decision_lengths_prompt0"] = [rd["end"] - tkl.PROMPT_LEN for rd in s[0]["rounds"]]
        m[f"{p}/batches_prompt0"] = [rd["batch"] for rd in s[0]["rounds"]]
        rel = {c: float(np.sum([x["cost"][c] for x in s])) / dev[c] for c in ("flops", "roofline")}
        if walls:
            rel["wall"] = float(np.sum([w[a] for w in walls])) / wall_dev
        for c, v in rel.items():
            m[f"{p}/rel_{c}"] = v
            m[f"{p}/speedup_{c}"], m[f"{p}/speedup_{c}_extrapolated"] = evaluation.speedup_or_nan(
                mult, bon_score, v, score)
    corr = [r["correlation"] for r in records if "correlation" in r]
    for tau in e.correlation_taus:
        for key in ("pearson_rm", "kendall_rm", "pearson_gold", "pearson_rm_gold"):
            vals = [c[str(tau)][key] for c in corr if np.isfinite(c[str(tau)][key])]
            m[f"corr/tau{tau}/{key}"] = float(np.mean(vals)) if vals else float("nan")
    m["rm_gold_pearson"] = float(np.mean([r["rm_gold_pearson"] for r in records]))
    m["mean_length"] = float(np.mean([np.mean(r["lengths"]) for r in records]))
    m["wall_prompts"] = len(walls)
    return m


def train_and_evaluate(config, workdir: str) -> dict:
    validate(config)
    os.makedirs(workdir, exist_ok=True)
    t_start = time.perf_counter()
    modes = {"self_reward": (self_reward.run, claims_lib.self_reward_claims),
             "real": (real.run, claims_lib.real_claims)}
    mode = next((m for m in modes if config[m].enabled), None)
    if mode is not None:  # real checkpoints or self-reward: one prompt set, score against compute
        run_fn, claims_fn = modes[mode]
        metrics = run_fn(config, workdir)
        metrics["total_seconds"] = time.perf_counter() - t_start
        names = ["score_vs_compute.png"]
        plots.score_vs_compute(metrics, config, os.path.join(workdir, names[0]))
        return outputs.write_results(workdir, project="speculative_rejection", preset=config.preset,
                                    seeds=[config.seed], metrics=metrics, claims=claims_fn(metrics, config),
                                    plots=names)
    lang = language(config)
    gen_params, gen_mc = models.train_generator(workdir, config=config, lang=lang)
    data = models.rm_dataset(gen_params, gen_mc, config=config, lang=lang, path=os.path.join(workdir, "rm_data.npz"))
    rm_params, rm_mc, _ = models.train_reward_model(workdir, data, config=config, gen_params=gen_params)
    setup = Setup(config, gen_params, gen_mc, rm_params, rm_mc)
    t_train = time.perf_counter() - t_start
    ps = prompts(config)
    records = evaluation.per_prompt_records(workdir, ps, lambda j, prompt: evaluate_prompt(setup, prompt, j))
    wall_path = os.path.join(workdir, "wall.json")
    if os.path.exists(wall_path):
        walls = read_json(wall_path)
    else:
        walls = [time_prompt(setup, ps[j], j) for j in range(min(config.experiment.wall_prompts, len(ps)))]
        write_json_atomic(wall_path, walls)
    metrics = aggregate(records, walls, config)
    metrics["train_seconds"] = t_train
    metrics["total_seconds"] = time.perf_counter() - t_start
    metrics["gen_params"] = transformer.count_params(gen_params)
    metrics["rm_params"] = transformer.count_params(rm_params)
    metrics["generator_final_loss"] = read_jsonl(os.path.join(workdir, "generator_metrics.jsonl"))[-1]["loss"]
    metrics["rm_final_mse"] = read_jsonl(os.path.join(workdir, "reward_model_metrics.jsonl"))[-1]["loss"]
    plot_names = plots.make_all(metrics, records, config, workdir)
    return outputs.write_results(workdir, project="speculative_rejection", preset=config.preset, seeds=[config.seed],
                                metrics=metrics, claims=claims_lib.claims(metrics, config), plots=plot_names)
