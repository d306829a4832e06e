"""The NT-Xent landscape on S^1 (Calder-Lee Figure 3, Theorem 3.2, Remark 3.1).

For an invariant map whose push-forward is K evenly spaced Dirac masses on the circle,
f#mu = (1/K) sum_i delta_{x_i}, the generalized NT-Xent loss (eq. 4, Psi = log(1+t),
eta = exp(-t/tau)) is

    L(K, tau) = (1/K) sum_i log(1 + (1/K) sum_j exp(-||x_i - x_j||^2 / (2 tau))),

and the minimum squared distance between the points is d2(K) = 4 sin^2(pi / K). As K grows the
configuration tends to the uniform distribution on S^1, whose loss is
log(1 + exp(-1/tau) I_0(1/tau)) (I_0 the modified Bessel function). The loss stops decreasing
once d2(K) falls below a threshold that grows linearly with tau (Figure 3, third panel): the
*threshold* here is the d2 at which L(K) - L_inf falls to ``rtol * L_inf`` (found by
interpolating log(L(K) - L_inf) between consecutive K).

Theorem 3.2 / Remark 3.1: symmetric configurations (the K-gon) and the collapsed configuration
(all points at one place) are stationary points on the sphere; :func:`stationarity` measures the
tangential gradient (the gradient with respect to the angles) by autograd in float64, and the
Hessian's extreme eigenvalues to tell minima from saddles. The collapsed configuration has the
largest possible loss, log 2 (mean_j eta <= 1), so it is the global maximum; its Hessian is not
computed, because the library's squared distances are floored at 1e-12 (for finite gradients of
||x - y||^gamma), which removes the curvature at coincident points.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.special import ive

from ._common import check_num_points, check_tau, check_taus, circle_points
from .ntxent import invariant_ntxent

__all__ = ["LandscapeResult", "Stationarity", "ngon_loss", "uniform_loss", "min_sq_distance", "landscape",
           "stationarity"]


def min_sq_distance(K: int) -> float:
    """Minimum squared distance between K evenly spaced points on S^1: 4 sin^2(pi / K)."""
    K = check_num_points(K)
    return 4.0 * math.sin(math.pi / K) ** 2


def ngon_loss(K: int, tau: float) -> float:
    """L(K, tau): the generalized NT-Xent loss of K evenly spaced points on S^1 (float64)."""
    K, tau = check_num_points(K), check_tau(tau)
    return float(invariant_ntxent(circle_points(K), tau))


def uniform_loss(tau: float) -> float:
    """The K -> infinity limit: loss of the uniform distribution on S^1, log(1 + e^{-1/tau} I_0(1/tau))."""
    tau = check_tau(tau)
    return float(np.log1p(ive(0, 1.0 / tau)))


@dataclass
class Stationarity:
    """Gradient and Hessian (w.r.t. the angles, i.e. on the sphere) at one configuration."""

    name: str
    K: int
    tau: float
    loss: float
    grad_norm: float            # norm of the tangential gradient
    hess_min: float             # smallest Hessian eigenvalue (the rotation mode gives ~0)
    hess_max: float
    kind: str                   # "minimum", "saddle", "maximum" or "degenerate"


def _angle_loss(theta: torch.Tensor, tau: float) -> torch.Tensor:
    z = torch.stack([theta.cos(), theta.sin()], dim=1)
    return invariant_ntxent(z, tau)


def _classify(eigs: np.ndarray, tol: float) -> str:
    pos, neg = (eigs > tol).sum(), (eigs < -tol).sum()
    if neg == 0 and pos == len(eigs) - 1:   # one zero mode: the global rotation
        return "minimum"
    if pos == 0 and neg > 0:
        return "maximum"
    if pos > 0 and neg > 0:
        return "saddle"
    return "degenerate"


def stationarity(theta, tau: float, name: str = "", hessian: bool = True) -> Stationarity:
    """Tangential gradient norm and Hessian spectrum of the loss at the points (cos theta_i, sin theta_i).

    The loss is a function of the angles only, so its gradient with respect to theta is exactly
    the Riemannian (tangential) gradient on S^1 of the per-point embeddings (times nothing: unit radius).
    """
    tau = check_tau(tau)
    theta = torch.as_tensor(theta, dtype=torch.float64).detach().clone()
    K = check_num_points(theta.numel())
    t = theta.requires_grad_(True)
    loss = _angle_loss(t, tau)
    (g,) = torch.autograd.grad(loss, t)
    if not hessian:
        return Stationarity(name, K, tau, loss.item(), float(g.norm()), float("nan"), float("nan"), "-")
    H = torch.autograd.functional.hessian(lambda a: _angle_loss(a, tau), theta.detach())
    eigs = np.linalg.eigvalsh(H.numpy())
    scale = float(np.abs(eigs).max())
    kind = _classify(eigs, 1e-6 * scale) if scale > 1e-30 else "degenerate"
    return Stationarity(name, K, tau, loss.item(), float(g.norm()), float(eigs.min()), float(eigs.max()), kind)


@dataclass
class LandscapeResult:
    """Data of Figure 3 plus the stationarity checks of Theorem 3.2."""

    Ks: np.ndarray                  # (nK,)
    taus: np.ndarray                # (nT,)
    loss: np.ndarray                # (nT, nK) L(K, tau)
    min_sq_dist: np.ndarray         # (nK,) 4 sin^2(pi/K)
    loss_uniform: np.ndarray        # (nT,) K -> inf limit
    threshold: np.ndarray           # (nT,) d2 where L(K) - L_inf = rtol * L_inf
    rtol: float
    slope: float                    # least-squares fit threshold = slope * tau + intercept
    intercept: float
    r2: float
    checks: list = field(default_factory=list)   # list[Stationarity]
    max_grad_symmetric: float = float("nan")     # worst tangential gradient over K-gons and collapsed
    min_grad_perturbed: float = float("nan")     # smallest gradient of the perturbed controls

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    def to_markdown(self) -> str:
        lines = ["# NT-Xent landscape on S^1 (Calder-Lee Figure 3, Theorem 3.2, Remark 3.1)", "",
                 "Generalized NT-Xent (eq. 4, Psi = log(1+t), eta = exp(-t/tau)) of K evenly spaced points on S^1.", "",
                 "| tau | L(K=2) | L(K=max) | L uniform (K->inf) | threshold d2 |", "| --- | --- | --- | --- | --- |"]
        for t, row, lu, th in zip(self.taus, self.loss, self.loss_uniform, self.threshold):
            lines.append(f"| {t:g} | {row[0]:.6f} | {row[-1]:.6f} | {lu:.6f} | {th:.5f} |")
        lines += ["", f"Threshold (L(K) - L_inf = {self.rtol:g} L_inf) against tau: **slope {self.slope:.4f}**, "
                      f"intercept {self.intercept:.5f}, R^2 = {self.r2:.5f} (linear, as Remark 3.1 reports).", "",
                  "## Stationarity (Theorem 3.2): gradient w.r.t. the angles, float64", "",
                  "| configuration | K | tau | loss | tangential grad norm | Hessian min | Hessian max | type |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.K} | {c.tau:g} | {c.loss:.6f} | {c.grad_norm:.2e} | {c.hess_min:.2e} | "
                         f"{c.hess_max:.2e} | {c.kind} |")
        lines += ["", f"Largest gradient norm over the symmetric and collapsed configurations: "
                      f"**{self.max_grad_symmetric:.2e}** (rounding level); smallest over the perturbed controls: "
                      f"{self.min_grad_perturbed:.2e}."]
        return "\n".join(lines) + "\n"


def _threshold(d2: np.ndarray, gap: np.ndarray, level: float) -> float:
    """d2 at which gap (decreasing with K, i.e. increasing with d2) crosses level; log-linear interpolation."""
    below = np.nonzero(gap <= level)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    k = below[0]
    x0, x1 = d2[k - 1], d2[k]
    y0, y1 = np.log(gap[k - 1]), np.log(max(gap[k], 1e-300))
    return float(x0 + (np.log(level) - y0) * (x1 - x0) / (y1 - y0))


def landscape(Ks=range(2, 61), taus=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5), rtol: float = 1e-3,
              stationary_Ks=(3, 4, 8, 16), stationary_taus=(0.1, 0.5), perturb: float = 0.05, seed: int = 0) -> LandscapeResult:
    """Compute Figure 3 and the Theorem 3.2 stationarity checks.

    Args:
        Ks: numbers of points K >= 2 (increasing).
        taus: temperatures tau > 0.
        rtol: the threshold criterion L(K) - L_inf <= rtol * L_inf.
        stationary_Ks, stationary_taus: configurations whose gradient and Hessian are checked (K-gons, the
            collapsed configuration, and K-gons with angles perturbed by ``perturb`` as controls).
    """
    Ks = np.array(sorted({check_num_points(k) for k in Ks}))
    taus = np.array(check_taus(taus))
    if len(Ks) < 2:
        raise ValueError("Ks must contain at least two values of K")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
    loss = np.array([[ngon_loss(int(k), float(t)) for k in Ks] for t in taus])
    d2 = np.array([min_sq_distance(int(k)) for k in Ks])
    lu = np.array([uniform_loss(float(t)) for t in taus])
    thr = np.array([_threshold(d2, row - u, rtol * u) for row, u in zip(loss, lu)])
    ok = np.isfinite(thr)
    if ok.sum() >= 2:
        slope, intercept = np.polyfit(taus[ok], thr[ok], 1)
        pred = slope * taus[ok] + intercept
        r2 = 1.0 - ((thr[ok] - pred) ** 2).sum() / max(((thr[ok] - thr[ok].mean()) ** 2).sum(), 1e-300)
    else:
        slope = intercept = r2 = float("nan")

    gen = torch.Generator().manual_seed(seed)
    checks = []
    for t in stationary_taus:
        for k in stationary_Ks:
            k = check_num_points(k)
            theta = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k + 0.3
            checks.append(stationarity(theta, t, f"{k}-gon"))
            noise = perturb * torch.randn(k, generator=gen, dtype=torch.float64)
            control = stationarity(theta + noise, t, f"{k}-gon perturbed", hessian=False)
            control.kind = "not stationary (control)"
            checks.append(control)
        collapsed = stationarity(torch.full((max(stationary_Ks),), 0.7, dtype=torch.float64), t, "collapsed",
                                 hessian=False)
        collapsed.kind = "global maximum (L = log 2)" if abs(collapsed.loss - math.log(2.0)) < 1e-9 else "?"
        checks.append(collapsed)
    sym = [c.grad_norm for c in checks if "perturbed" not in c.name]
    pert = [c.grad_norm for c in checks if "perturbed" in c.name]
    return LandscapeResult(Ks, taus, loss, d2, lu, thr, rtol, float(slope), float(intercept), float(r2), checks,
                           max(sym) if sym else float("nan"), min(pert) if pert else float("nan"))
