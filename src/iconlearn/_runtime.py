"""Where and how torch runs: the device, the thread count and seeded randomness.

Every front door (estimators, the pretraining loop) resolves its ``device`` here, and none of
them leaves the process-wide state of torch changed behind it: thread counts are set and
restored, and randomness comes from local generators (``torch.Generator``,
``np.random.default_rng``) seeded from ``random_state``.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["resolve_device", "resolve_seed", "draw_seed", "torch_seeded", "torch_threads"]


def resolve_device(device="auto", local_rank: int | None = None) -> torch.device:
    """``"auto"`` (or None): CUDA when available, else CPU; ``local_rank`` picks the process's GPU
    under torchrun (``"cuda"`` then means ``cuda:<local_rank>``). Asking for CUDA on a machine
    without a GPU is an error here, not a crash later."""
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asks for CUDA but torch sees no GPU; use device='cpu'")
        if dev.index is None and local_rank is not None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def resolve_seed(random_state) -> int:
    """The seed of a run: ``random_state`` as given, or a fresh one from the OS for None (so that a
    seedless run can still replay its own stream, e.g. a second pass over the same batches)."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % 2**31)
    return random_state


def draw_seed(rng: np.random.Generator) -> int:
    """A 31-bit seed drawn from ``rng``, to seed a torch generator from a numpy one."""
    return int(rng.integers(2**31))


@contextmanager
def torch_seeded(seed: int):
    """torch's global CPU generator seeded with ``seed`` inside the block and restored after it, for
    torch calls that take no generator (module initialisation, ``torch.svd_lowrank``)."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(seed))
        yield


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None or 0: unchanged), then restore the count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)
