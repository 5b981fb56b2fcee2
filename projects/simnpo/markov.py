"""SimNPO part (a): the mixture-of-Markov-chains experiment (spec `unlearning.md` §5a).

Pieces, all pure (numpy for data generation, jitted JAX for everything that trains or evaluates):

- `chain(...)`, `make_data(...)`: 10 states, leakage ε; retain / Forget1 / Forget2 chains over the designated
  sets {0,1,2}, {3,4,5}, {6,7,8}; sequences sampled with a numpy RNG seeded by `data_seed`, split 80/20 the way
  sklearn's `train_test_split(random_state=data_seed)` does (a `RandomState(seed).permutation`, test first).
- `MarkovGPT`: the code-faithful small GPT of the official `synthetic/model.py` as the spec describes it
  (post-LN blocks, one attention head over all d dims without output projection, ReLU MLP of width d, learned
  positions, untied biased output layer, PyTorch initialisation). `variant="standard"` uses
  `lib.transformer` instead (pre-LN, multi-head, GELU MLP of width 4d, `init="torch"`).
- `make_pretrain_fn`: AdamW (weight decay 0, eps 1e-6), constant lr, token-mean cross-entropy, reshuffled every
  epoch, the last partial batch kept (padded with masked rows, as the PyTorch DataLoader keeps it), vmapped over
  model seeds.
- `make_unlearn_fn`: GA / NPO / SimNPO on batches of the shuffled forget-train set, every (method, β, seed) run a
  vmap axis, the KL-to-true-transition metrics evaluated at the configured iterations inside one `lax.scan`.
- `kl_to_chain`: mean over valid tokens of KL(T_chain[s_t, ·] ‖ π_θ(· | s_≤t)).

Loss reductions (spec §5a.4, pitfall 1) composed from the per-example primitives of `lib.losses`:
GA = token-mean log-likelihood over the whole batch (HF `CrossEntropyLoss` ascent) = Σ ga_from_logps(seq-sum logp)
/ Σ lengths; NPO = mean over sequences of npo_from_logps(seq-**sum** logp, ref seq-sum logp, β); SimNPO = mean over
sequences of simnpo_from_logps(seq-sum logp, length, β, γ = 0) (= −(2/β) log σ(β · mean NLL), the code's form).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import losses as lib_losses
from lib import transformer
from lib.losses import ga_from_logps, npo_from_logps, simnpo_from_logps

SPLITS = ("retain", "forget1", "forget2")
METHODS = ("ga", "npo", "simnpo")  # method ids 0, 1, 2 in the vmapped unlearning runs
CASES = ("length", "memorisation")  # spec Case A (Forget2 of length 5) and Case B (Forget2 never seen)
VARIANTS = ("simnpo_code", "standard")


# ----------------------------------------------------------------------------------------------- data


def designated_sets(num_states: int) -> dict[str, list[int]]:
    """The code's `subset_size = state_size // 3` consecutive blocks; states beyond 3·subset belong to none."""
    k = num_states // 3
    return {"retain": list(range(0, k)), "forget1": list(range(k, 2 * k)), "forget2": list(range(2 * k, 3 * k))}


def chain(num_states: int, leakage: float, designated: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(transition matrix T `[S, S]`, initial distribution `[S]`) exactly as the official data generator builds
    them: ε/(S−|D|) everywhere, (1−ε)/|D| inside D on rows of D, rows renormalised (non-D rows become uniform)."""
    out = num_states - len(designated)
    T = np.full((num_states, num_states), leakage / out)
    for s in designated:
        T[s, designated] = (1.0 - leakage) / len(designated)
    T = T / T.sum(1, keepdims=True)
    init = np.full(num_states, leakage / out)
    init[designated] = (1.0 - leakage) / len(designated)
    return T, init / init.sum()


def sample_sequences(rng: np.random.Generator, T: np.ndarray, init: np.ndarray, num: int, length: int) -> np.ndarray:
    """`[num, length]` int32 states of the Markov chain (T, init), inverse-CDF sampling."""
    seqs = np.zeros((num, length), np.int32)
    seqs[:, 0] = np.searchsorted(np.cumsum(init), rng.random(num) * np.cumsum(init)[-1], side="right")
    cdf = np.cumsum(T, axis=1)
    for t in range(1, length):
        c = cdf[seqs[:, t - 1]]
        seqs[:, t] = (rng.random(num)[:, None] * c[:, -1:] >= c).sum(1)
    return np.minimum(seqs, T.shape[0] - 1)


def split_train_test(num: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices as sklearn's train_test_split(test_size, random_state=seed): test = the first
    ceil(test_fraction·num) entries of RandomState(seed).permutation(num), train = the rest."""
    perm = np.random.RandomState(seed).permutation(num)
    n_test = int(math.ceil(test_fraction * num))
    return perm[n_test:], perm[:n_test]


def encode(seqs: np.ndarray, max_len: int) -> dict[str, np.ndarray]:
    """inputs = seq[:-1], labels = seq[1:], right-padded to max_len − 1 (inputs with state 0; labels with 0 and
    mask 0 where the code writes −100)."""
    n, length = seqs.shape
    inputs = np.zeros((n, max_len - 1), np.int32)
    labels = np.zeros((n, max_len - 1), np.int32)
    mask = np.zeros((n, max_len - 1), np.float32)
    inputs[:, :length - 1] = seqs[:, :-1]
    labels[:, :length - 1] = seqs[:, 1:]
    mask[:, :length - 1] = 1.0
    return {"inputs": inputs, "labels": labels, "mask": mask}


def make_data(*, num_states: int, leakage: float, counts: dict[str, int], lengths: dict[str, int],
              test_fraction: float, data_seed: int) -> dict:
    """Every split of one case: {"T": {split: [S,S]}, "train"/"test": {split: encoded at max_len}, "test_short":
    {split: encoded at the split's own length} (causal attention: identical logits on the valid positions, less
    compute), "forget_train": Forget1-train ∪ Forget2-train shuffled, "max_len"}."""
    rng = np.random.default_rng(data_seed)
    sets = designated_sets(num_states)
    max_len = max(lengths.values())
    data = {"T": {}, "train": {}, "test": {}, "test_short": {}, "max_len": max_len, "seqs": {}}
    for split in SPLITS:
        T, init = chain(num_states, leakage, sets[split])
        seqs = sample_sequences(rng, T, init, counts[split], lengths[split])
        tr, te = split_train_test(counts[split], test_fraction, data_seed)
        data["T"][split] = T
        data["seqs"][split] = {"train": seqs[tr], "test": seqs[te]}
        data["train"][split] = encode(seqs[tr], max_len)
        data["test"][split] = encode(seqs[te], max_len)
        data["test_short"][split] = encode(seqs[te], lengths[split])
    forget = {k: np.concatenate([data["train"]["forget1"][k], data["train"]["forget2"][k]]) for k in
              ("inputs", "labels", "mask")}
    order = rng.permutation(len(forget["inputs"]))
    data["forget_train"] = {k: v[order] for k, v in forget.items()}
    return data


def training_set(data: dict, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The concatenated train splits (the pretraining set of a case, or retain-only for the retrained model)."""
    return {k: np.concatenate([data["train"][s][k] for s in splits]) for k in ("inputs", "labels", "mask")}


# ----------------------------------------------------------------------------------------------- model


def _torch_uniform(fan_in: int):
    """PyTorch nn.Linear's default for weights and biases: U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _linear(d_in: int, d_out: int, *, bias: bool, name: str) -> nn.Dense:
    return nn.Dense(d_out, use_bias=bias, name=name, kernel_init=_torch_uniform(d_in), bias_init=_torch_uniform(d_in))


class MarkovGPT(nn.Module):
    """The official synthetic model: post-LN blocks h = LN1(h + Attn(h)); h = LN2(h + MLP(h)); attention is one
    head over all d dims (q, k, v bias-free, scores / √d, causal, no output projection); MLP d → d → d with ReLU;
    token embedding N(0, 1), learned positions N(0, 0.02), Linear layers U(±1/√fan_in), LayerNorm eps 1e-5."""

    num_states: int
    d_model: int
    n_layers: int
    max_positions: int

    @nn.compact
    def __call__(self, ids):
        d = self.d_model
        t = ids.shape[-1]
        x = nn.Embed(self.num_states, d, name="embed", embedding_init=nn.initializers.normal(1.0))(ids)
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (self.max_positions, d))
        x = x + pos[:t]
        causal = jnp.tril(jnp.ones((t, t), bool))
        for i in range(self.n_layers):
            q = _linear(d, d, bias=False, name=f"block_{i}_q")(x)
            k = _linear(d, d, bias=False, name=f"block_{i}_k")(x)
            v = _linear(d, d, bias=False, name=f"block_{i}_v")(x)
            scores = jnp.einsum("...td,...sd->...ts", q, k) / math.sqrt(d)
            weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
            x = nn.LayerNorm(epsilon=1e-5, name=f"block_{i}_ln1")(x + weights @ v)
            h = nn.relu(_linear(d, d, bias=True, name=f"block_{i}_fc1")(x))
            h = _linear(d, d, bias=True, name=f"block_{i}_fc2")(h)
            x = nn.LayerNorm(epsilon=1e-5, name=f"block_{i}_ln2")(x + h)
        return _linear(d, self.num_states, bias=True, name="head")(x)


def make_model(*, variant: str, num_states: int, d_model: int, n_layers: int, n_heads: int, max_positions: int):
    """(init(key) → params, apply(params, ids `[b, t]`) → logits `[b, t, S]`)."""
    ids = jnp.zeros((1, max_positions), jnp.int32)
    if variant == "simnpo_code":
        module = MarkovGPT(num_states=num_states, d_model=d_model, n_layers=n_layers, max_positions=max_positions)
        return (lambda key: module.init(key, ids)["params"]), (lambda p, x: module.apply({"params": p}, x))
    if variant == "standard":
        cfg = transformer.TransformerConfig(vocab_size=num_states, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                            max_len=max_positions, positions="learned", prenorm=True, mlp="gelu",
                                            tied_head=False, init="torch")
        return (lambda key: transformer.init_params(cfg, key, seq_len=max_positions),
                lambda p, x: transformer.forward(p, x, config=cfg)["logits"])
    raise ValueError(f"variant={variant!r} is invalid: expected one of {list(VARIANTS)}")


def optimizer(lr: float, *, eps: float, weight_decay: float) -> optax.GradientTransformation:
    """transformers' legacy AdamW defaults: betas (0.9, 0.999), eps 1e-6, weight decay 0 (its eps is added to
    √v before the bias correction; optax adds it after: a ≤ 1/√(1−β₂ᵗ) change of an already tiny eps)."""
    return optax.adamw(lr, b1=0.9, b2=0.999, eps=eps, weight_decay=weight_decay)


# ----------------------------------------------------------------------------------------------- training


def make_pretrain_fn(apply, *, num_train: int, batch_size: int, epochs: int, lr: float, eps: float,
                     weight_decay: float):
    """jit(vmap over seeds): (params `[K, ...]`, keys `[K]`, inputs, labels, mask — each with one extra all-zero
    row at index num_train used to pad the last batch) → (params, per-epoch mean loss `[K, epochs]`)."""
    steps = -(-num_train // batch_size)
    opt = optimizer(lr, eps=eps, weight_decay=weight_decay)

    def train_one(params, key, inputs, labels, mask):
        def epoch(carry, k):
            perm = jax.random.permutation(k, num_train)
            idx = jnp.concatenate([perm, jnp.full(steps * batch_size - num_train, num_train)]).reshape(steps, -1)

            def step(carry, ix):
                p, s = carry
                loss, g = jax.value_and_grad(
                    lambda q: lib_losses.token_cross_entropy(apply(q, inputs[ix]), labels[ix], mask[ix]))(p)
                upd, s = opt.update(g, s, p)
                return (optax.apply_updates(p, upd), s), loss

            carry, losses = jax.lax.scan(step, carry, idx)
            return carry, losses.mean()

        (params, _), losses = jax.lax.scan(epoch, (params, opt.init(params)), jax.random.split(key, epochs))
        return params, losses

    return jax.jit(jax.vmap(train_one, in_axes=(0, 0, None, None, None)))


def kl_to_chain(apply, params, split: dict, T: jnp.ndarray, *, chunk: int) -> jnp.ndarray:
    """Mean over valid tokens of KL(T[s_t, ·] ‖ π_θ(·|s_≤t)) on one test split (`split` arrays of shape
    `[n, L]`, n a multiple of chunk)."""
    logT = jnp.log(T)

    def one(batch):
        x, m = batch
        logp = jax.nn.log_softmax(apply(params, x).astype(jnp.float32), axis=-1)
        kl = (T[x] * (logT[x] - logp)).sum(-1)
        return (kl * m).sum(), m.sum()

    n = split["inputs"].shape[0]
    xs = (split["inputs"].reshape(n // chunk, chunk, -1), split["mask"].reshape(n // chunk, chunk, -1))
    tot, cnt = jax.lax.map(one, xs)
    return tot.sum() / cnt.sum()


def eval_chunk(n: int, cap: int = 500) -> int:
    """Largest divisor of n that is ≤ cap (chunks of the test-set forward pass)."""
    return max(c for c in range(1, min(n, cap) + 1) if n % c == 0)


def make_eval_fn(apply, tests: dict, Ts: dict):
    """jit: params → `[3]` KL (retain, forget1, forget2) on the given test splits (`tests[split]` numpy arrays)."""
    chunks = {s: eval_chunk(tests[s]["inputs"].shape[0]) for s in SPLITS}

    def evaluate(params, tests, Ts):
        return jnp.stack([kl_to_chain(apply, params, tests[s], Ts[s], chunk=chunks[s]) for s in SPLITS])

    jitted = jax.jit(evaluate)
    tests_j = jax.tree.map(jnp.asarray, {s: {k: tests[s][k] for k in ("inputs", "mask")} for s in SPLITS})
    Ts_j = {s: jnp.asarray(Ts[s], jnp.float32) for s in SPLITS}
    return lambda params: jitted(params, tests_j, Ts_j), evaluate, tests_j, Ts_j


def unlearn_loss(apply, params, ref_params, x, y, m, method, beta, gamma=0.0):
    """The forget loss of one run on one batch: method 0 GA, 1 NPO, 2 SimNPO (spec §5a.4 reductions)."""
    logp = (lib_losses.token_logprobs(apply(params, x), y) * m).sum(-1)
    length = m.sum(-1)
    ref_logp = jax.lax.stop_gradient((lib_losses.token_logprobs(apply(ref_params, x), y) * m).sum(-1))
    ga = ga_from_logps(logp).sum() / jnp.maximum(length.sum(), 1.0)
    npo = npo_from_logps(logp, ref_logp, beta=beta).mean()
    simnpo = simnpo_from_logps(logp, length, beta=beta, gamma=gamma).mean()
    return jnp.select([method == 0, method == 1], [ga, npo], simnpo)


def make_unlearn_fn(apply, evaluate, *, iterations: int, batch_size: int, lr: float, eps: float,
                    weight_decay: float, num_forget: int, eval_flags: tuple[bool, ...]):
    """jit: (orig params `[K, ...]` per model seed, run method `[R]`, β `[R]`, seed index `[R]`, keys `[R]`,
    forget-train arrays, test splits, T's) → KL `[E, R, 3]` at the iterations where eval_flags[i] (i = 0 is
    before the first step). Runs are a vmap axis for the steps; evaluation is sequential over runs (lax.map) and
    skipped by lax.cond (outside the vmap) at iterations that are not evaluated."""
    opt = optimizer(lr, eps=eps, weight_decay=weight_decay)
    flags = np.asarray(eval_flags, bool)
    slots = np.cumsum(flags) - 1  # slot of each evaluated iteration
    num_evals = int(flags.sum())
    per_pass = num_forget // batch_size
    passes = -(-iterations // per_pass)

    def batches(key):
        perms = [jax.random.permutation(k, num_forget)[:per_pass * batch_size] for k in jax.random.split(key, passes)]
        return jnp.concatenate(perms)[:iterations * batch_size].reshape(iterations, batch_size)

    def run(orig, method, beta, seed_idx, keys, forget, tests, Ts):
        params = jax.tree.map(lambda a: a[seed_idx], orig)
        ref = params
        opt_state = jax.vmap(opt.init)(params)
        idx = jax.vmap(batches)(keys)  # [R, iterations, batch]
        eval_all = lambda p: jax.lax.map(lambda q: evaluate(q, tests, Ts), p)  # noqa: E731
        out = jnp.zeros((num_evals, method.shape[0], 3), jnp.float32)
        if flags[0]:
            out = out.at[0].set(eval_all(params))

        def one_step(p, s, r, ix, meth, b):
            loss, g = jax.value_and_grad(lambda q: unlearn_loss(apply, q, r, forget["inputs"][ix],
                                                                forget["labels"][ix], forget["mask"][ix], meth, b))(p)
            upd, s = opt.update(g, s, p)
            return optax.apply_updates(p, upd), s, loss

        def body(carry, t):
            p, s, out = carry
            p, s, loss = jax.vmap(one_step)(p, s, ref, idx[:, t], method, beta)
            out = jax.lax.cond(jnp.asarray(flags)[t + 1],
                               lambda o: o.at[jnp.asarray(slots)[t + 1]].set(eval_all(p)), lambda o: o, out)
            return (p, s, out), loss

        (params, _, out), losses = jax.lax.scan(body, (params, opt_state, out), jnp.arange(iterations))
        return out, losses.T

    return jax.jit(run)
