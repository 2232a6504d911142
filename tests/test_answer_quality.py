"""Measures of LLM answers (notebook 02) on hand-made answers."""
from collections import Counter

import pandas as pd
import pytest

from sracl_lite import answer_quality as AQ
from sracl_lite.data import PrepConfig, SequenceData


def test_genre_precision_counts_named_genres_that_fit():
    answers = {1: "A dark crime drama.", 2: "A romantic comedy for kids.", 3: "No genre here."}
    genres = {1: {"Crime", "Drama"}, 2: {"Comedy"}, 3: {"War"}}
    assert AQ.named_genres(answers[2]) == {"Romance", "Comedy", "Children's"}
    assert AQ.genre_precision(answers, genres.get) == pytest.approx(3 / 5)   # crime, drama, comedy of 5 named
    assert AQ.genre_precision({3: answers[3]}, genres.get) == 0


def test_titles_are_normalised_and_sorted_into_history_catalogue_invented():
    assert AQ.normalise_title("Matrix, The (1999)") == "the matrix"
    frame = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [1, 2, 3, 4], "timestamp": [0, 1, 2, 3]})
    items = pd.DataFrame({"item_id": [1, 2, 3, 4], "title": ["Heat (1995)", "Casino (1995)", "Fargo (1996)",
                                                              "Matrix, The (1999)"]})
    ds = SequenceData.from_interactions(frame, "toy", items, PrepConfig(1, 1))   # training: Heat, Casino
    text = 'Loves **Heat** and "The Matrix", also "Moonlight Ninjas".'
    mentions, share = AQ.title_mentions(ds, {(0, 2): text})
    assert mentions == Counter({"history": 1, "catalogue": 1, "invented": 1}) and share == 1.0


def test_cut_off_share():
    assert AQ.cut_off_share({1: "Ends well.", 2: "Stops in the mid", 3: 'Says "hi"'}) == pytest.approx(1 / 3)
