"""Every notebook in colab/ runs top to bottom with the smoke preset."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))


def test_there_are_notebooks():
    """colab/ holds at least the first project's notebook."""
    assert any(p.endswith("ltb_icl.ipynb") for p in NOTEBOOKS)


# notebooks whose smoke run is over a minute on 2 cores run with `-m slow` (the default run's budget is 10 min)
SLOW = {"nes.ipynb"}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if os.path.basename(p) in SLOW else p
                                  for p in NOTEBOOKS], ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    """Executes the notebook (smoke preset, outputs in a temporary workdir); any cell error fails."""
    monkeypatch.setenv("REPROJAX_NOTEBOOK_PRESET", "smoke")
    monkeypatch.setenv("REPROJAX_NOTEBOOK_WORKDIR", str(tmp_path))
    monkeypatch.setenv("REPROJAX_PROGRESS", "0")
    monkeypatch.setenv("PYTHONPATH", ROOT)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
