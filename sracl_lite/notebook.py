"""Small helpers every notebook uses: parameters, seeds, device, saved results.

Notebooks keep one parameters cell; each value there can be overridden with an environment
variable `SRACL_<NAME>` so that tests, GPU runs and readers change settings without editing cells.
"""
import difflib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from . import paths

OVERRIDDEN = {}   # parameters whose SRACL_<NAME> changed the default: name -> value
# Every name a notebook's parameters cell reads (tests/test_notebook_helpers.py checks the list
# against the notebooks), and the variables read elsewhere: where the data live, what Colab
# clones, the commit the results grid records. Any other SRACL_* variable is a typo.
NOTEBOOK_PARAMETERS = {
    "alpha", "batch_size", "beauty", "beta", "dataset", "device", "dtype", "encoder", "generate_all",
    "interactions", "items", "k", "length_edges", "level", "max_len", "metric", "min_item_interactions",
    "min_user_interactions", "model",
    "n_live", "n_probes", "prefix_users", "profile", "profile_dir", "reference_epochs",
    "reference_prefixes", "regimes", "results_dir",
    "seed",
    "semantic_tables", "sub_prob"}
OTHER_VARIABLES = {"data_dir", "repo_url", "git_commit"}


def check_variables(environ=os.environ):
    """Fail on an SRACL_* variable that nothing reads (a typo would otherwise be ignored silently)."""
    known = NOTEBOOK_PARAMETERS | OTHER_VARIABLES
    for variable in sorted(environ):
        name = variable[len("SRACL_"):].lower()
        if variable.startswith("SRACL_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean SRACL_{close[0].upper()}? " if close else ""
            raise ValueError(f"{variable} is set but no notebook reads it; {hint}the parameters are "
                             f"{', '.join('SRACL_' + n.upper() for n in sorted(NOTEBOOK_PARAMETERS))}")


def param(name: str, default):
    """The value of SRACL_<NAME> if set (converted to default's type), else default."""
    check_variables()
    raw = os.environ.get(f"SRACL_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"SRACL_{name.upper()}={raw!r}: expected true or false")
        value = raw.lower() in ("1", "true", "yes")
    else:
        try:
            value = type(default)(raw) if default is not None else raw
        except ValueError:
            raise ValueError(f"SRACL_{name.upper()}={raw!r}: expected a {type(default).__name__}") from None
    if value != default:
        OVERRIDDEN[name] = value
    return value


def check_stored(values: dict, stored: dict, tol: float):
    """Assert that each number is within `tol` of the stored run's value (notebooks 03-07).

    Numbers from training and from near-tied retrieval differ in their last digits between CPUs,
    thread counts and math-library paths, so the cells that print them are hidden from nbval and
    the numbers are checked here instead. The stored values belong to the default parameters;
    with any SRACL_* override there is nothing to compare with, and the check says so.
    """
    if OVERRIDDEN:
        print(f"stored values are for the default parameters; not compared under {OVERRIDDEN}")
        return
    missing = sorted(set(stored) - set(values))
    if missing:
        raise KeyError(f"check_stored: no value given for {missing}")
    off = {name: (float(values[name]), want) for name, want in stored.items()
           if not abs(float(values[name]) - want) <= tol}
    if off:
        detail = "; ".join(f"{name}: {got:.6g}, stored {want}" for name, (got, want) in off.items())
        raise AssertionError(f"{len(off)} of {len(stored)} numbers differ from the stored run by more than "
                             f"{tol}: {detail}")


def expect(holds, finding: str):
    """A finding of the stored default run (for example "SASRec beats popularity"): asserted there.

    Under SRACL_* overrides (your own data, another budget) it may rightly not hold, so it is
    reported instead of asserted. Invariants (a leak, a wrong shape) stay plain asserts.
    """
    if not OVERRIDDEN:
        assert holds, finding
    else:
        print(f"{'holds' if holds else 'DOES NOT HOLD'} here (the default run asserts it): {finding}")


def set_seed(seed: int):
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_metrics(dataset: str, variant: str, metrics: dict, folder=None) -> Path:
    """Write one run's metrics where notebook 07 looks for them."""
    path = Path(folder or paths.metrics_dir(dataset)) / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=1, default=float))
    return path


def load_metrics(dataset: str, folder=None) -> dict:
    folder = Path(folder or paths.metrics_dir(dataset))
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no saved metrics; run notebooks 04-06 first")
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
