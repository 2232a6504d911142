"""Train a grid of variants x seeds x datasets and record every run for notebook 07.

Each run appends (or replaces) one row of results/<dataset>.csv: every metric on validation and
test, best epoch, epochs run, training seconds, the settings, and where it ran (command, git
commit, python/torch versions, device, date). Per-user test ranks go to
results/<dataset>_ranks.npz (keys `<variant>/max_len<L>/seed<k>`) for paired tests and the
sparsity view. A row is identified by (variant, max_len, seed) and records a hash of what the run
computes (`settings_hash`: its settings, data and tables). A command run again skips the runs
recorded with the same hash (--force trains them again) and trains the rest, replacing rows of
other settings and keeping all others. Each run is recorded whole when it ends; until then its
training state after every epoch sits in <out>/.unfinished/, so a killed command, run again,
resumes its interrupted runs from their last epoch. Variants are defined in
sracl_lite/experiments.py (VARIANTS), profiles in sracl_lite/experiments.py (PROFILES, shared
with notebooks 04-06). --set NAME=V1,V2 makes a search: every combination of the values trains
as its own configuration, named <variant>@NAME=V,... (see results/README.md).

Examples (from the repository root; results/README.md lists the exact grid commands; the Beauty
file is the SRA-CL authors' data/Beauty/Beauty.txt, copied to data/raw/amazon_beauty_ids.txt):
    .venv/bin/python scripts/results_grid.py --variants sasrec cl4srec --seeds 1 2 --profile cpu
    .venv/bin/python scripts/results_grid.py --dataset ml-100k --variants all --seeds 1 2 3 4 5 \\
        --profile paper --device cuda --workers 14
    .venv/bin/python scripts/results_grid.py --dataset ids --data-path data/raw/amazon_beauty_ids.txt \\
        --variants sasrec --seeds 1 2 3 --max-len 20 50 --profile paper --device cuda --workers 3
"""
import argparse
import ast
import concurrent.futures as futures
import datetime
import fcntl
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package

from sracl_lite.data import file_sha256
from sracl_lite.sources import DATASET_NAMES
from sracl_lite.evaluation import merge_results, rank_key
from sracl_lite.experiments import PRESETS, PROFILES, STEPS, VARIANTS, with_step  # PROFILES: notebooks 04-06's budgets
from sracl_lite.metrics import metric_names


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", nargs="+", default=["ml-100k"],
                        help="dataset names for sracl_lite.data.load_dataset; 'ids' needs --data-path; the name "
                             "of your own data needs --interactions and --items (the name keys its results)")
    parser.add_argument("--data-path", help="the 'user item' file of the 'ids' dataset (e.g. the Beauty benchmark); "
                                            "its results are named after the file (amazon_beauty_ids.txt -> "
                                            "amazon-beauty-ids)")
    parser.add_argument("--interactions", help="your own data: interactions CSV (user_id,item_id,timestamp)")
    parser.add_argument("--items", help="your own data: items CSV (item_id,title[,more text columns])")
    parser.add_argument("--variants", nargs="+", default=["sasrec"],
                        help=f"names from sracl_lite.experiments.VARIANTS, or 'all': {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1], help="training seeds (init, order, dropout)")
    parser.add_argument("--max-len", nargs="+", type=int, default=[20], help="one or more windows")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu",
                        help="training budget, as in notebooks 04-06: "
                             + "; ".join(f"{k}: {v or 'TrainConfig defaults'}" for k, v in PROFILES.items()))
    parser.add_argument("--epochs", type=int, help="override the profile's epoch budget")
    parser.add_argument("--patience", type=int, help="override the profile's early-stopping patience")
    parser.add_argument("--max-train-prefixes", type=int,
                        help="override the profile's prefix subset (0 = all prefixes)")
    parser.add_argument("--train-last", type=int, metavar="N",
                        help="the sparse view: every user's training sequence cut to its last N items "
                             "(results/<dataset>-lastN.csv; tables from scripts/build_tables.py --train-last N)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs in parallel processes (they share the device; with several GPUs and "
                             "--device cuda, runs go round-robin over the GPUs)")
    parser.add_argument("--step", choices=STEPS, default="fast",
                        help="CUDA: fast (default): each run's whole training step, Adam included, as one CUDA graph "
                             "of torch.compile's fused kernels; captured: the graph without compiling; eager: "
                             "neither. A run that cannot take a part says why and leaves it out (CPU: always eager)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast on CUDA (default float32; bf16 made SRA-CL runs diverge)")
    parser.add_argument("--out", default=str(ROOT / "results"), help="folder of the CSV and ranks files")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=V1,V2",
                        help="a search: every combination of these TrainConfig values (model.NAME for the model's) "
                             "trains as its own configuration, named <variant>@NAME=V,... in the results")
    parser.add_argument("--force", action="store_true",
                        help="train runs again that are already recorded with the same settings (skipped otherwise)")
    parser.add_argument("--dry-run", action="store_true", help="check inputs and list the runs, train nothing")
    args = parser.parse_args(argv)
    if args.variants == ["all"]:
        args.variants = list(VARIANTS)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)} (or 'all')")
    own = [d for d in args.dataset if d not in DATASET_NAMES]
    if own and (len(args.dataset) > 1 or not (args.interactions and args.items)):
        parser.error(f"{own}: not a built-in dataset ({', '.join(DATASET_NAMES)}); for your own data give one "
                     "--dataset NAME with --interactions FILE --items FILE")
    if (args.interactions or args.items) and not own:
        parser.error("--interactions and --items belong to a dataset of your own: name it with --dataset NAME")
    if "ids" in args.dataset and not args.data_path:
        parser.error("--dataset ids needs --data-path (a file of 'user item' lines, oldest first)")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    try:
        args.configurations = search_configurations(args.set)
    except ValueError as error:
        parser.error(str(error))
    return args


# Settings a search may not vary: they say where and how a run executes, or are set per run already.
NOT_SEARCHED = ("seed", "max_len", "model", "epochs", "patience", "max_train_prefixes", "unique_candidates")


def search_configurations(settings) -> list:
    """["lr=1e-3,5e-4", "model.dropout=0.2,0.5"] -> [{} ] without settings, else one dict of values for
    every combination; names are TrainConfig fields or model.<ModelConfig field>."""
    from sracl_lite.experiments import EXECUTION_FIELDS, TrainConfig
    from sracl_lite.model import ModelConfig
    allowed = [f for f in TrainConfig.__dataclass_fields__ if f not in EXECUTION_FIELDS + NOT_SEARCHED]
    allowed += [f"model.{f}" for f in ModelConfig.__dataclass_fields__ if f != "backbone"]
    axes = []
    for setting in settings:
        name, _, values = setting.partition("=")
        if name not in allowed or not values:
            raise ValueError(f"--set {setting!r}: give NAME=V1,V2 with NAME one of {', '.join(allowed)}")
        axes.append([(name, parse_value(v)) for v in values.split(",")])
    return [dict(combination) for combination in itertools.product(*axes)]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text          # a word, such as cosine


def configuration_name(variant: str, overrides: dict) -> str:
    """The results name of a variant with searched values: ref_sasrec@lr=0.0005,model.dropout=0.2."""
    return variant + ("@" + ",".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "")


def results_name(dataset: str, data_path) -> str:
    return Path(data_path).stem.replace("_", "-") if dataset == "ids" else dataset


def load_kwargs(dataset: str, args) -> dict:
    """The files load_dataset reads: the id file of 'ids', or your own CSV pair."""
    if dataset == "ids":
        return {"interactions_path": str(Path(args.data_path).resolve())}
    if dataset not in DATASET_NAMES:
        return {"interactions_path": str(Path(args.interactions).resolve()),
                "items_path": str(Path(args.items).resolve())}
    return {}


def check_tables(dataset: str, artefact_dir: Path, variants) -> dict:
    """{variant: tables path or None}; a clear error when a variant's tables cannot exist or are missing."""
    semantic = [v for v in variants if VARIANTS[v]["tables"]]
    paths = {}
    if semantic:
        from sracl_lite.retrieval import tables_path   # imports faiss: only when tables are needed
    for v in variants:
        name = VARIANTS[v]["tables"]
        paths[v] = tables_path(artefact_dir, name) if name else None
        if paths[v] is None or paths[v].exists():
            continue
        if name.startswith("reference_"):
            how = (f"scripts/build_tables.py --dataset {dataset} (from notebook 03's item embeddings, or from "
                   "interactions alone for the collaborative and random sources)")
        elif dataset == "ids":
            how = ("nothing: dataset 'ids' has no item text. ID variants and the reference variants with "
                   "collaborative or random tables (scripts/build_tables.py) apply there")
        else:
            how = (f"notebook 03 (notebooks/03_semantic_retrieval; SRACL_DATASET={dataset}); 'llm_text' also "
                   "needs notebook 02's LLM profiles")
        raise SystemExit(f"variant '{v}' needs the semantic tables '{name}' of {dataset}, expected at {paths[v]}, "
                         f"which does not exist. Build them with {how}.")
    return paths


def git_commit() -> str:
    # A copy of the tree without .git (e.g. on a rented GPU machine) is told its commit by the caller.
    if os.environ.get("SRACL_GIT_COMMIT"):
        return os.environ["SRACL_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device) -> str:
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} CPU thread(s)"


def train_config(job: dict, device):
    """The run's TrainConfig: the variant's preset and settings on the profile's budget."""
    from sracl_lite.experiments import TrainConfig
    from sracl_lite.model import ModelConfig

    settings = dict(VARIANTS[job["variant"]]["config"])
    backbone = settings.pop("backbone", "sasrec")
    preset = dict(PRESETS[settings.pop("preset", "default")])   # the reference's method settings, or ours
    searched = {k: v for k, v in job["overrides"].items() if not k.startswith("model.")}
    searched_model = {k[len("model."):]: v for k, v in job["overrides"].items() if k.startswith("model.")}
    model = ModelConfig(**{**preset.pop("model", {}), **searched_model, "backbone": backbone})
    return TrainConfig(**{**preset, **job["profile_settings"], **settings, **searched, "model": model,
                          "max_len": job["max_len"], "seed": job["seed"], "device": str(device), "bf16": job["bf16"],
                          "progress": job["progress"]})


def settings_hash(job: dict, data_hash: str) -> str:
    """What a run computes, as 12 hex digits: its computed settings, the data and the tables' bytes.
    A recorded row with the same key and hash is this run already done (main skips it)."""
    settings = train_config(job, "cpu").computed_settings()
    settings.update(data_hash=data_hash, train_last=job["train_last"],
                    tables_sha256=file_sha256(job["tables_path"]) if job["tables_path"] else None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_one(job: dict):
    """Train one (dataset, variant, seed, max_len) run; returns (CSV row, test ranks). Runs in a worker."""
    import torch
    from sracl_lite.data import load_dataset
    from sracl_lite.semantic import SemanticTables
    from sracl_lite.model import resolve_device
    from sracl_lite.training import Trainer

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    started = time.perf_counter()
    ds = load_dataset(job["dataset"], **job["load_kwargs"])
    if job["train_last"]:
        ds = ds.training_tail(job["train_last"])
    spec = VARIANTS[job["variant"]]
    device = resolve_device(job["device"])
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)  # this process's own GPU; CUDA graphs and caches stay on it
    config = train_config(job, device)
    backbone = config.model.backbone
    config = with_step(config, job["step"], say=lambda reason: print(f"{job['label']} seed {job['seed']}: {reason}"))
    tables = None
    if job["tables_path"]:
        tables = SemanticTables.load(job["tables_path"])
        tables.check_fits(ds.n_users, ds.n_items)
    trainer = Trainer(ds, config, tables)
    result = trainer.fit(state_path=job["state_path"])   # a run killed before resumes from its last epoch

    row = {"dataset": job["name"], "variant": job["label"], "max_len": job["max_len"], "seed": job["seed"],
           "role": spec["role"], "description": spec["description"], "backbone": backbone,
           "tables": spec["tables"] or "none",
           "tables_sha256": file_sha256(job["tables_path"])[:12] if job["tables_path"] else "none",
           "alpha": config.alpha, "beta": config.beta, "synthesizer": config.synthesizer if config.alpha > 0 else "off",
           "intra_aug": config.intra_aug if config.uses_intra else "off", "profile": job["profile"],
           "epochs": config.epochs, "patience": config.patience,
           "max_train_prefixes": config.max_train_prefixes or 0, "unique_candidates": config.unique_candidates,
           "valid_metric": config.valid_metric, "exclude_history": config.exclude_history,
           "cross_loss": config.cross_loss if config.alpha > 0 else "off", "synth_init": config.synth_init,
           "pool_match": config.pool_match, "early_stop": config.early_stop,
           "similarity": config.similarity, "temperature": config.temperature, "settings_hash": job["settings_hash"],
           "searched": ",".join(f"{k}={v}" for k, v in job["overrides"].items()) or "none"}
    row.update({f"valid_{m}": result.valid[m] for m in metric_names()})
    row.update({f"test_{m}": result.test[m] for m in metric_names()})
    row.update({"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                "train_seconds": round(result.train_seconds, 2),
                "run_seconds": round(time.perf_counter() - started, 2),
                "n_users": ds.n_users, "n_items": ds.n_items, "data_hash": ds.content_hash()[:12],
                "device": str(device), "device_name": device_name(device), "compile": config.compile or "none",
                "cuda_graph": config.cuda_graph,
                "bf16": trainer.amp,
                "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                "git_commit": job["git_commit"], "command": job["command"],
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return row, np.asarray(result.test_ranks, dtype=np.int64)


@contextmanager
def locked(folder: Path):
    """An exclusive lock on the results folder, so two grid commands never merge into one file at once."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def atomic_write(path: Path, write):
    """write(tmp_path) then rename over `path`: a reader never sees a half-written file."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes owner-only files; results are for everyone to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def record(out: Path, name: str, row: dict, test_ranks: np.ndarray):
    """Merge one run into <out>/<name>.csv and <out>/<name>_ranks.npz (replacing an earlier run with its key)."""
    csv_path, ranks_path = out / f"{name}.csv", out / f"{name}_ranks.npz"
    with locked(out):
        existing = pd.read_csv(csv_path) if csv_path.exists() else None
        merged = merge_results(existing, pd.DataFrame([row]))
        ranks = {}
        if ranks_path.exists():
            with np.load(ranks_path) as f:
                ranks = {k: f[k] for k in f.files}
        ranks[rank_key(row["variant"], row["seed"], row["max_len"])] = test_ranks
        atomic_write(ranks_path, lambda p: np.savez_compressed(p, **ranks))
        atomic_write(csv_path, lambda p: merged.to_csv(p, index=False))


def check_same_data(out: Path, name: str, data_hash: str):
    """Refuse to mix runs on different versions of a dataset in one results file."""
    csv_path = out / f"{name}.csv"
    if csv_path.exists():
        hashes = set(pd.read_csv(csv_path, usecols=["data_hash"])["data_hash"].astype(str))
        if hashes - {data_hash}:
            raise SystemExit(f"{csv_path} holds runs on another version of {name} (data_hash {sorted(hashes)}, "
                             f"now {data_hash}); move that file away or use --out")


def already_recorded(out: Path, job: dict, force: bool) -> bool:
    """True (and says so) when <out>/<name>.csv holds this run with the same settings hash and --force
    is not given; a row of the same key with other settings, or without a hash, is trained again."""
    csv_path = out / f"{job['name']}.csv"
    if not csv_path.exists():
        return False
    rows = pd.read_csv(csv_path)
    rows = rows[(rows.variant == job["label"]) & (rows.max_len == job["max_len"]) & (rows.seed == job["seed"])]
    if rows.empty:
        return False
    run = f"{job['name']} {job['label']} max_len={job['max_len']} seed={job['seed']}"
    same = "settings_hash" in rows and (rows["settings_hash"].astype(str) == job["settings_hash"]).any()
    if same and not force:
        print(f"skipped {run}: recorded with the same settings ({job['settings_hash']}); --force trains it again")
        return True
    why = "--force" if same else "its recorded row has other settings, or none recorded"
    print(f"again {run}: {why}; the new run replaces the row")
    return False


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch
    from sracl_lite.data import load_dataset
    from sracl_lite.experiments import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(PROFILES[args.profile])
    for key in ("epochs", "patience", "max_train_prefixes"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key) or None   # --max-train-prefixes 0 means all
    overridden = TrainConfig(**settings) != TrainConfig(**PROFILES[args.profile])
    profile = args.profile + ("*" if overridden else "")  # * = a budget other than the named profile's
    command = "python scripts/results_grid.py " + shlex.join(argv)
    commit = git_commit()
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    threads = max(1, (os.cpu_count() or 1) // args.workers) if args.workers > 1 else 0
    if threads:  # each worker compiles on its share of the cores too (inductor starts one process per core)
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(threads))

    jobs = []
    for dataset in args.dataset:
        name, kwargs = results_name(dataset, args.data_path), load_kwargs(dataset, args)
        ds = load_dataset(dataset, **kwargs)        # built once here, before any worker reads it
        if args.train_last:
            ds, name = ds.training_tail(args.train_last), f"{name}-last{args.train_last}"
        tables = check_tables(dataset, ds.artefact_dir, args.variants)
        data_hash = ds.content_hash()[:12]
        check_same_data(out, name, data_hash)
        # seed-major: a later seed's compiled step is then read from the compile cache, not compiled again
        for seed in args.seeds:
            for variant, overrides in itertools.product(args.variants, args.configurations):
                for max_len in args.max_len:
                    device = f"cuda:{len(jobs) % gpus}" if gpus > 1 else args.device
                    label = configuration_name(variant, overrides)
                    jobs.append(dict(dataset=dataset, name=name, load_kwargs=kwargs, variant=variant, seed=seed,
                                     overrides=overrides, label=label, max_len=max_len, device=device,
                                     step=args.step, bf16=args.bf16,
                                     train_last=args.train_last,
                                     profile=profile, profile_settings=settings, tables_path=str(tables[variant] or ""),
                                     threads=threads, progress=args.workers == 1, git_commit=commit,
                                     command=command))
                    jobs[-1]["settings_hash"] = settings_hash(jobs[-1], data_hash)
                    jobs[-1]["state_path"] = str(out / ".unfinished" / name / (
                        f"{label}-max_len{max_len}-seed{seed}-{jobs[-1]['settings_hash']}.pt"))
    recorded = [job for job in jobs if already_recorded(out, job, args.force)]
    for job in recorded:    # a kill between recording a run and removing its state leaves the state behind
        Path(job["state_path"]).unlink(missing_ok=True)
    jobs = [job for job in jobs if job not in recorded]
    print(f"{len(jobs)} runs to train, profile {profile} {settings}, {args.workers} worker(s), results in {out}")
    if args.dry_run:
        for job in jobs:
            print(f"  {job['name']} {job['label']} max_len={job['max_len']} seed={job['seed']} on {job['device']}")
        return 0

    failed = []

    def finish(job, outcome):
        try:
            row, test_ranks = outcome()
        except Exception:  # one failed run must not lose the others: report it and go on
            failed.append(job)
            print(f"FAILED {job['name']} {job['label']} max_len={job['max_len']} seed={job['seed']}:\n"
                  f"{traceback.format_exc()}", file=sys.stderr, flush=True)
            return
        record(out, job["name"], row, test_ranks)
        Path(job["state_path"]).unlink(missing_ok=True)   # recorded: the run is done and needs no resuming
        print(f"[{len(done) + 1}/{len(jobs)}] {row['dataset']} {row['variant']} max_len={row['max_len']} "
              f"seed={row['seed']}: test NDCG@20 {row['test_NDCG@20']:.4f} HR@20 {row['test_HR@20']:.4f} "
              f"(best epoch {row['best_epoch']}/{row['epochs_run']}, {row['train_seconds']:.0f} s)", flush=True)
        done.append(job)

    done = []
    if args.workers == 1:
        for job in jobs:
            finish(job, lambda: run_one(job))
    else:
        # spawn: CUDA cannot be used in forked children; each worker imports torch afresh
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            pending = {pool.submit(run_one, job): job for job in jobs}
            for future in futures.as_completed(pending):
                finish(pending[future], future.result)
    if failed:
        print(f"{len(failed)} of {len(jobs)} runs failed; the others are recorded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
