"""Data layer: every source format on small fixtures in its real format, the split, bad input."""
import gzip
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from sracl_lite import sources
from sracl_lite.data import PrepConfig, SequenceData, load_dataset


def write_csv_pair(folder, rows, items=None):
    inter = folder / "interactions.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(inter, index=False)
    item_ids = sorted({r[1] for r in rows})
    items = items if items is not None else pd.DataFrame(
        {"item_id": item_ids, "title": [f"Title {i}" for i in item_ids],
         "categories": ["A|B" if i % 2 else "B" for i in item_ids], "brand": "Acme"})
    items_path = folder / "items.csv"
    items.to_csv(items_path, index=False)
    return inter, items_path


# User 7 rates items 10, 11, 12 at the same second, in that file order, after 13 and 14 earlier.
TIED_ROWS = [(7, 13, 100), (7, 12, 500), (7, 10, 500), (7, 11, 500), (7, 14, 200),
             (8, 10, 50), (8, 11, 60), (8, 12, 70), (8, 13, 80)]


def test_ties_keep_file_order_and_last_interaction_is_test(tmp_path):
    inter, items = write_csv_pair(tmp_path, TIED_ROWS)
    ds = load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                      min_user_interactions=1, min_item_interactions=1)
    raw = lambda ids: [int(ds.items.at[int(i), "raw_id"]) for i in ids]
    user7 = list(ds.user_raw_ids).index("7")
    # time order 13 (100), 14 (200), then the tie at 500 in file order: 12, 10, 11
    assert raw(ds.train_sequences[user7]) == [13, 14, 12]
    assert raw([ds.valid_targets[user7], ds.test_targets[user7]]) == [10, 11]
    user8 = list(ds.user_raw_ids).index("8")
    assert raw(ds.train_sequences[user8]) == [10, 11] and raw([ds.test_targets[user8]]) == [13]
    assert ds.items.loc[1, "categories"] == ["B"] and "Brand: Acme." in ds.items.loc[1, "text"]


def test_prefixes_and_eval_inputs():
    frame = pd.DataFrame({"user_id": [1] * 6 + [2] * 3, "item_id": [1, 2, 3, 4, 5, 6, 1, 2, 3],
                          "timestamp": list(range(6)) + [0, 1, 2]})
    ds = SequenceData.from_interactions(frame, "toy", config=PrepConfig(1, 1))
    p = ds.train_prefixes(max_len=3)
    assert p.inputs.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3]]  # user 2 has one training item: no prefix
    assert p.targets.tolist() == [2, 3, 4] and p.lengths.tolist() == [1, 2, 3] and p.users.tolist() == [0, 0, 0]
    inputs, targets = ds.eval_inputs("valid", 3)
    assert inputs.tolist() == [[2, 3, 4], [0, 0, 1]] and targets.tolist() == [5, 2]
    inputs, targets = ds.eval_inputs("test", 3)
    assert inputs.tolist() == [[3, 4, 5], [0, 1, 2]] and targets.tolist() == [6, 3]
    with pytest.raises(ValueError, match="stage"):
        ds.eval_inputs("train", 3)

    sparse = ds.training_tail(2)          # user 1's training items 1-4 become 3, 4; targets stay
    assert sparse.name == "toy-last2" and [s.tolist() for s in sparse.train_sequences] == [[3, 4], [1]]
    assert sparse.train_prefixes(3).inputs.tolist() == [[0, 0, 3]]
    assert sparse.eval_inputs("test", 3)[0].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert sparse.content_hash() != ds.content_hash()
    with pytest.raises(ValueError, match="n >= 2"):
        ds.training_tail(1)


def test_ml100k_offline_from_recbole_wheel(tmp_path):
    ds = load_dataset("ml-100k", data_dir=tmp_path)
    assert ds.n_users == 943
    assert ds.n_items == 1349  # 5-core drops the 333 movies with fewer than 5 ratings
    assert ds.stats["interactions"] == 99287
    assert ds.items.loc[1, "title"] and ds.items.loc[1, "categories"]
    assert (tmp_path / "processed" / "ml-100k" / "manifest.json").exists()


def write_grouplens_ml100k(raw_dir):
    raw_dir.mkdir(parents=True)
    udata = "\n".join(f"{u}\t{i}\t4\t{1000 + 10 * u + i}" for u in (1, 2, 3) for i in (1, 2, 3, 4)) + "\n"
    flags = lambda k: "|".join("1" if g == k else "0" for g in range(19))
    uitem = "\n".join(f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://x|{flags(i)}" for i in (1, 2, 3, 4)) + "\n"
    with zipfile.ZipFile(raw_dir / "ml-100k.zip", "w") as z:
        z.writestr("ml-100k/u.data", udata)
        z.writestr("ml-100k/u.item", uitem.encode("latin-1"))


def test_ml100k_grouplens_zip_when_recbole_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "recbole_ml100k_dir", lambda: None)
    write_grouplens_ml100k(tmp_path / "raw")
    ds = load_dataset("ml-100k", data_dir=tmp_path, min_user_interactions=1, min_item_interactions=1)
    assert (ds.n_users, ds.n_items) == (3, 4)
    assert ds.items.loc[1, "title"] == "Movie 1" and ds.items.loc[1, "categories"] == ["Action"]
    assert ds.items.loc[1, "text"] == "Title: Movie 1. Year: 1991. Genres: Action."
    assert ds.test_targets.tolist() == [4, 4, 4]


def test_ml1m_format(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    ratings = "\n".join(f"{u}::{i}::5::{100 * u + i}" for u in (1, 2) for i in (10, 20, 30)) + "\n"
    movies = "10::Heat (1995)::Action|Crime\n20::Sabrina (1995)::Comedy|Romance\n30::Nixon (1995)::Drama\n"
    with zipfile.ZipFile(raw / "ml-1m.zip", "w") as z:
        z.writestr("ml-1m/ratings.dat", ratings)
        z.writestr("ml-1m/movies.dat", movies)
    ds = load_dataset("ml-1m", data_dir=tmp_path, min_user_interactions=1, min_item_interactions=1)
    assert (ds.n_users, ds.n_items) == (2, 3)
    assert ds.items.loc[1, "title"] == "Heat" and ds.items.loc[1, "categories"] == ["Action", "Crime"]
    assert ds.domain == "movies"


def test_amazon_2014_format(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    reviews = [{"reviewerID": f"U{u}", "asin": f"000{i}", "unixReviewTime": 1000 * u + i, "overall": 5.0}
               for u in (1, 2) for i in (1, 2, 3)]
    with gzip.open(raw / "reviews_Beauty_5.json.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in reviews)
    meta = [{"asin": "0001", "title": "Rose Lotion", "brand": "Petal", "price": 9.5,
             "categories": [["Beauty", "Skin Care", "Body"]], "description": "Soft skin."},
            {"asin": "0002", "title": "Mint Shampoo", "categories": [["Beauty", "Hair Care"]]},
            {"asin": "9999", "title": "Nobody bought this"}]  # asin 0003 has no metadata
    with gzip.open(raw / "meta_Beauty.json.gz", "wt") as f:
        f.writelines(repr(m) + "\n" for m in meta)  # Python-literal dicts, as SNAP ships them
    ds = load_dataset("amazon-beauty", data_dir=tmp_path, min_user_interactions=1, min_item_interactions=1)
    assert (ds.n_users, ds.n_items) == (2, 3)
    assert ds.items["raw_id"].tolist() == ["0001", "0002", "0003"]  # leading zeros survive
    assert ds.items.loc[1, "categories"] == ["Skin Care", "Body"]
    assert "Brand: Petal." in ds.items.loc[1, "text"] and "Price: 9.5." in ds.items.loc[1, "text"]
    assert ds.stats["items_without_title"] == 1
    assert ds.verb_past == "bought"
    again = load_dataset("amazon-beauty", data_dir=tmp_path, min_user_interactions=1, min_item_interactions=1)
    assert again.items["raw_id"].tolist() == ["0001", "0002", "0003"]


def test_download_failure_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "GROUPLENS_URL", "http://127.0.0.1:9/{name}.zip")  # nothing listens there
    with pytest.raises(RuntimeError, match=r"could not download http://127.0.0.1:9/ml-1m.zip.*put it at .*ml-1m.zip"):
        load_dataset("ml-1m", data_dir=tmp_path)
    assert not list((tmp_path / "raw").glob("*.part")), "a failed download leaves no partial file"
    with pytest.raises(FileNotFoundError, match="downloads are off"):
        load_dataset("amazon-toys", data_dir=tmp_path, allow_download=False)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="'ml-42m' is not built in"):
        load_dataset("ml-42m", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_dataset("toy", data_dir=tmp_path, interactions_path=tmp_path / "nope.csv", items_path=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="'my-shop' is not built in .* give both files"):
        load_dataset("my-shop", data_dir=tmp_path, interactions_path=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="'ml-100k' is built in and reads no files of yours"):
        load_dataset("ml-100k", data_dir=tmp_path, interactions_path=tmp_path / "x.csv", items_path=tmp_path / "y.csv")
    inter, items = write_csv_pair(tmp_path, TIED_ROWS)

    def load(**kw):
        return load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                            min_user_interactions=1, min_item_interactions=1, **kw)

    inter.write_text("user,item_id,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match=r"column\(s\) \['user_id'\] missing"):
        load()
    inter.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        load()
    inter.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(ValueError, match="header only"):
        load()
    inter.write_text("user_id,item_id,timestamp\n1,abc,3\n1,10,4\n1,11,5\n")   # a text id the items lack
    with pytest.raises(ValueError, match=r"no row in the item table \(e.g. \['abc'\]\)"):
        load()
    inter.write_text("user_id,item_id,timestamp\n1,10,3\n1,11,yesterday\n")
    with pytest.raises(ValueError, match=r"interactions.csv: column 'timestamp', file line 3: 'yesterday' is neither"):
        load()
    inter.write_text("user_id,item_id,timestamp\n1,10,3\n,11,4\n")
    with pytest.raises(ValueError, match=r"column 'user_id' is empty in 1 rows \(first: file line 3\)"):
        load()
    inter.write_text("user_id,item_id,timestamp\n1,10,3\n1,11,4\n")
    good_items = items.read_text()
    items.write_text('item_id,title\n10,"Unclosed, quote\n11,B\n')
    with pytest.raises(ValueError, match=r"items.csv: not a well-formed CSV .*double quotes"):
        load()
    items.write_text(good_items)
    inter.write_text("user_id,item_id,timestamp\n1,10,3\n1,99,4\n1,11,5\n")
    with pytest.raises(ValueError, match=r"1 interacted item ids have no row in the item table \(e.g. \[99\]\)"):
        load()


def test_bad_own_files_name_the_file_and_the_fix(tmp_path, capsys):
    inter, items = write_csv_pair(tmp_path, TIED_ROWS)
    good_inter, good_items = inter.read_text(), items.read_text()

    def load():
        return load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                            min_user_interactions=1, min_item_interactions=1)

    items.write_bytes("item_id,title\n10,Caf\u00e9\n11,B\n12,C\n13,D\n14,E\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"items.csv: not UTF-8 text \(byte 0xe9 on file line 2\).*iconv -f cp1252"):
        load()
    items.write_text(good_items)
    inter.write_text("user_id,item_id,timestamp\n1,10,1398902400\n1,11,2014-05-02\n1,12,1398902500\n")
    with pytest.raises(ValueError, match=r"interactions.csv: column 'timestamp' mixes Unix seconds \(2 rows, first on "
                                         r"file line 2: '1398902400'\) and ISO-8601 dates \(1 rows, first on file "
                                         r"line 3: '2014-05-02'\); write the whole column in one form"):
        load()
    for value, line in (("12345678901234567890", 3), ("1398902400000", 3)):   # 20 digits; milliseconds
        inter.write_text(f"user_id,item_id,timestamp\n1,10,1398902400\n1,11,{value}\n1,12,1398902500\n")
        with pytest.raises(ValueError, match=rf"interactions.csv: column 'timestamp', file line {line}: '{value}' lies "
                                             r"outside the years 1900-2100 \(1 such rows\); if the column holds "
                                             r"milliseconds .*divide it by 1,000 or 1,000,000"):
            load()
    inter.write_text("user_id,item_id,timestamp\n1,10,2014-05-01\n1,11,1000-01-01\n1,12,2014-05-03\n")
    with pytest.raises(ValueError, match=r"interactions.csv: column 'timestamp', file line 3: '1000-01-01' lies "
                                         r"outside the years 1900-2100 \(1 such rows\); correct the date"):
        load()
    inter.write_text(good_inter)
    items.write_text("item_id,title\n10,A\n11,B\n12,C\n13,D\n14,E\n11,B prime\n")
    with pytest.raises(ValueError, match=r"items.csv: 1 item id\(s\) have rows that differ, e.g. item_id '11' on "
                                         r"file lines 3, 7 \('B' vs 'B prime'\); keep one row per item"):
        load()
    items.write_text("item_id,title\n10,A\n11,B\n12,C\n13,D\n14,E\n11,B\n")    # the same row twice: one kept
    assert load().n_items == 5
    assert "items.csv: 1 repeated identical item rows dropped" in capsys.readouterr().out
    items.write_text("item_id,title\n10,A\n11,B\n12,C\n13,D\n")                  # item 14 has no row
    with pytest.raises(ValueError, match=r"items.csv: 1 interacted item ids have no row in the item table "
                                         r"\(e.g. \[14\]\); add a row item_id,title for each to that file"):
        load()


def test_valid_oddities_of_own_files_load(tmp_path):
    inter, items = write_csv_pair(tmp_path, TIED_ROWS)
    rows = [(7, 13, -100), (7, 12, -50), (7, 14, 10), (8, 10, 1), (8, 11, 2), (8, 12, 3)]   # before 1970
    inter.write_bytes(b"\xef\xbb\xbf" + "user_id, item_id, timestamp\n".encode()   # a byte-order mark, spaces
                      + "".join(f"{u}, {i}, {t}\n" for u, i, t in rows).encode())
    ds = load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                      min_user_interactions=1, min_item_interactions=1)
    assert ds.n_users == 2 and ds.titles(ds.train_sequences[0]) == ["Title 13"]


def test_duplicates_and_short_users_are_counted(tmp_path):
    rows = [(1, 1, 1), (1, 2, 2), (1, 1, 3), (1, 3, 4), (1, 4, 5),  # item 1 repeated: first kept
            (2, 1, 1), (2, 2, 2)]                                     # only 2 interactions: dropped
    inter, items = write_csv_pair(tmp_path, rows)
    ds = load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                      min_user_interactions=1, min_item_interactions=1)
    assert ds.stats["duplicates_removed"] == 1 and ds.stats["users_below_3_removed"] == 1
    assert ds.n_users == 1 and ds.train_sequences[0].tolist() == [1, 2]
    inter, items = write_csv_pair(tmp_path, [(1, 1, 1), (1, 2, 2)])
    with pytest.raises(ValueError, match="no user keeps 3 or more interactions"):
        load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                     min_user_interactions=1, min_item_interactions=1)


def test_k_core_is_iterative():
    # Round 1 drops item 4 (one user); only then does user 3 fall to 2 interactions and leave.
    rows = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 4)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(timestamp=0)
    ds = SequenceData.from_interactions(frame, "toy", config=PrepConfig(3, 2))
    assert ds.user_raw_ids.tolist() == ["1", "2"] and ds.items["raw_id"].tolist() == ["1", "2", "3"]
    assert ds.stats["k_core_rounds"] == 3


def test_stale_artefacts_are_rebuilt(tmp_path, capsys):
    inter, items = write_csv_pair(tmp_path, TIED_ROWS)
    kw = dict(data_dir=tmp_path, interactions_path=inter, items_path=items)
    first = load_dataset("toy", min_user_interactions=1, min_item_interactions=1, **kw)
    assert "building toy: no saved artefact" in capsys.readouterr().err
    load_dataset("toy", min_user_interactions=1, min_item_interactions=1, **kw)
    assert capsys.readouterr().err == ""  # reused
    write_csv_pair(tmp_path, TIED_ROWS + [(8, 14, 90)])
    changed = load_dataset("toy", min_user_interactions=1, min_item_interactions=1, **kw)
    assert "stale (sources changed)" in capsys.readouterr().err
    assert changed.content_hash() != first.content_hash()
    load_dataset("toy", min_user_interactions=2, min_item_interactions=1, **kw)
    assert "stale (config changed)" in capsys.readouterr().err
    load_dataset("toy", min_user_interactions=1, min_item_interactions=1, **kw)
    capsys.readouterr()
    artefact = tmp_path / "processed" / "toy"
    np.savez(artefact / "sequences.npz", **{**dict(np.load(artefact / "sequences.npz")),
                                            "test_targets": np.array([1, 1])})
    load_dataset("toy", min_user_interactions=1, min_item_interactions=1, **kw)
    assert "does not match its content hash" in capsys.readouterr().err


def test_id_pairs_format(tmp_path):
    path = tmp_path / "Beauty.txt"
    path.write_text("1 5\n1 6\n1 7\n2 6\n2 5\n2 7\n")
    ds = load_dataset("ids", data_dir=tmp_path, interactions_path=path, min_user_interactions=1,
                      min_item_interactions=1)
    assert ds.train_sequences[1].tolist() == [2] and ds.valid_targets.tolist() == [2, 1]
    path.write_text("1 five\n")
    with pytest.raises(ValueError, match="two integers"):
        load_dataset("ids", data_dir=tmp_path, interactions_path=path)


def test_text_ids_and_iso_or_float_timestamps(tmp_path):
    inter, items = tmp_path / "interactions.csv", tmp_path / "items.csv"
    rows = [("A2SUAM1J3GNN3B", "B00005N7P0", "2014-03-01T12:30:00Z"), ("A2SUAM1J3GNN3B", "B0000CC64W", "2014-03-02"),
            ("A2SUAM1J3GNN3B", "0205616461", "2014-03-03T00:00:00+01:00"), ("AX", "0205616461", "2014-01-01"),
            ("AX", "B00005N7P0", "2014-01-02"), ("AX", "B0000CC64W", "2014-01-03")]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(inter, index=False)
    pd.DataFrame({"item_id": ["B00005N7P0", "B0000CC64W", "0205616461"], "title": ["x", "y, with comma", 'say "z"']}
                 ).to_csv(items, index=False)
    ds = load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                      min_user_interactions=1, min_item_interactions=1)
    assert ds.user_raw_ids.tolist() == ["A2SUAM1J3GNN3B", "AX"]
    assert ds.items["raw_id"].tolist() == ["0205616461", "B00005N7P0", "B0000CC64W"], "leading zero kept"
    titles = dict(zip(ds.items["raw_id"], ds.items["title"]))
    sequence = list(ds.train_sequences[0]) + [ds.valid_targets[0], ds.test_targets[0]]
    first_user = [titles[r] for r in ds.items.loc[sequence, "raw_id"]]
    assert first_user == ["x", "y, with comma", 'say "z"'], "ISO dates order the interactions"
    inter.write_text("user_id,item_id,timestamp\n1,0205616461,1.5\n1,B00005N7P0,0.5\n1,B0000CC64W,2.25\n")
    ds = load_dataset("toy", data_dir=tmp_path, interactions_path=inter, items_path=items,
                      min_user_interactions=1, min_item_interactions=1)
    order = ds.items.loc[list(ds.train_sequences[0]) + [ds.valid_targets[0], ds.test_targets[0]], "raw_id"].tolist()
    assert order == ["B00005N7P0", "0205616461", "B0000CC64W"], "float seconds order the interactions"


def test_two_csv_datasets_keep_separate_artefacts(tmp_path):
    shop, other = tmp_path / "shop", tmp_path / "other"
    shop.mkdir(), other.mkdir()
    kw = dict(data_dir=tmp_path, min_user_interactions=1, min_item_interactions=1)
    files = lambda folder: dict(interactions_path=folder / "interactions.csv", items_path=folder / "items.csv")
    write_csv_pair(shop, TIED_ROWS)
    write_csv_pair(other, TIED_ROWS + [(8, 14, 90)])
    a = load_dataset("shop", **files(shop), **kw)
    b = load_dataset("other", **files(other), **kw)
    assert (a.artefact_dir, b.artefact_dir) == (tmp_path / "processed" / "shop", tmp_path / "processed" / "other")
    assert a.name == "shop" and a.n_users == b.n_users and a.content_hash() != b.content_hash()
    again = load_dataset("shop", **files(shop), **kw)
    assert again.content_hash() == a.content_hash()
    with pytest.raises(ValueError, match="names folders"):
        load_dataset("../x", **files(shop), **kw)


def test_dates_beyond_nanosecond_timestamps_still_parse():
    # pandas 2 holds only years 1677-2262 and raises for the whole column; its fallback parses each value
    from sracl_lite.own_data import iso_seconds
    assert iso_seconds("2014-05-01T00:00:00Z") == 1398902400.0
    assert iso_seconds("2014-05-01T01:00:00+01:00") == 1398902400.0
    assert iso_seconds("1000-01-01") == pd.Timestamp("1000-01-01", tz="UTC").as_unit("s").timestamp()
    assert np.isnan(iso_seconds("yesterday")) and np.isnan(iso_seconds(np.nan))
