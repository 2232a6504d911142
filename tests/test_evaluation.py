"""Evaluation helpers on hand-made results: summaries, paired tests, length groups, merging runs."""
import math

import numpy as np
import pandas as pd
import pytest

from sracl_lite.experiments import PRESETS, VARIANTS
from sracl_lite.evaluation import (converged_rows, length_groups, mean_std_text,
                                   merge_results, metrics_by_group, paired_test, per_user_metric, rank_key,
                                   summary_table, variant_order)
from sracl_lite.metrics import metric_names


def results_frame(values: dict, split="test"):
    """{(variant, seed): NDCG@20} -> rows with every metric column (others equal to NDCG@20)."""
    rows = []
    for (variant, seed), value in values.items():
        row = {"variant": variant, "seed": seed, "max_len": 20}
        row.update({f"{split}_{m}": value for m in metric_names()})
        rows.append(row)
    return pd.DataFrame(rows)


def test_summary_means_std_and_relative_change():
    frame = results_frame({("sracl", 1): 0.12, ("sracl", 2): 0.14, ("sasrec", 1): 0.10, ("sasrec", 2): 0.10,
                           ("sasrec", 3): 0.10, ("mystery", 1): 0.05})
    table = summary_table(frame)
    assert list(table.index) == ["sasrec", "sracl", "mystery"], "registry order, unknown names last"
    assert table.loc["sracl", "NDCG@20"] == pytest.approx(0.13)
    assert table.loc["sracl", "NDCG@20 std"] == pytest.approx(np.std([0.12, 0.14], ddof=1))
    assert table.loc["sasrec", "n_seeds"] == 3 and table.loc["sasrec", "NDCG@20 std"] == 0
    assert table.loc["sracl", "NDCG@20 vs sasrec %"] == pytest.approx(30.0)
    assert table.loc["mystery", "HR@5 vs sasrec %"] == pytest.approx(-50.0)
    assert math.isnan(summary_table(frame[frame.variant == "mystery"]).loc["mystery", "NDCG@20 std"]), \
        "one seed has no spread"
    text = mean_std_text(table)
    assert text.loc["sracl", "NDCG@20"] == "0.1300 ± 0.0141"
    assert mean_std_text(summary_table(frame[frame.variant == "mystery"])).loc["mystery", "MRR"] == "0.0500"


def test_summary_without_baseline_and_by_max_len():
    frame = results_frame({("cl4srec", 1): 0.2})
    assert math.isnan(summary_table(frame).loc["cl4srec", "NDCG@20 vs sasrec %"])
    two = pd.concat([results_frame({("sasrec", 1): 0.10, ("cl4srec", 1): 0.12}),
                     results_frame({("sasrec", 1): 0.20, ("cl4srec", 1): 0.22}).assign(max_len=50)])
    table = summary_table(two, by=("variant", "max_len"))
    assert list(table.index) == [("sasrec", 20), ("sasrec", 50), ("cl4srec", 20), ("cl4srec", 50)]
    assert table.loc[("cl4srec", 20), "NDCG@20 vs sasrec %"] == pytest.approx(20.0)
    assert table.loc[("cl4srec", 50), "NDCG@20 vs sasrec %"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="lack column"):
        summary_table(frame, split="valid")


def test_merge_replaces_rerun_rows_and_keeps_others():
    old = pd.DataFrame({"variant": ["sasrec", "sasrec", "sracl"], "max_len": 20, "seed": [1, 2, 1],
                        "value": [1, 2, 3]})
    new = pd.DataFrame({"variant": ["sasrec", "sasrec"], "max_len": [20, 50], "seed": [2, 2], "value": [20, 50]})
    merged = merge_results(old, new)
    assert len(merged) == 4
    got = merged.set_index(["variant", "max_len", "seed"])["value"]
    assert got[("sasrec", 20, 2)] == 20 and got[("sasrec", 20, 1)] == 1 and got[("sracl", 20, 1)] == 3
    assert got[("sasrec", 50, 2)] == 50, "another max_len is another run"
    assert merge_results(None, new).equals(new)
    with pytest.raises(ValueError, match="seed"):
        merge_results(old.drop(columns="seed"), new)


def test_per_user_metric_averages_seeds():
    # ranks 0 and 1: NDCG@20 = 1 and 1/log2(3); rank 30 is outside the top 20
    got = per_user_metric([np.array([0, 30]), np.array([1, 30])], "NDCG@20")
    assert got == pytest.approx([(1 + 1 / math.log2(3)) / 2, 0.0])
    with pytest.raises(ValueError, match="different numbers"):
        per_user_metric([np.array([0, 1]), np.array([0])])


def test_paired_test_detects_a_clear_improvement():
    rng = np.random.default_rng(0)
    baseline = rng.integers(5, 200, size=300)
    better = baseline // 4                             # every user ranked higher
    result = paired_test([better], [baseline], "NDCG@20")
    # users whose better rank is still outside the top 20 tie at NDCG@20 = 0
    assert result["wins"] == ((better < 20).sum()) and result["losses"] == 0
    assert result["ties"] == (better >= 20).sum() and result["diff"] > 0
    assert result["wilcoxon_p"] < 1e-10 and result["ttest_p"] < 1e-10
    assert result["ci_low"] > 0
    assert result["mean_a"] == pytest.approx(per_user_metric([better]).mean())
    worse = paired_test([baseline], [better], "NDCG@20")
    assert worse["diff"] == -result["diff"] and worse["ci_high"] < 0


def test_paired_test_known_outcome_and_no_difference():
    # 10 users: A hits the top (rank 0) where B ranks 1, so each user gains 1 - 1/log2(3);
    # a Wilcoxon signed-rank test on 10 positive differences of equal size gives the exact p = 2/2^10.
    a, b = np.zeros(10, dtype=int), np.ones(10, dtype=int)
    result = paired_test([a], [b], "NDCG@20")
    assert result["diff"] == pytest.approx(1 - 1 / math.log2(3))
    assert result["wilcoxon_p"] == pytest.approx(2 / 2 ** 10)
    assert (result["wins"], result["losses"], result["ties"]) == (10, 0, 0)
    same = paired_test([a], [a], "NDCG@20")
    assert same["diff"] == 0 and same["wilcoxon_p"] == 1.0 and math.isnan(same["ttest_p"])


def test_paired_test_small_gain_is_not_significant():
    ranks_b = np.random.default_rng(0).integers(3, 15, 200)   # every target inside the top 20
    ranks_a = ranks_b.copy()
    ranks_a[:6] -= 3                                  # six users move up, five down: a small net gain
    ranks_a[6:11] += 3
    result = paired_test([ranks_a], [ranks_b], "NDCG@20")
    assert result["diff"] > 0 and (result["wins"], result["losses"]) == (6, 5)
    assert result["wilcoxon_p"] > 0.05 and result["ci_low"] < 0 < result["ci_high"]


def test_paired_test_interval_is_that_of_one_whole_resampling_draw():
    # The resamples are drawn 100 at a time; the interval must be the one that a single
    # (n_bootstrap, users) draw from the same seed gives, also when n_bootstrap is no multiple of 100.
    rng = np.random.default_rng(3)
    ranks_a, ranks_b = rng.integers(0, 40, 3000), rng.integers(0, 40, 3000)
    result = paired_test([ranks_a], [ranks_b], "NDCG@20", n_bootstrap=250, seed=7)
    diff = per_user_metric([ranks_a], "NDCG@20") - per_user_metric([ranks_b], "NDCG@20")
    whole = diff[np.random.default_rng(7).integers(0, len(diff), size=(250, len(diff)))].mean(axis=1)
    assert (result["ci_low"], result["ci_high"]) == (np.quantile(whole, 0.025), np.quantile(whole, 0.975))


def test_length_groups_tertiles_and_fixed_edges():
    groups, edges = length_groups(np.arange(1, 10))
    assert edges == (3, 6)
    assert list(groups.codes) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(groups.categories) == ["short (1-3)", "medium (4-6)", "long (7-9)"]
    groups, edges = length_groups([5, 20, 21, 50, 51, 300], edges=(20, 50))
    assert list(groups.codes) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="increase"):
        length_groups([1, 2, 3], edges=(5, 5))


def test_metrics_by_group():
    groups, _ = length_groups([1, 2, 3, 4, 5, 6], edges=(2, 4))
    ranks = {"sasrec": [np.array([0, 0, 30, 30, 0, 30])], "sracl": [np.array([0, 30, 0, 0, 0, 0])]}
    table = metrics_by_group(ranks, groups, "HR@20")
    assert list(table["users"]) == [2, 2, 2]
    assert list(table["sasrec"]) == [1.0, 0.0, 0.5] and list(table["sracl"]) == [0.5, 1.0, 1.0]
    assert table["sracl vs sasrec %"].iloc[0] == pytest.approx(-50.0)


def test_registry_and_keys():
    assert rank_key("sracl", 3, 50) == "sracl/max_len50/seed3"
    assert variant_order(["zeta", "sracl", "sasrec"]) == ["sasrec", "sracl", "zeta"]
    for name, spec in VARIANTS.items():
        assert set(spec) == {"role", "tables", "config", "description"}, name
        config = {**PRESETS[spec["config"].get("preset", "default")], **spec["config"]}
        semantic = config.get("alpha", 0) > 0 or (config.get("beta", 0) > 0 and
                                                  config.get("intra_aug", "semantic") == "semantic")
        assert semantic == bool(spec["tables"]), f"{name}: needs tables exactly when a semantic loss is on"


def test_converged_rows_mean_over_seeds_of_one_window_with_its_protocol(tmp_path):
    rows = [("ref_sasrec", 20, 1, 0.08), ("ref_sasrec", 20, 2, 0.10), ("ref_sasrec", 50, 1, 0.5),
            ("sasrec", 20, 1, 0.14)]
    frame = pd.DataFrame(rows, columns=["variant", "max_len", "seed", "test_NDCG@20"]).assign(profile="paper")
    frame.to_csv(tmp_path / "r.csv", index=False)
    table = converged_rows(tmp_path / "r.csv", {"a": "ref_sasrec", "b": "sasrec", "c": "ref_llm"}, 20,
                           metrics=("NDCG@20",))
    assert list(table.index) == ["a", "b"]                     # no runs of ref_llm: left out
    assert table.loc["a", "seeds"] == 2 and table.loc["a", "NDCG@20"] == pytest.approx(0.09)
    assert table.loc["a", "test ranks"] == "all items" and table.loc["b", "test ranks"] == "history excluded"
    assert converged_rows(tmp_path / "missing.csv", {"a": "sasrec"}, 20).empty
