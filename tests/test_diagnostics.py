"""Notebook 05's look inside the cross-sequence branch: first-step losses and synthesizer weights."""
import numpy as np
import pytest
import torch

from sracl_lite.diagnostics import candidate_scores, candidate_weights, first_step_losses, weight_entropy
from sracl_lite import retrieval as R
from sracl_lite.losses import SampleSynthesizer
from sracl_lite.training import Trainer
import test_training
from test_training import config

ds, tables = test_training.ds, test_training.tables   # the toy data and tables of the trainer's tests


@pytest.mark.parametrize("unique_candidates", [False, True])
def test_first_step_losses_match_the_trainers_own_loss(ds, tables, unique_candidates):
    trainer = Trainer(ds, config(batch_size=16, alpha=0.1, beta=0.0, unique_candidates=unique_candidates), tables)
    batch = torch.arange(16)
    frame = first_step_losses(trainer, batch, alpha=0.1, seed=3)
    trainer.model.train()
    trainer.synthesizer.eval()            # the row without weight dropout
    torch.manual_seed(3)
    _, _, cross, _ = trainer.losses(*trainer.batch(batch))
    assert np.isclose(frame.loc["weights without dropout", "L_cross"], cross.item(), atol=1e-5)
    assert np.isclose(frame["L_cross of equal logits"], np.log(16)).all()
    assert (frame["gradient on anchors, alpha*L_cross / L_rec"] > 0).all()


def test_first_step_losses_of_the_reference_form_read_the_second_pass(ds):
    """cross_loss="nt_xent": the loss is NT-Xent of the second pass against the positives, 2B rows."""
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    item_emb = np.random.default_rng(0).standard_normal((ds.n_items + 1, 12)).astype(np.float32)
    prefix_tables = R.prefix_tables(item_emb, pool, R.mean_item_embedding(item_emb, ds.train_sequences, pool, 6,
                                                                          unit=False), k=3, exclude="rank0")
    trainer = Trainer(ds, config(batch_size=16, alpha=0.1, beta=0.0, k=3, cross_loss="nt_xent",
                                 synth_init="xavier"), prefix_tables)
    batch = torch.arange(16)
    frame = first_step_losses(trainer, batch, alpha=0.1, seed=3)
    trainer.model.train()
    trainer.synthesizer.eval()
    torch.manual_seed(3)
    _, _, cross, _ = trainer.losses(*trainer.batch(batch))
    assert np.isclose(frame.loc["weights without dropout", "L_cross"], cross.item(), atol=1e-5)
    assert np.isclose(frame["L_cross of equal logits"], np.log(2 * 16 - 1)).all()
    with pytest.raises(ValueError, match="beta = 0"):
        first_step_losses(Trainer(ds, config(batch_size=16, alpha=0.1, beta=0.1, k=3), prefix_tables), batch, 0.1, 3)


def test_candidate_scores_order_every_anchors_weights():
    torch.manual_seed(0)
    synthesizer = SampleSynthesizer(text_dim=6, hidden=4)
    synthesizer.attn.data.normal_(0, 1.0)            # far from uniform, so the order means something
    pool_emb = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    neighbors = np.stack([np.random.default_rng(n).choice(30, 5, replace=False) for n in range(30)])
    synthesizer.train()
    weights = candidate_weights(synthesizer, pool_emb, neighbors, chunk_size=7)
    assert synthesizer.training, "the synthesizer's mode is restored"
    assert weights.shape == (30, 5) and np.allclose(weights.sum(1), 1, atol=1e-6)
    scores = candidate_scores(synthesizer, pool_emb)[neighbors]                      # (30, 5)
    assert (np.argsort(weights, axis=1) == np.argsort(scores, axis=1)).all()


def test_weight_entropy_hand_computed():
    weights = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0]])
    expected = [1.0, 0.0, 1.5 * np.log(2) / np.log(4)]
    assert np.allclose(weight_entropy(weights), expected)
