"""Pools, probes and neighbour retrieval (notebook 03).

Semantic retrieval, second half: cosine top-k retrieval over embeddings (encoder.py) gives each
item and each pool entry its candidate positives. The result is a `SemanticTables` for the
trainer. Collaborative and random neighbours are in baselines.py, their quality in
neighbor_quality.py.

Leak rules enforced here (the reference implementation breaks the second one):
- pool entries are prefixes of *training* sequences, so validation and test items never enter;
- an entry's neighbours never include any entry of the same user (hence never itself), and an
  item's neighbours never include the item itself;
- neighbour-quality probes hold out the next training item and are embedded from what comes
  before it only.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .semantic import SemanticTables, prefix_entries


# ---------------------------------------------------------------- pools and probes

@dataclass
class PrefixSet:
    """Training-sequence prefixes: entry i is the first lengths[i] items of user users[i]'s
    training sequence (notebook 03).

    kind: 'user' (whole training sequences, one per user), 'prefix' (every prefix) or 'probe'
    (a prefix plus `targets`, the training item right after it, for neighbour quality).
    """
    users: np.ndarray    # (P,) int64 user rows
    lengths: np.ndarray  # (P,) int64, >= 1
    kind: str
    targets: np.ndarray | None = None  # (P,) int64 item ids, probes only

    def __len__(self):
        return len(self.users)

    def keys(self) -> list:
        """(user, length) per entry: the keys that per-prefix texts are looked up by."""
        return list(zip(self.users.tolist(), self.lengths.tolist()))

    def items(self, train_sequences, i: int) -> np.ndarray:
        return train_sequences[self.users[i]][:self.lengths[i]]


def user_pool(train_sequences) -> PrefixSet:
    """One entry per user with training items: its whole training sequence (notebook 03)."""
    lengths = np.array([len(s) for s in train_sequences], dtype=np.int64)
    users = np.flatnonzero(lengths > 0)
    return PrefixSet(users.astype(np.int64), lengths[users], "user")


def prefix_pool(train_sequences, min_length: int = 1, users=None, whole: bool = True) -> PrefixSet:
    """Entries (u, t) for t = min_length..len(train_sequences[u]), for every user or only `users`
    (notebook 03). whole=False stops at len - 1: exactly the training prefixes, each followed by a
    training item (notebook 05), the reference's per-prefix pool without its leak (the reference
    also embeds the prefix whose next item is the validation target)."""
    chosen = range(len(train_sequences)) if users is None else sorted(int(u) for u in users)
    end = 1 if whole else 0
    lengths = [np.arange(min_length, len(train_sequences[u]) + end) for u in chosen]
    users = [np.full(len(t), u) for u, t in zip(chosen, lengths)]
    return PrefixSet(np.concatenate(users).astype(np.int64), np.concatenate(lengths).astype(np.int64), "prefix")


def _sample(n: int, max_n, seed: int) -> np.ndarray:
    if max_n is None or max_n >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))


def holdout_probes(train_sequences, max_probes: int = None, seed: int = 0) -> PrefixSet:
    """Per-user probes: (u, len - 1) with target = u's last training item (notebook 03).

    For a per-user pool. The probe is embedded from its prefix only (never from u's whole
    profile, which mentions the target), and retrieval skips u's own entry, so no neighbour
    quality number ever sees the item it scores. Users with one training item are skipped.
    """
    users = np.array([u for u, s in enumerate(train_sequences) if len(s) >= 2], dtype=np.int64)
    users = users[_sample(len(users), max_probes, seed)]
    lengths = np.array([len(train_sequences[u]) - 1 for u in users], dtype=np.int64)
    targets = np.array([train_sequences[u][-1] for u in users], dtype=np.int64)
    return PrefixSet(users, lengths, "probe", targets)


def prefix_probes(train_sequences, max_probes: int = None, seed: int = 0, users=None) -> PrefixSet:
    """Per-prefix probes: (u, t) for t < len with target train_sequences[u][t] (notebook 03).

    For a per-prefix pool, where a probe is embedded like the pool entry (u, t): from the
    prefix alone. users: only these users' prefixes (None: all).
    """
    pool = prefix_pool(train_sequences, users=users)
    keep = pool.lengths < np.array([len(train_sequences[u]) for u in pool.users])
    users, lengths = pool.users[keep], pool.lengths[keep]
    pick = _sample(len(users), max_probes, seed)
    users, lengths = users[pick], lengths[pick]
    targets = np.array([train_sequences[u][t] for u, t in zip(users, lengths)], dtype=np.int64)
    return PrefixSet(users, lengths, "probe", targets)


# ---------------------------------------------------------------- embeddings


def mean_item_embedding(item_emb: np.ndarray, train_sequences, prefixes: PrefixSet,
                        window: int = None, unit: bool = True) -> np.ndarray:
    """(len(prefixes), d) mean of each prefix's item embeddings, scaled to unit length unless
    unit=False (notebook 03).

    The no-extra-LLM sequence embedding. window: average only the last `window` items (e.g. the
    model's max_len: the reference embeds a prefix's max_len window), None for all.
    """
    out = np.zeros((len(prefixes), item_emb.shape[1]), np.float32)
    order = np.argsort(prefixes.users, kind="stable")
    starts = np.searchsorted(prefixes.users[order], np.unique(prefixes.users))
    for block in np.split(order, starts[1:]):
        seq = train_sequences[prefixes.users[block[0]]]
        running = np.vstack([np.zeros((1, item_emb.shape[1])), np.cumsum(item_emb[seq], axis=0, dtype=np.float64)])
        ends = prefixes.lengths[block]
        begins = np.zeros_like(ends) if window is None else np.maximum(ends - window, 0)
        out[block] = (running[ends] - running[begins]) / (ends - begins)[:, None]
    return unit_rows(out) if unit else out


def unit_rows(x) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32, C-contiguous for faiss."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1))


# ---------------------------------------------------------------- retrieval

def top_k_neighbors(query_emb, base_emb, k: int, query_groups, base_groups, chunk_size: int = 2048,
                    device: str = "cpu") -> np.ndarray:
    """(Q, k) indices into base: cosine top-k among base rows of another group (notebook 03).

    Groups say what may not be retrieved: pass user rows to skip a user's own entries, item ids
    to skip the item itself, entry indices to skip only the entry itself. Search over-fetches
    k + (base rows in the query's group), which always leaves k valid candidates when the base
    holds them; when it holds fewer, they are repeated in order (tiny pools only). A query whose
    group covers the whole base is an error. device: "cpu" searches with faiss, "cuda" with
    chunked matrix products on the GPU (a per-prefix pool of 100k+ entries in seconds).
    """
    query, base = unit_rows(query_emb), unit_rows(base_emb)
    query_groups, base_groups = np.asarray(query_groups), np.asarray(base_groups)
    if query.shape[1] != base.shape[1]:
        raise ValueError(f"query embeddings are {query.shape[1]}-d, base {base.shape[1]}-d; embed both "
                         "with the same encoder")
    if len(query_groups) != len(query) or len(base_groups) != len(base):
        raise ValueError("top_k_neighbors: one group per query row and per base row is needed")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    excluded = len(base) - _check_others(query_groups, base_groups)
    need = np.minimum(len(base), k + excluded)
    # Round up to powers of two: a handful of search calls instead of one per distinct size.
    fetch = np.minimum(len(base), 2 ** np.ceil(np.log2(need)).astype(np.int64))
    search = _torch_search(base, device) if device != "cpu" else _faiss_search(base)
    out = np.empty((len(query), k), np.int64)
    for size in np.unique(fetch):
        rows = np.flatnonzero(fetch == size)
        for start in range(0, len(rows), chunk_size):
            r = rows[start:start + chunk_size]
            found = search(query[r], int(size))  # (len(r), size), best first
            out[r] = _first_valid(found, base_groups, query_groups[r], k)
    return out


def _faiss_search(base):
    import faiss  # here, not at the top: the trainer reads saved tables without faiss installed
    index = faiss.IndexFlatIP(base.shape[1])  # inner product of unit vectors = cosine
    index.add(base)
    return lambda query, size: index.search(query, size)[1]


def _torch_search(base, device):
    import torch
    base_t = torch.as_tensor(base, device=device)
    def search(query, size):
        return (torch.as_tensor(query, device=device) @ base_t.T).topk(size, dim=1).indices.cpu().numpy()
    return search


def _check_others(query_groups, base_groups) -> np.ndarray:
    """(Q,) number of base rows outside each query's group; an error where that is 0."""
    groups, counts = np.unique(base_groups, return_counts=True)
    pos = np.searchsorted(groups, query_groups).clip(max=len(groups) - 1)
    others = len(base_groups) - np.where(groups[pos] == query_groups, counts[pos], 0)
    if (others == 0).any():
        bad = int(np.flatnonzero(others == 0)[0])
        raise ValueError(f"query {bad} (user or item {query_groups[bad]}): every pool entry belongs to it, "
                         "so there is nothing to retrieve; the pool needs entries of other users")
    return others


def _first_valid(candidates, base_groups, query_groups, k):
    valid = (candidates >= 0) & (base_groups[candidates.clip(min=0)] != query_groups[:, None])
    n_valid = valid.sum(axis=1)
    ranked = np.take_along_axis(candidates, np.argsort(~valid, axis=1, kind="stable"), axis=1)
    # i % n_valid is i itself when n_valid >= k; otherwise it cycles through the valid ones.
    return np.take_along_axis(ranked, np.arange(k)[None, :] % np.maximum(n_valid, 1)[:, None], axis=1)


def item_neighbors(item_emb: np.ndarray, k: int = 10, device: str = "cpu") -> np.ndarray:
    """(n_items + 1, k) cosine top-k item ids of each item, never itself; row 0 zeros (notebook 03)."""
    ids = np.arange(1, len(item_emb))
    table = np.zeros((len(item_emb), k), np.int64)
    table[1:] = top_k_neighbors(item_emb[1:], item_emb[1:], k, ids, ids, device=device) + 1
    return table


def pool_neighbors(query_emb, query_users, pool_emb, pool: PrefixSet, k: int = 10) -> np.ndarray:
    """(Q, k) pool indices most similar to each query, skipping every entry of the query's user (notebook 03)."""
    return top_k_neighbors(query_emb, pool_emb, k, query_users, pool.users)


def build_tables(item_emb, pool: PrefixSet, pool_emb, k: int = 10, description: str = "") -> SemanticTables:
    """SemanticTables from item and pool embeddings: cosine neighbours of both (notebook 03)."""
    if len(pool_emb) != len(pool):
        raise ValueError(f"pool_emb has {len(pool_emb)} rows for {len(pool)} pool entries")
    return SemanticTables(item_emb=unit_rows(item_emb), item_neighbors=item_neighbors(item_emb, k),
                          pool_users=pool.users, pool_lengths=pool.lengths, pool_emb=unit_rows(pool_emb),
                          pool_neighbors=pool_neighbors(pool_emb, pool.users, pool_emb, pool, k),
                          description=description or f"cosine top-{k}, {pool.kind} pool")


def prefix_tables(item_emb, pool: PrefixSet, pool_emb, k: int = 10, exclude: str = "self", description: str = "",
                  device: str = "cpu", anchors=None) -> SemanticTables:
    """Per-prefix SemanticTables as the reference builds them (notebook 05).

    pool: prefix_pool(..., whole=False) (one entry per training prefix); pool_emb: one embedding per
    entry, kept as given (raw scale: the synthesizer sees it). Neighbours are the cosine top-k
    among all pool entries except the entry itself (exclude="self": a user's other prefixes are
    eligible) or except every entry of the anchor's user (exclude="user"). exclude="rank0" is the
    reference's literal rule: ranks 1..k of a top-(k + 1) that includes the entry itself. It
    differs from "self" only where entries share an embedding (equal windows, e.g. users who
    start with the same item): then a tie may rank first and the entry itself stay among its
    neighbours (7.5% of the entries of 1,500 Beauty users with the stand-in tables of
    benchmarks/reference_check.py).

    anchors: (users, lengths) of the prefixes that will train (`experiments.trained_prefixes`), to
    search neighbours for those entries only, against the whole pool: their rows are the ones a
    full search gives (up to near-ties in float rounding), the other rows are -1 (not searched): a run
    that trains a sample of the prefixes searches only that sample's rows. None: every entry.
    """
    if exclude not in ("self", "user", "rank0"):
        raise ValueError(f"exclude={exclude!r}; choose 'self', 'rank0' (the reference's literal rule) or 'user'")
    if len(pool_emb) != len(pool):
        raise ValueError(f"pool_emb has {len(pool_emb)} rows for {len(pool)} pool entries")
    groups = pool.users if exclude == "user" else np.arange(len(pool))
    rows = np.arange(len(pool))
    if anchors is not None:
        rows = np.unique(prefix_entries(pool.users, pool.lengths, *anchors))
        if not len(rows) or rows[0] < 0:
            raise ValueError("prefix_tables: no anchors, or some anchors (user, length) are not entries of the pool; "
                             "pass the training prefixes of the same dataset (experiments.trained_prefixes)")
    if exclude == "rank0":
        found = top_k_neighbors(pool_emb[rows], pool_emb, k + 1, np.full(len(rows), -1), groups, device=device)
        found = found[:, 1:]
    else:
        found = top_k_neighbors(pool_emb[rows], pool_emb, k, groups[rows], groups, device=device)
    pool_nbrs = np.full((len(pool), k), -1, np.int64)
    pool_nbrs[rows] = found
    return SemanticTables(
        item_emb=np.asarray(item_emb, np.float32), item_neighbors=item_neighbors(item_emb, k, device),
        pool_users=pool.users,
        pool_lengths=pool.lengths, pool_emb=np.asarray(pool_emb, np.float32),
        pool_neighbors=pool_nbrs,
        description=(description or "per-prefix tables") + f", cosine top-{k}, {exclude} excluded, per-prefix pool"
        + ("" if anchors is None else f", searched for {len(rows):,} anchors"))


def reference_tables(item_emb, train_sequences, k: int = 10, exclude: str = "rank0", window: int = 20,
                     description: str = "", device: str = "cpu", anchors=None) -> SemanticTables:
    """Per-prefix tables from item embeddings, as the reference builds them from text (notebook 05, the
    results grid, scripts/build_tables.py): one entry per training prefix, embedded as the mean of its last `window`
    items' embeddings at their raw scale, neighbours by `prefix_tables` with `exclude` (and `anchors`)."""
    pool = prefix_pool(train_sequences, whole=False)
    pool_emb = mean_item_embedding(item_emb, train_sequences, pool, window=window, unit=False)
    return prefix_tables(item_emb, pool, pool_emb, k, exclude, description, device, anchors)


def tables_path(artefact_dir, name: str) -> Path:
    """Where tables called `name` of a dataset live: <artefact_dir>/semantic/<name>.npz."""
    return Path(artefact_dir) / "semantic" / f"{name}.npz"
