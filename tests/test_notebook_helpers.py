"""sracl_lite.notebook: parameters from SRACL_* variables, and checks against the stored run."""
import pytest

from sracl_lite import notebook


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    monkeypatch.setattr(notebook, "OVERRIDDEN", {})


def test_param_converts_and_records_overrides(monkeypatch):
    monkeypatch.setenv("SRACL_EPOCHS", "7")
    monkeypatch.setenv("SRACL_SEED", "2024")
    assert notebook.param("epochs", 4) == 7 and notebook.param("seed", 2024) == 2024
    assert notebook.OVERRIDDEN == {"epochs": 7}, "a value equal to the default is no override"
    monkeypatch.setenv("SRACL_EPOCHS", "many")
    with pytest.raises(ValueError, match="SRACL_EPOCHS='many': expected a int"):
        notebook.param("epochs", 4)


def test_check_stored_passes_within_tolerance_and_names_what_is_off():
    notebook.check_stored({"NDCG@10": 0.0683, "MRR": 0.0629}, {"NDCG@10": 0.0682, "MRR": 0.0628}, tol=0.001)
    with pytest.raises(AssertionError, match=r"1 of 2 numbers .* MRR: 0.07, stored 0.0628"):
        notebook.check_stored({"NDCG@10": 0.0683, "MRR": 0.07}, {"NDCG@10": 0.0682, "MRR": 0.0628}, tol=0.001)
    with pytest.raises(AssertionError, match="NDCG@10: nan"):
        notebook.check_stored({"NDCG@10": float("nan")}, {"NDCG@10": 0.0682}, tol=0.001)
    with pytest.raises(KeyError, match="HR@10"):
        notebook.check_stored({}, {"HR@10": 0.1}, tol=0.001)


def test_check_stored_compares_only_the_default_run(monkeypatch, capsys):
    monkeypatch.setenv("SRACL_DATASET", "csv")
    notebook.param("dataset", "ml-100k")
    notebook.check_stored({"MRR": 0.5}, {"MRR": 0.0628}, tol=0.001)
    assert "not compared under {'dataset': 'csv'}" in capsys.readouterr().out
