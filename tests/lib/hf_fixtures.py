"""Tiny random Hugging Face checkpoints built by the tests (nothing is downloaded)."""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

VOCAB = 97


def tiny_config(kind: str):
    common = dict(vocab_size=VOCAB, initializer_range=0.3, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if kind == "gpt2":
        return transformers.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=4, **common)
    llama = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=64, **common)
    if kind == "llama":  # multi-head, untied head
        return transformers.LlamaConfig(num_key_value_heads=4, tie_word_embeddings=False, **llama)
    if kind == "llama_gqa":  # grouped-query attention, tied head, another RoPE base
        return transformers.LlamaConfig(num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500.0, **llama)
    if kind == "mistral":
        return transformers.MistralConfig(num_key_value_heads=1, sliding_window=None, **llama)
    if kind == "qwen2":  # q/k/v biases
        return transformers.Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, **llama)
    raise ValueError(kind)


def save_tiny(kind: str, directory, *, reward: bool = False, seed: int = 0, **save_kwargs):
    """Builds a random model of `kind`, saves it with save_pretrained, returns the torch model."""
    torch.manual_seed(seed)
    config = tiny_config(kind)
    if reward:
        config.num_labels = 1
        model = transformers.AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.float().eval()
    if not reward:  # make biases non-zero so they are tested too
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.1)
    model.save_pretrained(str(directory), **save_kwargs)
    return model


def random_ids(shape, seed=0):
    return np.random.default_rng(seed).integers(3, VOCAB, shape)
