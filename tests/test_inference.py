"""The decision rule of every verdict (sracl_lite/inference.py) on runs whose answer is known."""
import numpy as np
import pytest

from sracl_lite.evaluation import paired_test, per_user_metric
from sracl_lite.inference import LEVEL, SeedUserBootstrap, decision_sentence, family_levels

N_USERS = 400


def runs_near(rank, seeds, spread, rng):
    """Per-seed rank arrays whose targets sit around `rank` (NDCG@20 then falls with rank)."""
    return [np.clip(rng.integers(0, 2 * spread + 1, N_USERS) + rank - spread, 0, None) for _ in range(seeds)]


def test_clear_gain_and_loss_are_decided_and_sentences_say_so():
    rng = np.random.default_rng(0)
    runs = {"good": runs_near(2, 5, 2, rng), "poor": runs_near(12, 5, 2, rng)}
    boot = SeedUserBootstrap.of(runs, n_draws=2000)
    gain, loss = boot.compare("good", "poor"), boot.compare("poor", "good")
    assert (gain["decision"], loss["decision"]) == ("gain", "loss")
    assert gain["ci_low"] > 0 and loss["ci_high"] < 0 and gain["p"] < LEVEL
    assert gain["diff"] == pytest.approx(-loss["diff"])
    assert decision_sentence(gain, "A", "B").startswith("A beats B on test NDCG@20 (primary question; ")
    assert decision_sentence(loss, "A", "B").startswith("A is worse than B")


def test_run_to_run_spread_turns_a_per_user_significant_gain_into_undecided():
    # A's seeds are one excellent and one poor model; averaged per user they look slightly better than B
    # on every user, so the per-user test is sure, while a third training run could land anywhere.
    rng = np.random.default_rng(1)
    b = runs_near(10, 3, 1, rng)
    a = [np.full(N_USERS, 1), np.full(N_USERS, 19), np.full(N_USERS, 16)]
    per_user = paired_test(a, b)
    decided = SeedUserBootstrap.of({"a": a, "b": b}, n_draws=4000).compare("a", "b")
    assert per_user["wilcoxon_p"] < 1e-6 and per_user["ci_low"] > 0
    assert decided["decision"] == "undecided" and decided["ci_low"] < 0 < decided["ci_high"]


def test_equal_methods_are_shown_equivalent_only_with_enough_evidence():
    rng = np.random.default_rng(2)
    same = {"a": runs_near(3, 10, 3, rng), "b": runs_near(3, 10, 3, rng)}
    assert SeedUserBootstrap.of(same, n_draws=4000).compare("a", "b")["decision"] == "equivalent"
    few = {"a": [r[:30] for r in same["a"][:2]], "b": [r[:30] for r in same["b"][:2]]}
    assert SeedUserBootstrap.of(few, n_draws=4000).compare("a", "b")["decision"] == "undecided"


def test_interval_and_p_agree_at_every_level_and_draws_are_reproducible():
    rng = np.random.default_rng(3)
    boot = SeedUserBootstrap.of({"a": runs_near(6, 4, 6, rng), "b": runs_near(7, 4, 6, rng)}, n_draws=3000)
    for level in (0.5, 0.2, 0.05, 0.01, 0.005):
        result = boot.compare("a", "b", level)
        assert (result["p"] <= level) == (result["ci_low"] > 0 or result["ci_high"] < 0), level
    assert boot.compare("a", "b") == boot.compare("a", "b")


def test_one_seed_each_reduces_to_the_bootstrap_over_users():
    rng = np.random.default_rng(4)
    a, b = runs_near(5, 1, 5, rng), runs_near(6, 1, 5, rng)
    boot = SeedUserBootstrap.of({"a": a, "b": b}, n_draws=8000)
    diff = paired_test(a, b)
    per_user = per_user_metric(a) - per_user_metric(b)
    spread = np.std(boot.differences("a", "b"))
    assert spread == pytest.approx(per_user.std() / np.sqrt(N_USERS), rel=0.1)
    assert boot.compare("a", "b")["diff"] == pytest.approx(diff["diff"])


def test_the_primary_question_stands_alone_and_secondaries_share_the_level():
    assert family_levels(10) == (0.05, 0.005)
    assert family_levels(0) == (0.05, 0.05)
