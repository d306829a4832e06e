"""Calder and Lee's variational analysis of NT-Xent, checked numerically in float64 (Proposition 3.1,
Proposition A.1, Lemma A.2; Proposition 2.1 is :mod:`iconlearn.analysis.invariance`).

The loss is eq. 4 with Psi(t) = log(1 + t), eta(t) = exp(-t / tau) on an empirical measure: n points
x_i and m transformations T_a drawn uniformly, the map f given by its values Z[a, i] = f(T_a(x_i)):

    L = (1 / m^2) sum_{a,b} (1/n) sum_i Psi( (1/n) sum_j eta_f(T_a x_i, T_b x_j) / eta_f(T_a x_i, T_b x_i) ),

evaluated by the library (:func:`iconlearn.analysis.ntxent.generalized_ntxent` for every pair a, b).

* **Proposition 3.1, eq. 6**: the first variation pairs h(T(x)) with an integrand; on the empirical
  measure dL/dZ[a, i] = integrand(a, i) / (n m). Autograd gives dL/dZ; the integrand is evaluated as
  eq. 6 is written and with its first term's Psi'(G_{T,T'}(f, y)) read as Psi'(G_{T',T}(f, y)), which is
  what differentiating the definition gives (the two agree when there is one transformation, or when
  f is invariant). **Eq. 7**, the invariant case: n dL/dz_i = sum_j (Psi'(G(x_i)) + Psi'(G(x_j)))
  eta'(x_i, x_j) (z_i - z_j) / n (with eta(0) = 1, which the exponential eta has).
* **Proposition A.1**: a constant map is stationary (its gradient is exactly 0), but it is the
  global *maximum* of the loss (L = log 2 >= L(f) for every invariant f; the Hessian there is
  negative semidefinite), not a local minimiser; the sequence f_k = k f of an invariant f has a
  gradient that vanishes as k grows, while L(f_k) falls to its infimum log(1 + 1/n), which no map
  attains.
* **Lemma A.2**: K clusters with equal mass at centres xi_1..xi_K on S^{d-1}: the paper's three-term
  second variation is checked against autograd; for directions h (one vector per cluster) with
  (<xi_i - xi_j, h_i - h_j>)^2 >= sigma ||h_i - h_j||^2 for all i, j (eq. 27) and sigma > 3 K^2 tau the
  second variation is positive, as stated, except for h constant over the clusters (a translation,
  where it is 0: the strict inequality needs h not constant). By Cauchy-Schwarz eq. 27 forces
  sigma <= ||xi_i - xi_j||^2 <= 4 for every pair that h separates, so sigma > 3 K^2 tau can only hold for
  tau < 4 / (3 K^2). The exact second variation with Jensen's step gives the weaker sufficient condition
  sigma >= tau (1 + G) (G <= 1, so sigma >= 2 tau), which the sampled directions confirm; below it
  directions with a negative second variation are found.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _validation as V
from ._checks import ChecksResult, check
from ._common import check_tau
from .ntxent import generalized_ntxent

__all__ = ["eq4_loss", "eq6_gradient", "eq7_gradient", "second_variation", "lemma_a2_formula", "variational"]

DT = torch.float64


def eq4_loss(Z: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 4 on Z (m transformations x n points x d): the mean over the m^2 ordered pairs (T_a, T_b) of
    the library's eq. 4 on the views (Z[a], Z[b])."""
    m = Z.shape[0]
    return sum(generalized_ntxent(Z[a], Z[b], tau) for a in range(m) for b in range(m)) / m**2


def _terms(Z: torch.Tensor, tau: float):
    """eta_f(T_a x_i, T_b x_j) (m x n x m x n), its derivative eta' = -eta / tau, D[a, b, i] =
    eta_f(T_a x_i, T_b x_i) and G[a, b, i], Psi'(G) = 1 / (1 + G)."""
    m, n, d = Z.shape
    flat = Z.reshape(m * n, d)
    E = torch.exp(-torch.cdist(flat, flat) ** 2 / (2 * tau)).reshape(m, n, m, n)
    D = torch.diagonal(E, dim1=1, dim2=3)  # (m, m, n): D[a, b, i] = E[a, i, b, i]
    G = E.mean(3).permute(0, 2, 1) / D  # (m, m, n): G[a, b, i]
    return E, -E / tau, D, 1.0 / (1.0 + G)


def eq6_gradient(Z: torch.Tensor, tau: float, as_written: bool = True) -> torch.Tensor:
    """dL/dZ from Proposition 3.1's eq. 6 (the integrand divided by n m). ``as_written`` uses
    Psi'(G_{T,T'}(f, y)) in the first term as printed; False uses Psi'(G_{T',T}(f, y))."""
    m, n, _ = Z.shape
    E, Ep, D, Pp = _terms(Z, tau)
    diff = Z[:, :, None, None, :] - Z[None, None, :, :, :]  # (a, i, b, j, d): f(T_a x_i) - f(T_b x_j)
    # first term: (Psi'(G_{a,b}(x_i)) / D[a,b,i] + Psi'(G_{?}(x_j)) / D[a,b,j]) eta'(a i, b j) (Z_ai - Z_bj)
    w_x = (Pp / D).permute(0, 2, 1)[:, :, :, None]  # (a, i, b, 1)
    py = Pp if as_written else Pp.permute(1, 0, 2)  # G_{a,b}(x_j) as written, G_{b,a}(x_j) from the derivation
    w_y = (py / D)[:, None, :, :]  # (a, 1, b, j)
    first = ((w_x + w_y) * Ep)[..., None] * diff
    # second term: (Psi'(G_ab(x_i)) eta(a i, b j) + Psi'(G_ba(x_i)) eta(b i, a j)) eta'(a i, b i) / D^2 (Z_ai - Z_bi)
    c1 = Pp.permute(0, 2, 1)[:, :, :, None] * E  # (a, i, b, j)
    c2 = Pp.permute(1, 2, 0)[:, :, :, None] * E.permute(2, 1, 0, 3)  # Psi'(G_ba(x_i)) eta(b i, a j)
    Ep_ii = torch.diagonal(Ep, dim1=1, dim2=3).permute(0, 2, 1)  # (a, i, b): eta'(a i, b i)
    D_ii = D.permute(0, 2, 1)
    own = torch.diagonal(diff, dim1=1, dim2=3).permute(0, 3, 1, 2)  # (a, i, b, d): Z_ai - Z_bi
    second = ((c1 + c2).sum(3) * Ep_ii / D_ii**2)[..., None] * own  # summed over j
    integrand = (first.sum((2, 3)) - second.sum(2)) / (n * m)
    return integrand / (n * m)


def eq7_gradient(z: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 7, the L^2(mu) gradient of an invariant map at the data points, divided by n (so that it
    is dL/dz_i on the empirical measure)."""
    n = z.shape[0]
    E = torch.exp(-torch.cdist(z, z) ** 2 / (2 * tau))
    Pp = 1.0 / (1.0 + E.mean(1))  # Psi'(G(x)), G(x) = E_y eta(x, y) / eta(0), eta(0) = 1
    w = (Pp[:, None] + Pp[None, :]) * (-E / tau)
    grad = (w[..., None] * (z[:, None, :] - z[None, :, :])).sum(1) / n
    return grad / n


def _invariant_loss(z: torch.Tensor, tau: float) -> torch.Tensor:
    return generalized_ntxent(z, z, tau)


def second_variation(z: torch.Tensor, h: torch.Tensor, tau: float) -> float:
    """d^2/de^2 L(z + e h) at e = 0 for an invariant map (autograd, float64)."""
    e = torch.zeros((), dtype=z.dtype, requires_grad=True)
    loss = _invariant_loss(z + e * h, tau)
    (g,) = torch.autograd.grad(loss, e, create_graph=True)
    (h2,) = torch.autograd.grad(g, e)
    return float(h2)


def lemma_a2_formula(z: torch.Tensor, h: torch.Tensor, tau: float) -> float:
    """The three-term second variation of Lemma A.2's proof on the empirical measure:
    E_x Psi''(G) (E_y eta' <df, dh>)^2 + E_x Psi'(G) E_y [eta'' <df, dh>^2 + eta' ||dh||^2]."""
    E = torch.exp(-torch.cdist(z, z) ** 2 / (2 * tau))
    G = E.mean(1)
    dz, dh = z[:, None] - z[None], h[:, None] - h[None]
    a = (dz * dh).sum(-1)
    b = (dh * dh).sum(-1)
    first = (-1.0 / (1.0 + G) ** 2) * ((-E / tau) * a).mean(1) ** 2
    second = (1.0 / (1.0 + G)) * ((E / tau**2) * a**2 + (-E / tau) * b).mean(1)
    return float((first + second).mean())


def _cluster_config(K: int, per: int, dim: int, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """K centres on S^{dim-1} (a regular polygon on a great circle for K <= 6 in 3-D, else random), each
    repeated ``per`` times; returns (z, centres)."""
    if dim >= 2 and K <= 6:
        th = 2 * math.pi * torch.arange(K, dtype=DT) / K
        xi = torch.zeros(K, dim, dtype=DT)
        xi[:, 0], xi[:, 1] = th.cos(), th.sin()
    else:
        xi = torch.nn.functional.normalize(torch.randn(K, dim, generator=gen, dtype=DT), dim=1)
    return xi.repeat_interleave(per, 0), xi


def _sigma_of(xi: torch.Tensor, hk: torch.Tensor) -> float:
    """The largest sigma for which the cluster directions hk satisfy eq. 27 for every pair."""
    dz, dh = xi[:, None] - xi[None], hk[:, None] - hk[None]
    a2, b = ((dz * dh).sum(-1)) ** 2, (dh * dh).sum(-1)
    off = ~torch.eye(len(xi), dtype=torch.bool)
    moving = off & (b > 1e-24)
    return float((a2[moving] / b[moving]).min()) if bool(moving.any()) else math.inf


def _lemma_a2(K: int, tau: float, per_cluster: int, dim: int, samples: int, gen) -> dict:
    """Lemma A.2 on K clusters: the formula against autograd, and the sign of the second variation
    for sampled directions h (one vector per cluster), by the largest sigma of eq. 27 they satisfy."""
    zc, xi = _cluster_config(K, per_cluster, dim, gen)
    out = {"K": K, "tau": tau, "formula_dev": 0.0, "scale": 0.0, "valid_min": math.inf, "valid_count": 0,
           "weak_min": math.inf, "weak_count": 0, "negative_ratios": []}
    d2 = ((xi[:, None] - xi[None]) ** 2).sum(-1)
    out["distances"] = sorted({round(float(v), 3) for v in d2[~torch.eye(K, dtype=torch.bool)]})
    out["tau_max"] = float(d2.max()) / (3 * K**2)
    for t in range(2 * samples):
        hk = torch.randn(K, dim, generator=gen, dtype=DT)
        if t < samples:  # near-radial directions, which can satisfy eq. 27; then plain random ones
            hk = xi * torch.randn(K, 1, generator=gen, dtype=DT).abs().add(0.5) + 0.3 * hk
        h = hk.repeat_interleave(per_cluster, 0)
        s2 = second_variation(zc, h, tau)
        out["formula_dev"] = max(out["formula_dev"], abs(s2 - lemma_a2_formula(zc, h, tau)))
        out["scale"] = max(out["scale"], abs(s2))
        ratio = _sigma_of(xi, hk) / tau
        if ratio > 3 * K**2:
            out["valid_min"], out["valid_count"] = min(out["valid_min"], s2), out["valid_count"] + 1
        if ratio >= 2.0:
            out["weak_min"], out["weak_count"] = min(out["weak_min"], s2), out["weak_count"] + 1
        if s2 < 0:
            out["negative_ratios"].append(ratio)
    out["constant_h"] = second_variation(zc, torch.randn(1, dim, generator=gen, dtype=DT).repeat(K * per_cluster, 1), tau)
    return out


def variational(trials: int = 20, n: int = 6, m: int = 3, dim: int = 3, tau: float = 0.5,
                lemma_configs=((2, 0.3), (3, 0.1)), samples: int = 300, seed: int = 0) -> ChecksResult:
    """Run the checks of the module docstring; ``lemma_configs`` are the (K, tau) of Lemma A.2 (tau
    below 4 / (3 K^2), where the condition sigma > 3 K^2 tau can hold at all)."""
    trials = V.check_int(trials, "trials", low=1)
    n, m, dim = V.check_int(n, "n", low=2), V.check_int(m, "m", low=2), V.check_int(dim, "dim", low=2)
    tau = check_tau(tau)
    lemma_configs = [(V.check_int(k, "K", low=2), check_tau(t, "lemma tau")) for k, t in lemma_configs]
    samples = V.check_int(samples, "samples", low=1)
    gen = torch.Generator().manual_seed(seed)
    res = ChecksResult("Calder-Lee: Propositions 3.1 and A.1, Lemma A.2",
                       f"Eq. 4 with Psi = log(1 + t), eta = exp(-t / tau) on n = {n} points and m = {m} transformations "
                       f"in R^{dim}, float64, {trials} random draws; autograd against the paper's formulas.")
    # ---- Proposition 3.1
    dev = {"written": 0.0, "derived": 0.0, "one_T": 0.0, "eq7": 0.0}
    scale = 0.0
    for _ in range(trials):
        # views of moderate spread: with far-apart views eta(T x, T' x) underflows towards 0 and the 1 / eta^2
        # of eq. 6 turns rounding into large relative errors (the identity itself does not depend on the scale)
        Z = (0.5 * torch.randn(m, n, dim, generator=gen, dtype=DT)).requires_grad_()
        (auto,) = torch.autograd.grad(eq4_loss(Z, tau), Z)
        s = float(auto.abs().max())
        scale = max(scale, s)
        dev["written"] = max(dev["written"], float((eq6_gradient(Z.detach(), tau, True) - auto).abs().max()) / s)
        dev["derived"] = max(dev["derived"], float((eq6_gradient(Z.detach(), tau, False) - auto).abs().max()) / s)
        Z1 = Z.detach()[:1].clone().requires_grad_()
        (a1,) = torch.autograd.grad(eq4_loss(Z1, tau), Z1)
        dev["one_T"] = max(dev["one_T"], float((eq6_gradient(Z1.detach(), tau, True) - a1).abs().max())
                           / float(a1.abs().max()))
        z = (0.5 * torch.randn(n, dim, generator=gen, dtype=DT)).requires_grad_()
        (az,) = torch.autograd.grad(_invariant_loss(z, tau), z)
        dev["eq7"] = max(dev["eq7"], float((eq7_gradient(z.detach(), tau) - az).abs().max()) / float(az.abs().max()))
    res.checks += [
        check("Prop 3.1: eq. 6 as written", "n m dL/dZ[a,i] = the integrand of eq. 6 (relative deviation)",
              dev["written"], 1.0, 1e-10,
              "the first term's Psi'(G_{T,T'}(f, y)) must be Psi'(G_{T',T}(f, y)): with one transformation, or an "
              "invariant f, the two coincide"),
        check("Prop 3.1: eq. 6, first term G_{T',T}(f, y)", "the same with the index order the derivation gives",
              dev["derived"], 1.0, 1e-10),
        check("Prop 3.1: eq. 6 with m = 1", "as written, one transformation (T = T')", dev["one_T"], 1.0, 1e-10),
        check("Prop 3.1: eq. 7 (invariant f)", "n dL/dz_i = E_y (Psi'(G(x_i)) + Psi'(G(y))) eta'(x_i, y) (z_i - y)",
              dev["eq7"], 1.0, 1e-10)]

    # ---- Proposition A.1
    c = torch.randn(dim, generator=gen, dtype=DT)
    const = c.repeat(n, 1).requires_grad_()
    loss_c = _invariant_loss(const, tau)
    (g_c,) = torch.autograd.grad(loss_c, const)
    H = torch.autograd.functional.hessian(lambda v: _invariant_loss(v.reshape(n, dim), tau), const.detach().reshape(-1))
    top_eig = float(torch.linalg.eigvalsh(H).max())
    z = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen, dtype=DT), dim=1)
    ks = [1.0, 2.0, 4.0, 8.0, 16.0]
    norms, losses = [], []
    for k in ks:
        zk = (k * z).requires_grad_()
        lk = _invariant_loss(zk, tau)
        (gk,) = torch.autograd.grad(lk, zk)
        norms.append(float(n * gk.norm()))
        losses.append(float(lk.detach()))
    sampled_max = max(float(_invariant_loss(torch.randn(n, dim, generator=gen, dtype=DT), tau)) for _ in range(trials))
    res.checks += [
        check("Prop A.1 (1): constant map stationary", "gradient of L at f = c is 0", float(g_c.abs().max()), 1.0, 1e-15),
        check("Prop A.1 (1): ... and a maximum", "L(c) = log 2; largest Hessian eigenvalue <= 0",
              max(abs(float(loss_c.detach()) - math.log(2)), max(top_eig, 0.0)), 1.0, 1e-12,
              f"largest Hessian eigenvalue {top_eig:.2e}; the largest loss of {trials} random maps is "
              f"{sampled_max:.4f} < log 2 = {math.log(2):.4f}: the constant map is the global maximum, not a local minimiser"),
        check("Prop A.1 (2): f_k = k f", "n ||grad L(f_k)|| -> 0 and L(f_k) -> log(1 + 1/n) as k grows",
              max(norms[-1], abs(losses[-1] - math.log(1 + 1 / n))), 1.0, 1e-12,
              "gradient norm at k = " + ", ".join(f"{k:g}: {v:.2e}" for k, v in zip(ks, norms))
              + "; L(f_k) = " + ", ".join(f"{v:.6f}" for v in losses) + f" -> log(1 + 1/n) = {math.log(1 + 1 / n):.6f}, "
              "the infimum of L, not attained by any map")]

    # ---- Lemma A.2, on two configurations where sigma > 3 K^2 tau can hold
    lemma = [_lemma_a2(k, t, per_cluster=2, dim=dim, samples=samples, gen=gen) for k, t in lemma_configs]
    res.checks += [
        check("Lemma A.2: three-term second variation", "autograd d^2/de^2 L(f + e h) = the proof's formula (eq. before 28)",
              max(r["formula_dev"] for r in lemma), max(r["scale"] for r in lemma), 1e-10),
        check("Lemma A.2: sigma > 3 K^2 tau", "second variation > 0 for every sampled h satisfying eq. 27",
              max(max(0.0, -r["valid_min"]) for r in lemma), 1.0, 0.0,
              "; ".join(f"K = {r['K']}, tau = {r['tau']:g}: {r['valid_count']} such h, smallest second variation "
                        f"{r['valid_min']:.3e}" for r in lemma)),
        check("Lemma A.2: strictness", "second variation = 0 for h constant over the clusters (eq. 27 holds trivially)",
              max(abs(r["constant_h"]) for r in lemma), 1.0, 1e-12,
              "it is 0, so '> 0' needs h non-constant over the clusters (L is translation invariant)"),
        check("Lemma A.2: sigma >= 2 tau suffices", "second variation > 0 for every sampled h with eq. 27 at sigma = 2 tau",
              max(max(0.0, -r["weak_min"]) for r in lemma), 1.0, 0.0,
              "; ".join(f"K = {r['K']}: {r['weak_count']} such h, smallest {r['weak_min']:.3e}" for r in lemma))]
    res.sections.append(("Lemma A.2 in numbers", "\n".join(
        f"- K = {r['K']} centres on a great circle (squared distances {r['distances']}), 2 points each, tau = {r['tau']:g}: "
        f"sigma > 3 K^2 tau = {3 * r['K'] ** 2 * r['tau']:.3g}, possible only for tau < max ||xi_i - xi_j||^2 / (3 K^2) = "
        f"{r['tau_max']:.4f}. Of {2 * samples} sampled h, {r['valid_count']} satisfy eq. 27 with it (all positive), "
        f"{r['weak_count']} with sigma >= 2 tau (all positive); {len(r['negative_ratios'])} have a negative second "
        f"variation, and the largest sigma / tau they satisfy is "
        f"{max(r['negative_ratios']) if r['negative_ratios'] else float('nan'):.3g}." for r in lemma)))
    res.data = {"prop_a1": {"k": ks, "grad_norm": norms, "loss": losses, "limit": math.log(1 + 1 / n)},
                "lemma_a2": lemma, "prop_3_1": dev}
    return res
