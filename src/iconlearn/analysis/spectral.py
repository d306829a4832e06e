"""Contrastive learning as spectral clustering (Tan et al., "Contrastive learning is spectral
clustering on similarity graph"; the Kernel-InfoNCE paper).

With a similarity graph pi (weights w_ij), InfoNCE with p(j|i) = w_ij / d_i and a kernel q on
free (non-parametric) embeddings is the cross-entropy of two Markov random fields, which the paper
shows is spectral clustering on pi: the trained embeddings should span the same space as the
leading eigenvectors of the random-walk matrix D^-1 W (the smallest of the Laplacian
I - D^-1 W). This module trains such embeddings with :func:`iconlearn.core.icon_loss` and the
kernels of :mod:`iconlearn.learned` and measures

* the principal angles between span(Z) (centred, its top k - 1 directions) and the non-trivial
  eigenvectors 2..k (largest and mean, degrees), against a random subspace of the same size;
* block recovery (NMI / ARI of k-means on the embeddings against the known blocks) for the
  Gaussian, Laplacian, gamma = 0.5 and mixture kernels, against spectral clustering itself;

on a stochastic block model and on the augmentation graph of the digits data under Gaussian
noise augmentations (w_ij = P(an augmentation of x_i equals one of x_j) ∝ exp(-||x_i - x_j||^2 /
(4 s^2)) for noise std s), plus the CLIP version (Theorem 5.2): two modalities, a bipartite pair
graph, embeddings against the singular vectors of D_A^-1/2 W D_B^-1/2.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import subspace_angles
from sklearn.cluster import KMeans

from .. import _validation as V
from ..core import icon_loss
from ..learned import ExponentialKernel, GaussianKernel, Kernel, kernel_infonce_kernel
from ..metrics import ari, nmi
from ._common import check_tau

__all__ = ["sbm_graph", "bipartite_sbm", "digits_augmentation_graph", "leading_eigenvectors", "kernel_zoo",
           "train_embedding", "train_bipartite_embedding", "principal_angles", "embedding_subspace", "SpectralResult", "spectral"]


def sbm_graph(sizes=(100, 100, 100, 100), p_in: float = 0.2, p_out: float = 0.02, seed: int = 0):
    """A symmetric stochastic block model without self-loops: (W (n x n) float64, block labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    prob = np.where(labels[:, None] == labels[None, :], p_in, p_out)
    upper = np.triu(rng.random(prob.shape) < prob, 1)
    W = (upper | upper.T).astype(np.float64)
    return W, labels


def bipartite_sbm(sizes=(60, 60, 60), p_in: float = 0.25, p_out: float = 0.02, seed: int = 1):
    """A pair graph between two modalities with the same blocks: (W (n_a x n_b), labels_a, labels_b)."""
    rng = np.random.default_rng(seed)
    la = np.repeat(np.arange(len(sizes)), sizes)
    lb = rng.permutation(la)
    prob = np.where(la[:, None] == lb[None, :], p_in, p_out)
    W = (rng.random(prob.shape) < prob).astype(np.float64)
    return W, la, lb


def digits_augmentation_graph(n: int = 500, noise_std: float | None = None, seed: int = 0):
    """Augmentation graph of n real digits (sklearn's 8x8) under Gaussian noise of std s:
    w_ij = exp(-||x_i - x_j||^2 / (4 s^2)) (the overlap of the two noise distributions), no self-loops.

    s defaults to half the median distance to the 10th nearest neighbour. Returns (W, labels, s).
    """
    from ..data import load_dataset

    ds = load_dataset("digits")
    X = np.asarray(ds.X, dtype=np.float64).reshape(len(ds.X), -1)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(V.check_int(n, "n", low=20), len(X)), replace=False))
    X, y = torch.from_numpy(X[idx]), np.asarray(ds.y)[idx]
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    if noise_std is None:
        knn10 = torch.sort(d2, dim=1).values[:, 10].sqrt()
        noise_std = float(knn10.median()) / 2
    s = V.check_positive(noise_std, "noise_std")
    W = GaussianKernel(sigma=math.sqrt(2.0) * s).log_affinity(X, X).exp().numpy()
    np.fill_diagonal(W, 0.0)
    return W, y, s


def leading_eigenvectors(W: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-d right eigenvectors of D^-1 W (eigenvalues descending), via the symmetric D^-1/2 W D^-1/2."""
    deg = W.sum(1)
    if (deg <= 0).any():
        raise ValueError("every node needs at least one edge (a zero degree makes D^-1 W undefined)")
    s = 1.0 / np.sqrt(deg)
    vals, vecs = np.linalg.eigh(s[:, None] * W * s[None, :])
    order = np.argsort(vals)[::-1][:d]
    return vals[order], s[:, None] * vecs[:, order]


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the column spaces of A and B."""
    return np.sort(np.degrees(subspace_angles(np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64))))


def embedding_subspace(Z: np.ndarray, r: int) -> np.ndarray:
    """Top-r principal directions (n x r) of the column-centred embedding Z.

    Centring removes the trivial direction (the constant vector, the top eigenvector of D^-1 W),
    so span(Z) is compared with the non-trivial eigenvectors 2..r+1: k blocks embedded as a centred
    simplex span k - 1 directions, which together with the constant give the k block indicators.
    """
    Zc = np.asarray(Z, dtype=np.float64) - np.asarray(Z, dtype=np.float64).mean(0)
    return np.linalg.svd(Zc, full_matrices=False)[0][:, :r]


def kernel_zoo(tau: float = 0.5) -> dict[str, Kernel]:
    """The kernels compared in the Kernel-InfoNCE paper, all on L2-normalised embeddings: the same
    kernels as :class:`iconlearn.losses.KernelInfoNCE` (:func:`iconlearn.learned.kernel_infonce_kernel`)."""
    tau = check_tau(tau)
    return {
        "Gaussian (gamma=2)": kernel_infonce_kernel(2.0, tau),
        "Laplacian (gamma=1)": kernel_infonce_kernel(1.0, tau),
        "gamma=0.5": kernel_infonce_kernel(0.5, tau),
        "sum: Laplacian + Gaussian": kernel_infonce_kernel(temperature=tau, mixture="sum", gammas=(1.0, 2.0)),
        "concat (Laplacian, Gaussian)": kernel_infonce_kernel(temperature=tau, mixture="concat", gammas=(1.0, 2.0)),
    }


def _targets(W: np.ndarray) -> torch.Tensor:
    deg = W.sum(1, keepdims=True)
    if (deg <= 0).any():
        raise ValueError("every node needs at least one edge")
    return torch.from_numpy(W / deg)


def train_embedding(W: np.ndarray, d: int, kernel: Kernel, iters: int = 300, lr: float = 0.05,
                    seed: int = 0) -> np.ndarray:
    """Non-parametric InfoNCE on a graph: minimise mean_i KL(w_i. / d_i || q_i) over free Z (n x d) with
    Adam; q from ``kernel`` with the anchor excluded. Returns the L2-normalised embeddings."""
    d = V.check_int(d, "d", low=1)
    iters = V.check_int(iters, "iters", low=1)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square, got shape {W.shape}")
    p = _targets(W)
    Z = torch.randn(W.shape[0], d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Z.requires_grad_(True)
    opt = torch.optim.Adam([Z], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        icon_loss(p, kernel(Z)).backward()
        opt.step()
    return F.normalize(Z.detach(), dim=1).numpy()


def train_bipartite_embedding(W: np.ndarray, d: int, kernel: Kernel, iters: int = 300, lr: float = 0.05,
                              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CLIP on a pair graph (Theorem 5.2): p(b|a) = w_ab / d_a over modality B, p(a|b) = w_ab / d_b over A,
    q(b|a) ∝ k(z_a, z_b) over the other modality; the loss is the mean of both directions."""
    pa, pb = _targets(W), _targets(W.T)
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(W.shape[0], d, generator=gen, dtype=torch.float64).requires_grad_(True)
    B = torch.randn(W.shape[1], d, generator=gen, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([A, B], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        (0.5 * (icon_loss(pa, kernel(A, B)) + icon_loss(pb, kernel(B, A)))).backward()
        opt.step()
    return F.normalize(A.detach(), dim=1).numpy(), F.normalize(B.detach(), dim=1).numpy()


def _kmeans(Z: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(k, n_init=4, random_state=seed).fit_predict(Z)


@dataclass
class KernelRow:
    graph: str
    kernel: str
    max_angle: float     # largest principal angle (degrees) to the top-d eigenvectors
    mean_angle: float
    nmi: float           # k-means on the embedding against the blocks / classes
    ari: float


@dataclass
class SpectralResult:
    rows: list = field(default_factory=list)          # KernelRow
    baselines: dict = field(default_factory=dict)     # graph -> {spectral nmi/ari, random-subspace angles}
    clip: dict = field(default_factory=dict)          # CLIP / bipartite numbers
    embeddings: dict = field(default_factory=dict)    # for the figure

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "baselines": self.baselines, "clip": self.clip}

    def to_markdown(self) -> str:
        L = ["# Contrastive learning is spectral clustering (Kernel-InfoNCE paper)", "",
             "Non-parametric InfoNCE on a graph (p = random walk on the graph, q = kernel on L2-normalised free "
             "embeddings, d = k = number of blocks); principal angles between span(Z) (centred, top k-1 directions) and "
             "the non-trivial eigenvectors 2..k of D^-1 W; k-means on Z against the blocks.", "",
             "| graph | method / kernel | max principal angle (deg) | mean angle (deg) | NMI | ARI |",
             "| --- | --- | --- | --- | --- | --- |"]
        for g, b in self.baselines.items():
            L.append(f"| {g} | spectral clustering (reference) | 0 | 0 | {b['spectral_nmi']:.3f} | {b['spectral_ari']:.3f} |")
            L.append(f"| {g} | random {b['d'] - 1}-dim subspace (control) | {b['random_max_angle']:.1f} | "
                     f"{b['random_mean_angle']:.1f} | - | - |")
            for r in (r for r in self.rows if r.graph == g):
                L.append(f"| {g} | InfoNCE, {r.kernel} | {r.max_angle:.1f} | {r.mean_angle:.1f} | {r.nmi:.3f} | {r.ari:.3f} |")
        if self.clip:
            c = self.clip
            L += ["", "## CLIP on a bipartite pair graph (Theorem 5.2)", "",
                  f"{c['n_a']} + {c['n_b']} objects in two modalities, {c['blocks']} blocks. Principal angles between "
                  f"the embeddings of each modality (centred, top {c['d'] - 1} directions) and the singular vectors "
                  f"2..{c['d']} of D_A^-1/2 W D_B^-1/2 (scaled by D^-1/2), kernel {c['kernel']}:", "",
                  "| modality | max angle (deg) | mean angle (deg) | NMI | random subspace max / mean angle |",
                  "| --- | --- | --- | --- | --- |",
                  f"| A | {c['max_angle_a']:.1f} | {c['mean_angle_a']:.1f} | {c['nmi_a']:.3f} | {c['random_max']:.1f} / {c['random_mean']:.1f} |",
                  f"| B | {c['max_angle_b']:.1f} | {c['mean_angle_b']:.1f} | {c['nmi_b']:.3f} | |"]
        return "\n".join(L) + "\n"


def _random_angles(n: int, d: int, U: np.ndarray, seed: int) -> np.ndarray:
    return principal_angles(np.random.default_rng(seed).standard_normal((n, d)), U)


def spectral(tau: float = 0.5, iters: int = 200, n_digits: int = 400, sbm_sizes=(80, 80, 80, 80),
             p_in: float = 0.25, p_out: float = 0.02, kernels=None, clip: bool = True, clip_tau: float = 0.2,
             clip_lr: float = 0.2, seed: int = 0) -> SpectralResult:
    """Run the comparison on the SBM, the digits augmentation graph and (``clip``) a bipartite pair graph."""
    tau = check_tau(tau)
    zoo = kernel_zoo(tau)
    names = list(zoo) if kernels is None else list(kernels)
    for k in names:
        if k not in zoo:
            raise ValueError(f"unknown kernel {k!r}; choose from {list(zoo)}")
    graphs = {}
    W, y = sbm_graph(sbm_sizes, p_in, p_out, seed)
    graphs[f"SBM {len(sbm_sizes)}x{sbm_sizes[0]} (p_in={p_in:g}, p_out={p_out:g})"] = (W, y, len(sbm_sizes))
    if n_digits:
        Wd, yd, s = digits_augmentation_graph(n_digits, seed=seed)
        graphs[f"digits n={len(yd)}, noise s={s:.1f}"] = (Wd, yd, 10)
    res = SpectralResult()
    for g, (W, y, k) in graphs.items():
        _, U = leading_eigenvectors(W, k)
        spec = _kmeans(U / np.linalg.norm(U, axis=1, keepdims=True), k, seed)
        U = U[:, 1:]
        ra = _random_angles(len(y), k - 1, U, seed)
        res.baselines[g] = {"d": k, "spectral_nmi": nmi(y, spec), "spectral_ari": ari(y, spec),
                            "random_max_angle": float(ra.max()), "random_mean_angle": float(ra.mean())}
        for name in names:
            Z = train_embedding(W, k, zoo[name], iters, seed=seed)
            ang = principal_angles(embedding_subspace(Z, k - 1), U)
            pred = _kmeans(Z, k, seed)
            res.rows.append(KernelRow(g, name, float(ang.max()), float(ang.mean()), nmi(y, pred), ari(y, pred)))
            if name == names[0]:
                res.embeddings[g] = (Z, y, U)
    if clip:
        Wb, la, lb = bipartite_sbm(seed=seed + 1)
        k = len(np.unique(la))
        da, db = Wb.sum(1), Wb.sum(0)
        u, _, vt = np.linalg.svd(Wb / np.sqrt(da)[:, None] / np.sqrt(db)[None, :])
        Ua, Ub = u[:, 1:k] / np.sqrt(da)[:, None], vt[1:k].T / np.sqrt(db)[:, None]
        clip_kernel = ExponentialKernel(2.0, check_tau(clip_tau, "clip_tau"))
        A, B = train_bipartite_embedding(Wb, k, clip_kernel, iters, lr=clip_lr, seed=seed)
        aa, ab = principal_angles(embedding_subspace(A, k - 1), Ua), principal_angles(embedding_subspace(B, k - 1), Ub)
        ra = _random_angles(len(la), k - 1, Ua, seed)
        res.clip = {"n_a": len(la), "n_b": len(lb), "blocks": k, "d": k, "kernel": f"Gaussian, tau={clip_tau:g}",
                    "max_angle_a": float(aa.max()), "mean_angle_a": float(aa.mean()),
                    "max_angle_b": float(ab.max()), "mean_angle_b": float(ab.mean()),
                    "nmi_a": nmi(la, _kmeans(A, k, seed)), "nmi_b": nmi(lb, _kmeans(B, k, seed)),
                    "random_max": float(ra.max()), "random_mean": float(ra.mean())}
    return res
