"""Trainer: plain-SASRec equivalence, CL branches, early stopping, checkpoints, input errors."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sracl_lite import baselines as B
from sracl_lite import retrieval as R
from sracl_lite.data import PrepConfig, SequenceData
from sracl_lite.model import ModelConfig, build_model
from sracl_lite.semantic import SemanticTables
from sracl_lite.checkpoints import load_checkpoint, load_state_checked
from sracl_lite.experiments import TrainConfig, profile_config, trained_prefixes
from sracl_lite.semantic import pool_entry_of_prefixes
from sracl_lite.training import Trainer, train

torch.set_num_threads(1)
TINY_MODEL = ModelConfig(hidden=16, n_heads=2, ffn=32, n_layers=1)


@pytest.fixture(scope="module")
def ds():
    rng = np.random.default_rng(0)
    rows = []
    for user in range(24):
        items = rng.choice(np.arange(1, 31), size=rng.integers(5, 12), replace=False)
        rows += [(user, int(item), t) for t, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return SequenceData.from_interactions(frame, "toy", config=PrepConfig(3, 1))


@pytest.fixture(scope="module")
def tables(ds):
    return B.random_neighbor_tables(ds.train_sequences, ds.n_items, R.user_pool(ds.train_sequences), k=3, dim=12)


def config(**kw):
    base = dict(model=TINY_MODEL, max_len=6, batch_size=32, epochs=2, patience=5, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def plain_sasrec(ds, cfg, epochs):
    """Next-item training written out directly: no contrastive code at all."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, ds.n_items, cfg.max_len)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    prefixes = ds.train_prefixes(cfg.max_len)
    x, y = torch.as_tensor(prefixes.inputs), torch.as_tensor(prefixes.targets)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=order_rng)
        for first in range(0, len(y), cfg.batch_size):
            idx = order[first:first + cfg.batch_size]
            scores = model.item_scores(model.encode(x[idx]))
            loss = F.cross_entropy(scores[:, 1:], y[idx] - 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def test_zero_weights_is_plain_sasrec(ds, tables):
    cfg = config(alpha=0.0, beta=0.0, epochs=2)
    result = train(ds, cfg, tables)
    reference = plain_sasrec(ds, cfg, result.best_epoch)
    for (name, a), (_, b) in zip(result.model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name
    with_cl = train(ds, config(alpha=0.1, beta=0.1, epochs=result.best_epoch, patience=10), tables)
    assert not torch.equal(with_cl.model.item_emb.weight, result.model.item_emb.weight)


@pytest.mark.parametrize("backbone,intra,synth", [("sasrec", "semantic", "learned"), ("sasrec", "duorec", "learned"),
                                                  ("gru4rec", "cl4srec", "uniform")])
def test_cl_training_runs_and_reports(ds, tables, backbone, intra, synth):
    cfg = config(model=ModelConfig(backbone=backbone, hidden=16, n_heads=2, ffn=32, n_layers=1),
                 intra_aug=intra, synthesizer=synth, epochs=3, patience=1)
    result = train(ds, cfg, tables)
    frame = result.history_frame()
    assert {"loss", "rec", "cross", "intra", "MRR@10"} <= set(frame.columns)
    assert (frame["cross"] > 0).all() and (frame["intra"] > 0).all()
    assert np.allclose(frame["loss"], frame["rec"] + 0.1 * frame["cross"] + 0.1 * frame["intra"], rtol=1e-4)
    assert 1 <= result.best_epoch <= len(frame) <= 3
    assert result.test_ranks.shape == (ds.n_users,)
    assert result.valid[cfg.valid_metric] == pytest.approx(frame.loc[result.best_epoch, cfg.valid_metric])
    fig = result.plot()
    assert len(fig.axes) == 2


def test_per_prefix_pool_maps_each_prefix_to_its_entry(ds):
    prefixes = ds.train_prefixes(6)
    users, lengths = prefixes.users, prefixes.lengths
    order = np.random.default_rng(0).permutation(len(users))
    pool = SemanticTables(item_emb=np.zeros((ds.n_items + 1, 4), np.float32),
                          item_neighbors=np.zeros((ds.n_items + 1, 2), np.int64),
                          pool_users=users[order], pool_lengths=lengths[order],
                          pool_emb=np.zeros((len(users), 4), np.float32),
                          pool_neighbors=np.zeros((len(users), 2), np.int64))
    entry = pool_entry_of_prefixes(pool, users, lengths)
    assert np.array_equal(pool.pool_users[entry], users) and np.array_equal(pool.pool_lengths[entry], lengths)
    per_user = B.random_neighbor_tables(ds.train_sequences, ds.n_items, R.user_pool(ds.train_sequences), k=2, dim=4)
    assert np.array_equal(pool_entry_of_prefixes(per_user, users, lengths), users)


def test_checkpoint_round_trip_and_mismatch_errors(ds, tables, tmp_path):
    path = tmp_path / "best.pt"
    result = train(ds, config(checkpoint=str(path), epochs=1), tables)
    model, saved_config, _ = load_checkpoint(path, n_items=ds.n_items, config=result.config)
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    assert saved_config.model == TINY_MODEL
    with pytest.raises(ValueError, match="trained on .* items"):
        load_checkpoint(path, n_items=ds.n_items + 1)
    with pytest.raises(ValueError, match="another architecture .*model.hidden"):
        load_checkpoint(path, config=config(model=ModelConfig(hidden=32)))
    other = build_model(ModelConfig(hidden=8, n_heads=2), ds.n_items, 6)
    with pytest.raises(ValueError, match="checkpoint .* vs model"):
        load_state_checked(other, result.model.state_dict(), "best.pt")


def test_input_errors(ds, tables):
    with pytest.raises(ValueError, match="needs semantic tables"):
        Trainer(ds, config(alpha=0.1), tables=None)
    other = B.random_neighbor_tables(ds.train_sequences, ds.n_items + 4, R.user_pool(ds.train_sequences), k=3, dim=12)
    with pytest.raises(ValueError, match="cover .* items; the dataset has"):
        Trainer(ds, config(), other)
    short = B.random_neighbor_tables(ds.train_sequences, ds.n_items, R.user_pool(ds.train_sequences), k=3, dim=12)
    short.item_neighbors = short.item_neighbors[:-2]
    with pytest.raises(ValueError, match="item_neighbors has .* rows"):
        Trainer(ds, config(), short)
    with pytest.raises(ValueError, match="k=5 but the tables hold 3"):
        Trainer(ds, config(k=5), tables)
    bad = B.random_neighbor_tables(ds.train_sequences, ds.n_items, R.user_pool(ds.train_sequences), k=3, dim=12)
    bad.item_neighbors = bad.item_neighbors + 100
    with pytest.raises(ValueError, match="item_neighbors: item ids must lie"):
        Trainer(ds, config(), bad)
    trainer = Trainer(ds, config(), tables)
    with pytest.raises(ValueError, match="dimension 7, but the synthesizer was built for 12"):
        trainer.synthesizer(torch.zeros(2, 7), torch.zeros(2, 3, 7), torch.zeros(2, 3, 16))
    with pytest.raises(ValueError, match="intra_aug"):
        config(intra_aug="dropout")
    with pytest.raises(ValueError, match="valid_metric"):
        config(valid_metric="AUC")


def test_one_encoder_call_per_step_holds_every_sequence(ds, tables):
    trainer = Trainer(ds, config(batch_size=16), tables)
    calls, encode = [], trainer.model.encode
    trainer.model.encode = lambda seqs: calls.append(tuple(seqs.shape)) or encode(seqs)
    record = trainer.train_epoch(max_steps=2)
    assert record["steps"] == 2
    assert calls == [(16 * (1 + 3 + 2), 6)] * 2        # anchors, k = 3 candidates each, two views


def test_intra_only_needs_no_pool(ds, tables):
    trainer = Trainer(ds, config(alpha=0.0, beta=0.1), tables)
    assert trainer.synthesizer is None and not hasattr(trainer, "pool_emb")
    record = trainer.train_epoch()
    assert record["cross"] == 0.0 and record["intra"] > 0


def test_unique_candidates_give_the_same_losses_with_fewer_rows(ds, tables):
    trainers = {flag: Trainer(ds, config(batch_size=16, unique_candidates=flag), tables) for flag in (False, True)}
    idx = torch.arange(16)
    losses, rows = {}, {}
    for flag, trainer in trainers.items():
        trainer.model.eval()          # no dropout: duplicates would otherwise get different masks
        trainer.synthesizer.eval()
        seqs, *rest = trainer.batch(idx)
        rows[flag] = len(seqs)
        torch.manual_seed(0)          # the same two views in both runs
        losses[flag] = torch.stack(trainer._step_losses(idx))
    assert rows[True] < rows[False] == 16 * (1 + 3 + 2)
    assert torch.allclose(losses[True], losses[False], atol=1e-6), (losses[True], losses[False])
    with pytest.raises(ValueError, match="unique_candidates"):
        config(unique_candidates=True, compile="default")
    with pytest.raises(ValueError, match="cl4srec"):
        TrainConfig(alpha=0.0, beta=0.1, intra_aug="cl4srec", compile="reduce-overhead")


def test_profiles_differ_only_in_budget():
    cpu, paper = profile_config("cpu", alpha=0.0), profile_config("paper", alpha=0.0)
    assert paper == TrainConfig(alpha=0.0)
    assert cpu.model == paper.model and cpu.max_len == paper.max_len and cpu.batch_size == paper.batch_size
    assert cpu.max_train_prefixes and cpu.epochs < paper.epochs
    with pytest.raises(ValueError, match="profile 'gpu'"):
        profile_config("gpu")


def test_reference_preset_second_anchor_pass_and_nt_xent(ds):
    from sracl_lite.losses import nt_xent
    rng = np.random.default_rng(0)
    pool = R.prefix_pool(ds.train_sequences, whole=False)
    item_emb = rng.standard_normal((ds.n_items + 1, 12)).astype(np.float32)
    tables = R.prefix_tables(item_emb, pool, R.mean_item_embedding(item_emb, ds.train_sequences, pool, 6, unit=False),
                             k=3, exclude="self")
    cfg = profile_config("paper", "reference", model=TINY_MODEL, max_len=6, batch_size=16, epochs=2, k=3,
                         progress=False, device="cpu")
    assert (cfg.cross_loss, cfg.synth_init, cfg.exclude_history, cfg.early_stop) == ("nt_xent", "xavier", False,
                                                                                     "recbole")
    trainer = Trainer(ds, cfg, tables)
    calls, encode = [], trainer.model.encode
    trainer.model.encode = lambda seqs: calls.append(tuple(seqs.shape)) or encode(seqs)
    trainer.train_epoch(max_steps=1)
    assert calls == [(16 * (1 + 1 + 3 + 2), 6)], "anchors, their second pass, k candidates, two views"
    trainer.model.encode = encode
    # The cross loss is NT-Xent between the second pass and the synthesized positive.
    trainer.model.eval(), trainer.synthesizer.eval()
    idx = torch.arange(16)
    seqs, y, anchor_sem, cand_sem, cand_index = trainer.batch(idx)
    assert torch.equal(seqs[:16], seqs[16:32])
    reps = encode(seqs)
    positive = trainer.synthesizer(anchor_sem, cand_sem, reps[32:32 + 48].view(16, 3, -1))
    torch.manual_seed(0)
    _, _, cross, _ = trainer.losses(seqs, y, anchor_sem, cand_sem, cand_index)
    assert cross.item() == pytest.approx(nt_xent(reps[16:32], positive).item(), rel=1e-5)


def test_recbole_early_stopping_keeps_ties_and_waits_one_epoch_more(ds, monkeypatch):
    # Validation MRR@10 by epoch: 0.10004 rounds to 0.1, a tie with epoch 2 under RecBole's rule.
    scripted = {1: 0.10004, 2: 0.1}
    for rule, best_epoch, epochs_run in (("strict", 1, 3), ("recbole", 2, 5)):
        trainer = Trainer(ds, config(alpha=0.0, beta=0.0, epochs=8, patience=2, early_stop=rule))
        real = trainer.evaluate
        monkeypatch.setattr(trainer, "evaluate", lambda split="valid", exclude_history=None, t=trainer, e=real: (
            {**e(split)[0], "MRR@10": scripted.get(t.epoch, 0.09)}, e(split)[1]))
        result = trainer.fit()
        assert (result.best_epoch, len(result.history)) == (best_epoch, epochs_run), rule


def test_exclude_history_off_ranks_all_items(ds, tables):
    trainer = Trainer(ds, config(alpha=0.0, beta=0.0))
    _, ours = trainer.evaluate("test")
    _, all_items = trainer.evaluate("test", exclude_history=False)
    assert (all_items >= ours).all() and (all_items > ours).any(), "history items can only rank above the target"
    assert Trainer(ds, config(alpha=0.0, beta=0.0, exclude_history=False)).evaluate("test")[1].tolist() == \
        all_items.tolist()


def test_duorec_views_are_the_prefix_and_a_same_target_prefix(ds):
    trainer = Trainer(ds, config(alpha=0.0, beta=0.1, intra_aug="duorec"))
    idx = torch.arange(trainer.n_train)
    seqs, y, *_ = trainer.batch(idx)
    B = len(idx)
    assert torch.equal(seqs[-2 * B:-B], trainer.inputs[idx])                 # the prefix again
    partner_rows = seqs[-B:]
    # every partner is some training prefix whose next item is the anchor's
    matches = (partner_rows[:, None, :] == trainer.inputs[None]).all(-1)     # (B, N)
    same_target = trainer.targets[None, :] == y[:, None]
    assert (matches & same_target).any(1).all()


def test_a_killed_run_resumes_from_its_last_epoch_and_ends_as_an_uninterrupted_one(ds, tables, tmp_path,
                                                                                     monkeypatch):
    # the full method: synthesizer, semantic substitution views, dropout and batch order all draw random numbers
    settings = dict(alpha=0.1, beta=0.1, epochs=5, patience=2, early_stop="recbole", eval_every=1)
    whole = Trainer(ds, config(**settings), tables).fit()

    state = tmp_path / "run.pt"
    killed = Trainer(ds, config(**settings), tables)
    train_epoch = killed.train_epoch

    def dies_in_epoch_3(**kw):
        if killed.epoch == 2:
            raise KeyboardInterrupt("killed")
        return train_epoch(**kw)

    monkeypatch.setattr(killed, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(state_path=state)
    assert state.exists()
    resumed = Trainer(ds, config(**settings), tables).fit(state_path=state)   # a new process would do just this
    assert [h["epoch"] for h in resumed.history] == [h["epoch"] for h in whole.history]
    for key in ("loss", "rec", "cross", "intra", "MRR@10"):
        assert [h[key] for h in resumed.history] == pytest.approx([h[key] for h in whole.history], rel=1e-6), key
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.test == pytest.approx(whole.test, rel=1e-6)
    for name, weight in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], weight, rtol=1e-6, atol=1e-7)

    with pytest.raises(ValueError, match=r"run.pt: the training state of another run \(it differs in settings "
                                         r"\['lr'\]\); delete it to train this run from the start"):
        Trainer(ds, config(**settings, lr=5e-3), tables).fit(state_path=state)


def test_clean_ablations_change_one_part_each(ds, tables):
    from sracl_lite.baselines import SIMCSE_NORM, ablated_tables
    parts = ("item_emb", "item_neighbors", "pool_users", "pool_lengths", "pool_emb", "pool_neighbors")
    for ablation, changed in (("randpool", "pool_neighbors"), ("randsub", "item_neighbors"), ("norm20", "pool_emb")):
        ablated = ablated_tables(tables, ablation, seed=7)   # the fixture itself drew seed 0
        for part in parts:
            same = np.array_equal(getattr(ablated, part), getattr(tables, part))
            assert same == (part != changed), f"{ablation} must change {changed} alone, not {part}"
    randpool = ablated_tables(tables, "randpool", seed=7)
    assert (tables.pool_users[randpool.pool_neighbors] != tables.pool_users[:, None]).all(), "other users only"
    randsub = ablated_tables(tables, "randsub", seed=7).item_neighbors
    assert (randsub[0] == 0).all() and (randsub[1:] != np.arange(1, len(randsub))[:, None]).all()
    norm20 = ablated_tables(tables, "norm20").pool_emb
    assert np.linalg.norm(norm20, axis=1).mean() == pytest.approx(SIMCSE_NORM, rel=1e-5)
    np.testing.assert_allclose(norm20 / np.linalg.norm(norm20, axis=1, keepdims=True),
                               tables.pool_emb / np.linalg.norm(tables.pool_emb, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        ablated_tables(tables, "everything")


def test_uniform_weights_with_dropout_keep_only_the_dropout(ds, tables):
    from sracl_lite.losses import SYNTHESIZERS
    synth = SYNTHESIZERS["uniform_dropout"](8, 16, "uniform_dropout", dropout=0.5)
    anchor, cand = torch.randn(64, 8), torch.randn(64, 4, 8)
    assert list(synth.parameters()) == []
    assert torch.allclose(synth.eval().weights(anchor, cand), torch.full((64, 4), 0.25))
    torch.manual_seed(0)
    dropped = synth.train().weights(anchor, cand)
    assert set(dropped.unique().tolist()) == {0.0, 0.5}, "dropped, or kept and scaled by 1 / (1 - 0.5)"
    plain = SYNTHESIZERS["uniform"](8, 16, "uniform", dropout=0.5).train()
    assert torch.equal(plain.weights(anchor, cand), torch.full((64, 4), 0.25)), "plain uniform: no dropout"
    result = Trainer(ds, config(alpha=0.1, beta=0.0, synthesizer="uniform_dropout"), tables).fit()
    assert np.isfinite(result.history[-1]["cross"])


def test_cuda_runs_take_the_captured_compiled_step_and_say_why_not(monkeypatch):
    """with_step (notebooks 04-06, results_grid.py): on CUDA the fast step by default, each fallback with
    its reason; CPU and bf16 configs unchanged."""
    from sracl_lite import experiments
    from sracl_lite.experiments import TrainConfig, with_step

    said = []
    cpu = TrainConfig(device="cpu")
    assert with_step(cpu, say=said.append) == cpu and not said
    monkeypatch.setattr("sracl_lite.model.resolve_device", lambda name: torch.device("cuda"))
    fast = with_step(TrainConfig(device="cuda"), say=said.append)
    assert (fast.cuda_graph, fast.compile, said) == (True, "default", [])
    captured = with_step(TrainConfig(device="cuda"), "captured", say=said.append)
    assert (captured.cuda_graph, captured.compile) == (True, None)
    cl4srec = with_step(TrainConfig(device="cuda", intra_aug="cl4srec"), say=said.append)
    assert (cl4srec.cuda_graph, cl4srec.compile) == (True, None) and "not compiled" in said[-1]
    unique = with_step(TrainConfig(device="cuda", unique_candidates=True), say=said.append)
    assert (unique.cuda_graph, unique.compile) == (False, None) and "unique_candidates" in said[-1]
    bf16 = with_step(TrainConfig(device="cuda", bf16=True), say=said.append)
    assert (bf16.cuda_graph, bf16.compile) == (False, None) and "bf16" in said[-1]
    assert with_step(TrainConfig(device="cuda"), "eager", say=said.append).cuda_graph is False
    assert experiments.profile_config("paper", device="cuda").cuda_graph      # the notebooks' default
    assert not experiments.profile_config("paper", step="eager", device="cuda").cuda_graph
    # the computed settings (and so results_grid's settings_hash) do not see the step
    assert fast.computed_settings() == TrainConfig(device="cuda").computed_settings()


def test_tables_searched_for_the_training_anchors_only_train_as_the_full_ones(ds):
    rng = np.random.default_rng(1)
    item_emb = rng.standard_normal((ds.n_items + 1, 12)).astype(np.float32)
    cfg = profile_config("paper", "reference", model=TINY_MODEL, max_len=6, batch_size=16, epochs=1, k=3,
                         max_train_prefixes=40, seed=3, progress=False, device="cpu")
    anchors = trained_prefixes(ds, cfg)
    full = R.reference_tables(item_emb, ds.train_sequences, k=3, window=6)
    part = R.reference_tables(item_emb, ds.train_sequences, k=3, window=6, anchors=anchors)
    rows = np.flatnonzero(part.searched)
    assert len(rows) == 40 < len(full.pool_users), "one row per anchor that trains"
    assert (part.pool_neighbors[rows] == full.pool_neighbors[rows]).all(), "the rows a search of every entry gives"
    assert (part.pool_neighbors[~part.searched] == -1).all()
    losses = [Trainer(ds, cfg, t).train_epoch(max_steps=2) for t in (full, part)]
    assert [losses[0][n] for n in ("loss", "cross", "intra")] == pytest.approx(
        [losses[1][n] for n in ("loss", "cross", "intra")], rel=1e-6)
    with pytest.raises(ValueError, match="no searched neighbours"):
        Trainer(ds, replace(cfg, seed=4), part)
    for wrong in ((anchors[0][:0], anchors[1][:0]), (anchors[0], anchors[1] + 100)):
        with pytest.raises(ValueError, match="no anchors, or some anchors"):
            R.reference_tables(item_emb, ds.train_sequences, k=3, window=6, anchors=wrong)
