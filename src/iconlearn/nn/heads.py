"""Clustering heads: several linear or MLP heads trained at once on frozen features.

``MultiHead(in_dim, n_clusters, n_heads)`` maps (B x D) features to (H x B x C) logits, one
slice per head, all heads computed in one batched product. SCAN, TEMI and I-Con train several
heads with different initialisations and keep the one with the lowest loss (no labels needed).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import _validation as V


class MultiLinear(nn.Module):
    """H independent affine maps D -> C, evaluated together: (B x D) or (H x B x D) -> (H x B x C)."""

    def __init__(self, in_dim: int, out_dim: int, n_heads: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(n_heads, in_dim, out_dim).uniform_(-bound, bound, generator=generator))
        self.bias = nn.Parameter(torch.empty(n_heads, 1, out_dim).uniform_(-bound, bound, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            return torch.einsum("bd,hdc->hbc", x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class MultiHead(nn.Module):
    """Several clustering heads on shared input features.

    Args:
        in_dim: feature dimension D.
        n_clusters: number of clusters C (>= 2).
        n_heads: number of heads H trained at once.
        hidden: 0 for linear heads; otherwise the width of one hidden layer (MLP with
            batch-free LayerNorm-less ReLU, so a head's output for a point does not depend on
            the batch it is in).
        generator: a torch.Generator for reproducible initialisation.
        cosine: logits are cosines between the L2-normalised input of the last layer and its
            L2-normalised weight columns, no bias (DINO's weight-normalised last layer, the head of
            TEMI), so they lie in [-1, 1] and a softmax temperature sets their sharpness.

    ``forward(x)`` returns (H x B x C) logits; :meth:`probs` the softmax over clusters.
    """

    def __init__(self, in_dim: int, n_clusters: int, n_heads: int = 1, hidden: int = 0,
                 generator: torch.Generator | None = None, cosine: bool = False):
        super().__init__()
        V.check_int(in_dim, "in_dim", 1)
        V.check_int(n_clusters, "n_clusters", 1)
        V.check_int(n_heads, "n_heads", 1)
        V.check_int(hidden, "hidden", 0)
        self.in_dim, self.n_clusters, self.n_heads, self.hidden, self.cosine = in_dim, n_clusters, n_heads, hidden, cosine
        if hidden:
            self.hidden_layer = MultiLinear(in_dim, hidden, n_heads, generator)
            self.out = MultiLinear(hidden, n_clusters, n_heads, generator)
        else:
            self.hidden_layer = None
            self.out = MultiLinear(in_dim, n_clusters, n_heads, generator)

    def forward(self, x: Tensor) -> Tensor:
        if self.hidden_layer is not None:
            x = torch.relu(self.hidden_layer(x))
        if self.cosine:
            x = torch.nn.functional.normalize(x, dim=-1)
            w = torch.nn.functional.normalize(self.out.weight, dim=1)  # unit columns (one per cluster)
            return torch.einsum("bd,hdc->hbc", x, w) if x.ndim == 2 else torch.bmm(x, w)
        return self.out(x)

    def probs(self, x: Tensor) -> Tensor:
        """Soft assignments (H x B x C)."""
        return torch.softmax(self.forward(x), dim=-1)


@torch.no_grad()
def keep_heads(heads: MultiHead, keep, opt: torch.optim.Optimizer | None = None, teacher: nn.Module | None = None) -> None:
    """Keep only the heads ``keep`` (indices) of ``heads``, in place: its parameters, their
    optimiser state (Adam's moments, any per-parameter tensor shaped like the parameter) and an EMA
    teacher's copy, so that training goes on with the same optimiser and schedule."""
    idx = torch.as_tensor(np.asarray(keep), dtype=torch.long)
    modules = [heads] + ([teacher.module if hasattr(teacher, "module") else teacher] if teacher is not None else [])
    for module in modules:
        for p in module.parameters():
            state = opt.state.get(p, {}) if opt is not None else {}
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    state[key] = value[idx.to(value.device)].clone()
            p.data = p.data[idx.to(p.device)].clone()
        module.n_heads = len(idx)


def fit_head_to_labels(heads: MultiHead, head: int, x: Tensor, labels: Tensor, max_iter: int = 100) -> None:
    """Re-fit head ``head`` of ``heads``, in place, to hard ``labels`` of the rows of ``x`` by
    cross-entropy (full batch, L-BFGS from its current weights): multinomial logistic regression for
    a linear head, all its layers for an MLP head. The other heads are untouched."""
    import copy

    single = copy.deepcopy(heads)
    keep_heads(single, [head])
    opt = torch.optim.LBFGS(single.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(single(x)[0], labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        for mine, fitted in zip(heads.parameters(), single.parameters()):
            mine[head] = fitted[0]
