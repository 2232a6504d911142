"""How good neighbours are, measured on training data only (notebook 03).

For items: how often a neighbour shares a category with its anchor, and how often the two
co-occur in a training sequence. For sequences: held-out probes (a prefix without its next
training item) ask whether a neighbour's sequence holds that next item.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .baselines import incidence
from .retrieval import PrefixSet, user_pool


def item_neighbor_quality(item_neighbors: np.ndarray, train_sequences, item_categories) -> dict:
    """Fractions of (item, neighbour) pairs that share a category, and that co-occur in a
    training sequence (notebook 03).

    item_categories: per item id a list of categories (ds.items["categories"]). Anchors without
    categories are left out of the first fraction, anchors absent from training out of the second.
    """
    n_items = len(item_neighbors) - 1
    cats = [list(item_categories[i]) for i in range(1, n_items + 1)]
    vocab = {c: j for j, c in enumerate(sorted({c for cs in cats for c in cs}))}
    rows = np.repeat(np.arange(1, n_items + 1), [len(cs) for cs in cats])
    genre = sp.csr_matrix((np.ones(len(rows)), (rows, [vocab[c] for cs in cats for c in cs])),
                          shape=(n_items + 1, max(len(vocab), 1)))
    users = incidence(train_sequences, user_pool(train_sequences), n_items)
    together = (users.T @ users).tocsr()
    anchors = np.repeat(np.arange(1, n_items + 1), item_neighbors.shape[1])
    neighbours = item_neighbors[1:].ravel()
    shared = np.asarray(genre[anchors].multiply(genre[neighbours]).sum(axis=1)).ravel() > 0
    cooccur = np.asarray(together[anchors, neighbours]).ravel() > 0
    has_genre = np.asarray(genre.sum(axis=1)).ravel()[anchors] > 0
    in_train = together.diagonal()[anchors] > 0
    return {"shares a category": float(shared[has_genre].mean()) if has_genre.any() else np.nan,
            "co-occurs in training": float(cooccur[in_train].mean()) if in_train.any() else np.nan,
            "anchors": n_items}


def probe_neighbor_quality(probe_neighbors: np.ndarray, probes: PrefixSet, pool: PrefixSet, train_sequences) -> dict:
    """How often a retrieved pool entry holds the probe's held-out next item (notebook 03).

    A neighbour (v, s) 'holds' the target when it is among the first s items of v's training
    sequence, i.e. in what the neighbour's representation is built from. Reports the fraction of
    (probe, neighbour) pairs and the fraction of probes with at least one such neighbour, and the
    mean neighbour length: longer neighbours hold more items, so random neighbours drawn from a
    per-prefix pool (dominated by long prefixes) score higher than their quality deserves.
    """
    if probes.targets is None:
        raise ValueError("probes have no targets; build them with holdout_probes or prefix_probes")
    n_users = len(train_sequences)
    rows, cols, first_pos = [], [], []
    for u, seq in enumerate(train_sequences):
        items, first = np.unique(seq, return_index=True)
        rows.append(np.full(len(items), u))
        cols.append(items)
        first_pos.append(first + 1)  # 1-based, so 0 means absent
    n_cols = int(max(probes.targets.max(), max((c.max() for c in cols if len(c)), default=0))) + 1
    position = sp.csr_matrix((np.concatenate(first_pos), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_users, n_cols))
    users = pool.users[probe_neighbors].ravel()
    pos = np.asarray(position[users, np.repeat(probes.targets, probe_neighbors.shape[1])]).ravel()
    holds = ((pos > 0) & (pos <= pool.lengths[probe_neighbors].ravel())).reshape(probe_neighbors.shape)
    return {"neighbour holds next item": float(holds.mean()),
            "some neighbour holds next item": float(holds.any(axis=1).mean()),
            "anchors": len(probes), "mean neighbour length": float(pool.lengths[probe_neighbors].mean())}


@dataclass
class NeighborSource:
    """One way of finding neighbours, as compared in notebook 03 (either part may be None)."""
    item_neighbors: np.ndarray = None   # (n_items + 1, k)
    probe_neighbors: np.ndarray = None  # (len(probes), k) pool indices, found from the probes' own embeddings


def compare_neighbor_sources(sources: dict, train_sequences, item_categories, probes: PrefixSet = None,
                             pool: PrefixSet = None) -> pd.DataFrame:
    """Tidy table of neighbour quality, one row per (source, neighbours, metric) (notebook 03).

    Columns: source, neighbours ('items' or 'sequences'), metric, value, anchors (how many anchors
    the value averages over), mean neighbour length (sequences only).
    """
    records = []
    for name, source in sources.items():
        parts = []
        if source.item_neighbors is not None:
            parts.append(("items", item_neighbor_quality(source.item_neighbors, train_sequences, item_categories)))
        if source.probe_neighbors is not None:
            if probes is None or pool is None:
                raise ValueError(f"source {name!r} has probe neighbours; pass the probes and pool they came from")
            parts.append(("sequences", probe_neighbor_quality(source.probe_neighbors, probes, pool, train_sequences)))
        for level, scores in parts:
            extra = {"anchors": scores.pop("anchors"),
                     "mean neighbour length": scores.pop("mean neighbour length", np.nan)}
            records += [{"source": name, "neighbours": level, "metric": metric, "value": value, **extra}
                        for metric, value in scores.items()]
    return pd.DataFrame.from_records(records, columns=["source", "neighbours", "metric", "value", "anchors",
                                                       "mean neighbour length"])


def plot_neighbor_quality(frame: pd.DataFrame, ax=None):
    """Grouped bar chart of `compare_neighbor_sources` output: one group per metric (notebook 03)."""
    import textwrap
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    labels = frame["neighbours"] + ": " + frame["metric"]
    wide = frame.assign(label=labels).pivot_table(index="label", columns="source", values="value", sort=False)
    wide = wide[list(dict.fromkeys(frame["source"]))]  # keep the order the sources were given in
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_xticks(range(len(wide)), [textwrap.fill(label, 22) for label in wide.index], fontsize="small")
    ax.set_ylabel("fraction")
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.legend(title="neighbour source", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Neighbour quality before training (higher: more plausible positives)")
    return ax


def show_item_neighbors(item_neighbors: np.ndarray, titles, anchors, n_show: int = 5) -> pd.DataFrame:
    """A few items with their neighbours' titles (notebook 03). titles: item id -> title (ds.items['title'])."""
    neighbours = [" | ".join(titles[int(j)] for j in item_neighbors[a, :n_show]) for a in anchors]
    return pd.DataFrame({"item": [titles[int(a)] for a in anchors], "neighbours": neighbours},
                        index=pd.Index(anchors, name="item id"))


def show_pool_neighbors(neighbors: np.ndarray, queries: PrefixSet, pool: PrefixSet, train_sequences, titles,
                        rows, last_n: int = 3, n_show: int = 3) -> pd.DataFrame:
    """A few queries (their last titles, and the held-out target for probes) with the last titles
    of their neighbour entries (notebook 03)."""
    def tail(users, length):
        return " -> ".join(titles[int(i)] for i in train_sequences[users][:length][-last_n:])
    records = []
    for r in rows:
        record = {"user": int(queries.users[r]), "history (last items)": tail(queries.users[r], queries.lengths[r])}
        if queries.targets is not None:
            record["next item"] = titles[int(queries.targets[r])]
        for rank, j in enumerate(neighbors[r, :n_show], start=1):
            record[f"neighbour {rank}"] = tail(pool.users[j], pool.lengths[j])
        records.append(record)
    return pd.DataFrame.from_records(records)
