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
# # 07 · Evaluation: does SRA-CL help, where, and why
#
# Notebooks 04-06 train one model at a time on a CPU budget. This notebook reads grids of runs,
# every variant trained with up to 10 seeds by `scripts/results_grid.py` (on one GPU, but for Part II's
# `cl4srec`, trained on a CPU; section 7 gives each run's device), and answers three
# questions from them, each with a table, a plot and a verdict computed from the data under one
# decision rule (section 1):
#
# 1. **Does the authors' design beat SASRec here?** SRA-CL as their code builds it (the `reference`
#    preset) against SASRec trained by the same trainer under the same preset.
# 2. **In which regime?** Dense ML-100K, a sparse view of it, and the paper's own sparse Amazon Beauty.
# 3. **Which part carries it, or holds it back?** The user's own prefixes among the neighbours,
#    semantic against random neighbours, the learned synthesizer, the loss form, and the contrastive
#    machinery as such (CL4SRec and DuoRec, which need no semantic tables).
#
# Part II then reads this project's own grid (the `default` preset) as a reviewer would. The
# Summary below gives Part I's answers on one screen; the sections after it show how each is reached.
#
# **What you will learn**
# - the evaluation protocol, and the details that change numbers (full ranking, history masking, ties);
# - a test whose resampling covers both seeds and users, one primary question per regime, corrected
#   secondary questions, an equivalence margin, and how to word "no" apart from "cannot tell";
# - how to take a method apart with ablations that each change one thing;
# - the sparsity view: metrics by training-sequence length;
# - how our SASRec compares with published numbers on Amazon Beauty.
#
# **Runtime**: about 20 s on a 2-core CPU. Nothing is trained here: the runs come from
# `results/<dataset>.csv` and `results/<dataset>_ranks.npz` (see `results/README.md` for the
# commands). Section 14 shows the runs of notebooks 04-06; opened alone, this notebook runs
# notebooks 03-06 first (about 6 min on a CPU).

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
DATASET = param("dataset", "ml-100k")              # results/<DATASET>.csv: Part II's grid
INTERACTIONS = param("interactions", "")  # your own data: a user_id,item_id,timestamp CSV ...
ITEMS = param("items", "")                # ... and an item_id,title[,more text] CSV; DATASET names it
RESULTS_DIR = param("results_dir", "")             # "" = the repository's results/ folder
REGIMES = param("regimes", "ml-100k,ml-100k-last7,amazon-beauty-ids")  # Part I: results files compared
MAX_LEN = param("max_len", 20)                     # compare the runs made with this window
METRIC = param("metric", "NDCG@20")                # headline metric of the tests and verdicts
LEVEL = param("level", 0.05)                       # significance level of the paired tests
LENGTH_EDGES = param("length_edges", "")           # sparsity groups: "" = tertiles, "30,80" = fixed edges
BEAUTY = param("beauty", "amazon-beauty-ids")      # results/<BEAUTY>.csv: the SASRec sanity check

# %%
# This notebook reads the runs of notebooks 04-06 (section 14 shows them). Run alone (a fresh Colab
# runtime, say) it runs notebooks 03-06 first, exactly as in order; else it finds their files.
from sracl_lite.notebook import run_earlier_notebooks
run_earlier_notebooks("07", DATASET)

# %% [markdown]
# ## Summary
# Part I's primary question, one row per regime: does the authors' design (the `reference` preset)
# beat SASRec trained under the same preset, each at the reference settings? `change %` is the
# difference of the test NDCG@20 means (over seeds and users) in % of SASRec's mean; the two
# intervals, over seeds and users, are in the same unit. The verdict follows the rule of section 1:
# **gain** or **loss** when the 95% interval excludes 0, **equivalent** when the 90% interval lies
# within ±5%, else **undecided**. The last column lists every other variant that the rule decides
# against SASRec in that regime.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sracl_lite import evaluation as E
from sracl_lite import experiments, paths, report
from sracl_lite.data import load_dataset
from sracl_lite.notebook import expect, load_metrics

pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 120)

# %%
results_dir = Path(RESULTS_DIR) if RESULTS_DIR else paths.RESULTS
files = {name: (results_dir / f"{name}.csv", results_dir / f"{name}_ranks.npz") for name in REGIMES.split(",")}
regime_runs = {name: E.load_results(csv) for name, (csv, _) in files.items() if csv.exists()}
regime_runs = {name: runs_ for name, runs_ in regime_runs.items() if len(report.reference_rows(runs_, MAX_LEN))}
print("regimes left out (no results file, or no reference-preset runs at this window):",
      ", ".join(name for name in files if name not in regime_runs) or "none")
regime_ranks = {name: E.load_ranks(files[name][1]) for name in regime_runs}
regimes = {name: report.reference_grid(regime_runs[name], regime_ranks[name], MAX_LEN, METRIC, LEVEL)
           for name in regime_runs}
ds = load_dataset(DATASET, interactions_path=INTERACTIONS, items_path=ITEMS)  # lengths, and checks

# %%
LABELS = {"ml-100k": "dense ML-100K", "ml-100k-last7": "ML-100K, sparse view", "amazon-beauty-ids": "Amazon Beauty"}
TABLES = {"ref_llm": "mean of LLM item-profile vectors", "ref_collab": "mean of SVD item vectors"}
pct = lambda d, end: f"[{100 * d[end + '_low'] / d['mean_b']:+.1f}, {100 * d[end + '_high'] / d['mean_b']:+.1f}]"
at_a_glance = {}
for name, (grid, semantic, _) in regimes.items():
    d, against = grid.decision_of(semantic, "ref_sasrec"), grid.decisions[grid.decisions["B"] == "ref_sasrec"]
    decided = [f"{a} {x}" for a, x in zip(against["A"], against["decision"]) if x in ("gain", "loss") and a != semantic]
    at_a_glance[LABELS.get(name, name)] = {
        "A vs B": f"{semantic} vs ref_sasrec", "A's prefix table": TABLES.get(semantic, semantic),
        "change %": f"{d['rel_change_%']:+.1f}", "95% interval": pct(d, "ci"), "90% interval": pct(d, "eq"),
        "verdict": d["decision"], "details": "sections 3-4", "others decided vs SASRec":
        ", ".join(decided) or "none"} if d else {"A vs B": f"{semantic} vs ref_sasrec", "verdict": "not run"}
pd.DataFrame(at_a_glance).T if at_a_glance else print("no regime to summarise: results/README.md has the commands")

# %% [markdown]
# - The authors' design beats SASRec in none of the three regimes: on dense ML-100K and its sparse
#   view the 95% interval includes 0 and the 90% interval reaches beyond ±5% (undecided); on Amazon
#   Beauty the 90% interval lies within ±5% (equivalent).
# - The only gain over SASRec that the rule decides, in any regime, is CL4SRec's on Beauty: random
#   crop, mask and reorder views, no semantic tables.
# - The semantic tables are stand-ins, not the authors' per-prefix LLM user profiles: on ML-100K
#   (dense and sparse) a prefix is embedded as the mean of its items' LLM item-profile embeddings,
#   on Beauty, which has no item text, as the mean of its items' SVD vectors from the training
#   interactions. The verdicts are about the design on these tables.
# - Sections 3-4 detail the verdicts, section 5 takes the design apart, section 6 asks them again
#   under equal search budgets (where searched) and a longer patience; Part II (sections 7-14) reads
#   the project's own preset, under the other protocol.

# %% [markdown]
# ## 1. The protocol
# Every number below was produced under one of two protocols, stated here once:
#
# - **Leave-one-out split** (notebook 01): for each user the last interaction is the test target, the
#   one before it the validation target, everything earlier is training data. Test inputs include
#   the validation item.
# - **Full ranking**: the target is ranked against *all* items, not a sample of negatives (sampled
#   metrics can reorder models; Krichene and Rendle, KDD 2020).
# - **History**: Part I's runs (variants `ref_*`, the `reference` preset) keep the user's past items
#   among the candidates, as the authors' code does; Part II's runs (the `default` preset) remove
#   them. Numbers of the two parts are never compared with each other.
# - **Ties against the target**: rank = number of other candidates scoring at least as high, in
#   float32 (a collapsed model that scores all items alike ranks every target last).
# - **Model selection on validation only**: each run stops early on validation MRR@10 (Part I with
#   RecBole's rule, as the authors) and its test numbers come from the best-on-validation
#   checkpoint, scored once. Hyperparameters are the reference implementation's (alpha = beta = 0.1,
#   k = 10, dropout 0.5, ...); anything else is chosen on validation, never on test.
# - **Metrics**: HR@{5,10,20}, NDCG@{5,10,20} and untruncated MRR, means over users.
#
# The metric code states the same rules:

# %%
import inspect
from sracl_lite import metrics as metrics_module
print(metrics_module.__doc__)
print(inspect.getsource(metrics_module.target_ranks))

# %% [markdown]
# ### How a verdict is decided
# A test number is a mean over users of a model that came out of one training run. Both are samples:
# other users would give other numbers, and so would another seed (initial weights, dropout masks,
# batch order). A per-user test (Wilcoxon, each user's metric averaged over seeds) holds the trained
# models fixed: it asks whether *these* models differ on these users, not whether the *methods*
# differ. So every verdict here comes from a **two-stage bootstrap**: each of 10,000 draws picks each
# variant's seeds with replacement (A's and B's separately: they are separate trainings) and one
# set of user weights for both (users stay paired), and takes the difference of the means. The rule,
# one for the whole notebook, was fixed before the results of seeds 4-10 were read, but for one
# change made after them: m below counts the questions *planned* for a regime, where it had counted
# those already run (the more conservative of the two):
#
# - **the primary question** of a regime (the authors' design against SASRec; in Part II SRA-CL
#   against its backbone) is tested alone: a **gain** or a **loss** when the 95% interval of the mean
#   difference excludes 0 (equivalently p < 0.05);
# - **secondary questions** (ablations, other baselines) of the same regime use the same test at
#   0.05 / m for the m such questions planned for the regime, run or not (Bonferroni), with intervals
#   at the same level, so an interval and a p-value always agree, and a run of a planned question
#   never moves the level (the cosine pair and the best-on-validation pair join with their runs);
# - **equivalent** when the interval at 1 - 2 x the question's level (90% for the primary question)
#   lies within ±5% of B's mean (two one-sided tests): the claim "no difference" needs this, not
#   just a large p;
# - otherwise **undecided**: the runs cannot tell the two apart.
#
# Two families are set apart where they are asked: the equal-budget search re-tests its primary
# question at 95% and three secondary pairs among themselves, m = 3 (section 6); Part II's
# configuration chosen on validation is one exploratory question at 95% (section 11). Section 13's
# agreement of validation and test (rank correlation above 0.5) describes, it decides nothing.
#
# With only 3 seeds the resampled seeds take few distinct values and understate the run-to-run
# spread, so the primary question's variants are run with up to 10 seeds (section 2 counts them).
# The Wilcoxon p stays beside each verdict as a secondary view: where most users score 0 (in one
# ML-100K run, two thirds to over nine tenths of them) it tests a shift of the users' values, not
# the mean, and the two can disagree. Each verdict also counts the seeds in which A is ahead of B:
# seed i of A and of B share the backbone's initial weights and batch order, so that count pairs
# them; the bootstrap does not. The test in code:

# %%
from sracl_lite import inference
print(inspect.getsource(inference.resampled_means))
print(inspect.getsource(inference.SeedUserBootstrap.compare))

# %% [markdown]
# ## 2. Where the numbers come from
# Part I reads one results file per regime (`REGIMES`), its reference-preset rows (`ref_*`) at
# window `MAX_LEN`, and sets up the paired comparisons its runs allow:
#
# - **dense**, `ml-100k`: MovieLens-100K, every user with at least 17 training items;
# - **sparse view**, `ml-100k-last7`: the same users and targets, each training sequence cut to its
#   last 7 items before training (7: the mean training length on Beauty, chosen before any run);
# - **sparse, the paper's**, `amazon-beauty-ids`: the paper's Amazon Beauty interactions, IDs only
#   (8.9 interactions a user).
#
# The Summary's first cells loaded these files and made each regime's decisions.
#
# Beauty has no item text, so its semantic tables are a stand-in built from training interactions:
# item vectors of a truncated SVD of the user-item matrix (`ref_collab`). On ML-100K the tables come
# from the LLM's item text (`ref_llm`), the item attribute template, the titles or the same SVD
# vectors. A prefix is embedded as the mean of its items' vectors (`scripts/build_tables.py`). So
# every table here is a stand-in, `ref_llm`'s included: the authors embed an LLM summary of each
# prefix, and wherever this notebook says "the authors' design" it means their design on these tables.

# %% [markdown]
# Each regime's runs, how they were made (device, precision, commit, command in the CSV) and the
# length of the users' training sequences where the data is at hand (Beauty's file is not in the
# repository: its 22,363 users have 6.9 training items on average).

# %%
overview = {}
for name, (grid, semantic, cosine) in regimes.items():
    view, runs_ = report.view_of(ds, name), grid.runs
    overview[name] = {"users": runs_["n_users"].iloc[0], "items": runs_["n_items"].iloc[0],
                      "mean training length": round(float(np.mean([len(s) for s in view.train_sequences])), 2)
                      if view is not None else np.nan,
                      "runs": len(runs_), "variants": runs_["variant"].nunique(), "semantic variant": semantic,
                      "cosine chosen on validation": cosine or "none ran", "device": report.the_one_value(
                          runs_["device_name"]), "bf16": report.the_one_value(runs_["bf16"]),
                      "CUDA graph": report.the_one_value(runs_["cuda_graph"]), "commit": report.the_one_value(
                          runs_["git_commit"])}
if not regimes:
    print("Part I has nothing to read; results/README.md has the commands of the reference grids.")
pd.DataFrame(overview)

# %% [markdown]
# How many seeds each variant the comparisons need has, per regime (the aim: 10 for the primary
# question's variants and the best on validation, 5 for the rest; 0 would be a planned run not made
# yet; one falls short, dense `ref_titles` with 3, the README says why); how often the budget
# binds at either end (RecBole's rule, patience 10 on MRR@10 rounded to 4 decimals, can end a run
# that has barely learned; a best epoch near the cap means more epochs might help); and the runs
# whose test metric is below 70% of their variant's best seed (a run that stopped learning; it stays
# in the means and tests, as it would for a user of the method).

# %%
for name, (grid, _, _) in regimes.items():
    planned = list(dict.fromkeys(v for a, b, _ in grid.comparisons for v in (a, b)))  # what the tests need
    seeds = grid.runs.groupby("variant")["seed"].nunique().reindex(planned).fillna(0).astype(int)
    print(f"{name}: seeds per variant: " + ", ".join(f"{v} {n}" for v, n in seeds.items()))
    runs_, cap = grid.runs, grid.runs["epochs"].max()
    print(f"  budget: {int((runs_['epochs_run'] <= 15).sum())} of {len(runs_)} runs ended by early stopping within "
          f"15 epochs; {int((runs_['best_epoch'] >= 0.9 * cap).sum())} have their best epoch within 10% of the "
          f"{cap}-epoch cap")
    best = grid.runs.groupby("variant")[f"test_{METRIC}"].transform("max")
    odd = grid.runs[grid.runs[f"test_{METRIC}"] < 0.7 * best]
    for index, run in odd.iterrows():
        print(f"  run that stopped learning: {run['variant']} seed {run['seed']}, test {METRIC} "
              f"{run[f'test_{METRIC}']:.4f} against the variant's best seed {best[index]:.4f}, best epoch "
              f"{run['best_epoch']} of {run['epochs_run']}")

# %% [markdown]
# ## 3. Question 1: does the authors' design beat SASRec here?
# The reference preset with each source of semantic tables, against SASRec under the same preset
# (same trainer, same protocol, same early stopping). Mean ± std over seeds of the test metric:

# %%
sources = ["ref_sasrec", "ref_llm", "ref_template", "ref_titles", "ref_collab"]
q1 = {name: E.mean_std_text(grid.summary.reindex([v for v in sources if v in grid.summary.index]),
                            [METRIC, METRIC.replace("NDCG", "HR")]).join(grid.summary["n_seeds"])
      for name, (grid, _, _) in regimes.items()}
pd.concat(q1) if q1 else None

# %%
if regimes:
    fig = report.plot_means({name: grid for name, (grid, _, _) in regimes.items()}, sources, METRIC)
    fig.suptitle(f"Question 1: the reference preset's table sources vs SASRec (black, dashed), test {METRIC}")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Each source against SASRec under the rule of section 1: the authors' design on stand-in tables
# (`ref_llm`, `ref_collab` on Beauty) is the primary question, at 95%; the other sources are secondary,
# at the Bonferroni level in `level` (the interval `ci_low`-`ci_high` is at that level).

# %%
columns = ["A", "B", "family", "level", "n_seeds_a", "n_seeds_b", "mean_a", "mean_b", "rel_change_%", "ci_low",
           "ci_high", "p", "decision", "wilcoxon_p"]
tests = report.regime_decisions(regimes)
q1_tests = report.pairs_in(tests, {(s, "ref_sasrec") for s in sources})
q1_tests[["dataset"] + columns].round(4)

# %%
for name, (grid, semantic, _) in regimes.items():
    print(f"{name}:", grid.verdict(semantic, "ref_sasrec", f"the authors' design on stand-in tables ({semantic})",
                                   "SASRec"), "\n")

# %% [markdown]
# ## 4. Question 2: in which regime?
# The same comparison across the three regimes, next to the two contrastive baselines that need no
# semantic tables and, where it is none of these, the variant best on validation (here it is SASRec
# itself on dense ML-100K, CL4SRec on the sparse view, DuoRec on Beauty). Each point is a relative
# change with its interval over seeds and users at the question's level (95% for the primary
# question, Bonferroni for the others): an interval that does not cross zero is a gain or a loss.

# %%
asked = lambda a, q, semantic: a in (semantic, "ref_cl4srec", "ref_duorec") or "best on validation" in q
regime_pairs = {(name, a, b) for name, (grid, semantic, _) in regimes.items() for a, b, q in grid.comparisons
                if b == "ref_sasrec" and asked(a, q, semantic)}
q2 = tests.loc[np.array([(d, a, b) in regime_pairs for d, a, b in zip(tests["dataset"], tests["A"], tests["B"])],
                        dtype=bool)]   # a mask, also when there is no regime
if len(q2):
    report.plot_changes(q2, "Question 2: the reference preset and the CL baselines vs SASRec, by regime")
    plt.show()
q2[["dataset"] + columns].round(4)

# %%
for name, (grid, semantic, _) in regimes.items():
    for a, b, _ in grid.comparisons:
        if (name, a, b) in regime_pairs:
            print(f"{name}:", grid.verdict(a, b, a, b, details=False))
    print()

# %% [markdown]
# Contrastive learning of any kind, semantic or not: where do the means of all the contrastive
# variants of a regime lie against SASRec's, and how many of those tested against SASRec are decided?

# %%
for name, (grid, _, _) in regimes.items():
    change = (100 * (grid.summary[METRIC] / grid.summary.loc["ref_sasrec", METRIC] - 1)).drop("ref_sasrec")
    against = grid.decisions[grid.decisions["B"] == "ref_sasrec"]
    decided = [f"{a} a {d}" for a, d in zip(against["A"], against["decision"]) if d in ("gain", "loss")]
    print(f"{name}: {int((change > 0).sum())} of {len(change)} contrastive variants have a higher mean than SASRec "
          f"({change.min():+.1f}% to {change.max():+.1f}%); of the {len(against)} tested against SASRec, "
          f"{len(decided)} decided" + (": " + ", ".join(decided) if decided else ""))

# %% [markdown]
# ## 5. Question 3: which part carries it, or holds it back?
# Each pair below asks one question: how much does A move the metric relative to B? Most change
# one part of the design; `ref_random` and `ref_llm_uniform` change more (see the last point).
# - **the user's own prefixes**: with the authors' rule (only the prefix itself excluded), most of a
#   prefix's neighbours on ML-100K are its own user's other prefixes, the longer of which contain its next item;
#   `_user` tables keep other users' prefixes only;
# - **semantic against random neighbours** (`ref_random`: random prefixes of other users);
# - **the synthesizer**: uniform weights instead of learned ones (`ref_llm_uniform`, ML-100K);
# - **the loss form**: cosine logits at a temperature chosen on validation from {0.1, 0.2, 0.5}
#   (ours, beyond the reference; ML-100K; section 2 counts the chosen temperature's seeds, the others ran 5);
# - **the contrastive machinery as such**: CL4SRec and DuoRec against SASRec, and the design against
#   DuoRec, whose positive is another training prefix with the same next item.
# - **clean ablations** (`_randpool`, `_randsub`, `_uniform_drop`, `_norm20`): `ref_random` changes four
#   things at once (random pool neighbours, of other users only, random substitution neighbours,
#   random synthesizer inputs) and `ref_llm_uniform` also drops the weights' dropout; these change
#   one part each, the last one scaling the synthesizer's inputs to the size of the authors' SimCSE
#   embeddings (norm about 20; ours are unit length). They ran in all three regimes.

# %%
q3 = tests.drop(q1_tests.index)   # every tested pair that is not question 1's
q3[["dataset", "question"] + columns].round(4)

# %%
if len(q3):
    report.plot_changes(q3, "Question 3: the parts taken apart (section 5 says what each row changes)")
    plt.show()

# %% [markdown]
# In words, from the tests above. Where the design gains over SASRec under the rule, the share of
# that gain that survives without the user's own prefixes and with random neighbours says what
# carries it; where no gain is established, there is nothing to share out.

# %%
for name, (grid, semantic, cosine) in regimes.items():
    print(report.gain_sentence(grid, semantic, name))
    for a, b, question in grid.comparisons:
        if not (b == "ref_sasrec" and a in sources):     # question 1's pairs are above
            print(f"- {question}:", grid.verdict(a, b, a, b, details=False))
    print()
# %% [markdown]
# ## 6. Equal budgets and a longer patience
# Every run above trains at the reference implementation's settings (learning rate 1e-3, dropout 0.5,
# alpha = beta = 0.1) for at most 100 epochs, stopped by RecBole's rule (patience 10). SASRec thus gets
# one configuration while the design gets several table sources and temperatures. Two checks that
# the verdicts do not come from these budgets, each read from its own folder of `results/`:
#
# - **an equal-budget search** (`results/search/`): 12 configurations per method at seed 1, up to 200
#   epochs: SASRec learning rate x dropout (4 x 3), CL4SRec and DuoRec learning rate x dropout x beta
#   (2 x 2 x 3), the design learning rate x dropout x alpha = beta (2 x 2 x 3). Each method keeps
#   the configuration with the best validation MRR@10 at seed 1, which then runs seeds 2-10. The
#   primary question (section 3) is tested again at 95%, and three pairs of section 5 (CL4SRec and
#   DuoRec against SASRec, the design against DuoRec) as a family of their own, m = 3 (0.05 / 3);
# - **a longer patience** (`results/patience/`): SASRec and the design, seeds 1-10, patience 20.

# %%
budget_files = {kind: {name: (results_dir / kind / f"{name}.csv", results_dir / kind / f"{name}_ranks.npz")
                       for name in regime_runs} for kind in ("search", "patience")}
searches = {name: report.searched_grid(E.load_results(csv), E.load_ranks(npz), regimes[name][1], MAX_LEN,
                                       METRIC, LEVEL)
            for name, (csv, npz) in budget_files["search"].items() if csv.exists()}
print("regimes without a search:", ", ".join(n for n in regime_runs if n not in searches) or "none")
chosen = pd.concat({name: table for name, (table, _) in searches.items()}) if searches else pd.DataFrame()
if len(chosen):
    chosen["variant"] = chosen["variant"].str.split("@").str[1]   # the chosen setting
chosen.rename(columns={"variant": "chosen on validation"}).round(4)

# %% [markdown]
# A search is complete when every method has its trials and its chosen configuration has run seeds
# 2-10 (`seeds` above); a method missing from the table was not searched there. The searched methods
# against each other, beside the same pair at the reference settings (the decisions of sections 3 and 5);
# a pair whose searched runs are missing says "not run".

# %%
rows = {}
for name, (_, searched) in searches.items():
    for a, b, question in searched.comparisons:
        for budget, g in (("searched", searched), ("reference settings", regimes[name][0])):
            d = g.decision_of(a, b)
            rows[(name, f"{a} vs {b}", budget)] = {k: d[k] for k in ("n_seeds_a", "n_seeds_b", "mean_a", "mean_b",
                                                                    "rel_change_%", "ci_low", "ci_high", "p",
                                                                    "decision")} if d else {"decision": "not run"}
pd.DataFrame.from_dict(rows, orient="index").round(4) if rows else None

# %%
for name, (_, searched) in searches.items():
    if searched.decisions.empty:
        print(f"{name}: the search is not complete (the table above), so nothing is tested on it yet\n")
        continue
    for a, b, question in searched.comparisons:
        print(f"{name}, searched, {question}:", searched.verdict(a, b, a, b, details=False))
    print()

# %% [markdown]
# With patience 20, how many runs still end within 15 epochs, and the primary question again beside
# its answer at the authors' patience 10:

# %%
for name, (csv, npz) in budget_files["patience"].items():
    if not csv.exists():
        continue
    longer, (grid10, semantic, _) = E.load_results(csv), regimes[name]
    pair = [(semantic, "ref_sasrec", "the authors' design vs SASRec")]
    g20 = report.RunGrid(longer[longer["max_len"] == MAX_LEN], E.load_ranks(npz), MAX_LEN, pair, METRIC, LEVEL)
    shorter = grid10.runs[grid10.runs["variant"].isin([semantic, "ref_sasrec"])]
    print(f"{name}: within 15 epochs, {int((g20.runs['epochs_run'] <= 15).sum())} of {len(g20.runs)} runs at "
          f"patience {report.the_one_value(g20.runs['patience'])}, {int((shorter['epochs_run'] <= 15).sum())} of "
          f"{len(shorter)} at patience {report.the_one_value(shorter['patience'])}")
    print("  patience 20:", g20.verdict(semantic, "ref_sasrec", semantic, "SASRec", details=False))
    print("  patience 10:", grid10.verdict(semantic, "ref_sasrec", semantic, "SASRec", details=False), "\n")

# %% [markdown]
# # Part II · This project's default preset, read as a reviewer would
#
# The rest of this notebook reads the grid of the project's own SRA-CL (`default` preset: one pool
# of users, one anchor pass, history removed from the candidates, `experiments.PRESETS`) from
# `results/<DATASET>.csv`: does it beat its backbone, by how much, is the difference larger than the
# noise, which of its parts matter, and for which users.
#
# ## 7. Where the numbers come from
# The default-preset runs are read from the results file (the `ref_*` rows belong to Part I);
# only those of one window (`MAX_LEN`) are compared.

# %%
csv_path, ranks_path = results_dir / f"{DATASET}.csv", results_dir / f"{DATASET}_ranks.npz"
all_runs = E.load_results(csv_path)
ranks = E.load_ranks(ranks_path)
runs = all_runs[(all_runs["max_len"] == MAX_LEN) & ~all_runs["variant"].map(report.is_reference)].copy()
if runs.empty:
    raise ValueError(f"{csv_path.name} has no default-preset runs with max_len={MAX_LEN}; it has max_len "
                     f"{sorted(all_runs['max_len'].unique())} (set SRACL_MAX_LEN)")
shown_path = csv_path.relative_to(results_dir.parent) if results_dir == paths.RESULTS else csv_path.name
print(f"{shown_path}: {len(all_runs)} runs, {len(runs)} of the default preset with max_len={MAX_LEN}, "
      f"{runs['variant'].nunique()} variants")

# %% [markdown]
# Each CSV row is one training run (variant, window, seed) and records how it was made: the
# command, the code version, the device, the date and the training budget ("profile"). A profile
# with `*` had its budget overridden on the command line.

# %%
budget = ["profile", "epochs", "patience", "max_train_prefixes", "unique_candidates"]
how = [c for c in ("command", "device_name", "compile", "bf16", "git_commit", "torch") if c in runs]
provenance = (runs.groupby(how + budget, dropna=False)
              .agg(runs=("seed", "size"), first=("date", "min"), last=("date", "max")).reset_index())
provenance.T

# %%
budgets = runs[budget].drop_duplicates()
if len(budgets) > 1:
    print("WARNING: these runs were trained with different budgets; compare variants only within one budget:")
    print(budgets.to_string(index=False))
else:
    b = budgets.iloc[0]
    prefixes = "all" if b["max_train_prefixes"] == 0 else f"{b['max_train_prefixes']:,}"
    print(f"one budget for every run: profile {b['profile']}, up to {b['epochs']} epochs, patience "
          f"{b['patience']}, training prefixes: {prefixes}")
    if b["profile"] != "paper":
        print("This is not the paper profile (all prefixes, up to 100 epochs, patience 10): the models are "
              "under-trained, so the numbers below show how to read a comparison, not SRA-CL's merit.")

# %% [markdown]
# ## 8. Every variant, mean ± std over seeds
# The registry of variants lives in `sracl_lite.experiments.VARIANTS`; a variant absent from the CSV
# is listed as missing rather than dropped, so a gap is visible. The std is over seeds (training
# randomness: initialisation, batch order, dropout, augmentations).

# %%
summary = E.summary_table(runs)
registry = pd.DataFrame(experiments.VARIANTS).T[["role", "description"]]
default_variants = [v for v in experiments.VARIANTS if not report.is_reference(v)]   # Part I has the others
names = E.variant_order(default_variants + list(summary.index))
summary = summary.reindex(names)
table = registry.reindex(names).join(summary["n_seeds"].fillna(0).astype(int)).join(E.mean_std_text(summary))
table

# %%
print(f"change of the mean vs SASRec, % (test, max_len={MAX_LEN}):")
relative = summary[[f"{m} vs sasrec %" for m in E.REPORTED_METRICS]].dropna(how="all")
relative.columns = E.REPORTED_METRICS
print(relative.drop(index="sasrec", errors="ignore").round(1).to_string())
missing = [v for v in default_variants if v not in set(runs["variant"])]
print("\nmissing from the CSV:", ", ".join(missing) or "none")

# %% [markdown]
# A relative change alone says nothing about noise. On ML-100K the test set is 943 users, one
# target each: a hit for one more user moves HR@20 by 0.1 percentage points. The seed std above and
# the paired tests below say which differences are larger than that noise.

# %%
shown = summary.dropna(subset=[METRIC])
fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(shown) + 1.5), sharey=True)
for ax, metric in zip(axes, [METRIC, METRIC.replace("NDCG", "HR")]):
    report.paint_bars(ax.barh(shown.index, shown[metric], xerr=shown[f"{metric} std"].fillna(0), capsize=3),
                      shown.index)                # one colour and hatch per variant, SASRec black in every plot
    if "sasrec" in shown.index:
        ax.axvline(shown.loc["sasrec", metric], color="black", linestyle="--", linewidth=1)
    ax.set(xlabel=f"test {metric} (bar: mean, line: ± std over seeds; dashed: SASRec)")
axes[0].invert_yaxis()
fig.suptitle(f"{DATASET}, max_len={MAX_LEN}, default preset")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 9. The decisions, and the per-user view beside them
# The same rule as Part I (section 1): SRA-CL against SASRec is this grid's primary question, the
# other comparisons secondary, each decided by the bootstrap over seeds and users:

# %%
grid = report.RunGrid(runs, ranks, MAX_LEN, experiments.COMPARISONS, METRIC, LEVEL)
runs_of = grid.ranks_of                    # a variant's per-user test ranks, one array per seed
print(f"test {METRIC}, A vs B: {len(grid.decisions)} comparison(s) possible. Not possible:")
for (a, b), why in grid.not_possible.items():
    print(f"  {a} vs {b}: {why}")
grid.decisions[["A", "B", "family", "level", "mean_a", "mean_b", "rel_change_%", "ci_low", "ci_high", "p",
                "decision"]].round(4)

# %% [markdown]
# The per-user view: two variants rank the *same* users, so per user there is a difference of the
# metric (each user's metric first averaged over a variant's seeds). **Wilcoxon signed-rank**: users
# with equal values on both sides (often 0 and 0) drop out; the **paired t-test** on the same
# differences; wins, losses and ties. These hold the trained models fixed, so they are a view of
# these runs, not a verdict on the methods: a Wilcoxon p under 0.05 next to an "undecided" means the
# users shift, given these models, by less than the run-to-run spread.

# %%
shown_tests = grid.tests[["A", "B", "mean_a", "mean_b", "wilcoxon_p", "ttest_p", "wins", "losses", "ties"]].round(4)
for column in ("wilcoxon_p", "ttest_p"):      # small p-values would round to 0
    shown_tests[column] = grid.tests[column].map(lambda p: f"{p:.2g}")
shown_tests

# %% [markdown]
# ## 10. The verdict, written from the numbers
# The sentences below are generated from the tests above, so they change when the CSV changes. Two
# limits hold for every one of them: Part II's variants have 3 seeds each (section 1: resampling 3
# seeds understates the run-to-run spread), and its SRA-CL reads notebook 03's tables, built from
# the 135M LLM's answers, a stand-in for the paper's LLM text.

# %%
print(inspect.getsource(report.RunGrid.verdict))

# %%
headline = grid.verdict("sracl", "sasrec", "SRA-CL", "SASRec")
for a, b, la, lb in [("sracl", "sasrec", "SRA-CL", "SASRec"),
                     ("sracl_template", "sasrec", "SRA-CL without LLM", "SASRec"),
                     ("sracl", "cl4srec", "SRA-CL", "CL4SRec"),
                     ("random_nbrs", "sracl", "SRA-CL with random neighbours", "SRA-CL with semantic neighbours"),
                     ("no_intra", "sracl", "SRA-CL without intra-sequence CL", "SRA-CL"),
                     ("gru4rec_sracl", "gru4rec", "GRU4Rec + SRA-CL", "GRU4Rec")]:
    print("-", grid.verdict(a, b, la, lb), "\n")
profiles = sorted(set(runs["profile"]))
if profiles != ["paper"]:
    print(f"All of this holds for the budget of these runs ({', '.join(profiles)}), not for converged models.")

# %% [markdown]
# ## 11. What the paper's design suggests, chosen on validation
# When SRA-CL does not beat its backbone, the design points at two knobs: the neighbours (notebook
# 03 measured the small LLM's user neighbours as barely better than random, and the mean of item
# embeddings or co-interactions as much better) and the weight of the contrastive losses. The
# exploration variants change one thing each (`VARIANTS`, role "exploration"): neighbours from the
# mean of the item embeddings or from co-interactions, alpha = beta = 0.02, or k = 5 neighbours.
# Every run already stopped early on validation; here the configuration is also **chosen on
# validation** (mean over seeds of the early-stopping metric), and only the chosen one's test
# numbers count as a result. The other rows' test numbers are shown, not used to choose. They also
# show that notebook 03's neighbour quality did not predict training: `sracl_mean`, whose
# neighbours ranked best there, has the lowest validation and test means of these rows. The
# chosen-on-validation question is exploratory: it is tested at 95%, outside section 9's family.

# %%
selection_metric = runs["valid_metric"].iloc[0]
candidates = [v for v in ["sracl"] + [v for v, spec in experiments.VARIANTS.items() if spec["role"] == "exploration"]
              if runs_of(v)]
choice = grid.validation_choice(candidates)
print(f"validation {selection_metric} (selection) and test {METRIC} (result), means over seeds:")
print(choice.round(4).to_string())
if candidates and runs_of("sasrec"):
    chosen = choice.loc[candidates, "valid"].idxmax()
    margin = choice.loc[chosen, "valid"] / choice.loc["sasrec", "valid"] - 1
    print(f"\nchosen on validation: {chosen} ({experiments.VARIANTS[chosen]['description']}), validation "
          f"{selection_metric} {margin:+.1%} vs SASRec")
    pair = inference.SeedUserBootstrap.of({chosen: runs_of(chosen), "sasrec": runs_of("sasrec")}, METRIC)
    result = pair.compare(chosen, "sasrec", LEVEL, "chosen on validation")   # one question, asked before the test
    print(inference.decision_sentence(result, f"the chosen configuration ({chosen})", "SASRec", METRIC))

# %% [markdown]
# ## 12. The sparsity view: users by training-sequence length
# The paper finds SRA-CL's gain largest for users with short histories, where collaborative signal
# is thin. We group users by the length of their training sequence into three groups: tertiles by
# default (cut points at the 1/3 and 2/3 quantiles, rounded down to whole lengths), or fixed edges
# set in `LENGTH_EDGES`. Each user's metric is averaged over seeds, then over the group.

# %%
train_lengths = np.array([len(s) for s in ds.train_sequences])
edges = tuple(int(x) for x in LENGTH_EDGES.split(",")) if LENGTH_EDGES else None
groups, (e1, e2) = E.length_groups(train_lengths, edges)
print(f"{len(train_lengths)} users; training lengths {train_lengths.min()}..{train_lengths.max()}, "
      f"median {np.median(train_lengths):.0f}; groups by {'fixed edges' if edges else 'tertiles'}: "
      f"<= {e1}, {e1 + 1}..{e2}, > {e2}")
present = [v for v in E.variant_order(runs["variant"]) if runs_of(v)]
by_group = E.metrics_by_group({v: runs_of(v) for v in present}, groups, METRIC)
by_variant = by_group.drop(columns="users").T.round(4)   # one row per variant, one column per group
by_variant.columns = [f"{g}, {n} users" for g, n in zip(by_group.index, by_group["users"].astype(int))]
print(by_variant.to_string())

# %%
fig, ax = plt.subplots(figsize=(11, 3.8))
width = 0.8 / max(len(present), 1)
styles = report.variant_styles(present)             # colour, hatch, marker
for i, variant in enumerate(present):
    ax.bar(np.arange(3) + i * width, by_group[variant], width, label=variant, color=styles[variant][0],
           hatch=styles[variant][1], edgecolor="black", linewidth=0)     # black hatch lines, no frame
ax.set_xticks(np.arange(3) + width * (len(present) - 1) / 2, [f"{g}\n{n} users" for g, n in
                                                               zip(by_group.index, by_group["users"])])
ax.set(ylabel=f"test {METRIC}", title=f"{DATASET}: test {METRIC} by training-sequence length")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))   # beside the bars, not over them
fig.tight_layout()
plt.show()

# %%
pair = next(((a, "sasrec") for a in ("sracl", "sracl_template") if runs_of(a) and runs_of("sasrec")), None)
if pair:
    per_group = grid.tests_by_group(*pair, groups)
    print(f"{pair[0]} vs {pair[1]} within each length group (test {METRIC}):")
    print(per_group.round(4).to_string(index=False))
    gains = pd.Series(per_group["rel_change_%"].to_numpy(), index=per_group["group"].str.split(" ").str[0]).dropna()
    if len(gains):
        print(f"\n{pair[0]}'s change vs {pair[1]} is most favourable for the {gains.idxmax()} group "
              f"({gains.max():+.1f}%) and least for the {gains.idxmin()} group ({gains.min():+.1f}%).")
else:
    print("no SRA-CL and SASRec runs to compare by length")
print(f"\nNote: every {DATASET} user here has at least {train_lengths.min()} training items (median "
      f"{np.median(train_lengths):.0f}). On Amazon Beauty the median is 4 and 63% of users have at most 5, "
      "so a 'short' group here is not short in the paper's sense; the short-sequence effect needs such data.")

# %% [markdown]
# ## 13. What else explains the numbers
# **Validation vs test.** Model selection uses validation only; if validation and test disagree on
# which variant is better, a small test gain is likely noise. **Cost.** The contrastive variants
# encode up to 1 + k + 2 sequences per training sample instead of 1 (k = 10), which the training
# seconds show (comparable only within one device).

# %%
agg = grid.validation_and_test()
print(f"means over seeds; {METRIC} on validation and test:")
print(agg.round(4).to_string())
if len(agg) > 2:
    spearman = agg["valid"].rank().corr(agg["test"].rank())
    print(f"\nrank correlation of variants between validation and test {METRIC}: {spearman:.2f} "
          f"({'they agree' if spearman > 0.5 else 'they disagree: differences between variants are mostly noise'})")

# %% [markdown]
# Run by run: dots on a rising line mean that validation ranks the runs as test does.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
styles = report.variant_styles(runs["variant"].unique())
for i, (variant, frame) in enumerate(runs.groupby("variant", sort=False)):
    ax.scatter(frame[f"valid_{METRIC}"], frame[f"test_{METRIC}"], label=variant, color=styles[variant][0],
               marker=styles[variant][2], s=40, edgecolors="black" if styles[variant][1] else "none")
ax.set(xlabel=f"validation {METRIC}", ylabel=f"test {METRIC}", title="each dot one run")
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 14. The CPU-profile numbers of notebooks 04-06
# Notebooks 04-06 train single runs (seed 2024) and save them with `save_metrics`; with their
# default **reduced CPU profile** they are far from converged: notebook 04 trains 16,384 seeded
# training prefixes for 4 epochs (`experiments.PROFILES["cpu"]`), notebooks 05-06 4,096 prefixes for
# 3 epochs. They are shown side by side for orientation only: compare rows of one notebook and one
# "test ranks" protocol with each other, and with grid rows only where profile and protocol match.

# %%
# NBVAL_IGNORE_OUTPUT
# The rows of notebooks 04-06 vary in their last digits between CPUs; those notebooks check them
# against their stored run within a tolerance. The grid rows are compared in the Results below.
saved = load_metrics(DATASET) if paths.metrics_dir(DATASET).exists() else {}
if not saved:
    print(f"no CPU-profile metrics saved for {DATASET} yet: notebooks 04-06 save them when they run")
ranks_of = lambda v: E.test_ranks_label(v.get("config", {}).get("exclude_history", True))   # popularity: excluded
cpu_table = pd.DataFrame.from_dict({name: {"profile": str(v.get("profile", "none (not trained)")), "seeds": 1,
                                           "test ranks": ranks_of(v), **{m: v["test"][m] for m in E.REPORTED_METRICS}}
                                    for name, v in saved.items()}, orient="index").round(4)
NOTEBOOK_OF = {"popularity": "04", "sasrec": "04", "ref_sasrec": "05", "ref_sasrec+cross": "05",
               "sasrec+cross": "05", "ref_sracl": "06", "sracl": "06"}   # what saves which
cpu_table.insert(0, "from", [f"notebook {NOTEBOOK_OF.get(name, '04-06')}" for name in cpu_table.index])
cpu_table = cpu_table.sort_values("from", kind="stable")

# %% [markdown]
# Next to them, the grid's means over seeds, each with the profile its runs were trained under.

# %%
# NBVAL_IGNORE_OUTPUT
if saved:
    grid_means = summary[E.REPORTED_METRICS].dropna(how="all").round(4)
    grid_means.insert(0, "profile", runs.groupby("variant")["profile"].first().reindex(grid_means.index))
    grid_means.insert(1, "seeds", summary["n_seeds"].reindex(grid_means.index).astype(int))
    grid_means.insert(2, "test ranks", E.test_ranks_label(True))   # Part II's grid: the default preset
    grid_means.insert(0, "from", str(shown_path))
    print(pd.concat({"notebooks 04-06": cpu_table, "grid (mean of seeds)": grid_means}).to_string())

# %% [markdown]
# ## 15. Sanity check: SASRec on Amazon Beauty against published numbers
# Our ML-100K numbers have no published counterpart under this exact protocol. The Beauty ID file
# of the SRA-CL authors' repository (`data/Beauty/Beauty.txt`) does: other papers' public code reports
# full-ranking SASRec on it at max_len 50 with HR@20 = 0.0894 and NDCG@20 = 0.0386, ranking all
# items; the figures are quoted from those repositories, whose run settings we could not trace.
# Our `sasrec` rows (Part II's protocol) remove the user's history from the candidates, which can
# only raise a target's rank; Part I's `ref_sasrec` rows rank all items, as published. The check is
# one-sided: a working pipeline should not land far below those numbers.

# %%
PUBLISHED = {"HR@20": 0.0894, "NDCG@20": 0.0386}      # SASRec, max_len 50, all items ranked
beauty_path = results_dir / f"{BEAUTY}.csv"
beauty = E.load_results(beauty_path).query("variant in ('sasrec', 'ref_sasrec')") if beauty_path.exists() else None
if beauty is not None:
    beauty_summary = E.summary_table(beauty, metrics=["HR@10", "NDCG@10", "HR@20", "NDCG@20"],
                                     by=("variant", "max_len"))
    shown_beauty = E.mean_std_text(beauty_summary, ["HR@10", "NDCG@10", "HR@20", "NDCG@20"])
    shown_beauty.insert(0, "seeds", beauty_summary["n_seeds"])
    shown_beauty.insert(1, "profile", beauty.groupby(["variant", "max_len"])["profile"].first())
    shown_beauty.insert(2, "device", beauty.groupby(["variant", "max_len"])["device_name"].first())
    print(shown_beauty.to_string())
else:
    print(f"{beauty_path.name} not found. Make it with (see results/README.md):\n  python scripts/results_grid.py "
          "--dataset ids --data-path <amazon_beauty_ids.txt> --variants sasrec --seeds 1 2 3 --max-len 20 50 "
          "--profile paper --device cuda --workers 6")

# %% [markdown]
# The published numbers are for max_len 50, so only our runs with that window are held against
# them. The check passes when ours reach at least 85% of them (other papers' budgets and seeds
# differ). Ours land well above, and the protocol is not why: ranking all items as published,
# `ref_sasrec` (max_len 20) is far above them too (its ratios are printed first). We have not
# traced the gap; other implementations differ in details (position handling, dropout, early stopping,
# evaluation code), so compare variants within this project, not across papers.

# %%
if beauty is not None:
    print(f"published (max_len 50): HR@20 {PUBLISHED['HR@20']}, NDCG@20 {PUBLISHED['NDCG@20']}")
if beauty is not None and ("sasrec", 50) in beauty_summary.index:
    if ("ref_sasrec", 20) in beauty_summary.index:
        print("ref_sasrec at max_len 20, all items ranked: " + ", ".join(
            f"{m} {beauty_summary.loc[('ref_sasrec', 20), m] / PUBLISHED[m]:.2f} x published" for m in PUBLISHED))
    ours = beauty_summary.loc[("sasrec", 50)]
    ratios = {m: ours[m] / PUBLISHED[m] for m in PUBLISHED}
    reached = all(r >= 0.85 for r in ratios.values())
    print(f"\nAt max_len 50 our SASRec (history removed) reaches HR@20 {ours['HR@20']:.4f} ({ratios['HR@20']:.2f} x "
          f"published) and NDCG@20 {ours['NDCG@20']:.4f} ({ratios['NDCG@20']:.2f} x published): "
          + ("at least 85% of the published numbers, as a working pipeline should." if reached else
             "below 85% of the published numbers; check the budget (profile) before trusting the pipeline."))
elif beauty is not None:
    print("no max_len 50 runs yet: the published numbers are for max_len 50")

# %% [markdown]
# ## Checks

# %%
# One row per run, metrics that grow with k, test metrics exactly what the stored per-user ranks
# give, every provenance column filled: check_results raises a ValueError that says which fails.
report.check_results(all_runs, ranks)
# The results were computed on the same data that notebook 01 prepares here.
assert all(len(r) == ds.n_users for r in ranks.values()), "a ranks array does not have one rank per user"
assert (all_runs["n_items"] == ds.n_items).all() and (all_runs["n_users"] == ds.n_users).all()
assert set(all_runs["data_hash"]) == {ds.content_hash()[:12]}, "the runs used another version of the data"
assert by_group["users"].sum() == ds.n_users

# %%
# Part I: the same checks for every regime's file, and its data where it is at hand.
for name in regimes:
    report.check_results(regime_runs[name], regime_ranks[name])
    view = report.view_of(ds, name)
    if view is not None:
        assert set(regime_runs[name]["data_hash"]) == {view.content_hash()[:12]}, f"{name}: another data version"
    assert {len(r) for r in regime_ranks[name].values()} == set(regime_runs[name]["n_users"])

# %%
# The Summary's bullets, as findings of the stored results files.
primary = {name: (semantic, (grid.decision_of(semantic, "ref_sasrec") or {}).get("decision"))
           for name, (grid, semantic, _) in regimes.items()}
expect(primary == {"ml-100k": ("ref_llm", "undecided"), "ml-100k-last7": ("ref_llm", "undecided"),
                   "amazon-beauty-ids": ("ref_collab", "equivalent")},
       "the Summary: the design (LLM-profile tables on ML-100K, SVD on Beauty) beats SASRec in no regime")
decided = {(d, a, x) for d, a, b, x in zip(tests["dataset"], tests["A"], tests["B"], tests["decision"])
           if b == "ref_sasrec" and x in ("gain", "loss")}
expect(decided == {("amazon-beauty-ids", "ref_cl4srec", "gain")},
       "the Summary: CL4SRec on Beauty is the only gain over SASRec that the rule decides")
print("all checks passed")

# %% [markdown]
# ## Results

# %%
print(f"Part I, the reference preset, test {METRIC}:")
for name, (g, semantic, _) in regimes.items():
    print(f"  {name}:", g.verdict(semantic, "ref_sasrec", f"the authors' design on stand-in tables ({semantic})",
                                  "SASRec", details=False))
    print("   ", report.gain_sentence(g, semantic))

# %%
print(f"Part II, {DATASET}, max_len={MAX_LEN}, {len(runs)} runs; test {METRIC} mean ± std over seeds:")
print(E.mean_std_text(summary.dropna(subset=[METRIC]), [METRIC, METRIC.replace("NDCG", "HR")]).to_string())
print("\n" + headline)
if not runs_of("sracl"):
    print(grid.verdict("sracl_template", "sasrec", "SRA-CL without LLM", "SASRec"))
