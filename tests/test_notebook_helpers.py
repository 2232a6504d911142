"""sracl_lite.notebook: parameters from SRACL_* variables, and checks against the stored run."""
import re
from pathlib import Path

import pytest

from sracl_lite import notebook


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    monkeypatch.setattr(notebook, "OVERRIDDEN", {})


def test_param_converts_and_records_overrides(monkeypatch):
    monkeypatch.setenv("SRACL_K", "7")
    monkeypatch.setenv("SRACL_SEED", "2024")
    assert notebook.param("k", 10) == 7 and notebook.param("seed", 2024) == 2024
    assert notebook.OVERRIDDEN == {"k": 7}, "a value equal to the default is no override"
    monkeypatch.setenv("SRACL_K", "many")
    with pytest.raises(ValueError, match="SRACL_K='many': expected a int"):
        notebook.param("k", 10)


def test_check_stored_passes_within_tolerance_and_names_what_is_off():
    notebook.check_stored({"NDCG@10": 0.0683, "MRR": 0.0629}, {"NDCG@10": 0.0682, "MRR": 0.0628}, tol=0.001)
    with pytest.raises(AssertionError, match=r"1 of 2 numbers .* MRR: 0.07, stored 0.0628"):
        notebook.check_stored({"NDCG@10": 0.0683, "MRR": 0.07}, {"NDCG@10": 0.0682, "MRR": 0.0628}, tol=0.001)
    with pytest.raises(AssertionError, match="NDCG@10: nan"):
        notebook.check_stored({"NDCG@10": float("nan")}, {"NDCG@10": 0.0682}, tol=0.001)
    with pytest.raises(KeyError, match="HR@10"):
        notebook.check_stored({}, {"HR@10": 0.1}, tol=0.001)


def test_check_stored_compares_only_the_default_run(monkeypatch, capsys):
    monkeypatch.setenv("SRACL_DATASET", "my-shop")
    notebook.param("dataset", "ml-100k")
    notebook.check_stored({"MRR": 0.5}, {"MRR": 0.0628}, tol=0.001)
    assert "not compared under {'dataset': 'my-shop'}" in capsys.readouterr().out


def test_parameter_list_matches_the_notebooks():
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    read = {name for path in notebooks.glob("*.py") for name in re.findall(r'param\("(\w+)"', path.read_text())}
    assert read == notebook.NOTEBOOK_PARAMETERS


def test_a_mistyped_variable_is_reported(monkeypatch):
    monkeypatch.setenv("SRACL_EPOCH", "3")
    with pytest.raises(ValueError, match="SRACL_EPOCH is set but no notebook reads it"):
        notebook.param("seed", 2024)
    monkeypatch.setenv("SRACL_PROFIL", "paper")
    with pytest.raises(ValueError, match="did you mean SRACL_PROFILE"):
        notebook.check_variables({"SRACL_PROFIL": "paper"})
    notebook.check_variables({"SRACL_DATA_DIR": "/data", "SRACL_PROFILE": "paper", "OTHER": "x"})


def test_expect_asserts_in_the_default_run_and_reports_under_overrides(monkeypatch, capsys):
    notebook.expect(True, "SASRec beats popularity")
    with pytest.raises(AssertionError, match="SASRec beats popularity"):
        notebook.expect(False, "SASRec beats popularity")
    monkeypatch.setenv("SRACL_DATASET", "my-shop")
    notebook.param("dataset", "ml-100k")
    notebook.expect(False, "SASRec beats popularity")
    assert "DOES NOT HOLD here (the default run asserts it): SASRec beats popularity" in capsys.readouterr().out


def test_a_notebook_run_alone_runs_the_earlier_notebooks_it_reads_once_per_setting(tmp_path, monkeypatch, capsys):
    """run_earlier_notebooks / mark_finished on stand-in notebooks 03-05: missing files are made by running
    the earlier notebooks in order; found ones are not run again; another value of a parameter a notebook
    read runs it again, and every notebook that read its files; a failing one names its log."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    runs = tmp_path / "runs.txt"
    for number, reads in {"03": "seed", "04": "k", "05": "k"}.items():
        (repo / "notebooks" / f"{number}_stand_in.py").write_text(
            "from sracl_lite.notebook import param, mark_finished\n"
            f"param('dataset', 'toy'); param('{reads}', 1)\n"
            f"open({str(runs)!r}, 'a').write('{number} ')\n"
            f"mark_finished('{number}', 'toy')\n")
    monkeypatch.setattr(notebook.paths, "REPO", repo)
    monkeypatch.setattr(notebook, "READ", {})
    monkeypatch.setenv("SRACL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", str(Path(notebook.__file__).resolve().parents[1]))
    for name in ("SRACL_SEED", "SRACL_K", "SRACL_DATASET"):
        monkeypatch.delenv(name, raising=False)

    notebook.run_earlier_notebooks("06", "toy")
    assert runs.read_text() == "03 04 05 " and "running notebook 05_stand_in" in capsys.readouterr().out
    notebook.run_earlier_notebooks("06", "toy")
    assert runs.read_text() == "03 04 05 "
    assert "files of notebooks 03, 04, 05 found" in capsys.readouterr().out
    monkeypatch.setenv("SRACL_SEED", "2")           # read by 03 only: 03 again, then 05, which read 03's files
    notebook.run_earlier_notebooks("06", "toy")
    assert runs.read_text() == "03 04 05 03 05 "
    monkeypatch.setenv("SRACL_K", "3")
    (repo / "notebooks" / "04_stand_in.py").write_text("raise SystemExit('broken on purpose')\n")
    with pytest.raises(RuntimeError, match=r"notebook 04_stand_in failed; its whole output is in .*04\.log"):
        notebook.run_earlier_notebooks("05", "toy")
