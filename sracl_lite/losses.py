"""Contrastive losses and sequence augmentations (notebooks 05 and 06).

- `info_nce`: anchor vs positive, the other rows' positives as negatives (cross-sequence CL).
- `nt_xent`: two views of each sequence, 2N - 2 negatives (intra-sequence CL, and the reference's
  cross-sequence loss: a second anchor pass and its positive).
- `SampleSynthesizer`: attention over the k retrieved sequences' frozen semantic embeddings;
  the weighted sum of their backbone representations is the cross-sequence positive.
- `semantic_substitute`: the intra-sequence view of SRA-CL (items swapped for semantic
  neighbours).
- `cl4srec_augment`: crop / mask / reorder, for the CL4SRec baseline.
- `same_target_partner`: another prefix with the same next item, for the DuoRec baseline.

Every augmentation is a batched tensor operation (no Python loop over samples), so it runs on
the training device inside the step.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import dropout

SYNTHESIZER_MODES = ("learned", "uniform")
SYNTHESIZER_INITS = ("small", "xavier")


def similarity_logits(a, b, temperature: float, cosine: bool):
    """(N, D), (M, D) -> (N, M) similarities over `temperature`, in float32: dot products (the
    reference) or, with `cosine`, dot products of unit vectors (ours: bounded logits)."""
    a, b = a.float(), b.float()
    if cosine:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T / temperature


def info_nce(anchor, positive, temperature: float = 1.0, cosine: bool = False):
    """InfoNCE with in-batch negatives: (N, D), (N, D) -> scalar (notebook 05).

    Row i's positive is positive[i]; positive[j] for j != i are its N - 1 negatives.
    Similarity is the dot product (reference) or the cosine over `temperature` (reference: 1.0).
    """
    if anchor.shape != positive.shape:
        raise ValueError(f"info_nce: anchor {tuple(anchor.shape)} and positive {tuple(positive.shape)} "
                         "must have the same shape (N, D)")
    logits = similarity_logits(anchor, positive, temperature, cosine)           # (N, N)
    labels = torch.arange(len(anchor), device=anchor.device)
    return F.cross_entropy(logits, labels)


def nt_xent(view1, view2, temperature: float = 1.0, cosine: bool = False):
    """NT-Xent over 2N rows: (N, D), (N, D) -> scalar (notebooks 05 and 06).

    Each view's positive is the other view of the same sequence; the remaining 2N - 2 views in
    the batch are its negatives (self-similarity excluded), averaged over all 2N views.
    """
    if view1.shape != view2.shape:
        raise ValueError(f"nt_xent: views {tuple(view1.shape)} and {tuple(view2.shape)} must have the "
                         "same shape (N, D)")
    N = len(view1)
    z = torch.cat([view1, view2])                                               # (2N, D)
    logits = similarity_logits(z, z, temperature, cosine)                       # (2N, 2N)
    self_pair = torch.eye(2 * N, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pair, float("-inf"))
    rows = torch.arange(N, device=z.device)
    labels = torch.cat([rows + N, rows])                                        # the other view
    return F.cross_entropy(logits, labels)


class SampleSynthesizer(nn.Module):
    """Weights the k retrieved candidates of each anchor and mixes their representations (notebook 05).

    learned: logit_j = LeakyReLU_0.2(a^T [W s ; W s_j]), softmax over j, dropout on the weights
             while training (reference: 0.5). s, s_j are frozen semantic embeddings (text_dim);
             W maps them to `hidden`.
    uniform: every candidate weighs 1/k (the "w/o synthesizer" ablation; no parameters).
    init: "small" (ours: PyTorch's default W, a ~ N(0, 0.02), so the weights start near uniform)
          or "xavier" (the reference: W and a Xavier-uniform with gain 1.414, GAT's init). The
          inputs are used as given, never rescaled: the logits grow with their norms (the
          reference's raw SimCSE embeddings: about 15-20), yet weights only leave uniform where an
          anchor's k candidates differ (notebook 05: near-identical neighbours stay uniform).
    """

    def __init__(self, text_dim: int, hidden: int, mode: str = "learned", dropout: float = 0.5,
                 init: str = "small"):
        super().__init__()
        if mode not in SYNTHESIZER_MODES:
            raise ValueError(f"synthesizer mode {mode!r}; choose one of {SYNTHESIZER_MODES}")
        if init not in SYNTHESIZER_INITS:
            raise ValueError(f"synthesizer init {init!r}; choose one of {SYNTHESIZER_INITS}")
        self.text_dim, self.hidden, self.mode, self.dropout = text_dim, hidden, mode, dropout
        if mode == "learned":
            self.project = nn.Linear(text_dim, hidden, bias=False)              # W
            # a = [a_anchor ; a_candidate]; small values start the weights near uniform
            self.attn = nn.Parameter(torch.randn(2 * hidden) * 0.02)
            if init == "xavier":
                nn.init.xavier_uniform_(self.project.weight, gain=1.414)        # same bound as on (text_dim, hidden)
                with torch.no_grad():
                    nn.init.xavier_uniform_(self.attn.view(2 * hidden, 1), gain=1.414)  # a is (2 hidden, 1) there

    def check_dims(self, anchor_sem, cand_sem):
        for name, t in (("anchor semantic embeddings", anchor_sem), ("candidate semantic embeddings", cand_sem)):
            if t.shape[-1] != self.text_dim:
                raise ValueError(f"{name} have dimension {t.shape[-1]}, but the synthesizer was built for "
                                 f"{self.text_dim}; build it with text_dim={t.shape[-1]} or use the tables "
                                 "it was trained with")
        if anchor_sem.dim() != 2 or cand_sem.dim() != 3 or cand_sem.shape[0] != anchor_sem.shape[0]:
            raise ValueError(f"expected anchor (B, d) and candidates (B, k, d) semantic embeddings; got "
                             f"{tuple(anchor_sem.shape)} and {tuple(cand_sem.shape)}")

    def weights(self, anchor_sem, cand_sem):
        """(B, d), (B, k, d) -> (B, k) candidate weights (rows sum to 1 before dropout)."""
        self.check_dims(anchor_sem, cand_sem)
        B, k, _ = cand_sem.shape
        if self.mode == "uniform":
            return cand_sem.new_full((B, k), 1.0 / k)
        # a^T [Ws ; Ws_j] splits into an anchor term and a candidate term, each computed as
        # s . (W^T a_part): the same numbers as projecting every s to `hidden` first, with one
        # text_dim-long vector instead of B (k + 1) projections
        anchor_part = anchor_sem @ (self.attn[:self.hidden] @ self.project.weight)  # (B,)
        logits = F.leaky_relu(anchor_part[:, None] + self.candidate_term(cand_sem), 0.2)  # (B, k)
        w = torch.softmax(logits.float(), dim=-1)
        return dropout(w, self.dropout, self.training)

    def candidate_term(self, sem):
        """(..., d) -> (...): a_2^T W s, the part of the attention logit that depends on the candidate alone."""
        return sem @ (self.attn[self.hidden:] @ self.project.weight)            # W: (hidden, text_dim)

    def forward(self, anchor_sem, cand_sem, cand_reps):
        """(B, d), (B, k, d), (B, k, D) -> (B, D) synthesized positive."""
        w = self.weights(anchor_sem, cand_sem)                                  # (B, k)
        return torch.einsum("bk,bkd->bd", w.to(cand_reps.dtype), cand_reps)


class UniformDropoutSynthesizer(SampleSynthesizer):
    """Uniform weights 1/k with the learned mode's dropout on them (the reference's 0.5): the "w/o
    synthesizer" ablation that changes the weighting alone (mode "uniform" also drops the dropout)."""

    def __init__(self, text_dim: int, hidden: int, mode: str = "uniform_dropout", dropout: float = 0.5,
                 init: str = "small"):
        super().__init__(text_dim, hidden, "uniform", dropout, init)

    def weights(self, anchor_sem, cand_sem):
        return dropout(super().weights(anchor_sem, cand_sem), self.dropout, self.training)


# TrainConfig.synthesizer -> the module that weighs the candidates
SYNTHESIZERS = {"learned": SampleSynthesizer, "uniform": SampleSynthesizer,
                "uniform_dropout": UniformDropoutSynthesizer}


def semantic_substitute(inputs, item_neighbors, prob: float = 0.2, generator=None):
    """Replace each real item, independently with probability `prob`, by one of its neighbours (notebook 06).

    inputs: (B, L) item ids, 0 = padding (never touched). item_neighbors: (n_items + 1, k) item
    ids on the same device; the neighbour is drawn uniformly from the item's k. A neighbour id 0
    (a table padded for items with fewer than k neighbours) leaves the item as it was.
    """
    B, L = inputs.shape
    k = item_neighbors.shape[1]
    draw = torch.rand(B, L, device=inputs.device, generator=generator)
    choice = torch.randint(0, k, (B, L), device=inputs.device, generator=generator)
    replacement = item_neighbors[inputs, choice]                                # (B, L)
    swap = (draw < prob) & (inputs > 0) & (replacement > 0)
    return torch.where(swap, replacement, inputs)


# CL4SRec's three operators, with CoSeRec / ICLRec's default strengths (the settings behind the
# published CL4SRec numbers on the Beauty file of notebook 07, section 15).
CROP_KEEP = 0.2      # keep a contiguous 20% of the sequence
MASK_RATIO = 0.7     # mask 70% of the items
REORDER_RATIO = 0.2  # shuffle a contiguous 20%


def _span(n_real, ratio, generator):
    """Length c = max(1, floor(ratio * n)) and random start in [0, n - c] per row (in real items)."""
    c = torch.floor(ratio * n_real.float() + 1e-6).long().clamp(min=1)
    c = torch.minimum(c, n_real)
    u = torch.rand(n_real.shape, device=n_real.device, generator=generator)
    start = torch.floor(u * (n_real - c + 1).float()).long()
    return c, torch.minimum(start, (n_real - c).clamp(min=0))


def crop(inputs, keep: float = CROP_KEEP, generator=None):
    """Keep a random contiguous span of max(1, floor(keep * n)) items, re-padded on the left."""
    B, L = inputs.shape
    n = (inputs > 0).sum(1)                                                     # (B,)
    c, start = _span(n, keep, generator)
    j = torch.arange(L, device=inputs.device)                                   # (L,)
    # output slot j (a real slot iff j >= L - c) reads real item start + j - (L - c)
    source = (L - n + start)[:, None] + j - (L - c)[:, None]                    # (B, L)
    valid = j >= (L - c)[:, None]
    out = inputs.gather(1, source.clamp(0, L - 1))
    return torch.where(valid, out, torch.zeros_like(out))


def mask_items(inputs, mask_id: int, ratio: float = MASK_RATIO, generator=None):
    """Replace floor(ratio * n) randomly chosen real items with `mask_id`."""
    real = inputs > 0
    n = real.sum(1)
    m = torch.floor(ratio * n.float() + 1e-6).long()                            # (B,)
    score = torch.rand(inputs.shape, device=inputs.device, generator=generator)
    score = score.masked_fill(~real, 2.0)                                       # padding ranks last
    rank = score.argsort(1).argsort(1)                                          # (B, L) rank among row
    return torch.where(rank < m[:, None], torch.full_like(inputs, mask_id), inputs)


def reorder(inputs, ratio: float = REORDER_RATIO, generator=None):
    """Shuffle a random contiguous span of max(1, floor(ratio * n)) real items."""
    B, L = inputs.shape
    n = (inputs > 0).sum(1)
    c, start = _span(n, ratio, generator)
    ws = (L - n + start)[:, None].float()                                       # window start slot
    j = torch.arange(L, device=inputs.device).float()
    inside = (j >= ws) & (j < ws + c[:, None])                                  # (B, L)
    # Slots outside keep integer keys; inside keys fall in (ws - 1, ws + c), so sorting keys
    # shuffles the window and leaves everything else in place.
    noise = torch.rand(inputs.shape, device=inputs.device, generator=generator)
    key = torch.where(inside, ws - 0.5 + noise * c[:, None].float(), j.expand(B, L))
    return inputs.gather(1, key.argsort(1))


def cl4srec_augment(inputs, mask_id: int, crop_keep: float = CROP_KEEP, mask_ratio: float = MASK_RATIO,
                    reorder_ratio: float = REORDER_RATIO, generator=None):
    """One view per row: crop, mask or reorder, chosen uniformly per row (CL4SRec, Xie et al. 2022;
    the baseline of notebook 07; notebook 06 shows its operators)."""
    which = torch.randint(0, 3, (len(inputs), 1), device=inputs.device, generator=generator)
    cropped = crop(inputs, crop_keep, generator)
    masked = mask_items(inputs, mask_id, mask_ratio, generator)
    shuffled = reorder(inputs, reorder_ratio, generator)
    return torch.where(which == 0, cropped, torch.where(which == 1, masked, shuffled))


def same_target_groups(targets) -> dict:
    """Index of the training prefixes by target item, for DuoRec's positives (notebook 07's baseline).

    targets: (N,) next items. Returns arrays of N: `by_target` (prefix ids sorted by target) and,
    per prefix, `start` and `count` of its target's run in `by_target` and its own `rank` in it.
    """
    targets = np.asarray(targets)
    by_target = np.argsort(targets, kind="stable")
    first = np.r_[True, targets[by_target][1:] != targets[by_target][:-1]]     # a target's first slot
    run = np.cumsum(first) - 1                                                  # run id of each slot
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, len(targets)])
    start, count, rank = (np.empty(len(targets), np.int64) for _ in range(3))
    start[by_target], count[by_target] = starts[run], counts[run]
    rank[by_target] = np.arange(len(targets)) - starts[run]
    return {"by_target": by_target, "start": start, "count": count, "rank": rank}


def same_target_partner(idx, groups: dict, generator=None):
    """DuoRec's supervised positive (Qiu et al., WSDM 2022): for each prefix in `idx` (B,), another
    training prefix with the same next item, drawn uniformly; the prefix itself when none exists
    (its positive is then a second dropout pass only, as DuoRec does). `groups`: same_target_groups
    as tensors on idx's device."""
    count, rank = groups["count"][idx], groups["rank"][idx]
    draw = torch.rand(idx.shape, device=idx.device, generator=generator)
    slot = (draw * (count - 1).clamp(min=1)).long()                             # 0 .. count - 2
    slot = slot + (slot >= rank).long()                                         # skip the prefix itself
    other = groups["by_target"][(groups["start"][idx] + slot).clamp(max=len(groups["by_target"]) - 1)]
    return torch.where(count > 1, other, idx)
