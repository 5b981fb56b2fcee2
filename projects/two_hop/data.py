"""The synthetic two-hop task with distractors, generated on device with `jax.random`.

Vocabulary (as the authors' code): <BOS>=0, <EDGE>=1, <ANS>=2, <EOS>=3, node tokens 4..3+n_nodes.
One sequence: K chains s_k → b_k → e_k over 3K distinct nodes; each chain gives two premises written as
"parent child" token pairs, (s_k b_k) then (b_k e_k); the 2K premises are a uniformly random interleaving
of the chains that keeps each chain's order; then the query s_q of a random chain q; the target is e_q.

    [BOS] p c p c ... p c  s_q   → predict e_q at the query position
      0   1 2 3 4 ... 4K-1 4K  4K+1

We use a BOS (the authors' analysis code indexes the query at 21, which needs one) and stop the sequence at
the query: the authors pad to 24 tokens with <EOS> after the answer, which cannot change the query's
output under a causal mask, so this only saves work. Every position the analysis needs comes from
`positions(...)` (spec pitfall 10: the bridge's *first* occurrence, from the generator's bookkeeping).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BOS, EDGE, ANS, EOS = 0, 1, 2, 3
N_SPECIAL = 4


def vocab_size(n_nodes: int) -> int:
    return N_SPECIAL + n_nodes


def seq_len(n_chains: int) -> int:
    """Input length: BOS + 4K premise tokens + query."""
    return 2 + 4 * n_chains


def query_position(n_chains: int) -> int:
    return 1 + 4 * n_chains


def sample(key: jax.Array, *, batch: int, n_chains: int, n_nodes: int) -> dict[str, jnp.ndarray]:
    """A batch of sequences and their bookkeeping.

    Returns:
      tokens `[b, 2+4K]` int32; target `[b]` (e_q); chain nodes `nodes [b, K, 3]` (s, b, e);
      `query_chain [b]`; `edge_chain [b, 2K]` and `edge_hop [b, 2K]` (0: (s b), 1: (b e)) per premise.
    """
    K = n_chains
    if 3 * K > n_nodes:
        raise ValueError(f"n_chains={K} needs 3·K = {3 * K} distinct nodes but n_nodes={n_nodes}")
    k_nodes, k_order, k_query = jax.random.split(key, 3)
    perm = jax.vmap(lambda k: jax.random.permutation(k, n_nodes))(jax.random.split(k_nodes, batch))
    nodes = (perm[:, :3 * K] + N_SPECIAL).reshape(batch, K, 3).astype(jnp.int32)
    # uniform interleaving: a uniformly random permutation of the multiset {0,0,1,1,...,K-1,K-1}
    slots = jnp.repeat(jnp.arange(K), 2)
    edge_chain = jax.vmap(lambda k: jax.random.permutation(k, slots))(jax.random.split(k_order, batch))
    first = jnp.argmax(edge_chain[:, :, None] == jnp.arange(K)[None, None, :], axis=1)  # [b, K] first slot
    edge_hop = (jnp.arange(2 * K)[None, :] != jnp.take_along_axis(first, edge_chain, axis=1)).astype(jnp.int32)
    chain_nodes = jnp.take_along_axis(nodes, edge_chain[:, :, None], axis=1)  # [b, 2K, 3]
    parent = jnp.take_along_axis(chain_nodes, edge_hop[:, :, None], axis=2)[..., 0]
    child = jnp.take_along_axis(chain_nodes, edge_hop[:, :, None] + 1, axis=2)[..., 0]
    premises = jnp.stack([parent, child], axis=-1).reshape(batch, 4 * K)
    query_chain = jax.random.randint(k_query, (batch,), 0, K)
    query = jnp.take_along_axis(nodes[:, :, 0], query_chain[:, None], axis=1)[:, 0]
    target = jnp.take_along_axis(nodes[:, :, 2], query_chain[:, None], axis=1)[:, 0]
    tokens = jnp.concatenate([jnp.full((batch, 1), BOS, jnp.int32), premises, query[:, None]], axis=1)
    return {"tokens": tokens.astype(jnp.int32), "target": target, "nodes": nodes, "query_chain": query_chain,
            "edge_chain": edge_chain, "edge_hop": edge_hop}


def positions(batch: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    """Positions for the mechanism probes, from the bookkeeping (never by searching tokens).

    Returns: "query" `[b]`; "children" `[2K]` and "parents" `[2K]` (same for every sequence: premise j
    is at 1+2j, 2+2j); "bridge_first" `[b]` (child of the query chain's first premise); "end" `[b]`
    (child of its second premise)."""
    edge_chain, edge_hop, q = batch["edge_chain"], batch["edge_hop"], batch["query_chain"]
    two_k = edge_chain.shape[1]
    j = jnp.arange(two_k)
    children = 2 + 2 * j
    is_q = edge_chain == q[:, None]
    bridge_first = 2 + 2 * jnp.argmax(is_q & (edge_hop == 0), axis=1)
    end = 2 + 2 * jnp.argmax(is_q & (edge_hop == 1), axis=1)
    return {"query": jnp.full(q.shape, 1 + 2 * two_k), "children": children, "parents": children - 1,
            "bridge_first": bridge_first, "end": end}
