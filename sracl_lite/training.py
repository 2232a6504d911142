"""Training with next-item cross-entropy plus SRA-CL's two contrastive losses (notebooks 04-06).

    L = L_rec + alpha * L_cross + beta * L_intra

One step, all on the training device with no Python loop over samples (and, with
TrainConfig.cuda_graph, replayed as one CUDA graph):
1. gather a batch of training prefixes (B, L) and their targets;
2. cross-sequence: each prefix's pool entry, its k retrieved entries and their (precomputed,
   left-padded) sequences (B * k, L), or only the distinct ones (TrainConfig.unique_candidates);
3. intra-sequence: two views of the batch: semantic substitution, CL4SRec's operators, or
   DuoRec's (the prefix again and another prefix with the same next item);
4. encode anchors, candidates and views in ONE encoder call, split the (B + Bk + 2B, D) output;
5. L_rec = softmax cross-entropy over all items; L_cross = InfoNCE(anchor, synthesized positive)
   or, as the reference does (cross_loss="nt_xent"), NT-Xent between a second dropout pass of
   the anchor and the positive; L_intra = NT-Xent(view 1, view 2).
With alpha = beta = 0 only step 1 and L_rec run: the random streams are plain SASRec's.
"""
import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoints import CHECKPOINT_FORMAT, load_training_state, save_training_state
from .experiments import TrainConfig, kept_rows
from .losses import (SYNTHESIZERS, cl4srec_augment, info_nce, nt_xent, same_target_groups, same_target_partner,
                     semantic_substitute)
from .metrics import full_ranks, metrics_from_ranks
from .model import build_model, check_item_ids, resolve_device
from .semantic import pool_entry_of_prefixes, pool_sequences
from .step_graph import CapturedStep

TABLE_NAMES = ("item_neighbors", "entry", "pool_neighbors", "pool_inputs", "pool_emb")


@dataclass
class TrainResult:
    config: TrainConfig
    history: list               # one dict per epoch: losses, seconds, validation metrics when evaluated
    best_epoch: int
    valid: dict                 # validation metrics of the best state
    test: dict                  # test metrics of the best state
    valid_ranks: np.ndarray     # (n_users,) per-user ranks, for paired tests (metrics.per_user_metrics)
    test_ranks: np.ndarray
    model: torch.nn.Module      # the best state, in eval mode
    synthesizer: Optional[torch.nn.Module] = None
    train_seconds: float = 0.0  # training time without evaluation

    def history_frame(self):
        import pandas as pd
        return pd.DataFrame(self.history).set_index("epoch")

    def plot(self, metric: Optional[str] = None):
        """Loss curves and the validation metric per epoch (see `plot_histories` to compare runs)."""
        from .diagnostics import plot_histories
        return plot_histories({"run": self}, metric or self.config.valid_metric)

    def record(self, **extra) -> dict:
        """JSON-ready summary for `notebook.save_metrics`: config, best epoch, metrics of the best
        state, per-user ranks (for paired tests), the history, and `extra` (notebooks 04-06)."""
        return {"config": asdict(self.config), "best_epoch": self.best_epoch, "valid": self.valid,
                "test": self.test, "valid_ranks": np.asarray(self.valid_ranks).tolist(),
                "test_ranks": np.asarray(self.test_ranks).tolist(), "history": self.history,
                "train_seconds": self.train_seconds, **extra}


class Trainer:
    """Holds the data on the device, the model, the optional synthesizer and the optimizer (notebook 04).

    `fit()` trains with early stopping and returns a TrainResult; `train_epoch()` and
    `evaluate(split)` are the pieces (the speed benchmark times `train_epoch`).
    """

    def __init__(self, ds, config: TrainConfig = None, tables=None):
        self.config = config = config or TrainConfig()
        self.ds, self.tables = ds, tables
        self.device = device = resolve_device(config.device)
        self.amp = config.bf16 and device.type == "cuda"
        L = config.max_len

        prefixes = ds.train_prefixes(L)
        check_item_ids(prefixes.inputs, ds.n_items, f"{ds.name} training prefixes")
        check_item_ids(prefixes.targets, ds.n_items, f"{ds.name} training targets")
        keep = kept_rows(len(prefixes.targets), config)
        self.n_train = len(keep)
        self.inputs = torch.as_tensor(prefixes.inputs[keep], device=device)       # (N, L)
        self.targets = torch.as_tensor(prefixes.targets[keep], device=device)     # (N,)

        needs_tables = config.alpha > 0 or (config.beta > 0 and config.intra_aug == "semantic")
        if needs_tables:
            if tables is None:
                raise ValueError("alpha > 0 or intra_aug='semantic' with beta > 0 needs semantic tables: pass "
                                 "tables= (notebook 03, or baselines.random_neighbor_tables) or set alpha=0 / beta=0")
            self._load_tables(tables, prefixes.users[keep], prefixes.lengths[keep])
        if config.uses_intra and config.intra_aug == "duorec":
            self.target_groups = {name: torch.as_tensor(a, device=device)
                                  for name, a in same_target_groups(prefixes.targets[keep]).items()}

        # Model first, straight after seeding: plain SASRec training draws the same initial weights.
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.model = build_model(config.model, ds.n_items, L).to(device)
        self.synthesizer = None
        if config.alpha > 0:
            synthesizer = SYNTHESIZERS[config.synthesizer]
            self.synthesizer = synthesizer(self.pool_emb.shape[1], config.model.hidden, config.synthesizer,
                                           config.synth_dropout, config.synth_init).to(device)
        params = list(self.model.parameters()) + (list(self.synthesizer.parameters()) if self.synthesizer else [])
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                          fused=device.type == "cuda", capturable=config.cuda_graph)
        # Batch order has its own stream, so turning augmentations on never changes it.
        self.order_rng = torch.Generator(device=device).manual_seed(config.seed)
        for name, obstacle in (("compile", config.compile and config.compile_obstacle(device.type)),
                               ("cuda_graph", config.cuda_graph and config.cuda_graph_obstacle(device.type))):
            if obstacle:
                raise ValueError(f"TrainConfig.{name}={getattr(config, name)!r}: {obstacle}")
        self.step_losses = self._step_losses
        if config.compile:
            # tables stay where they are: CUDA graphs would otherwise copy each into a buffer at every replay
            for table in (self.inputs, self.targets, *(getattr(self, n) for n in TABLE_NAMES if hasattr(self, n)),
                          *getattr(self, "target_groups", {}).values()):
                torch._dynamo.mark_static_address(table)
            # combo kernels: inductor runs independent small kernels as one launch (Beauty epochs 3% faster,
            # measured with and without them in one run)
            options = {**torch._inductor.list_mode_options(config.compile), "combo_kernels": True}
            self.step_losses = torch.compile(self._step_losses, options=options, dynamic=False)
        self.loss_sums = torch.zeros(4, device=device)  # per epoch, summed on the device (no host sync)
        self.full_batch_step = CapturedStep(self.train_step) if config.cuda_graph else self.train_step

        longest = max(len(s) for s in ds.train_sequences) + 1
        self.eval_data = {}
        for split in ("valid", "test"):
            inputs, targets = ds.eval_inputs(split, L)
            history, _ = ds.eval_inputs(split, longest)      # whole history, excluded from ranking
            self.eval_data[split] = tuple(torch.as_tensor(a, device=device) for a in (inputs, targets, history))
        self.epoch = 0

    def _load_tables(self, tables, users, lengths):
        config, ds, device = self.config, self.ds, self.device
        tables.check_fits(ds.n_users, ds.n_items)
        if tables.item_neighbors.shape[0] != ds.n_items + 1:
            raise ValueError(f"item_neighbors has {tables.item_neighbors.shape[0]} rows; {ds.name} needs "
                             f"n_items + 1 = {ds.n_items + 1}. Rebuild the tables for this dataset")
        k = config.k or tables.k
        if k > tables.k or k > tables.item_neighbors.shape[1]:
            raise ValueError(f"TrainConfig.k={k} but the tables hold {tables.k} neighbours per entry; use "
                             f"k <= {tables.k} or rebuild the tables with more")
        self.k = k
        check_item_ids(tables.item_neighbors, ds.n_items, "semantic tables item_neighbors")
        self.item_neighbors = torch.as_tensor(tables.item_neighbors[:, :k], device=device)  # (n_items+1, k)
        if config.alpha == 0:
            return  # the pool serves the cross-sequence loss only
        entry = pool_entry_of_prefixes(tables, users, lengths, config.pool_match)
        if not tables.searched[entry].all():
            raise ValueError(f"semantic tables: {int((~tables.searched[entry]).sum())} training prefixes' pool entries "
                             "have no searched neighbours (tables built for other anchors); build them with "
                             "anchors=experiments.trained_prefixes(ds, config) of this config, or for every entry")
        self.entry = torch.as_tensor(entry, device=device)                                 # (N,)
        self.pool_neighbors = torch.as_tensor(tables.pool_neighbors[:, :k], device=device)  # (P, k)
        self.pool_inputs = torch.as_tensor(pool_sequences(tables, ds.train_sequences, config.max_len),
                                           device=device)                                  # (P, L)
        self.pool_emb = torch.as_tensor(np.asarray(tables.pool_emb, dtype=np.float32), device=device)  # (P, d)

    def _views(self, x, idx):
        if self.config.intra_aug == "semantic":
            return [semantic_substitute(x, self.item_neighbors, self.config.sub_prob) for _ in range(2)]
        if self.config.intra_aug == "duorec":  # the prefix again (its own dropout) and a same-target prefix
            return [x, self.inputs[same_target_partner(idx, self.target_groups)]]
        return [cl4srec_augment(x, self.model.mask_id) for _ in range(2)]

    def batch(self, idx):
        """Gather the step's inputs for the prefixes `idx` (B,): every sequence to encode, in one
        (B [+ B] + C + 2B, L) tensor (anchors, their second pass for cross_loss="nt_xent",
        candidates, views), the targets, the semantic embeddings of anchors and candidates, and
        where each anchor's k candidates sit among the C candidate rows (None: C = Bk in order)."""
        config = self.config
        x, y = self.inputs[idx], self.targets[idx]                               # (B, L), (B,)
        B, L = x.shape
        parts, anchor_sem, cand_sem, cand_index = [x], None, None, None
        if config.second_anchor_pass:
            parts.append(x)                                                      # its own dropout masks
        if config.alpha > 0:
            entry = self.entry[idx]                                              # (B,)
            cand = self.pool_neighbors[entry]                                    # (B, k)
            anchor_sem, cand_sem = self.pool_emb[entry], self.pool_emb[cand]     # (B, d), (B, k, d)
            if config.unique_candidates:
                cand, cand_index = torch.unique(cand, return_inverse=True)       # (C,), (B, k)
            parts.append(self.pool_inputs[cand].view(-1, L))                     # (C, L)
        if config.uses_intra:
            parts.extend(self._views(x, idx))                                         # 2 x (B, L)
        return (torch.cat(parts) if len(parts) > 1 else x), y, anchor_sem, cand_sem, cand_index

    def _step_losses(self, idx):
        return self.losses(*self.batch(idx))

    def train_step(self, idx):
        """One update on the prefixes `idx`; adds the loss parts times len(idx) to `loss_sums`."""
        self.optimizer.zero_grad(set_to_none=not self.config.cuda_graph)  # captured: zeroed in place, same memory
        losses = self.step_losses(idx)
        losses[0].backward()
        self.optimizer.step()
        self.loss_sums += torch.stack([part.detach().float() for part in losses]) * len(idx)

    def candidate_reps(self, rows, cand_index=None):
        """(C, D) encoded candidate rows -> (B, k, D), each anchor's k candidates: the rows in order
        (C = Bk) or, with unique_candidates, the distinct rows picked by `cand_index` (B, k)."""
        return rows.view(-1, self.k, rows.shape[-1]) if cand_index is None else rows[cand_index]

    def losses(self, seqs, y, anchor_sem, cand_sem, cand_index=None):
        """Loss parts (total, rec, cross, intra) of one step from the gathered batch."""
        config, B, cosine = self.config, len(y), self.config.similarity == "cosine"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            reps = self.model.encode(seqs)                                       # (B + C + 2B, D), one call
        anchor = reps[:B]
        rec = F.cross_entropy(self.model.item_scores(anchor)[:, 1:], y - 1)      # padding excluded
        total, zero = rec, rec.new_zeros(())
        cross = intra = zero
        if config.alpha > 0:
            first = 2 * B if config.second_anchor_pass else B                    # first candidate row
            C = len(reps) - first - (2 * B if config.uses_intra else 0)
            cand_reps = self.candidate_reps(reps[first:first + C], cand_index)  # (B, k, D)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                positive = self.synthesizer(anchor_sem, cand_sem, cand_reps)     # (B, D)
            if config.second_anchor_pass:
                cross = nt_xent(reps[B:2 * B], positive, config.temperature, cosine)
            else:
                cross = info_nce(anchor, positive, config.temperature, cosine)
            total = total + config.alpha * cross
        if config.uses_intra:
            intra = nt_xent(reps[-2 * B:-B], reps[-B:], config.temperature, cosine)
            total = total + config.beta * intra
        return total, rec, cross, intra

    def train_epoch(self, progress: bool = False, max_steps: int = None) -> dict:
        """One pass over the training prefixes in a fresh random order; mean losses and seconds.

        max_steps stops early (CPU speed estimates); such a partial pass still counts as an epoch.
        """
        self.model.train()
        if self.synthesizer is not None:
            self.synthesizer.train()
        start = time.perf_counter()
        bs = self.config.batch_size
        order = torch.randperm(self.n_train, device=self.device, generator=self.order_rng)
        firsts = range(0, self.n_train, bs)[:max_steps]
        seen = min(self.n_train, len(firsts) * bs)
        self.loss_sums.zero_()
        for first in tqdm(firsts, disable=not progress, leave=False, desc=f"epoch {self.epoch + 1}"):
            idx = order[first:first + bs]
            (self.full_batch_step if len(idx) == bs else self.train_step)(idx)
        total, rec, cross, intra = (self.loss_sums / seen).tolist()   # the epoch's one host sync
        if not math.isfinite(total):
            raise FloatingPointError(f"training diverged in epoch {self.epoch + 1}: mean loss {total} (rec {rec}, "
                                     f"cross {cross}, intra {intra}); lower lr, alpha or beta")
        self.epoch += 1
        return {"epoch": self.epoch, "loss": total, "rec": rec, "cross": cross, "intra": intra,
                "train_seconds": time.perf_counter() - start, "steps": len(firsts)}

    def evaluate(self, split: str = "valid", exclude_history: bool = None):
        """Full-ranking metrics and per-user ranks of the current model on 'valid' or 'test'.

        exclude_history: None follows the config; True removes the user's history from the
        candidates (ours), False ranks all items (the reference's protocol)."""
        if split not in self.eval_data:
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        inputs, targets, history = self.eval_data[split]
        if not (self.config.exclude_history if exclude_history is None else exclude_history):
            history = None
        ranks = full_ranks(self.model, inputs, targets, history, self.config.eval_batch_size, self.device)
        return metrics_from_ranks(ranks), ranks

    def state(self) -> dict:
        return {"model": copy.deepcopy(self.model.state_dict()),
                "synthesizer": copy.deepcopy(self.synthesizer.state_dict()) if self.synthesizer else None}

    def load_state(self, state: dict):
        self.model.load_state_dict(state["model"])
        if self.synthesizer is not None and state.get("synthesizer") is not None:
            self.synthesizer.load_state_dict(state["synthesizer"])

    def fit(self, state_path=None) -> TrainResult:
        """Train with early stopping on validation, then score test with the best state.

        state_path: a file that receives the whole training state after every epoch; when it
        exists, training resumes from it, so a killed run ends as it would have without the kill."""
        config = self.config
        run = {"history": [], "best": -1.0, "best_epoch": 0, "best_state": None, "train_seconds": 0.0}
        data_hash = self.ds.content_hash() if state_path else None
        if state_path and Path(state_path).exists():
            run = load_training_state(state_path, self, data_hash)
        history = run["history"]
        trained = config.model.backbone + " + cross" * bool(config.alpha) + " + intra" * bool(config.beta)
        bar = tqdm(range(self.epoch, config.epochs), desc=f"{self.ds.name} {trained}", disable=not config.progress)
        for _ in bar:
            waited = self.epoch - run["best_epoch"]
            if run["best_state"] is not None and (waited > config.patience if config.early_stop == "recbole"
                                                  else waited >= config.patience):
                break
            record = self.train_epoch(progress=config.progress)
            run["train_seconds"] += record["train_seconds"]
            epoch = record["epoch"]
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                start = time.perf_counter()
                metrics, _ = self.evaluate("valid")
                record.update(metrics, eval_seconds=time.perf_counter() - start)
                score = metrics[config.valid_metric]
                if config.early_stop == "recbole":
                    score = round(score, 4)
                if score > run["best"] or (config.early_stop == "recbole" and score == run["best"]):
                    run.update(best=score, best_epoch=epoch, best_state=self.state())
                    if config.checkpoint:
                        self.save_checkpoint(config.checkpoint, metrics)
                shown = {config.valid_metric: f"{metrics[config.valid_metric]:.4f}"}
                bar.set_postfix(loss=f"{record['loss']:.3f}", **shown, best=run["best_epoch"])
            history.append(record)
            if state_path:
                save_training_state(state_path, self, run, data_hash)
        bar.close()
        self.load_state(run["best_state"])
        valid, valid_ranks = self.evaluate("valid")
        test, test_ranks = self.evaluate("test")
        self.model.eval()
        return TrainResult(config=config, history=history, best_epoch=run["best_epoch"], valid=valid, test=test,
                           valid_ranks=valid_ranks, test_ranks=test_ranks, model=self.model,
                           synthesizer=self.synthesizer, train_seconds=run["train_seconds"])

    def save_checkpoint(self, path, metrics: dict = None):
        """The current state with everything needed to rebuild and check it (`load_checkpoint`)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "dataset": self.ds.name,
                    "n_items": self.ds.n_items, "n_users": self.ds.n_users, "epoch": self.epoch,
                    "text_dim": self.synthesizer.text_dim if self.synthesizer else None,
                    "valid": metrics, **self.state()}, path)


def train(ds, config: TrainConfig = None, tables=None) -> TrainResult:
    """Train on `ds` (data.SequenceData) with `config`; `tables` (semantic.SemanticTables) are
    needed when alpha > 0 or intra_aug='semantic' (notebooks 04-06)."""
    return Trainer(ds, config, tables).fit()
