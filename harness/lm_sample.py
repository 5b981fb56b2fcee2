"""Sample from a local Hugging Face checkpoint with lib/ (a sanity check before pointing a project at it).

    python -m harness.lm_sample --checkpoint=/path/to/model --prompt="The capital of France is" \
        --max_new_tokens=32 --temperature=0.7 --top_p=0.9 --num_samples=2

The directory needs config.json, model.safetensors (or shards + index) and tokenizer.json; nothing is
downloaded. Reward models (`*ForSequenceClassification`) are scored instead: the prompt's scalar reward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from lib import decoding, hf_import

_CKPT = flags.DEFINE_string("checkpoint", None, "Local checkpoint directory.", required=True)
_PROMPT = flags.DEFINE_string("prompt", "Hello", "Prompt text.")
_NEW = flags.DEFINE_integer("max_new_tokens", 32, "Tokens to generate.")
_TEMP = flags.DEFINE_float("temperature", 0.0, "0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "0 = off.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "1 = off.")
_N = flags.DEFINE_integer("num_samples", 1, "Samples of the prompt.")
_SEED = flags.DEFINE_integer("seed", 0, "Root random seed.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    model = hf_import.load_model(_CKPT.value)
    tok = hf_import.load_tokenizer(_CKPT.value)
    ids = jnp.asarray([tok.encode(_PROMPT.value).ids] * _N.value, jnp.int32)
    if model.config.head == "scalar":
        print(f"reward: {float(model(ids)[0]):.4f}")
        return
    eos = model.hf_config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    out = decoding.generate(model.params, ids, jnp.ones_like(ids), jax.random.key(_SEED.value), config=model.config,
                            max_new_tokens=_NEW.value, temperature=_TEMP.value, top_k=_TOP_K.value,
                            top_p=_TOP_P.value, eos_id=eos, pad_id=eos if eos is not None else 0)
    for r in range(_N.value):
        n = int(out["lengths"][r])
        full = [int(t) for t in ids[r]] + [int(t) for t in out["tokens"][r, :n]]
        print(f"--- sample {r} ({n} new tokens)\n{tok.decode(full)}")


if __name__ == "__main__":
    app.run(main)
