"""Prompts for the LLM, and the no-LLM template texts (notebook 02: SRA-CL's item and user profiling).

Prompts (`item_prompts`, `user_prompts`) are built from the training sequences only, so no
validation or test interaction reaches an LLM. `template_item_texts` / `template_user_texts`
give the no-LLM texts of the paper's "w/o LLM" ablation.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class PromptConfig:
    n_contexts: int = 5          # reference: up to 5 training sequences per item prompt
    context_len: int = 10        # reference: each context is the last <= 10 items up to the item
    max_history: int = 50        # most recent titles in a user prompt; 50 keep a prompt near
                                 # 500 tokens: the prompt pass costs about as much as decoding
    max_item_text_chars: int = 600   # long product descriptions add tokens, not meaning
    item_summary_words: int = 80     # reference word budgets
    item_users_words: int = 50
    user_words: int = 100
    seed: int = 2024             # context sampling; mixed with the item id so each item's
                                 # prompt does not depend on any other item


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _titles(ds) -> list:
    """Title of every item id (index 0 is padding)."""
    titles = ds.items["title"].reindex(range(1, ds.n_items + 1))
    if titles.isna().any():
        missing = [int(i) for i in titles.index[titles.isna()][:5]]
        raise ValueError(f"{ds.name}: items table has no title for item ids {missing}...; "
                         f"expected one row per item id 1..{ds.n_items}")
    return [""] + [str(t) for t in titles]


def item_contexts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id -> up to `n_contexts` (user row, position) pairs where a user had the item.

    Built from `ds.train_sequences` only. Sampling is seeded per item and the chosen pairs are
    kept in (user, position) order, so the result is the same on every run and platform.
    """
    occurrences = {}
    for user, seq in enumerate(ds.train_sequences):
        for pos, item in enumerate(seq.tolist()):
            occurrences.setdefault(item, []).append((user, pos))
    chosen = {}
    for item, occ in occurrences.items():
        if len(occ) > cfg.n_contexts:
            rng = np.random.default_rng([cfg.seed, item])
            occ = [occ[j] for j in sorted(rng.choice(len(occ), cfg.n_contexts, replace=False))]
        chosen[item] = occ
    return chosen


def item_prompts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id (1..n_items) -> prompt asking for a summary and the kind of user who likes it.

    Attribute text plus up to `n_contexts` training windows ending with the item (notebook 02).
    """
    titles = _titles(ds)
    contexts = item_contexts(ds, cfg)
    noun, nouns, verb = ds.item_noun, _plural(ds.item_noun), ds.verb_past
    prompts = {}
    for item in range(1, ds.n_items + 1):
        text = str(ds.items.at[item, "text"])[:cfg.max_item_text_chars]
        lines = []
        for user, pos in contexts.get(item, []):
            seq = ds.train_sequences[user]
            window = seq[max(0, pos + 1 - cfg.context_len):pos + 1].tolist()
            lines.append("- " + " -> ".join(titles[i] for i in window))
        if lines:
            context = (f"Some users {verb} these {nouns} in this order, ending with this {noun} "
                       f"(oldest first):\n" + "\n".join(lines))
        else:
            context = f"No user sequences are available for this {noun}."
        prompts[item] = (
            f"Here is a {noun} from a catalogue of {ds.domain}.\n{text}\n\n{context}\n\n"
            f"Answer in two short parts.\n"
            f"Summary: describe this {noun} in at most {cfg.item_summary_words} words.\n"
            f"Liked by: describe what kind of user likes this {noun} in at most "
            f"{cfg.item_users_words} words.")
    return prompts


def _pool_entries(ds, granularity: str):
    """(user row, prefix length) pairs: one per user, or one per training prefix."""
    if granularity not in ("user", "prefix"):
        raise ValueError(f"granularity={granularity!r}; expected 'user' (one profile per user, "
                         "shared by all its prefixes) or 'prefix' (one per training prefix)")
    for user, seq in enumerate(ds.train_sequences):
        lengths = [len(seq)] if granularity == "user" else range(1, len(seq) + 1)
        for length in lengths:
            if length > 0:
                yield user, length


def user_prompts(ds, cfg: PromptConfig = PromptConfig(), granularity: str = "user") -> dict:
    """(user row, prefix length) -> prompt asking for one paragraph on the user's preferences.

    granularity="user": one prompt per user over its whole training sequence (943 for
    ML-100K). granularity="prefix": one per training prefix, as in the reference code (about
    97k for ML-100K; a GPU job). Keys match `SemanticTables.pool_users` / `pool_lengths`.
    Introduced in notebook 02.
    """
    titles = _titles(ds)
    nouns, verb = _plural(ds.item_noun), ds.verb_past
    prompts = {}
    for user, length in _pool_entries(ds, granularity):
        history = ds.train_sequences[user][:length][-cfg.max_history:].tolist()
        cut = f" (the most recent {len(history)} of {length})" if length > len(history) else ""
        listing = "\n".join(f"{n}. {titles[i]}" for n, i in enumerate(history, 1))
        prompts[(user, length)] = (
            f"A user {verb} these {nouns}{cut}, oldest first:\n{listing}\n\n"
            f"In one paragraph of at most {cfg.user_words} words, describe this user's specific "
            f"preferences in {ds.domain}: the kinds, themes and styles they seek out. "
            f"Do not repeat the list.")
    return prompts


def template_item_texts(ds, cfg: PromptConfig = PromptConfig()) -> dict:
    """item id -> its attribute text: the no-LLM item text ("w/o LLM" ablation, notebook 02)."""
    return {item: str(ds.items.at[item, "text"])[:cfg.max_item_text_chars]
            for item in range(1, ds.n_items + 1)}


def template_user_texts(ds, cfg: PromptConfig = PromptConfig(), granularity: str = "user") -> dict:
    """(user row, prefix length) -> the user's titles as one line: the no-LLM user text.

    Most recent first, unlike the prompts: text encoders cut long inputs at the end
    (all-MiniLM-L6-v2 keeps 256 tokens), and the recent items are the ones to keep. Notebook 02.
    """
    titles = _titles(ds)
    texts = {}
    for user, length in _pool_entries(ds, granularity):
        recent = ds.train_sequences[user][:length][-cfg.max_history:][::-1].tolist()
        texts[(user, length)] = (f"Recently {ds.verb_past}: "
                                 + "; ".join(titles[i] for i in recent) + ".")
    return texts
