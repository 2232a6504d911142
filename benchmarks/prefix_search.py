"""Notebook 05's per-prefix neighbour search: every entry against only the anchors that train.

    python benchmarks/prefix_search.py               # ML-100K, notebook 03's llm_text tables, CPU profile

Prints the seconds of `retrieval.reference_tables` for the anchors of the CPU profile's short reference
run (4,096 seeded training prefixes) and for every one of the 96,458 entries, measured one after the
other in one run, and whether the anchors' rows agree (identical rows, overlap@10).
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sracl_lite import experiments, retrieval as R  # noqa: E402
from sracl_lite.data import load_dataset  # noqa: E402
from sracl_lite.semantic import SemanticTables  # noqa: E402


def main():
    ds = load_dataset("ml-100k")
    tables = SemanticTables.load(R.tables_path(ds.artefact_dir, "llm_text"))
    config = experiments.profile_config("cpu", "reference", k=10, seed=2024, device="cpu", epochs=2,
                                        max_train_prefixes=4096, unique_candidates=False)
    anchors = experiments.trained_prefixes(ds, config)
    start = time.perf_counter()
    part = R.reference_tables(tables.item_emb, ds.train_sequences, k=10, exclude="rank0", anchors=anchors)
    part_seconds = time.perf_counter() - start
    start = time.perf_counter()
    full = R.reference_tables(tables.item_emb, ds.train_sequences, k=10, exclude="rank0")
    full_seconds = time.perf_counter() - start
    rows = part.searched
    same = (part.pool_neighbors[rows] == full.pool_neighbors[rows]).all(1).mean()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(part.pool_neighbors[rows], full.pool_neighbors[rows])])
    print(f"anchors that train: {rows.sum():,} rows, {part_seconds:.1f} s; every entry: {len(rows):,} rows, "
          f"{full_seconds:.1f} s; the anchors' rows identical {same:.3f}, overlap@10 {overlap:.3f}")


if __name__ == "__main__":
    main()
