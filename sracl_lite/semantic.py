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
    pool_neighbors: np.ndarray  # (P, k) int64 pool indices; never the entry itself or its own user;
                                # a row of -1: not searched (tables built for some anchors only)
    description: str = ""       # how the tables were made (text source, encoder, k)

    def __post_init__(self):
        n_pool = len(self.pool_users)
        for name in ("pool_lengths", "pool_emb", "pool_neighbors"):
            if len(getattr(self, name)) != n_pool:
                raise ValueError(f"SemanticTables.{name} has {len(getattr(self, name))} rows; "
                                 f"pool_users has {n_pool}")
        searched = self.pool_neighbors >= 0
        if (searched.any(axis=1) != searched.all(axis=1)).any() or (self.pool_neighbors < -1).any():
            raise ValueError("SemanticTables.pool_neighbors: a row is either all pool indices or all -1 (not searched)")
        if self.pool_neighbors.size and self.pool_neighbors.max() >= n_pool:
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

    @property
    def searched(self) -> np.ndarray:
        """(P,) bool: entries whose neighbours were searched (all of them unless built for some anchors)."""
        return self.pool_neighbors[:, 0] >= 0 if self.pool_neighbors.size else np.zeros(len(self.pool_users), bool)

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


def prefix_entries(pool_users, pool_lengths, users, lengths) -> np.ndarray:
    """Index of each prefix (user u, length t) among the entries (pool_users, pool_lengths); -1 where absent."""
    pool_users, pool_lengths = np.asarray(pool_users), np.asarray(pool_lengths)
    users, lengths = np.asarray(users), np.asarray(lengths)
    if not len(pool_users):
        return np.full(len(users), -1)
    span = int(max(pool_lengths.max(initial=0), lengths.max(initial=0))) + 1
    keys = pool_users * span + pool_lengths
    order = np.argsort(keys, kind="stable")
    wanted = users * span + lengths
    pos = np.searchsorted(keys[order], wanted).clip(max=len(keys) - 1)
    return np.where(keys[order][pos] == wanted, order[pos], -1)


def pool_entry_of_prefixes(tables, users, lengths, match: str = "auto") -> np.ndarray:
    """Pool entry of each training prefix (user u, length t).

    per-prefix pool: the entry (u, t); per-user pool: user u's single entry (its whole training
    sequence). "auto" takes per-prefix when every (u, t) is in the pool, else per-user.
    """
    pool_users = np.asarray(tables.pool_users)
    if match in ("auto", "prefix"):
        entries = prefix_entries(pool_users, tables.pool_lengths, users, lengths)
        if (entries >= 0).all():
            return entries
        if match == "prefix":
            raise ValueError(f"semantic tables: {int((entries < 0).sum())} training prefixes have no pool entry "
                             "(user, length); build per-prefix tables for this dataset and max_len, or use "
                             "pool_match='user'")
    counts = np.bincount(pool_users, minlength=int(users.max(initial=0)) + 1)
    if (counts[users] != 1).any():
        raise ValueError("semantic tables: the pool is neither per-prefix (some training prefixes have no "
                         "entry) nor per-user (some users have no entry or several); rebuild the tables "
                         "for this dataset with notebook 03")
    entry_of_user = np.full(len(counts), -1)
    entry_of_user[pool_users] = np.arange(len(pool_users))
    return entry_of_user[users]


def pool_sequences(tables, train_sequences, max_len: int) -> np.ndarray:
    """(P, max_len) left-padded last max_len items of every pool entry's prefix."""
    out = np.zeros((len(tables.pool_users), max_len), dtype=np.int64)
    for row, (u, t) in enumerate(zip(tables.pool_users, tables.pool_lengths)):
        seq = train_sequences[u]
        if t > len(seq) or t < 1:
            raise ValueError(f"semantic tables: pool entry {row} is the first {t} items of user {u}, who has "
                             f"{len(seq)} training items; the tables were built for another split")
        tail = seq[max(0, t - max_len):t]
        out[row, max_len - len(tail):] = tail
    return out
