"""Datasets, preprocessing and the leave-one-out split (notebook 01).

`load_dataset(name)` reads a source (sources.py: MovieLens, Amazon 2014, ids or your CSV pair), filters it,
orders each user's interactions in time, re-indexes users and items, splits leave-one-out and
saves the result with a manifest. A later call (or notebook) reuses the saved artefact only when
its manifest still matches the source files, the filter settings and the code version.

Conventions used by every other module:
- item ids run 1..n_items; 0 is padding;
- user rows run 0..n_users-1 (users never enter a model, so no padding row is needed);
- `train_sequences[u]` holds user u's training items oldest first; the second-to-last
  interaction is `valid_targets[u]`, the last is `test_targets[u]`;
- order within a user: by timestamp, ties kept in the order of the rows in the source file
  (a stable sort). Half of ML-100K's rows share a timestamp with another row of the same user,
  so the tie-break decides many validation and test targets; file order is what the source
  recorded and what other implementations use.
"""
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .sources import check_columns, read_source

# Bump when preprocessing changes so saved artefacts from older code are rebuilt.
PREPROCESS_VERSION = 1


@dataclass
class PrepConfig:
    # 5-core is the convention of the paper's datasets: items seen by fewer than 5 users carry
    # almost no collaborative signal and make full-ranking metrics noisy.
    min_user_interactions: int = 5
    min_item_interactions: int = 5


@dataclass
class Domain:
    """Words used in prompts and plots (notebook 02)."""
    domain: str = "items"
    item_noun: str = "item"
    verb_past: str = "interacted with"


MOVIES = Domain("movies", "movie", "watched")
PRODUCTS = {"amazon-beauty": Domain("beauty products", "product", "bought"),
            "amazon-sports": Domain("sports and outdoors products", "product", "bought"),
            "amazon-toys": Domain("toys and games", "product", "bought"),
            "amazon-office": Domain("office products", "product", "bought")}


@dataclass
class TrainPrefixes:
    inputs: np.ndarray   # (N, max_len) item ids, left-padded with 0
    targets: np.ndarray  # (N,) next item after each prefix
    users: np.ndarray    # (N,) user row of each prefix
    lengths: np.ndarray  # (N,) prefix length before truncation to max_len


@dataclass
class SequenceData:
    name: str
    n_users: int
    n_items: int
    train_sequences: list      # n_users int64 arrays, oldest first
    valid_targets: np.ndarray  # (n_users,)
    test_targets: np.ndarray   # (n_users,)
    items: pd.DataFrame        # index item id 1..n_items; raw_id, title, categories, text
    user_raw_ids: np.ndarray   # (n_users,) ids in the source
    domain: str = "items"
    item_noun: str = "item"
    verb_past: str = "interacted with"
    stats: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    artefact_dir: Path = None

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, name: str, items: pd.DataFrame = None,
                          config: PrepConfig = None, domain: Domain = Domain()):
        """Filter, order, re-index and split `interactions` (columns user_id, item_id, timestamp).

        `items` (optional) has item_id, title, categories (list) and text; without it titles are
        "item <raw id>". Nothing is saved; `load_dataset` adds the artefact handling.
        """
        config = config or PrepConfig()
        check_columns(interactions, ["user_id", "item_id", "timestamp"], f"{name} interactions")
        table, stats = filter_and_order(interactions, config, name)
        user_raw_ids = np.sort(table["user_id"].unique())
        item_raw_ids = np.sort(table["item_id"].unique())
        user_row = pd.Series(np.arange(len(user_raw_ids)), index=user_raw_ids)
        item_id = pd.Series(np.arange(1, len(item_raw_ids) + 1), index=item_raw_ids)
        users = user_row.loc[table["user_id"]].to_numpy()
        item_ids = item_id.loc[table["item_id"]].to_numpy().astype(np.int64)
        # table is sorted by user then time, so each user's items form one contiguous run
        starts = np.searchsorted(users, np.arange(len(user_raw_ids)))
        sequences = np.split(item_ids, starts[1:])
        train = [s[:-2] for s in sequences]
        item_table = item_text_table(item_raw_ids, items, name)
        stats["items_without_title"] = int((item_table["title"] == "").sum())
        # raw ids are kept as text: Amazon ids are strings, some with leading zeros
        return cls(name=name, n_users=len(user_raw_ids), n_items=len(item_raw_ids),
                   train_sequences=train,
                   valid_targets=np.array([s[-2] for s in sequences], dtype=np.int64),
                   test_targets=np.array([s[-1] for s in sequences], dtype=np.int64),
                   items=item_table, user_raw_ids=user_raw_ids.astype(str), stats=stats, **asdict(domain))

    def train_prefixes(self, max_len: int) -> TrainPrefixes:
        """Every prefix of every training sequence with its next item: each is one training sample."""
        windows, targets, users, lengths = [], [], [], []
        for u, seq in enumerate(self.train_sequences):
            if len(seq) < 2:
                continue
            padded = np.concatenate([np.zeros(max_len, dtype=np.int64), seq])
            # window t ends just before seq[t]: the last max_len items of the prefix seq[:t]
            windows.append(np.lib.stride_tricks.sliding_window_view(padded, max_len)[1:len(seq)])
            targets.append(seq[1:])
            users.append(np.full(len(seq) - 1, u))
            lengths.append(np.arange(1, len(seq)))
        if not windows:
            raise ValueError(f"{self.name}: no user has two or more training items, so there are "
                             "no training prefixes; use a larger dataset or a lower filter")
        return TrainPrefixes(np.concatenate(windows), np.concatenate(targets),
                             np.concatenate(users).astype(np.int64), np.concatenate(lengths).astype(np.int64))

    def eval_inputs(self, stage: str, max_len: int):
        """Inputs and targets for scoring every user: validation sees the training sequence,
        test sees it plus the validation item."""
        if stage == "valid":
            histories, targets = self.train_sequences, self.valid_targets
        elif stage == "test":
            histories = [np.append(s, v) for s, v in zip(self.train_sequences, self.valid_targets)]
            targets = self.test_targets
        else:
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        return left_pad(histories, max_len), targets

    def training_tail(self, n: int) -> "SequenceData":
        """The sparse view of this data (results grid, `--train-last`): each user's training sequence
        cut to its last `n` items, validation and test targets as they are. Named <name>-last<n>,
        with its own folder for tables, since pools and neighbours change with the sequences."""
        if n < 2:
            raise ValueError(f"training_tail(n={n}): a user needs at least 2 training items to make one "
                             "training prefix; use n >= 2")
        folder = self.artefact_dir and self.artefact_dir.with_name(f"{self.artefact_dir.name}-last{n}")
        return replace(self, name=f"{self.name}-last{n}", train_sequences=[s[-n:] for s in self.train_sequences],
                       stats={**self.stats, "training_tail": n}, artefact_dir=folder)

    def titles(self, item_ids) -> list:
        return [self.items.at[int(i), "title"] or f"item {self.items.at[int(i), 'raw_id']}" for i in item_ids]

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for array in (np.concatenate(self.train_sequences), np.array([len(s) for s in self.train_sequences]),
                      self.valid_targets, self.test_targets):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        digest.update(self.items.to_json(orient="records").encode())
        digest.update(np.asarray(self.user_raw_ids).astype(str).astype(bytes).tobytes())
        return digest.hexdigest()


def left_pad(sequences, max_len: int) -> np.ndarray:
    """(len(sequences), max_len) array of each sequence's last max_len items, 0 on the left."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-max_len:]) if max_len else np.zeros(0)
        if len(tail):
            out[row, max_len - len(tail):] = tail
    return out


def filter_and_order(interactions: pd.DataFrame, config: PrepConfig, name: str):
    """Order by (user, time, source row), drop repeats, iterate the k-core filter.

    Returns the filtered table (sorted by user, then time) and counts of what was removed.
    """
    if len(interactions) == 0:
        raise ValueError(f"{name}: no interactions (empty file or table)")
    table = interactions[["user_id", "item_id", "timestamp"]].copy()
    if table.isna().any().any():
        raise ValueError(f"{name}: {int(table.isna().any(axis=1).sum())} interaction rows have an empty "
                         "user_id, item_id or timestamp; fill or drop them first")
    table["source_row"] = np.arange(len(table))
    table = table.sort_values(["user_id", "timestamp", "source_row"], kind="mergesort")
    stats = {"raw_interactions": len(table)}
    # A repeated (user, item) pair keeps its first occurrence: a re-rating or re-purchase adds no
    # new item to predict, and a target already in the history would make ranking trivial.
    table = table.drop_duplicates(["user_id", "item_id"], keep="first")
    stats["duplicates_removed"] = stats["raw_interactions"] - len(table)
    rounds = 0
    while True:
        user_counts = table["user_id"].map(table["user_id"].value_counts())
        item_counts = table["item_id"].map(table["item_id"].value_counts())
        keep = (user_counts >= config.min_user_interactions) & (item_counts >= config.min_item_interactions)
        rounds += 1
        if keep.all():
            break
        table = table[keep]
    stats["k_core_rounds"] = rounds
    # Leave-one-out needs a training item, a validation item and a test item.
    user_counts = table["user_id"].map(table["user_id"].value_counts())
    stats["users_below_3_removed"] = int(table.loc[user_counts < 3, "user_id"].nunique())
    table = table[user_counts >= 3]
    stats["filtered_out_interactions"] = stats["raw_interactions"] - stats["duplicates_removed"] - len(table)
    if len(table) == 0:
        raise ValueError(f"{name}: no user keeps 3 or more interactions after filtering "
                         f"({asdict(config)}); lower the thresholds")
    stats["interactions"] = len(table)
    return table.reset_index(drop=True), stats


def item_text_table(item_raw_ids, items: pd.DataFrame, name: str) -> pd.DataFrame:
    if items is None:
        items = pd.DataFrame({"item_id": item_raw_ids, "title": [f"item {i}" for i in item_raw_ids]})
    check_columns(items, ["item_id", "title"], f"{name} items")
    source = items.attrs.get("source", f"{name} items")   # the items file, for data of your own
    items = items.drop_duplicates("item_id").set_index("item_id")
    missing = pd.Index(item_raw_ids).difference(items.index)
    if len(missing):
        raise ValueError(f"{source}: {len(missing)} interacted item ids have no row in the item table "
                         f"(e.g. {list(missing[:5])}); add a row item_id,title for each to that file")
    table = items.loc[item_raw_ids]
    categories = table["categories"] if "categories" in table else pd.Series([[]] * len(table), index=table.index)
    titles = table["title"].fillna("").astype(str).str.strip()
    texts = table["text"] if "text" in table else titles.map(lambda t: f"Title: {t}.")
    return pd.DataFrame({"raw_id": np.asarray(item_raw_ids).astype(str), "title": titles.to_numpy(),
                         "categories": [list(c) for c in categories], "text": texts.to_numpy()},
                        index=pd.RangeIndex(1, len(item_raw_ids) + 1, name="item_id"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_dataset(name: str, data_dir=None, rebuild: bool = False, allow_download: bool = True,
                 min_user_interactions: int = 5, min_item_interactions: int = 5,
                 interactions_path=None, items_path=None) -> SequenceData:
    """Load a processed dataset, building (and saving) it when no matching artefact exists.

    name: one of DATASET_NAMES, or a name of your own for CSV files given as interactions_path
    and items_path (see own_data.read_csv_pair); the name keys every folder made from the data, so two
    datasets of your own never share one. Raw files live under data_dir/raw (downloads land
    there), artefacts under data_dir/processed/<name>. data_dir defaults to $SRACL_DATA_DIR or
    the repository's data/ folder.
    """
    interactions, items, sources = read_source(name, data_dir, allow_download, interactions_path, items_path)
    config = PrepConfig(min_user_interactions, min_item_interactions)
    expected = {"dataset": name, "preprocess_version": PREPROCESS_VERSION, "config": asdict(config),
                "sources": [{"file": p.name, "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sources]}
    artefact_dir = paths.processed_dir(name, data_dir)
    if not rebuild:
        data, reason = load_artefact(artefact_dir, expected)
        if data is not None:
            return data
        print(f"building {name}: {reason}", file=sys.stderr)  # stderr: a status, not a result
    domain = MOVIES if name in ("ml-100k", "ml-1m") else PRODUCTS.get(name, Domain())
    data = SequenceData.from_interactions(interactions, name, items, config, domain)
    data.manifest = {**expected, "counts": {"users": data.n_users, "items": data.n_items,
                                            "interactions": data.stats["interactions"]},
                     "stats": data.stats, "domain": asdict(domain), "content_hash": data.content_hash()}
    save_artefact(data, artefact_dir)
    return data


def save_artefact(data: SequenceData, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "sequences.npz", train_items=np.concatenate(data.train_sequences),
             train_lengths=np.array([len(s) for s in data.train_sequences]),
             valid_targets=data.valid_targets, test_targets=data.test_targets,
             user_raw_ids=np.asarray(data.user_raw_ids))
    data.items.reset_index().to_json(folder / "items.jsonl", orient="records", lines=True)
    # The manifest is written last: a run interrupted before this point leaves no valid artefact.
    (folder / "manifest.json").write_text(json.dumps(data.manifest, indent=1))
    data.artefact_dir = folder


def load_artefact(folder: Path, expected: dict):
    """(data, None) when the saved artefact matches `expected` and its content hash, else (None, reason)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        return None, "no saved artefact"
    manifest = json.loads(manifest_path.read_text())
    for key, value in expected.items():
        if manifest.get(key) != value:
            return None, f"saved artefact is stale ({key} changed)"
    try:
        with np.load(folder / "sequences.npz") as arrays:
            train = np.split(arrays["train_items"], np.cumsum(arrays["train_lengths"])[:-1])
            items = pd.read_json(folder / "items.jsonl", orient="records", lines=True, dtype={"raw_id": str})
            items = items.set_index("item_id")
            data = SequenceData(name=manifest["dataset"], n_users=len(train), n_items=len(items),
                                train_sequences=train, valid_targets=arrays["valid_targets"],
                                test_targets=arrays["test_targets"], items=items,
                                user_raw_ids=arrays["user_raw_ids"], stats=manifest["stats"],
                                manifest=manifest, artefact_dir=folder, **manifest["domain"])
    except (OSError, KeyError, ValueError) as error:
        return None, f"saved artefact unreadable ({error})"
    if data.content_hash() != manifest.get("content_hash"):
        return None, "saved artefact does not match its content hash"
    return data, None


def timestamp_ties(interactions: pd.DataFrame) -> dict:
    """How much the tie-break matters (notebook 01): the share of rows that share their user's
    timestamp with another row, and of users whose last two interactions share a timestamp
    (their validation/test order is then decided by file order alone)."""
    ordered = interactions.assign(source_row=np.arange(len(interactions))).sort_values(
        ["user_id", "timestamp", "source_row"], kind="mergesort")
    tied_rows = ordered.duplicated(["user_id", "timestamp"], keep=False)
    last_two = ordered.groupby("user_id").tail(2)
    tied_ends = last_two.groupby("user_id")["timestamp"].nunique() == 1
    return {"rows_sharing_timestamp": float(tied_rows.mean()), "users_with_tied_last_two": float(tied_ends.mean())}
