"""trust experiments (spec §5): every instance family × 1000 data seeds as a vmap axis, the solver check,
and the offline-RL reduction. Everything runs in float64 (`jax.enable_x64` inside `train_and_evaluate`).

Importable pieces: `validate`, `make_instance`, `instance_list`, `complexity`, `evaluate_instance`,
`solver_check`, `run_offline_rl`, `train_and_evaluate`. Each instance's per-seed results are written
atomically to `workdir/instances/<name>.npz` and the data-independent complexity Ĝ to
`workdir/cache/`, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from harness import outputs, validation
from lib import bandits
from lib.metrics import progress, read_npz_or_none, write_npz_atomic
from projects.trust import claims as claims_lib
from projects.trust import offline_rl, plots

_PATTERNS = {
    "trap_half": re.compile(r"trap_half_s(?P<s>[0-9.]+)_d(?P<d>\d+)_n(?P<n>\d+)$"),
    "trap_u01": re.compile(r"trap_u01_s(?P<s>[0-9.]+)_d(?P<d>\d+)_n(?P<n>\d+)$"),
    "half01": re.compile(r"half01_s(?P<s>[0-9.]+)_d(?P<d>\d+)_n(?P<n>\d+)$"),
    "u01": re.compile(r"u01_s(?P<s>[0-9.]+)_d(?P<d>\d+)_n(?P<n>\d+)$"),
    "minimax": re.compile(r"minimax_d(?P<d>\d+)_n(?P<n>\d+)_gap(?P<g>[0-9.]+)$"),
}
INSTANCE_FORMS = ("trap_half_s<σ>_d<d>_n<N0>, trap_u01_s<σ>_d<d>_n<N0>, half01_s<σ>_d<d>_n<N>, "
                  "u01_s<σ>_d<d>_n<N>, minimax_d<d>_n<N>_gap<g> (d ≥ 2, N ≥ 1, σ > 0)")


def _parse(name: str):
    for family, pat in _PATTERNS.items():
        m = pat.match(name)
        if m:
            return family, m.groupdict()
    return None, None


def _valid_name(name) -> bool:
    if not isinstance(name, str):
        return False
    family, p = _parse(name)
    if family is None:
        return False
    try:
        return int(p["d"]) >= 2 and int(p["n"]) >= 1 and float(p.get("s", 1)) > 0
    except ValueError:
        return False


def make_instance(name: str, *, seed: int) -> dict:
    """The instance named `name` (see configs/trust/default.py): {"name", "family", "means", "counts",
    "sigma"}; U[0,1] pools are drawn once from fold_in(key(seed), crc32(name))."""
    family, p = _parse(name)
    if family is None:
        raise ValueError(f"instance name {name!r} is invalid: expected {INSTANCE_FORMS}")
    d, n = int(p["d"]), int(p["n"])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 11), zlib.crc32(name.encode()))
    if family == "trap_half":
        inst = bandits.trap_half(d=d, n0=n, sigma=float(p["s"]))
    elif family == "trap_u01":
        inst = bandits.trap_u01(key, d=d, n0=n, sigma=float(p["s"]))
    elif family == "half01":
        inst = bandits.half01(d=d, n=n, sigma=float(p["s"]))
    elif family == "u01":
        inst = bandits.u01(key, d=d, n=n, sigma=float(p["s"]))
    else:
        inst = bandits.minimax(d=d, n=n, gap=float(p["g"]))
    return {**inst, "name": name, "family": family}


def instance_list(config) -> list[str]:
    """The configured instances followed by the d-scaling ones, without duplicates."""
    names = list(config.instances) + [claims_lib.scaling_name(d) for d in config.scaling_ds]
    return list(dict.fromkeys(names))


def validate(config) -> None:
    """Checks every field this project reads; raises ConfigError naming field, value, accepted."""
    validation.require_choice(config, "preset", ["smoke", "quick", "paper"])
    validation.require_int(config, "seed", min_value=0)
    validation.require_int(config, "num_seeds", min_value=2)
    validation.require_int(config, "seed_batch", min_value=1)
    delta = validation.require_float(config, "delta", min_value=0.0, strict=True)
    validation.require(delta < 1, "delta", delta, "a number in (0, 1)")
    validation.require_sequence(config, "instances", item_desc=f"instance names of the forms {INSTANCE_FORMS}",
                            item_ok=_valid_name, min_len=0)
    validation.require_sequence(config, "scaling_ds", item_desc="integers >= 2", min_len=0,
                            item_ok=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2)
    validation.require_int(config, "max_elements", min_value=1)
    validation.require_int(config, "trust.grid_size", min_value=2)
    validation.require_float(config, "trust.grid_decades", min_value=0.0, strict=True)
    validation.require_int(config, "trust.mc_draws", min_value=2)
    validation.require_int(config, "trust.mc_draws_large_d", min_value=2)
    validation.require(isinstance(config.trust.mc_slack, bool), "trust.mc_slack", config.trust.mc_slack,
                       "True or False")
    mcd = validation.require_float(config, "trust.mc_delta", min_value=0.0, strict=True)
    validation.require(mcd < 1, "trust.mc_delta", mcd, "a number in (0, 1)")
    validation.require_int(config, "slsqp_instances", min_value=0)
    rl = config.offline_rl
    validation.require(isinstance(rl.enabled, bool), "offline_rl.enabled", rl.enabled, "True or False")
    s = validation.require_int(config, "offline_rl.num_states", min_value=2)
    validation.require_int(config, "offline_rl.num_actions", min_value=2)
    validation.require_int(config, "offline_rl.horizon", min_value=1)
    succ = validation.require_int(config, "offline_rl.successors", min_value=1)
    validation.require(succ <= s, "offline_rl.successors", succ, f"an integer in [1, num_states={s}]")
    frac = validation.require_float(config, "offline_rl.reward_fraction", min_value=0.0)
    validation.require(frac <= 1, "offline_rl.reward_fraction", frac, "a number in [0, 1]")
    validation.require_int(config, "offline_rl.num_explore", min_value=1)
    validation.require_float(config, "offline_rl.beta_max", min_value=0.0)
    validation.require_int(config, "offline_rl.default_episodes", min_value=2)
    eps = validation.require_float(config, "offline_rl.default_eps", min_value=0.0)
    validation.require(eps <= 1, "offline_rl.default_eps", eps, "a number in [0, 1]")
    validation.require_float(config, "offline_rl.sigma", min_value=0.0, strict=True)
    validation.require_int(config, "offline_rl.num_seeds", min_value=2)


# ----------------------------------------------------------------------------------------------- bandit suite


def _batch(config, d: int) -> int:
    """lax.map batch bounded by config.max_elements floats of the [batch, J, d] trust-region solutions."""
    return int(max(1, min(config.seed_batch, config.max_elements // (config.trust.grid_size * d))))


@functools.partial(jax.jit, static_argnames=("num_draws", "batch_size", "num", "decades"))
def _complexity_fn(key, counts, sigma, *, num_draws, batch_size, num, decades):
    grid = bandits.radius_grid(counts, sigma=sigma, num=num, decades=decades)
    mean, std = bandits.gaussian_complexity(key, counts=counts, sigma=sigma, grid=grid, num_draws=num_draws,
                                            batch_size=batch_size)
    return grid, mean, std


def complexity(inst: dict, config, *, cache_dir: str | None = None) -> dict:
    """Ĝ on the radius grid, data-independent: its own key (fold_in(seed, 1), crc32 of the counts), cached
    on disk by the hash of (N, σ, grid size, decades, M, seed). Returns {"grid", "mean", "std", "seconds",
    "compile_seconds", "num_draws"} (numpy)."""
    counts = np.asarray(inst["counts"], np.float64)
    d = counts.size
    num_draws = config.trust.mc_draws_large_d if d >= 10_000 else config.trust.mc_draws
    J, dec = config.trust.grid_size, float(config.trust.grid_decades)
    h = hashlib.sha1(counts.tobytes() + repr((inst["sigma"], J, dec, num_draws, config.seed)).encode()).hexdigest()
    path = os.path.join(cache_dir, f"complexity_{h[:16]}.npz") if cache_dir else None
    cached = read_npz_or_none(path) if path else None  # another instance with these counts, or a resumed run
    if cached is not None:
        return {**cached, "seconds": np.float64(0.0), "compile_seconds": np.float64(0.0)}
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 1), zlib.crc32(counts.tobytes()))
    args = (key, jnp.asarray(counts), jnp.float64(inst["sigma"]))
    kw = dict(num_draws=num_draws, batch_size=_batch(config, d), num=J, decades=dec)
    compiled, compile_seconds = _compiled(_complexity_fn, args, kw)
    t1 = time.time()
    grid, mean, std = jax.block_until_ready(compiled(*args))
    out = {"grid": np.asarray(grid), "mean": np.asarray(mean), "std": np.asarray(std),
           "seconds": np.float64(time.time() - t1), "compile_seconds": np.float64(compile_seconds),
           "num_draws": np.int64(num_draws)}
    if path:
        write_npz_atomic(path, out)
    return out


_COMPILED: dict = {}  # AOT executables by (function, argument shapes, static arguments): instances share them


def _compiled(fn, args, kw):
    """(executable, compile seconds) for fn(*args, **kw); compiled once per shape signature."""
    sig = (fn.__name__, tuple((jnp.shape(a), jnp.result_type(a)) for a in args), tuple(sorted(kw.items())))
    if sig in _COMPILED:
        return _COMPILED[sig], 0.0
    t0 = time.time()
    _COMPILED[sig] = fn.lower(*args, **kw).compile()
    return _COMPILED[sig], time.time() - t0


@functools.partial(jax.jit, static_argnames=("num_seeds", "batch_size", "delta"))
def evaluate_instance(key, means, counts, sigma, grid, g_hat, *, num_seeds: int, batch_size: int, delta: float):
    """TRUST, LCB, greedy and the behaviour policy on `num_seeds` datasets of one instance (paired: every
    method sees the same r̂). means, counts `[d]`; grid, g_hat `[J]`. Returns per-seed arrays `[num_seeds]`."""
    def one(k):
        rhat = bandits.sample_means(k, means=means, counts=counts, sigma=sigma)
        tr = bandits.trust(rhat, counts, sigma=sigma, grid=grid, complexity=g_hat, delta=delta)
        p_lcb, c_lcb = bandits.lcb(rhat, counts, sigma=sigma, delta=delta)
        p_greedy = bandits.greedy(rhat, counts)
        _, c_mu = bandits.behaviour(rhat, counts, sigma=sigma, delta=delta)
        return {"v_trust": tr["policy"] @ means, "c_trust": tr["certificate"], "radius": tr["radius"],
                "index": tr["index"], "v_lcb": p_lcb @ means, "c_lcb": c_lcb, "v_greedy": p_greedy @ means,
                "c_behaviour": c_mu}

    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(num_seeds))
    return jax.lax.map(one, keys, batch_size=batch_size)


def run_instance(inst: dict, config, *, cache_dir: str | None) -> dict:
    """Ĝ (cached) then every data seed of one instance; numpy per-seed arrays plus timings."""
    comp = complexity(inst, config, cache_dir=cache_dir)
    g_hat = comp["mean"]
    if config.trust.mc_slack:
        g_hat = g_hat + np.asarray(bandits.mc_slack(jnp.asarray(comp["grid"]), num_draws=int(comp["num_draws"]),
                                                    delta_mc=config.trust.mc_delta))
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 2), zlib.crc32(inst["name"].encode()))
    d = inst["means"].size
    args = (key, jnp.asarray(inst["means"]), jnp.asarray(inst["counts"], jnp.float64), jnp.float64(inst["sigma"]),
            jnp.asarray(comp["grid"]), jnp.asarray(g_hat))
    kw = dict(num_seeds=config.num_seeds, batch_size=_batch(config, d), delta=float(config.delta))
    compiled, compile_seconds = _compiled(evaluate_instance, args, kw)
    t1 = time.time()
    out = jax.tree.map(np.asarray, jax.block_until_ready(compiled(*args)))
    out.update(seconds=np.float64(time.time() - t1), compile_seconds=np.float64(compile_seconds),
               g_seconds=comp["seconds"], g_compile_seconds=comp["compile_seconds"], grid=comp["grid"],
               g_mean=comp["mean"], g_std=comp["std"], g_hat=g_hat, num_draws=comp["num_draws"])
    return out


SOLVER_CHECK_D = 8  # random instances have 2..8 sampled arms, padded with unsampled arms to this width


@jax.jit
def _solvers(g, counts, sigma, eps):
    """Both TRLinMax solvers on a batch of padded instances: g, counts `[B, 8]`, sigma, eps `[B]`."""
    def one(g, counts, sigma, eps):
        mu = bandits.behaviour_policy(counts, g.dtype)
        return (bandits.tr_linmax_behaviour(g, counts, sigma=sigma, eps=eps),
                bandits.tr_linmax_general(g, mu, bandits.inv_variance(counts, sigma), eps=eps))

    return jax.vmap(one)(g, counts, sigma, eps)


def solver_check(config) -> dict:
    """AC-T6: TRLinMax (the exact behaviour solver and the nested-bisection general one) against scipy
    SLSQP (5 starts, ftol 1e-14, best feasible point) on random instances with 2 ≤ d ≤ 8 (30 % with one unsampled arm).
    Both solvers run once, vmapped over the instances padded to 8 arms with unsampled (N = 0) ones,
    which they must leave untouched. Returns the worst objective gaps and the worst infeasibility."""
    num = config.slsqp_instances
    if num == 0:
        return {"instances": 0, "max_gap_exact": float("nan"), "max_gap_general": float("nan"),
                "max_infeasibility": float("nan")}
    rng = np.random.default_rng(config.seed)
    D = SOLVER_CHECK_D
    G, C, S, E, dims = np.zeros((num, D)), np.zeros((num, D)), np.zeros(num), np.zeros(num), []
    for i in range(num):
        d = int(rng.integers(2, D + 1))
        counts = rng.integers(1, 6, d).astype(float)
        if rng.random() < 0.3:
            counts[rng.integers(d)] = 0.0
        if (counts > 0).sum() < 2:
            counts[:2] = (1.0, 2.0)
        sigma = float(rng.uniform(0.3, 2.0))
        G[i], C[i, :d], S[i], dims = rng.normal(size=D), counts, sigma, dims + [d]
        v_dist = float(np.max(np.asarray(bandits.vertex_distances(jnp.asarray(counts), sigma=sigma))[counts > 0]))
        E[i] = float(rng.uniform(0.02, 1.2)) * v_dist
    exact, general = (np.asarray(x) for x in _solvers(*(jnp.asarray(a) for a in (G, C, S, E))))
    gap_exact = gap_general = infeas = 0.0
    for i, d in enumerate(dims):
        g, counts, sigma, eps = G[i, :d], C[i, :d], S[i], E[i]
        mu = counts / counts.sum()
        act = counts > 0
        w = np.where(act, sigma**2 / np.maximum(counts, 1), 0.0)
        cons = [{"type": "eq", "fun": lambda x: x.sum()},
                {"type": "ineq", "fun": lambda x, w=w, eps=eps: eps**2 - np.sum(w * x**2)},
                {"type": "ineq", "fun": lambda x, mu=mu: mu + x}]
        bounds = [(None, None) if a else (0.0, 0.0) for a in act]
        best = -np.inf
        for start in range(5):
            x0 = np.zeros(d) if start == 0 else np.where(act, rng.dirichlet(np.ones(d)) - mu, 0.0) * 0.1 * eps
            res = minimize(lambda x, g=g: -g @ x, x0, jac=lambda x, g=g: -g, bounds=bounds, constraints=cons,
                           method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
            # SLSQP often stops at the optimum with "positive directional derivative in linesearch" and a
            # 1e-12 relative excess in the norm: shrink towards μ (stays in the simplex) to make it feasible
            x = res.x * min(1.0, eps / max(np.sqrt(np.sum(w * res.x**2)), 1e-300))
            if abs(x.sum()) < 1e-9 and np.min(mu + x) > -1e-9:
                best = max(best, g @ x)
        for delta in (exact[i], general[i]):
            pad = np.abs(delta[d:]).max(initial=0.0)  # padded unsampled arms must not move
            delta = delta[:d]
            infeas = max(infeas, pad, np.sqrt(np.sum(w * delta**2)) - eps, -np.min(mu + delta), abs(delta.sum()))
        gap_exact = max(gap_exact, abs(g @ exact[i, :d] - best))
        gap_general = max(gap_general, abs(g @ general[i, :d] - best))
    return {"instances": num, "max_gap_exact": gap_exact, "max_gap_general": gap_general,
            "max_infeasibility": infeas}


# ----------------------------------------------------------------------------------------------- offline RL


def run_offline_rl(config, *, cache_dir: str | None) -> dict:
    """Spec §5.3: K exploratory policies (1 episode each) and a default policy (K0 episodes) as arms."""
    rl = config.offline_rl
    root = jax.random.fold_in(jax.random.key(config.seed), 3)
    k_mdp, k_pol, k_data = jax.random.split(root, 3)
    P, R = offline_rl.random_mdp(k_mdp, num_states=rl.num_states, num_actions=rl.num_actions,
                                 successors=rl.successors, reward_fraction=rl.reward_fraction)
    q = offline_rl.optimal_q(P, R, horizon=rl.horizon)
    policies, betas = offline_rl.logging_policies(k_pol, q, num_explore=rl.num_explore, beta_max=rl.beta_max,
                                                  default_eps=rl.default_eps)
    means = offline_rl.policy_values(P, R, policies) / rl.horizon  # arm means V^{π_k}/H
    v_opt = float(q[0, 0].max()) / rl.horizon
    counts = jnp.concatenate([jnp.array([rl.default_episodes], jnp.float64), jnp.ones(rl.num_explore)])
    sigma = float(rl.sigma)
    inst = {"name": "offline_rl", "means": np.asarray(means), "counts": np.asarray(counts), "sigma": sigma}
    comp = complexity(inst, config, cache_dir=cache_dir)
    grid, g_hat = jnp.asarray(comp["grid"]), jnp.asarray(comp["mean"])
    delta = float(config.delta)

    @jax.jit
    def run(keys):
        def one(k):
            logged = offline_rl.logged_means(k, P, R, policies, default_episodes=rl.default_episodes)
            rhat = logged["means"]
            tr = bandits.trust(rhat, counts, sigma=sigma, grid=grid, complexity=g_hat, delta=delta)
            # plug-in σ (sensitivity check): G_σ'(ε·σ'/σ) = (σ'/σ)·G_σ(ε) exactly for the behaviour reference
            scale = logged["default_std"] / sigma
            tr_plug = bandits.trust(rhat, counts, sigma=sigma * scale, grid=grid * scale, complexity=g_hat * scale,
                                    delta=delta)
            p_lcb, c_lcb = bandits.lcb(rhat, counts, sigma=sigma, delta=delta)
            return {"v_trust": tr["policy"] @ means, "c_trust": tr["certificate"], "index": tr["index"],
                    "v_trust_plugin": tr_plug["policy"] @ means, "c_trust_plugin": tr_plug["certificate"],
                    "index_plugin": tr_plug["index"],
                    "sigma_plugin": logged["default_std"], "v_lcb": p_lcb @ means, "c_lcb": c_lcb,
                    "v_greedy": bandits.greedy(rhat, counts) @ means}

        return jax.lax.map(one, keys, batch_size=min(config.seed_batch, 50))

    keys = jax.vmap(lambda s: jax.random.fold_in(k_data, s))(jnp.arange(rl.num_seeds))
    t0 = time.time()
    out = jax.tree.map(np.asarray, run(keys))
    mu = np.asarray(bandits.behaviour_policy(counts))
    out.update(seconds=np.float64(time.time() - t0), means=np.asarray(means), betas=np.asarray(betas),
               v_behaviour=np.float64(mu @ np.asarray(means)), v_best_logging=np.float64(np.max(means)),
               v_default=np.float64(means[0]), v_optimal=np.float64(v_opt), grid=comp["grid"], g_mean=comp["mean"])
    return out


# ----------------------------------------------------------------------------------------------- entry point


def train_and_evaluate(config, workdir: str) -> dict:
    """Runs (or resumes) every instance, the solver check and the offline-RL reduction; writes
    `results.json`, the plots, and per-instance `instances/<name>.npz`."""
    validate(config)
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    cache_dir = os.path.join(workdir, "cache")
    results = {}
    with jax.enable_x64(True):
        names = instance_list(config)
        with progress(len(names), desc="trust instances", unit="instance") as bar:
            for name in names:
                path = os.path.join(workdir, "instances", f"{name}.npz")
                inst = make_instance(name, seed=config.seed)
                out = read_npz_or_none(path)  # saved by an earlier run; None when missing or damaged
                if out is None:
                    out = run_instance(inst, config, cache_dir=cache_dir)
                    write_npz_atomic(path, out)
                results[name] = {"instance": inst, **out}
                bar.set_postfix_str(name, refresh=False)
                bar.update(1)
        t_solver = time.time()
        solver = solver_check(config)
        solver["seconds"] = time.time() - t_solver
        rl = None
        if config.offline_rl.enabled:
            rl_path = os.path.join(workdir, "instances", "offline_rl.npz")
            rl = read_npz_or_none(rl_path)
            if rl is None:
                rl = run_offline_rl(config, cache_dir=cache_dir)
                write_npz_atomic(rl_path, rl)
    t_claims = time.time()
    metrics, claims = claims_lib.compute(config, results, solver, rl)
    metrics["claims_seconds"] = time.time() - t_claims
    t_plots = time.time()
    plot_files = plots.make_all(config, workdir, results, rl)
    metrics["plots_seconds"] = time.time() - t_plots
    metrics["total_seconds"] = time.time() - t0
    return outputs.write_results(workdir, project="trust", preset=config.preset, seeds=list(range(config.num_seeds)),
                                metrics=metrics, claims=claims, plots=plot_files)
