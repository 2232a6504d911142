"""Neighbours without text: collaborative (co-occurrence, SVD) and random ones (notebook 03).

They answer "do semantic neighbours beat what the interactions alone, or chance, would give?"
and stand in for semantic tables where no item text exists (the Amazon Beauty ids).
"""
import dataclasses

import numpy as np
import scipy.sparse as sp

from .retrieval import PrefixSet, _check_others, mean_item_embedding, unit_rows, user_pool
from .semantic import SemanticTables


def incidence(train_sequences, prefixes: PrefixSet, n_items: int) -> sp.csr_matrix:
    """(P, n_items + 1) 0/1 matrix: which items each prefix holds."""
    cols = [train_sequences[u][:t] for u, t in zip(prefixes.users, prefixes.lengths)]
    rows = np.repeat(np.arange(len(prefixes)), [len(c) for c in cols])
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(cols))),
                           shape=(len(prefixes), n_items + 1))
    matrix.data[:] = 1  # a repeated item counts once
    return matrix


def _top_k_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best columns per row (best first); -inf marks columns that may not be picked."""
    n_valid = np.isfinite(scores).sum(axis=1)
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    ranked = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable"), 1)
    return np.take_along_axis(ranked, np.arange(k)[None, :] % np.clip(n_valid, 1, k_eff)[:, None], axis=1)


def cooccurrence_item_neighbors(train_sequences, n_items: int, k: int = 10, measure: str = "count",
                                chunk_size: int = 512) -> np.ndarray:
    """(n_items + 1, k) collaborative item neighbours, never the item itself (notebook 03).

    measure 'count': number of users whose training sequence holds both items; 'cosine': that
    count over sqrt(popularity product), which favours popular items less. Ties, and items that
    co-occur with fewer than k others, are filled by training popularity.
    """
    if measure not in ("count", "cosine"):
        raise ValueError(f"measure must be 'count' or 'cosine', got {measure!r}")
    users = incidence(train_sequences, user_pool(train_sequences), n_items)
    together = (users.T @ users).tocsr()  # (n_items + 1, n_items + 1) shared users
    popularity = together.diagonal().astype(np.float64)
    # Below 1 for count, tiny for cosine: it only orders otherwise equal scores.
    tie_break = popularity / (popularity.max() + 1) * (1 if measure == "count" else 1e-6)
    table = np.zeros((n_items + 1, k), np.int64)
    for start in range(1, n_items + 1, chunk_size):
        rows = np.arange(start, min(start + chunk_size, n_items + 1))
        scores = together[rows].toarray().astype(np.float64)
        if measure == "cosine":
            scores /= np.sqrt(np.maximum(popularity[rows, None] * popularity[None, :], 1))
        scores += tie_break[None, :]
        scores[:, 0] = -np.inf
        scores[np.arange(len(rows)), rows] = -np.inf
        table[rows] = _top_k_scores(scores, k)
    return table


def collaborative_pool_neighbors(train_sequences, queries: PrefixSet, pool: PrefixSet, n_items: int,
                                 k: int = 10, chunk_size: int = 256) -> np.ndarray:
    """(Q, k) pool indices by cosine of the item sets, skipping the query's own user (notebook 03)."""
    def normalised(prefixes):
        matrix = incidence(train_sequences, prefixes, n_items)
        return sp.diags(1 / np.sqrt(np.maximum(matrix.getnnz(axis=1), 1))) @ matrix
    _check_others(queries.users, pool.users)
    query_sets, pool_sets = normalised(queries), normalised(pool).T.tocsc()
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), chunk_size):
        rows = np.arange(start, min(start + chunk_size, len(queries)))
        scores = (query_sets[rows] @ pool_sets).toarray().astype(np.float64)
        scores[queries.users[rows, None] == pool.users[None, :]] = -np.inf
        out[rows] = _top_k_scores(scores, k)
    return out


def item_svd_embedding(train_sequences, n_items: int, dim: int = 64) -> np.ndarray:
    """(n_items + 1, dim) unit-length item factors of a truncated SVD of the training user-item
    matrix, row 0 zeros: item vectors from interactions alone (notebook 03)."""
    from scipy.sparse.linalg import svds
    matrix = incidence(train_sequences, user_pool(train_sequences), n_items).astype(np.float64)
    dim = min(dim, min(matrix.shape) - 1)
    # A fixed start vector makes the decomposition reproducible.
    _, values, vt = svds(matrix, k=dim, v0=np.ones(min(matrix.shape)) / np.sqrt(min(matrix.shape)))
    item_emb = unit_rows(vt.T * np.sqrt(values))
    item_emb[0] = 0
    return item_emb


def collaborative_tables(train_sequences, n_items: int, pool: PrefixSet, k: int = 10, dim: int = 64,
                         measure: str = "count") -> SemanticTables:
    """Tables whose neighbours come from co-interaction instead of text (notebook 03).

    Embeddings (for the learnable synthesizer) are a truncated SVD of the user-item matrix:
    item factors, and for pool entries the mean of their items' factors.
    """
    item_emb = item_svd_embedding(train_sequences, n_items, dim)
    dim = item_emb.shape[1]
    return SemanticTables(
        item_emb=item_emb, item_neighbors=cooccurrence_item_neighbors(train_sequences, n_items, k, measure),
        pool_users=pool.users, pool_lengths=pool.lengths,
        pool_emb=mean_item_embedding(item_emb, train_sequences, pool),
        pool_neighbors=collaborative_pool_neighbors(train_sequences, pool, pool, n_items, k),
        description=f"collaborative neighbours (items: co-occurrence {measure}; sequences: item-set cosine), "
                    f"SVD-{dim} embeddings, k={k}, {pool.kind} pool")


def random_item_neighbors(n_items: int, k: int = 10, seed: int = 0) -> np.ndarray:
    """(n_items + 1, k) uniform random item ids other than the item itself; row 0 zeros (notebook 03)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(1, n_items, size=(n_items + 1, k))
    table += table >= np.arange(n_items + 1)[:, None]  # draw from n - 1 ids, skip the anchor
    table[0] = 0
    return table.astype(np.int64)


def random_pool_neighbors(query_users, pool: PrefixSet, k: int = 10, seed: int = 0) -> np.ndarray:
    """(Q, k) uniform random pool indices of other users' entries (with replacement) (notebook 03)."""
    query_users = np.asarray(query_users)
    order = np.argsort(pool.users, kind="stable")
    sorted_users = pool.users[order]
    first = np.searchsorted(sorted_users, query_users, "left")
    own = np.searchsorted(sorted_users, query_users, "right") - first
    others = _check_others(query_users, pool.users)
    draw = np.floor(np.random.default_rng(seed).random((len(query_users), k)) * others[:, None]).astype(np.int64)
    draw += (draw >= first[:, None]) * own[:, None]  # jump over the user's own block
    return order[draw]


ABLATIONS = ("randpool", "randsub", "norm20")
SIMCSE_NORM = 20.0   # about the row norm of the authors' SimCSE embeddings; ours are unit length or less


def ablated_tables(tables: SemanticTables, ablation: str, seed: int = 0) -> SemanticTables:
    """One part of a reference table changed, the rest kept (the clean ablations of notebook 07):
    randpool: pool neighbours drawn at random from other users' prefixes (compare with the `_user`
              tables, whose semantic neighbours are of other users too);
    randsub:  substitution (item) neighbours drawn at random;
    norm20:   pool embeddings scaled to a mean row norm of SIMCSE_NORM, the size of the inputs the
              authors' synthesizer sees (neighbours unchanged)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation {ablation!r}; choose one of {ABLATIONS}")
    changed = {}
    if ablation == "randpool":
        pool = PrefixSet(tables.pool_users, tables.pool_lengths, "prefix")
        changed["pool_neighbors"] = random_pool_neighbors(tables.pool_users, pool, tables.k, seed)
    elif ablation == "randsub":
        changed["item_neighbors"] = random_item_neighbors(len(tables.item_emb) - 1, tables.item_neighbors.shape[1],
                                                          seed)
    else:
        norm = np.linalg.norm(tables.pool_emb, axis=1).mean()
        changed["pool_emb"] = (tables.pool_emb * (SIMCSE_NORM / norm)).astype(np.float32)
    return dataclasses.replace(tables, **changed, description=f"{tables.description}; ablation {ablation}")


def random_neighbor_tables(train_sequences, n_items: int, pool: PrefixSet, k: int = 10, seed: int = 0,
                           dim: int = 64) -> SemanticTables:
    """The 'random neighbours' ablation for any pool, with random unit embeddings (notebook 03)."""
    rng = np.random.default_rng(seed + 1)
    item_emb = unit_rows(rng.standard_normal((n_items + 1, dim)))
    item_emb[0] = 0
    return SemanticTables(item_emb=item_emb, item_neighbors=random_item_neighbors(n_items, k, seed),
                          pool_users=pool.users, pool_lengths=pool.lengths,
                          pool_emb=unit_rows(rng.standard_normal((len(pool), dim))),
                          pool_neighbors=random_pool_neighbors(pool.users, pool, k, seed),
                          description=f"random neighbours (k={k}, seed={seed}), {pool.kind} pool")
