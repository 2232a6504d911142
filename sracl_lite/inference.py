"""How every verdict of notebook 07 is decided, stated once.

A result is a mean over users of models that came out of training runs, and both are samples: other
users would give other numbers, and so would another seed (initial weights, dropout masks, batch
order). A per-user test with each user's metric averaged over seeds (`evaluation.paired_test`,
Wilcoxon) holds the trained models fixed, so it answers "do these particular models differ on these
users", not "does the method differ". The test here resamples both (a two-stage bootstrap): each
draw picks each variant's seeds with replacement, independently (A's and B's runs are separate
trainings), and one set of user weights shared by A and B (users stay paired), then takes the
difference of the weighted means.

The rule, fixed before the runs it judges:
- **Primary question**, one per regime: the authors' design against SASRec (in a grid of this
  project's default preset: SRA-CL against its backbone). Tested alone at LEVEL: a gain or a loss
  when the (1 - LEVEL) interval of the mean difference excludes 0 (equivalently p < LEVEL).
- **Secondary questions** of the same regime (ablations, other baselines): the same test at
  LEVEL / m, m = their number (Bonferroni), with intervals at 1 - LEVEL / m, so that an interval
  that excludes 0 and a p-value under the level always go together.
- **Equivalence** (the claim "no difference"): the (1 - 2 level) interval inside +-MARGIN of B's
  mean (two one-sided tests). A difference that is neither significant nor equivalent is
  **undecided**: the runs cannot tell.
With 3 seeds a variant's resampled seeds take few distinct values and the interval understates the
run-to-run spread: 3-seed verdicts are provisional; the primary variants get 10 seeds.
Wilcoxon p-values stay beside them as a secondary view (it tests a shift of users' values given
these models; on metrics where most users score 0 it can disagree with the mean).
"""
import zlib
from dataclasses import dataclass

import numpy as np

from .metrics import per_user_metrics

LEVEL = 0.05
MARGIN = 0.05        # equivalence margin: 5% of the baseline's mean, set before the 10-seed runs
N_DRAWS = 10_000
CHUNK = 500          # user-weight draws made at once (memory: CHUNK x users float64)

DECISION_FIELDS = ["family", "level", "n_seeds_a", "n_seeds_b", "mean_a", "mean_b", "diff", "rel_change_%",
                   "ci_low", "ci_high", "p", "eq_low", "eq_high", "decision"]


def seed_user_draws(runs: dict, metric: str = "NDCG@20", n_draws: int = N_DRAWS, seed: int = 0) -> tuple:
    """({variant: (n_seeds, n_draws)}, {variant: (n_seeds,)}): each seed's mean of `metric` over users
    under bootstrap user weights, the same weights for every variant (Poisson(1) weights: a bootstrap
    of the users that needs no index arrays), and each seed's plain mean over users.
    runs: {variant: [per-user rank arrays, one per seed]}."""
    values = {v: np.stack([per_user_metrics(r)[metric].to_numpy() for r in ranks]) for v, ranks in runs.items()}
    users = {m.shape[1] for m in values.values()}
    if len(users) != 1:
        raise ValueError(f"seed_user_draws: runs rank different numbers of users {sorted(users)}")
    n_users, rng = users.pop(), np.random.default_rng(seed)
    draws = {v: np.empty((len(m), n_draws)) for v, m in values.items()}
    for start in range(0, n_draws, CHUNK):
        weights = rng.poisson(1.0, size=(min(CHUNK, n_draws - start), n_users)).astype(np.float64)
        weights /= weights.sum(axis=1, keepdims=True)
        for v, m in values.items():
            draws[v][:, start:start + len(weights)] = m @ weights.T
    return draws, {v: m.mean(axis=1) for v, m in values.items()}


def resampled_means(draws: np.ndarray, rng) -> np.ndarray:
    """(n_draws,) means over a with-replacement pick of the seeds, one pick per draw."""
    n_seeds, n_draws = draws.shape
    picks = rng.integers(0, n_seeds, size=(n_draws, n_seeds))
    return draws[picks, np.arange(n_draws)[:, None]].mean(axis=1)


@dataclass
class SeedUserBootstrap:
    """The draws of one regime's variants; `compare(a, b, level)` tests A - B under the rule above."""
    draws: dict          # variant -> (n_seeds, n_draws)
    seed_means: dict     # variant -> (n_seeds,) plain means over users
    seed: int = 0

    @classmethod
    def of(cls, runs: dict, metric: str = "NDCG@20", n_draws: int = N_DRAWS, seed: int = 0):
        return cls(*seed_user_draws(runs, metric, n_draws, seed), seed)

    def differences(self, a: str, b: str) -> np.ndarray:
        """(n_draws,) bootstrap draws of mean(A) - mean(B); the seeds' picks depend on the pair only."""
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{a}|{b}".encode())])
        return resampled_means(self.draws[a], rng) - resampled_means(self.draws[b], rng)

    def compare(self, a: str, b: str, level: float = LEVEL, family: str = "primary", margin: float = MARGIN) -> dict:
        """DECISION_FIELDS of A vs B: means over seeds and users, the interval at 1 - level, the two-sided
        bootstrap p, the equivalence interval at 1 - 2 level and the decision in one word."""
        d = self.differences(a, b)
        mean_a, mean_b = float(self.seed_means[a].mean()), float(self.seed_means[b].mean())
        low, high = np.quantile(d, [level / 2, 1 - level / 2])
        eq_low, eq_high = np.quantile(d, [level, 1 - level])
        p = min(1.0, 2 * (min((d <= 0).sum(), (d >= 0).sum()) + 1) / (len(d) + 1))
        if low > 0 or high < 0:
            decision = "gain" if low > 0 else "loss"
        elif -margin * mean_b < eq_low and eq_high < margin * mean_b:
            decision = "equivalent"
        else:
            decision = "undecided"
        return {"family": family, "level": level, "n_seeds_a": self.draws[a].shape[0],
                "n_seeds_b": self.draws[b].shape[0], "mean_a": mean_a, "mean_b": mean_b, "diff": mean_a - mean_b,
                "rel_change_%": 100 * (mean_a / mean_b - 1) if mean_b else np.nan, "ci_low": float(low),
                "ci_high": float(high), "p": p, "eq_low": float(eq_low), "eq_high": float(eq_high),
                "decision": decision}


def family_levels(n_secondary: int, level: float = LEVEL) -> tuple:
    """(primary level, secondary level): the primary alone, the secondaries Bonferroni-corrected."""
    return level, level / max(1, n_secondary)


def decision_sentence(result: dict, name_a: str, name_b: str, metric: str = "NDCG@20") -> str:
    """One verdict in words from `compare`, with the numbers that decided it."""
    confidence = f"{100 * (1 - result['level']):.4g}%"
    numbers = (f"{result['mean_a']:.4f} vs {result['mean_b']:.4f}, {result['rel_change_%']:+.1f}%, {confidence} "
               f"interval over seeds and users [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}], p = "
               f"{result['p']:.3g}, {int(result['n_seeds_a'])} vs {int(result['n_seeds_b'])} seeds")
    said = {"gain": f"{name_a} beats {name_b}",
            "loss": f"{name_a} is worse than {name_b}",
            "equivalent": f"{name_a} and {name_b} are equivalent within +-{MARGIN:.0%}",
            "undecided": f"undecided: the runs cannot tell {name_a} from {name_b}, nor show them equal within "
                         f"+-{MARGIN:.0%}"}[result["decision"]]
    return f"{said} on test {metric} ({result['family']} question; {numbers})."
