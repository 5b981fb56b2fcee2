"""Config checks for each project's `validate(config)`: every failure is a `ConfigError` whose message names the
field, the value and what is accepted. Numbers must be finite unless a field says it means infinity; a bounded
field has both bounds."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A config value is invalid; the message names the field, the value and what is accepted."""


def require(ok: bool, field: str, value: Any, accepted: str) -> None:
    """Raises ConfigError("config.<field>=<value> is invalid: expected <accepted>") unless ok."""
    if not ok:
        raise ConfigError(f"config.{field}={value!r} is invalid: expected {accepted}")


def _range_text(kind: str, lo, hi, lo_strict: bool, hi_strict: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_strict else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_strict else '<='} {hi}")
    return kind + (" " + " and ".join(parts) if parts else "")


def _in_range(value, lo, hi, lo_strict: bool, hi_strict: bool) -> bool:
    if lo is not None and not (value > lo if lo_strict else value >= lo):
        return False
    return hi is None or (value < hi if hi_strict else value <= hi)


def require_int(config, field: str, *, min_value: int | None = None, max_value: int | None = None) -> int:
    value = get(config, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and _in_range(value, min_value, max_value, False,
                                                                               False)
    require(ok, field, value, _range_text("an integer", min_value, max_value, False, False))
    return value


def require_float(config, field: str, *, min_value: float | None = None, max_value: float | None = None,
                  strict: bool = False, max_strict: bool = False, allow_inf: bool = False) -> float:
    """A finite number in the range (`strict`: > min_value; `max_strict`: < max_value). `allow_inf=True` for a
    field where +inf means something (say, "no clipping"); NaN is never accepted."""
    value = get(config, field)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (math.isfinite(value) or (allow_inf and value == math.inf))
    ok = ok and _in_range(value, min_value, max_value, strict, max_strict)
    kind = "a finite number" if not allow_inf else "a number (inf allowed)"
    require(ok, field, value, _range_text(kind, min_value, max_value, strict, max_strict))
    return float(value)


def require_probability(config, field: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """A number in [0, 1] (`open_low`/`open_high` exclude the ends)."""
    return require_float(config, field, min_value=0.0, max_value=1.0, strict=open_low, max_strict=open_high)


def require_choice(config, field: str, choices: Sequence[Any]) -> Any:
    value = get(config, field)
    require(value in choices, field, value, f"one of {list(choices)}")
    return value


def _finite_items(value) -> bool:
    return all(not isinstance(v, float) or math.isfinite(v) for v in value)


def require_sequence(config, field: str, *, item_ok=lambda v: True, item_desc: str = "items",
                     min_len: int = 1) -> tuple:
    """A list/tuple of at least `min_len` items that each pass `item_ok`; float items must be finite."""
    value = get(config, field)
    ok = (isinstance(value, (list, tuple)) and len(value) >= min_len and _finite_items(value)
          and all(item_ok(v) for v in value))
    require(ok, field, value, f"a list of at least {min_len} {item_desc}" + (
        "" if "finite" in item_desc else " (finite)"))
    return tuple(value)


def require_existing_path(config, field: str, *, kind: str = "file or directory", optional: bool = False) -> str:
    """A path that exists now (checked before anything runs); `optional=True` also accepts "" (meaning unset)."""
    value = get(config, field)
    if optional and value in ("", None):
        return ""
    exists = {"file": os.path.isfile, "directory": os.path.isdir}.get(kind, os.path.exists)
    ok = isinstance(value, str) and bool(value) and exists(os.path.expanduser(value))
    require(ok, field, value, f"an existing {kind}" + (' or "" (unset)' if optional else ""))
    return value


def get(config, field: str) -> Any:
    """config["a"]["b"] for field "a.b"."""
    node = config
    for part in field.split("."):
        node = node[part]
    return node


def require_pretrained(config, field: str, *, head: str = "lm", optional: bool = False) -> str:
    """A pretrained model that `lib/models.resolve_model` accepts, checked before anything runs: a known name (the
    package that ships it installed), a `.gguf` file, or a Hugging Face checkpoint directory holding config.json
    of a supported architecture with the given `head` ("lm", or "scalar" for a reward model) and tokenizer.json;
    the Python packages that read it installed. `optional=True` also accepts "" (unset). Returns the value."""
    import importlib.util

    # lib.models pulls in JAX; harness.cli imports this module and must stay light, so the import waits until here
    from lib import hf_import, models
    from lib.metrics import read_json

    value = get(config, field)
    if optional and value == "":
        return ""
    require(isinstance(value, str) and bool(value), field, value,
            "a model name (" + ", ".join(models.KNOWN_MODELS) + "), a .gguf file or a checkpoint directory"
            + (' or "" (unset)' if optional else ""))
    try:
        path = models.resolve_model(value)
    except hf_import.CheckpointError as e:
        raise ConfigError(f"config.{field}={value!r} is invalid: {e}") from None
    gguf = os.path.isfile(path)
    missing = [m for m in (("gguf", "tokenizers") if gguf else ("safetensors", "tokenizers"))
               if importlib.util.find_spec(m) is None]
    require(not missing, field, value, f"a model whose readers are installed (missing Python package(s) {missing}: "
            "pip install -e '.[llm]')")
    if gguf:
        require(head == "lm", field, value, f"a checkpoint directory with a {head} head (a GGUF file is a causal LM)")
        return value
    for file in ("config.json", "tokenizer.json"):
        require(os.path.isfile(os.path.join(path, file)), field, value,
                f"a checkpoint directory holding config.json, *.safetensors and tokenizer.json (no {file} there)")
    try:
        found = hf_import.transformer_config(read_json(os.path.join(path, "config.json"))).head
    except hf_import.CheckpointError as e:
        raise ConfigError(f"config.{field}={value!r} is invalid: {e}") from None
    kind = {"lm": "a causal language model", "scalar": "a reward model"}
    require(found == head, field, value, f"{kind.get(head, head)}, not {kind.get(found, found)}")
    return value
