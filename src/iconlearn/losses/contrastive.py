"""Contrastive losses as I-Con (Theorems 3-4, Corollary 1): p from known positives (the other view,
the same label, the partner in the other modality, the true class), q a kernel on the embeddings
normalised over the batch's candidates."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .. import _validation as V
from ..core import SparseRows, icon_loss
from ..learned import ConcatSumKernel, CosineKernel, DotKernel, ExponentialKernel, Kernel, SumKernel, compute_dtype
from ..learned import masked_log_softmax
from ..supervisory import augmentation_targets, cross_modal_targets, has_positive, same_group_targets
from ._batch import BatchLoss, own_columns, zero_loss

__all__ = ["InfoNCE", "KernelInfoNCE", "SupCon", "CLIPLoss", "CrossEntropyICon"]


class InfoNCE(BatchLoss):
    """SimCLR's NT-Xent / InfoNCE as I-Con (Theorem 3).

    p(j|i): uniform over the other view of the same item; q(j|i) ∝ exp(cos(z_i, z_j) / tau) over
    all 2N views but the anchor itself. Mean over the 2N anchors. ``loss(z1, z2)``.

    Examples:
        >>> loss = InfoNCE(temperature=0.5)
        >>> loss(model(aug(x)), model(aug(x)))   # two views of the same N items, N x D each
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.temperature = V.check_positive(temperature, "temperature")
        self.kernel = self._make_kernel()

    def _make_kernel(self) -> Kernel:
        return CosineKernel(self.temperature)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        anchors, candidates, own = self._two_views(z1, z2)
        p = augmentation_targets(candidates.shape[0] // 2, 2, device=z1.device, dtype=compute_dtype(z1))
        p = SparseRows(p.values[own], p.indices[own])  # this rank's rows, over the global columns
        return icon_loss(p, self.kernel(anchors, candidates, exclude=own))


class KernelInfoNCE(InfoNCE):
    """Kernel-InfoNCE (Tan et al., "Contrastive learning is spectral clustering on similarity
    graph"): InfoNCE's p with q(j|i) ∝ k(z_i, z_j) for exponential kernels

        k(x, y) = exp(-||x - y||^gamma / tau)      (gamma = 2 Gaussian, gamma = 1 Laplacian)

    on L2-normalised embeddings, or their mixtures:

    * ``mixture="sum"``: sum_m w_m exp(-||x - y||^gamma_m / tau_m) on the whole embedding;
    * ``mixture="concat"``: sum_m exp(-||x[S_m] - y[S_m]||^gamma_m / tau_m), each kernel on its own
      slice S_m of the (normalised) embedding (``sizes``; even split by default).

    ``gammas`` / ``temperatures`` / ``weights`` configure the mixture components (default:
    Laplacian + Gaussian, both at ``temperature``). Same call as InfoNCE: ``loss(z1, z2)``.

    Examples:
        >>> KernelInfoNCE(gamma=1.0, temperature=0.5)(z1, z2)         # Laplacian kernel
        >>> KernelInfoNCE(mixture="concat", gammas=(1, 2))(z1, z2)    # Laplacian + Gaussian slices
    """

    mixtures = (None, "sum", "concat")

    def __init__(self, gamma: float = 1.0, temperature: float = 0.5, mixture: str | None = None,
                 gammas: Sequence[float] = (1.0, 2.0), temperatures: Sequence[float] | None = None,
                 weights: Sequence[float] | None = None, sizes: Sequence[int] | None = None,
                 normalize_inputs: bool = True, gather_distributed: bool = False):
        if mixture not in self.mixtures:
            raise ValueError(f"mixture must be one of {self.mixtures}, got {mixture!r}")
        self.gamma = V.check_positive(gamma, "gamma")
        self.mixture = mixture
        self.gammas = [V.check_positive(g, "gammas") for g in gammas]
        temps = [temperature] * len(self.gammas) if temperatures is None else list(temperatures)
        self.temperatures = [V.check_positive(t, "temperatures") for t in temps]
        if mixture is not None and (len(self.gammas) < 2 or len(self.temperatures) != len(self.gammas)):
            raise ValueError(f"a mixture needs >= 2 gammas and one temperature per gamma, got gammas={list(gammas)}"
                             f" temperatures={temps}")
        if weights is not None and (len(weights) != len(self.gammas) or any(w <= 0 for w in weights)):
            raise ValueError(f"weights must be {len(self.gammas)} positive numbers, got {list(weights)}")
        if sizes is not None and (len(sizes) != len(self.gammas) or any(int(s) < 1 for s in sizes)):
            raise ValueError(f"sizes must be {len(self.gammas)} positive slice widths, got {list(sizes)}")
        self.weights, self.sizes, self.normalize_inputs = weights, sizes, normalize_inputs
        super().__init__(temperature, gather_distributed)

    def _make_kernel(self) -> Kernel:
        if self.mixture is None:
            return ExponentialKernel(self.gamma, self.temperature, self.normalize_inputs)
        parts = [ExponentialKernel(g, t, self.mixture == "sum" and self.normalize_inputs)
                 for g, t in zip(self.gammas, self.temperatures)]
        if self.mixture == "sum":
            return SumKernel(parts, self.weights)
        return ConcatSumKernel(parts, self.sizes, normalize_inputs=self.normalize_inputs)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if self.mixture == "concat":
            V.check_embeddings(z1, "z1")
            k = len(self.gammas)
            width = sum(self.sizes) if self.sizes is not None else z1.shape[1]
            if width != z1.shape[1] or z1.shape[1] < k:
                raise ValueError(f"concat mixture: slice sizes {self.sizes} must add up to the embedding dimension"
                                 f" {z1.shape[1]} (and it must be >= {k})")
        return super().forward(z1, z2)


class SupCon(BatchLoss):
    """Supervised contrastive loss, L_out form (Khosla et al. 2020; I-Con Theorem 3 with labels).

    p(j|i): uniform over the other samples with the same label; q(j|i) ∝ exp(cos / tau) over all
    but the anchor. The value is the cross-entropy H(p, q) = the SupCon formula; anchors with no
    positive in the batch are left out of the mean. ``loss(z, labels)`` with z (B x D), or Khosla's
    layout z (B x V x D) of V views per labelled item.

    Examples:
        >>> SupCon(temperature=0.1)(torch.cat([z1, z2]), torch.cat([labels, labels]))
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.temperature = V.check_positive(temperature, "temperature")
        self.kernel = CosineKernel(self.temperature)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        if isinstance(z, Tensor) and z.ndim == 3:
            V.check_labels(labels, z.shape[0])
            z, labels = z.transpose(0, 1).reshape(-1, z.shape[2]), labels.repeat(z.shape[1])
        V.check_embeddings(z, "z")
        V.check_labels(labels, z.shape[0])
        Z, offset = self._gather(z)
        L, _ = self._gather(labels)
        own = own_columns(z, offset)
        p = same_group_targets(labels, L, self_columns=own, dtype=compute_dtype(z))
        keep = has_positive(p)
        if not bool(keep.any()):
            return zero_loss(z)
        log_q = self.kernel(z[keep], Z, exclude=own[keep])
        p = SparseRows(p.values[keep], p.indices[keep])
        # mean over the anchors with a positive; with gathering each rank averages its own anchors
        return icon_loss(p, log_q, cross_entropy=True)


class CLIPLoss(BatchLoss):
    """Symmetric CLIP / CMC loss (I-Con Theorem 4).

    2N points in two modalities; p(j|i) is the partner in the other modality, and q(j|i) ∝
    exp(cos / tau) over the other modality only. The mean over all 2N anchors is the usual
    (CE(a -> b) + CE(b -> a)) / 2. ``loss(a, b)``.

    Examples:
        >>> CLIPLoss(temperature=0.07)(image_encoder(images), text_encoder(captions))
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.temperature = V.check_positive(temperature, "temperature")
        self.kernel = CosineKernel(self.temperature, exclude_self=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        V.check_embeddings(a, "a")
        V.check_embeddings(b, "b")
        V.check_same_length(a, b, "a", "b")
        A, offset = self._gather(a)
        B, _ = self._gather(b)
        p = cross_modal_targets(A.shape[0], device=a.device)
        rows = slice(offset, offset + a.shape[0])
        p = SparseRows(p.values[rows].repeat(2, 1), p.indices[rows].repeat(2, 1))
        log_q = torch.cat([self.kernel(a, B), self.kernel(b, A)])
        return icon_loss(p, log_q)


class CrossEntropyICon(nn.Module):
    """Cross-entropy classification as I-Con (Corollary 1): points contrast against class
    prototypes phi_c. p(c|i) = 1[y_i = c]; q(c|i) ∝ exp(f(x_i) . phi_c / tau). ``loss(features,
    prototypes, labels)``; with ``prototypes=None`` the features are taken to be logits already.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.kernel = DotKernel(V.check_positive(temperature, "temperature"))

    def forward(self, features: Tensor, prototypes: Tensor | None, labels: Tensor) -> Tensor:
        V.check_embeddings(features, "features")
        V.check_labels(labels, features.shape[0])
        if prototypes is None:
            log_q = masked_log_softmax(features.to(compute_dtype(features)) / self.kernel.temperature)
        else:
            V.check_embeddings(prototypes, "prototypes")
            if prototypes.shape[1] != features.shape[1]:
                raise ValueError(f"prototypes have dimension {prototypes.shape[1]} but features {features.shape[1]}")
            log_q = self.kernel(features, prototypes)
        n_classes = log_q.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes}), got values in [{labels.min()}, {labels.max()}]")
        p = SparseRows(torch.ones(len(labels), 1, dtype=log_q.dtype, device=log_q.device), labels.view(-1, 1).long())
        return icon_loss(p, log_q)
