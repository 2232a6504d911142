"""The percent .py notebooks are the source; their .ipynb twins must hold the same cells, executed."""
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PY_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_notebook_has_both_twins():
    ipynb_files = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert PY_FILES, f"no numbered notebooks in {NOTEBOOKS}"
    assert [p.stem for p in PY_FILES] == [p.stem for p in ipynb_files]


@pytest.mark.parametrize("py_path", PY_FILES, ids=lambda p: p.stem)
def test_pair_in_sync_and_executed(py_path):
    source = jupytext.read(py_path)
    stored = jupytext.read(py_path.with_suffix(".ipynb"))
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert cells(source) == cells(stored), (
        f"{py_path.name} and its .ipynb differ: run `python scripts/run_notebooks.py {py_path.name[:2]}`")
    counts = [c.execution_count for c in stored.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{py_path.stem}.ipynb is not a complete in-order run"
