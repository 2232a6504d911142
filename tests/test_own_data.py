"""Your own data through every notebook, with the commands of the README's "Use your own data".

A small shop in a temporary folder: text ids (Amazon-like), ISO-8601 times, a title holding a comma.
The real offline LLM answers every item, user and probe prompt (notebook 02, SRACL_GENERATE_ALL=1), the
longest part of this test: 22 prompts of at most 32 new tokens (SRACL_MAX_NEW_TOKENS), about 15 s on a
2-core AMD EPYC (with the default 64, 27 s, and notebook 02 took 43 s instead of 28 s). The shop is
about as small as the notebooks' 5-core filter allows (8 users who each buy 5-7 of 8 items; 7 users keep
5 after it), so that the LLM has few prompts to answer.
"""
import csv
import datetime
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
KINDS = ["tea", "coffee", "mug", "kettle", "grinder", "filter"]


def write_shop(folder: Path, n_users: int = 8, n_items: int = 8, seed: int = 0):
    """interactions.csv and items.csv: user i buys 5 + i % 3 distinct items, one an hour."""
    rng = random.Random(seed)
    items = [(f"B{1000 + i:05d}X", f"{rng.choice(['Green', 'Black', 'Mild', 'Bold'])} {KINDS[i % 6]}, no. {i}",
              KINDS[i % 6]) for i in range(n_items)]
    with open(folder / "items.csv", "w", newline="") as f:
        csv.writer(f).writerows([("item_id", "title", "categories"), *items])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    rows = [(f"A{u:02d}ZQ", items[i][0], (start + datetime.timedelta(days=u, hours=j)).isoformat())
            for u in range(n_users) for j, i in enumerate(rng.sample(range(n_items), 5 + u % 3))]
    with open(folder / "interactions.csv", "w", newline="") as f:
        csv.writer(f).writerows([("user_id", "item_id", "timestamp"), *rows])
    return folder / "interactions.csv", folder / "items.csv"


def run(command, env, cwd):
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def outputs(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    texts = [o.get("text", "") for c in cells for o in c.get("outputs", [])]
    return "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)


def test_notebooks_and_scripts_run_on_your_own_files(tmp_path):
    # Relative file names, run from the folder that holds them, as a user would type them.
    write_shop(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRACL_")}
    env.update(SRACL_DATA_DIR="data", SRACL_DATASET="shop", SRACL_INTERACTIONS="interactions.csv",
               SRACL_ITEMS="items.csv", SRACL_RESULTS_DIR="results", SRACL_GENERATE_ALL="1",
               SRACL_N_LIVE="1", SRACL_MAX_NEW_TOKENS="32")
    notebooks = [sys.executable, str(REPO / "scripts" / "run_notebooks.py"), "--out", "executed"]
    run([*notebooks, "01", "02", "03", "04", "05", "06"], env, tmp_path)
    run([sys.executable, str(REPO / "scripts" / "results_grid.py"), "--dataset", "shop",
         "--interactions", "interactions.csv", "--items", "items.csv", "--variants", "sasrec", "sracl",
         "--seeds", "1", "2", "--device", "cpu", "--out", "results"], env, tmp_path)
    summary = run([*notebooks, "07"], env, tmp_path)
    assert "all 1 notebooks ran" in summary

    data = tmp_path / "data"
    manifest = json.loads((data / "processed" / "shop" / "manifest.json").read_text())
    # one of the 8 users drops out under the 5-core filter
    assert manifest["dataset"] == "shop" and manifest["counts"]["users"] == 7
    assert [s["file"] for s in manifest["sources"]] == ["interactions.csv", "items.csv"]
    assert sorted(p.name for p in (data / "processed").iterdir()) == ["embedding_cache", "shop"]
    [profile] = (data / "profiles" / "shop").iterdir()          # one model's answers, keyed by the name
    assert {"items.jsonl", "users.jsonl", "user_prefixes.jsonl"} <= {p.name for p in profile.iterdir()}
    assert (data / "processed" / "shop" / "semantic" / "llm_text.npz").exists()
    grid = pd.read_csv(tmp_path / "results" / "shop.csv")
    assert set(grid["dataset"]) == {"shop"} and len(grid) == 4

    executed = tmp_path / "executed"
    first = outputs(executed / "01_data_prep.ipynb")
    assert "['interactions.csv', 'items.csv']" in first and "all checks passed" in first
    raw_ids = json.loads((data / "processed" / "shop" / "items.jsonl").read_text().splitlines()[0])["raw_id"]
    assert raw_ids.startswith("B0") and raw_ids.endswith("X")   # text ids kept for display
    for number in ("02", "03", "04", "05", "06", "07"):
        [notebook] = executed.glob(f"{number}_*.ipynb")
        text = outputs(notebook)
        assert "all checks passed" in text, notebook.name
    final = outputs(executed / "07_evaluation.ipynb")
    assert "shop, max_len=20, 4 runs" in final
