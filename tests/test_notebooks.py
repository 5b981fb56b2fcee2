"""Every notebook in colab/ runs top to bottom with the smoke preset."""

import glob
import os

import pytest

from tests.nbrun import execute_notebook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))


def test_there_are_notebooks():
    """colab/ holds at least the first project's notebook."""
    assert any(p.endswith("ltb_icl.ipynb") for p in NOTEBOOKS)


# notebooks whose smoke run is too long for the default run (budget 10 min on 2 cores) go here, under `-m slow`
SLOW: set[str] = set()
# notebooks the default run executes on their project test module's smoke run (`test_notebook_runs_on_the_smoke_run`
# there: the notebook resumes that run, so the smoke training is not done twice); their fresh run is here, under -m slow
ON_SMOKE_RUN = {"trust.ipynb", "speculative_rejection.ipynb", "nonreactive_exploration.ipynb", "two_hop.ipynb",
                "spreeze.ipynb", "autoprm.ipynb", "nes.ipynb"}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if os.path.basename(p) in SLOW | ON_SMOKE_RUN
                                  else p for p in NOTEBOOKS], ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    """Executes the notebook (smoke preset, outputs in a temporary workdir); any cell error fails."""
    execute_notebook(os.path.basename(path)[:-len(".ipynb")], tmp_path, monkeypatch)
