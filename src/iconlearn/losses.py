"""Named losses, each a choice of supervisory p and learned q for :func:`iconlearn.core.icon_loss`
(I-Con Table 1). No preset writes its own softmax or KL: they build p and log q and call the core.

| preset | p(j\\|i) | q(j\\|i) | reference |
| --- | --- | --- | --- |
| SNELoss | Gaussian on inputs, perplexity-calibrated | Gaussian on embeddings | I-Con Thm 1 |
| TSNELoss | same (joint by default) | Student-t / Cauchy | I-Con Thm 2 |
| InfoNCE | uniform over the other view | exp(cos / tau), anchor excluded | I-Con Thm 3 |
| SupCon | uniform over same label | exp(cos / tau) | I-Con Thm 3 |
| CLIPLoss | partner in the other modality | exp(cos / tau) over the other modality | I-Con Thm 4 |
| CrossEntropyICon | the true class | exp(f . phi_c / tau) over classes | I-Con Cor 1 |
| KernelInfoNCE | uniform over the other view | exp(-\\|x-y\\|^gamma / tau) and mixtures | Kernel-InfoNCE |
| GeneralizedNTXent | (not a KL) Psi(E eta / eta+) | | Calder-Lee eqs 1, 4, 5 |
| KMeansICon | KL(q \\|\\| p): Gaussian on data | shared cluster likelihood | I-Con Thm 5-6 |
| NormalizedCutsICon | exp(w_ij / d_j) or w_ij / d_i | degree-weighted cluster likelihood | I-Con Thm 8 |
| MIClustering | uniform over kNN / views | shared cluster likelihood | I-Con Thm 7 |
| IConClusteringLoss | views / kNN / walks, debiased | cluster likelihood, debiased | I-Con sec 3.3 |

Every loss that contrasts across a batch takes ``gather_distributed``: candidates are gathered
from all ranks (:func:`iconlearn.distributed.gather`), anchors stay local, and the mean of the
ranks' losses equals the single-process loss on the global batch.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _validation as V
from .core import SparseRows, icon_loss, reverse_icon_loss, sparse_smoothed_neg_entropy
from .distances import sq_distances
from .distributed import gather
from .learned import (
    ConcatSumKernel,
    CosineKernel,
    DotKernel,
    ExponentialKernel,
    GaussianKernel,
    Kernel,
    StudentTKernel,
    SumKernel,
    cluster_cross_entropy,
    cluster_log_q,
    compute_dtype,
    normalize,
)
from .supervisory import augmentation_targets, cross_modal_targets, debias, gaussian_targets, has_positive
from .supervisory import same_group_targets, symmetrize

__all__ = [
    "SNELoss", "TSNELoss", "InfoNCE", "SupCon", "CLIPLoss", "CrossEntropyICon", "KernelInfoNCE",
    "GeneralizedNTXent", "KMeansICon", "NormalizedCutsICon", "MIClustering", "IConClusteringLoss",
    "IConClustering",
]


def _gathered(x: Tensor, on: bool) -> tuple[Tensor, int]:
    return gather(x) if on else (x, 0)


def _zero_loss(x: Tensor) -> Tensor:
    """A zero that keeps the graph (for batches where no row has a positive)."""
    return x.sum() * 0.0


def _views_batch(z1: Tensor, z2: Tensor, gather_distributed: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Anchors [z1; z2] of this rank, candidates [Z1; Z2] of all ranks, and the anchors' own columns."""
    V.check_embeddings(z1, "z1")
    V.check_embeddings(z2, "z2")
    V.check_same_shape(z1, z2, "z1", "z2")
    n = z1.shape[0]
    Z1, offset = _gathered(z1, gather_distributed)
    Z2, _ = _gathered(z2, gather_distributed)
    N = Z1.shape[0]
    local = torch.arange(n, device=z1.device) + offset
    own_columns = torch.cat([local, local + N])
    return torch.cat([z1, z2]), torch.cat([Z1, Z2]), own_columns


def _check_assignments(phi: Tensor, name: str = "probs") -> None:
    V.check_embeddings(phi, name)
    if phi.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 clusters (columns), got {phi.shape[1]}")
    if bool((phi < 0).any()):
        raise ValueError(f"{name} must be soft assignments (non-negative rows summing to 1), got negative values;"
                         " apply softmax to the logits first")


def _check_target(p, rows: int, cols: int, name: str = "p") -> None:
    """A prepared supervisory target over ``cols`` columns for ``rows`` anchors."""
    if isinstance(p, SparseRows):
        if p.values.shape != p.indices.shape or p.values.ndim != 2 or p.values.shape[0] != rows:
            raise ValueError(f"{name} (SparseRows) must have values and indices of shape ({rows}, K), got "
                             f"{tuple(p.values.shape)} and {tuple(p.indices.shape)}")
        if p.indices.numel() and (int(p.indices.min()) < 0 or int(p.indices.max()) >= cols):
            raise ValueError(f"{name} (SparseRows) has column indices outside [0, {cols})")
        values = p.values
    elif isinstance(p, Tensor):
        if p.shape != (rows, cols):
            raise ValueError(f"{name} must have shape ({rows}, {cols}) (anchors x candidates), got {tuple(p.shape)}")
        values = p
    else:
        raise ValueError(f"{name} must be a dense tensor or SparseRows, got {type(p).__name__}")
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ValueError(f"{name} must hold finite non-negative probabilities")


# --------------------------------------------------------------------------- neighbour embedding


class SNELoss(nn.Module):
    """Stochastic Neighbour Embedding as I-Con (Theorem 1).

    p(j|i) = exp(-||x_i - x_j||^2 / 2 sigma_i^2) / sum_{k != i} (...), sigma_i calibrated to the
    ``perplexity``; q(j|i) = exp(-||y_i - y_j||^2) / sum_{k != i} (...) on the embeddings.

    ``loss(Y, X)`` computes p from the inputs X (dense, for batches of a few thousand points);
    ``loss(Y, p=P)`` takes a prepared conditional p: dense (N x N) or sparse kNN
    :class:`SparseRows` (e.g. :func:`iconlearn.supervisory.gaussian_targets` on kNN distances).
    ``normalization="conditional"`` is the table's mean_i KL(p_i || q_i); ``"joint"`` is t-SNE's
    KL(P || Q) with P = (p_j|i + p_i|j) / 2N and Q normalised over all pairs.
    """

    normalizations = ("conditional", "joint")

    def __init__(self, perplexity: float = 30.0, normalization: str = "conditional", gather_distributed: bool = False):
        super().__init__()
        self.perplexity = V.check_positive(perplexity, "perplexity")
        if normalization not in self.normalizations:
            raise ValueError(f"normalization must be one of {self.normalizations}, got {normalization!r}")
        if normalization == "joint" and gather_distributed:
            raise ValueError("normalization='joint' normalises over all pairs of one process; it cannot gather")
        self.normalization = normalization
        self.gather_distributed = gather_distributed
        self.kernel = self._make_kernel()

    def _make_kernel(self) -> Kernel:
        return GaussianKernel()  # sigma^2 = 1/2: exp(-||y_i - y_j||^2)

    @torch.no_grad()
    def targets(self, X: Tensor, X_all: Tensor, own: Tensor) -> Tensor:
        """Dense conditional p(j|i) of the local rows of X over the columns of X_all."""
        if not self.perplexity < X_all.shape[0] - 1:
            raise ValueError(f"perplexity ({self.perplexity:g}) must be smaller than the number of other points "
                             f"({X_all.shape[0] - 1}); lower it or use a larger batch")
        d = sq_distances(X.double(), X_all.double())
        return gaussian_targets(d, perplexity=self.perplexity, exclude=own)

    def forward(self, embeddings: Tensor, X: Tensor | None = None, *, p=None) -> Tensor:
        V.check_embeddings(embeddings, "embeddings")
        if (X is None) == (p is None):
            raise ValueError("pass exactly one of X (inputs, p computed from them) or p= (a prepared p(j|i))")
        n = embeddings.shape[0]
        Y_all, offset = _gathered(embeddings, self.gather_distributed)
        N = Y_all.shape[0]
        if N < 2:
            raise ValueError(f"need at least 2 points, got {N}")
        own = torch.arange(n, device=embeddings.device) + offset
        if p is None:
            V.check_embeddings(X, "X")
            V.check_same_length(X, embeddings, "X", "embeddings")
            X_all, _ = _gathered(X.detach(), self.gather_distributed)
            p = self.targets(X, X_all, own)
        else:
            _check_target(p, n, N)
        if self.normalization == "conditional":
            return icon_loss(p, self.kernel(embeddings, Y_all, exclude=own))
        if isinstance(p, SparseRows):
            idx, val = symmetrize(p, N)
            P = SparseRows(val[None, :], (idx[0] * N + idx[1])[None, :])
        else:
            P = ((p + p.T) / (2.0 * N)).reshape(1, -1)
        return icon_loss(P, self.kernel.joint(embeddings))


class TSNELoss(SNELoss):
    """t-SNE as I-Con (Theorem 2): SNE's p, and a Student-t q (Cauchy at ``dof=1``),
    q(j|i) ∝ (1 + ||y_i - y_j||^2 / dof)^(-(dof + 1) / 2).

    The default ``normalization="joint"`` is van der Maaten & Hinton's KL(P || Q) with symmetric P;
    ``"conditional"`` is the per-row form written in the I-Con table.
    """

    def __init__(self, perplexity: float = 30.0, dof: float = 1.0, normalization: str = "joint",
                 gather_distributed: bool = False):
        self.dof = V.check_positive(dof, "dof")
        super().__init__(perplexity, normalization, gather_distributed)

    def _make_kernel(self) -> Kernel:
        return StudentTKernel(self.dof)


# --------------------------------------------------------------------------- contrastive


class InfoNCE(nn.Module):
    """SimCLR's NT-Xent / InfoNCE as I-Con (Theorem 3).

    p(j|i): uniform over the other view of the same item; q(j|i) ∝ exp(cos(z_i, z_j) / tau) over
    all 2N views but the anchor itself. Mean over the 2N anchors. ``loss(z1, z2)``.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = self._make_kernel()

    def _make_kernel(self) -> Kernel:
        return CosineKernel(self.temperature)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        anchors, candidates, own = _views_batch(z1, z2, self.gather_distributed)
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


_PSI: dict[str, Callable[[Tensor], Tensor]] = {"log1p": torch.log1p, "identity": lambda t: t}


class GeneralizedNTXent(nn.Module):
    """Calder & Lee's generalised NT-Xent (eqs. 4-5), with eq. 1 as its default.

        L = E_{x, T, T'} Psi( E_y[eta_f(T(x), h(y))] / eta_f(T(x), T'(x)) ),
        eta_f(a, b) = eta(||f(a) - f(b)||^2 / 2)

    on a batch of N items in two views z1 = f(T(x)), z2 = f(T'(x)), E_y the batch mean.

    Args:
        psi: nondecreasing Psi: ``"log1p"`` (default, Psi(t) = log(1 + t)), ``"identity"`` or a callable.
        eta: ``"exp"`` (default, eta(t) = exp(-t / temperature)) or a callable of t (tensor) that
            includes its own scale (``temperature`` is then unused).
        negatives: ``"both_views"`` (eq. 1): sum over h in {T, T'} and y != x, i.e. the 2N - 2 views
            of the other items; ``"cross_view"`` (eq. 4): the other view T'(y) of every y, y = x
            included (N terms).
        expectation: ``"mean"`` (default): E_y is the batch mean (1/N) sum_y, as eq. 1 is written
            (the indicator removes y = x but the normaliser stays 1/N); ``"sum"``: plain sums, which
            with the defaults is exactly SimCLR's NT-Xent = :class:`InfoNCE`.
        symmetric: average the anchors T(x) and T'(x) (T, T' are i.i.d., so both orders are samples
            of the expectation); otherwise anchors are z1 only.
        sphere: project onto the unit sphere first (the constraint set C of eq. 4). On the sphere
            exp(-||a - b||^2 / 2 tau) = exp(-1/tau) exp(cos(a, b) / tau), so the defaults give eq. 1.
    """

    negative_sets = ("both_views", "cross_view")
    expectations = ("mean", "sum")

    def __init__(self, psi: str | Callable[[Tensor], Tensor] = "log1p", eta: str | Callable[[Tensor], Tensor] = "exp",
                 temperature: float = 0.5, negatives: str = "both_views", expectation: str = "mean",
                 symmetric: bool = True, sphere: bool = True, gather_distributed: bool = False):
        super().__init__()
        if isinstance(psi, str) and psi not in _PSI:
            raise ValueError(f"psi must be one of {sorted(_PSI)} or a callable, got {psi!r}")
        if isinstance(eta, str) and eta != "exp":
            raise ValueError(f"eta must be 'exp' or a callable, got {eta!r}")
        if negatives not in self.negative_sets:
            raise ValueError(f"negatives must be one of {self.negative_sets}, got {negatives!r}")
        if expectation not in self.expectations:
            raise ValueError(f"expectation must be one of {self.expectations}, got {expectation!r}")
        self.psi, self.eta = psi, eta
        self.temperature = V.check_positive(temperature, "temperature")
        self.negatives, self.expectation = negatives, expectation
        self.symmetric, self.sphere, self.gather_distributed = symmetric, sphere, gather_distributed

    def _ratio_terms(self, a: Tensor, pos: Tensor, A: Tensor, B: Tensor, own: Tensor) -> Tensor:
        """Psi(ratio) for anchors a (view T of their items), partners pos (view T'), and the
        gathered views A (T) and B (T') of all items."""
        N = A.shape[0]
        if self.negatives == "both_views":
            cands = torch.cat([A, B])
            mask = torch.zeros(a.shape[0], 2 * N, dtype=torch.bool, device=a.device)
            mask.scatter_(1, torch.stack([own, own + N], 1), True)  # y = x, in both views
        else:
            cands, mask = B, None
        t = sq_distances(a, cands) / 2.0
        t_pos = ((a - pos) ** 2).sum(1) / 2.0
        log_norm = -math.log(N) if self.expectation == "mean" else 0.0
        if self.eta == "exp":
            log_eta = -t / self.temperature
            if mask is not None:
                log_eta = log_eta.masked_fill(mask, float("-inf"))
            log_ratio = torch.logsumexp(log_eta, 1) + log_norm + t_pos / self.temperature
            if self.psi == "log1p":
                return F.softplus(log_ratio)  # log(1 + e^r), stable for any r
            return self._psi(log_ratio.exp())
        e = self.eta(t)
        if mask is not None:
            e = e.masked_fill(mask, 0.0)
        return self._psi(e.sum(1) * math.exp(log_norm) / self.eta(t_pos))

    def _psi(self, ratio: Tensor) -> Tensor:
        return _PSI[self.psi](ratio) if isinstance(self.psi, str) else self.psi(ratio)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        V.check_embeddings(z1, "z1")
        V.check_embeddings(z2, "z2")
        V.check_same_shape(z1, z2, "z1", "z2")
        dtype = compute_dtype(z1, z2)
        z1, z2 = z1.to(dtype), z2.to(dtype)
        if self.sphere:
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        Z1, offset = _gathered(z1, self.gather_distributed)
        Z2, _ = _gathered(z2, self.gather_distributed)
        own = torch.arange(z1.shape[0], device=z1.device) + offset
        terms = self._ratio_terms(z1, z2, Z1, Z2, own)
        if self.symmetric:
            terms = torch.cat([terms, self._ratio_terms(z2, z1, Z2, Z1, own)])
        return terms.mean()


class SupCon(nn.Module):
    """Supervised contrastive loss, L_out form (Khosla et al. 2020; I-Con Theorem 3 with labels).

    p(j|i): uniform over the other samples with the same label; q(j|i) ∝ exp(cos / tau) over all
    but the anchor. The value is the cross-entropy H(p, q) = the SupCon formula; anchors with no
    positive in the batch are left out of the mean. ``loss(z, labels)`` with z (B x D), or Khosla's
    layout z (B x V x D) of V views per labelled item.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = CosineKernel(self.temperature)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        if isinstance(z, Tensor) and z.ndim == 3:
            V.check_labels(labels, z.shape[0])
            z, labels = z.transpose(0, 1).reshape(-1, z.shape[2]), labels.repeat(z.shape[1])
        V.check_embeddings(z, "z")
        V.check_labels(labels, z.shape[0])
        Z, offset = _gathered(z, self.gather_distributed)
        L, _ = _gathered(labels, self.gather_distributed)
        own = torch.arange(z.shape[0], device=z.device) + offset
        p = same_group_targets(labels, L, self_columns=own, dtype=compute_dtype(z))
        keep = has_positive(p)
        if not bool(keep.any()):
            return _zero_loss(z)
        log_q = self.kernel(z[keep], Z, exclude=own[keep])
        p = SparseRows(p.values[keep], p.indices[keep])
        # mean over the anchors with a positive; with gathering each rank averages its own anchors
        return icon_loss(p, log_q, cross_entropy=True)


class CLIPLoss(nn.Module):
    """Symmetric CLIP / CMC loss (I-Con Theorem 4).

    2N points in two modalities; p(j|i) is the partner in the other modality, and q(j|i) ∝
    exp(cos / tau) over the other modality only. The mean over all 2N anchors is the usual
    (CE(a -> b) + CE(b -> a)) / 2. ``loss(a, b)``.
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = CosineKernel(self.temperature, exclude_self=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        V.check_embeddings(a, "a")
        V.check_embeddings(b, "b")
        V.check_same_length(a, b, "a", "b")
        A, offset = _gathered(a, self.gather_distributed)
        B, _ = _gathered(b, self.gather_distributed)
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
            log_q = normalize(features.to(compute_dtype(features)) / self.kernel.temperature)
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


# --------------------------------------------------------------------------- clustering


class KMeansICon(nn.Module):
    """Probabilistic k-means as I-Con: c-SNE (Theorem 6), the reverse direction

        L = mean_i KL( q(.|i) || p(.|i) ),
        p(j|i) = exp(-||x_i - x_j||^2 / 2 sigma^2) / sum_k exp(-||x_i - x_k||^2 / 2 sigma^2),
        q(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc.

    What holds exactly (checked in the tests): sum_i KL(q_i || p_i) = (1 / 2 sigma^2) sum_ij
    ||x_i - x_j||^2 q(j|i) - sum_i H(q_i) + sum_i log Z_i, and sum_ij ||x_i - x_j||^2 q(j|i) =
    2 L_ProbKMeans with the centres at the phi-weighted means; so L_c-SNE = (1 / sigma^2)
    L_ProbKMeans - sum_i H(q_i) + const (the paper's Theorem 6 states 1 / 2 sigma^2: its
    Corollary 2 drops this factor 2). This loss is the mean over rows, i.e. that sum / B.
    ``loss(probs, X)``: probs (B x C) soft assignments, X (B x D) the data. Like the theorem, the
    sums run over all k including i unless ``exclude_self``.
    """

    def __init__(self, sigma: float = 1.0, exclude_self: bool = False, gather_distributed: bool = False):
        super().__init__()
        self.sigma = V.check_positive(sigma, "sigma")
        self.exclude_self = exclude_self
        self.gather_distributed = gather_distributed
        self.kernel = GaussianKernel(self.sigma, exclude_self=False)

    def forward(self, probs: Tensor, X: Tensor) -> Tensor:
        _check_assignments(probs)
        V.check_embeddings(X, "X")
        V.check_same_length(probs, X, "probs", "X")
        cols, offset = _gathered(probs, self.gather_distributed)
        X_all, _ = _gathered(X.detach(), self.gather_distributed)
        own = torch.arange(probs.shape[0], device=probs.device) + offset if self.exclude_self else None
        if own is not None and X_all.shape[0] < 2:
            raise ValueError("exclude_self needs at least 2 points")
        with torch.no_grad():
            log_p = self.kernel(X.detach(), X_all, exclude=own)
        return reverse_icon_loss(log_p, cluster_log_q(probs, cols, exclude=own))


class NormalizedCutsICon(nn.Module):
    """Normalized cuts as I-Con (Theorem 8): q(j|i) = sum_c phi_ic phi_jc d_j / sum_k phi_kc d_k,
    the degree-weighted cluster likelihood, against a graph-based p.

    * ``direction="reverse"`` (default, Table 1): mean_i KL(q_i || p_i) with
      p(j|i) = exp(w_ij / d_j) / sum_k exp(w_ik / d_k). Exactly (checked in the tests):
      sum_i KL(q_i || p_i) = Ncut(phi) - sum_i H(q_i) + const, with the soft normalized cut
      Ncut(phi) = sum_c cut(A_c, not A_c) / vol(A_c) = m - sum_c sum_ij w_ij phi_ic phi_jc / vol_c.
    * ``direction="forward"``: the usual I-Con direction mean_i KL(p_i || q_i) with the random-walk
      p(j|i) = w_ij / d_i (rows of isolated nodes are left out).

    ``loss(probs, weights, degrees=None)``: weights (B x M) non-negative edge weights from the
    batch's rows to the M (gathered) columns; ``degrees`` (M,) defaults to the row sums of the
    (symmetric) weights, gathered across ranks.
    """

    directions = ("reverse", "forward")

    def __init__(self, direction: str = "reverse", gather_distributed: bool = False):
        super().__init__()
        if direction not in self.directions:
            raise ValueError(f"direction must be one of {self.directions}, got {direction!r}")
        self.direction = direction
        self.gather_distributed = gather_distributed

    def forward(self, probs: Tensor, weights: Tensor, degrees: Tensor | None = None) -> Tensor:
        _check_assignments(probs)
        V.check_embeddings(weights, "weights")
        cols, _ = _gathered(probs, self.gather_distributed)
        if weights.shape != (probs.shape[0], cols.shape[0]):
            raise ValueError(f"weights must have shape ({probs.shape[0]}, {cols.shape[0]}) (rows x columns of the "
                             f"batch), got {tuple(weights.shape)}")
        if bool((weights < 0).any()):
            raise ValueError("weights must be non-negative edge weights")
        w = weights.detach().to(compute_dtype(weights, probs))
        if degrees is None:
            degrees, _ = _gathered(w.sum(1), self.gather_distributed)
        elif degrees.shape != (cols.shape[0],) or not bool(torch.isfinite(degrees).all()) or bool((degrees < 0).any()):
            raise ValueError(f"degrees must be {cols.shape[0]} finite non-negative numbers, got shape "
                             f"{tuple(degrees.shape)}")
        d = degrees.detach().to(w.dtype)
        log_q = cluster_log_q(probs, cols, degrees=d)
        if self.direction == "reverse":
            log_p = normalize(torch.where(d > 0, w / d.clamp_min(1e-30), torch.zeros_like(w)))
            return reverse_icon_loss(log_p, log_q)
        row_deg = w.sum(1, keepdim=True)
        keep = row_deg.squeeze(1) > 0
        if not bool(keep.any()):
            return _zero_loss(probs)
        return icon_loss(w[keep] / row_deg[keep], log_q[keep])


class IConClusteringLoss(nn.Module):
    """The I-Con clustering loss (section 3.3, section 4): supervisory p uniform over each
    anchor's positives in the batch (augmentations, kNN neighbours, walk neighbours, given as
    group ids or any target of :mod:`iconlearn.supervisory`), learned q the shared cluster
    likelihood of the heads' soft assignments, both debiased (eq. 3.3.1 on p; the same on q).

    ``loss(probs, groups)``: probs (B x C) soft assignments, groups (B,) ids such that rows sharing
    an id are positives; or ``loss(probs, target=p)`` with a prepared target over the batch's
    columns (dense or :class:`SparseRows`, e.g. from
    :func:`iconlearn.supervisory.restrict_to_batch`). ``probs_ref`` (e.g. an EMA teacher's
    assignments) can stand in for the columns' assignments. Rows without a positive are left out.
    Neither p nor q is ever materialised as a dense debiased matrix: debiasing of p is the
    :class:`iconlearn.core.Smoothed` form.
    """

    def __init__(self, alpha_p: float = 0.0, alpha_q: float = 0.0, exclude_self: bool = True,
                 gather_distributed: bool = False):
        super().__init__()
        self.alpha_p = V.check_alpha(alpha_p, "alpha_p")
        self.alpha_q = V.check_alpha(alpha_q, "alpha_q")
        self.exclude_self = exclude_self
        self.gather_distributed = gather_distributed

    def forward(self, probs: Tensor, groups: Tensor | None = None, target=None, probs_ref: Tensor | None = None) -> Tensor:
        _check_assignments(probs)
        if (groups is None) == (target is None):
            raise ValueError("pass exactly one of groups (positive ids per row) or target (a prepared p)")
        if probs_ref is not None:
            _check_assignments(probs_ref, "probs_ref")
            if probs_ref.shape[1] != probs.shape[1] or probs_ref.shape[0] < probs.shape[0]:  # anchors = first rows
                raise ValueError(f"probs_ref must have probs' {probs.shape[1]} clusters and at least its {probs.shape[0]}"
                                 f" rows (the anchors first, then other columns), got shape {tuple(probs_ref.shape)}")
        cols, offset = _gathered(probs if probs_ref is None else probs_ref, self.gather_distributed)
        own = torch.arange(probs.shape[0], device=probs.device) + offset if self.exclude_self else None
        if target is None:
            V.check_labels(groups, probs.shape[0], "groups")
            b, m = probs.shape[0], (probs if probs_ref is None else probs_ref).shape[0]
            all_groups, g_offset = _gathered(groups, self.gather_distributed)
            g_own = torch.arange(b, device=probs.device) + g_offset
            target = same_group_targets(groups, all_groups, self.exclude_self, g_own, dtype=compute_dtype(probs))
            if m != b:  # group column r * b + k is column r * m + k of the (gathered) probs_ref
                target = SparseRows(target.values, target.indices // b * m + target.indices % b)
        else:
            _check_target(target, probs.shape[0], cols.shape[0], "target")
        keep = has_positive(target)
        if isinstance(target, SparseRows) and own is not None:  # the fused path (same values, tested)
            rows = self._fused_rows(probs[None], cols[None], target, own)[0]
        else:
            log_q = cluster_log_q(probs, cols, exclude=own, alpha=self.alpha_q)
            rows = icon_loss(debias(target, self.alpha_p, own), log_q, reduction="none")
        return rows[keep].mean() if bool(keep.any()) else _zero_loss(probs)

    def _fused_rows(self, probs: Tensor, cols: Tensor, target: SparseRows, own: Tensor) -> Tensor:
        """KL rows (H x B) of H heads at once: :func:`iconlearn.learned.cluster_loss.cluster_cross_entropy`
        plus the entropy term of the debiased p."""
        cross_entropy = cluster_cross_entropy(probs, cols, target.indices, target.values, own, self.alpha_p, self.alpha_q)
        n = torch.full((probs.shape[1],), float(max(cols.shape[1] - 1, 1)), dtype=cross_entropy.dtype, device=probs.device)
        return cross_entropy + sparse_smoothed_neg_entropy(target.values.to(cross_entropy.dtype), self.alpha_p, n)

    def per_head(self, probs: Tensor, target: SparseRows, probs_ref: Tensor) -> Tensor:
        """(H,) losses of H heads in one fused pass: ``probs`` (H x B x C) the anchors' assignments,
        ``probs_ref`` (H x M x C) the columns' (anchors first), ``target`` a SparseRows p over the M
        columns. Each equals ``self(probs[h], target=target, probs_ref=probs_ref[h])`` (not distributed)."""
        own = torch.arange(probs.shape[1], device=probs.device)
        keep = has_positive(target)
        rows = self._fused_rows(probs, probs_ref, target, own)
        return rows[:, keep].mean(1) if bool(keep.any()) else probs.sum((1, 2)) * 0.0


IConClustering = IConClusteringLoss  # the name used in the I-Con paper's Table 2


class MIClustering(IConClusteringLoss):
    """Mutual-information clustering as I-Con (Theorem 7): p uniform over kNN / augmentation
    positives, q the shared cluster likelihood, no debiasing."""

    def __init__(self, exclude_self: bool = True, gather_distributed: bool = False):
        super().__init__(0.0, 0.0, exclude_self, gather_distributed)
