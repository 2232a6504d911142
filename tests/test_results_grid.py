"""scripts/results_grid.py end to end on a tiny ID-only file: rows, ranks, replacement, clear errors."""
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sracl_lite.evaluation import load_ranks, rank_key
from sracl_lite.metrics import metrics_from_ranks
from sracl_lite.semantic import SemanticTables

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "results_grid.py"


@pytest.fixture(scope="module")
def grid():
    spec = importlib.util.spec_from_file_location("results_grid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def ids_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SRACL_DATA_DIR", str(tmp_path / "data"))   # artefacts stay in the test folder
    rng = np.random.default_rng(0)
    lines = [f"{user} {item}" for user in range(1, 31) for item in rng.choice(np.arange(1, 13), 8, replace=False)]
    path = tmp_path / "toy_ids.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(grid, ids_file, out, *extra):
    return grid.main(["--dataset", "ids", "--data-path", str(ids_file), "--device", "cpu", "--epochs", "1",
                      "--max-train-prefixes", "64", "--out", str(out), *extra])


def test_grid_writes_rows_and_ranks_and_replaces_reruns(grid, ids_file, tmp_path, capsys):
    out = tmp_path / "results"
    assert run(grid, ids_file, out, "--variants", "sasrec", "gru4rec", "--seeds", "1", "2") == 0
    frame = pd.read_csv(out / "toy-ids.csv")
    assert sorted(zip(frame.variant, frame.seed)) == [("gru4rec", 1), ("gru4rec", 2), ("sasrec", 1), ("sasrec", 2)]
    for column in ("valid_NDCG@20", "test_HR@5", "test_MRR", "best_epoch", "epochs_run", "train_seconds",
                   "command", "git_commit", "torch", "python", "device_name", "bf16", "date", "profile", "data_hash"):
        assert column in frame and frame[column].notna().all(), column
    ranks = load_ranks(out / "toy-ids_ranks.npz")
    assert sorted(ranks) == sorted(rank_key(v, s, 20) for v in ("sasrec", "gru4rec") for s in (1, 2))
    assert all(len(r) == 30 for r in ranks.values()), "one rank per user"
    row = frame[(frame.variant == "sasrec") & (frame.seed == 2)].iloc[0]
    recomputed = metrics_from_ranks(ranks[rank_key("sasrec", 2, 20)])
    assert recomputed["NDCG@20"] == pytest.approx(row["test_NDCG@20"]), "CSV and ranks file disagree"

    before = frame.set_index(["variant", "seed"])["date"]
    assert run(grid, ids_file, out, "--variants", "sasrec", "--seeds", "2", "--max-len", "20", "8", "--force") == 0
    after = pd.read_csv(out / "toy-ids.csv")
    assert len(after) == 5, "seed 2 at max_len 20 replaced (--force), max_len 8 added, the rest kept"
    assert "again toy-ids sasrec max_len=20 seed=2: --force; the new run replaces the row" in capsys.readouterr().out
    kept = after[(after.variant == "gru4rec")].set_index(["variant", "seed"])["date"]
    assert (kept == before.loc[kept.index]).all()
    assert rank_key("sasrec", 2, 8) in load_ranks(out / "toy-ids_ranks.npz")


def test_grid_errors_name_the_fix(grid, ids_file, tmp_path):
    with pytest.raises(SystemExit, match="no item text"):
        run(grid, ids_file, tmp_path / "results", "--variants", "sracl")
    with pytest.raises(SystemExit):
        grid.main(["--variants", "nonsense", "--dry-run"])
    paths = grid.check_tables("ml-100k", tmp_path / "no-artefact", ["sasrec"])
    assert paths == {"sasrec": None}
    with pytest.raises(SystemExit, match="notebook 03"):
        grid.check_tables("ml-100k", tmp_path / "no-artefact", ["sasrec", "sracl_template"])


def test_own_data_needs_a_name_and_both_files(grid, capsys):
    with pytest.raises(SystemExit):
        grid.main(["--dataset", "my-shop", "--interactions", "i.csv", "--dry-run"])
    assert "for your own data give one --dataset NAME with --interactions FILE --items FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grid.main(["--dataset", "ml-100k", "--interactions", "i.csv", "--items", "t.csv", "--dry-run"])
    assert "name it with --dataset NAME" in capsys.readouterr().err
    args = grid.parse_args(["--dataset", "my-shop", "--interactions", "i.csv", "--items", "t.csv"])
    kwargs = grid.load_kwargs("my-shop", args)
    assert Path(kwargs["interactions_path"]).is_absolute() and kwargs["items_path"].endswith("t.csv")


def test_reference_variants_on_ids_with_tables_built_from_interactions(grid, ids_file, tmp_path):
    spec = importlib.util.spec_from_file_location("build_tables", SCRIPT.with_name("build_tables.py"))
    build_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_tables)
    out = tmp_path / "results"
    with pytest.raises(SystemExit, match="build_tables.py"):     # not built yet: the error says how
        run(grid, ids_file, out, "--variants", "ref_collab")
    with pytest.raises(SystemExit):                               # no item text on an ids file
        build_tables.main(["--dataset", "ids", "--data-path", str(ids_file), "--sources", "titles"])
    build_tables.main(["--dataset", "ids", "--data-path", str(ids_file), "--sources", "collaborative", "random",
                       "--exclude-user", "collaborative", "--ablations", "collaborative"])
    semantic = tmp_path / "data" / "processed" / "ids" / "semantic"
    same_user = SemanticTables.load(semantic / "reference_collaborative_user.npz")
    users = same_user.pool_users
    assert (users[same_user.pool_neighbors] != users[:, None]).all()
    ranked = SemanticTables.load(semantic / "reference_collaborative.npz")
    assert (ranked.pool_neighbors != np.arange(len(users))[:, None]).mean() > 0.9 and len(users) == 30 * 5
    assert run(grid, ids_file, out, "--variants", "ref_collab", "ref_collab_user", "ref_random", "duorec",
               "ref_sasrec", "ref_cl4srec", "ref_collab_randpool", "ref_collab_uniform_drop") == 0
    rows = pd.read_csv(out / "toy-ids.csv").set_index("variant")
    assert rows.loc["ref_collab_uniform_drop", "synthesizer"] == "uniform_dropout"
    assert rows.loc["ref_collab_randpool", "tables_sha256"] != rows.loc["ref_collab", "tables_sha256"]
    assert not rows.loc["ref_collab", "exclude_history"] and rows.loc["ref_collab", "cross_loss"] == "nt_xent"
    # the baselines under the reference preset share its protocol, without any semantic loss
    assert not rows.loc["ref_sasrec", "exclude_history"] and rows.loc["ref_sasrec", "early_stop"] == "recbole"
    assert rows.loc["ref_sasrec", "cross_loss"] == "off" and rows.loc["ref_cl4srec", "intra_aug"] == "cl4srec"
    assert rows.loc["duorec", "exclude_history"]
    assert rows.loc["duorec", "intra_aug"] == "duorec" and rows.loc["duorec", "similarity"] == "dot"
    # the sparse view: training sequences cut to their last 3 items, its own tables and results file
    build_tables.main(["--dataset", "ids", "--data-path", str(ids_file), "--sources", "collaborative",
                       "--train-last", "3"])
    sparse_tables = SemanticTables.load(tmp_path / "data" / "processed" / "ids-last3" / "semantic"
                                        / "reference_collaborative.npz")
    assert len(sparse_tables.pool_users) == 30 * 2
    assert run(grid, ids_file, out, "--variants", "sasrec", "ref_collab", "--train-last", "3") == 0
    sparse = pd.read_csv(out / "toy-ids-last3.csv")
    assert set(sparse["variant"]) == {"sasrec", "ref_collab"}
    assert (sparse["data_hash"] != rows["data_hash"].iloc[0]).all()


def test_jobs_run_seed_major_and_workers_share_the_compile_threads(grid, ids_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "")   # recorded, so that the test leaves it as it was
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS")
    monkeypatch.setattr(grid.os, "cpu_count", lambda: 8)
    assert run(grid, ids_file, tmp_path / "results", "--variants", "sasrec", "gru4rec", "--seeds", "1", "2",
               "--workers", "4", "--dry-run") == 0
    listed = [line.split()[1:4] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == [["sasrec", "max_len=20", "seed=1"], ["gru4rec", "max_len=20", "seed=1"],
                      ["sasrec", "max_len=20", "seed=2"], ["gru4rec", "max_len=20", "seed=2"]]
    assert grid.os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "2"   # 8 cores over 4 workers


def test_recorded_runs_are_skipped_and_runs_of_other_settings_replaced(grid, ids_file, tmp_path, capsys):
    out = tmp_path / "results"
    assert run(grid, ids_file, out, "--variants", "sasrec", "--seeds", "1", "2") == 0
    first = pd.read_csv(out / "toy-ids.csv").set_index("seed")
    assert first["settings_hash"].nunique() == 2, "the seed is part of what a run computes"
    capsys.readouterr()
    assert run(grid, ids_file, out, "--variants", "sasrec", "--seeds", "1", "2", "3") == 0
    said = capsys.readouterr().out
    assert said.count("skipped toy-ids sasrec max_len=20 seed=") == 2 and "1 runs to train" in said
    again = pd.read_csv(out / "toy-ids.csv").set_index("seed")
    assert (again.loc[[1, 2], "date"] == first["date"]).all() and 3 in again.index
    assert run(grid, ids_file, out, "--variants", "sasrec", "--seeds", "1", "--patience", "3") == 0
    said = capsys.readouterr().out
    assert "again toy-ids sasrec max_len=20 seed=1: its recorded row has other settings" in said
    replaced = pd.read_csv(out / "toy-ids.csv").set_index("seed")
    assert replaced.loc[1, "patience"] == 3 and replaced.loc[1, "settings_hash"] != first.loc[1, "settings_hash"]


def test_a_grid_killed_half_way_finishes_only_the_missing_runs(ids_file, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, str(SCRIPT), "--dataset", "ids", "--data-path", str(ids_file), "--device", "cpu",
               "--epochs", "3", "--max-train-prefixes", "200", "--out", str(out), "--variants", "sasrec",
               "--seeds", "1", "2", "3", "4", "5", "6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    grid_process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    csv_path, deadline = out / "toy-ids.csv", time.monotonic() + 300
    while not csv_path.exists() and grid_process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    grid_process.send_signal(signal.SIGKILL)          # as a closed laptop or a lost Colab runtime would
    grid_process.communicate()
    recorded = pd.read_csv(csv_path)
    assert 1 <= len(recorded) < 6, f"the kill came after {len(recorded)} of 6 runs; the test needs it half-way"
    assert recorded["test_NDCG@20"].notna().all(), "only whole rows"
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert done.count("skipped toy-ids sasrec") == len(recorded)
    assert f"{6 - len(recorded)} runs to train" in done
    final = pd.read_csv(csv_path)
    assert sorted(final.seed) == [1, 2, 3, 4, 5, 6]
    kept = final.set_index("seed").loc[recorded.seed, "date"]
    assert (kept.to_numpy() == recorded["date"].to_numpy()).all(), "recorded runs are not trained again"
    assert not list((out / ".unfinished").rglob("*.pt")), "every state file is gone once its run is recorded"


def test_a_search_trains_every_combination_as_its_own_named_configuration(grid, ids_file, tmp_path, capsys):
    assert grid.search_configurations(["lr=1e-3,5e-4", "model.dropout=0.2"]) == [
        {"lr": 1e-3, "model.dropout": 0.2}, {"lr": 5e-4, "model.dropout": 0.2}]
    assert grid.search_configurations(["similarity=cosine"]) == [{"similarity": "cosine"}]
    with pytest.raises(SystemExit):
        grid.parse_args(["--set", "seed=1,2"])          # seeds are --seeds, not a searched setting
    assert "NAME one of" in capsys.readouterr().err
    job = dict(variant="ref_sasrec", overrides={"lr": 5e-4, "model.dropout": 0.2}, profile_settings={}, max_len=20,
               seed=1, bf16=False, progress=False)
    config = grid.train_config(job, "cpu")
    assert (config.lr, config.model.dropout, config.model.attn_dropout) == (5e-4, 0.2, 0.5), "the rest as the preset"
    out = tmp_path / "results"
    assert run(grid, ids_file, out, "--variants", "sasrec", "--set", "lr=1e-3,2e-3", "--seeds", "1") == 0
    rows = pd.read_csv(out / "toy-ids.csv").set_index("variant")
    assert sorted(rows.index) == ["sasrec@lr=0.001", "sasrec@lr=0.002"]
    assert rows.loc["sasrec@lr=0.002", "searched"] == "lr=0.002"
    assert rows["settings_hash"].nunique() == 2 and rows["test_NDCG@20"].nunique() == 2
    capsys.readouterr()
    assert run(grid, ids_file, out, "--variants", "sasrec", "--set", "lr=1e-3,2e-3", "--seeds", "1") == 0
    assert capsys.readouterr().out.count("skipped toy-ids sasrec@lr=") == 2
