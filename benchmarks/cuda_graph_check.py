"""Checks of the captured training step (TrainConfig.cuda_graph) on a CUDA GPU; exits 1 on a failure.

The test suite runs on CPUs, where no CUDA graph exists, so these checks run here instead:
    python benchmarks/cuda_graph_check.py
1. Without randomness (every dropout 0, no augmentation) a captured step must do exactly what
   the eager step does: the same losses, epoch after epoch, and the same parameters after
   training; for SASRec, GRU4Rec and the reference preset, and with torch.compile's kernels.
2. Each replay must draw fresh random numbers (dropout masks, substitutions).
3. With randomness on, every variant of the results grid runs captured with finite losses.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sracl_lite import baselines as B  # noqa: E402
from sracl_lite import retrieval as R  # noqa: E402
from sracl_lite.data import SequenceData  # noqa: E402
from sracl_lite.experiments import PRESETS, TrainConfig  # noqa: E402
from sracl_lite.model import ModelConfig  # noqa: E402
from sracl_lite.step_graph import CapturedStep  # noqa: E402
from sracl_lite.training import Trainer  # noqa: E402

NO_DROPOUT = dict(dropout=0.0, attn_dropout=0.0)
failures = []


def check(holds: bool, what: str):
    print(("ok      " if holds else "FAILED  ") + what, flush=True)
    if not holds:
        failures.append(what)


def synthetic_data(n_users=600, n_items=300, seed=0) -> SequenceData:
    rng = np.random.default_rng(seed)
    rows = [(u, int(i), t) for u in range(n_users)
            for t, i in enumerate(rng.choice(n_items, rng.integers(6, 30), replace=False))]
    return SequenceData.from_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
                                          "synthetic")


def train(ds, tables, n_epochs, **settings):
    config = TrainConfig(**{"batch_size": 64, "device": "cuda", "progress": False, **settings})
    trainer = Trainer(ds, config, tables[config.pool_match == "prefix"])
    history = [trainer.train_epoch() for _ in range(n_epochs)]
    return trainer, history


def differences(run, other):
    """Largest relative difference of the epoch losses, largest absolute one of the parameters."""
    (first, first_history), (second, second_history) = run, other
    losses = max(abs(a[part] - b[part]) / max(abs(a[part]), 1e-8) for a, b in zip(first_history, second_history)
                 for part in ("loss", "rec", "cross", "intra"))
    params = max((p - q).abs().max().item() for p, q in zip(first.model.parameters(), second.model.parameters()))
    return losses, params


def same_run(ds, tables, label, tolerance, **settings):
    """Eager twice (GPU kernels with atomics differ in the last bits run to run), then captured."""
    eager = train(ds, tables, 3, **settings)
    noise = differences(eager, train(ds, tables, 3, **settings))
    graph = train(ds, tables, 3, cuda_graph=True, **settings)
    losses, params = differences(eager, graph)
    captured = graph[0].full_batch_step.graph is not None
    check(captured and losses <= max(tolerance, 10 * noise[0]) and params <= max(10 * tolerance, 10 * noise[1]),
          f"{label}: captured step = eager step (losses rel. diff {losses:.1e}, parameters {params:.1e}; "
          f"eager vs eager {noise[0]:.1e}, {noise[1]:.1e}; tolerance {tolerance:g})")


def fresh_randomness():
    buffer = torch.zeros(1000, device="cuda")
    step = CapturedStep(lambda idx: buffer.copy_(torch.rand(1000, device="cuda")[idx]), warmup=1)
    idx = torch.arange(1000, device="cuda")
    draws = []
    for _ in range(4):  # one eager warm-up, the capture (replayed), two more replays
        step(idx)
        draws.append(buffer.clone())
    check(all(not torch.equal(a, b) for a, b in zip(draws, draws[1:])),
          "every replay draws new random numbers")


def main():
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    ds = synthetic_data()
    pools = (R.user_pool(ds.train_sequences), R.prefix_pool(ds.train_sequences, whole=False))
    tables = [B.random_neighbor_tables(ds.train_sequences, ds.n_items, pool, k=5, dim=32) for pool in pools]
    deterministic = dict(model=ModelConfig(**NO_DROPOUT), synth_dropout=0.0, sub_prob=0.0, seed=3)
    same_run(ds, tables, "SASRec", 1e-4, alpha=0.0, beta=0.0, **deterministic)
    same_run(ds, tables, "default SRA-CL", 1e-4, alpha=0.1, beta=0.1, **deterministic)
    reference = {**PRESETS["reference"], "k": 5, "model": {**PRESETS["reference"]["model"], **NO_DROPOUT}}
    same_run(ds, tables, "reference preset", 1e-4, **{**reference, **deterministic,
                                                      "model": ModelConfig(**reference["model"])})
    same_run(ds, tables, "GRU4Rec + SRA-CL", 1e-4, alpha=0.1, beta=0.1,
             **{**deterministic, "model": ModelConfig(backbone="gru4rec", **NO_DROPOUT)})
    same_run(ds, tables, "default SRA-CL, compile='default'", 1e-3, alpha=0.1, beta=0.1, compile="default",
             **deterministic)
    fresh_randomness()
    randomised = {"default SRA-CL": dict(alpha=0.1, beta=0.1),
                  "CL4SRec": dict(alpha=0.0, beta=0.1, intra_aug="cl4srec"),
                  "DuoRec": dict(alpha=0.0, beta=0.1, intra_aug="duorec"),
                  "reference preset": dict(PRESETS["reference"], k=5),
                  "SRA-CL, compile='default'": dict(alpha=0.1, beta=0.1, compile="default")}
    for label, settings in randomised.items():
        _, history = train(ds, tables, 2, cuda_graph=True, **settings)
        check(all(np.isfinite(h["loss"]) for h in history), f"{label} with dropout, captured: finite losses "
              f"{[round(h['loss'], 3) for h in history]}")
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
