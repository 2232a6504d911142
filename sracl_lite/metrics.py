"""Full-ranking evaluation (notebook 07).

Protocol, the same for every model in the notebooks:
- every item 1..n_items is a candidate (no sampled negatives); the padding id 0 never is;
- items the user interacted with before the target (the whole history given as `history`,
  not only the last max_len inputs) are removed from the candidates, because recommending an
  item already consumed is not a useful prediction. The target itself stays a candidate even if
  it also occurs in the history (after data.py's de-duplication it never does);
- rank = number of other candidates scoring higher than *or equal to* the target (0 = top). Ties
  count against the target: a degenerate model whose scores are all equal (collapsed
  representations) then ranks every target last instead of first. With float32 scores of a
  trained model exact ties are rare, so this rarely differs from a random tie-break;
- scores are computed in float32 (no bf16 autocast): bf16 keeps about 3 significant digits and
  would turn near-ties into ties;
- a NaN or infinite score anywhere is an error (NaN compares False with everything, so it
  would silently change ranks);
- HR@k = [rank < k], NDCG@k = 1 / log2(rank + 2) if rank < k else 0 (one relevant item, so the
  ideal DCG is 1), MRR@k = 1 / (rank + 1) if rank < k else 0, MRR = 1 / (rank + 1) untruncated.
Metrics are means over users; `per_user_metrics` keeps one row per user for paired tests and
sequence-length groups.
"""

import numpy as np
import pandas as pd
import torch

KS = (5, 10, 20)


def metric_names(ks=KS) -> list:
    return [f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in ks] + ["MRR"]


def target_ranks(scores, targets, history=None):
    """(B, n_items + 1) scores, (B,) targets, optional (B, H) history ids (0-padded) -> (B,) ranks
    (notebook 07).

    Rank counts the other candidates scoring at least as high as the target (see module docstring).
    """
    if scores.dim() != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (B, n_items + 1) and targets (B,); got {tuple(scores.shape)} "
                         f"and {tuple(targets.shape)}")
    if history is not None and history.shape[0] != scores.shape[0]:
        raise ValueError(f"history has {history.shape[0]} rows for {scores.shape[0]} score rows")
    scores = scores.float()
    if not torch.isfinite(scores).all():
        raise ValueError("target_ranks: some scores are NaN or inf; the model's outputs are not finite "
                         "(did training diverge? look at the loss history)")
    target_score = scores.gather(1, targets[:, None])                           # (B, 1)
    excluded = torch.zeros_like(scores, dtype=torch.bool)
    excluded[:, 0] = True                                                       # padding
    if history is not None:
        excluded.scatter_(1, history, True)                                     # already consumed
    excluded.scatter_(1, targets[:, None], True)                                # the target itself
    at_least_as_high = (scores >= target_score) & ~excluded                     # (B, n_items + 1)
    return at_least_as_high.sum(1)


def metrics_from_ranks(ranks, ks=KS) -> dict:
    """Mean HR@k, NDCG@k, MRR@k and MRR over users from 0-based ranks (notebook 07)."""
    frame = per_user_metrics(ranks, ks)
    return {name: float(frame[name].mean()) for name in metric_names(ks)}


def per_user_metrics(ranks, ks=KS) -> pd.DataFrame:
    """One row per user: rank and every metric (for paired tests and length groups, notebook 07)."""
    ranks = np.asarray(ranks.cpu() if torch.is_tensor(ranks) else ranks, dtype=np.int64)
    columns = {"rank": ranks}
    reciprocal = 1.0 / (ranks + 1)
    gain = 1.0 / np.log2(ranks + 2)
    for k in ks:
        columns[f"HR@{k}"] = (ranks < k).astype(float)
    for k in ks:
        columns[f"NDCG@{k}"] = np.where(ranks < k, gain, 0.0)
    for k in ks:
        columns[f"MRR@{k}"] = np.where(ranks < k, reciprocal, 0.0)
    columns["MRR"] = reciprocal
    return pd.DataFrame(columns)


@torch.no_grad()
def full_ranks(model, inputs, targets, history=None, batch_size: int = 1024, device=None) -> np.ndarray:
    """Rank each target among all items with `model` (an encoder with encode / item_scores; notebook 07).

    inputs (U, L) model inputs, targets (U,), history (U, H) items to exclude (0-padded; pass the
    whole history, e.g. `ds.eval_inputs(split, longest)[0]`; None excludes nothing but padding).
    Arrays or tensors; batches run on `device` (default: the model's) and ranks come back to the
    host once, as a (U,) int64 array.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
    n_items = model.n_items
    for name, t in (("inputs", inputs), ("targets", targets), ("history", history)):
        if t is not None and len(t) and (int(t.min()) < 0 or int(t.max()) > n_items):
            raise ValueError(f"full_ranks: {name} hold item ids outside 0..{n_items}; were they built "
                             "for another dataset?")
    if len(targets) and int(targets.min()) < 1:
        raise ValueError("full_ranks: a target is 0 (padding); every user needs a real target item")
    if len(inputs) != len(targets):
        raise ValueError(f"full_ranks: {len(inputs)} input rows but {len(targets)} targets")
    history = torch.as_tensor(history) if history is not None else None
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].to(device, non_blocking=True)
        y = targets[start:start + batch_size].to(device, non_blocking=True)
        h = history[start:start + batch_size].to(device, non_blocking=True) if history is not None else None
        rep = model.encode(x)                                                   # (b, D), float32
        out.append(target_ranks(model.item_scores(rep), y, h))
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.int64)


def evaluate(model, inputs, targets, history=None, ks=KS, **kwargs) -> dict:
    """Mean metrics of `full_ranks` (same arguments)."""
    return metrics_from_ranks(full_ranks(model, inputs, targets, history, **kwargs), ks)


def check_metrics(runs: dict):
    """Assert what holds for any metrics of full ranking (notebooks 04-06): each value finite and in
    [0, 1], HR, NDCG and MRR non-decreasing in k, MRR@20 <= MRR and NDCG@20 <= HR@20.
    runs: name -> {metric: value} (for example {"valid": result.valid, "test": result.test})."""
    for name, m in runs.items():
        values = np.array(list(m.values()), dtype=float)
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1, \
            f"{name}: metrics must be finite and in [0, 1]"
        for family in ("HR", "NDCG", "MRR"):
            assert m[f"{family}@5"] <= m[f"{family}@10"] <= m[f"{family}@20"], f"{name}: {family}@k must grow with k"
        assert m["MRR@20"] <= m["MRR"] and m["NDCG@20"] <= m["HR@20"], f"{name}: MRR@20 > MRR or NDCG@20 > HR@20"
