"""The run directory (`--workdir`): checked before anything is written, emptied by `--fresh`, and tied to one
config through `config.json`."""

from __future__ import annotations

import json
import os
import shutil

from harness.validation import ConfigError
from lib.metrics import write_json_atomic

FRESH_HINT = "rerun with --fresh to start over in this workdir, or use another --workdir"


def check_writable(workdir: str) -> None:
    """Raises ConfigError unless `workdir` is (or can be created as) a writable directory; writes nothing."""
    path = os.path.abspath(os.path.expanduser(workdir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir={workdir!r} is invalid: it is a file, expected a directory")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ConfigError(f"--workdir={workdir!r} is invalid: {probe!r} is a file, expected a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir={workdir!r} is invalid: {probe!r} is not writable")


def prepare(config, workdir: str, *, fresh: bool = False) -> None:
    """Checks the workdir, empties it when `fresh`, then writes `config.json` (see `save_config`)."""
    check_writable(workdir)
    if fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    try:
        save_config(config, workdir)
    except OSError as e:
        raise ConfigError(f"--workdir={workdir!r} is invalid: cannot write there ({e.strerror or e})") from e


def save_config(config, workdir: str) -> None:
    """Writes `workdir/config.json`; a rerun in the same workdir with a different config is refused
    (the checkpoints there belong to the old one)."""
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is damaged ({type(e).__name__}: {e}); {FRESH_HINT}") from e
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"--workdir={workdir!r} holds a run with a different config (top-level fields differing: "
                f"{changed}); resuming it would mix two runs: {FRESH_HINT}")
    os.makedirs(workdir, exist_ok=True)
    write_json_atomic(path, new)
