"""Semantic tables: what retrieval (notebook 03) hands to the trainer (notebooks 05-06).

A *pool entry* is a training sequence prefix identified by (user row, length): the first
`length` items of that user's training sequence. With per-user profiles the pool holds one
entry per user (its whole training sequence); with per-prefix profiles, one per prefix. Keying
by (user, length) rather than by a padded array keeps the tables independent of `max_len`.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SemanticTables:
    item_emb: np.ndarray        # (n_items + 1, d) float32, row 0 (padding) zeros
    item_neighbors: np.ndarray  # (n_items + 1, k) int64 item ids, row 0 zeros; never the item itself
    pool_users: np.ndarray      # (P,) int64 user rows
    pool_lengths: np.ndarray    # (P,) int64 prefix lengths, >= 1
    pool_emb: np.ndarray        # (P, d) float32 semantic embedding of each pool entry
    pool_neighbors: np.ndarray  # (P, k) int64 pool indices; never the entry itself or its own user
    description: str = ""       # how the tables were made (text source, encoder, k)

    def __post_init__(self):
        n_pool = len(self.pool_users)
        for name in ("pool_lengths", "pool_emb", "pool_neighbors"):
            if len(getattr(self, name)) != n_pool:
                raise ValueError(f"SemanticTables.{name} has {len(getattr(self, name))} rows; "
                                 f"pool_users has {n_pool}")
        if self.pool_neighbors.size and (self.pool_neighbors.min() < 0 or self.pool_neighbors.max() >= n_pool):
            raise ValueError("SemanticTables.pool_neighbors holds indices outside the pool")
        n_item_rows = len(self.item_emb)
        if len(self.item_neighbors) != n_item_rows:
            raise ValueError(f"SemanticTables.item_neighbors has {len(self.item_neighbors)} rows; "
                             f"item_emb has {n_item_rows} (n_items + 1)")
        if self.item_neighbors.size and (self.item_neighbors.min() < 0 or self.item_neighbors.max() >= n_item_rows):
            raise ValueError("SemanticTables.item_neighbors holds item ids outside the vocabulary")

    @property
    def k(self) -> int:
        return self.pool_neighbors.shape[1]

    def check_fits(self, n_users: int, n_items: int):
        """Fail clearly when the tables were built for another dataset."""
        if len(self.item_emb) != n_items + 1:
            raise ValueError(f"semantic tables cover {len(self.item_emb) - 1} items; the dataset has "
                             f"{n_items}. Rebuild them with notebook 03 for this dataset.")
        if len(self.pool_users) and self.pool_users.max() >= n_users:
            raise ValueError(f"semantic tables refer to user row {self.pool_users.max()}; the dataset "
                             f"has {n_users} users. Rebuild them with notebook 03 for this dataset.")

    def save(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, description=np.array(self.description),
                            **{name: getattr(self, name) for name in ARRAY_FIELDS})

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: semantic tables not found; run notebook 03 "
                                    "(03_semantic_retrieval) first")
        with np.load(path) as f:
            return cls(**{name: f[name] for name in ARRAY_FIELDS}, description=str(f["description"]))


ARRAY_FIELDS = ("item_emb", "item_neighbors", "pool_users", "pool_lengths", "pool_emb", "pool_neighbors")


def random_tables(train_sequences, n_items: int, k: int = 10, dim: int = 64, seed: int = 0,
                  pool: str = "user") -> SemanticTables:
    """Tables of the right shapes with random embeddings and neighbours.

    pool="user": one entry per user (its whole training sequence); pool="prefix": one per
    training prefix (u, t), t = 1..len - 1, the shape of the reference's per-prefix pool.
    Stands in for real retrieval in speed benchmarks, and is the 'random neighbours' ablation.
    Neighbours never include the entry itself (or, for items, the item itself).
    """
    if pool not in ("user", "prefix"):
        raise ValueError(f"pool={pool!r}; choose 'user' or 'prefix'")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(s) for s in train_sequences], dtype=np.int64)
    if pool == "user":
        pool_users, pool_lengths = np.arange(len(train_sequences), dtype=np.int64), lengths
    else:
        pool_users = np.repeat(np.arange(len(train_sequences), dtype=np.int64), np.maximum(lengths - 1, 0))
        pool_lengths = np.concatenate([np.arange(1, n, dtype=np.int64) for n in lengths])
    n_pool = len(pool_users)
    item_emb = rng.standard_normal((n_items + 1, dim)).astype(np.float32)
    item_emb[0] = 0
    # Draw from n-1 ids and shift those at or above the anchor: uniform over "anyone but me".
    item_neighbors = rng.integers(1, n_items, size=(n_items + 1, k))
    item_neighbors += item_neighbors >= np.arange(n_items + 1)[:, None]
    item_neighbors[0] = 0
    pool_neighbors = rng.integers(0, n_pool - 1, size=(n_pool, k))
    pool_neighbors += pool_neighbors >= np.arange(n_pool)[:, None]
    return SemanticTables(
        item_emb=item_emb, item_neighbors=item_neighbors.astype(np.int64),
        pool_users=pool_users, pool_lengths=pool_lengths,
        pool_emb=rng.standard_normal((n_pool, dim)).astype(np.float32),
        pool_neighbors=pool_neighbors.astype(np.int64),
        description=f"random neighbours (k={k}, seed={seed}), per-{pool} pool")
