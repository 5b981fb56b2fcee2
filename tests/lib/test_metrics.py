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
    read_npz, write_npz_atomic = metrics.read_npz, metrics.write_npz_atomic
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


def _damaged_npz(tmp_path):
    """One .npz per kind of damage: emptied, cut in half, a member's bytes flipped, compressed and cut short."""
    metrics.write_npz_atomic(tmp_path / "ok.npz", {"x": np.arange(100.0)})
    data = (tmp_path / "ok.npz").read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside x's bytes: the member fails its CRC
    np.savez_compressed(tmp_path / "z.npz", x=np.arange(1000.0))
    cases = {"empty": b"", "half": data[: len(data) // 2], "flipped": bytes(flipped),
             "compressed_cut": (tmp_path / "z.npz").read_bytes()[:200], "not_npz": b"hello"}
    for name, content in cases.items():
        (tmp_path / f"{name}.npz").write_bytes(content)
    return [tmp_path / f"{name}.npz" for name in cases]


def test_read_npz_names_a_damaged_file(tmp_path):
    """Every kind of damage is a DamagedStateError naming the file; a missing file stays FileNotFoundError."""
    for path in _damaged_npz(tmp_path):
        with pytest.raises(metrics.DamagedStateError, match=f"{path} is damaged"):
            metrics.read_npz(path)
    with pytest.raises(FileNotFoundError):
        metrics.read_npz(tmp_path / "missing.npz")


def test_read_npz_or_none_warns_and_returns_none(tmp_path, capsys):
    """Missing: None, silently; damaged: None and one warning line naming it; intact: the arrays."""
    assert metrics.read_npz_or_none(tmp_path / "missing.npz") is None
    assert capsys.readouterr().err == ""
    for path in _damaged_npz(tmp_path):
        assert metrics.read_npz_or_none(path) is None
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{path} is damaged" in err and "recomputing it" in err, err
    assert metrics.read_npz_or_none(tmp_path / "ok.npz")["x"].tolist() == list(np.arange(100.0))


@pytest.mark.parametrize("content", ["", '{"a": [1, 2', "\x00\xff"], ids=["empty", "truncated", "binary"])
def test_read_json_names_a_damaged_file(tmp_path, content):
    """An empty, truncated or binary JSON file is a DamagedStateError naming it."""
    path = tmp_path / "r.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(metrics.DamagedStateError, match=f"{path} is damaged"):
        metrics.read_json(path)
    metrics.write_json_atomic(path, {"a": [1, 2]})
    assert metrics.read_json(path) == {"a": [1, 2]}


def test_read_json_or_none_warns_and_returns_none(tmp_path, capsys):
    """Missing: None, silently; truncated: None and one warning line naming it; intact: the object."""
    assert metrics.read_json_or_none(tmp_path / "missing.json") is None
    assert capsys.readouterr().err == ""
    path = tmp_path / "part.json"
    path.write_text('{"a": [1, 2')
    assert metrics.read_json_or_none(path) is None
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path} is damaged" in err and "recomputing it" in err, err
    path.write_text('{"a": [1, 2]}')
    assert metrics.read_json_or_none(path) == {"a": [1, 2]}
