"""Calder and Lee's generalised NT-Xent ("On the geometry of contrastive learning", eqs. 1, 4, 5).

It stands apart from the other presets: L = E Psi(E_y eta / eta+) is not a KL divergence between
a p and a q for a general Psi and eta (it is SimCLR's NT-Xent, i.e. :class:`InfoNCE`, only with
Psi = log(1 + t), eta = exp and plain sums), so it does not go through :func:`iconlearn.icon_loss`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _validation as V
from ..distances import sq_distances
from ..learned import compute_dtype
from ._batch import BatchLoss, own_columns

__all__ = ["GeneralizedNTXent"]


_PSI: dict[str, Callable[[Tensor], Tensor]] = {"log1p": torch.log1p, "identity": lambda t: t}


class GeneralizedNTXent(BatchLoss):
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

    Examples:
        >>> GeneralizedNTXent()(z1, z2)                                       # eq. 1
        >>> GeneralizedNTXent(negatives="cross_view", psi="identity")(z1, z2) # eq. 4 with Psi(t) = t
    """

    negative_sets = ("both_views", "cross_view")
    expectations = ("mean", "sum")

    def __init__(self, psi: str | Callable[[Tensor], Tensor] = "log1p", eta: str | Callable[[Tensor], Tensor] = "exp",
                 temperature: float = 0.5, negatives: str = "both_views", expectation: str = "mean",
                 symmetric: bool = True, sphere: bool = True, gather_distributed: bool = False):
        super().__init__(gather_distributed)
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
        self.symmetric, self.sphere = symmetric, sphere

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
        Z1, offset = self._gather(z1)
        Z2, _ = self._gather(z2)
        own = own_columns(z1, offset)
        terms = self._ratio_terms(z1, z2, Z1, Z2, own)
        if self.symmetric:
            terms = torch.cat([terms, self._ratio_terms(z2, z1, Z2, Z1, own)])
        return terms.mean()
