"""Checkpoints that load with ``torch.load(..., weights_only=True)``: tensors and primitive
containers only, written atomically (:func:`iconlearn._files.atomic_write`)."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .._files import atomic_write

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "model_signature", "check_compatible", "CheckpointError"]

FORMAT = "iconlearn-pretrain-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: corrupt, from another model, or another run's setup."""


def model_signature(model: nn.Module) -> list[list]:
    """[name, shape] of every entry of the state dict: what a checkpoint must match to load."""
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated file?): {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an iconlearn pretraining checkpoint (expected format {FORMAT!r})")
    return ckpt


def check_compatible(ckpt: dict, model: nn.Module, path="checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the first mismatching entry if ``ckpt`` is from another model."""
    want = {k: s for k, s in model_signature(model)}
    have = {k: s for k, s in ckpt.get("model_signature", [])}
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    shape = [k for k in want if k in have and list(have[k]) != list(want[k])]
    if missing or extra or shape:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra
                  else f"{shape[0]} has shape {have[shape[0]]} in the checkpoint but {want[shape[0]]} in the model")
        raise CheckpointError(f"{path} was written for another model ({detail}); "
                              "use the config it was trained with or a fresh out_dir")
