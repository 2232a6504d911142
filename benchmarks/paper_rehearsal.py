"""Rehearse scripts/paper_setting.py at Amazon Beauty's size on a machine without network access, and
print each stage's wall time and peak memory (README, "The paper's setting").

What stands in for what:
- data: SNAP-format files (sracl_lite.standin.write_snap_files) with the interactions of the Beauty
  id file of the SRA-CL authors' repository (data/Beauty/Beauty.txt: 22,363 users, 12,101 items,
  198,502 interactions, in time order) and made-up product text of realistic length;
- llm: a local OpenAI-compatible endpoint (sracl_lite.standin.StandinEndpoint) that forwards the first
  --real-prompts distinct prompts to a real server given by --real-server (a llama.cpp server with
  the offline SmolLM2 GGUF, say) and answers the others at once with made-up text;
- embed: --encoder (all-MiniLM-L6-v2 from its offline wheel) instead of SimCSE RoBERTa-large;
- grid: --grid-args (e.g. '--epochs 1' on a CPU), recorded in the rows' profile column.
Each stage runs as its own process (paper_setting.py --stages <stage>); its peak resident memory is
that process's and its children's largest (wait4's ru_maxrss).

    .venv/bin/python benchmarks/paper_rehearsal.py --ids data/raw/amazon_beauty_ids.txt \\
        --real-server http://127.0.0.1:8080/v1 --real-prompts 120 --grid-args '--epochs 1 --max-train-prefixes 20000'
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite.standin import StandinEndpoint, write_snap_files  # noqa: E402

STAGES = ("data", "llm", "embed", "tables", "grid", "report")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", default=str(ROOT / "data" / "raw" / "amazon_beauty_ids.txt"),
                   help="'user item' lines in time order (the authors' data/Beauty/Beauty.txt)")
    p.add_argument("--data-dir", default=str(ROOT / "build" / "paper_rehearsal"))
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--real-server", help="a real OpenAI-compatible server for the first --real-prompts prompts")
    p.add_argument("--real-model", default="smollm2", help="the real server's model name")
    p.add_argument("--real-prompts", type=int, default=0)
    p.add_argument("--encoder", default="all-MiniLM-L6-v2")
    p.add_argument("--pooling", default="model", choices=["model", "pooler"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128, help="texts per encoder batch (MiniLM on a CPU: 128)")
    p.add_argument("--variants", nargs="*", help="default: paper_setting.py's whole grid")
    p.add_argument("--seeds-primary", type=int, default=1)
    p.add_argument("--seeds-other", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--grid-args", default="--epochs 1")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--port", type=int, default=8765, help="the stand-in endpoint's port: its address is part of "
                   "the answers' cache key, so a rehearsal run again in parts must keep it")
    p.add_argument("--no-notebook", action="store_true")
    return p.parse_args(argv)


def snap_files(args) -> Path:
    raw = Path(args.data_dir) / "raw"
    if not (raw / "meta_Beauty.json.gz").exists():
        pairs = np.loadtxt(args.ids, dtype=np.int64, ndmin=2)
        started = time.time()
        write_snap_files(raw, "Beauty", pairs[:, 0], pairs[:, 1])
        print(f"SNAP-format files for {len(pairs):,} interactions in {time.time() - started:.0f} s -> {raw}")
    return raw


def run_stage(stage: str, args, endpoint, *more) -> tuple:
    """(exit code, seconds, peak MiB) of paper_setting.py --stages <stage>, its output passed through."""
    command = [sys.executable, str(ROOT / "scripts" / "paper_setting.py"), "--dataset", "amazon-beauty",
               "--data-dir", args.data_dir, "--results-dir", str(Path(args.data_dir) / "results"),
               "--stages", stage, "--base-url", endpoint.url, "--model", "rehearsal",
               "--api-key-env", "REHEARSAL_API_KEY", "--concurrency", str(args.concurrency),
               "--encoder", args.encoder, "--pooling", args.pooling, "--device", args.device,
               "--batch-size", str(args.batch_size),
               "--seeds-primary", str(args.seeds_primary), "--seeds-other", str(args.seeds_other),
               "--workers", str(args.workers), "--grid-args", args.grid_args,
               *(["--variants", *args.variants] if args.variants else []),
               "--timeout-s", "900", *(["--no-notebook"] if args.no_notebook else [])]
    started = time.time()
    print(f"== rehearsal: {stage} starts at {time.strftime('%H:%M:%S', time.gmtime(started))} UTC", flush=True)
    process = subprocess.Popen(command + list(more), env={**os.environ, "REHEARSAL_API_KEY": "local"})
    _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.time() - started, usage.ru_maxrss / 1024


def main(argv=None):
    args = parse_args(argv)
    snap_files(args)
    endpoint = StandinEndpoint(args.real_server, args.real_model, args.real_prompts, port=args.port)
    rows = []
    try:
        for stage in args.stages.split(","):
            if stage == "llm":  # first as a reader would: the estimate, which stops without --yes
                code, seconds, peak = run_stage(stage, args, endpoint)
                rows.append(("estimate", seconds, peak))
            code, seconds, peak = run_stage(stage, args, endpoint, *(["--yes"] if stage == "llm" else []))
            rows.append((stage, seconds, peak))
            if code:
                raise SystemExit(f"stage {stage} failed (exit {code})")
    finally:  # the table of the stages that ran, also when one failed
        endpoint.close()
        report(rows, endpoint, args)


def report(rows, endpoint, args):
    print(f"\nendpoint: {len(endpoint.forwarded):,} prompts answered by {args.real_server or 'no real server'}, "
          f"{len(endpoint.asked) - len(endpoint.forwarded):,} by the stand-in")
    print(f"{'stage':8} {'seconds':>8} {'peak MiB':>9}")
    for stage, seconds, peak in rows:
        print(f"{stage:8} {seconds:8.0f} {peak:9.0f}")
    if rows:
        print(f"{'all':8} {sum(r[1] for r in rows):8.0f} {max(r[2] for r in rows):9.0f}")


if __name__ == "__main__":
    main()
