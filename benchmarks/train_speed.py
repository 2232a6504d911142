"""Seconds per training epoch of full SRA-CL (both contrastive losses), the paper's shapes.

GPU (default when CUDA is available): Amazon Beauty ids (22,363 users, 12,101 items, 131,413
training prefixes), random semantic tables of the paper's shapes (text dim 1024, k = 10),
batch 256, max_len 20, hidden 64, alpha = beta = 0.1. Each variant builds a fresh trainer, runs
warm-up epochs, then timed epochs; the figure is the median. Reference implementation: about
41 s per epoch on one H200 (measured side by side by benchmarks/reference_check.py; README, Speed).
The Beauty file is the SRA-CL authors' data/Beauty/Beauty.txt (github.com/ziqiangcui/SRA-CL),
read from data/raw/amazon_beauty_ids.txt unless --data names another place.

CPU (`--device cpu`): ML-100K with the default settings (text dim 384, the MiniLM encoder of
notebook 03). A full SRA-CL epoch there takes minutes on two cores, so by default a number of
steps is timed and scaled to the epoch (`--cpu-steps 0` runs whole epochs). A CPU's "peak" is the
rate of torch's own 4096 x 4096 float32 matrix products on the same threads, measured first.

    python benchmarks/train_speed.py                            # GPU: sracl in every mode, float32
    python benchmarks/train_speed.py --variants sracl,reference,sasrec --modes eager,graph+compile
    python benchmarks/train_speed.py --device cpu

Modes (GPU): eager; graph (the whole step with the Adam update as one CUDA graph,
TrainConfig.cuda_graph); graph+compile (the same with torch.compile's fused kernels inside).
The eager run of each variant also counts the step's floating-point operations
(torch.utils.flop_counter: matrix products and attention, forward and backward), so every
figure comes with the arithmetic rate it reaches and its share of the GPU's float32 peak.

Writes benchmarks/results/train_speed.json: one section per device type ("cuda", "cpu"), so a
CPU run keeps the GPU figures and the other way round.
"""
import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite.data import SequenceData, load_dataset  # noqa: E402
from sracl_lite.model import ModelConfig  # noqa: E402
from sracl_lite import baselines as B
from sracl_lite import retrieval as R
from sracl_lite.experiments import PRESETS, TrainConfig
from sracl_lite.training import Trainer

BEAUTY_CANDIDATES = [ROOT / "data" / "raw" / "amazon_beauty_ids.txt"]   # the authors' Beauty.txt, copied here
REFERENCE_SECONDS = 41.1   # authors' implementation, one H200, same settings
# Vendor datasheet float32 peaks (no tensor cores; TF32 is off unless asked for), TFLOP/s
FP32_PEAK_TFLOPS = {"H200": 67.0, "H100 80GB HBM3": 67.0, "H100 PCIe": 51.0}
MODES = {                  # name -> TrainConfig overrides (GPU only, except eager)
    "eager": {},
    "graph": {"cuda_graph": True},
    "graph+compile": {"cuda_graph": True, "compile": "default"},
}
VARIANTS = {               # name -> TrainConfig overrides
    "sracl": {},                              # both CL losses, float32 (the default), eager
    "sracl-bf16": {"bf16": True},             # the same under bf16 autocast
    "sasrec": {"alpha": 0.0, "beta": 0.0},    # plain backbone, for scale
    "reference": PRESETS["reference"],        # the authors' design: per-prefix pool (random tables of its
                                              # shape), second anchor pass, 2B NT-Xent (14 sequences a sample)
}


def load_beauty(path=None) -> SequenceData:
    candidates = [Path(path)] if path else BEAUTY_CANDIDATES
    for candidate in candidates:
        if candidate.exists():
            frame = pd.read_csv(candidate, sep=" ", header=None, names=["user_id", "item_id"])
            frame["timestamp"] = np.arange(len(frame))   # lines are chronological within each user
            return SequenceData.from_interactions(frame, "amazon-beauty-ids")
    raise FileNotFoundError(f"Amazon Beauty ids file not found in {[str(c) for c in candidates]}; pass --data "
                            "PATH: the SRA-CL authors' data/Beauty/Beauty.txt (github.com/ziqiangcui/SRA-CL)")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def count_step_flops(trainer) -> int:
    """Floating-point operations of one full training step (forward and backward), counted by torch."""
    idx = torch.arange(trainer.config.batch_size, device=trainer.device)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(idx)
    return counter.get_total_flops()


def fp32_peak(name: str):
    return next((peak for key, peak in FP32_PEAK_TFLOPS.items() if key in name), None)


def cpu_matmul_peak() -> float:
    """TFLOP/s of 4096 x 4096 float32 matrix products on this CPU's torch threads: the most torch's
    own kernels reach here, the yardstick of a CPU run's share (a virtual CPU has no datasheet)."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * 4096 ** 3 / (time.perf_counter() - start) / 1e12


def run_variant(ds, tables, name, overrides, args, device, seed):
    settings = dict(model=ModelConfig(hidden=64), max_len=20, batch_size=256, alpha=0.1, beta=0.1, k=args.k,
                    intra_aug="semantic")
    config = TrainConfig(**{**settings, **overrides, "device": str(device), "progress": False, "seed": seed})
    tables = tables[config.pool_match == "prefix"]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    trainer = Trainer(ds, config, tables)
    setup = time.perf_counter() - start
    flops = count_step_flops(trainer) if not (config.cuda_graph or config.compile) else None
    steps = args.cpu_steps if device.type == "cpu" and args.cpu_steps else None
    epochs = []
    for epoch in range(args.warmup + args.epochs):
        record = trainer.train_epoch(max_steps=steps)
        epochs.append(record)
        print(f"  {name} epoch {epoch + 1}{' (warm-up)' if epoch < args.warmup else ''}: "
              f"{record['train_seconds']:.2f} s over {record['steps']} steps, loss {record['loss']:.3f} "
              f"(rec {record['rec']:.3f}, cross {record['cross']:.3f}, intra {record['intra']:.3f})", flush=True)
    timed = [r["train_seconds"] for r in epochs[args.warmup:]]
    steps_per_epoch = -(-trainer.n_train // config.batch_size)
    per_step = [t / r["steps"] for t, r in zip(timed, epochs[args.warmup:])]
    seconds = statistics.median(per_step) * steps_per_epoch
    start = time.perf_counter()
    valid, _ = trainer.evaluate("valid")
    eval_seconds = time.perf_counter() - start
    result = {
        "variant": name, "seed": seed, "compile": config.compile, "cuda_graph": config.cuda_graph, "bf16": trainer.amp,
        "alpha": config.alpha, "beta": config.beta,
        "seconds_per_epoch": round(seconds, 3), "seconds_per_step": round(statistics.median(per_step), 4),
        "epoch_seconds": [round(t, 3) for t in timed],
        "warmup_epoch_seconds": [round(r["train_seconds"], 3) for r in epochs[:args.warmup]],  # incl. compiling
        "timed_steps_per_epoch": epochs[-1]["steps"], "steps_per_epoch": steps_per_epoch,
        "extrapolated_from_steps": epochs[-1]["steps"] < steps_per_epoch,
        "samples_per_second": round(trainer.n_train / seconds, 1),
        "setup_seconds": round(setup, 2), "valid_eval_seconds": round(eval_seconds, 3),
        "valid_ndcg10_after_epochs": round(valid["NDCG@10"], 5), "epochs_trained": len(epochs),
        "final_losses": {k: round(epochs[-1][k], 4) for k in ("loss", "rec", "cross", "intra")},
        "flops_per_step": flops, "tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(f"{name}: {seconds:.3f} s/epoch (median of {len(timed)}), {result['samples_per_second']:.0f} samples/s"
          + (f", peak {result['peak_gpu_memory_mib']:.0f} MiB" if "peak_gpu_memory_mib" in result else ""), flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--dataset", default=None, help="beauty (GPU default) | ml-100k (CPU default)")
    parser.add_argument("--data", default=None, help="path of amazon_beauty_ids.txt")
    parser.add_argument("--text-dim", type=int, default=None, help="semantic dim (1024 Beauty, 384 ML-100K)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--variants", default="sracl", help=f"comma list of {list(VARIANTS)}")
    parser.add_argument("--modes", default=None, help=f"comma list of {list(MODES)} (GPU default: all; CPU: eager)")
    parser.add_argument("--seeds", default="1", help="comma list of seeds, each a run of every variant and mode")
    parser.add_argument("--cpu-steps", type=int, default=20, help="CPU: steps timed per epoch (0 = all)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--tf32", action="store_true", help="TF32 tensor cores for float32 matrix products "
                        "(10-bit mantissa); off by default, so the figures are strict float32")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_speed.json"))
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    modes = (args.modes or (",".join(MODES) if device.type == "cuda" else "eager")).split(",")
    if any(mode not in MODES for mode in modes):
        parser.error(f"--modes {args.modes!r}: choose from {list(MODES)}")
    dataset = args.dataset or ("beauty" if device.type == "cuda" else "ml-100k")
    text_dim = args.text_dim or (1024 if dataset == "beauty" else 384)
    ds = load_beauty(args.data) if dataset == "beauty" else load_dataset(dataset)
    # per-user tables (ours) and per-prefix ones (the reference preset), both random, the paper's shapes
    pools = (R.user_pool(ds.train_sequences), R.prefix_pool(ds.train_sequences, whole=False))
    tables = [B.random_neighbor_tables(ds.train_sequences, ds.n_items, pool, k=args.k, dim=text_dim) for pool in pools]
    n_train = len(ds.train_prefixes(20).targets)
    print(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {n_train} training prefixes; device "
          f"{device_name(device)}; torch {torch.__version__}", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    section = {
        "device": device_name(device), "dataset": ds.name, "n_users": ds.n_users, "n_items": ds.n_items,
        "n_train_prefixes": n_train,
        "settings": {"batch_size": 256, "max_len": 20, "hidden": 64, "k": args.k, "text_dim": text_dim,
                     "sequences_per_step": 256 * (1 + args.k + 2), "warmup_epochs": args.warmup,
                     "timed_epochs": args.epochs, "statistic": "median over timed epochs"},
        "runs": [],
        "reference_seconds_per_epoch_h200": REFERENCE_SECONDS if dataset == "beauty" else None,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + (argv if argv is not None else sys.argv[1:])),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    names = [name for name in args.variants.split(",") if name]
    for name in names:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    plan = [(f"{name} {mode}", {**VARIANTS[name], **MODES[mode]}, int(seed))
            for name in names for mode in modes for seed in args.seeds.split(",")]
    peak = fp32_peak(section["device"]) if device.type == "cuda" else cpu_matmul_peak()
    section["fp32_peak_tflops"] = round(peak, 3) if peak else None
    if device.type == "cpu":
        print(f"yardstick: float32 matrix products of 4096 x 4096 reach {peak:.3f} TFLOP/s here", flush=True)
    runs = section["runs"]
    for name, overrides, seed in plan:
        runs.append(run_variant(ds, tables, name, overrides, args, device, seed))
        # the same variant does the same arithmetic in every mode: its eager run counted it
        flops = next((r["flops_per_step"] for r in runs if r["variant"].split()[0] == name.split()[0]
                      and r["flops_per_step"]), None)
        if flops:
            rate = flops * runs[-1]["steps_per_epoch"] / runs[-1]["seconds_per_epoch"] / 1e12
            runs[-1].update(tflop_per_epoch=round(flops * runs[-1]["steps_per_epoch"] / 1e12, 2),
                            tflop_per_second=round(rate, 2), fp32_peak_share=round(rate / peak, 3) if peak else None)
        sracl_runs = [r for r in runs if r["alpha"] > 0 and r["beta"] > 0 and r["variant"].startswith("sracl ")]
        best = min(sracl_runs, key=lambda r: r["seconds_per_epoch"]) if sracl_runs else None
        section["best_sracl_seconds_per_epoch"] = best["seconds_per_epoch"] if best else None
        section["best_sracl_variant"] = best["variant"] if best else None
        # written after every variant, so a run cut short keeps what it measured
        existing = json.loads(out.read_text()) if out.exists() else {}
        existing[device.type] = section
        out.write_text(json.dumps(existing, indent=1) + "\n")
    print(f"\n{'variant':28s} {'seed':>4s} {'s/step':>7s} {'s/epoch':>8s} {'samples/s':>10s} {'peak MiB':>9s} "
          f"{'TFLOP/s':>8s} {'of peak':>7s} {'valid NDCG@10':>13s}")
    for r in runs:
        print(f"{r['variant']:28s} {r['seed']:4d} {r['seconds_per_step']:7.3f} {r['seconds_per_epoch']:8.3f} "
              f"{r['samples_per_second']:10.0f} "
              f"{r.get('peak_gpu_memory_mib', float('nan')):9.0f} {r.get('tflop_per_second') or float('nan'):8.2f} "
              f"{r.get('fp32_peak_share') or float('nan'):7.1%} {r['valid_ndcg10_after_epochs']:13.5f}")
    if best and dataset == "beauty":
        speedup = REFERENCE_SECONDS / best["seconds_per_epoch"]
        print(f"best SRA-CL: {best['seconds_per_epoch']:.3f} s/epoch ({speedup:.0f}x faster than the "
              f"reference's {REFERENCE_SECONDS} s on an H200)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
