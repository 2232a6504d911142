"""What notebook 03's template user texts would give with fewer titles: tokens, seconds, neighbours.

    python benchmarks/template_history.py                  # N = 50 (today), 25, 20, 10; two threads

Notebook 03 spends most of its CPU time encoding the template user and probe texts: each lists up to
PromptConfig.max_history (50) of a user's most recent titles, cut by the encoder at 256 tokens. For
each N this builds those texts from the N most recent titles, encodes the 943 pool users and the 300
probes as notebook 03 does (all-MiniLM-L6-v2, no cache), and prints the tokens encoded, the seconds,
the overlap@10 of every probe's pool neighbours with those of N = 50, and notebook 03's two
next-item checks of the template row.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sracl_lite import neighbor_quality as Q  # noqa: E402
from sracl_lite import prompts  # noqa: E402
from sracl_lite import retrieval as R  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.encoder import EncoderConfig, TextEncoder, embed_prefix_texts  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--titles", type=int, nargs="+", default=[50, 25, 20, 10])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("ml-100k")
    pool = R.user_pool(ds.train_sequences)
    probes = R.holdout_probes(ds.train_sequences, max_probes=300, seed=2024)   # notebook 03's N_PROBES and SEED
    encoder = TextEncoder(EncoderConfig(cache_dir=None, show_progress=False, device="cpu"))
    encoder.encode(["warm-up"])
    rows = {}
    for titles in args.titles:
        config = dataclasses.replace(prompts.PromptConfig(), max_history=titles)
        users = prompts.template_user_texts(ds, config, "user")
        prefixes = prompts.template_user_texts(ds, config, "prefix")
        probe_texts = {key: prefixes[key] for key in probes.keys()}
        ids = encoder.model.tokenizer(list(users.values()) + list(probe_texts.values()))["input_ids"]
        tokens = sum(min(len(i), encoder.model.max_seq_length) for i in ids)
        start = time.perf_counter()
        user_emb, probe_emb = embed_prefix_texts(encoder, users, pool), embed_prefix_texts(encoder, probe_texts, probes)
        seconds = time.perf_counter() - start
        neighbors = R.pool_neighbors(probe_emb, probes.users, user_emb, pool, 10)
        quality = Q.compare_neighbor_sources({"template text": Q.NeighborSource(None, neighbors)}, ds.train_sequences,
                                             ds.items["categories"], probes, pool)
        rows[titles] = tokens, seconds, neighbors, quality.set_index("metric")["value"]
    print(f"ML-100K, {len(pool)} pool users and {len(probes)} probes, {torch.get_num_threads()} CPU threads")
    today = rows[args.titles[0]][2]
    for titles, (tokens, seconds, neighbors, quality) in rows.items():
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(today, neighbors)])
        print(f"{titles:3d} titles: {tokens:7,d} tokens, {seconds:5.1f} s; overlap@10 with {args.titles[0]}: "
              f"{overlap:.3f}; " + "; ".join(f"{metric} {value:.3f}" for metric, value in quality.items()))


if __name__ == "__main__":
    main()
