"""Datasets, preprocessing and the leave-one-out split (notebook 01).

`load_dataset(name)` reads a source (MovieLens, Amazon 2014, or a local CSV pair), filters it,
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
import ast
import gzip
import hashlib
import json
import re
import sys
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import paths

# Bump when preprocessing changes so saved artefacts from older code are rebuilt.
PREPROCESS_VERSION = 1

MOVIELENS_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                    "Romance", "Sci-Fi", "Thriller", "War", "Western"]
AMAZON_CATEGORIES = {"amazon-beauty": "Beauty", "amazon-sports": "Sports_and_Outdoors",
                     "amazon-toys": "Toys_and_Games", "amazon-office": "Office_Products"}
AMAZON_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{kind}_{category}{suffix}.json.gz"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# Built-in datasets; "ids" is a file of "user item" lines (IDs only). Any other name is a dataset of
# your own CSV files (interactions_path and items_path), and names its folders.
DATASET_NAMES = ["ml-100k", "ml-1m", *AMAZON_CATEGORIES, "ids"]


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
        """Every prefix of every training sequence with its next item (METHOD step 1)."""
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


def check_columns(frame: pd.DataFrame, required, what: str):
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} missing; found {list(frame.columns)}, "
                         f"expected {','.join(required)}")


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
    items = items.drop_duplicates("item_id").set_index("item_id")
    missing = pd.Index(item_raw_ids).difference(items.index)
    if len(missing):
        raise ValueError(f"{name} items: {len(missing)} interacted item ids have no row in the item "
                         f"table (e.g. {list(missing[:5])}); add them to the items file")
    table = items.loc[item_raw_ids]
    categories = table["categories"] if "categories" in table else pd.Series([[]] * len(table), index=table.index)
    titles = table["title"].fillna("").astype(str).str.strip()
    texts = table["text"] if "text" in table else titles.map(lambda t: f"Title: {t}.")
    return pd.DataFrame({"raw_id": np.asarray(item_raw_ids).astype(str), "title": titles.to_numpy(),
                         "categories": [list(c) for c in categories], "text": texts.to_numpy()},
                        index=pd.RangeIndex(1, len(item_raw_ids) + 1, name="item_id"))


def attribute_text(**fields) -> str:
    """One line such as 'Title: Toy Story. Year: 1995. Genres: Animation, Comedy.' (empty fields skipped)."""
    parts = []
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        value = str(value).strip() if value is not None and not (isinstance(value, float) and np.isnan(value)) else ""
        if value:
            parts.append(f"{key.replace('_', ' ').capitalize()}: {value.rstrip('.')}.")
    return " ".join(parts)


# ---------------------------------------------------------------- sources

def download(url: str, destination: Path) -> Path:
    """Fetch url to destination with a progress bar; fail with what to fetch by hand."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"could not download {url} ({error}). Without network, fetch that file "
                           f"elsewhere and put it at {destination}") from error
    partial.rename(destination)
    return destination


def source_file(path: Path, url: str, allow_download: bool) -> Path:
    if path.exists():
        return path
    if not allow_download:
        raise FileNotFoundError(f"{path} not found and downloads are off; fetch {url} and put it there")
    return download(url, path)


def recbole_ml100k_dir():
    """The ML-100K copy inside the installed recbole wheel, or None (never imports recbole)."""
    import importlib.metadata as metadata
    try:
        folder = Path(metadata.distribution("recbole").locate_file("recbole/dataset_example/ml-100k"))
    except metadata.PackageNotFoundError:
        return None
    return folder if (folder / "ml-100k.inter").exists() else None


def read_recbole_table(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]  # "user_id:token" -> "user_id"
    return frame


def movie_items(item_ids, titles, years, genres) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": item_ids, "title": titles, "categories": genres,
        "text": [attribute_text(title=t, year=y, genres=g) for t, y, g in zip(titles, years, genres)]})


def read_ml100k(raw_dir: Path, allow_download: bool):
    recbole_dir = recbole_ml100k_dir()
    if recbole_dir is not None:
        inter = read_recbole_table(recbole_dir / "ml-100k.inter")
        item = read_recbole_table(recbole_dir / "ml-100k.item")
        interactions = pd.DataFrame({c: inter[c].astype(np.int64) for c in ("user_id", "item_id")})
        interactions["timestamp"] = inter["timestamp"].astype(float).astype(np.int64)
        items = movie_items(item["item_id"].astype(np.int64), item["movie_title"], item["release_year"],
                            [c.split() for c in item["class"]])
        return interactions, items, [recbole_dir / "ml-100k.inter", recbole_dir / "ml-100k.item"]
    folder = grouplens_folder(raw_dir, "ml-100k", ["u.data", "u.item"], allow_download)
    interactions = pd.read_csv(folder / "u.data", sep="\t", header=None,
                               names=["user_id", "item_id", "rating", "timestamp"])
    item = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1", dtype=str,
                       keep_default_na=False)
    if item.shape[1] != 5 + len(MOVIELENS_GENRES):
        raise ValueError(f"{folder / 'u.item'}: expected {5 + len(MOVIELENS_GENRES)} '|' columns, "
                         f"found {item.shape[1]}; is this the GroupLens ML-100K file?")
    titles, years = split_title_year(item[1])
    release_years = item[2].str[-4:].where(item[2] != "", years)
    genres = [[g for g, flag in zip(MOVIELENS_GENRES, row) if flag == "1"] for row in item.iloc[:, 5:].to_numpy()]
    items = movie_items(item[0].astype(np.int64), titles, release_years, genres)
    return interactions, items, [folder / "u.data", folder / "u.item"]


def read_ml1m(raw_dir: Path, allow_download: bool):
    folder = grouplens_folder(raw_dir, "ml-1m", ["ratings.dat", "movies.dat"], allow_download)
    interactions = pd.read_csv(folder / "ratings.dat", sep="::", engine="python", header=None,
                               names=["user_id", "item_id", "rating", "timestamp"])
    movies = pd.read_csv(folder / "movies.dat", sep="::", engine="python", header=None, encoding="latin-1",
                         names=["item_id", "title", "genres"], dtype={"title": str, "genres": str})
    titles, years = split_title_year(movies["title"])
    items = movie_items(movies["item_id"], titles, years, [g.split("|") for g in movies["genres"]])
    return interactions, items, [folder / "ratings.dat", folder / "movies.dat"]


def split_title_year(titles: pd.Series):
    """'Toy Story (1995)' -> ('Toy Story', '1995'); titles without a year keep an empty year."""
    parts = titles.str.extract(r"^(.*?)\s*\((\d{4})\)\s*$")
    return parts[0].fillna(titles).str.strip(), parts[1].fillna("")


def grouplens_folder(raw_dir: Path, name: str, needed, allow_download: bool) -> Path:
    folder = raw_dir / name
    if all((folder / f).exists() for f in needed):
        return folder
    archive = source_file(raw_dir / f"{name}.zip", GROUPLENS_URL.format(name=name), allow_download)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            if Path(member).name in needed:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / Path(member).name).write_bytes(zipped.read(member))
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        raise ValueError(f"{archive}: {missing} not inside; is this the GroupLens {name} archive?")
    return folder


def read_amazon(raw_dir: Path, name: str, allow_download: bool):
    category = AMAZON_CATEGORIES[name]
    reviews_path = source_file(raw_dir / f"reviews_{category}_5.json.gz",
                               AMAZON_URL.format(kind="reviews", category=category, suffix="_5"), allow_download)
    meta_path = source_file(raw_dir / f"meta_{category}.json.gz",
                            AMAZON_URL.format(kind="meta", category=category, suffix=""), allow_download)
    rows = [parse_record(line, reviews_path) for line in gzip.open(reviews_path, "rt", encoding="utf-8")]
    reviews = pd.DataFrame(rows)
    check_columns(reviews, ["reviewerID", "asin", "unixReviewTime"], str(reviews_path))
    interactions = pd.DataFrame({"user_id": reviews["reviewerID"], "item_id": reviews["asin"],
                                 "timestamp": reviews["unixReviewTime"].astype(np.int64)})
    wanted = set(interactions["item_id"])
    records = []
    for line in gzip.open(meta_path, "rt", encoding="utf-8"):
        quick_asin = re.search(r"""['"]asin['"]: ['"]([^'"]*)""", line)
        if quick_asin and quick_asin.group(1) not in wanted:
            continue  # skip parsing the many items nobody in the 5-core reviewed
        record = parse_record(line, meta_path)
        if record.get("asin") in wanted:
            records.append(record)
    items = pd.DataFrame([amazon_item(r) for r in records], columns=["item_id", "title", "categories", "text"])
    # An item that the 5-core reviews but the metadata lacks keeps an empty title (counted in stats).
    absent = sorted(wanted - set(items["item_id"]))
    items = pd.concat([items, pd.DataFrame({"item_id": absent, "title": "", "categories": [[]] * len(absent),
                                            "text": ""})], ignore_index=True)
    return interactions, items, [reviews_path, meta_path]


def parse_record(line: str, path: Path) -> dict:
    """Amazon 2014 files hold JSON (reviews) or Python-literal dicts (metadata), one per line."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(line)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{path}: cannot parse line {line[:80]!r}") from error


def amazon_item(record: dict) -> dict:
    # categories is a list of category paths; the first path without the top level is the most specific
    paths = record.get("categories") or [[]]
    categories = list(dict.fromkeys(c for path in paths for c in path[1:]))
    description = str(record.get("description", ""))[:300]
    return {"item_id": record["asin"], "title": str(record.get("title", "")).strip(), "categories": categories,
            "text": attribute_text(title=record.get("title"), brand=record.get("brand"),
                                   categories=categories[:6], price=record.get("price"),
                                   description=description)}


def read_csv_pair(interactions_path, items_path):
    """Local data: interactions CSV (user_id,item_id,timestamp) + items CSV (item_id,title,...).

    Ids may be integers or text (Amazon's 'B00005N7P0'); they are re-indexed later and kept as
    raw ids. Timestamps may be integer or float Unix seconds, or ISO-8601 dates. Extra item
    columns become part of the item text; a 'categories' column is split on '|'.
    """
    frames = {}
    for label, path, required in (("interactions", interactions_path, ["user_id", "item_id", "timestamp"]),
                                  ("items", items_path, ["item_id", "title"])):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: {label} file not found")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: empty file; expected a header {','.join(required)}") from None
        except pd.errors.ParserError as error:
            raise ValueError(f"{path}: not a well-formed CSV ({str(error).strip()}); put a field that holds commas, "
                             'quotes or line breaks in double quotes and double the quotes inside it ("a ""b"", c")'
                             ) from None
        frame.columns = [str(c).strip() for c in frame.columns]
        check_columns(frame, required, str(path))
        if frame.empty:
            raise ValueError(f"{path}: header only, no rows")
        ids = ("user_id", "item_id") if label == "interactions" else ("item_id",)
        for column in ids:
            frame[column] = frame[column].str.strip()
            empty = frame[column] == ""
            if empty.any():
                raise ValueError(f"{path}: column '{column}' is empty in {int(empty.sum())} rows (first: file line "
                                 f"{int(np.flatnonzero(empty)[0]) + 2}); fill or drop those rows")
        if label == "interactions":
            frame["timestamp"] = parse_timestamps(frame["timestamp"], path)
        frames[label] = frame
    # Integer ids stay integers (so 9 sorts before 10); any other id makes both files' ids text.
    for column, labels in (("user_id", ["interactions"]), ("item_id", ["interactions", "items"])):
        numbers = [pd.to_numeric(frames[label][column], errors="coerce") for label in labels]
        if all(n.notna().all() and (n >= 0).all() and (n == n.round()).all() for n in numbers):
            for label, n in zip(labels, numbers):
                frames[label][column] = n.astype(np.int64)
    items = frames["items"]
    extra = [c for c in items.columns if c not in ("item_id", "title", "categories")]
    categories = (items["categories"].fillna("").astype(str).str.split("|").map(lambda c: [x for x in c if x])
                  if "categories" in items else [[]] * len(items))
    items = pd.DataFrame({
        "item_id": items["item_id"], "title": items["title"].fillna("").astype(str), "categories": list(categories),
        "text": [attribute_text(title=row["title"], categories=cats, **{c: row[c] for c in extra})
                 for (_, row), cats in zip(items.iterrows(), categories)]})
    return frames["interactions"], items, [Path(interactions_path), Path(items_path)]


def parse_timestamps(values: pd.Series, path) -> pd.Series:
    """Unix seconds (integer or float) or ISO-8601 dates -> float seconds; the first value that is
    neither is an error naming its file line."""
    text = values.str.strip()
    seconds = pd.to_numeric(text, errors="coerce")
    if seconds.notna().all():
        return seconds.astype(np.float64)
    dates = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if dates.notna().all():
        return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    # The form most values have decides which value is named as the wrong one.
    wrong = seconds.isna() if seconds.notna().sum() >= dates.notna().sum() else dates.isna()
    bad = int(np.flatnonzero(wrong)[0])
    raise ValueError(f"{path}: column 'timestamp', file line {bad + 2}: {values.iloc[bad]!r} is neither Unix seconds "
                     "nor an ISO-8601 date; use one form for the whole column, e.g. 1398902400 or "
                     "2014-05-01T00:00:00Z")


# ---------------------------------------------------------------- artefacts

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_dataset_name(name: str, interactions_path=None, items_path=None):
    """A built-in name without files, or a name of your own (it names folders) with both CSV files."""
    if name in DATASET_NAMES:
        if name != "ids" and (interactions_path or items_path):
            raise ValueError(f"dataset {name!r} is built in and reads no files of yours; give your own data "
                             "another name (e.g. 'my-shop') together with interactions_path and items_path")
        return
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise ValueError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' (it names folders)")
    if not (interactions_path and items_path):
        raise ValueError(f"dataset {name!r} is not built in ({', '.join(DATASET_NAMES)}); for your own data give "
                         "both files: interactions (user_id,item_id,timestamp) and items (item_id,title,...), "
                         "e.g. SRACL_INTERACTIONS=... SRACL_ITEMS=... in the notebooks")


def read_source(name: str, data_dir=None, allow_download: bool = True, interactions_path=None, items_path=None):
    """Raw (interactions, items, source files) of a dataset, before any filtering (notebook 01).
    A name that is not built in is your own data: interactions_path and items_path are CSV files."""
    check_dataset_name(name, interactions_path, items_path)
    raw_dir = paths.data_dir(data_dir) / "raw"
    if name == "ml-100k":
        return read_ml100k(raw_dir, allow_download)
    if name == "ml-1m":
        return read_ml1m(raw_dir, allow_download)
    if name in AMAZON_CATEGORIES:
        return read_amazon(raw_dir, name, allow_download)
    if name == "ids":
        return read_id_pairs(interactions_path)
    return read_csv_pair(interactions_path, items_path)


def read_id_pairs(path):
    """ID-only data: one 'user item' pair per line, each user's lines in time order (the format of
    the SRA-CL authors' data/Beauty/Beauty.txt). No item text, so ID-only baselines and speed only."""
    if path is None:
        raise ValueError("dataset 'ids' needs interactions_path= (lines 'user item', oldest first)")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: id-pair file not found")
    try:
        pairs = pd.read_csv(path, sep=r"\s+", header=None, names=["user_id", "item_id"], dtype=np.int64)
    except (pd.errors.EmptyDataError, ValueError) as error:
        raise ValueError(f"{path}: expected lines of two integers 'user item' ({error})") from None
    pairs["timestamp"] = np.arange(len(pairs))  # line order is time order
    items = pd.DataFrame({"item_id": np.unique(pairs["item_id"])})
    items["title"] = [f"item {i}" for i in items["item_id"]]
    return pairs, items, [path]


def load_dataset(name: str, data_dir=None, rebuild: bool = False, allow_download: bool = True,
                 min_user_interactions: int = 5, min_item_interactions: int = 5,
                 interactions_path=None, items_path=None) -> SequenceData:
    """Load a processed dataset, building (and saving) it when no matching artefact exists.

    name: one of DATASET_NAMES, or a name of your own for CSV files given as interactions_path
    and items_path (see read_csv_pair); the name keys every folder made from the data, so two
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
