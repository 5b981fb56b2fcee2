"""Tests for lib/metrics.py."""

import json
import os

import numpy as np
import pytest

from lib import metrics


def test_write_scalars_appends_jsonl(tmp_path):
    """Each write_scalars call adds one JSON line with the step and plain-Python values."""
    w = metrics.MetricWriter(tmp_path)
    w.write_scalars(1, {"loss": np.float32(0.5), "per_run": np.array([1.0, 2.0])})
    w.write_scalars(2, {"loss": 0.25})
    rows = metrics.read_jsonl(tmp_path / "metrics.jsonl")
    assert rows == [{"step": 1, "loss": 0.5, "per_run": [1.0, 2.0]}, {"step": 2, "loss": 0.25}]


def test_resume_drops_rows_after_checkpoint(tmp_path):
    """Resuming at step 2 drops rows logged after it, so the file holds one history."""
    w = metrics.MetricWriter(tmp_path)
    for s in range(1, 5):
        w.write_scalars(s, {"x": s})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "x"')  # a line cut by a kill
    metrics.MetricWriter(tmp_path, resume_step=2)
    assert [r["step"] for r in metrics.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]


def test_check_finite_names_metric_step_and_run():
    """A NaN in a vmapped loss stops with a message naming the metric, the step and the run."""
    metrics.check_finite(3, {"loss": np.array([1.0, 2.0])})
    with pytest.raises(metrics.NonFiniteError, match=r"loss became non-finite .* at step 7 in runs \[1\]"):
        metrics.check_finite(7, {"loss": np.array([1.0, np.nan])})


def test_write_json_atomic_leaves_no_temp_files(tmp_path):
    """The file appears whole and no temporary file remains, even when serialisation fails."""
    metrics.write_json_atomic(tmp_path / "r.json", {"a": np.float64(1.5), "b": float("nan")})
    assert json.load(open(tmp_path / "r.json")) == {"a": 1.5, "b": "nan"}
    with pytest.raises(TypeError):
        metrics.write_json_atomic(tmp_path / "bad.json", {"a": object()})
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_npz_written_atomically(tmp_path, monkeypatch):
    """write_npz_atomic leaves the old file intact when the write fails, and read_npz returns every array."""
    import numpy as np

    from lib.metrics import read_npz, write_npz_atomic

    path = tmp_path / "sub" / "a.npz"
    write_npz_atomic(path, {"x": np.arange(3), "y": np.ones((2, 2))})
    got = read_npz(path)
    assert set(got) == {"x", "y"} and got["x"].tolist() == [0, 1, 2]

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        write_npz_atomic(path, {"x": np.zeros(5)})
    assert read_npz(path)["x"].tolist() == [0, 1, 2]
