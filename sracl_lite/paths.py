"""Where files live, in one place.

Everything a run writes or downloads goes under one data folder: $SRACL_DATA_DIR if set, else the
repository's data/. Results grids that the README quotes live in the repository's results/.
"""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"   # scripts/results_grid.py writes here by default; notebook 07 reads here
COMMITTED_PROFILES = REPO / "data" / "profiles"  # the LLM answers that come with the repository


def data_dir(override=None) -> Path:
    return Path(override or os.environ.get("SRACL_DATA_DIR") or REPO / "data")


def processed_dir(dataset: str, override=None) -> Path:
    """A dataset's artefact, tables and saved metrics: data/processed/<dataset>."""
    return data_dir(override) / "processed" / dataset


def profiles_dir(dataset: str = None, override=None) -> Path:
    """LLM answers, one folder per model and setting: data/profiles/<dataset>/<tag> (where new answers
    are written; reading also finds the committed ones, see profile_roots)."""
    root = data_dir(override) / "profiles"
    return root / dataset if dataset else root


def profile_roots() -> list:
    """Where answers are read from: the data folder's, then the committed ones when the data folder is
    elsewhere (SRACL_DATA_DIR, a mounted Drive folder on Colab), so that they are never hidden."""
    roots = [profiles_dir()]
    return roots + [COMMITTED_PROFILES] if COMMITTED_PROFILES.resolve() != roots[0].resolve() else roots


def embedding_cache_dir() -> Path:
    """Text embeddings, keyed by encoder and text (shared by datasets: the key holds the text)."""
    return data_dir() / "processed" / "embedding_cache"


def metrics_dir(dataset: str) -> Path:
    """Metrics notebooks 04-06 save for notebook 07."""
    return processed_dir(dataset) / "metrics"
