"""Generate LLM item summaries and user profiles for a dataset, resumably (notebook 02).

Answers go to data/profiles/<dataset>/<model tag>/{items,users}.jsonl, keyed by prompt hash,
next to prompts.json (the prompt settings the keys depend on) and run.json (counts, timings).
Rerunning the same command skips every answer already there, so a killed run just restarts.

  # offline default: SmolLM2-135M-Instruct on CPU (ML-100K: about 1,350 items + 943 users)
  python scripts/generate_profiles.py --dataset ml-100k
  # the committed ML-100K answers: the offline model in float32 on a GPU, plus notebook 03's probes
  python scripts/generate_profiles.py --dataset ml-100k --device cuda --dtype float32 \
      --batch-size 128 --what users,items,probes
  # a GPU (e.g. Colab T4) with a stronger instruct model, one profile per training prefix
  python scripts/generate_profiles.py --dataset ml-100k --model Qwen/Qwen2.5-1.5B-Instruct \
      --device cuda --batch-size 64 --granularity prefix
  # an OpenAI-compatible endpoint (the paper used DeepSeek); the key is read from the env var
  DEEPSEEK_API_KEY=... python scripts/generate_profiles.py --dataset ml-100k --backend openai \
      --model deepseek-chat --base-url https://api.deepseek.com/v1 --api-key-env DEEPSEEK_API_KEY
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sracl_lite import paths, profiling  # noqa: E402
from sracl_lite.data import load_dataset
from sracl_lite.sources import DATASET_NAMES
from sracl_lite.llm import FakeBackend, LLMSettings, OpenAIBackend, TransformersBackend
from sracl_lite.prompts import PromptConfig


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help=f"one of {', '.join(DATASET_NAMES)}, or the name of "
                   "your own data (it names the folders), given with --interactions and --items")
    p.add_argument("--data-dir", help="data folder (default: $SRACL_DATA_DIR or the repo's data/)")
    p.add_argument("--interactions", help="your interactions CSV (user_id,item_id,timestamp)")
    p.add_argument("--items", help="your items CSV (item_id,title[,more text columns])")
    p.add_argument("--backend", default="transformers", choices=["transformers", "openai", "fake"])
    p.add_argument("--what", default="items,users", help="comma list of items and/or users")
    p.add_argument("--granularity", default="user", choices=["user", "prefix"],
                   help="one profile per user, or per training prefix (a GPU job)")
    p.add_argument("--limit", type=int, help="only the first N items and N users (a quick look)")
    p.add_argument("--probes", type=int, default=300, help="held-out prefixes for notebook 03's check")
    p.add_argument("--probe-seed", type=int, default=2024)
    p.add_argument("--out", help="root of the profile folders (default: <data folder>/profiles)")
    g = p.add_argument_group("prompts")
    d = PromptConfig()
    g.add_argument("--n-contexts", type=int, default=d.n_contexts)
    g.add_argument("--context-len", type=int, default=d.context_len)
    g.add_argument("--max-history", type=int, default=d.max_history)
    g = p.add_argument_group("generation")
    s = LLMSettings()
    g.add_argument("--model", help="HF id, local folder or .gguf (transformers; default: the "
                   "offline SmolLM2-135M-Instruct), or the endpoint's model name (openai)")
    g.add_argument("--max-new-tokens", type=int, default=s.max_new_tokens)
    g.add_argument("--repetition-penalty", type=float, default=s.repetition_penalty)
    g.add_argument("--temperature", type=float, default=s.temperature)
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default="auto", help="auto: float32 on CPU, bf16/fp16 on CUDA. The answers "
                   "depend on it (it is part of the cache key): pass float32 on a GPU to extend a CPU cache")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--base-url", default="https://api.openai.com/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY")
    g.add_argument("--concurrency", type=int, default=4)
    g.add_argument("--requests-per-minute", type=float, help="the endpoint's rate limit (openai; default none)")
    g.add_argument("--fake-delay", type=float, default=0.0, help="seconds per fake answer")
    return p.parse_args(argv)


def build_backend(args):
    settings = LLMSettings(args.max_new_tokens, args.repetition_penalty, args.temperature)
    if args.backend == "transformers":
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        return TransformersBackend(args.model, device=args.device, dtype=args.dtype,
                                             batch_size=args.batch_size, settings=settings)
    if args.backend == "openai":
        if not args.model:
            raise SystemExit("--backend openai needs --model (the endpoint's model name)")
        return OpenAIBackend(args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                                       settings=settings, concurrency=args.concurrency,
                                       requests_per_minute=args.requests_per_minute)
    return FakeBackend(delay_s=args.fake_delay, batch_size=args.batch_size)


def main(argv=None):
    args = parse_args(argv)
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    if not what or set(what) - set(profiling.PROFILE_FILES):
        raise SystemExit(f"--what {args.what!r}: expected a comma list of items, users, probes")
    ds = load_dataset(args.dataset, data_dir=args.data_dir, interactions_path=args.interactions,
                      items_path=args.items)
    cfg = PromptConfig(n_contexts=args.n_contexts, context_len=args.context_len,
                                 max_history=args.max_history)
    t0 = time.time()
    backend = build_backend(args)
    folder = profiling.profile_dir(args.dataset, backend, root=args.out or paths.profiles_dir(override=args.data_dir))
    print(f"{ds.name}: {ds.n_users} users, {ds.n_items} items; backend {backend.model_id} "
          f"{backend.settings} (loaded in {time.time() - t0:.0f}s) -> {folder}", flush=True)
    profiling.write_prompt_settings(folder, ds, cfg, backend)
    run_log = folder / "run.json"
    runs = json.loads(run_log.read_text()) if run_log.exists() else {}
    for kind in what:
        prompts = profiling.kind_prompts(ds, kind, cfg, args.granularity, args.probes, args.probe_seed)
        if args.limit:
            prompts = dict(list(prompts.items())[:args.limit])
        cache = folder / profiling.PROFILE_FILES[kind]
        before = profiling.count_cached(prompts, cache, backend)
        start, tokens0 = time.time(), backend.generated_tokens
        prompt_tokens0 = getattr(backend, "prompt_tokens", 0)
        answers = profiling.generate_cached(prompts, backend, cache, desc=kind)
        elapsed, tokens = time.time() - start, backend.generated_tokens - tokens0
        stats = {"prompts": len(prompts), "cached_before": before, "generated": len(prompts) - before,
                 "elapsed_s": round(elapsed, 1), "generated_tokens": tokens,
                 "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
                 "prompt_tokens": getattr(backend, "prompt_tokens", 0) - prompt_tokens0,
                 # other work on the same machine slows a CPU run; the load average tells
                 "load_avg_1m": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
                 "device": args.device if args.backend == "transformers" else args.backend,
                 "batch_size": backend.batch_size, "granularity": args.granularity}
        runs.setdefault(kind, []).append(stats)
        run_log.write_text(json.dumps(runs, indent=1) + "\n")
        empty = sum(1 for a in answers.values() if not a)
        print(f"{kind}: {json.dumps(stats)}; {empty} empty answers", flush=True)
    print(f"done in {time.time() - t0:.0f}s: {folder}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        main()
    except (ValueError, OSError, RuntimeError) as err:  # the messages say what to fix
        raise SystemExit(f"error: {err}") from err
