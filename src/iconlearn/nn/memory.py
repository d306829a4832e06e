"""Memory of past embeddings, extra candidates j for q(j|i) beyond the batch (I-Con section 3:
the candidate set of the learned distribution is free to grow).

* :class:`Queue`: MoCo's FIFO queue of the most recent keys (He et al. 2020).
* :class:`MemoryBank`: InstDisc's per-sample bank, one momentum-averaged row per training item
  (Wu et al. 2018).

Both are ``nn.Module`` s holding buffers only, so they travel with ``state_dict`` into checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _validation as V

__all__ = ["Queue", "MemoryBank"]


class Queue(nn.Module):
    """FIFO ring buffer of the ``size`` most recent (detached) keys of width ``dim``.

    ``push(keys)`` enqueues a batch (oldest entries are overwritten); ``get()`` returns the filled
    part (in no particular order: the order of candidates does not change q). With
    ``torch.distributed``, push the keys gathered from every rank so that all ranks hold the same
    queue.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        V.check_int(size, "queue size", low=1)
        V.check_int(dim, "queue dim", low=1)
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        V.check_embeddings(keys, "keys")
        if keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"keys have width {keys.shape[1]} but the queue holds width {self.keys.shape[1]}")
        keys = keys.detach().to(self.keys.dtype)[-self.size:]
        n, ptr = keys.shape[0], int(self.ptr)
        idx = (torch.arange(n, device=self.keys.device) + ptr) % self.size
        self.keys[idx] = keys
        self.ptr.fill_((ptr + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))

    def get(self) -> Tensor:
        return self.keys[: int(self.filled)]


class MemoryBank(nn.Module):
    """One row per training item, updated as m * old + (1 - m) * new and re-normalised (InstDisc).

    ``update(idx, z)`` writes the batch's embeddings of items ``idx``; ``get()`` returns the bank.
    Rows start as random unit vectors.
    """

    def __init__(self, n_items: int, dim: int, momentum: float = 0.5, seed: int = 0):
        super().__init__()
        V.check_int(n_items, "n_items", low=1)
        V.check_int(dim, "dim", low=1)
        self.momentum = V.check_alpha(momentum, "momentum")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("bank", F.normalize(torch.randn(n_items, dim, generator=g), dim=1))

    @torch.no_grad()
    def update(self, idx: Tensor, z: Tensor) -> None:
        V.check_embeddings(z, "z")
        V.check_labels(idx, z.shape[0], "idx")
        if z.shape[1] != self.bank.shape[1]:
            raise ValueError(f"z has width {z.shape[1]} but the bank holds width {self.bank.shape[1]}")
        new = self.momentum * self.bank[idx] + (1 - self.momentum) * z.detach().to(self.bank.dtype)
        self.bank[idx] = F.normalize(new, dim=1)

    def get(self) -> Tensor:
        return self.bank
