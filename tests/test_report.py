"""Notebook 07's reading of a results grid, on hand-made runs whose outcome is known."""
import numpy as np
import pandas as pd
import pytest

from sracl_lite.evaluation import REPORTED_METRICS, length_groups, rank_key
from sracl_lite.metrics import metrics_from_ranks
from sracl_lite.report import PROVENANCE_COLUMNS, RunGrid, check_results

N_USERS = 60


def grid_runs(ranks_by_run: dict) -> tuple:
    """{(variant, seed): (n_users,) test ranks} -> (CSV-like rows, ranks file), metrics from the ranks."""
    rows, ranks = [], {}
    for (variant, seed), r in ranks_by_run.items():
        metrics = metrics_from_ranks(r)
        row = {"variant": variant, "seed": seed, "max_len": 20, "valid_metric": "MRR@10", "best_epoch": 3,
               "epochs_run": 5, "train_seconds": 10.0 * seed, "device_name": "cpu"}
        row |= {f"test_{m}": metrics[m] for m in REPORTED_METRICS}
        row |= {f"valid_{m}": metrics[m] for m in REPORTED_METRICS + ["MRR@10"]}
        row |= {column: "x" for column in PROVENANCE_COLUMNS if column != "device_name"}
        rows.append(row)
        ranks[rank_key(variant, seed, 20)] = r
    return pd.DataFrame(rows), ranks


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(0)
    good = {("sracl", seed): rng.integers(0, 5, N_USERS) for seed in (2, 1)}      # targets near the top
    poor = {("sasrec", seed): rng.integers(10, 200, N_USERS) for seed in (2, 1)}  # few in the top 20
    runs, ranks = grid_runs(good | poor)
    return RunGrid(runs, ranks, 20, [("sracl", "sasrec", "does it help?"), ("cl4srec", "sasrec", "?")], "NDCG@20")


def test_grid_tests_what_it_can_and_says_what_is_missing(grid):
    assert list(grid.tests[["A", "B"]].itertuples(index=False, name=None)) == [("sracl", "sasrec")]
    assert grid.not_possible == {("cl4srec", "sasrec"): "cl4srec missing"}
    first_seed = grid.ranks[rank_key("sracl", 1, 20)]
    assert grid.ranks_of("sracl")[0] is first_seed, "ranks come in seed order"
    assert grid.ranks_of("gru4rec") == []
    decided = grid.decision_of("sracl", "sasrec")
    assert (decided["family"], decided["level"], decided["decision"]) == ("primary", 0.05, "gain")
    assert decided["wilcoxon_p"] == grid.tests["wilcoxon_p"].iloc[0], "the per-user view sits beside the decision"


def test_verdict_in_words(grid):
    sentence = grid.verdict("sracl", "sasrec", "SRA-CL", "SASRec")
    assert sentence.startswith("SRA-CL beats SASRec on test NDCG@20 (primary question; ")
    assert "Seed by seed, SRA-CL is ahead in 2 of 2 paired seeds;" in sentence and "Wilcoxon" in sentence
    short = grid.verdict("sracl", "sasrec", "SRA-CL", "SASRec", details=False)
    assert sentence.startswith(short[:-1]) and "Seed by seed" not in short
    assert grid.decision_of("cl4srec", "sasrec") is None
    assert grid.verdict("cl4srec", "sasrec", "CL4SRec", "SASRec") == \
        "CL4SRec vs SASRec: cannot be judged here, cl4srec missing."


def test_tests_by_group_use_each_groups_users_only(grid):
    groups, _ = length_groups(np.repeat([5, 15, 50], N_USERS // 3), edges=(10, 20))
    table = grid.tests_by_group("sracl", "sasrec", groups)
    assert list(table["users"]) == [20, 20, 20] and list(table["group"]) == list(groups.categories)
    short = np.asarray(groups == groups.categories[0])
    for variant in ("sracl", "sasrec"):
        gains = [np.where(r[short] < 20, 1 / np.log2(r[short] + 2), 0) for r in grid.ranks_of(variant)]
        assert table[variant].iloc[0] == pytest.approx(np.mean(gains))


def test_validation_choice_and_validation_vs_test(grid):
    choice = grid.validation_choice(["sracl"])
    assert list(choice.index) == ["sasrec", "sracl"] and list(choice["tables"]) == ["none", "llm_text"]
    assert choice.loc["sracl", "valid"] == pytest.approx(grid.runs.query("variant == 'sracl'")["valid_MRR@10"].mean())
    table = grid.validation_and_test()
    assert table.loc["sasrec", "train_seconds"] == 15.0 and table.loc["sasrec", "device"] == "cpu"


def test_check_results_accepts_a_consistent_file_and_names_what_is_wrong(grid):
    check_results(grid.runs, grid.ranks)
    changed = grid.runs.copy()
    changed.loc[0, "test_MRR"] += 0.01
    with pytest.raises(ValueError, match="test MRR differs from what its ranks give"):
        check_results(changed, grid.ranks)
    with pytest.raises(ValueError, match="appears twice"):
        check_results(pd.concat([grid.runs, grid.runs.iloc[:1]]), grid.ranks)
    with pytest.raises(ValueError, match="no ranks"):
        check_results(grid.runs, {})
    shrinking = grid.runs.copy()
    shrinking["valid_HR@20"] = 0.0
    with pytest.raises(ValueError, match="valid HR@k must grow with k"):
        check_results(shrinking, grid.ranks)
    with pytest.raises(ValueError, match="column git_commit"):
        check_results(grid.runs.assign(git_commit=None), grid.ranks)


def test_reference_decomposition_pairs_name_known_variants():
    from sracl_lite.experiments import VARIANTS
    from sracl_lite.report import reference_comparisons
    ids_only = reference_comparisons("ref_collab")
    assert ("ref_collab_user", "ref_collab") in [(a, b) for a, b, _ in ids_only]
    assert ("ref_random", "ref_collab") in [(a, b) for a, b, _ in ids_only]
    assert not any("template" in a or "titles" in a for a, _, _ in ids_only)   # no item text there
    clean = {("ref_collab_randpool", "ref_collab_user"), ("ref_collab_randsub", "ref_collab"),
             ("ref_collab_uniform_drop", "ref_collab"), ("ref_collab_norm20", "ref_collab")}
    assert clean <= {(a, b) for a, b, _ in ids_only}, "each clean ablation against what it changes one part of"
    with_text = reference_comparisons("ref_llm", cosine="ref_llm_cos_t02")
    assert ("ref_llm_cos_t02", "ref_llm") in [(a, b) for a, b, _ in with_text]
    assert {"ref_template", "ref_titles", "ref_collab", "ref_llm_uniform"} <= {a for a, _, _ in with_text}
    assert all(a in VARIANTS and b in VARIANTS for a, b, _ in ids_only + with_text)


def test_choice_on_validation_ignores_test_and_gain_shares_by_hand():
    from sracl_lite.report import chosen_on_validation, surviving_gain
    rng = np.random.default_rng(1)
    runs, ranks = grid_runs({("ref_sasrec", 1): np.full(N_USERS, 40), ("ref_llm", 1): np.full(N_USERS, 0),
                             ("ref_llm_user", 1): np.full(N_USERS, 9), ("ref_random", 1): np.full(N_USERS, 40),
                             ("ref_llm_cos_t01", 1): rng.integers(0, 3, N_USERS)})
    runs.loc[runs["variant"] == "ref_llm", "valid_MRR@10"] = 0.0     # best on test, worst on validation
    assert chosen_on_validation(runs, ["ref_llm", "ref_llm_cos_t01"]) == "ref_llm_cos_t01"
    assert chosen_on_validation(runs, ["ref_llm_cos_t05"]) == ""
    grid = RunGrid(runs, ranks, 20, [], "NDCG@20")
    shares = surviving_gain(grid, "ref_llm")
    # NDCG@20: 1 at rank 0, 1/log2(11) at rank 9, 0 beyond the top 20
    assert shares["gain"] == pytest.approx(1.0)
    assert shares["ref_llm_user"] == pytest.approx(1 / np.log2(11)) and shares["ref_random"] == 0.0
    assert np.isnan(surviving_gain(grid, "ref_random")["ref_random"])    # no gain: no share


def test_every_variant_of_a_part_has_its_own_style_and_sasrec_is_always_black():
    import matplotlib
    from sracl_lite.experiments import VARIANTS
    from sracl_lite.report import is_reference, variant_styles
    styles = variant_styles(list(VARIANTS))
    for part in (True, False):
        others = [s for v, s in styles.items() if is_reference(v) == part and v not in ("sasrec", "ref_sasrec")]
        assert len(set(others)) == len(others) and len({colour for colour, _, _ in others[:20]}) == len(others[:20])
        first_ten = [colour for colour, _, _ in others[:10]]
        assert first_ten == list(matplotlib.colormaps["tab10"].colors)[:len(first_ten)]
    assert styles["sasrec"][0] == styles["ref_sasrec"][0] == "black"
    assert variant_styles(["ref_llm", "cl4srec"])["ref_llm"] == styles["ref_llm"]   # the same in every plot


def test_reference_grid_plots_and_gain_sentence():
    import matplotlib
    matplotlib.use("Agg")
    from sracl_lite.report import gain_sentence, plot_changes, plot_means, reference_grid, variant_styles
    rng = np.random.default_rng(2)
    runs, ranks = grid_runs({(v, s): rng.integers(0, top, N_USERS) for s in (1, 2) for v, top in
                             [("ref_sasrec", 60), ("ref_collab", 20), ("ref_collab_user", 25), ("ref_random", 60),
                              ("sasrec", 5)]})
    grid, semantic, cosine = reference_grid(runs, ranks)
    assert (semantic, cosine) == ("ref_collab", "") and "sasrec" not in set(grid.runs["variant"])
    tested = set(zip(grid.decisions["A"], grid.decisions["B"]))
    assert {("ref_collab", "ref_sasrec"), ("ref_collab_user", "ref_collab")} <= tested
    assert ("ref_duorec", "ref_sasrec") in grid.not_possible
    assert "of that gain remains without the user's own prefixes" in gain_sentence(grid, semantic, "toy")
    no_gain = RunGrid(grid.runs, grid.ranks, 20, [("ref_random", "ref_sasrec", "?")])
    assert gain_sentence(no_gain, "ref_random").endswith("so there is no established gain to decompose.")
    assert gain_sentence(grid, semantic, "toy") == "toy: " + gain_sentence(grid, semantic)
    variants = ["ref_sasrec", "ref_collab", "ref_random"]
    bars = plot_means({"toy": grid}, variants).axes[0].patches
    expected = [matplotlib.colors.to_rgba(variant_styles(variants)[v][0]) for v in variants]
    assert [b.get_facecolor() for b in bars] == expected
    assert grid.decision_of("ref_collab", "ref_sasrec")["decision"] == "gain"
    plot_changes(grid.decisions.assign(dataset="toy"), "toy")


def test_regime_decisions_and_pairs_also_work_with_nothing_to_read(grid):
    from sracl_lite.report import pairs_in, regime_decisions
    empty = regime_decisions({})
    assert empty.empty and {"dataset", "A", "B", "decision", "wilcoxon_p"} <= set(empty.columns)
    assert list(pairs_in(empty, {("sracl", "sasrec")}).columns) == list(empty.columns)
    both = regime_decisions({"one": (grid, "sracl", ""), "two": (grid, "sracl", "")})
    assert list(both["dataset"]) == ["one", "two"]
    assert len(pairs_in(both, {("sracl", "sasrec")})) == 2 and pairs_in(both, {("sasrec", "sracl")}).empty


def test_the_secondary_level_counts_every_planned_question_run_or_not(grid):
    planned = [("sracl", "sasrec", "primary"), ("sasrec", "sracl", "a secondary that ran"),
               ("cl4srec", "sasrec", "a secondary not run yet")]
    decided = RunGrid(grid.runs, grid.ranks, 20, planned, "NDCG@20")
    assert decided.decision_of("sracl", "sasrec")["level"] == 0.05
    assert decided.decision_of("sasrec", "sracl")["level"] == pytest.approx(0.05 / 2), "m = 2 planned, 1 ran"


def test_searched_grid_keeps_the_trial_best_on_validation_with_all_its_seeds():
    from sracl_lite.report import searched_grid
    rng = np.random.default_rng(1)
    good, poor = (lambda: rng.integers(0, 5, N_USERS)), (lambda: rng.integers(10, 200, N_USERS))
    by_run = {("ref_sasrec@lr=0.001", 1): poor(), ("ref_sasrec@lr=0.002", 1): good(),   # 0.002 wins at seed 1
              ("ref_sasrec@lr=0.002", 2): good(), ("ref_sasrec@lr=0.002", 3): good(),
              ("ref_llm@lr=0.001", 1): poor(), ("ref_llm@lr=0.002", 1): poor(), ("ref_cl4srec@lr=0.001", 1): good()}
    runs, ranks = grid_runs(by_run)
    runs["epochs"] = 200
    runs.loc[runs["variant"] == "ref_llm@lr=0.002", "valid_MRR@10"] = 1.0     # chosen on validation, not on test
    table, grid = searched_grid(runs, ranks, "ref_llm")
    assert table.loc["ref_sasrec", ["variant", "trials", "seeds"]].tolist() == ["ref_sasrec@lr=0.002", 2, 3]
    assert table.loc["ref_llm", "variant"] == "ref_llm@lr=0.002" and table.loc["ref_cl4srec", "seeds"] == 1
    assert sorted(grid.runs["variant"].unique()) == ["ref_sasrec"], "a choice with the search seed only stays out"
    assert grid.ranks_of("ref_sasrec")[1] is ranks[rank_key("ref_sasrec@lr=0.002", 2, 20)]
    assert [c[:2] for c in grid.comparisons][0] == ("ref_llm", "ref_sasrec")
    assert ("ref_llm", "ref_sasrec") in grid.not_possible and grid.decisions.empty
