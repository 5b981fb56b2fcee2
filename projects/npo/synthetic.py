"""NPO part (a): the binary-classification synthetic experiment (spec §4.1, §5a′; official `synthetic/`).

Data (numpy, one generator per seed): retain x ~ N(μ_r, I_d), P(y=0|x) = σ((x−μ_r)·1_d/√d + 1); forget
x ~ N(μ_f, I_d), P(y=1|x) = σ((x−μ_f)·1_d/√d + 1); μ_f = −μ_r = α·1_d. IDK labels are uniform. Model (as the
official code): logits [Zθ, 0] with Z = ReLU(X Wᵀ), W ∈ R^{N×d} ~ N(0, 1/d) fixed, θ ∈ R^N trained. π_ref is
trained on D_f ∪ D_r, π_retr on D_r, both by full-batch GD from θ = 0. Unlearning is full-batch GD from θ_ref.

Everything runs in float64 (as the official torch code) under `jax.enable_x64`; the seed axis is a vmap axis and
the steps a `lax.scan`. Pure functions here; `run_part` adds the files (resume) around them, and stops with
`lib.metrics.NonFiniteError` before saving when a loss, gradient norm or distance is not finite.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from lib.losses import dpo_from_logps, ga_from_logps, npo_from_logps
from lib.metrics import check_finite, read_npz, write_npz_atomic

METHOD_NAMES = {"ga": "GA", "ga_rt": "GA+RT", "idk_rt": "IDK+RT", "npo": "NPO", "npo_rt": "NPO+RT",
                "dpo_rt": "DPO+RT"}
KINDS = tuple(METHOD_NAMES)
METRICS = ("forget_dist", "retain_dist", "forget_diff", "retain_diff", "param_dist", "retr_param_dist")


# ----------------------------------------------------------------------------------------------- data


def make_data(seed: int, *, alpha: float, dim: int, num_features: int, num_forget: int, num_retain: int,
              num_eval: int) -> dict:
    """One seed's fixed features W, training sets, IDK labels and evaluation sets (numpy float64 / int)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((num_features, dim)) / np.sqrt(dim)
    mu_f = alpha * np.ones(dim)
    mu_r = -mu_f
    theta = np.ones(dim) / np.sqrt(dim)

    def draw(n, mu, favoured):  # favoured class has logit (x−μ)·θ + 1, the other 0
        x = mu + rng.standard_normal((n, dim))
        p_fav = 1.0 / (1.0 + np.exp(-((x - mu) @ theta + 1.0)))
        fav = rng.random(n) < p_fav
        y = np.where(fav, favoured, 1 - favoured)
        return x, y.astype(np.int32)

    xr, yr = draw(num_retain, mu_r, 0)
    xf, yf = draw(num_forget, mu_f, 1)
    y_idk = rng.integers(0, 2, num_forget).astype(np.int32)
    xre, yre = draw(num_eval, mu_r, 0)
    xfe, yfe = draw(num_eval, mu_f, 1)
    return {"W": W, "xr": xr, "yr": yr, "xf": xf, "yf": yf, "y_idk": y_idk, "xr_eval": xre, "yr_eval": yre,
            "xf_eval": xfe, "yf_eval": yfe}


def stack_data(config_s, alpha: float) -> dict:
    """make_data for every seed in config_s.seeds, stacked on a leading seed axis."""
    per = [make_data(int(s), alpha=float(alpha), dim=config_s.dim, num_features=config_s.num_features,
                     num_forget=config_s.num_forget, num_retain=config_s.num_retain, num_eval=config_s.num_eval)
           for s in config_s.seeds]
    return {k: np.stack([p[k] for p in per]) for k in per[0]}


# ----------------------------------------------------------------------------------------------- model


def features(W, x):
    return jax.nn.relu(x @ W.T)


def log_probs(theta, z):
    """[n, 2] log-probabilities of the classes; logits (z·θ, 0) as the official code."""
    s = z @ theta
    return jnp.stack([-jax.nn.softplus(-s), -jax.nn.softplus(s)], axis=-1)


def label_logp(theta, z, y):
    """log π_θ(y|x) per example [n]: −softplus(−s) for y = 0, −softplus(s) for y = 1 (no gather, so no scatter
    in the gradient: XLA's CPU scatter made pre-training 50× slower)."""
    return -jax.nn.softplus((2 * y - 1).astype(z.dtype) * (z @ theta))


def mean_kl(logp_target, logp_model):
    """E_x KL(target(·|x) ‖ model(·|x)) for [n, 2] log-probabilities (F.kl_div 'batchmean')."""
    return jnp.mean(jnp.sum(jnp.exp(logp_target) * (logp_target - logp_model), axis=-1))


@functools.partial(jax.jit, static_argnames=("steps",))
def pretrain(z, y, weights, *, steps: int, lr):
    """Full-batch GD from θ = 0 on the weighted NLL Σ_i w_i(−log π_θ(y_i|x_i)); z [n, N], y [n], weights [n]
    (sum 1). Returns (θ, final gradient norm, final loss)."""
    def loss(theta):
        return -jnp.sum(weights * label_logp(theta, z, y))

    grad = jax.grad(loss)
    theta = jax.lax.fori_loop(0, steps, lambda _, th: th - lr * grad(th), jnp.zeros(z.shape[-1], z.dtype))
    return theta, jnp.linalg.norm(grad(theta)), loss(theta)


def pretrain_seeds(data: dict, *, steps: int, lr: float) -> dict:
    """π_ref (on D_f ∪ D_r) and π_retr (on D_r) for every seed, one vmapped call over (seed, model)."""
    W = jnp.asarray(data["W"])
    x = jnp.concatenate([jnp.asarray(data["xr"]), jnp.asarray(data["xf"])], axis=1)
    y = jnp.concatenate([jnp.asarray(data["yr"]), jnp.asarray(data["yf"])], axis=1)
    nr, nf = data["xr"].shape[1], data["xf"].shape[1]
    w_ref = jnp.full(nr + nf, 1.0 / (nr + nf))
    w_retr = jnp.concatenate([jnp.full(nr, 1.0 / nr), jnp.zeros(nf)])
    weights = jnp.stack([w_ref, w_retr])  # [2, n]
    z = jax.vmap(features)(W, x)  # [S, n, N]
    fn = jax.vmap(jax.vmap(lambda z, y, w: pretrain(z, y, w, steps=steps, lr=lr), in_axes=(None, None, 0)),
                  in_axes=(0, 0, None))
    theta, gnorm, loss = fn(z, y, weights)  # [S, 2, N], [S, 2], [S, 2]
    return {"theta_ref": np.asarray(theta[:, 0]), "theta_retr": np.asarray(theta[:, 1]),
            "gradnorm_ref": np.asarray(gnorm[:, 0]), "gradnorm_retr": np.asarray(gnorm[:, 1]),
            "loss_ref": np.asarray(loss[:, 0]), "loss_retr": np.asarray(loss[:, 1])}


# ----------------------------------------------------------------------------------------------- unlearning


def unlearning_loss(theta, batch, *, kind: str, beta):
    """The minimised objective of each method (official synthetic code): forget terms on D_f, the retain term
    "RT" = mean NLL on D_r. GA: E log π_θ(y_f). NPO: E (2/β) softplus(β(log π_θ − log π_ref)).
    IDK: NLL of uniform-random labels on the forget inputs. DPO (winner y_idk, loser y_f):
    E −(2/β) log σ(β[(log π_θ(y_idk) − log π_ref(y_idk)) − (log π_θ(y_f) − log π_ref(y_f))])."""
    z_f, z_r = batch["z_f"], batch["z_r"]
    logp_f = label_logp(theta, z_f, batch["yf"])
    rt = -jnp.mean(label_logp(theta, z_r, batch["yr"]))
    if kind == "ga":
        return jnp.mean(ga_from_logps(logp_f))
    if kind == "ga_rt":
        return jnp.mean(ga_from_logps(logp_f)) + rt
    if kind == "idk_rt":
        return -jnp.mean(label_logp(theta, z_f, batch["y_idk"])) + rt
    if kind in ("npo", "npo_rt"):
        npo = jnp.mean(npo_from_logps(logp_f, batch["ref_logp_f"], beta=beta))
        return npo + rt if kind == "npo_rt" else npo
    if kind == "dpo_rt":
        logp_w = label_logp(theta, z_f, batch["y_idk"])
        dpo = dpo_from_logps(logp_w, batch["ref_logp_idk"], logp_f, batch["ref_logp_f"], beta=beta)
        return jnp.mean(dpo) + rt
    raise ValueError(f"kind={kind!r} is invalid: expected one of {list(KINDS)}")


def evaluate(theta, ev):
    """Distances of π_θ on the fresh evaluation sets: KL(π_retr ‖ π_θ) on forget and retain inputs (the paper's
    forget/retain distance), KL(π_ref ‖ π_θ) on both, ‖θ − θ_ref‖ and ‖θ − θ_retr‖."""
    lf, lr_ = log_probs(theta, ev["z_f"]), log_probs(theta, ev["z_r"])
    return {"forget_dist": mean_kl(ev["retr_f"], lf), "retain_dist": mean_kl(ev["retr_r"], lr_),
            "forget_diff": mean_kl(ev["ref_f"], lf), "retain_diff": mean_kl(ev["ref_r"], lr_),
            "param_dist": jnp.linalg.norm(theta - ev["theta_ref"]),
            "retr_param_dist": jnp.linalg.norm(theta - ev["theta_retr"])}


@functools.partial(jax.jit, static_argnames=("kind", "steps", "eval_every"))
def unlearn(theta0, batch, ev, lr, beta, *, kind: str, steps: int, eval_every: int):
    """Full-batch GD from θ0 on `unlearning_loss`; metrics (`evaluate` and the training loss) at t = 0, eval_every,
    …, steps ([steps/eval_every + 1])."""
    loss = functools.partial(unlearning_loss, batch=batch, kind=kind, beta=beta)
    grad = jax.grad(loss)

    def chunk(theta, _):
        m = {**evaluate(theta, ev), "loss": loss(theta)}
        theta = jax.lax.fori_loop(0, eval_every, lambda _, th: th - lr * grad(th), theta)
        return theta, m

    theta, ms = jax.lax.scan(chunk, theta0, None, length=steps // eval_every)
    last = {**evaluate(theta, ev), "loss": loss(theta)}
    return theta, jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), ms, last)


def _prepare(data: dict, models: dict):
    """Device arrays of the training batch and the evaluation set, with the frozen models' log-probs."""
    W = jnp.asarray(data["W"])
    f = jax.vmap(features)
    z_f, z_r = f(W, jnp.asarray(data["xf"])), f(W, jnp.asarray(data["xr"]))
    zf_e, zr_e = f(W, jnp.asarray(data["xf_eval"])), f(W, jnp.asarray(data["xr_eval"]))
    th_ref, th_retr = jnp.asarray(models["theta_ref"]), jnp.asarray(models["theta_retr"])
    lp = jax.vmap(log_probs)
    ll = jax.vmap(label_logp)
    batch = {"z_f": z_f, "z_r": z_r, "yf": jnp.asarray(data["yf"]), "yr": jnp.asarray(data["yr"]),
             "y_idk": jnp.asarray(data["y_idk"]), "ref_logp_f": ll(th_ref, z_f, jnp.asarray(data["yf"])),
             "ref_logp_idk": ll(th_ref, z_f, jnp.asarray(data["y_idk"]))}
    ev = {"z_f": zf_e, "z_r": zr_e, "retr_f": lp(th_retr, zf_e), "retr_r": lp(th_retr, zr_e),
          "ref_f": lp(th_ref, zf_e), "ref_r": lp(th_ref, zr_e), "theta_ref": th_ref, "theta_retr": th_retr}
    return th_ref, batch, ev


def run_methods(data: dict, models: dict, *, methods, lrs: dict, betas: dict, steps: int, eval_every: int) -> dict:
    """Every method on every seed (vmapped): {method: {metric: [S, T]}} as numpy, plus the final θ [S, N]."""
    th_ref, batch, ev = _prepare(data, models)
    out = {}
    for kind in methods:
        fn = jax.vmap(functools.partial(unlearn, kind=kind, steps=steps, eval_every=eval_every),
                      in_axes=(0, 0, 0, None, None))
        theta, ms = fn(th_ref, batch, ev, jnp.float64(lrs[kind]), jnp.float64(betas.get(kind, 1.0)))
        out[kind] = {**{k: np.asarray(v) for k, v in ms.items()}, "theta": np.asarray(theta)}
    return out


# ----------------------------------------------------------------------------------------------- drift


@functools.partial(jax.jit, static_argnames=("kind", "steps", "eval_every"))
def drift(theta0, z_f, yf, ref_logp_f, lr, beta, *, kind: str, steps: int, eval_every: int):
    """‖θ_t − θ_0‖ for GA or NPO (no retain term) at t = 0, eval_every, …, steps."""
    def loss(theta):
        logp = label_logp(theta, z_f, yf)
        if kind == "ga":
            return jnp.mean(ga_from_logps(logp))
        return jnp.mean(npo_from_logps(logp, ref_logp_f, beta=beta))

    grad = jax.grad(loss)

    def chunk(theta, _):
        d = jnp.linalg.norm(theta - theta0)
        return jax.lax.fori_loop(0, eval_every, lambda _, th: th - lr * grad(th), theta), d

    theta, ds = jax.lax.scan(chunk, theta0, None, length=steps // eval_every)
    return jnp.concatenate([ds, jnp.linalg.norm(theta - theta0)[None]])


def run_drift(data: dict, models: dict, *, lr: float, steps: int, eval_every: int, betas) -> dict:
    """{"ga": [S, T], "npo_beta<β>": [S, T]} of ‖θ_t − θ_ref‖ on the forget set of every seed."""
    th_ref, batch, _ = _prepare(data, models)
    out = {}
    for kind, beta in [("ga", 1.0)] + [("npo", float(b)) for b in betas]:
        fn = jax.vmap(functools.partial(drift, kind=kind, steps=steps, eval_every=eval_every),
                      in_axes=(0, 0, 0, 0, None, None))
        d = fn(th_ref, batch["z_f"], batch["yf"], batch["ref_logp_f"], jnp.float64(lr), jnp.float64(beta))
        out["ga" if kind == "ga" else f"npo_beta{beta:g}"] = np.asarray(d)
    return out


# ----------------------------------------------------------------------------------------------- files


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for k, v in flat.items():
        node = out
        *parents, leaf = k.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def check_curves(curves: dict, steps) -> None:
    """NaN guard over `[seeds, T]` curves evaluated at `steps` (T of them): names the first evaluation step with a
    non-finite value and its seeds."""
    for i, step in enumerate(steps):
        check_finite(int(step), {k: v[:, i] for k, v in curves.items()})


def alpha_tag(alpha: float) -> str:
    return f"alpha{alpha:g}"


def run_alpha(s, alpha: float) -> dict:
    """Pre-training, every method and (when s.drift.alpha == alpha and enabled) the drift run for one α."""
    t0 = time.time()
    data = stack_data(s, alpha)
    models = pretrain_seeds(data, steps=s.pretrain_steps, lr=s.pretrain_lr)
    check_curves({f"pretrain/{k}": v[:, None] for k, v in models.items() if k.startswith(("loss", "gradnorm"))},
                 [s.pretrain_steps])
    t1 = time.time()
    tag = "alpha1" if alpha == 1.0 else "alpha0"
    lrs, betas = dict(s[f"lr_{tag}"]), dict(s[f"beta_{tag}"])
    methods = run_methods(data, models, methods=s.methods, lrs=lrs, betas=betas, steps=s.steps,
                          eval_every=s.eval_every)
    steps = np.arange(0, s.steps + 1, s.eval_every)
    check_curves({f"{kind}/{k}": m[k] for kind, m in methods.items() for k in ("loss", "forget_dist", "retain_dist")},
                 steps)
    t2 = time.time()
    out = {"models": models, "methods": methods, "steps": steps,
           "seconds": {"pretrain": np.float64(t1 - t0), "unlearn": np.float64(t2 - t1)}}
    if s.drift.enabled and float(s.drift.alpha) == float(alpha):
        out["drift"] = run_drift(data, models, lr=s.drift.lr, steps=s.drift.steps, eval_every=s.drift.eval_every,
                                 betas=s.drift.betas)
        out["drift_steps"] = np.arange(0, s.drift.steps + 1, s.drift.eval_every)
        check_curves({f"drift/{k}": v for k, v in out["drift"].items()}, out["drift_steps"])
        out["seconds"]["drift"] = np.float64(time.time() - t2)
    return out


def run_part(s, workdir: str, *, bar=None) -> dict:
    """The whole synthetic part: {alpha_tag: results}; each α is saved atomically to
    `workdir/synthetic/<tag>.npz` and loaded instead of recomputed on a rerun."""
    results = {}
    alphas = list(s.alphas)
    if s.drift.enabled and float(s.drift.alpha) not in [float(a) for a in alphas]:
        alphas.append(float(s.drift.alpha))  # the drift run needs that α's pre-trained models
    with jax.enable_x64(True):
        for alpha in alphas:
            path = os.path.join(workdir, "synthetic", f"{alpha_tag(alpha)}.npz")
            if os.path.exists(path):
                res = _unflatten(read_npz(path))
                res["resumed"] = True
            else:
                res = run_alpha(s, float(alpha))
                write_npz_atomic(path, _flatten(res))
                res["resumed"] = False
            res["in_main"] = float(alpha) in [float(a) for a in s.alphas]
            results[alpha_tag(alpha)] = res
            if bar is not None:
                bar.update(1)
    return results
