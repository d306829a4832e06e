"""The theory of the Kernel-InfoNCE paper (Tan, Zhang, Yang and Yuan, "Contrastive learning is
spectral clustering on similarity graph"), checked numerically in float64.

1. Theorem 6.1 ("exponential kernels are natural"), the maximum-entropy derivation:

   * for any similarities psi_1..psi_n and tau > 0, max over the simplex of
     sum_i alpha_i psi_i + tau H(alpha) equals tau log sum_i exp(psi_i / tau), attained at
     alpha = softmax(psi / tau); hence the InfoNCE loss -tau log(exp(psi_1 / tau) / sum_i exp(psi_i / tau))
     is that maximum minus psi_1. A generic optimiser (L-BFGS over unconstrained logits) finds the
     maximum; it is compared with the closed form and with the library's softmax and I-Con loss.
   * with psi_i = -||z - z_i||^gamma: among all distributions over the candidates with a given mean
     of ||z - z_i||^gamma, the one of largest entropy (found by SLSQP under that constraint) is the
     exponential kernel's q, exp(-||z - z_i||^gamma / tau) normalised, for the tau that meets the
     constraint: the library's :class:`iconlearn.learned.ExponentialKernel` row.

2. Section 4 ("InfoNCE is spectral clustering"), exactly on small graphs: a similarity graph pi
   defines a Markov random field over subgraphs W in which every node has out-degree one,
   P(W; pi) ∝ prod_ij pi_ij^{W_ij}; the embeddings Z define P(W; K_Z) with the kernel matrix K_Z.
   Enumerating every such W (n^n - ish of them) checks

   * P(W; pi) = prod_i pi_{i, w(i)} / d_i (the field factorises over the nodes);
   * the cross-entropy -sum_W P(W; pi) log P(W; K_Z) equals n times InfoNCE with p(j|i) = pi_ij / d_i
     (:func:`iconlearn.core.icon_loss` with ``cross_entropy=True``), and KL(P(.; pi) || P(.; K_Z)) equals
     n times the I-Con loss;
   * with the Gaussian kernel exp(-||z_i - z_j||^2 / 2t) that cross-entropy is
     (1 / 2t) sum_ij p_ij ||z_i - z_j||^2 + sum_i log R_i (R_i = sum_{k != i} k_ik), and
     sum_ij p_ij ||z_i - z_j||^2 = 2 tr(Z^T L Z) with L the Laplacian of (P + P^T) / 2; for a regular
     graph of degree d, 2 tr(Z^T (D - pi) Z) / d: the Laplacian (spectral clustering) term;
   * the same on a bipartite pair graph (Theorem 5.2, CLIP): rows of one modality choose a partner in
     the other.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy.optimize import minimize

from .. import _validation as V
from ..core import SparseRows, icon_loss
from ..learned import ExponentialKernel, GaussianKernel, LaplacianKernel, masked_log_softmax
from ._checks import ChecksResult, check

__all__ = ["max_entropy_solution", "constrained_max_entropy", "enumerate_out_degree_one", "kernel_theory"]

DT = torch.float64


def max_entropy_solution(psi: np.ndarray, tau: float) -> tuple[np.ndarray, float]:
    """argmax and max over the simplex of sum_i alpha_i psi_i + tau H(alpha), by L-BFGS over
    unconstrained logits theta (alpha = exp(theta) / sum exp(theta)); no closed form is used."""
    psi = np.asarray(psi, dtype=np.float64)

    def neg(theta):
        a = np.exp(theta - theta.max())
        a /= a.sum()
        la = np.log(np.clip(a, 1e-300, None))
        f = a @ psi - tau * (a @ la)
        g_a = psi - tau * (la + 1.0)                  # d f / d alpha
        g_theta = a * (g_a - a @ g_a)                  # chain rule through the softmax
        return -f, -g_theta

    res = minimize(neg, np.zeros_like(psi), jac=True, method="L-BFGS-B", options={"gtol": 1e-13, "ftol": 1e-15,
                                                                                   "maxiter": 10000})
    a = np.exp(res.x - res.x.max())
    a /= a.sum()
    return a, float(-res.fun)


def constrained_max_entropy(r: np.ndarray, mean: float) -> np.ndarray:
    """The distribution of largest entropy over len(r) outcomes with sum_i alpha_i r_i = mean (SLSQP
    on the simplex; no exponential form in r is assumed). Its precision is the optimiser's: about
    1e-5 in log alpha."""
    r = np.asarray(r, dtype=np.float64)
    n = len(r)

    def neg_entropy(a):
        a = np.clip(a, 1e-300, None)
        return float(a @ np.log(a)), np.log(a) + 1.0

    cons = [{"type": "eq", "fun": lambda a: a.sum() - 1.0, "jac": lambda a: np.ones(n)},
            {"type": "eq", "fun": lambda a: a @ r - mean, "jac": lambda a: r}]
    res = minimize(neg_entropy, np.full(n, 1.0 / n), jac=True, method="SLSQP", bounds=[(1e-12, 1.0)] * n,
                   constraints=cons, options={"ftol": 1e-15, "maxiter": 1000})
    return res.x / res.x.sum()


def enumerate_out_degree_one(weights: np.ndarray, self_loops: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every subgraph W in which each row picks exactly one column (not itself unless ``self_loops``),
    as an (S x n) array of the picked columns, and its MRF probability P(W; weights) ∝ prod_i w_{i, w(i)},
    normalised by the sum over all S subgraphs (the definition, without the factorisation)."""
    n, m = weights.shape
    choices = [[j for j in range(m) if self_loops or j != i or n != m] for i in range(n)]
    picks = np.array(list(itertools.product(*choices)), dtype=np.int64)
    unnorm = np.prod(weights[np.arange(n)[None, :], picks], axis=1)
    return picks, unnorm / unnorm.sum()


def _graph(n: int, rng) -> np.ndarray:
    W = rng.random((n, n)) + 0.05
    W = (W + W.T) / 2
    np.fill_diagonal(W, 0.0)
    return W


def _regular_graph(n: int) -> np.ndarray:
    """A cycle with its chords of length 2: every node has degree 4 (weights 1 and 0.5: degree 3)."""
    W = np.zeros((n, n))
    for i in range(n):
        for s, w in ((1, 1.0), (2, 0.5)):
            W[i, (i + s) % n] = W[(i + s) % n, i] = w
    return W


def _mrf_checks(W: np.ndarray, Z: torch.Tensor, kernel, exclude_self: bool) -> dict:
    """Deviations of the section-4 identities for one graph (rows x columns), embeddings and kernel."""
    n, m = W.shape
    picks, P = enumerate_out_degree_one(W)
    d = W.sum(1)
    fact = np.prod(W[np.arange(n)[None, :], picks] / d[None, :], axis=1)
    if exclude_self:
        log_q = kernel(Z)
        K = np.exp(kernel.log_affinity(Z, Z).numpy())
        np.fill_diagonal(K, 0.0)
    else:
        A, B = Z[:n], Z[n:]
        log_q = kernel(A, B)
        K = np.exp(kernel.log_affinity(A, B).numpy())
    _, Q = enumerate_out_degree_one(K)
    ce_enum = float(-(P * np.log(Q)).sum())
    kl_enum = float((P * (np.log(P) - np.log(Q))).sum())
    p = torch.from_numpy(W / d[:, None])
    return {"P": P, "factorisation": float(np.abs(P - fact).max()), "factor_scale": float(P.max()),
            "cross_entropy": abs(ce_enum - n * float(icon_loss(p, log_q, cross_entropy=True))), "ce": ce_enum,
            "kl": abs(kl_enum - n * float(icon_loss(p, log_q))), "kl_value": kl_enum, "configurations": len(picks)}


def kernel_theory(trials: int = 20, n: int = 5, dim: int = 3, seed: int = 0) -> ChecksResult:
    """Run the checks of the module docstring on ``trials`` random draws."""
    trials = V.check_int(trials, "trials", low=1)
    n = V.check_int(n, "n", low=3, high=7)
    dim = V.check_int(dim, "dim", low=2)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)

    # ---- Theorem 6.1, entropy-regularised form
    dev = {"value": 0.0, "argmax": 0.0, "infonce": 0.0}
    scale = 0.0
    for _ in range(trials):
        m, tau = int(rng.integers(3, 12)), float(rng.choice([0.1, 0.5, 1.0, 2.0]))
        psi = rng.normal(0, 1, m) * rng.choice([0.5, 2.0])
        alpha, best = max_entropy_solution(psi, tau)
        closed = tau * float(torch.logsumexp(torch.from_numpy(psi / tau), 0))
        soft = masked_log_softmax(torch.from_numpy(psi / tau)[None]).exp()[0].numpy()
        p = SparseRows(torch.ones(1, 1, dtype=DT), torch.zeros(1, 1, dtype=torch.long))
        infonce = tau * float(icon_loss(p, masked_log_softmax(torch.from_numpy(psi / tau)[None])))
        dev["value"] = max(dev["value"], abs(best - closed))
        dev["argmax"] = max(dev["argmax"], float(np.abs(alpha - soft).max()))
        dev["infonce"] = max(dev["infonce"], abs(infonce - (best - psi[0])))
        scale = max(scale, abs(closed))
    res = ChecksResult(
        "Kernel-InfoNCE theory: Theorem 6.1 and the MRF identity of section 4",
        f"{trials} random draws each, float64. Theorem 6.1 by a generic optimiser (L-BFGS over logits; SLSQP under "
        f"a moment constraint) against the closed forms and the library's kernels; section 4 by enumerating every "
        f"out-degree-one subgraph of graphs with {n} nodes.")
    res.checks += [
        check("Thm 6.1: max entropy value", "max_alpha sum_i alpha_i psi_i + tau H(alpha) = tau log sum_i exp(psi_i / tau)",
              dev["value"], scale, 1e-9),
        check("Thm 6.1: maximiser", "argmax = softmax(psi / tau) (the library's masked_log_softmax)", dev["argmax"], 1.0,
              1e-6),
        check("Thm 6.1: InfoNCE = max - psi_1", "-tau log(e^{psi_1/tau} / sum_i e^{psi_i/tau}) = max_alpha[...] - psi_1 "
              "(icon_loss, one-hot p)", dev["infonce"], scale, 1e-9)]

    # ---- Theorem 6.1 with distances: the max-entropy distribution at fixed E[d^gamma] is the exponential kernel
    dev_k = {g: 0.0 for g in (0.5, 1.0, 2.0)}
    affine = 0.0
    for t in range(trials):
        g = (0.5, 1.0, 2.0)[t % 3]
        m = int(rng.integers(5, 12))
        z = torch.nn.functional.normalize(torch.randn(m + 1, dim, generator=gen, dtype=DT), dim=1)
        r = torch.cdist(z[:1], z[1:])[0].numpy() ** g
        tau_true = float(rng.choice([0.2, 0.5, 1.0]))
        target = float(np.exp(-r / tau_true) @ r / np.exp(-r / tau_true).sum())
        alpha = constrained_max_entropy(r, target)
        slope, icpt = np.polyfit(r, np.log(alpha), 1)
        affine = max(affine, float(np.abs(np.log(alpha) - (slope * r + icpt)).max()))
        q = ExponentialKernel(g, -1.0 / slope)(z[:1], z[1:])[0].exp().numpy()
        dev_k[g] = max(dev_k[g], float(np.abs(alpha - q).max()))
    res.checks.append(check("Thm 6.1: max entropy at fixed E[d^gamma]", "log alpha_i is affine in d_i^gamma (SLSQP, "
                            "no form assumed; to the optimiser's precision)", affine, 1.0, 1e-4))
    for g, v in dev_k.items():
        res.checks.append(check(f"Thm 6.1: ... is the exponential kernel, gamma={g:g}",
                                "alpha = ExponentialKernel(gamma, tau = -1/slope) row", v, 1.0, 1e-6))

    # ---- section 4: the MRF cross-entropy identity, exactly
    worst = {"fact": 0.0, "ce": 0.0, "kl": 0.0, "lap_h": 0.0, "lap_tr": 0.0, "lap_reg": 0.0, "clip": 0.0}
    ce_scale = 0.0
    configs = 0
    for t in range(trials):
        W = _graph(n, rng)
        Z = torch.randn(n, dim, generator=gen, dtype=DT)
        kern = (GaussianKernel(sigma=float(rng.uniform(0.5, 1.5))), LaplacianKernel(0.7, normalize_inputs=False))[t % 2]
        c = _mrf_checks(W, Z, kern, exclude_self=True)
        worst["fact"] = max(worst["fact"], c["factorisation"])
        worst["ce"] = max(worst["ce"], c["cross_entropy"])
        worst["kl"] = max(worst["kl"], c["kl"])
        ce_scale, configs = max(ce_scale, c["ce"]), c["configurations"]
        # the Laplacian form (Gaussian kernel exp(-||z_i - z_j||^2 / 2t), sigma^2 = t)
        tt = float(rng.uniform(0.3, 2.0))
        P = W / W.sum(1, keepdims=True)
        Zn = Z.numpy()
        D2 = ((Zn[:, None] - Zn[None]) ** 2).sum(-1)
        Kg = np.exp(-D2 / (2 * tt))
        np.fill_diagonal(Kg, 0.0)
        _, Qg = enumerate_out_degree_one(Kg)
        ce = float(-(c["P"] * np.log(Qg)).sum())
        lap = (P * D2).sum() / (2 * tt) + np.log(Kg.sum(1)).sum()
        worst["lap_h"] = max(worst["lap_h"], abs(ce - lap))
        S = (P + P.T) / 2
        L = np.diag(S.sum(1)) - S
        worst["lap_tr"] = max(worst["lap_tr"], abs((P * D2).sum() - 2 * np.trace(Zn.T @ L @ Zn)))
        R = _regular_graph(n + 2)
        Zr = rng.normal(0, 1, (n + 2, dim))
        Pr = R / R.sum(1, keepdims=True)
        D2r = ((Zr[:, None] - Zr[None]) ** 2).sum(-1)
        worst["lap_reg"] = max(worst["lap_reg"], abs((Pr * D2r).sum()
                                                     - 2 * np.trace(Zr.T @ (np.diag(R.sum(1)) - R) @ Zr) / R.sum(1)[0]))
        # Theorem 5.2: a bipartite pair graph, rows of A choose among B
        nb = n - 1
        Wab = rng.random((n, nb)) + 0.05
        AB = torch.randn(n + nb, dim, generator=gen, dtype=DT)
        cb = _mrf_checks(Wab, AB, ExponentialKernel(2.0, 0.5, exclude_self=False), exclude_self=False)
        worst["clip"] = max(worst["clip"], cb["cross_entropy"], cb["kl"], cb["factorisation"])
    res.checks += [
        check("Sec. 4: the MRF factorises", "P(W; pi) = prod_i pi_{i,w(i)} / d_i over out-degree-one W",
              worst["fact"], 1.0, 1e-13),
        check("Sec. 4: cross-entropy = InfoNCE", "-sum_W P(W; pi) log P(W; K_Z) = n InfoNCE(p = pi / d, q from K_Z)",
              worst["ce"], ce_scale, 1e-12),
        check("Sec. 4: MRF KL = I-Con loss", "KL(P(.; pi) || P(.; K_Z)) = n mean_i KL(p_i || q_i)", worst["kl"],
              ce_scale, 1e-12),
        check("Sec. 4: Gaussian kernel, Laplacian form", "cross-entropy = (1/2t) sum_ij p_ij ||z_i - z_j||^2 + "
              "sum_i log R_i", worst["lap_h"], ce_scale, 1e-12),
        check("Sec. 4: the Laplacian term", "sum_ij p_ij ||z_i - z_j||^2 = 2 tr(Z^T L((P + P^T)/2) Z)",
              worst["lap_tr"], ce_scale, 1e-12),
        check("Sec. 4: regular graph", "sum_ij p_ij ||z_i - z_j||^2 = (2/d) tr(Z^T (D - pi) Z)", worst["lap_reg"],
              ce_scale, 1e-12),
        check("Thm 5.2 (CLIP): pair graph", "the three identities on a bipartite graph (A chooses in B)", worst["clip"],
              ce_scale, 1e-12)]
    res.sections.append(("What the enumeration covers", f"{configs} out-degree-one subgraphs per graph ({n} nodes, "
                         f"no self-loops), {trials} graphs with random symmetric weights, random embeddings in R^{dim}, "
                         "Gaussian and Laplacian kernels alternating; the pair graphs have "
                         f"{n} x {n - 1} random weights. Deviations are absolute, in nats, on cross-entropies up to "
                         f"{ce_scale:.1f}."))
    res.data = {"trials": trials, "n": n, "dim": dim, "configurations": configs,
                "deviations": {c.name: c.deviation for c in res.checks}}
    return res
