"""The generalized NT-Xent loss of Calder and Lee (eq. 4-5) as the analyses evaluate it.

    L = mean_i Psi( mean_j eta(||z1_i - z2_j||^2 / 2) / eta(||z1_i - z2_i||^2 / 2) )

with Psi(t) = log(1 + t) and eta(t) = exp(-t / tau): the expectation over y runs over the other
view of every item, y = x included, as Definition 2.1 writes it. For an invariant map the two
views coincide, z1 = z2 = z, the denominator is eta(0) = 1 and the loss depends on the embedded
distribution only (Proposition 2.1); that is the form :func:`invariant_ntxent` evaluates.

Both call :class:`iconlearn.losses.GeneralizedNTXent` (``negatives="cross_view"``,
``expectation="mean"``), so the formula lives in the core only.
"""
from __future__ import annotations

from torch import Tensor

from ..losses import GeneralizedNTXent
from ._common import check_tau

__all__ = ["generalized_ntxent", "invariant_ntxent", "ntxent_module"]


def ntxent_module(temperature: float, sphere: bool = False) -> GeneralizedNTXent:
    """The core preset configured as eq. 4 (anchors z1, the other view of every y as candidates)."""
    return GeneralizedNTXent(temperature=check_tau(temperature, "temperature (tau)"), negatives="cross_view",
                             expectation="mean", symmetric=False, sphere=sphere)


def generalized_ntxent(z1: Tensor, z2: Tensor, temperature: float, sphere: bool = False) -> Tensor:
    """Eq. 4 with Psi = log(1 + t), eta = exp(-t / tau) on positive pairs (z1_i, z2_i).

    ``sphere`` projects the embeddings on the unit sphere first (the constraint set C).
    """
    return ntxent_module(temperature, sphere)(z1, z2)


def invariant_ntxent(z: Tensor, temperature: float, sphere: bool = False) -> Tensor:
    """The loss of an invariant map (Proposition 2.1): both views equal z, eta(0) = 1,

    L(z) = mean_i log(1 + mean_j exp(-||z_i - z_j||^2 / (2 tau))).
    """
    return generalized_ntxent(z, z, temperature, sphere)
