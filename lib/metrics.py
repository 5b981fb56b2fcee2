"""Metric writing, progress bars, a non-finite guard and atomic file writes.

`MetricWriter.write_scalars(step, {...})` appends one JSON object per call to
`workdir/metrics.jsonl` (CLU-like), optionally mirrored to TensorBoard through tensorboardX.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm


class NonFiniteError(FloatingPointError):
    """Raised when a monitored value (a loss, a gradient norm) is NaN or infinite."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that reads back whole but does not fit the state being restored (a changed config). Defined here,
    beside DamagedStateError, so launchers can catch it without importing JAX."""


class DamagedStateError(RuntimeError):
    """A saved file (checkpoint, result, metrics) that cannot be read back; the message names the file and what is
    wrong with it, and no earlier intact state could stand in for it."""


def _to_python(value: Any) -> Any:
    """Converts numpy/JAX scalars and small arrays to JSON-serialisable Python values."""
    if isinstance(value, Mapping):
        return {str(k): _to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    arr = np.asarray(value)
    if arr.ndim == 0:
        item = arr.item()
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)  # JSON has no NaN/inf; keep the information as a string.
        return item
    return [_to_python(v) for v in arr.tolist()]


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as JSON to `path` through a temporary file and a rename, so readers never
    see a half-written file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_to_python(obj), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """`np.savez` to a temporary file beside `path`, then an atomic rename: a reader (or a resumed run) sees the
    old file or the whole new one, never half of it. Creates the parent directory."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# What numpy raises for an unreadable .npz: an empty file (EOFError), a cut-off zip directory or a member failing
# its CRC (BadZipFile), a compressed member cut short (zlib.error), bytes that are no array at all (ValueError).
_NPZ_DAMAGE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def read_npz(path: str | os.PathLike) -> dict:
    """Every array of an `.npz` file, loaded into memory (the file is closed). A truncated or otherwise unreadable
    file raises `DamagedStateError` naming it (delete it, or rerun with --fresh, to recompute it)."""
    path = os.fspath(path)
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except _NPZ_DAMAGE as e:
        raise DamagedStateError(f"{path} is damaged ({type(e).__name__}: {e}); delete it to recompute it") from e


def read_npz_or_none(path: str | os.PathLike) -> dict | None:
    """The arrays of a saved part of a run that the caller can compute again (a finished sweep point, a cache
    entry): None when `path` does not exist, and None with one warning line on stderr naming it when it is
    damaged, so the caller recomputes it (and its atomic write replaces the damaged file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except _NPZ_DAMAGE as e:
        print(f"warning: {path} is damaged ({type(e).__name__}: {e}); recomputing it", file=sys.stderr, flush=True)
        return None


def read_json_or_none(path: str | os.PathLike) -> Any | None:
    """`read_npz_or_none` for JSON: None when `path` does not exist, and None with one warning line on stderr naming
    it when it is damaged, so the caller recomputes it (and its atomic write replaces the damaged file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        return read_json(path)
    except DamagedStateError as e:
        print(f"warning: {e.args[0].split('; ')[0]}; recomputing it", file=sys.stderr, flush=True)
        return None


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file; a truncated or unreadable one raises `DamagedStateError` naming it."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise DamagedStateError(f"{path} is damaged ({type(e).__name__}: {e}); delete it to recompute it") from e


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Reads a JSONL metrics file; a line that does not parse (a killed writer's truncated last line, a damaged
    byte) is skipped, so the rows around it survive."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class MetricWriter:
    """Appends `{"step": s, **scalars}` lines to `workdir/metrics.jsonl`.

    On resume, pass `resume_step`: lines with a step beyond it (written after the checkpoint
    that is being resumed from) are dropped, so the file never holds two histories.
    """

    def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = False,
                 resume_step: int | None = None, filename: str = "metrics.jsonl"):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(os.fspath(workdir), filename)
        if resume_step is None:
            open(self.path, "w").close()
        elif os.path.exists(self.path):
            kept = [r for r in read_jsonl(self.path) if r.get("step", -1) <= resume_step]
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                for r in kept:
                    f.write(json.dumps(r) + "\n")
            os.replace(tmp, self.path)
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter  # optional extra, imported only when asked for
            except ImportError as e:  # pragma: no cover - optional dependency
                raise ImportError(
                    "tensorboard=True needs tensorboardX: pip install -e '.[tensorboard]'") from e
            self._tb = SummaryWriter(os.path.join(os.fspath(workdir), "tb"))

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        row = {"step": int(step), **_to_python(dict(scalars))}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in scalars.items():
                arr = np.asarray(v)
                if arr.ndim == 0:
                    self._tb.add_scalar(k, float(arr), int(step))
                else:  # vmapped runs: one curve per run
                    for i, vi in enumerate(arr.reshape(-1)):
                        self._tb.add_scalar(f"{k}/{i}", float(vi), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def check_finite(step: int, metrics: Mapping[str, Any], keys: Iterable[str] | None = None) -> None:
    """Raises `NonFiniteError` naming the metric, the step and (for vmapped runs) which runs,
    if any monitored value is NaN or infinite."""
    for k in keys if keys is not None else metrics.keys():
        arr = np.asarray(metrics[k])
        bad = ~np.isfinite(arr)
        if bad.any():
            where = "" if arr.ndim == 0 else f" in runs {np.flatnonzero(bad.reshape(-1)).tolist()}"
            raise NonFiniteError(
                f"{k} became non-finite ({arr.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]}) at step "
                f"{step}{where}. Lower the learning rate or check the inputs; the last good checkpoint "
                "is kept.")


def progress(total: int, *, desc: str, initial: int = 0, unit: str = "step", disable: bool | None = None):
    """A tqdm progress bar on stderr. Off when REPROJAX_PROGRESS=0; refreshes at most every 10 s
    when stderr is not a terminal, so logs stay short."""
    if disable is None:
        disable = os.environ.get("REPROJAX_PROGRESS") == "0"
    mininterval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable,
                dynamic_ncols=True, mininterval=mininterval)
