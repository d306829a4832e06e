"""Small helpers shared by the analyses: input checks, points on spheres, tangent projections."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import _validation as V


def check_tau(tau, name: str = "tau") -> float:
    """A temperature must be a positive finite number."""
    return V.check_positive(tau, name)


def check_taus(taus, name: str = "taus") -> list[float]:
    taus = [check_tau(t, name) for t in np.atleast_1d(np.asarray(taus, dtype=object)).tolist()]
    if not taus:
        raise ValueError(f"{name} must contain at least one temperature")
    return taus


def check_num_points(K, name: str = "K", low: int = 2) -> int:
    """The number of points of a configuration (K >= 2: one point has no neighbour to contrast)."""
    return V.check_int(K, name, low=low)


def circle_points(K: int, phase: float = 0.0, dtype=torch.float64) -> Tensor:
    """K points evenly spaced on S^1, as a (K x 2) tensor."""
    theta = phase + 2.0 * math.pi * torch.arange(K, dtype=dtype) / K
    return torch.stack([theta.cos(), theta.sin()], dim=1)


def fibonacci_sphere(n: int, dtype=torch.float64) -> Tensor:
    """n nearly evenly spaced points on S^2 (the Fibonacci lattice), (n x 3)."""
    i = torch.arange(n, dtype=dtype) + 0.5
    z = 1.0 - 2.0 * i / n
    r = (1.0 - z * z).clamp_min(0).sqrt()
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=1)


def uniform_sphere_points(n: int, dim: int, dtype=torch.float64) -> Tensor:
    """n nearly uniform points on S^{dim-1} for dim 2 (regular n-gon) or 3 (Fibonacci lattice)."""
    if dim == 2:
        return circle_points(n, dtype=dtype)
    if dim == 3:
        return fibonacci_sphere(n, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    return x / x.norm(dim=1, keepdim=True)


def tangent(z: Tensor, g: Tensor) -> Tensor:
    """Project vectors g (n x d) on the tangent spaces of the unit sphere at the rows of z."""
    zn = z / z.norm(dim=1, keepdim=True)
    return g - (g * zn).sum(1, keepdim=True) * zn


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))
