"""Looking inside training (notebooks 05-06): loss and validation curves, the cross-sequence
loss at the first training step, and the weights a sample synthesizer gives the retrieved candidates."""
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .losses import info_nce, nt_xent


def mean_grad_norm(loss, rows) -> float:
    """The mean over rows of the norm of loss's gradient on each row of `rows`."""
    return torch.autograd.grad(loss, rows, retain_graph=True)[0].norm(dim=1).mean().item()


def first_step_losses(trainer, batch, alpha: float, seed: int) -> pd.DataFrame:
    """The cross-sequence loss of one step of `trainer`'s model (untrained: where training starts),
    with the synthesizer's weight dropout on (as trained) and off, one row each.

    Either form of the loss: the reference's NT-Xent of a second anchor pass against the positives
    (cross_loss="nt_xent", 2B rows) or the default's InfoNCE of the next-item pass (B x B). Columns:
    L_cross; the L_cross of uninformative (equal) logits, log(2B - 1) or log B; the mean norm of the
    contrasted anchors; the mean and std of the positives' norms; and the gradient that
    alpha * L_cross puts on the contrasted anchors relative to the one L_rec puts on the next-item
    pass's. Both rows draw the same encoder dropout (torch seeded with `seed`).
    """
    config = trainer.config
    if config.uses_intra or config.alpha <= 0:
        raise ValueError("first_step_losses reads a step of anchors and candidates only: use alpha > 0 and beta = 0")
    trainer.model.train()
    seqs, targets, anchor_sem, cand_sem, cand_index = trainer.batch(batch)
    B, second, cosine = len(batch), config.second_anchor_pass, config.similarity == "cosine"
    first = 2 * B if second else B                                               # the first candidate row
    rows = {}
    for label, dropout_on in (("weights with dropout (as trained)", True), ("weights without dropout", False)):
        trainer.synthesizer.train(dropout_on)
        torch.manual_seed(seed)
        reps = trainer.model.encode(seqs)                                        # (B [+ B] + C, D)
        anchor, contrasted = reps[:B], reps[B:2 * B] if second else reps[:B]     # (B, D) each
        cand_reps = trainer.candidate_reps(reps[first:], cand_index)             # (B, k, D)
        positive = trainer.synthesizer(anchor_sem, cand_sem, cand_reps)          # (B, D)
        rec = F.cross_entropy(trainer.model.item_scores(anchor)[:, 1:], targets - 1)
        loss = nt_xent if second else info_nce
        cross = loss(contrasted, positive, config.temperature, cosine)
        rows[label] = {"L_cross": cross.item(), "L_cross of equal logits": np.log(2 * B - 1 if second else B),
                       "anchor norm": contrasted.norm(dim=1).mean().item(),
                       "positive norm, mean": positive.norm(dim=1).mean().item(),
                       "positive norm, std": positive.norm(dim=1).std().item(),
                       "gradient on anchors, alpha*L_cross / L_rec":
                           mean_grad_norm(alpha * cross, contrasted) / mean_grad_norm(rec, anchor)}
    return pd.DataFrame(rows).T


def candidate_weights(synthesizer, pool_emb, pool_neighbors, rows=None, chunk_size: int = 8192) -> np.ndarray:
    """(P, d) semantic embeddings of pool entries and (A, k) neighbour entries -> (A, k) weights the
    synthesizer gives each anchor's k neighbours as candidates, without dropout (rows sum to 1).
    rows: the pool entry of each anchor (None: anchor i is entry i, A = P)."""
    device = next(synthesizer.parameters(), torch.empty(0)).device
    emb = torch.as_tensor(np.asarray(pool_emb), dtype=torch.float32, device=device)
    neighbors = torch.as_tensor(np.asarray(pool_neighbors), device=device)
    rows = torch.arange(len(neighbors), device=device) if rows is None else torch.as_tensor(rows, device=device)
    was_training = synthesizer.training
    synthesizer.eval()
    with torch.no_grad():
        weights = [synthesizer.weights(emb[rows[start:start + chunk_size]], emb[neighbors[start:start + chunk_size]])
                   for start in range(0, len(neighbors), chunk_size)]
    synthesizer.train(was_training)
    return torch.cat(weights).cpu().numpy()


def candidate_scores(synthesizer, pool_emb) -> np.ndarray:
    """(P, d) -> (P,) each pool entry's score as a candidate, a_2^T W s_j (SampleSynthesizer.candidate_term).
    LeakyReLU and softmax are increasing, so this global score orders the weights of every anchor's
    candidates (the anchor term cannot reorder them)."""
    emb = torch.as_tensor(np.asarray(pool_emb), dtype=torch.float32, device=synthesizer.attn.device)
    with torch.no_grad():
        return synthesizer.candidate_term(emb).cpu().numpy()


def weight_entropy(weights) -> np.ndarray:
    """(n, k) weights, rows summing to 1 -> (n,) entropy of each row over log k: 1 when uniform,
    0 when one candidate takes all the weight."""
    w = np.asarray(weights)
    return -np.where(w > 0, w * np.log(np.where(w > 0, w, 1)), 0).sum(1) / np.log(w.shape[1])


def plot_histories(results: dict, metric: str = "NDCG@10"):
    """Two panels: training losses and a validation metric per epoch, one line set per run (notebook 05).

    `results` maps a label to a TrainResult or to its saved `record()` (notebook 06 plots saved runs).
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (label, result) in enumerate(results.items()):
        if isinstance(result, dict):
            frame, best_epoch = pd.DataFrame(result["history"]).set_index("epoch"), result["best_epoch"]
        else:
            frame, best_epoch = result.history_frame(), result.best_epoch
        color = f"C{i}"
        left.plot(frame.index, frame["loss"], color=color, label=f"{label}: total")
        for part, style in (("rec", "--"), ("cross", ":"), ("intra", "-.")):
            if len(results) == 1 and frame[part].abs().sum() > 0 and not np.allclose(frame[part], frame["loss"]):
                left.plot(frame.index, frame[part], color=color, linestyle=style, label=f"{label}: {part}")
        if metric in frame:
            evaluated = frame[metric].dropna()
            right.plot(evaluated.index, evaluated, color=color, marker="o", markersize=3, label=label)
            if best_epoch in evaluated.index:                  # a star on each run's own curve: never hidden
                right.plot(best_epoch, evaluated[best_epoch], color=color, marker="*", markersize=13)
    left.set(xlabel="epoch", ylabel="training loss", title="losses")
    right.set(xlabel="epoch", ylabel=metric, title=f"validation {metric} (star: best epoch)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)   # below, not over the lines
    fig.tight_layout()
    return fig
