# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Data preparation: sequences, the leave-one-out split and training prefixes
#
# SRA-CL ([Cui et al., 2025](https://arxiv.org/abs/2503.04162)) predicts the next item a user will
# interact with from their chronological history. Everything later in this tutorial (LLM profiles,
# retrieval, training, evaluation) reads the artefact this notebook builds.
#
# **What you will learn**
# - how raw ratings become chronological item sequences (k-core filter, duplicates, tie-break);
# - why the tie-break rule matters on MovieLens-100K;
# - the leave-one-out protocol: train / validation / test targets per user;
# - how every prefix of a training sequence becomes a training sample, windowed to `max_len`;
# - how the processed artefact is saved with a manifest and checked before reuse.
#
# **Runtime**: a few seconds on a 2-core CPU.

# %%
# Colab set-up: on Colab, fetch the project, install what the runtime lacks, import from the clone.
import os, subprocess, sys
REPO_URL = "https://github.com/sracl-lite/sracl-lite"  # a fork: python scripts/set_repo_url.py <its address>
if "google.colab" in sys.modules:
    root = os.path.join(os.environ.get("SRACL_COLAB_DIR", "/content"), "sracl-lite")
    if not os.path.exists(root):
        subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ.get("SRACL_REPO_URL", REPO_URL), root],
                       check=True)
    subprocess.run([sys.executable, os.path.join(root, "scripts", "colab_setup.py")], check=True)
    if root not in sys.path:  # a running kernel never reads the .pth file that an editable install adds
        sys.path.insert(0, root)
    os.chdir(os.path.join(root, "notebooks"))

# %%
# Parameters: every value can be overridden with an environment variable SRACL_<NAME>.
from sracl_lite.notebook import param
DATASET = param("dataset", "ml-100k")           # ml-100k (offline), ml-1m, amazon-beauty, ... (download), or your name
INTERACTIONS = param("interactions", "")  # your own data: a user_id,item_id,timestamp CSV ...
ITEMS = param("items", "")                # ... and an item_id,title[,more text] CSV; DATASET names it
MIN_USER_INTERACTIONS = param("min_user_interactions", 5)   # 5-core, as the paper's datasets
MIN_ITEM_INTERACTIONS = param("min_item_interactions", 5)
MAX_LEN = param("max_len", 20)                  # the reference implementation's window

# %% [markdown]
# ![SRA-CL in one figure](../docs/sracl_method.svg)
#
# **Where this notebook sits.** Each box of the figure carries the notebook that builds it; this one
# builds the box tagged "nb 01": every user's interactions in time order, split leave-one-out, and
# the training prefixes. Everything to its right reads them: the prompts of notebook 02 use the
# training part only, SASRec and its three losses (notebooks 04-06) train on the prefixes as anchor
# sequences, and the held-back validation and test targets score the backbone at inference.

# %% [markdown]
# ## 1. The raw data
# The default dataset is MovieLens-100K (GroupLens; research use only, no redistribution). It is read
# from the TSV files inside the installed `recbole` wheel, so nothing is downloaded and no MovieLens
# file lives in this repository. Other datasets download on first use into `data/raw/`.

# %%
import inspect
import json
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sracl_lite import data as data_module
from sracl_lite.data import load_dataset, timestamp_ties
from sracl_lite.sources import read_source
raw_interactions, raw_items, source_files = read_source(DATASET, interactions_path=INTERACTIONS, items_path=ITEMS)
print("source files:", [f.name for f in source_files])
print(f"{len(raw_interactions):,} interactions, {raw_interactions.user_id.nunique():,} users, "
      f"{raw_interactions.item_id.nunique():,} items")
raw_interactions.head(3)

# %% [markdown]
# ## 2. Ordering, and why the tie-break matters
# Each user's interactions are sorted by timestamp. MovieLens records many ratings in the same
# second (people rate in bursts), so the order of equal timestamps decides a lot:

# %%
ties = timestamp_ties(raw_interactions)
print(f"rows that share their user's timestamp with another row: {ties['rows_sharing_timestamp']:.1%}")
print(f"users whose last two interactions share a timestamp:      {ties['users_with_tied_last_two']:.1%}")

# %% [markdown]
# For those users the validation and test items are ordered by the tie-break alone. We use a
# **stable sort: equal timestamps keep the order of the rows in the source file**. It is the order
# the source recorded, it is reproducible, and it is what other implementations get from a stable
# sort. Any other rule (e.g. by item id) is equally defensible but changes test targets, so numbers
# are only comparable under the same rule.
#
# Then two filters, in this order:
# - a repeated (user, item) pair keeps its first occurrence (a re-rating adds nothing to predict);
# - the iterative k-core filter drops users and items with too few interactions until none is left;
#   users with fewer than 3 interactions are dropped too (leave-one-out needs train, validation and test).

# %%
print(inspect.getsource(data_module.filter_and_order))

# %% [markdown]
# ## 3. The processed dataset
# `load_dataset` re-indexes items from 1 (0 is padding) and users from row 0, splits each sequence
# and saves everything under `data/processed/<dataset>/` with a manifest.

# %%
ds = load_dataset(DATASET, interactions_path=INTERACTIONS, items_path=ITEMS,
                  min_user_interactions=MIN_USER_INTERACTIONS,
                  min_item_interactions=MIN_ITEM_INTERACTIONS)
lengths = np.array([len(s) + 2 for s in ds.train_sequences])  # + validation and test items
summary = {"users": f"{ds.n_users:,}", "items": f"{ds.n_items:,}", "interactions": f"{lengths.sum():,}",
           "density": f"{lengths.sum() / (ds.n_users * ds.n_items):.4f}",
           "mean sequence length": f"{lengths.mean():.2f}", "median sequence length": f"{np.median(lengths):g}"}
print(pd.Series(summary).to_string())
print("\nwhat the filters removed:", json.dumps(ds.stats, indent=1))

# %% [markdown]
# ## 4. Sequence lengths and item popularity
# Recommendation data are long-tailed: on ML-100K the 10% most popular items hold 37.0% of all
# interactions (printed below), nearly four times an even share, and the other 90% share the
# remaining 63%. The paper
# argues that semantic positives help most where collaborative signal is thin (short sequences,
# rare items), so keep these two shapes in mind.

# %%
item_counts = np.bincount(np.concatenate([np.concatenate(ds.train_sequences), ds.valid_targets,
                                          ds.test_targets]), minlength=ds.n_items + 1)[1:]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].hist(lengths, bins=50, color="tab:blue")
axes[0].set(title="interactions per user", xlabel="sequence length", ylabel="users")
axes[1].loglog(np.arange(1, ds.n_items + 1), np.sort(item_counts)[::-1], color="tab:orange")
axes[1].set(title="item popularity (long tail)", xlabel="item rank", ylabel="interactions")
plt.tight_layout()
plt.show()
top_share = np.sort(item_counts)[::-1][: ds.n_items // 10].sum() / item_counts.sum()
print(f"the 10% most popular items hold {top_share:.1%} of all interactions")

# %% [markdown]
# ## 5. A few users, as titles
# The last items of each user's training sequence, then the validation and test targets.

# %%
for user in [0, 1, 2]:
    tail = ds.titles(ds.train_sequences[user][-5:])
    print(f"user row {user} ({len(ds.train_sequences[user])} training items): ... -> " + " -> ".join(tail))
    print(f"    validation target: {ds.titles([ds.valid_targets[user]])[0]}")
    print(f"    test target:       {ds.titles([ds.test_targets[user]])[0]}\n")
ds.items.head()

# %% [markdown]
# ## 6. Leave-one-out split and training prefixes
# For each user: **train** = all but the last two items, **validation target** = the second-to-last,
# **test target** = the last. Validation inputs are the training sequence; test inputs are the
# training sequence plus the validation item. Model selection (early stopping, hyperparameters)
# uses validation only.
#
# Training samples are *every prefix* of every training sequence with its next item as target, each
# truncated to the last `MAX_LEN` items and left-padded with 0.

# %%
prefixes = ds.train_prefixes(MAX_LEN)
print(f"{len(prefixes.targets):,} training prefixes (max_len={MAX_LEN}), input array {prefixes.inputs.shape}")
first_user = prefixes.users == 0
print("user 0's first three prefixes (input -> target):")
for row in np.flatnonzero(first_user)[:3]:
    print("  ", prefixes.inputs[row][-5:], "->", prefixes.targets[row])
valid_inputs, valid_targets = ds.eval_inputs("valid", MAX_LEN)
test_inputs, test_targets = ds.eval_inputs("test", MAX_LEN)
print("user 0 validation input (last 5):", valid_inputs[0][-5:], "target", valid_targets[0])
print("user 0 test input (last 5):      ", test_inputs[0][-5:], "target", test_targets[0])

# %% [markdown]
# ## 7. The saved artefact and its manifest
# The manifest records the source files (size and SHA-256), the filter settings, the code's
# preprocessing version, the counts and a hash of the content. `load_dataset` reuses the artefact only
# if all of them still match; otherwise it rebuilds and says why. MovieLens terms forbid
# redistribution, so `data/processed/` is git-ignored.

# %%
manifest = ds.manifest
print(json.dumps({k: manifest[k] for k in ("dataset", "preprocess_version", "config", "counts")}, indent=1))
print("source files:", [(s["file"], s["bytes"]) for s in manifest["sources"]])
print("artefact folder:", ds.artefact_dir.relative_to(ds.artefact_dir.parents[2]))

# %% [markdown]
# ## Checks

# %%
# Every user's test target is their last interaction, and validation the one before, under the tie-break
# rule: recomputed here from the raw table, independently of load_dataset.
as_text = lambda column: raw_interactions[column].astype(str)
kept = as_text("user_id").isin(set(ds.user_raw_ids)) & as_text("item_id").isin(set(ds.items["raw_id"]))
ordered = (raw_interactions[kept].assign(row=np.flatnonzero(kept), user=as_text("user_id")[kept],
                                         item=as_text("item_id")[kept])
           .sort_values(["user", "timestamp", "row"], kind="mergesort")
           .drop_duplicates(["user", "item"]))
last_two = ordered.groupby("user")["item"].agg(lambda s: tuple(s.iloc[-2:]))
raw_id_of = ds.items["raw_id"]
derived = [(raw_id_of[v], raw_id_of[t]) for v, t in zip(ds.valid_targets, ds.test_targets)]
assert derived == list(last_two.loc[ds.user_raw_ids]), "validation/test targets differ from the raw file's order"

# %% [markdown]
# The split's invariants: item ids leave 0 free for padding, every training item but the first is
# some prefix's target, and no held-out item hides in the training data. A second `load_dataset`
# reuses the saved artefact, which must hold the same content.

# %%
if DATASET == "ml-100k" and MIN_USER_INTERACTIONS == 5 and MIN_ITEM_INTERACTIONS == 5:
    assert ds.n_users == 943, "every ML-100K user has 20+ ratings and survives the 5-core filter"
    assert ds.n_items == 1349, ds.n_items
all_train = np.concatenate(ds.train_sequences)
assert all_train.min() >= 1 and all_train.max() <= ds.n_items, "item ids run 1..n_items; 0 is padding"
assert len(prefixes.targets) == sum(len(s) - 1 for s in ds.train_sequences)
assert all(v not in s and t not in s for s, v, t in zip(ds.train_sequences, ds.valid_targets, ds.test_targets)), \
    "a validation or test item also appears in the same user's training sequence"
assert (test_inputs[:, -1] == ds.valid_targets).all(), "test inputs end with the validation item"
assert load_dataset(DATASET, interactions_path=INTERACTIONS, items_path=ITEMS,
                    min_user_interactions=MIN_USER_INTERACTIONS,
                    min_item_interactions=MIN_ITEM_INTERACTIONS).content_hash() == manifest["content_hash"]
print("all checks passed")

# %% [markdown]
# ## Results

# %%
print(f"{DATASET}: {ds.n_users} users, {ds.n_items} items, {int(lengths.sum()):,} interactions, "
      f"{len(prefixes.targets):,} training prefixes at max_len={MAX_LEN}")
