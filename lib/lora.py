"""LoRA (Hu et al., 2021) as pure functions over a `lib/transformer.py` parameter tree.

    lora = init(params, jax.random.key(0), rank=16, targets=("q", "k", "v", "o"))   # only these are trained
    out = forward(params, lora, ids, config=cfg, scale=alpha / rank)   # x W + scale · (x A) B; W stays frozen
    merged = merge(params, lora, scale=alpha / rank)                   # W + scale · A B: a plain param tree

The adapters are a nested dict that mirrors the params down to each adapted Dense, with `{"a": [d_in, r],
"b": [r, d_out]}` in place of its `kernel` (flax kernels are `[d_in, d_out]`). As in PEFT, A starts
U(±1/√d_in) and B at zero, so a fresh adapter changes nothing.

`forward` adds the low-rank path beside each frozen matmul (a flax method interceptor on the named Dense
layers), so a gradient with respect to the adapters never forms the `[d_in, d_out]` weight gradients of the frozen
model: a training step costs about one forward less than fine-tuning every weight, and the optimiser holds state for
the adapters only. `merge` folds them in for evaluation or export; both give the same logits
(tests/lib/test_lora.py).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from lib import transformer


def _adapted(params: dict, targets) -> list[tuple]:
    """Paths (tuples of module names) of the 2-D Dense kernels whose module name is in `targets`."""
    flat = traverse_util.flatten_dict(params)
    return [p[:-1] for p, w in flat.items() if p[-1] == "kernel" and p[-2] in targets and w.ndim == 2]


def init(params: dict, key: jax.Array, *, rank: int, targets=("q", "k", "v", "o")) -> dict:
    """Adapters of rank `rank` for every Dense named in `targets` (e.g. each block's attention q, k, v, o)."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank={rank!r} is invalid: expected an integer >= 1")
    paths = _adapted(params, tuple(targets))
    if not paths:
        names = sorted({p[-2] for p in traverse_util.flatten_dict(params) if p[-1] == "kernel"})
        raise ValueError(f"targets={tuple(targets)!r} match no Dense kernel: expected names among {names}")
    flat = traverse_util.flatten_dict(params)
    out = {}
    for i, path in enumerate(paths):
        d_in, d_out = flat[path + ("kernel",)].shape
        bound = 1.0 / jnp.sqrt(d_in)
        a = jax.random.uniform(jax.random.fold_in(key, i), (d_in, rank), jnp.float32, -bound, bound)
        out[path] = {"a": a, "b": jnp.zeros((rank, d_out), jnp.float32)}
    return traverse_util.unflatten_dict({p + (k,): v for p, ad in out.items() for k, v in ad.items()})


def _by_path(lora: dict) -> dict[tuple, dict]:
    flat = traverse_util.flatten_dict(lora)
    return {p[:-1]: {"a": flat[p[:-1] + ("a",)], "b": flat[p[:-1] + ("b",)]} for p in flat if p[-1] == "a"}


def merge(params: dict, lora: dict, *, scale: float) -> dict:
    """`params` with every adapted kernel replaced by `W + scale · A B` (same tree, same dtypes)."""
    flat = dict(traverse_util.flatten_dict(params))
    for path, ad in _by_path(lora).items():
        w = flat[path + ("kernel",)]
        flat[path + ("kernel",)] = (w + scale * (ad["a"] @ ad["b"])).astype(w.dtype)
    return traverse_util.unflatten_dict(flat)


def forward(params: dict, lora: dict, input_ids: jnp.ndarray, *, config: transformer.TransformerConfig,
            scale: float, **kwargs) -> dict:
    """`transformer.forward` with `scale · (x A) B` added to each adapted Dense's output (same keywords and
    outputs); `params` are used as constants, so differentiate with respect to `lora` only."""
    adapters, used = _by_path(lora), set()

    def interceptor(next_fun, args, kw, context):
        out = next_fun(*args, **kw)
        if context.method_name != "__call__" or not isinstance(context.module, nn.Dense):
            return out
        ad = adapters.get(tuple(context.module.path))
        if ad is None:
            return out
        used.add(tuple(context.module.path))
        x = args[0]
        return out + (scale * ((x @ ad["a"].astype(x.dtype)) @ ad["b"].astype(x.dtype))).astype(out.dtype)

    with nn.intercept_methods(interceptor):
        out = transformer.forward(params, input_ids, config=config, **kwargs)
    if set(adapters) - used:  # an adapter that would silently do nothing (a tree built for another model)
        raise ValueError(f"LoRA adapters for {sorted(set(adapters) - used)} match no Dense layer of the model")
    return out


def count(lora: dict) -> int:
    """Number of trainable adapter parameters."""
    return int(sum(x.size for x in jax.tree.leaves(lora)))
