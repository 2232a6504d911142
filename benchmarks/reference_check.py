"""The authors' SRA-CL code and our `reference` preset, trained on identical inputs.

    python benchmarks/reference_check.py --reference-dir DIR [--data FILE] [--seeds 1 2 3]
        [--sides authors ours] [--workers 6] [--recbole-wheel WHEEL] [--out results/reference_check.csv]

DIR is your own clone of the authors' repository: `git clone https://github.com/ziqiangcui/SRA-CL DIR`.
Nothing of it is copied into this project; its `recommender_code/main.py` runs unchanged, on a
CUDA GPU (it calls `.cuda()`).

Identical inputs, written in the authors' file formats into `--work-dir`:
- interactions: FILE (default: the paper's Amazon Beauty ids, lines "user item", oldest first);
- stand-in semantic tables (no item text exists for these ids), made from training interactions
  only: item vectors = the 64 item factors of a truncated SVD of the training user-item matrix
  (`baselines.item_svd_embedding`), mapped to 1024 dimensions (the authors' synthesizer is built
  for 1024) by a Gaussian matrix drawn with seed 0, then tanh: bounded values with norms of about
  20, like the SimCSE outputs the authors embed. Row 0 (padding) is zeros. A prefix's vector is
  the mean of its window's item vectors (the last 20 items), unnormalised. Files: the item table
  (`items.pt`, n_items + 1 rows), the per-prefix table (`prefixes.pt`) and the key map
  (`keys.pkl`, "uid:item1:...:itemN" -> row), with keys made by the authors' own
  `utils.data_augmentation` over training prefixes only (the authors' own files also hold
  prefixes ending in validation items; that leak is left out on both sides);
- hyper-parameters: the authors' defaults (= `experiments.PRESETS["reference"]`), seeds as given;
  our neighbour rule is the authors' literal one (`retrieval.prefix_tables(exclude="rank0")`).

The authors' code imports `recbole.model.layers.TransformerEncoder` and five bookkeeping helpers
from `recbole.utils`. Importing RecBole needs ray, tensorboard and more, so the run gets a small
package: `recbole/model/layers.py` is RecBole's own file, read from the recbole 1.2.1 wheel (the
installed distribution, or --recbole-wheel), and `recbole/utils` holds this script's stand-ins
for the helpers (early_stopping keeps RecBole's rule: >= improves, stop after more than
stopping_step evaluations without). The authors' training loader runs with `--workers` worker
processes (their per-sample Python data preparation is the bottleneck); everything else is theirs.

Each authors' run checkpoints every epoch (model, optimizer, random states, best weights, the
epoch's losses and validation result) and resumes from there when started again: epochs already
done are replayed from the log, then training continues. Our runs are short and restart.

Output: one CSV row per run: implementation, seed, epochs, best epoch, seconds per epoch, best
validation MRR@10, test HR/NDCG@5/10/20 and MRR@20 ranking all items (the authors' protocol), and
for our runs the same metrics with the user's history removed (ours, columns `ours_*`).
`--progress FILE` instead writes the authors' per-epoch validation results found in the
checkpoints (runs not finished yet); `--synthesizer-weights FILE` how far each authors' run's
trained synthesizer is from uniform (on a CPU, from the checkpoints and inputs in --work-dir).
"""
import argparse
import ast
import importlib.metadata
import json
import os
import pickle
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite import baselines as B
from sracl_lite import retrieval as R
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.experiments import profile_config
from sracl_lite.training import Trainer

DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "amazon_beauty_ids.txt"
MAX_LEN, TEXT_DIM, SEED_OF_MAP = 20, 1024, 0
REPORTED = ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR@20"]
AUTHORS_NAMES = {"HIT@5": "HR@5", "HIT@10": "HR@10", "HIT@20": "HR@20", "NDCG@5": "NDCG@5",
                 "NDCG@10": "NDCG@10", "NDCG@20": "NDCG@20", "MRR@20": "MRR@20"}

RECBOLE_UTILS_STAND_IN = '''"""Stand-ins for the five recbole.utils helpers that the SRA-CL code imports (see
benchmarks/reference_check.py); RecBole's own early_stopping rule, rewritten."""
import datetime
import os


def ensure_dir(dir_path):
    os.makedirs(dir_path, exist_ok=True)


def get_local_time():
    return datetime.datetime.now().strftime("%b-%d-%Y_%H-%M-%S")


def early_stopping(value, best, cur_step, max_step, bigger=True):
    improved = value >= best if bigger else value <= best
    if improved:
        return value, 0, False, True
    return best, cur_step + 1, cur_step + 1 > max_step, False


def calculate_valid_score(valid_result, valid_metric=None):
    return valid_result[valid_metric] if valid_metric else valid_result["Recall@10"]


def dict2str(result_dict):
    return "    ".join(f"{metric} : {value}" for metric, value in result_dict.items())


class FeatureType:
    TOKEN, FLOAT, TOKEN_SEQ, FLOAT_SEQ = "token", "float", "token_seq", "float_seq"


class FeatureSource:
    INTERACTION, USER, ITEM, USER_ID, ITEM_ID = "inter", "user", "item", "user_id", "item_id"
'''

# Runs the authors' main.py unchanged, with loader workers and per-epoch checkpoints around it.
LAUNCHER = '''import json, os, random, runpy, sys, time
import numpy as np
import torch
import torch.utils.data as tud

code_dir, workers, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = [os.path.join(code_dir, "main.py"), *sys.argv[4:]]
sys.path.insert(0, code_dir)


class TrainLoader(tud.DataLoader):
    def __init__(self, *args, **kwargs):
        if kwargs.get("shuffle"):  # the training loader; evaluation loaders stay as they are
            kwargs.setdefault("num_workers", workers)
        super().__init__(*args, **kwargs)


tud.DataLoader = TrainLoader
import utils  # the authors' module

log = [json.loads(line) for line in open(state + ".jsonl")] if os.path.exists(state + ".jsonl") else []
saved = torch.load(state + ".pt", weights_only=False) if os.path.exists(state + ".pt") else None
done = saved["epochs_done"] if saved else 0
log = log[:done]
run = {"epoch": 0, "optimizer": None, "best": saved["best"] if saved else None}
train_epoch, valid_epoch, save_checkpoint = utils.train_epoch, utils.valid_epoch, utils.save_checkpoint


def rng_state():
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all(),
            "numpy": np.random.get_state(), "python": random.getstate()}


def checkpointed_train_epoch(args, model, loader, optimizer, epoch_idx, *rest, **kw):
    run["epoch"], run["optimizer"] = epoch_idx, optimizer
    if epoch_idx < done:
        return tuple(log[epoch_idx]["losses"])
    if epoch_idx == done and saved:  # first epoch after the replay: continue from the checkpoint
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"]["torch"])
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
        np.random.set_state(saved["rng"]["numpy"])
        random.setstate(saved["rng"]["python"])
    if epoch_idx > 0:  # everything of the previous epoch (validation, best weights) is settled
        torch.save({"epochs_done": epoch_idx, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": rng_state(), "best": run["best"]}, state + ".pt.tmp")
        os.replace(state + ".pt.tmp", state + ".pt")
    started = time.time()
    losses = train_epoch(args, model, loader, optimizer, epoch_idx, *rest, **kw)
    run["losses"], run["seconds"] = [float(x) for x in losses], time.time() - started
    return losses


def checkpointed_valid_epoch(args, model, loader, *rest, **kw):
    if run["epoch"] < done:
        entry = log[run["epoch"]]
        return entry["score"], entry["result"]
    score, result = valid_epoch(args, model, loader, *rest, **kw)
    with open(state + ".jsonl", "a") as f:
        f.write(json.dumps({"epoch": run["epoch"], "losses": run["losses"], "seconds": run["seconds"], "score": score,
                            "result": result}) + "\\n")
    return score, result


def checkpointed_save(epoch, model, path):
    if run["epoch"] < done:  # replay: the best weights come from the checkpoint, not the fresh model
        torch.save({"state_dict": run["best"]}, path)
        return
    run["best"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint(epoch, model, path)


utils.train_epoch, utils.valid_epoch, utils.save_checkpoint = (checkpointed_train_epoch, checkpointed_valid_epoch,
                                                               checkpointed_save)
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def authors_code(reference_dir) -> Path:
    code = (Path(reference_dir) / "recommender_code").resolve()
    missing = [name for name in ("main.py", "model.py", "utils.py") if not (code / name).exists()]
    if missing:
        sys.exit(f"{code}: {', '.join(missing)} not found. Clone the authors' repository first:\n"
                 f"    git clone https://github.com/ziqiangcui/SRA-CL {reference_dir}")
    return code


def recbole_package(target: Path, wheel=None):
    """A `recbole` package holding RecBole's own model/layers.py and the bookkeeping stand-ins."""
    member = "recbole/model/layers.py"
    if wheel:
        with zipfile.ZipFile(wheel) as archive:
            layers = archive.read(member).decode()
    else:
        try:
            layers = Path(importlib.metadata.distribution("recbole").locate_file(member)).read_text()
        except (importlib.metadata.PackageNotFoundError, FileNotFoundError):
            sys.exit("RecBole's layers.py not found: `pip install --no-deps recbole==1.2.1` or pass --recbole-wheel "
                     "(pip download --no-deps recbole==1.2.1)")
    for folder in ("recbole", "recbole/model", "recbole/utils"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    (target / "recbole" / "__init__.py").write_text("")
    (target / "recbole" / "model" / "__init__.py").write_text("")
    (target / "recbole" / "model" / "layers.py").write_text(layers)
    (target / "recbole" / "utils" / "__init__.py").write_text(RECBOLE_UTILS_STAND_IN)


def authors_training_prefixes(code: Path, data: Path):
    """The authors' own split and training samples: (user_train, keys in sample order)."""
    sys.path.insert(0, str(code))
    import utils as authors_utils  # their module: data_partition and data_augmentation
    user_train, _, _, _, n_items = authors_utils.data_partition(str(data))

    class Numbering(dict):  # key -> row, numbered in order of first use
        def __missing__(self, key):
            self[key] = len(self)
            return self[key]
    keys = Numbering()
    authors_utils.data_augmentation(user_train, MAX_LEN, keys)
    return user_train, n_items, dict(keys)


def stand_in_tables(user_train: dict, n_items: int, keys: dict):
    """Item table (n_items + 1, 1024) and per-key table in the authors' id space (module docstring)."""
    users = sorted(user_train)
    sequences = [np.asarray(user_train[u], dtype=np.int64) for u in users]
    factors = B.item_svd_embedding(sequences, n_items, 64)                       # (n_items + 1, 64)
    mapping = np.random.default_rng(SEED_OF_MAP).standard_normal((factors.shape[1], TEXT_DIM))
    items = np.tanh(factors @ mapping).astype(np.float32)
    items[0] = 0
    # Where each key's window ends: the key of the prefix seq[:end] is uid and its last 20 items at most.
    ends = {}
    for row, u in enumerate(users):
        seq = user_train[u]
        for end in range(1, len(seq)):
            ends.setdefault(":".join(map(str, [u] + seq[max(0, end - MAX_LEN):end])), (row, end))
    if set(ends) != set(keys):
        raise RuntimeError("prefix keys differ from the authors' data_augmentation; check --data")
    located = np.array([ends[key] for key in keys])                            # rows in key-number order
    prefixes = R.PrefixSet(located[:, 0], located[:, 1], "prefix")
    return items, R.mean_item_embedding(items, sequences, prefixes, window=MAX_LEN, unit=False)


def write_inputs(work: Path, data: Path, code: Path):
    """Stand-in tables in the authors' formats; returns (item vectors, the authors' number of samples)."""
    user_train, n_items, keys = authors_training_prefixes(code, data)
    items, prefixes = stand_in_tables(user_train, n_items, keys)
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    torch.save(torch.from_numpy(items), inputs / "items.pt")
    torch.save(torch.from_numpy(prefixes), inputs / "prefixes.pt")
    with open(inputs / "keys.pkl", "wb") as f:
        pickle.dump(keys, f)
    print(f"stand-in tables: {items.shape[0] - 1} items, {len(keys)} prefix keys, {TEXT_DIM}-d, mean item norm "
          f"{np.linalg.norm(items[1:], axis=1).mean():.1f}", flush=True)
    return items, sum(max(len(seq) - 1, 0) for seq in user_train.values())


def run_authors(code: Path, work: Path, data: Path, seed: int, workers: int, gpu: str) -> dict:
    run_dir = work / f"authors_seed{seed}"
    (run_dir / "log" / "Beauty").mkdir(parents=True, exist_ok=True)
    (work / "launch.py").write_text(LAUNCHER)
    inputs = work / "inputs"
    command = [sys.executable, str(work / "launch.py"), str(code), str(workers), str(run_dir / "state"),
               "--dataset=Beauty", "--train_dir=default", f"--maxlen={MAX_LEN}", "--device=cuda", "--alpha=0.1",
               "--beta=0.1", "--k_num=10", f"--seed={seed}", f"--dataset_file={data}",
               f"--item_semantic_emb_file={inputs / 'items.pt'}", f"--user_semantic_emb_file={inputs / 'prefixes.pt'}",
               f"--seq_keys_to_int_file={inputs / 'keys.pkl'}",
               f"--user_sorted_indices_file={run_dir / 'prefix_neighbours.npy'}", f"--log_dir={run_dir / 'log'}/"]
    env = {**os.environ, "PYTHONPATH": str(work / "stand_in"), "CUDA_VISIBLE_DEVICES": gpu, "PYTHONUNBUFFERED": "1"}
    with open(run_dir / "stdout.txt", "a") as out:
        subprocess.run(command, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    return authors_result(run_dir, seed)


def authors_result(run_dir: Path, seed: int) -> dict:
    text = (run_dir / "stdout.txt").read_text()
    found = re.findall(r"^test result: (\{.*\})$", text, re.M)
    if not found:
        tail = "\n".join(text.splitlines()[-5:])
        raise RuntimeError(f"{run_dir}: the authors' run did not finish; its last lines:\n{tail}\n"
                           "Start the script again to resume it from its last checkpoint.")
    test = ast.literal_eval(found[-1])
    log = [json.loads(line) for line in (run_dir / "state.jsonl").read_text().splitlines()]
    times = [e["seconds"] for e in log]
    scores = [round(e["score"], 4) for e in log]
    best = max(i for i, s in enumerate(scores) if s == max(scores)) + 1   # ties: the later epoch (>=)
    return {"implementation": "authors", "seed": seed, "epochs": len(log), "best_epoch": best,
            "seconds_per_epoch": round(float(np.median(times)), 2) if times else np.nan,
            "valid_MRR@10": max(scores),
            **{ours: test[theirs] for theirs, ours in AUTHORS_NAMES.items()}}


def write_progress(work: Path, out: Path):
    """One row per finished epoch of each authors' run: seconds and validation metrics (all items)."""
    rows = []
    for log in sorted(Path(work).glob("authors_seed*/state.jsonl")):
        seed = int(log.parent.name.removeprefix("authors_seed"))
        for entry in map(json.loads, log.read_text().splitlines()):
            rows.append({"implementation": "authors", "seed": seed, "epoch": entry["epoch"] + 1,
                         "train_seconds": round(entry["seconds"], 2),
                         **{f"valid_{AUTHORS_NAMES.get(k, k)}": v for k, v in entry["result"].items()}})
    if not rows:
        sys.exit(f"{work}: no authors' checkpoints (authors_seed*/state.jsonl) found")
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"wrote {out}: {len(rows)} epochs of {len({r['seed'] for r in rows})} runs")


def synthesizer_weights(work: Path, out: Path, n_anchors: int = 2000, seed: int = 0):
    """How far the authors' trained synthesizer is from uniform (runs on a CPU).

    For n_anchors random prefixes: their k = 10 neighbours by the authors' rule (cosine over the
    per-prefix table, rank 0 dropped), then the authors' weights softmax(leakyrelu([s W, n_j W] a))
    with W and a of each run's best checkpoint, and of a fresh Xavier(gain 1.414) draw (the
    distribution the authors start from). Reports the median normalised entropy (1 = uniform)
    and the median largest weight (uniform: 0.1).
    """
    table = torch.load(work / "inputs" / "prefixes.pt").float()                     # (P, 1024)
    unit = torch.nn.functional.normalize(table, dim=1)
    anchors = torch.from_numpy(np.random.default_rng(seed).choice(len(table), n_anchors, replace=False))
    neighbours = (unit[anchors] @ unit.T).topk(11, dim=1).indices[:, 1:]             # (n, 10)

    def summary(W, a):
        s, n = table[anchors] @ W, table[neighbours] @ W                              # (n, d), (n, 10, d)
        logits = torch.cat([s[:, None].expand_as(n), n], -1) @ a                      # (n, 10, 1)
        weights = torch.softmax(torch.nn.functional.leaky_relu(logits.squeeze(-1), 0.2), dim=1)
        entropy = -(weights * weights.log()).sum(1) / np.log(weights.shape[1])
        return float(entropy.median()), float(weights.max(1).values.median())

    rows = []
    hidden = None
    for state in sorted(work.glob("authors_seed*/state.pt")):
        best = torch.load(state, map_location="cpu", weights_only=False)["best"]
        hidden = best["W"].shape[1]
        entropy, largest = summary(best["W"].float().cpu(), best["a"].float().cpu())
        rows.append({"run": state.parent.name.replace("authors_seed", "authors, seed "), "weights": "best checkpoint",
                     "median_entropy": round(entropy, 3), "median_largest_weight": round(largest, 3)})
    if hidden is None:
        sys.exit(f"{work}: no authors' checkpoints (authors_seed*/state.pt) found")
    generator = torch.Generator().manual_seed(seed)
    W, a = torch.empty(TEXT_DIM, hidden), torch.empty(2 * hidden, 1)
    for tensor in (W, a):   # as the authors' model.py initialises them
        torch.nn.init.xavier_uniform_(tensor, gain=1.414, generator=generator)
    entropy, largest = summary(W, a)
    rows.append({"run": "fresh draw", "weights": "Xavier init", "median_entropy": round(entropy, 3),
                 "median_largest_weight": round(largest, 3)})
    frame = pd.DataFrame(rows)
    frame.to_csv(out, index=False)
    print(frame.to_string(index=False))
    print(f"wrote {out} ({n_anchors} anchors)")


def our_tables(ds, items_authors: np.ndarray, device: str):
    """The same stand-in vectors in our id space (items re-indexed by raw id), then our retrieval."""
    raw = ds.items["raw_id"].astype(int).to_numpy()                              # our item i -> raw id
    items = np.zeros((ds.n_items + 1, TEXT_DIM), np.float32)
    items[1:] = items_authors[raw]
    return R.reference_tables(items, ds.train_sequences, k=10, exclude="rank0", window=MAX_LEN, device=device,
                              description="stand-in SVD-64 -> 1024 tanh vectors, mean over the max_len window")


def run_ours(ds, tables, seed: int, device: str, compile_mode) -> dict:
    config = profile_config("paper", "reference", seed=seed, device=device, compile=compile_mode or None,
                            progress=False)
    trainer = Trainer(ds, config, tables)
    result = trainer.fit()
    ours, _ = trainer.evaluate("test", exclude_history=True)
    seconds = [r["train_seconds"] for r in result.history]
    return {"implementation": "sracl-lite reference", "seed": seed, "epochs": len(result.history),
            "best_epoch": result.best_epoch, "seconds_per_epoch": round(float(np.median(seconds[1:] or seconds)), 2),
            "valid_MRR@10": round(result.valid["MRR@10"], 4),
            **{m: round(result.test[m], 4) for m in REPORTED}, **{f"ours_{m}": round(ours[m], 4) for m in REPORTED}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", help="your clone of github.com/ziqiangcui/SRA-CL")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="'user item' lines, oldest first")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sides", nargs="+", default=["authors", "ours"], choices=["authors", "ours"])
    parser.add_argument("--workers", type=int, default=6, help="loader worker processes per authors' run")
    parser.add_argument("--gpus", default="0", help="comma list: authors' runs go round-robin over these GPUs")
    parser.add_argument("--compile", default="", help="torch.compile mode for our runs, e.g. reduce-overhead")
    parser.add_argument("--recbole-wheel", default=None, help="recbole-1.2.1 wheel, if recbole is not installed")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "reference_check")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "reference_check.csv")
    parser.add_argument("--progress", type=Path, default=None, help="write the authors' per-epoch validation "
                        "results from the checkpoints in --work-dir to this CSV, and stop")
    parser.add_argument("--synthesizer-weights", type=Path, default=None,
                        help="write how far each authors' run's trained synthesizer is from uniform "
                             "(checkpoints and inputs in --work-dir) to this CSV, and stop")
    args = parser.parse_args(argv)
    if args.progress:
        write_progress(args.work_dir, args.progress)
        return
    if args.synthesizer_weights:
        synthesizer_weights(args.work_dir, args.synthesizer_weights)
        return
    if not args.reference_dir:
        parser.error("--reference-dir DIR is required: git clone https://github.com/ziqiangcui/SRA-CL DIR")
    if not torch.cuda.is_available():
        sys.exit("the authors' code needs a CUDA GPU (it calls .cuda()); run this on a GPU machine")
    code = authors_code(args.reference_dir)
    data = args.data.resolve()
    work = args.work_dir.resolve()
    recbole_package(work / "stand_in", args.recbole_wheel)
    items, authors_samples = write_inputs(work, data, code)
    rows, pending = [], []
    gpus = args.gpus.split(",")
    if "authors" in args.sides:  # in parallel, one process per seed
        launch = [(seed, gpus[i % len(gpus)]) for i, seed in enumerate(args.seeds)]
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(len(launch))
        pending = [pool.submit(run_authors, code, work, data, seed, args.workers, gpu) for seed, gpu in launch]
    if "ours" in args.sides:
        # No filter beyond the split's 3 interactions a user, as the authors' data_partition (their
        # Beauty file is already 5-core, so this is the same data our other Beauty runs use).
        ds = load_dataset("ids", interactions_path=data, data_dir=work / "data", min_user_interactions=3,
                          min_item_interactions=1)
        n_samples = len(ds.train_prefixes(MAX_LEN).targets)
        print(f"ours: {ds.n_users} users, {ds.n_items} items, {n_samples} training prefixes (authors: "
              f"{authors_samples} samples, {len(items) - 1} items)", flush=True)
        started = time.time()
        tables = our_tables(ds, items, "cuda")
        print(f"our tables: {len(tables.pool_users)} pool entries in {time.time() - started:.0f} s", flush=True)
        for seed in args.seeds:
            rows.append(run_ours(ds, tables, seed, "cuda", args.compile))
            print(rows[-1], flush=True)
    for future in pending:
        try:
            rows.append(future.result())
            print(rows[-1], flush=True)
        except RuntimeError as error:
            print(error, flush=True)
    if rows:
        new = pd.DataFrame(rows)
        new["device"] = torch.cuda.get_device_name()
        old = pd.read_csv(args.out) if args.out.exists() else pd.DataFrame()
        if len(old):
            key = ["implementation", "seed"]
            replaced = old.set_index(key).index.isin(new.set_index(key).index)
            old = old[~replaced]
        table = pd.concat([old, new]).sort_values(["implementation", "seed"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(table.groupby("implementation")[["HR@20", "NDCG@20"]].agg(["mean", "std"]).round(4).to_string())
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
