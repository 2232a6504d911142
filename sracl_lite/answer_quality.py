"""How good, and how invented, LLM answers are (notebook 02), from training data only.

- genre precision: of the genre words an item summary names, the share that are genres of the
  item it describes (compare with a random pairing: a higher real score means item-specific
  content);
- invented titles: titles a user profile quotes or sets in bold that are neither in that user's
  history nor in the catalogue (a quoted phrase that is no title counts too: an upper bound);
- cut off: answers that stop mid-sentence at the token limit.
The genre words are MovieLens's; on other data they find few genres, which the numbers show.
"""
import re
from collections import Counter

import numpy as np

GENRE_WORDS = {"Action": r"action", "Adventure": r"adventures?", "Animation": r"animat(ion|ed)",
               "Children's": r"child(ren)?'?s?|kids|family", "Comedy": r"comed(y|ies)|comic|humou?r",
               "Crime": r"crimes?|criminal", "Documentary": r"documentar(y|ies)", "Drama": r"dramas?|dramatic",
               "Fantasy": r"fantasy|fantastical", "Film-Noir": r"noir", "Horror": r"horror",
               "Musical": r"musicals?", "Mystery": r"myster(y|ies)", "Romance": r"roman(ce|tic)",
               "Sci-Fi": r"sci-?fi|science fiction", "Thriller": r"thrillers?", "War": r"war",
               "Western": r"westerns?"}
GENRE_RE = {g: re.compile(rf"\b({w})\b", re.I) for g, w in GENRE_WORDS.items()}


def named_genres(text: str) -> set:
    return {g for g, pattern in GENRE_RE.items() if pattern.search(text)}


def genre_precision(answers: dict, genres_of) -> float:
    """Share of the genre words named in `answers` (key -> text) that are genres of the key's item
    (`genres_of(key)` -> set)."""
    hits = named = 0
    for key, text in answers.items():
        found = named_genres(text)
        hits += len(found & genres_of(key))
        named += len(found)
    return hits / max(named, 1)


def normalise_title(title: str) -> str:
    """Lower case, without "(1995)"-style parts, "Matrix, The" -> "the matrix"."""
    t = re.sub(r"\s*\(.*?\)\s*", " ", title).strip().lower()
    m = re.match(r"^(.*), (the|a|an)$", t)
    return f"{m.group(2)} {m.group(1)}" if m else t


def title_mentions(ds, user_answers: dict):
    """(Counter of quoted or bold titles by kind: history, catalogue, invented; share of profiles
    with at least one invented title). user_answers: (user, length) -> profile text."""
    catalogue = {normalise_title(t) for t in ds.items["title"]}
    mentions, with_invented = Counter(), 0
    for (user, _), text in user_answers.items():
        history = {normalise_title(t) for t in ds.titles(ds.train_sequences[user])}
        spans = {normalise_title(bold or quoted) for bold, quoted in re.findall(r'\*\*(.+?)\*\*|"(.+?)"', text)}
        kinds = ["history" if s in history else "catalogue" if s in catalogue else "invented" for s in spans]
        mentions.update(kinds)
        with_invented += "invented" in kinds
    return mentions, with_invented / max(len(user_answers), 1)


def cut_off_share(answers: dict) -> float:
    """Share of answers that do not end a sentence (they hit the token limit)."""
    return float(np.mean([not a.rstrip().endswith((".", "!", "?", '"')) for a in answers.values()]))
