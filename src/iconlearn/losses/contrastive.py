"""Contrastive and supervised losses as I-Con (Theorems 3-4, Corollary 1): p from known positives
(the other view, the same label, the partner in the other modality, the true class, the regression
target), q a kernel on the embeddings normalised over the batch's candidates."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .. import _validation as V
from ..core import DIVERGENCES, SparseRows, gaussian_icon_loss, icon_divergence, icon_loss
from ..learned import CosineKernel, DotKernel, Kernel, PointClusterKernel, compute_dtype, kernel_infonce_kernel
from ..learned import masked_log_softmax
from ..supervisory import augmentation_targets, cross_modal_targets, has_positive, same_group_targets
from ._batch import BatchLoss, check_assignments, own_columns, zero_loss

__all__ = ["InfoNCE", "KernelInfoNCE", "InfoNCEClustering", "SupCon", "CLIPLoss", "CrossEntropyICon", "MSEICon"]


class InfoNCE(BatchLoss):
    """SimCLR's NT-Xent / InfoNCE as I-Con (Theorem 3).

    p(j|i): uniform over the other view of the same item; q(j|i) ∝ exp(cos(z_i, z_j) / tau) over
    all 2N views but the anchor itself. Mean over the 2N anchors. ``loss(z1, z2)``.

    ``kernel`` replaces the cosine kernel by any :class:`iconlearn.learned.Kernel` (e.g. a composed
    one, ``ExponentialKernel(1.0) + ExponentialKernel(2.0)``, or a ``LearnableStudentTKernel``, whose
    parameters this module then holds); ``divergence`` compares p and q by another divergence of
    :func:`iconlearn.core.icon_divergence` instead of KL.

    Examples:
        >>> loss = InfoNCE(temperature=0.5)
        >>> loss(model(aug(x)), model(aug(x)))   # two views of the same N items, N x D each
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False, *, kernel: Kernel | None = None,
                 divergence: str = "kl"):
        super().__init__(gather_distributed)
        self.temperature = V.check_positive(temperature, "temperature")
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
        if kernel is not None and not isinstance(kernel, Kernel):
            raise ValueError(f"kernel must be an iconlearn.learned.Kernel, got {type(kernel).__name__}")
        self.divergence = divergence
        self.kernel = self._make_kernel() if kernel is None else kernel

    def _make_kernel(self) -> Kernel:
        return CosineKernel(self.temperature)

    def _batch(self, z1: Tensor, z2: Tensor) -> tuple[SparseRows, Tensor, Tensor, Tensor]:
        """(p over the global columns for this rank's rows, anchors, candidates, the anchors' own columns)."""
        anchors, candidates, own = self._two_views(z1, z2)
        p = augmentation_targets(candidates.shape[0] // 2, 2, device=z1.device, dtype=compute_dtype(z1))
        return SparseRows(p.values[own], p.indices[own]), anchors, candidates, own

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        p, anchors, candidates, own = self._batch(z1, z2)
        return icon_divergence(p, self.kernel(anchors, candidates, exclude=own), self.divergence)


class KernelInfoNCE(InfoNCE):
    """Kernel-InfoNCE (Tan et al., "Contrastive learning is spectral clustering on similarity
    graph", section 6): InfoNCE's p with q(j|i) ∝ k(z_i, z_j) for exponential kernels

        k(x, y) = exp(-||x - y||^gamma / tau)      (gamma = 2 Gaussian, gamma = 1 Laplacian)

    on L2-normalised embeddings, or their mixtures of ``gammas`` (default Laplacian + Gaussian, each at
    ``temperatures``, default ``temperature``), in one of two forms:

    * ``form="kernel"`` (the paper's equations): one softmax over the mixture kernel,

      - ``mixture="sum"``: k = sum_m w_m exp(-||x - y||^gamma_m / tau_m) on the whole embedding;
      - ``mixture="concat"``: k = sum_m w_m exp(-||x[S_m] - y[S_m]||^gamma_m / tau_m), each kernel on
        its own slice S_m (``sizes``; even split by default) of the normalised embedding;

      ``weights`` w_m default to 1.
    * ``form="loss"`` (how the authors' code trains them): a weighted sum of separate InfoNCE losses,
      one softmax per kernel, L = sum_m w_m L_m; with the default weights (1/2, 1/2) and
      gammas (gamma, 2) this is their lambda L_gamma + (1 - lambda) L_2 at lambda = 1/2:

      - ``mixture="sum"``: every L_m on the whole embedding (their ``loss_type="sum"``);
      - ``mixture="concat"``: L_m on slice S_m (their ``loss_type="product"``, for which they double
        the projection width so that each slice keeps a single kernel's width).

    Both forms share one kernel definition (:func:`iconlearn.learned.kernel_infonce_kernel`, also
    used by :mod:`iconlearn.analysis.spectral`): the whole embedding is L2-normalised, then sliced.
    Same call as InfoNCE: ``loss(z1, z2)``.

    Examples:
        >>> KernelInfoNCE(gamma=1.0, temperature=0.5)(z1, z2)                  # Laplacian kernel
        >>> KernelInfoNCE(mixture="concat", gammas=(1, 2))(z1, z2)             # one softmax, two slices
        >>> KernelInfoNCE(mixture="sum", form="loss", weights=(0.7, 0.3))(z1, z2)   # 0.7 L_1 + 0.3 L_2
    """

    mixtures = (None, "sum", "concat")
    forms = ("kernel", "loss")

    def __init__(self, gamma: float = 1.0, temperature: float = 0.5, mixture: str | None = None,
                 gammas: Sequence[float] = (1.0, 2.0), temperatures: Sequence[float] | None = None,
                 weights: Sequence[float] | None = None, sizes: Sequence[int] | None = None,
                 normalize_inputs: bool = True, gather_distributed: bool = False, form: str = "kernel",
                 divergence: str = "kl"):
        if mixture not in self.mixtures:
            raise ValueError(f"mixture must be one of {self.mixtures}, got {mixture!r}")
        if form not in self.forms:
            raise ValueError(f"form must be one of {self.forms}, got {form!r}")
        if form == "loss" and mixture is None:
            raise ValueError("form='loss' weighs the losses of a mixture's kernels: set mixture='sum' or 'concat'")
        self.gamma = V.check_positive(gamma, "gamma")
        self.mixture, self.form = mixture, form
        self.gammas = [V.check_positive(g, "gammas") for g in gammas]
        temps = [temperature] * len(self.gammas) if temperatures is None else list(temperatures)
        self.temperatures = [V.check_positive(t, "temperatures") for t in temps]
        if mixture is not None and (len(self.gammas) < 2 or len(self.temperatures) != len(self.gammas)):
            raise ValueError(f"a mixture needs >= 2 gammas and one temperature per gamma, got gammas={list(gammas)}"
                             f" temperatures={temps}")
        if weights is not None and (len(weights) != len(self.gammas) or any(not w > 0 for w in weights)):
            raise ValueError(f"weights must be {len(self.gammas)} positive numbers, got {list(weights)}")
        if sizes is not None and (len(sizes) != len(self.gammas) or any(int(s) < 1 for s in sizes)):
            raise ValueError(f"sizes must be {len(self.gammas)} positive slice widths, got {list(sizes)}")
        self.weights, self.sizes, self.normalize_inputs = weights, sizes, normalize_inputs
        self.loss_weights = None
        if form == "loss":
            self.loss_weights = [1.0 / len(self.gammas)] * len(self.gammas) if weights is None else list(weights)
        super().__init__(temperature, gather_distributed, divergence=divergence)

    def _make_kernel(self) -> Kernel:
        return kernel_infonce_kernel(self.gamma, self.temperature, self.mixture, self.gammas, self.temperatures,
                                     self.weights if self.form == "kernel" else None, self.sizes, self.normalize_inputs)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if self.mixture == "concat":
            V.check_embeddings(z1, "z1")
            k = len(self.gammas)
            width = sum(self.sizes) if self.sizes is not None else z1.shape[1]
            if width != z1.shape[1] or z1.shape[1] < k:
                raise ValueError(f"concat mixture: slice sizes {self.sizes} must add up to the embedding dimension"
                                 f" {z1.shape[1]} (and it must be >= {k})")
        if self.form == "kernel":
            return super().forward(z1, z2)
        p, anchors, candidates, own = self._batch(z1, z2)
        return sum(w * icon_divergence(p, k(anchors, candidates, exclude=own), self.divergence)
                   for w, k in zip(self.loss_weights, self.kernel.kernels))


class InfoNCEClustering(InfoNCE):
    """The "InfoNCE clustering" row of I-Con Table 1 (new in that paper): InfoNCE's p, uniform over
    the other view of each item, with the shared cluster likelihood *by point* as q,

        q(j|i) = phi_i . phi_j / sum_{k != i} phi_i . phi_k,

    phi the soft cluster assignments of the 2N views (the denominator is the expected size of x_i's
    cluster; :class:`iconlearn.learned.PointClusterKernel`). ``loss(probs1, probs2)``: the two views'
    assignments (N x C each, rows on the simplex).

    Examples:
        >>> InfoNCEClustering()(head(f(aug(x))).softmax(1), head(f(aug(x))).softmax(1))
    """

    def __init__(self, gather_distributed: bool = False, divergence: str = "kl"):
        super().__init__(1.0, gather_distributed, divergence=divergence)

    def _make_kernel(self) -> Kernel:
        return PointClusterKernel()

    def forward(self, probs1: Tensor, probs2: Tensor) -> Tensor:
        check_assignments(probs1, "probs1")
        check_assignments(probs2, "probs2")
        return super().forward(probs1, probs2)


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


class MSEICon(nn.Module):
    """Least-squares regression as I-Con, the "Mean Squared Error" of I-Con section 3.2: the points j
    are values in a continuous space X = R^d (eq. 3.1.1's integral), p(.|i) = N(y_i, sigma^2 I) around
    the target and q(.|i) = N(f(x_i), sigma^2 I) around the prediction, so

        KL(p(.|i) || q(.|i)) = ||y_i - f(x_i)||^2 / (2 sigma^2)

    (:func:`iconlearn.core.gaussian_icon_loss`). The default sigma^2 = 1/2 gives mean_i ||y_i - f(x_i)||^2,
    i.e. ``d * F.mse_loss``. (p may also be a point mass at y_i: the KL then differs by the constant
    -H(p), and the gradients are the same.) ``loss(predictions, targets)``, (B,) or (B x d).

    Examples:
        >>> MSEICon()(net(x), y)      # == ((net(x) - y) ** 2).sum(1).mean()
    """

    def __init__(self, sigma: float = math.sqrt(0.5)):
        super().__init__()
        self.sigma = V.check_positive(sigma, "sigma")

    def forward(self, predictions: Tensor, targets: Tensor) -> Tensor:
        pred = predictions[:, None] if predictions.ndim == 1 else predictions
        tgt = targets[:, None] if targets.ndim == 1 else targets
        V.check_embeddings(pred, "predictions")
        V.check_embeddings(tgt if tgt.is_floating_point() else tgt.to(pred.dtype), "targets")
        V.check_same_shape(pred, tgt, "predictions", "targets")
        return gaussian_icon_loss(tgt, pred, self.sigma)
