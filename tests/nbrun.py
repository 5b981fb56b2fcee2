"""Runs a colab/ notebook top to bottom, as the notebook tests do (shared by tests/test_notebooks.py and the project
tests that run a notebook on their own module's smoke run)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def execute_notebook(name: str, workdir_root, monkeypatch, *, preset: str = "smoke", reuse: str | None = None):
    """Executes `colab/<name>.ipynb` with `preset`, its workdir under `workdir_root`; any cell error fails.

    reuse: a workdir that already holds this preset's finished run (a test module's smoke fixture). The notebook's
    workdir is linked to it, so the notebook resumes that run (loads its results, restores its models) and runs every
    one of its own cells on it instead of training again; the fresh run is what the project's own tests check."""
    import nbformat
    from nbclient import NotebookClient

    if reuse is not None:
        os.symlink(os.fspath(reuse), os.path.join(os.fspath(workdir_root), f"{name}_{preset}"))
    monkeypatch.setenv("REPROJAX_NOTEBOOK_PRESET", preset)
    monkeypatch.setenv("REPROJAX_NOTEBOOK_WORKDIR", os.fspath(workdir_root))
    monkeypatch.setenv("REPROJAX_PROGRESS", "0")
    monkeypatch.setenv("PYTHONPATH", ROOT)
    path = os.path.join(ROOT, "colab", f"{name}.ipynb")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    return nb
