"""two_hop's model: the authors' GPT as a `lib.transformer` config, built in one place for train.py, plots.py,
calibrate.py and sweep.py (which imports only `lib` and this folder, so it runs where ml_collections is missing)."""

from __future__ import annotations

from lib import transformer
from projects.two_hop import data

MAX_LEN = 256  # learned position table; a sequence has data.seq_len(n_chains) = 2 + 4·n_chains tokens


def transformer_config(*, n_nodes: int, d_model: int, mlp: str, n_layers: int = 3, n_heads: int = 1,
                       init: str = "torch") -> transformer.TransformerConfig:
    """The authors' GPT: learned positions, pre-LN, no biases, untied head, FFN 4d (or none)."""
    return transformer.TransformerConfig(
        vocab_size=data.vocab_size(n_nodes), d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=MAX_LEN,
        positions="learned", norm="layernorm", norm_eps=1e-5, prenorm=True, mlp=mlp, d_ff=4 * d_model,
        tied_head=False, qkv_bias=False, out_bias=False, mlp_bias=False, norm_bias=True, init=init)


def model_config(config) -> transformer.TransformerConfig:
    """`transformer_config` from a two_hop config's `data` and `model` fields."""
    m = config.model
    return transformer_config(n_nodes=config.data.n_nodes, d_model=m.d_model, mlp=m.mlp, n_layers=m.n_layers,
                              n_heads=m.n_heads, init=m.init)
