"""Gathering embeddings across ``torch.distributed`` ranks with correct gradients.

Convention (as in SimCLR's and lightly's fixed implementations): each rank contrasts its *local*
anchors against the *global* set of candidates gathered from every rank, and its loss is the mean
over its local anchors. The gather's backward sums the candidates' gradients over ranks (an
all-reduce), so that after DDP averages parameter gradients across ranks they equal the gradients
of a single process on the global batch, and the mean of the ranks' losses equals its loss.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        world = dist.get_world_size()
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        sizes = [int(s.item()) for s in sizes]
        if len(set(sizes)) != 1:
            raise ValueError(f"gather_distributed needs the same local batch size on every rank, got {sizes}")
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather(x: Tensor) -> tuple[Tensor, int]:
    """All ranks' rows of x concatenated in rank order, and the offset of this rank's rows.

    Without an initialised process group (or with one rank) this is ``(x, 0)``.
    """
    if not is_distributed():
        return x, 0
    return _GatherWithGrad.apply(x), dist.get_rank() * x.shape[0]
