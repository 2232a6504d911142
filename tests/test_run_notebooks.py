"""scripts/run_notebooks.py: clean stored streams, one line per failed notebook, nothing tracked touched."""
import sys
from pathlib import Path

import jupytext
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import run_notebooks  # noqa: E402
from run_notebooks import clean_stream, run  # noqa: E402


def test_progress_bars_keep_their_final_state():
    nested = ("\rtrain:   0%|  | 0/2\n\repoch 1:  50%|  | 1/2\x1b[A\n\repoch 1: 100%|  | 2/2\x1b[A"
              "\n\r              \x1b[A\rtrain:  50%|  | 1/2\rtrain: 100%|  | 2/2\n")
    assert clean_stream(nested) == "train: 100%|  | 2/2\n"          # the inner bar was cleared on close
    assert clean_stream("loading\rloaded\nwarning: x\n") == "loaded\nwarning: x\n"
    assert clean_stream("\r   \n") == ""


def test_failed_notebook_is_one_line_and_stored_outputs_stay(tmp_path):
    source = tmp_path / "99_broken.py"
    source.write_text('# %%\nprint("first")\n\n# %%\nraise ValueError("items.csv: column title missing")\n')
    seconds, error = run(source, tmp_path / "out", update=True)
    assert error == "code cell 2: ValueError: items.csv: column title missing"
    assert not source.with_suffix(".ipynb").exists(), "a failed run must not replace the stored notebook"
    executed = jupytext.read(tmp_path / "out" / "99_broken.ipynb")
    assert executed.cells[0].outputs[0].text == "first\n"


def test_default_run_writes_outside_the_notebooks(tmp_path):
    source = tmp_path / "99_fine.py"
    source.write_text('# %%\nimport sys\nprint("a\\n\\nb")\nprint("x\\ry", file=sys.stderr)\n')
    _, error = run(source, tmp_path / "out", update=False)
    assert error is None and not source.with_suffix(".ipynb").exists()
    stdout, stderr = jupytext.read(tmp_path / "out" / "99_fine.ipynb").cells[0].outputs
    assert stdout.text == "a\n\nb\n", "stdout (compared by the tests) must stay as printed"
    assert stderr.text == "y\n"


def test_bare_assert_names_its_line(tmp_path):
    source = tmp_path / "99_assert.py"
    source.write_text("# %%\nx = 1\nassert x == 2\n")
    _, error = run(source, tmp_path / "out", update=False)
    assert error == "code cell 1: AssertionError: at `assert x == 2`"


def test_update_refuses_a_run_with_overrides(monkeypatch):
    monkeypatch.setenv("SRACL_DATASET", "my-shop")
    with pytest.raises(SystemExit, match="--update stores the default run; unset SRACL_DATASET"):
        run_notebooks.main(["--update", "01"])
