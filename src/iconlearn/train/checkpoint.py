"""Checkpoints that load with ``torch.load(..., weights_only=True)``: tensors and primitive
containers only, written atomically (:func:`iconlearn._files.atomic_write`) and verified on load.

A checkpoint file holds ``{"format", "sha256", "payload"}``: the state as ``torch.save`` bytes (a
uint8 tensor) and the sha256 of those bytes, so that a file damaged on disk (flipped bits, a
partial copy) is refused instead of resumed.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from .._files import atomic_write

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "model_signature", "check_compatible", "CheckpointError"]

FORMAT = "iconlearn-pretrain-v2"
_OLDER = ("iconlearn-pretrain-v1",)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: corrupt, from another model, or another run's setup."""


def model_signature(model: nn.Module) -> list[list]:
    """[name, shape] of every entry of the state dict: what a checkpoint must match to load."""
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def _sha256(payload: torch.Tensor) -> str:
    return hashlib.sha256(payload.numpy().tobytes()).hexdigest()


def save_checkpoint(state: dict, path) -> Path:
    """Write ``state`` (tensors and primitive containers) to ``path`` with its checksum."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = torch.frombuffer(bytearray(buffer.getbuffer()), dtype=torch.uint8)
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, "sha256": _sha256(payload), "payload": payload}, f)
    return path


def _load(source, path, map_location="cpu"):
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load fails on foreign bytes in many ways (IndexError, UnpicklingError, ...)
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated file, or not one written "
                              f"by PyTorch): {detail}") from None


def load_checkpoint(path, map_location="cpu") -> dict:
    """The state saved by :func:`save_checkpoint`; :class:`CheckpointError` for a file that is
    damaged, foreign, or from an older format."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file (a run saves <out_dir>/last.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    outer = _load(path, path)
    kind = outer.get("format") if isinstance(outer, dict) else None
    if kind in _OLDER:
        raise CheckpointError(f"{path} was written by an older iconlearn ({kind}) and cannot be resumed by this "
                              f"version; start afresh (--no-resume, or another out_dir)")
    if kind != FORMAT:
        raise CheckpointError(f"{path} is not an iconlearn pretraining checkpoint (expected format {FORMAT!r})")
    payload = outer.get("payload")
    if not (isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and payload.ndim == 1
            and _sha256(payload) == outer.get("sha256")):
        raise CheckpointError(f"{path} is damaged: its contents do not match their sha256 checksum, so it cannot "
                              f"be resumed safely; resume from an intact copy or start afresh")
    state = _load(io.BytesIO(payload.numpy().tobytes()), path, map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an iconlearn pretraining checkpoint (its payload is not a mapping)")
    return state


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
