"""Shared by every `configs/<p>/*.py`: the preset argument and the root of a config."""

import ml_collections

PRESETS = ("smoke", "quick", "paper")


def new_config(arg: str | None) -> ml_collections.ConfigDict:
    """A ConfigDict with `preset` set from `get_config`'s argument (default "quick"), validated."""
    preset = arg or "quick"
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is invalid: expected one of {list(PRESETS)}")
    c = ml_collections.ConfigDict()
    c.preset = preset
    return c
