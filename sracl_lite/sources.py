"""One reader per data source: raw (interactions, items, source files) before any filtering
(notebook 01). data.py turns them into sequences, splits and artefacts.

Built in: MovieLens-100K (offline from the recbole wheel), MovieLens-1M and Amazon 2014 5-core
categories (downloaded), 'ids' files of "user item" lines; any other name is your own CSV pair (own_data.py).
"""
import ast
import gzip
import json
import re
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import paths


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


def check_columns(frame: pd.DataFrame, required, what: str):
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} missing; found {list(frame.columns)}, "
                         f"expected {','.join(required)}")


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
    from .own_data import read_csv_pair   # own_data builds on this module's helpers
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
