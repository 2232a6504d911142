"""Comparing trained variants honestly (notebook 07; runs come from scripts/results_grid.py).

- `VARIANTS`: every variant of the comparison, in one plain dict: which semantic tables it reads
  and how its TrainConfig differs from the defaults (training budgets: experiments.PROFILES).
- Results files: one CSV row per run (`merge_results` replaces re-run rows, keeps the rest) and an
  .npz of per-user test ranks keyed by `rank_key(variant, seed, max_len)`.
- `converged_rows`: the grid's mean over seeds of named variants, beside a notebook's CPU runs.
- `summary_table`: mean and std over seeds of each metric, with the change relative to a baseline.
- `paired_test`: two variants compared user by user (Wilcoxon signed-rank and paired t-test on a
  per-user metric averaged over seeds, plus a bootstrap interval of the mean difference).
- `length_groups` and `metrics_by_group`: the sparsity view, users grouped by training length.
"""
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .experiments import VARIANTS, profile_config
from .metrics import per_user_metrics

REPORTED_METRICS = ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"]
RUN_KEY = ["variant", "max_len", "seed"]   # one CSV row per run; a re-run with the same key replaces it


def rank_key(variant: str, seed: int, max_len: int) -> str:
    """Key of one run's per-user test ranks in the ranks .npz file."""
    return f"{variant}/max_len{int(max_len)}/seed{int(seed)}"


def variant_order(names) -> list:
    """Registry order first, then unknown names alphabetically (a CSV may hold other variants)."""
    names = list(dict.fromkeys(names))
    return [v for v in VARIANTS if v in names] + sorted(n for n in names if n not in VARIANTS)


def merge_results(existing: pd.DataFrame, new: pd.DataFrame, key=RUN_KEY) -> pd.DataFrame:
    """Rows of `existing` whose run key is not in `new`, then all of `new` (re-runs replace)."""
    if existing is None or existing.empty:
        return new.reset_index(drop=True)
    missing = [k for k in key if k not in existing.columns or k not in new.columns]
    if missing:
        raise ValueError(f"results: column(s) {missing} missing; every row needs {key}")
    replaced = existing.set_index(key).index.isin(new.set_index(key).index)
    return pd.concat([existing[~replaced], new], ignore_index=True)


def load_results(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results file; run scripts/results_grid.py (see results/README.md; for "
                                "your own data, the README's \"Use your own data\")")
    return pd.read_csv(path)


def load_ranks(path) -> dict:
    """{rank_key: (n_users,) int64 test ranks}; {} when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return {}
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def test_ranks_label(exclude_history: bool) -> str:
    """Which candidates a run's test ranks, in the words of the tables that show it."""
    return "history excluded" if exclude_history else "all items"


def converged_rows(path, variants: dict, max_len: int, metrics=("HR@10", "NDCG@10", "HR@20", "NDCG@20")):
    """Mean test metrics over seeds of the grid runs of {label: variant} in the results CSV `path`
    (rows of `max_len`; labels without runs are left out), to put beside a notebook's CPU-profile runs.
    Each row names its protocol: the candidates the test ranks, as the variant's preset defines them."""
    runs = load_results(path) if Path(path).exists() else pd.DataFrame(columns=["variant", "max_len"])
    rows = {}
    for label, variant in variants.items():
        mine = runs[(runs["variant"] == variant) & (runs["max_len"] == max_len)]
        if mine.empty:
            continue
        excluded = profile_config("paper", step="eager", **VARIANTS[variant]["config"]).exclude_history
        rows[label] = {"grid variant": variant, "seeds": len(mine), "profile": mine["profile"].iloc[0],
                       "test ranks": test_ranks_label(excluded),
                       **{m: round(mine[f"test_{m}"].mean(), 4) for m in metrics}}
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_table(results: pd.DataFrame, split: str = "test", metrics=REPORTED_METRICS, by=("variant",),
                  baseline: str = "sasrec") -> pd.DataFrame:
    """Mean and std over seeds of `<split>_<metric>` per variant (or per `by` group; notebook 07).

    Columns: n_seeds, then `<metric>` (mean), `<metric> std` and `<metric> vs <baseline> %` (the
    relative change of the mean; NaN when the baseline is absent). With `by` holding more than
    'variant' (e.g. max_len), the baseline row with the same other keys is used.
    """
    by = list(by)
    columns = [f"{split}_{m}" for m in metrics]
    absent = [c for c in columns + by if c not in results.columns]
    if absent:
        raise ValueError(f"results lack column(s) {absent}; was the CSV written by scripts/results_grid.py?")
    grouped = results.groupby(by, sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)     # std is NaN for one seed: no spread known
    table = pd.DataFrame({"n_seeds": grouped.size()})
    for metric, column in zip(metrics, columns):
        table[metric] = mean[column]
        table[f"{metric} std"] = std[column]
    for metric in metrics:
        reference = _baseline_means(table, metric, by, baseline)
        table[f"{metric} vs {baseline} %"] = 100.0 * (table[metric] / reference - 1.0)
    order = variant_order(table.index.get_level_values("variant"))
    return table.loc[sorted(table.index, key=lambda idx: _sort_key(idx, by, order))]


def _sort_key(idx, by, order):
    idx = idx if isinstance(idx, tuple) else (idx,)
    values = dict(zip(by, idx))
    return (order.index(values["variant"]),) + tuple(values[b] for b in by if b != "variant")


def _baseline_means(table, metric, by, baseline):
    if by == ["variant"]:
        value = table[metric].get(baseline, np.nan)
        return pd.Series(value, index=table.index)
    others = [b for b in by if b != "variant"]
    frame = table.reset_index()
    reference = frame[frame["variant"] == baseline].set_index(others)[metric]
    keys = frame.set_index(others).index
    return pd.Series(reference.reindex(keys).to_numpy(), index=table.index)


def mean_std_text(table: pd.DataFrame, metrics=REPORTED_METRICS, digits: int = 4) -> pd.DataFrame:
    """'mean ± std' strings for display ('mean' alone when one seed gives no spread)."""
    def cell(mean, std):
        if pd.isna(mean):
            return "missing"
        return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"
    return pd.DataFrame({m: [cell(a, b) for a, b in zip(table[m], table[f"{m} std"])] for m in metrics},
                        index=table.index)


def per_user_metric(rank_runs, metric: str = "NDCG@20") -> np.ndarray:
    """(n_users,) per-user `metric` averaged over runs (seeds); rank_runs is a list of (n_users,) ranks."""
    runs = [np.asarray(r) for r in rank_runs]
    if not runs:
        raise ValueError("per_user_metric: no runs given")
    if len({len(r) for r in runs}) != 1:
        raise ValueError(f"per_user_metric: runs rank different numbers of users {sorted({len(r) for r in runs})}")
    return np.mean([per_user_metrics(r)[metric].to_numpy() for r in runs], axis=0)


PAIRED_TEST_FIELDS = ["metric", "n_users", "n_seeds_a", "n_seeds_b", "mean_a", "mean_b", "diff", "rel_change_%",
                      "ci_low", "ci_high", "wilcoxon_p", "ttest_p", "wins", "losses", "ties"]


def paired_test(ranks_a, ranks_b, metric: str = "NDCG@20", n_bootstrap: int = 2000, seed: int = 0) -> dict:
    """Compare variant A with B user by user (notebook 07).

    ranks_a, ranks_b: lists of (n_users,) rank arrays, one per seed (the same users in the same
    order). Each user's metric is first averaged over that variant's seeds, so the unit of the test
    is the user and seeds only reduce noise; pooling seeds as separate pairs would count each user
    several times and overstate the evidence. Returns (keys: PAIRED_TEST_FIELDS) the means, the
    mean difference A - B, its relative size, a bootstrap 95% interval over users, the Wilcoxon
    signed-rank p-value (users with equal values drop out, as is usual), the paired t-test p-value
    and wins/losses/ties.
    The test covers the variation over users, not over training runs: read it next to the seed std.
    """
    a, b = per_user_metric(ranks_a, metric), per_user_metric(ranks_b, metric)
    if len(a) != len(b):
        raise ValueError(f"paired_test: A ranks {len(a)} users, B {len(b)}; runs of different datasets?")
    diff = a - b
    rng = np.random.default_rng(seed)
    # 100 resamples at a time: the same numbers as one (n_bootstrap, users) draw, without its 360 MB for 22k users
    boot = np.concatenate([diff[rng.integers(0, len(diff), size=(min(100, n_bootstrap - start), len(diff)))]
                           .mean(axis=1) for start in range(0, n_bootstrap, 100)])
    nonzero = np.count_nonzero(diff)
    wilcoxon_p = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue) if nonzero else 1.0
    # undefined (NaN) when every user's difference is the same, e.g. identical variants
    ttest_p = float(stats.ttest_rel(a, b).pvalue) if np.ptp(diff) > 0 else math.nan
    mean_a, mean_b = float(a.mean()), float(b.mean())
    return {"metric": metric, "n_users": len(a), "n_seeds_a": len(ranks_a), "n_seeds_b": len(ranks_b),
            "mean_a": mean_a, "mean_b": mean_b, "diff": mean_a - mean_b,
            "rel_change_%": 100.0 * (mean_a / mean_b - 1.0) if mean_b else math.nan,
            "ci_low": float(np.quantile(boot, 0.025)), "ci_high": float(np.quantile(boot, 0.975)),
            "wilcoxon_p": wilcoxon_p, "ttest_p": ttest_p,
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum())}


def length_groups(train_lengths, edges=None):
    """Assign users to short / medium / long by training-sequence length (notebook 07).

    edges=None: tertiles, (e1, e2) = the 1/3 and 2/3 quantiles rounded down to whole lengths;
    otherwise the given (e1, e2). short: length <= e1; medium: e1 < length <= e2; long: length > e2.
    Returns (pd.Categorical of labels that name their length ranges, (e1, e2)). With many equal
    lengths, tertile groups are not exactly equal in size.
    """
    lengths = np.asarray(train_lengths)
    if edges is None:
        e1, e2 = (int(math.floor(q)) for q in np.quantile(lengths, [1 / 3, 2 / 3]))
    else:
        e1, e2 = (int(e) for e in edges)
    if e1 >= e2:
        hint = "the tertiles of the training lengths coincide (many users share one length); " if edges is None else ""
        raise ValueError(f"length_groups: edges must increase, got ({e1}, {e2}); {hint}set two increasing edges, "
                         "e.g. SRACL_LENGTH_EDGES=30,80 in notebook 07")
    low, high = int(lengths.min()), int(lengths.max())
    labels = [f"short ({low}-{e1})", f"medium ({e1 + 1}-{e2})", f"long ({e2 + 1}-{high})"]
    codes = np.where(lengths <= e1, 0, np.where(lengths <= e2, 1, 2))
    return pd.Categorical.from_codes(codes, categories=labels), (e1, e2)


def metrics_by_group(ranks_by_variant: dict, groups, metric: str = "NDCG@20", baseline: str = "sasrec"):
    """Per-group mean of `metric` (seed-averaged per user) for each variant.

    ranks_by_variant: {variant: [rank arrays over seeds]}; groups: per-user labels (length_groups).
    Returns a frame indexed by group with the number of users, one column per variant and, when
    the baseline is present, `<variant> vs <baseline> %` columns.
    """
    groups = pd.Categorical(groups)
    frame = pd.DataFrame({v: per_user_metric(r, metric) for v, r in ranks_by_variant.items()})
    frame["group"] = groups
    table = frame.groupby("group", observed=False).mean()
    table.insert(0, "users", frame.groupby("group", observed=False).size())
    if baseline in ranks_by_variant:
        for v in ranks_by_variant:
            if v != baseline:
                table[f"{v} vs {baseline} %"] = 100.0 * (table[v] / table[baseline] - 1.0)
    return table
