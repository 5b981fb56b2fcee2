"""two_hop figures: training dynamics with the mechanism probes, attention maps, the three-parameter model."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from harness import plotting
from lib import transformer
from lib.metrics import read_npz
from lib.minimal_models import three_param_descent
from projects.two_hop import claims as claims_lib
from projects.two_hop import data


def dynamics(config, workdir: str) -> str:
    c = claims_lib.curves(workdir)
    step, S = c["step"], c["accuracy"].shape[1]
    fig, axes = plotting.figure(2, 2, figsize=(12, 8))
    styles = [("p_target", "target end", "C0"), ("p_distractor", "each distractor end (mean)", "C1"),
              ("p_context_other", "sources + bridges", "C2"), ("p_outside", "tokens not in context", "C3")]
    for s in range(S):
        lw = 1.6 if s == 0 else 0.8
        for key, label, color in styles:
            axes[0, 0].plot(step, c[key][:, s], color=color, lw=lw, label=label if s == 0 else None)
        axes[0, 1].plot(step, c["loss"][:, s], color="k", lw=lw, label="query loss" if s == 0 else None)
        axes[1, 0].plot(step, c["accuracy"][:, s], lw=lw, label=f"seed {s}")
        for key, label, color in (("attn_l1_child_parent", "layer 1 child→parent", "C4"),
                                  ("attn_l2_query_bridge", "layer 2 query→bridge (1st)", "C5"),
                                  ("attn_l3_query_end", "layer 3 query→end", "C6")):
            axes[1, 1].plot(step, c[key][:, s], color=color, lw=lw, label=label if s == 0 else None)
    K = config.data.n_chains
    axes[0, 0].axhline(1 / K, color="gray", ls=":", lw=0.8)
    axes[0, 0].set(title="prediction probabilities at the query (thick: seed 0)", ylabel="probability")
    axes[0, 1].set(title="loss at the query", yscale="log")
    axes[0, 1].axhline(np.log(K), color="gray", ls=":", lw=0.8, label=f"ln K (uniform over {K} ends)")
    axes[1, 0].set(title="accuracy", ylabel="accuracy")
    axes[1, 0].axhline(1 / K, color="gray", ls=":", lw=0.8)
    axes[1, 1].set(title="attention on the mechanism's positions", ylabel="attention weight")
    for ax in axes.flat:
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(workdir, "dynamics.png")
    fig.savefig(path, dpi=110)
    return path


def attention_maps(config, workdir: str, before: dict | None, after: dict, mc: transformer.TransformerConfig) -> str:
    """Heat-maps of the three layers of the model `mc` on one sequence, before (last plateau snapshot) and after
    training."""
    batch = data.sample(jax.random.key(config.eval.seed), batch=1, n_chains=config.data.n_chains,
                        n_nodes=config.data.n_nodes)
    pos = data.positions(batch)
    rows = [("before the jump", before), ("after training", after)] if before is not None else [("after", after)]
    fig, axes = plotting.figure(len(rows), 3, figsize=(12, 4 * len(rows)), squeeze=False)
    labels = ["<s>"] + [str(int(t)) for t in np.asarray(batch["tokens"][0, 1:])]
    for r, (name, params) in enumerate(rows):
        attn = transformer.forward(params, batch["tokens"], config=mc, return_attn=True)["attn"]
        for layer in range(3):
            ax = axes[r, layer]
            ax.imshow(np.asarray(attn[layer][0, 0]), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"{name}: layer {layer + 1}", fontsize=9)
            ax.set_xticks(range(len(labels)), labels, fontsize=5, rotation=90)
            ax.set_yticks(range(len(labels)), labels, fontsize=5)
        q = int(pos["query"][0])
        axes[r, 1].scatter([int(pos["bridge_first"][0])], [q], marker="s", facecolors="none", edgecolors="r")
        axes[r, 2].scatter([int(pos["end"][0])], [q], marker="s", facecolors="none", edgecolors="r")
    fig.suptitle("attention (rows: queries, columns: keys); red squares: first bridge (layer 2) and end (layer 3)")
    fig.tight_layout()
    path = os.path.join(workdir, "attention_maps.png")
    fig.savefig(path, dpi=110)
    return path


def three_param(config, workdir: str) -> str:
    c = claims_lib.curves(workdir)
    fig, axes = plotting.figure(1, 2, figsize=(12, 4))
    for name, init, color in (("zero init", (0.0, 0.0, 0.0), "C0"), ("authors' init", claims_lib.STORED_INIT, "C1")):
        thetas, losses = three_param_descent(jnp.array(init), lr=0.1, steps=2000)
        axes[0].plot(np.asarray(losses), color=color, label=f"three-parameter model, {name}")
        for i, (p, ls) in enumerate(zip("αβγ", ("-", "--", ":"), strict=True)):
            axes[1].plot(np.asarray(thetas[:, i]), color=color, ls=ls, label=f"{p} ({name})")
    ax2 = axes[0].twiny()
    for s in range(c["accuracy"].shape[1]):
        ax2.plot(c["step"], c["loss"][:, s], color="k", lw=0.7, alpha=0.7, label="transformer (query loss)" if s == 0
                 else None)
    ax2.set_xlabel("transformer training step (top axis)")
    ax2.legend(fontsize=7, loc="center right")
    axes[0].set(xlabel="three-parameter SGD step (lr 0.1)", ylabel="loss", yscale="log",
                title="plateau then cliff: minimal model vs transformer")
    axes[0].legend(fontsize=7, loc="lower left")
    axes[1].set(xlabel="SGD step", title="α (layer-1), β (layer-2), γ (layer-3) logits")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(workdir, "three_parameter_model.png")
    fig.savefig(path, dpi=110)
    return path


def make_all(config, workdir: str, state: dict, mc: transformer.TransformerConfig) -> list[str]:
    c = claims_lib.curves(workdir)
    seed = 0
    for s in range(c["accuracy"].shape[1]):
        if claims_lib.find_jump(c["step"], c["accuracy"][:, s], config.eval.jump_window):
            seed = s
            break
    after = jax.tree.map(lambda x: x[seed], state["params"])
    snap = os.path.join(workdir, "before_jump.npz")
    before = None
    if os.path.exists(snap):
        flat = read_npz(snap)
        if f"seed{seed}" in {k.split("/")[0] for k in flat}:
            leaves = [jnp.asarray(flat[f"seed{seed}/{i}"]) for i in range(len(jax.tree.leaves(after)))]
            before = jax.tree.unflatten(jax.tree.structure(after), leaves)
    return [os.path.basename(p) for p in (dynamics(config, workdir), attention_maps(config, workdir, before, after, mc),
                                          three_param(config, workdir))]
