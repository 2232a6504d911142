"""scripts/paper_setting.py end to end on a small SNAP-format fixture and a local HTTP endpoint,
including an LLM stage that stops midway and a resume that asks no prompt twice."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from sracl_lite import paths
from sracl_lite.encoder import EncoderConfig, TextEncoder
from sracl_lite.standin import StandinEndpoint, standin_answer, write_snap_files

spec = importlib.util.spec_from_file_location("paper_setting", paths.REPO / "scripts" / "paper_setting.py")
paper_setting = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_setting)

VARIANTS = ["ref_sasrec", "ref_llm", "ref_llm_user", "ref_random", "ref_llm_cos_t02"]


def shop(n_users=40, n_items=24, seed=0):
    """Interactions in time order: every user buys 6-9 distinct items (5-core after filtering)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(1, n_users + 1):
        bought = rng.choice(np.arange(1, n_items + 1), size=rng.integers(6, 10), replace=False)
        users += [user] * len(bought)
        items += bought.tolist()
    return np.array(users), np.array(items)


def command(tmp_path, endpoint, *more):
    return ["--dataset", "amazon-beauty", "--data-dir", str(tmp_path / "data"), "--results-dir",
            str(tmp_path / "results"), "--base-url", endpoint.url, "--model", "fixture", "--api-key-env",
            "SRACL_TEST_KEY", "--concurrency", "4", "--sample", "5", "--encoder", "all-MiniLM-L6-v2",
            "--pooling", "model", "--device", "cpu", "--variants", *VARIANTS, "--seeds-primary", "2",
            "--seeds-other", "1", "--workers", "1", "--grid-args", "--epochs 1", "--no-notebook", *more]


def test_the_recipe_runs_stops_midway_and_resumes_asking_nothing_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SRACL_TEST_KEY", "local")
    monkeypatch.setenv("SRACL_DATA_DIR", str(tmp_path / "data"))
    write_snap_files(tmp_path / "data" / "raw", "Beauty", *shop())
    endpoints = []

    def run(*more, **endpoint_options):  # one address throughout: answers are cached per model and address
        port = endpoints[0].server.server_address[1] if endpoints else 0
        endpoints.append(StandinEndpoint(port=port, **endpoint_options))
        try:
            paper_setting.main(command(tmp_path, endpoints[-1], *more))
        finally:
            endpoints[-1].close()

    # Without --yes the LLM stage asks a sample, prints the estimate and stops.
    with pytest.raises(SystemExit, match="--yes"):
        run("--stages", "data,llm")
    assert sum(endpoints[-1].asked.values()) == 5
    assert "answer tokens" in capsys.readouterr().out
    # With --yes, an endpoint that fails after 30 answers stops the stage midway ...
    with pytest.raises(RuntimeError, match="HTTP 400"):
        run("--stages", "llm", "--yes", fail_after=30)
    # ... and the resumed run asks only what was never answered, then every later stage runs.
    run("--yes")
    asked = [prompt for endpoint in endpoints for prompt, n in endpoint.asked.items() for _ in range(n)]
    ds = paper_setting.stage_data(paper_setting.parse_args(command(tmp_path, endpoints[-1])))
    items, prefixes = paper_setting.all_prompts(ds)
    assert sorted(asked) == sorted(set(items.values()) | set(prefixes.values()))  # each prompt once
    assert len(endpoints[1].asked) == 30

    # Each training prefix's row of the embeddings is its own profile's embedding.
    vectors = np.load(ds.artefact_dir / "paper" / "embeddings.npz")
    pool = paper_setting.R.prefix_pool(ds.train_sequences, whole=False)
    assert vectors["pool"].shape[0] == len(pool) == len(prefixes)
    encoder = TextEncoder(EncoderConfig(model_id="all-MiniLM-L6-v2", device="cpu", cache_dir=None,
                                        show_progress=False))
    rows = [0, len(pool) // 2, len(pool) - 1]
    own = encoder.encode([standin_answer(prefixes[pool.keys()[r]]) for r in rows])
    np.testing.assert_allclose(vectors["pool"][rows], own, atol=1e-5)

    # The tables the grid reads, every searched neighbour another prefix.
    semantic = ds.artefact_dir / "semantic"
    made = json.loads((semantic / "paper_tables.json").read_text())["tables"]
    assert {"reference_llm_text", "reference_llm_text_user", "reference_random", "reference_collaborative",
            "reference_llm_text_randpool", "reference_template_text", "reference_titles"} <= set(made)
    table = np.load(semantic / "reference_llm_text_user.npz")
    users = table["pool_users"]
    assert (users[table["pool_neighbors"]] != users[:, None]).all()

    # The grid: primaries at 2 seeds, the others at 1, then the cosine variant and the variant best on
    # validation (judged on seed 1 of each) at 2.
    runs = pd.read_csv(tmp_path / "results" / "amazon-beauty.csv")
    seeds = runs.groupby("variant")["seed"].nunique().to_dict()
    best = paper_setting.report.chosen_on_validation(runs[runs["seed"] == 1], VARIANTS)
    assert seeds == {v: 2 if v in VARIANTS[:2] + ["ref_llm_cos_t02", best] else 1 for v in VARIANTS}
    assert (runs["epochs"] == 1).all()
    out = capsys.readouterr().out
    assert "ref_llm_user" in out and "decision" in out

    # Run again: nothing is asked, embedded or trained twice, and with nothing left no estimate is needed.
    run("--yes")
    assert not endpoints[-1].asked
    run("--stages", "llm")
    assert not endpoints[-1].asked
    assert pd.read_csv(tmp_path / "results" / "amazon-beauty.csv").equals(runs)
    out = capsys.readouterr().out
    assert "answered before" in out and "found" in out


def test_pooler_output_embeddings_are_raw_and_kept_apart_from_the_models_own(tmp_path):
    texts = ["A gentle daily face cream.", "Volumizing mascara, black, 0.3 oz, long-lasting and smudge-proof."]
    configs = {pooling: EncoderConfig(model_id="all-MiniLM-L6-v2", device="cpu", cache_dir=tmp_path,
                                      show_progress=False, pooler_output=pooling, batch_size=batch)
               for pooling, batch in ((False, 64), (True, 1))}
    own, pooled = (TextEncoder(configs[p]).encode(texts) for p in (False, True))
    np.testing.assert_allclose(np.linalg.norm(own, axis=1), 1, atol=1e-5)
    assert not np.allclose(np.linalg.norm(pooled, axis=1), 1)   # the authors' raw scale, not unit rows
    # padding in a batch of two gives the embeddings of one text at a time
    batched = TextEncoder(EncoderConfig(model_id="all-MiniLM-L6-v2", device="cpu", cache_dir=None,
                                        show_progress=False, pooler_output=True, batch_size=64)).encode(texts)
    np.testing.assert_allclose(batched, pooled, atol=1e-4)
    assert len(list(tmp_path.glob("*.npz"))) == 2                  # one cache file per pooling
