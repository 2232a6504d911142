"""Saving and loading trained models with the settings they were trained with, and the whole
state of a run between two epochs, so that a killed run resumes where it stopped."""
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .experiments import TrainConfig
from .model import build_model


CHECKPOINT_FORMAT = "sracl-lite-checkpoint-1"


TRAINING_STATE_FORMAT = "sracl-lite-training-state-1"


def load_checkpoint(path, n_items: int = None, config: TrainConfig = None, device="cpu"):
    """Rebuild the model of a checkpoint: returns (model in eval mode, its TrainConfig, raw dict).

    With `n_items` or `config`, fails clearly when the checkpoint belongs to another dataset or
    another architecture (rather than with a tensor-shape error deep inside PyTorch).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint there; train with TrainConfig(checkpoint=...) first")
    saved = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an SRA-CL Lite checkpoint (expected format {CHECKPOINT_FORMAT})")
    saved_config = TrainConfig(**saved["config"])
    if n_items is not None and n_items != saved["n_items"]:
        raise ValueError(f"{path}: checkpoint was trained on {saved['n_items']} items ({saved['dataset']}); "
                         f"this dataset has {n_items}. Use a checkpoint of this dataset")
    if config is not None:
        differs = {f"model.{key}": (value, getattr(saved_config.model, key))
                   for key, value in asdict(config.model).items() if getattr(saved_config.model, key) != value}
        if config.max_len != saved_config.max_len:
            differs["max_len"] = (config.max_len, saved_config.max_len)
        if differs:
            detail = ", ".join(f"{k}: wanted {a}, checkpoint {b}" for k, (a, b) in differs.items())
            raise ValueError(f"{path}: checkpoint has another architecture ({detail}); load it with its own "
                             "config or retrain")
    model = build_model(saved_config.model, saved["n_items"], saved_config.max_len).to(device)
    load_state_checked(model, saved["model"], str(path))
    model.eval()
    return model, saved_config, saved


def load_state_checked(module: torch.nn.Module, state: dict, source: str):
    """load_state_dict with an error that lists every missing, unexpected or reshaped tensor."""
    own = module.state_dict()
    problems = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                for k, v in own.items() if k in state and state[k].shape != v.shape]
    problems += [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    if problems:
        raise ValueError(f"{source}: state does not fit this model ({'; '.join(problems[:6])}"
                         f"{'; ...' if len(problems) > 6 else ''}); it comes from another dataset or configuration")
    module.load_state_dict(state)


def save_training_state(path, trainer, run: dict, data_hash: str):
    """Everything `Trainer.fit` carries from one epoch to the next: model, synthesizer and optimizer
    states, every random stream, and `run` (history, best score, best epoch and state, seconds).
    Written to a side file and renamed, so a kill while saving leaves the previous epoch's state."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cuda = trainer.device.type == "cuda"
    state = {"format": TRAINING_STATE_FORMAT, "settings": trainer.config.computed_settings(),
             "data_hash": data_hash, "epoch": trainer.epoch, "weights": trainer.state(),
             "optimizer": trainer.optimizer.state_dict(), "order_rng": trainer.order_rng.get_state(),
             "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(trainer.device) if cuda else None,
             "numpy_rng": np.random.get_state(), "run": run}
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    os.replace(partial, path)


def load_training_state(path, trainer, data_hash: str) -> dict:
    """Put `trainer` back where `save_training_state` left it; returns the saved `run`. A state of
    another run (other settings or data) is an error: it is never mixed into this one."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != TRAINING_STATE_FORMAT:
        raise ValueError(f"{path}: not an SRA-CL Lite training state (expected format {TRAINING_STATE_FORMAT}); "
                         "delete it to train this run from the start")
    settings = trainer.config.computed_settings()
    differs = sorted(k for k in settings.keys() | saved["settings"].keys()
                     if settings.get(k) != saved["settings"].get(k))
    if differs or saved["data_hash"] != data_hash:
        what = f"settings {differs}" if differs else "the data"
        raise ValueError(f"{path}: the training state of another run (it differs in {what}); delete it to train "
                         "this run from the start, or give this run another state file")
    trainer.load_state(saved["weights"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.order_rng.set_state(saved["order_rng"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] is not None and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], trainer.device)
    np.random.set_state(saved["numpy_rng"])
    trainer.epoch = saved["epoch"]
    return saved["run"]
