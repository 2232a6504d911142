"""Notebook 07's reading of a results grid: paired tests, verdicts in words, the choice on validation,
the length groups, and the checks that a results file is consistent with itself.

`RunGrid`: one dataset's runs at one window with their per-user ranks; the statistics live in
`evaluation`. Part I takes the reference preset apart (`reference_grid`, `reference_comparisons`,
`surviving_gain`); every plot gives a variant its own colour and hatch (`variant_styles`).
"""
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import evaluation as E
from . import inference as I
from .experiments import VARIANTS
from .metrics import metrics_from_ranks


@dataclass
class RunGrid:
    """Runs of one window (CSV rows), their per-user test ranks, and the comparisons to test.

    On creation: `decisions`, one row per comparison whose runs exist, decided by the rule of
    `inference` (the first comparison is the primary question, the others secondary), with the
    per-user Wilcoxon p beside it as a secondary view; `tests`, the per-user paired tests
    (`evaluation.paired_test`); `not_possible`, comparison -> what is missing.
    """
    runs: pd.DataFrame
    ranks: dict
    max_len: int
    comparisons: list = field(default_factory=list)   # (A, B, question), e.g. experiments.COMPARISONS
    metric: str = "NDCG@20"
    level: float = I.LEVEL

    def __post_init__(self):
        self.summary = E.summary_table(self.runs)
        rows, self.not_possible = [], {}
        for a, b, question in self.comparisons:
            ranks_a, ranks_b = self.ranks_of(a), self.ranks_of(b)
            if ranks_a and ranks_b:
                rows.append({"A": a, "B": b, "question": question, **E.paired_test(ranks_a, ranks_b, self.metric)})
            else:
                self.not_possible[(a, b)] = " and ".join(v for v, r in ((a, ranks_a), (b, ranks_b)) if not r) + \
                    " missing"
        self.tests = pd.DataFrame(rows, columns=["A", "B", "question"] + E.PAIRED_TEST_FIELDS)
        primary = self.comparisons[0][:2] if self.comparisons else None
        variants = list(dict.fromkeys(v for a, b in zip(self.tests["A"], self.tests["B"]) for v in (a, b)))
        self.bootstrap = I.SeedUserBootstrap.of({v: self.ranks_of(v) for v in variants}, self.metric) \
            if variants else None
        # m counts every planned secondary question, run or not, so a run added later never moves the level
        _, secondary_level = I.family_levels(sum((a, b) != primary for a, b, _ in self.comparisons), self.level)
        decisions = [{"A": a, "B": b, "question": q, "metric": self.metric,
                      **self.bootstrap.compare(a, b, *((self.level, "primary") if (a, b) == primary
                                                       else (secondary_level, "secondary")))}
                     for a, b, q in zip(self.tests["A"], self.tests["B"], self.tests["question"])]
        self.decisions = pd.DataFrame(decisions, columns=["A", "B", "question", "metric"] + I.DECISION_FIELDS)
        self.decisions["wilcoxon_p"] = self.tests["wilcoxon_p"].to_numpy()

    def ranks_of(self, variant: str) -> list:
        """The variant's per-user test ranks, one array per seed in seed order ([] when it has none)."""
        seeds = sorted(self.runs.loc[self.runs["variant"] == variant, "seed"])
        keys = (E.rank_key(variant, seed, self.max_len) for seed in seeds)
        return [self.ranks[key] for key in keys if key in self.ranks]

    def decision_of(self, a: str, b: str):
        """The decision on A vs B as a dict (`decisions` row), or None when it could not be made."""
        found = self.decisions[(self.decisions["A"] == a) & (self.decisions["B"] == b)]
        return None if found.empty else found.iloc[0].to_dict()

    def verdict(self, a: str, b: str, label_a: str, label_b: str, details: bool = True) -> str:
        """A vs B in words, under the rule of `inference`; with `details`, also the per-user view and
        the seeds one by one."""
        result = self.decision_of(a, b)
        if result is None:
            return f"{label_a} vs {label_b}: cannot be judged here, {self.not_possible.get((a, b), 'no runs')}."
        sentence = I.decision_sentence(result, label_a, label_b, self.metric)
        if not details:
            return sentence
        seeds_a, seeds_b = self.ranks_of(a), self.ranks_of(b)
        ahead = sum(E.per_user_metric([x], self.metric).mean() > E.per_user_metric([y], self.metric).mean()
                    for x, y in zip(seeds_a, seeds_b))
        sentence += (f" Seed by seed, {label_a} is ahead in {ahead} of {min(len(seeds_a), len(seeds_b))} paired seeds;"
                     f" the per-user Wilcoxon test on these trained models gives p = {result['wilcoxon_p']:.3g}.")
        return sentence

    def validation_choice(self, candidates, baseline: str = "sasrec") -> pd.DataFrame:
        """Mean and std over seeds of the early-stopping metric on validation (what chooses) and of the
        headline metric on test (the result), for the baseline and the candidates, with their tables."""
        selection = f"valid_{self.runs['valid_metric'].iloc[0]}"
        test = f"test_{self.metric}"
        chosen_from = self.runs[self.runs["variant"].isin(list(candidates) + [baseline])]
        choice = (chosen_from.groupby("variant")
                  .agg(seeds=("seed", "size"), valid=(selection, "mean"), valid_std=(selection, "std"),
                       test=(test, "mean"), test_std=(test, "std"))
                  .reindex([baseline] + list(candidates)))
        choice.insert(0, "tables", [VARIANTS[v]["tables"] or "none" for v in choice.index])
        return choice

    def tests_by_group(self, a: str, b: str, groups) -> pd.DataFrame:
        """A vs B tested within each length group (`evaluation.length_groups`): one row per group with users."""
        rows = []
        for label in groups.categories:
            mask = np.asarray(groups == label)
            if not mask.any():  # a length group with no user (a tiny dataset) has nothing to test
                continue
            result = E.paired_test([r[mask] for r in self.ranks_of(a)], [r[mask] for r in self.ranks_of(b)],
                                   self.metric)
            rows.append({"group": label, "users": int(mask.sum()), a: result["mean_a"], b: result["mean_b"],
                         "rel_change_%": result["rel_change_%"], "wilcoxon_p": result["wilcoxon_p"]})
        return pd.DataFrame(rows)

    def validation_and_test(self) -> pd.DataFrame:
        """Per variant, means over seeds of the headline metric on validation and test, the epochs and
        the training seconds (with the device, or "mixed")."""
        table = self.runs.groupby("variant").agg(
            valid=(f"valid_{self.metric}", "mean"), test=(f"test_{self.metric}", "mean"),
            best_epoch=("best_epoch", "mean"), epochs_run=("epochs_run", "mean"),
            train_seconds=("train_seconds", "mean"), device=("device_name", the_one_value))
        return table.reindex(E.variant_order(table.index))


def the_one_value(values: pd.Series):
    """The value every row shares, or "mixed"."""
    return values.iloc[0] if values.nunique() == 1 else "mixed"


def require(holds, problem: str):
    if not holds:
        raise ValueError(f"results file: {problem}")


PROVENANCE_COLUMNS = ("command", "git_commit", "device_name", "date", "torch", "profile")


def check_results(results: pd.DataFrame, ranks: dict):
    """Fail (ValueError) unless a results CSV is consistent with itself and with its ranks file: one
    row per run key, HR@k and NDCG@k growing with k, NDCG@k <= HR@k, every row's test metrics exactly
    what its stored per-user ranks give, and every provenance column filled."""
    require(not results.duplicated(E.RUN_KEY).any(), "a (variant, max_len, seed) appears twice")
    for split in ("valid", "test"):
        for family in ("HR", "NDCG"):
            values = results[[f"{split}_{family}@{k}" for k in (5, 10, 20)]].to_numpy()
            require((np.diff(values, axis=1) >= -1e-12).all(), f"{split} {family}@k must grow with k")
        for k in (5, 10, 20):
            require((results[f"{split}_NDCG@{k}"] <= results[f"{split}_HR@{k}"] + 1e-12).all(),
                    f"{split} NDCG@{k} above HR@{k}")
    for row in results.to_dict("records"):
        key = E.rank_key(row["variant"], row["seed"], row["max_len"])
        require(key in ranks, f"{key} has a row but no ranks in the ranks file")
        recomputed = metrics_from_ranks(ranks[key])
        for metric in E.REPORTED_METRICS:
            require(abs(recomputed[metric] - row[f"test_{metric}"]) < 1e-9,
                    f"{key}: test {metric} differs from what its ranks give")
    for column in PROVENANCE_COLUMNS:
        require(results[column].notna().all(), f"column {column} must be filled for every run")


# The reference preset's decomposition (notebook 07, "Where the gain comes from"): each pair tests one
# part of the authors' design, within one dataset, against the baselines trained under the same preset.
def reference_comparisons(semantic: str, cosine: str = "", best: str = "") -> list:
    """(A, B, question) pairs for one dataset, the primary question first; `semantic` is its reference
    variant with semantic tables (ref_llm where items have text, ref_collab on ID-only data), `cosine`
    the cosine variant chosen on validation and `best` the variant best on validation ("" when none
    ran; its pair with SASRec is added when no other pair asks it)."""
    pairs = [(semantic, "ref_sasrec", "the authors' design vs SASRec"),
             ("ref_cl4srec", "ref_sasrec", "CL4SRec vs SASRec"),
             ("ref_duorec", "ref_sasrec", "DuoRec vs SASRec"),
             (semantic, "ref_duorec", "the authors' design vs DuoRec"),
             (f"{semantic}_user", semantic, "the user's own prefixes removed from the neighbours"),
             ("ref_random", semantic, "random instead of semantic neighbours")]
    if semantic == "ref_llm":
        pairs += [(v, "ref_sasrec", f"{VARIANTS[v]['description']} vs SASRec")
                  for v in ("ref_template", "ref_titles", "ref_collab")]
        pairs += [("ref_llm_uniform", "ref_llm", "uniform instead of learned synthesizer weights")]
    if cosine:
        pairs += [(cosine, semantic, "cosine logits at the temperature chosen on validation (ours)")]
    pairs += [(f"{semantic}_randpool", f"{semantic}_user", "random instead of semantic pool neighbours, both of "
               "other users (clean)"),
              (f"{semantic}_randsub", semantic, "random instead of semantic substitution neighbours (clean)"),
              (f"{semantic}_uniform_drop", semantic, "uniform synthesizer weights, their dropout kept (clean)"),
              (f"{semantic}_norm20", semantic, "synthesizer inputs at the authors' size, norm 20 (clean)")]
    if best and (best, "ref_sasrec") not in {(a, b) for a, b, _ in pairs} and best != "ref_sasrec":
        pairs += [(best, "ref_sasrec", "the variant best on validation vs SASRec")]
    return pairs


def chosen_on_validation(runs: pd.DataFrame, candidates) -> str:
    """The candidate with the best mean over seeds of the early-stopping metric on validation ("" when
    none ran); test numbers play no part in the choice."""
    metric = f"valid_{runs['valid_metric'].iloc[0]}"
    means = runs[runs["variant"].isin(list(candidates))].groupby("variant")[metric].mean()
    return str(means.idxmax()) if len(means) else ""


def surviving_gain(grid: RunGrid, semantic: str, baseline: str = "ref_sasrec") -> dict:
    """How much of `semantic`'s gain over the baseline is left without the user's own prefixes and with
    random tables: (variant - baseline) / (semantic - baseline) of the seed-averaged test means. Only
    defined where the semantic variant gains; NaN otherwise."""
    means = grid.summary[grid.metric]
    gain = means.get(semantic, np.nan) - means.get(baseline, np.nan)
    shares = {v: (means.get(v, np.nan) - means.get(baseline, np.nan)) / gain if gain > 0 else np.nan
              for v in (f"{semantic}_user", "ref_random")}
    return {"gain": gain, **shares}


def variant_styles(names) -> dict:
    """{variant: (colour, hatch, marker)} in registry order per part (`ref_*` or not): tab10, then 10 hatched hues."""
    import matplotlib
    hues = list(matplotlib.colormaps["tab10"].colors) + ["#000080", "#e6b800", "#006d6d", "#c000c0", "#7fd000",
                                                         "#800000", "#ff9999", "#666600", "#00cc99", "#996633"]
    styles = {}
    for part in (True, False):
        others = [v for v in E.variant_order(list(VARIANTS) + list(names))
                  if is_reference(v) == part and v not in ("sasrec", "ref_sasrec")]
        if len(others) > 30:
            raise ValueError(f"variant_styles: {len(others)} variants, only 30 distinct styles")
        styles |= {v: (hues[i % 20], ("", "///", "...")[i // 10], "osD"[i // 10]) for i, v in enumerate(others)}
    return {v: ("black", "", "o") if v in ("sasrec", "ref_sasrec") else styles[v] for v in names}


def paint_bars(bars, variants):
    """Give each bar (one per variant, in order) its variant's colour and hatch (`variant_styles`)."""
    styles = variant_styles(variants)
    for bar, variant in zip(bars, variants):
        bar.set(facecolor=styles[variant][0], hatch=styles[variant][1])


def is_reference(variant: str) -> bool:
    """Whether a variant runs the reference preset (`ref_*`): the rule that splits a results file's
    rows between notebook 07's Part I (these) and Part II (the others)."""
    return variant.startswith("ref_")


def reference_rows(runs: pd.DataFrame, max_len: int = 20) -> pd.DataFrame:
    """The reference-preset rows of one results file at one window."""
    return runs[runs["variant"].map(is_reference) & (runs["max_len"] == max_len)]


def reference_grid(runs: pd.DataFrame, ranks: dict, max_len: int = 20, metric: str = "NDCG@20",
                   level: float = I.LEVEL) -> tuple:
    """(RunGrid of one results file's reference-preset rows with the decomposition pairs, its semantic
    variant, the cosine variant chosen on validation): the semantic variant is ref_llm where the items
    have text, else ref_collab; pairs whose runs are missing land in the grid's `not_possible`."""
    reference = reference_rows(runs, max_len)
    semantic = "ref_llm" if (reference["variant"] == "ref_llm").any() else "ref_collab"
    cosine = chosen_on_validation(reference, [v for v in VARIANTS if v.startswith("ref_llm_cos")])
    best = chosen_on_validation(reference, [v for v in VARIANTS if is_reference(v)])
    grid = RunGrid(reference, ranks, max_len, reference_comparisons(semantic, cosine, best), metric, level)
    return grid, semantic, cosine


def plot_means(grids: dict, variants, metric: str = "NDCG@20"):
    """One panel per results file: test `metric` of each variant that ran there, mean over seeds with
    the seed std, in the variant's own colour; a dashed line at SASRec's mean."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 0.32 * len(variants) + 1.6), squeeze=False)
    for ax, (name, grid) in zip(axes[0], grids.items()):
        shown = [v for v in variants if v in grid.summary.index]
        means, stds = grid.summary.loc[shown, metric], grid.summary.loc[shown, f"{metric} std"].fillna(0)
        paint_bars(ax.barh(shown, means, xerr=stds, capsize=2, error_kw={"ecolor": "gray"}), shown)
        if "ref_sasrec" in shown:
            ax.axvline(means["ref_sasrec"], color="black", linestyle="--", linewidth=1)
        ax.set(title=name, xlabel=f"test {metric}")
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_changes(tests: pd.DataFrame, title: str):
    """Each comparison (rows: `A vs B`), one panel per results file, each on its own x scale: A's change
    relative to B in %, with the interval of the difference (`decisions`: over seeds and users)."""
    import matplotlib.pyplot as plt
    labels = list(dict.fromkeys(tests["A"] + " vs " + tests["B"]))
    files = list(dict.fromkeys(tests["dataset"]))
    fig, axes = plt.subplots(1, len(files), sharey=True, squeeze=False,
                             figsize=(3.6 * len(files) + 2.6, 0.4 * len(labels) + 1.6))
    for i, (ax, name, marker) in enumerate(zip(axes[0], files, "osD^v")):
        frame = tests[tests["dataset"] == name]
        y = np.array([labels.index(f"{a} vs {b}") for a, b in zip(frame["A"], frame["B"])])
        low, high = 100 * frame["ci_low"] / frame["mean_b"], 100 * frame["ci_high"] / frame["mean_b"]
        ax.errorbar(frame["rel_change_%"], y, xerr=[frame["rel_change_%"] - low, high - frame["rel_change_%"]],
                    fmt=marker, color=f"C{i}", capsize=2)
        ax.axvline(0, color="black", linewidth=1)
        ax.set(title=name, xlabel=f"change of test {tests['metric'].iloc[0]} vs B, %")
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"{title}\n(bar: interval over seeds and users at the question's level; each panel its own scale)")
    fig.tight_layout()
    return fig


def gain_sentence(grid: RunGrid, semantic: str, name: str = "") -> str:
    """`surviving_gain` in words, for one results file (`name: ` in front when given); only where the
    primary question found a gain (a share of a gain the runs cannot establish means nothing)."""
    shares, decided = surviving_gain(grid, semantic), grid.decision_of(semantic, "ref_sasrec")
    name = f"{name}: " if name else ""
    if decided is None or decided["decision"] != "gain":
        outcome = f"{decided['decision']} under the rule" if decided else "not tested"
        return (f"{name}{semantic} vs SASRec: {outcome} (difference of the means {shares['gain']:+.4f} test "
                f"{grid.metric}), so there is no established gain to decompose.")
    user, random = shares[f"{semantic}_user"], shares["ref_random"]
    return (f"{name}{semantic} gains {shares['gain']:+.4f} test {grid.metric} over SASRec (means over seeds); "
            f"{user:.0%} of that gain remains without the user's own prefixes and {random:.0%} with random "
            "neighbours instead of semantic ones.")


def view_of(ds, name: str):
    """The dataset `ds` itself, or its sparse view when `name` is `<ds.name>-lastN` (results_grid.py
    --train-last N); None for a results file of another dataset."""
    if name == ds.name:
        return ds
    base, _, last = name.rpartition("-last")
    return ds.training_tail(int(last)) if base == ds.name and last.isdigit() else None


def regime_decisions(regimes: dict) -> pd.DataFrame:
    """The decisions of every regime ({name: reference_grid(...)}) in one frame with a `dataset` column;
    empty, with its columns, when there is no regime."""
    columns = ["dataset", "A", "B", "question", "metric"] + I.DECISION_FIELDS + ["wilcoxon_p"]
    frames = [grid.decisions.assign(dataset=name) for name, (grid, _, _) in regimes.items()]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def pairs_in(tests: pd.DataFrame, pairs) -> pd.DataFrame:
    """The rows of `tests` whose (A, B) is one of `pairs`."""
    return tests.loc[np.array([pair in pairs for pair in zip(tests["A"], tests["B"])], dtype=bool)]


def searched_grid(runs: pd.DataFrame, ranks: dict, semantic: str, max_len: int = 20, metric: str = "NDCG@20",
                  level: float = I.LEVEL) -> tuple:
    """An equal-budget search (results_grid.py --set: rows named `<variant>@<setting>=<value>,...`) read as
    (search table, RunGrid): per method, the trials at the first seed and the one with the best validation
    metric there; the grid holds each chosen configuration under the method's own name, with all its seeds,
    and tests the first four pairs of `reference_comparisons(semantic)` (the primary question first). A
    method whose choice has not run beyond the search seed yet stays out of the grid (its pairs land in
    `not_possible`)."""
    runs = runs[runs["max_len"] == max_len].assign(method=lambda r: r["variant"].str.split("@").str[0])
    first, selection = runs["seed"].min(), f"valid_{runs['valid_metric'].iloc[0]}"
    trials = runs[runs["seed"] == first]
    chosen = trials.loc[trials.groupby("method")[selection].idxmax(), ["method", "variant", selection]]
    chosen["trials"] = chosen["method"].map(trials.groupby("method").size())
    chosen["seeds"] = chosen["variant"].map(runs.groupby("variant")["seed"].nunique())
    chosen["largest best epoch"] = chosen["variant"].map(runs.groupby("variant")["best_epoch"].max())
    chosen["epochs cap"] = chosen["variant"].map(runs.groupby("variant")["epochs"].max())
    kept = runs[runs["variant"].isin(chosen.loc[chosen["seeds"] > 1, "variant"])]
    renamed = {E.rank_key(m, s, max_len): ranks[E.rank_key(v, s, max_len)]
               for v, m, s in zip(kept["variant"], kept["method"], kept["seed"])}
    picked = kept.assign(variant=kept["method"]).drop(columns="method")
    pairs = reference_comparisons(semantic)[:4]
    return chosen.set_index("method"), RunGrid(picked, renamed, max_len, pairs, metric, level)
