"""Your own data: an interactions CSV and an items CSV (notebook 01, `load_dataset` with a name of
your own). Every way a file can be wrong stops with a message naming the file, the line and the fix.
"""
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .sources import attribute_text, check_columns

# Unix seconds outside these years are almost always another unit (milliseconds have 13 digits)
# or a typo; sequences need only the order, but a wrong unit usually means a wrong order too.
PLAUSIBLE_YEARS = (1900, 2100)


def read_csv_pair(interactions_path, items_path):
    """Local data: interactions CSV (user_id,item_id,timestamp) + items CSV (item_id,title,...).

    Files are UTF-8 (a byte-order mark is allowed). Ids may be integers or text (Amazon's
    'B00005N7P0'); they are re-indexed later and kept as raw ids. Timestamps are Unix seconds
    (integer or float) or ISO-8601 dates, one form per column, within PLAUSIBLE_YEARS. Extra item
    columns become part of the item text; a 'categories' column is split on '|'. An item listed
    twice with the same fields keeps one row (the count is printed); with different fields it is
    an error, since either title could be the right one.
    """
    frames = {}
    for label, path, required in (("interactions", interactions_path, ["user_id", "item_id", "timestamp"]),
                                  ("items", items_path, ["item_id", "title"])):
        path = Path(path)
        frame = read_table(path, label, required)
        ids = ("user_id", "item_id") if label == "interactions" else ("item_id",)
        for column in ids:
            frame[column] = frame[column].str.strip()
            empty = frame[column] == ""
            if empty.any():
                raise ValueError(f"{path}: column '{column}' is empty in {int(empty.sum())} rows (first: file line "
                                 f"{int(np.flatnonzero(empty)[0]) + 2}); fill or drop those rows")
        if label == "interactions":
            frame["timestamp"] = parse_timestamps(frame["timestamp"], path)
        else:
            frame = drop_repeated_items(frame, path)
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
    items.attrs["source"] = str(items_path)   # named by data.item_text_table when an interacted item has no row
    return frames["interactions"], items, [Path(interactions_path), Path(items_path)]


def read_table(path: Path, label: str, required) -> pd.DataFrame:
    """One CSV file as text columns, with the header checked and nothing else interpreted."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: {label} file not found")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} on file line {line}); files are "
                         "read as UTF-8, with or without a byte-order mark. Convert it first, e.g. for a Latin-1 or "
                         f"Windows-1252 file: iconv -f cp1252 -t utf-8 '{path.name}' > utf8.csv") from None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
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
    return frame


def drop_repeated_items(items: pd.DataFrame, path: Path) -> pd.DataFrame:
    """One row per item id: identical repeats are dropped (counted), conflicting ones are an error."""
    repeated = items["item_id"].duplicated(keep=False)
    if not repeated.any():
        return items
    conflicting = items[repeated].groupby("item_id").filter(lambda rows: len(rows.drop_duplicates()) > 1)
    if len(conflicting):
        item = conflicting["item_id"].iloc[0]
        rows = conflicting[conflicting["item_id"] == item]
        lines = ", ".join(str(i + 2) for i in rows.index)
        titles = " vs ".join(repr(t) for t in rows["title"])
        raise ValueError(f"{path}: {conflicting['item_id'].nunique()} item id(s) have rows that differ, e.g. "
                         f"item_id {item!r} on file lines {lines} ({titles}); keep one row per item")
    kept = items.drop_duplicates("item_id")
    print(f"{path.name}: {len(items) - len(kept)} repeated identical item rows dropped (one row kept per item)")
    return kept


def parse_timestamps(values: pd.Series, path) -> pd.Series:
    """Unix seconds (integer or float) or ISO-8601 dates -> float seconds; mixed forms, values of
    neither form and times outside PLAUSIBLE_YEARS are errors naming a file line."""
    text = values.str.strip()
    seconds = pd.to_numeric(text, errors="coerce")
    numeric = seconds.notna().to_numpy()
    if numeric.all():
        result = seconds.astype(np.float64)
    else:
        result = date_seconds(text.where(~numeric))
        neither = result.isna().to_numpy() & ~numeric
        if neither.any():
            row = int(np.flatnonzero(neither)[0])
            raise ValueError(f"{path}: column 'timestamp', file line {row + 2}: {values.iloc[row]!r} is neither Unix "
                             f"seconds nor an ISO-8601 date; use one form for the whole column, e.g. 1398902400 or "
                             "2014-05-01T00:00:00Z")
        if numeric.any():
            first_number, first_date = np.flatnonzero(numeric)[0], np.flatnonzero(~numeric)[0]
            raise ValueError(f"{path}: column 'timestamp' mixes Unix seconds ({int(numeric.sum())} rows, first on "
                             f"file line {first_number + 2}: {values.iloc[first_number]!r}) and ISO-8601 dates "
                             f"({int((~numeric).sum())} rows, first on file line {first_date + 2}: "
                             f"{values.iloc[first_date]!r}); write the whole column in one form")
    low, high = (pd.Timestamp(f"{year}-01-01", tz="UTC").timestamp() for year in PLAUSIBLE_YEARS)
    outside = ((result < low) | (result >= high)).to_numpy()
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        fix = ("if the column holds milliseconds (13 digits) or microseconds (16), divide it by 1,000 or 1,000,000"
               if numeric.all() else "correct the date")
        raise ValueError(f"{path}: column 'timestamp', file line {row + 2}: {values.iloc[row]!r} lies outside the "
                         f"years {PLAUSIBLE_YEARS[0]}-{PLAUSIBLE_YEARS[1]} ({int(outside.sum())} such rows); {fix}")
    return result


def date_seconds(text: pd.Series) -> pd.Series:
    """ISO-8601 text -> float Unix seconds, NaN where a value is missing or not a date."""
    try:
        dates = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        return (dates - pd.Timestamp(0, tz="UTC").as_unit(dates.dt.unit)).dt.total_seconds()
    except (ValueError, OverflowError):   # pandas 2 holds nanoseconds only (years 1677-2262): one by one
        return pd.Series([iso_seconds(t) for t in text], index=text.index, dtype=np.float64)


def iso_seconds(text) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return np.nan
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()
