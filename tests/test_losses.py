"""Contrastive losses, the sample synthesizer and the augmentations."""
import math

import numpy as np
import pytest
import torch

from sracl_lite.losses import (SampleSynthesizer, cl4srec_augment, crop, info_nce, mask_items, nt_xent, reorder,
                               same_target_groups, same_target_partner, semantic_substitute)


def test_info_nce_hand_computed():
    anchor = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # T = 0.5: logits row 0 = [2, 0] (positive first), row 1 = [0, 4] (positive second)
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(math.exp(4) / (1 + math.exp(4)))) / 2
    assert info_nce(anchor, positive, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_hand_computed():
    v1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    z = [v1[0], v1[1], v2[0], v2[1]]
    positive_of = {0: 2, 1: 3, 2: 0, 3: 1}
    losses = []
    for i in range(4):       # 2N - 2 = 2 negatives: everything but itself and its positive
        logits = {j: float(z[i] @ z[j]) for j in range(4) if j != i}
        denominator = sum(math.exp(v) for v in logits.values())
        losses.append(-logits[positive_of[i]] + math.log(denominator))
    assert nt_xent(v1, v2).item() == pytest.approx(sum(losses) / 4, rel=1e-6)


def test_info_nce_shape_error():
    with pytest.raises(ValueError, match="same shape"):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4))


def test_synthesizer_weights_are_a_distribution_before_dropout():
    torch.manual_seed(0)
    synth = SampleSynthesizer(text_dim=12, hidden=8, dropout=0.5)
    synth.attn.data.normal_(0, 1.0)      # far from uniform, so the check means something
    anchor, cand = torch.randn(5, 12), torch.randn(5, 4, 12)
    synth.eval()
    w = synth.weights(anchor, cand)
    assert w.shape == (5, 4)
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(5), atol=1e-6)
    assert w.std() > 0.01
    synth.train()                          # dropout zeroes some weights and rescales the rest by 2
    dropped = synth.weights(anchor, cand)
    kept = dropped != 0
    assert torch.allclose(dropped[kept], 2 * w[kept], atol=1e-6)


def test_synthesizer_weights_follow_the_projected_formula():
    # softmax_j LeakyReLU(a^T [W s ; W s_j]), written out with the projections made first
    torch.manual_seed(0)
    synth = SampleSynthesizer(text_dim=12, hidden=8, dropout=0.5).eval()
    synth.attn.data.normal_(0, 1.0)
    anchor, cand = torch.randn(5, 12), torch.randn(5, 4, 12)
    Ws, Wsj = synth.project(anchor), synth.project(cand)                         # (5, 8), (5, 4, 8)
    pairs = torch.cat([Ws[:, None].expand(-1, 4, -1), Wsj], dim=-1)               # (5, 4, 16)
    expected = torch.softmax(torch.nn.functional.leaky_relu(pairs @ synth.attn, 0.2), dim=-1)
    torch.testing.assert_close(synth.weights(anchor, cand), expected)


def test_synthesizer_mixes_candidates_and_learns():
    torch.manual_seed(0)
    synth = SampleSynthesizer(text_dim=6, hidden=4, dropout=0.0).train()
    anchor, cand, reps = torch.randn(3, 6), torch.randn(3, 5, 6), torch.randn(3, 5, 7)
    out = synth(anchor, cand, reps)
    expected = (synth.weights(anchor, cand)[..., None] * reps).sum(1)
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    assert synth.project.weight.grad.abs().sum() > 0 and synth.attn.grad.abs().sum() > 0


def test_uniform_synthesizer_is_the_mean():
    synth = SampleSynthesizer(text_dim=6, hidden=4, mode="uniform")
    reps = torch.randn(3, 5, 7)
    out = synth(torch.randn(3, 6), torch.randn(3, 5, 6), reps)
    assert torch.allclose(out, reps.mean(1), atol=1e-6)
    assert len(list(synth.parameters())) == 0


def test_synthesizer_dimension_error():
    synth = SampleSynthesizer(text_dim=1024, hidden=8)
    with pytest.raises(ValueError, match="dimension 384.*built for 1024"):
        synth.weights(torch.randn(2, 384), torch.randn(2, 3, 384))
    with pytest.raises(ValueError, match="mode"):
        SampleSynthesizer(4, 4, mode="attention")


def random_left_padded(batch, length, n_items, generator):
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    items = torch.randint(1, n_items + 1, (batch, length), generator=generator)
    real = torch.arange(length) >= (length - lengths)[:, None]
    return torch.where(real, items, torch.zeros_like(items))


def test_substitution_keeps_padding_and_draws_only_neighbours():
    g = torch.Generator().manual_seed(0)
    n_items, k = 50, 4
    neighbors = torch.randint(1, n_items + 1, (n_items + 1, k), generator=g)
    neighbors[0] = 0
    x = random_left_padded(64, 10, n_items, g)
    out = semantic_substitute(x, neighbors, prob=1.0, generator=g)
    assert torch.equal(out == 0, x == 0)                             # padding untouched, nothing new padded
    real = x > 0
    allowed = (neighbors[x] == out[..., None]).any(-1)                # out is one of the item's neighbours
    assert allowed[real].all()
    assert torch.equal(semantic_substitute(x, neighbors, prob=0.0, generator=g), x)
    some = semantic_substitute(x, neighbors, prob=0.2, generator=g)
    changed = (some != x)[real].float().mean().item()
    assert 0.1 < changed < 0.3                                        # about prob (some draws repeat the item)


def test_substitution_skips_missing_neighbours():
    neighbors = torch.tensor([[0, 0], [2, 0], [0, 0]])                 # item 2 has no neighbours
    x = torch.tensor([[0, 1, 2, 2]])
    out = semantic_substitute(x, neighbors, prob=1.0)
    assert out[0, 0] == 0 and (out[0, 2:] == 2).all() and out[0, 1] in (1, 2)


def test_cl4srec_operators():
    g = torch.Generator().manual_seed(1)
    x = random_left_padded(200, 12, 40, g)
    n = (x > 0).sum(1)
    cropped = crop(x, keep=0.5, generator=g)
    c = (cropped > 0).sum(1)
    assert torch.equal(c, torch.clamp(torch.floor(0.5 * n.float() + 1e-6).long(), min=1))
    for row in range(len(x)):              # a contiguous run of the original, left-padded
        original = x[row][x[row] > 0].tolist()
        kept = cropped[row][cropped[row] > 0].tolist()
        assert cropped[row, : 12 - c[row]].eq(0).all()
        assert any(original[s:s + len(kept)] == kept for s in range(len(original)))
    masked = mask_items(x, mask_id=41, ratio=0.5, generator=g)
    assert torch.equal((masked == 41).sum(1), torch.floor(0.5 * n.float() + 1e-6).long())
    assert torch.equal(masked == 0, x == 0)
    assert ((masked == x) | (masked == 41)).all()
    shuffled = reorder(x, ratio=0.5, generator=g)
    assert torch.equal(shuffled == 0, x == 0)
    assert torch.equal(shuffled.sort(1).values, x.sort(1).values)   # same items, possibly new order
    assert (shuffled != x).any()
    views = cl4srec_augment(x, mask_id=41, generator=g)
    assert views.shape == x.shape and (views[x == 0] == 0).all()


def test_nt_xent_is_the_references_2b_formulation():
    """The reference's utils.info_nce: logits [positive | 2B - 2 negatives], label 0, rows [z_i; z_j]."""
    torch.manual_seed(0)
    z_i, z_j = torch.randn(3, 4), torch.randn(3, 4)
    B, z = 3, torch.cat([z_i, z_j])
    sim = z @ z.T
    rows = []
    for r in range(2 * B):
        partner = (r + B) % (2 * B)
        negatives = [sim[r, c] for c in range(2 * B) if c not in (r, partner)]
        logits = torch.stack([sim[r, partner], *negatives])
        rows.append(-torch.log_softmax(logits, 0)[0])
    assert nt_xent(z_i, z_j).item() == pytest.approx(torch.stack(rows).mean().item(), rel=1e-6)


def test_reference_initialised_synthesizer_is_far_from_uniform_on_raw_inputs():
    torch.manual_seed(0)
    k, d = 10, 1024
    raw = torch.tanh(3 * torch.randn(64, k + 1, d))        # scale of SimCSE pooler outputs: norm about 30
    anchor, cands = raw[:, 0], raw[:, 1:]

    def entropy_share(init):
        synth = SampleSynthesizer(d, 64, init=init).eval()
        with torch.no_grad():
            w = synth.weights(anchor, cands)
        return float((-(w * w.log()).sum(1) / math.log(k)).mean())
    assert entropy_share("xavier") < 0.8, "reference init should give clearly non-uniform weights"
    assert entropy_share("small") > 0.99, "our init starts near uniform"
    synth = SampleSynthesizer(d, 64, init="xavier")
    bound = 1.414 * math.sqrt(6 / (d + 64))
    assert synth.project.weight.abs().max() <= bound and synth.project.weight.abs().max() > 0.9 * bound
    assert synth.attn.abs().max() <= 1.414 * math.sqrt(6 / (2 * 64 + 1))
    with pytest.raises(ValueError, match="synthesizer init"):
        SampleSynthesizer(d, 64, init="zeros")


def test_cosine_similarity_ignores_scale_and_dot_does_not():
    torch.manual_seed(0)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    for loss in (info_nce, nt_xent):
        assert loss(3 * a, b, 0.2, cosine=True) == pytest.approx(loss(a, b, 0.2, cosine=True).item(), rel=1e-5)
        assert loss(3 * a, b, 0.2).item() != pytest.approx(loss(a, b, 0.2).item(), rel=1e-3)
    unit = torch.nn.functional.normalize
    assert info_nce(a, b, 0.5, cosine=True).item() == pytest.approx(info_nce(unit(a, dim=1), unit(b, dim=1), 0.5))


def test_same_target_partner_draws_another_prefix_with_the_same_target():
    targets = np.array([5, 7, 5, 9, 5, 7])           # target 9 has one prefix: its partner is itself
    groups = same_target_groups(targets)
    assert sorted(targets[groups["by_target"]]) == sorted(targets)
    tensors = {name: torch.as_tensor(a) for name, a in groups.items()}
    idx = torch.arange(len(targets)).repeat(200)
    partner = same_target_partner(idx, tensors, generator=torch.Generator().manual_seed(0)).numpy()
    idx = idx.numpy()
    assert (targets[partner] == targets[idx]).all()
    assert (partner[idx == 3] == 3).all() and (partner[idx != 3] != idx[idx != 3]).all()
    assert set(partner[idx == 0]) == {2, 4}           # both other prefixes of target 5 are drawn
