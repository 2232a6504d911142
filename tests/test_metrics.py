"""Full-ranking metrics on hand-computed rankings."""
import math

import numpy as np
import pytest
import torch

from sracl_lite.metrics import (check_metrics, evaluate, full_ranks, metric_names, metrics_from_ranks, per_user_metrics,
                                target_ranks)


def test_ranks_mask_padding_and_history_and_count_ties_against_the_target():
    #                       pad   1    2    3    4    5
    scores = torch.tensor([[9.0, 0.5, 0.9, 0.1, 0.7, 0.3],    # target 4: only item 2 is higher -> rank 1
                           [9.0, 0.5, 0.9, 0.1, 0.7, 0.3],    # same, item 2 in history -> rank 0
                           [0.0, 0.4, 0.4, 0.4, 0.1, 0.2]])   # target 1 ties items 2, 3 -> rank 2
    targets = torch.tensor([4, 4, 1])
    history = torch.tensor([[0, 0], [0, 2], [0, 0]])
    assert target_ranks(scores, targets, history).tolist() == [1, 0, 2]
    assert target_ranks(scores[:1], targets[:1]).tolist() == [1]   # padding (score 9) never counts


def test_target_in_history_stays_ranked():
    scores = torch.tensor([[0.0, 0.3, 0.2, 0.1]])
    assert target_ranks(scores, torch.tensor([2]), torch.tensor([[1, 2]])).tolist() == [0]


def test_metrics_hand_computed():
    ranks = np.array([0, 3, 7, 15, 30])
    m = metrics_from_ranks(ranks)
    assert m["HR@5"] == pytest.approx(2 / 5)
    assert m["HR@10"] == pytest.approx(3 / 5)
    assert m["HR@20"] == pytest.approx(4 / 5)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(5)) / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(9)) / 5)
    assert m["NDCG@20"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(9) + 1 / math.log2(17)) / 5)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 4 + 1 / 8) / 5)
    assert m["MRR"] == pytest.approx((1 + 1 / 4 + 1 / 8 + 1 / 16 + 1 / 31) / 5)
    assert set(m) == set(metric_names())


def test_per_user_rows():
    frame = per_user_metrics(torch.tensor([0, 12]))
    assert len(frame) == 2
    assert frame.loc[0, "NDCG@10"] == 1.0 and frame.loc[1, "NDCG@10"] == 0.0
    assert frame.loc[1, "HR@20"] == 1.0 and frame.loc[1, "rank"] == 12


class FixedScores(torch.nn.Module):
    """A stand-in model whose scores are a fixed table row per user (first input column)."""
    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.n_items = table.shape[1] - 1

    def encode(self, inputs):
        return self.table[inputs[:, 0] - 1]

    def item_scores(self, rep):
        return rep


def test_full_ranks_batches_and_checks():
    table = torch.tensor([[0.0, 0.1, 0.5, 0.9, 0.3],
                          [0.0, 0.8, 0.2, 0.1, 0.4]])
    model = FixedScores(table)
    inputs = np.array([[1, 3], [2, 2]])
    targets = np.array([2, 4])
    # user 0: target 2 (0.5) < item 3 (0.9), but item 3 is in the history -> rank 0
    # user 1: target 4 (0.4) < item 1 (0.8) -> rank 1 (item 2 in history)
    assert full_ranks(model, inputs, targets, history=inputs, batch_size=1).tolist() == [0, 1]
    assert evaluate(model, inputs, targets, history=inputs)["HR@5"] == 1.0
    with pytest.raises(ValueError, match="outside 0..4"):
        full_ranks(model, inputs, np.array([2, 9]))
    with pytest.raises(ValueError, match="target is 0"):
        full_ranks(model, inputs, np.array([2, 0]))


def test_non_finite_scores_fail_instead_of_ranking_first():
    scores = torch.tensor([[0.0, float("nan"), float("nan")], [0.0, 0.2, 0.1]])
    with pytest.raises(ValueError, match="NaN or inf"):
        target_ranks(scores, torch.tensor([1, 2]))


def test_constant_scores_rank_last_and_non_finite_scores_fail():
    # a collapsed model (all scores equal) must not look perfect
    scores = torch.zeros(2, 6)
    assert target_ranks(scores, torch.tensor([1, 5])).tolist() == [4, 4]
    scores[0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        target_ranks(scores, torch.tensor([1, 5]))


def test_check_metrics_catches_impossible_values():
    good = metrics_from_ranks(np.array([0, 3, 12, 40]))
    check_metrics({"test": good})
    for broken in ({**good, "HR@5": good["HR@10"] + 0.1}, {**good, "NDCG@20": float("nan")},
                   {**good, "MRR@20": good["MRR"] + 0.01}):
        with pytest.raises(AssertionError):
            check_metrics({"test": broken})
