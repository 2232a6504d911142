"""Small helpers every notebook uses: parameters, seeds, device, saved results.

Notebooks keep one parameters cell; each value there can be overridden with an environment
variable `SRACL_<NAME>` so that tests, GPU runs and readers change settings without editing cells.
"""
import difflib
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import paths

OVERRIDDEN = {}   # parameters whose SRACL_<NAME> changed the default: name -> value
READ = {}         # every parameter this notebook read: name -> its SRACL_<NAME> text, or None (the default)
# Every name a notebook's parameters cell reads (tests/test_notebook_helpers.py checks the list
# against the notebooks), and the variables read elsewhere: where the data live, what Colab
# clones, the commit the results grid records. Any other SRACL_* variable is a typo.
NOTEBOOK_PARAMETERS = {
    "alpha", "batch_size", "beauty", "beta", "cpu_epochs", "cpu_prefixes", "dataset", "device", "dtype", "encoder",
    "generate_all",
    "interactions", "items", "k", "length_edges", "level", "max_len", "max_new_tokens", "metric",
    "min_item_interactions", "min_user_interactions", "model",
    "n_live", "n_probes", "prefix_users", "profile", "profile_dir",
    "regimes", "results_dir",
    "seed",
    "semantic_tables", "sub_prob"}
OTHER_VARIABLES = {"data_dir", "repo_url", "colab_dir", "git_commit"}


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
    READ[name] = raw
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
    import torch  # here, not at the top: the parameters cell and scripts/run_notebooks.py then start a second sooner
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


# The earlier notebooks whose files a notebook reads. Notebook 01's dataset is rebuilt by
# data.load_dataset wherever it is missing, and notebook 02 writes files only with
# SRACL_GENERATE_ALL (notebook 03 then names the answers it lacks), so neither is listed.
NEEDS = {"05": ("03", "04"), "06": ("03", "04", "05"), "07": ("04", "05", "06")}
# Minutes a notebook takes: 2-core CPU (default profile) and one H200 (SRACL_PROFILE=paper, the step's
# first compile included), as measured (README, The notebooks).
MINUTES = {"03": (2, 0.3), "04": (0.5, 1), "05": (1.5, 2.5), "06": (1.5, 2), "07": (0.5, 0.5)}


def _finished_path(number: str, dataset: str) -> Path:
    return paths.processed_dir(dataset) / "notebooks" / f"{number}.json"


def earlier_notebooks(number: str) -> list:
    """Every notebook `number` needs, directly or through another, in the order they run."""
    found = set(NEEDS.get(number, ()))
    for need in NEEDS.get(number, ()):
        found |= set(earlier_notebooks(need))
    return sorted(found)


def _record(number: str, dataset: str):
    """The notebook's finished record if it holds for the current settings and for the records of the
    notebooks it read, else None (never run, other SRACL_* values, or an input made again since)."""
    path = _finished_path(number, dataset)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if any(os.environ.get(f"SRACL_{name.upper()}") != raw for name, raw in record["parameters"].items()):
        return None
    for need in NEEDS.get(number, ()):
        earlier = _record(need, dataset)
        if earlier is None or record["needs"].get(need) != earlier["key"]:
            return None
    return record


def mark_finished(number: str, dataset: str):
    """Record that notebook `number` ran to its end with the parameters it read (its last cell), so
    that a later notebook opened alone knows that its files are there and are of these settings."""
    records = {need: _record(need, dataset) for need in NEEDS.get(number, ())}
    needs = {need: record["key"] for need, record in records.items() if record}
    record = {"notebook": number, "parameters": dict(sorted(READ.items())), "needs": needs}
    record["key"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    path = _finished_path(number, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def run_earlier_notebooks(number: str, dataset: str):
    """Make the files of the earlier notebooks this one reads, where they are missing or are of other
    settings: each such notebook runs whole as a script, as it would in order (its output goes to a
    log beside its record). A notebook opened alone, on a fresh Colab runtime for example, thus reads
    the same files as after running the notebooks in order."""
    earlier = earlier_notebooks(number)
    todo = [need for need in earlier if _record(need, dataset) is None]
    found = [need for need in earlier if need not in todo]
    if found:
        print(f"files of notebook{'s' * (len(found) > 1)} {', '.join(found)} found, made with these settings")
    for need in todo:
        script = next((paths.REPO / "notebooks").glob(f"{need}_*.py"))
        log = _finished_path(need, dataset).with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        cpu, gpu = MINUTES[need]
        print(f"running notebook {script.stem} (about {cpu:g} min on a 2-core CPU, {gpu:g} min on one H200 "
              f"with SRACL_PROFILE=paper) ...", end=" ", flush=True)
        started = time.time()
        env = {**os.environ, "MPLBACKEND": "Agg",
               "PYTHONPATH": os.pathsep.join([str(paths.REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        with open(log, "w") as out:
            done = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        if done.returncode != 0 or _record(need, dataset) is None:
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            raise RuntimeError(f"notebook {script.stem} failed; its whole output is in {log}. Last lines:\n{tail}")
        print(f"done in {time.time() - started:.0f} s")
