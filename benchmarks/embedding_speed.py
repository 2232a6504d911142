"""Texts per second of the sentence encoder used by notebook 03 (no embedding cache).

    python benchmarks/embedding_speed.py                      # CPU, all-MiniLM-L6-v2 (offline wheel)
    python benchmarks/embedding_speed.py --device cuda --n 20000
    python benchmarks/embedding_speed.py --model sentence-transformers/all-mpnet-base-v2

Texts are synthetic but shaped like the real inputs: 'profile' texts of about 80 words (LLM
summaries and profiles) and 'title' texts of a few words (template titles).
"""
import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from sracl_lite.encoder import DEFAULT_MODEL_ID, EncoderConfig, TextEncoder

WORDS = ("user enjoys thoughtful dramas with strong characters, prefers classic science fiction, "
         "dislikes slapstick comedy, watches thrillers with twists, likes animated family films, "
         "recent interest in war stories, documentaries about music, romance set in cities").replace(",", "").split()


def synthetic_texts(n: int, words: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=words)) + f" #{i}" for i in range(n)]  # #i keeps texts distinct


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL_ID)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n", type=int, default=1000, help="texts per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--kind", choices=["profile", "title", "both"], default="both")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = TextEncoder(EncoderConfig(model_id=args.model, device=args.device, batch_size=args.batch_size,
                                        cache_dir=None, show_progress=False))
    start = time.perf_counter()
    encoder.encode(["warm-up text"] * 2 + synthetic_texts(args.batch_size, 10, seed=99))
    print(f"model {args.model} on {args.device} ({torch.get_num_threads()} CPU threads), dim {encoder.dim}, "
          f"load + warm-up {time.perf_counter() - start:.1f} s")
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")
    kinds = {"profile": 80, "title": 6}
    for kind in (kinds if args.kind == "both" else [args.kind]):
        texts = synthetic_texts(args.n, kinds[kind])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        emb = encoder.encode(texts)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"{kind:8s} texts (~{kinds[kind]} words): {args.n} in {seconds:.2f} s = {args.n / seconds:,.0f} texts/s "
              f"(batch {args.batch_size}, output {emb.shape})")


if __name__ == "__main__":
    main()
