"""Throughput of the local LLM backend (notebook 02): generated tokens/s per batch size.

  python benchmarks/profiling_speed.py                       # CPU, offline SmolLM2-135M
  python benchmarks/profiling_speed.py --device cuda --model Qwen/Qwen2.5-1.5B-Instruct \
      --batch-sizes 1 8 32 64

Prompts are real ML-100K user prompts (about 450 tokens with the chat template), so the prompt
pass is counted too. Every generation runs exactly --max-new-tokens steps (no early stop) so
batch sizes compare like for like. On a shared machine other jobs slow a CPU run, and two
OpenMP threads that lose their core to another job wait for each other: the 1-minute load
average and the process CPU time are printed with each row (CPU seconds close to threads x
seconds mean the run had the cores to itself).
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.llm import LLMSettings, TransformersBackend
from sracl_lite.prompts import user_prompts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", help="default: the offline SmolLM2-135M-Instruct GGUF")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--dataset", default="ml-100k")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    prompts = list(user_prompts(load_dataset(args.dataset)).values())
    start = time.time()
    backend = TransformersBackend(args.model, device=args.device,
                                  settings=LLMSettings(max_new_tokens=args.max_new_tokens))
    print(f"{backend.model_id} on {args.device} ({torch.get_num_threads()} threads), loaded in "
          f"{time.time() - start:.0f}s; {args.max_new_tokens} new tokens per prompt")
    # Forcing the full length: EOS would end some rows early and flatter small batches.
    backend.model.generation_config.min_new_tokens = args.max_new_tokens
    backend.batch_size = 1
    backend.generate(prompts[:1])  # warm-up: first-call allocations
    print(f"{'batch':>5} {'prompts':>7} {'prompt tok':>10} {'new tok':>8} {'seconds':>8} "
          f"{'cpu s':>7} {'new tok/s':>9} {'all tok/s':>9} {'load':>5}")
    for batch in args.batch_sizes:
        chunk = prompts[:max(batch, 2)]  # batch 1 runs two prompts
        backend.batch_size = batch
        gen0, prompt0 = backend.generated_tokens, backend.prompt_tokens
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start, cpu = time.time(), time.process_time()
        backend.generate(chunk)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds, cpu = time.time() - start, time.process_time() - cpu
        new, prompt = backend.generated_tokens - gen0, backend.prompt_tokens - prompt0
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{batch:>5} {len(chunk):>7} {prompt:>10} {new:>8} {seconds:>8.1f} {cpu:>7.1f} "
              f"{new / seconds:>9.1f} {(new + prompt) / seconds:>9.0f} {load:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
