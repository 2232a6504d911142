"""Backbones: causal attention, left-padding invariance, shapes, input checks."""
import pytest
import torch
import torch.nn.functional as F

from sracl_lite.model import ModelConfig, build_model, dropout

N_ITEMS, MAX_LEN = 30, 8


def tiny(backbone="sasrec", **kw):
    torch.manual_seed(0)
    config = ModelConfig(backbone=backbone, hidden=16, n_heads=2, ffn=32, n_layers=2, **kw)
    return build_model(config, N_ITEMS, MAX_LEN).eval()


def left_pad(items, length):
    return torch.tensor([[0] * (length - len(items)) + items])


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_shapes_and_padding_column(backbone):
    model = tiny(backbone)
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])
    rep = model.encode(x)
    scores = model.item_scores(rep)
    assert rep.shape == (2, 16)
    assert scores.shape == (2, N_ITEMS + 1)
    assert scores.dtype == torch.float32


def test_sasrec_encode_is_the_last_position_of_encode_all():
    # encode computes the last block's query, attention and feed-forward at the last position
    # only (keys and values from the query-free rows of its qkv weight); nothing else may change
    model = tiny()
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9]])
    torch.testing.assert_close(model.encode(x), model.encode_all(x)[:, -1], rtol=1e-5, atol=1e-6)
    assert model.encode_all(x, last_only=True).shape == (3, 1, 16)
    # and every parameter gets the same gradient, the qkv weight's query rows included
    grads = []
    for rep in (lambda: model.encode(x), lambda: model.encode_all(x)[:, -1]):
        model.zero_grad()
        (rep() * torch.linspace(-1, 1, 16)).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    short, full = grads
    for name in short:
        torch.testing.assert_close(short[name], full[name], rtol=1e-4, atol=1e-6, msg=name)
    assert short["blocks.1.qkv.weight"][:16].abs().sum() > 0                   # the last block's query rows
    # gradients flow to the earlier positions' keys and values through the last query, in training too
    model.train()
    model.zero_grad()
    model.encode(x).sum().backward()
    assert model.blocks[0].ffn_in.weight.grad.abs().sum() > 0


def test_embed_items_matches_a_padding_idx_lookup_in_values_and_gradients():
    # padding reads spare zero rows instead of row 0: the same vectors, the same table gradient
    model = tiny()
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 3], [0, 0, 0, 0, 0, 0, 0, 9], [1, 2, 3, 4, 5, 6, 7, 8]])
    upstream = torch.randn(3, MAX_LEN, 16)
    spread = model.embed_items(x, x > 0)
    plain = model.item_emb(x)
    torch.testing.assert_close(spread, plain, rtol=0, atol=0)
    (spread_grad,) = torch.autograd.grad((spread * upstream).sum(), model.item_emb.weight)
    (plain_grad,) = torch.autograd.grad((plain * upstream).sum(), model.item_emb.weight)
    torch.testing.assert_close(spread_grad, plain_grad)
    assert spread_grad[0].abs().sum() == 0 and spread_grad[3].abs().sum() > 0


def test_sasrec_is_causal():
    model = tiny()
    x = left_pad([4, 9, 2, 7, 11], MAX_LEN)
    changed = x.clone()
    changed[0, -1] = 25                      # a later item...
    with torch.no_grad():
        a, b = model.encode_all(x), model.encode_all(changed)
    real = slice(MAX_LEN - 5, MAX_LEN - 1)
    assert torch.allclose(a[:, real], b[:, real], atol=1e-6)   # ...leaves earlier outputs alone
    assert not torch.allclose(a[:, -1], b[:, -1])                # and does change its own


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_left_padding_invariance(backbone):
    model = tiny(backbone)
    items = [4, 9, 2, 7]
    with torch.no_grad():
        short = model.encode(left_pad(items, 4))
        long = model.encode(left_pad(items, MAX_LEN))
        batch = model.encode(torch.cat([left_pad(items, MAX_LEN), left_pad([1, 2, 3, 4, 5, 6, 7, 8], MAX_LEN)]))
    assert torch.allclose(short, long, atol=1e-5)
    assert torch.allclose(long[0], batch[0], atol=1e-5)       # batch neighbours do not leak in


def test_sasrec_real_positions_ignore_padding_values_in_attention():
    model = tiny()
    items = [4, 9, 2]
    x = left_pad(items, MAX_LEN)
    with torch.no_grad():
        full = model.encode_all(x)[:, -3:]
        alone = model.encode_all(torch.tensor([items]))
    assert torch.allclose(full, alone, atol=1e-5)


def test_padding_row_is_zero_and_init_std():
    model = tiny()
    assert torch.count_nonzero(model.item_emb.weight[0]) == 0
    std = model.item_emb.weight[1:].std().item()
    assert 0.015 < std < 0.025


def test_errors_name_the_problem():
    model = tiny()
    with pytest.raises(ValueError, match=r"item ids must lie in 0..31 .*found 0..40"):
        model.encode(torch.tensor([[0, 0, 1, 40]]))
    with pytest.raises(ValueError, match="max_len=8"):
        model.encode(torch.ones(1, MAX_LEN + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="bert")
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(hidden=10, n_heads=3)


@pytest.mark.parametrize("p", [0.5, 0.2, 0.1])
def test_dropout_gives_f_dropouts_values_gradients_and_generator_state(p):
    # Bit for bit on every machine. Where torch draws masks from uniforms (model.masks_from_uniforms:
    # the AMD EPYC this was measured on) this compares the fast mask with torch's own; elsewhere
    # (torch calling MKL) model.dropout is F.dropout itself and the test only confirms that.
    x = torch.randn(64, 20, 32, requires_grad=True)
    results = []
    for function in (F.dropout, dropout):
        torch.manual_seed(7)
        out = function(x, p, True)
        grad, = torch.autograd.grad((out * torch.arange(out.numel()).view_as(out)).sum(), x)
        results.append((out, grad, torch.rand(3)))  # the next draw shows the generator's state
    for reference, fast in zip(*results):
        assert torch.equal(reference, fast)
    assert torch.equal(dropout(x, p, False), x)
