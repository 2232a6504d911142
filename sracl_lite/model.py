"""Sequence encoders (notebook 04): SASRec and GRU4Rec behind one interface.

Every backbone maps left-padded item-id sequences to one vector per sequence and scores all
items against that vector with the shared item embedding table:

    rep = model.encode(inputs)      # (B, L) -> (B, D), the representation at the last position
    scores = model.item_scores(rep) # (B, D) -> (B, n_items + 1), column 0 is padding

The contrastive losses (losses.py) and the trainer (training.py) only use these two methods, so
a new backbone plugs in by providing them.
"""
import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKBONES = ("sasrec", "gru4rec")
PADDING_ROWS = 256  # zero rows that padding positions read from (SequenceEncoder.embed_items)


def resolve_device(name: str) -> torch.device:
    """"auto" (a CUDA GPU when torch sees one, else the CPU), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use 'cpu' or 'auto'")
    return device


@dataclass
class ModelConfig:
    backbone: str = "sasrec"       # "sasrec" | "gru4rec"; both serve the same losses and trainer
    hidden: int = 64               # paper/reference setting; larger helps little on 5-core data
    n_layers: int = 2              # SASRec blocks (reference: 2)
    n_heads: int = 2               # attention heads (reference: 2); hidden must divide by it
    ffn: int = 256                 # feed-forward width, 4 x hidden as in the reference
    dropout: float = 0.5           # hidden dropout; 0.5 is high but the data are sparse
    attn_dropout: float = 0.5      # dropout on attention weights (reference: 0.5)
    layer_norm_eps: float = 1e-12  # reference value (BERT-style); 1e-5 would behave the same
    init_std: float = 0.02         # N(0, 0.02) for embeddings and linear layers, as the reference
    gru_layers: int = 1            # GRU4Rec recurrent layers (RecBole's default)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"ModelConfig.backbone={self.backbone!r}; choose one of {BACKBONES}")
        if self.backbone == "sasrec" and self.hidden % self.n_heads:
            raise ValueError(f"ModelConfig.hidden={self.hidden} does not divide by n_heads={self.n_heads}; "
                             "pick a hidden size that is a multiple of the number of heads")


@functools.cache
def masks_from_uniforms() -> bool:
    """Whether this machine's torch draws a CPU dropout mask as one float64 uniform per element,
    kept where it is below the keep probability. It does where it uses its own serial Bernoulli
    kernel (measured on an AMD EPYC); where it calls MKL's generator instead, the check fails.
    Checked once, on a private generator, by drawing the same mask both ways."""
    draws = [torch.Generator().manual_seed(0) for _ in range(2)]
    bernoulli = torch.empty(4096).bernoulli_(0.7, generator=draws[0])
    uniforms = torch.empty(4096, dtype=torch.float64).uniform_(generator=draws[1])
    return torch.equal(bernoulli, (uniforms < 0.7).float())


def dropout(x, p: float, training: bool = True):
    """F.dropout with the same result, faster on a CPU where masks_from_uniforms() holds.

    There torch draws each mask element with a serial kernel that took 27-35% of a CPU training step
    in profiles (benchmarks/README.md); uniform_ consumes the same random numbers 2.6 times faster,
    so the masks, the results and the generator's state afterwards are bit-identical
    (tests/test_model.py). Elsewhere, on a GPU, for a non-contiguous input or in evaluation mode,
    this is F.dropout itself."""
    if not training or not 0 < p < 1 or x.device.type != "cpu" or not x.is_contiguous() or not masks_from_uniforms():
        return F.dropout(x, p, training)
    keep = 1 - p
    mask = torch.empty(x.shape, dtype=torch.float64).uniform_() < keep
    return x * mask.to(x.dtype).div_(keep)  # F.dropout's own steps: scale the mask, then multiply


class Dropout(nn.Dropout):
    """nn.Dropout computed by `dropout` above (the same parameters, state and results)."""

    def forward(self, x):
        if self.inplace:  # the fast mask makes a new tensor; in place is F.dropout's own
            return F.dropout(x, self.p, self.training, inplace=True)
        return dropout(x, self.p, self.training)


def check_item_ids(inputs, n_items: int, name: str = "inputs"):
    """Fail clearly when `inputs` holds ids outside 0..n_items (0 is padding).

    Callers check whole arrays once, before training or scoring; the models check CPU batches
    only, because a check of a GPU tensor would stall the device every step.
    """
    if inputs.numel() if torch.is_tensor(inputs) else inputs.size:
        low, high = int(inputs.min()), int(inputs.max())
        if low < 0 or high > n_items:
            raise ValueError(f"{name}: item ids must lie in 0..{n_items} (0 = padding); found {low}..{high}. "
                             "Were the inputs built for another dataset, or with ids from 0 rather than 1?")


class SequenceEncoder(nn.Module):
    """Shared parts: the item table (input and output embedding) and full-item scoring (notebook 04).

    The table has n_items + 2 rows: 0 is padding, 1..n_items are items and n_items + 1 is the
    mask token used only by CL4SRec's mask augmentation. Scores cover rows 0..n_items.
    """

    def __init__(self, config: ModelConfig, n_items: int, max_len: int):
        super().__init__()
        self.config, self.n_items, self.max_len = config, n_items, max_len
        self.mask_id = n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, config.hidden, padding_idx=0)

    def init_weights(self):
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()  # padding contributes nothing

    def check_inputs(self, inputs):
        if inputs.dim() != 2:
            raise ValueError(f"inputs must be (batch, length) item ids; got shape {tuple(inputs.shape)}")
        if inputs.shape[1] > self.max_len:
            raise ValueError(f"inputs have length {inputs.shape[1]} but the model was built for max_len="
                             f"{self.max_len}; keep the last {self.max_len} items (left padding)")
        if not inputs.is_cuda:
            check_item_ids(inputs, self.mask_id, f"inputs (items 1..{self.n_items}, mask token {self.mask_id})")

    def embed_items(self, inputs, real):
        """(B, L) ids, (B, L) real mask -> (B, L, D) item vectors, zeros at padding.

        The same values as self.item_emb(inputs) (row 0 stays zero), looked up in the table
        extended by PADDING_ROWS rows of zeros that the padding positions are spread over. Why:
        the compiled backward adds each position's gradient into its row with GPU atomic adds,
        and on short sequences most positions are padding; their tens of thousands of adds into
        row 0, one after another, took a tenth of an SRA-CL step on Beauty (benchmarks/README.md)."""
        table = self.item_emb.weight
        table = torch.cat([table, table.new_zeros(PADDING_ROWS, table.shape[1])])
        B, L = inputs.shape
        spread = torch.arange(B * L, device=inputs.device).view(B, L) % PADDING_ROWS + self.item_emb.num_embeddings
        return F.embedding(torch.where(real, inputs, spread), table)

    def item_scores(self, rep):
        """(B, D) -> (B, n_items + 1) dot-product scores; column 0 is padding (never a target).

        Computed in float32 even under bf16 autocast: ranking depends on small score gaps.
        """
        with torch.autocast(rep.device.type, enabled=False):
            return rep.float() @ self.item_emb.weight[: self.n_items + 1].float().T

    def forward(self, inputs):
        return self.encode(inputs)


class SASRec(SequenceEncoder):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), post-norm blocks (notebook 04).

    Positions are learned and counted from the most recent item (0 = last), so the amount of
    left padding never changes a real position's output; attention is causal and never looks
    at padding.
    """

    def __init__(self, config: ModelConfig, n_items: int, max_len: int):
        super().__init__(config, n_items, max_len)
        D = config.hidden
        self.pos_emb = nn.Embedding(max_len, D)
        self.emb_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.emb_drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        causal = torch.ones(max_len, max_len, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)
        self.init_weights()

    def encode(self, inputs):
        """(B, L) left-padded ids -> (B, D) representation at the last position.

        The same vector as encode_all(inputs)[:, -1], computed with a third less arithmetic: the
        last block needs keys and values at every position but its query, attention output and
        feed-forward only at the last one (notebook 04)."""
        return self.encode_all(inputs, last_only=True)[:, -1]

    def encode_all(self, inputs, last_only: bool = False):
        """(B, L) -> (B, L, D) outputs at every position (padding rows are meaningless); with
        last_only, (B, 1, D): the last block computes the last position only."""
        self.check_inputs(inputs)
        B, L = inputs.shape
        real = inputs > 0                                                      # (B, L)
        distance = torch.arange(L - 1, -1, -1, device=inputs.device)           # (L,) L-1 ... 0
        h = self.embed_items(inputs, real) + self.pos_emb(distance)            # (B, L, D)
        h = self.emb_drop(self.emb_norm(h))
        # Query i sees keys j <= i that are real. Every row keeps its diagonal so that padding
        # rows (which see no real key) stay finite; real rows' diagonal is real anyway.
        eye = torch.eye(L, dtype=torch.bool, device=inputs.device)
        allowed = self.causal[:L, :L] & (real[:, None, :] | eye)               # (B, L, L)
        allowed = allowed[:, None]                                             # (B, 1, L, L)
        for i, block in enumerate(self.blocks):
            h = block(h, allowed, last_only and i == len(self.blocks) - 1)
        return h


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        D = config.hidden
        self.n_heads, self.attn_dropout = config.n_heads, config.attn_dropout
        self.qkv = nn.Linear(D, 3 * D)  # one matrix product for queries, keys and values
        self.out = nn.Linear(D, D)
        self.norm1 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(D, config.ffn)
        self.ffn_out = nn.Linear(config.ffn, D)
        self.norm2 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.drop = Dropout(config.dropout)

    def forward(self, x, allowed, last_only: bool = False):
        """(B, L, D) -> (B, L, D), or (B, 1, D) with last_only: queries, residuals and the
        feed-forward at the last position only (keys and values still cover every position)."""
        B, L, D = x.shape
        H = self.n_heads
        if last_only:  # keys and values at every position, the query at the last one only
            W, b = self.qkv.weight, self.qkv.bias                               # rows: queries, keys, values
            k, v = F.linear(x, W[D:], b[D:]).view(B, L, 2, H, D // H).permute(2, 0, 3, 1, 4)
            x, allowed = x[:, -1:], allowed[:, :, -1:]                          # one query row
            q = F.linear(x, W[:D], b[:D]).view(B, 1, H, D // H).transpose(1, 2)
        else:
            q, k, v = self.qkv(x).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # each (B, H, L, D/H)
        # Written out rather than F.scaled_dot_product_attention: at 20 positions its fused GPU
        # kernels (memory-efficient attention, with dropout) took a third of a training step's GPU
        # time, while these few small products compile into fused kernels (benchmarks/train_speed.py).
        scores = (q @ k.transpose(-1, -2)) * (D // H) ** -0.5                  # (B, H, L or 1, L)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        a = dropout(weights, self.attn_dropout, self.training) @ v           # (B, H, L or 1, D/H)
        a = a.transpose(1, 2).reshape(B, q.shape[2], D)                         # (B, L or 1, D)
        x = self.norm1(x + self.drop(self.out(a)))
        f = self.ffn_out(F.gelu(self.ffn_in(x)))                                # (B, L, D)
        return self.norm2(x + self.drop(f))


class GRU4Rec(SequenceEncoder):
    """GRU over the item sequence (Hidasi et al. 2016, in RecBole's sequential form; notebook 04).

    A GRU's state drifts while it reads padding (its biases act even on zero input), so each
    row is first right-aligned (real items first) and the output is read after the last real
    item: outputs never depend on padding. This is one gather, with no host synchronisation.
    """

    def __init__(self, config: ModelConfig, n_items: int, max_len: int):
        super().__init__(config, n_items, max_len)
        D = config.hidden
        self.emb_drop = Dropout(config.dropout)
        self.gru = nn.GRU(D, D, num_layers=config.gru_layers, batch_first=True, bias=True)
        self.dense = nn.Linear(D, D)
        self.init_weights()
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.zeros_(weight)

    def encode(self, inputs):
        """(B, L) left-padded ids -> (B, D) output after the last real item."""
        self.check_inputs(inputs)
        B, L = inputs.shape
        n_real = (inputs > 0).sum(1)                                           # (B,)
        # Row with n real items: right-aligned position i reads left-padded position i + L - n.
        source = (torch.arange(L, device=inputs.device) + (L - n_real)[:, None]) % L  # (B, L)
        right = inputs.gather(1, source)                                       # (B, L) real first
        h, _ = self.gru(self.emb_drop(self.item_emb(right)))                   # (B, L, D)
        last = (n_real - 1).clamp(min=0)                                       # (B,)
        h = h[torch.arange(B, device=inputs.device), last]                     # (B, D)
        return self.dense(h)


def build_model(config: ModelConfig, n_items: int, max_len: int) -> SequenceEncoder:
    """The backbone named by config.backbone for n_items items and inputs of max_len (notebook 04)."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    cls = {"sasrec": SASRec, "gru4rec": GRU4Rec}[config.backbone]
    return cls(config, n_items, max_len)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


