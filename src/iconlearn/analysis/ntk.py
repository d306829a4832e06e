"""Neural tangent kernels of contrastive training (Calder-Lee section 4).

* :func:`empirical_ntk`: the kernel of eq. 12, K_ij^{kl} = grad_w f^k(w, x_i) . grad_w f^l(w, x_j),
  by autograd for any ``nn.Module`` (n x n x d x d).
* :class:`CalderLeeNet`: the one-hidden-layer network of eq. 18-19, f(B, x) = A^T sigma(B x) with the
  fixed block-averaging A (Md x d, entries 1/sqrt(M)) and trainable B (Md x D).
* :func:`closed_form_ntk`: Proposition 4.3, K_ij^{kl} = 1[k=l]/M x_i.x_j sum_{p in block k}
  sigma'(b_p x_i) sigma'(b_p x_j).
* :func:`infinite_width_ntk`: Proposition 4.4, ReLU and Gaussian B, M -> infinity:
  K_ij = x_i.x_j [1/2 - arccos(cos angle(x_i, x_j)) / (2 pi)] I_d.
* :func:`ntk_step_prediction`: Proposition 4.1, one gradient step on w moves the outputs by
  -lr sum_j K_ij grad_{z_j} L (to first order in lr).
* :func:`cluster_velocities`: Theorem 4.5 / Corollary 4.6 / Remark 4.4 on clustered data (eq. 16):
  the velocity of a point is -(n_q / n) ||xi_q||^2 beta_q grad L(xi_q) + O(delta), so a small
  cluster moves slowly in proportion to its share of the data.
* :func:`ntk_analysis`: all of the above as one result with the numbers of the report.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from .. import _validation as V
from ._common import check_tau
from .ntxent import invariant_ntxent

__all__ = ["CalderLeeNet", "empirical_ntk", "closed_form_ntk", "infinite_width_ntk", "ntk_step_prediction",
           "clustered_points", "cluster_velocities", "NTKResult", "ntk_analysis", "make_mlp"]

_ACTIVATIONS = {
    "relu": (torch.relu, lambda s: (s > 0).to(s.dtype)),
    "tanh": (torch.tanh, lambda s: 1.0 - torch.tanh(s) ** 2),
    "softplus": (torch.nn.functional.softplus, torch.sigmoid),
}


class CalderLeeNet(nn.Module):
    """f(B, x) = A^T sigma(B x) (eq. 18): B (M d x D) trainable with N(0, 1) entries, A fixed (eq. 19).

    Args:
        in_dim: D, the data dimension.
        out_dim: d, the embedding dimension.
        width: M, hidden units per output coordinate (the hidden layer has M d units).
        activation: "relu" (Proposition 4.4), "tanh" or "softplus".
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, activation: str = "relu",
                 generator: torch.Generator | None = None, dtype=torch.float64):
        super().__init__()
        self.in_dim = V.check_int(in_dim, "in_dim (D)", low=1)
        self.out_dim = V.check_int(out_dim, "out_dim (d)", low=1)
        self.width = V.check_int(width, "width (M)", low=1)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        M, d = self.width, self.out_dim
        self.B = nn.Parameter(torch.randn(M * d, self.in_dim, generator=generator, dtype=dtype))
        A = torch.zeros(M * d, d, dtype=dtype)
        for k in range(d):
            A[k * M:(k + 1) * M, k] = 1.0 / math.sqrt(M)
        self.register_buffer("A", A)

    def sigma(self, s: Tensor) -> Tensor:
        return _ACTIVATIONS[self.activation][0](s)

    def sigma_prime(self, s: Tensor) -> Tensor:
        return _ACTIVATIONS[self.activation][1](s)

    def forward(self, x: Tensor) -> Tensor:
        return self.sigma(x @ self.B.T) @ self.A


def _check_model_output(model: nn.Module, X: Tensor, out_dim: int | None) -> int:
    V.check_embeddings(X, "X")
    try:
        with torch.no_grad():
            y = model(X[:1])
    except RuntimeError as exc:
        raise ValueError(f"the model could not be applied to inputs of shape {tuple(X.shape)}: {exc}") from None
    if not isinstance(y, Tensor) or y.ndim != 2 or y.shape[0] != 1:
        raise ValueError(f"the model must map (n x D) inputs to (n x d) outputs, got output shape "
                         f"{tuple(getattr(y, 'shape', ()))} for one input")
    if out_dim is not None and y.shape[1] != out_dim:
        raise ValueError(f"the model's output dimension is {y.shape[1]} but the embedding dimension is {out_dim}; "
                         f"give the network out_features={out_dim}")
    return int(y.shape[1])


def jacobian(model: nn.Module, X: Tensor, out_dim: int | None = None) -> Tensor:
    """J (n x d x P): derivatives of every output coordinate at every input w.r.t. the trainable parameters."""
    _check_model_output(model, X, out_dim)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters: its tangent kernel is zero")
    buffers = {k: v for k, v in model.named_buffers()}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}

    def f(p, x):
        return functional_call(model, {**p, **frozen, **buffers}, (x[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    n, d = X.shape[0], next(iter(jac.values())).shape[1]
    return torch.cat([j.reshape(n, d, -1) for j in jac.values()], dim=2)


def empirical_ntk(model: nn.Module, X: Tensor, out_dim: int | None = None) -> Tensor:
    """The kernel of eq. 12 by autograd: K[i, j, k, l] = grad_w f^k(x_i) . grad_w f^l(x_j).

    Works for any ``nn.Module`` mapping (n x D) to (n x d); ``out_dim`` checks d.
    """
    J = jacobian(model, X, out_dim)
    return torch.einsum("ikp,jlp->ijkl", J, J)


def closed_form_ntk(net: CalderLeeNet, X: Tensor) -> Tensor:
    """Proposition 4.3 for the eq. 18 network: 1[k=l]/M x_i.x_j sum_{p in block k} s'(b_p x_i) s'(b_p x_j)."""
    if not isinstance(net, CalderLeeNet):
        raise ValueError("closed_form_ntk needs a CalderLeeNet (the eq. 18 network)")
    V.check_embeddings(X, "X")
    if X.shape[1] != net.in_dim:
        raise ValueError(f"X has {X.shape[1]} features but the network expects D = {net.in_dim}")
    M, d, n = net.width, net.out_dim, X.shape[0]
    with torch.no_grad():
        S = net.sigma_prime(X @ net.B.T).reshape(n, d, M)        # s'(b_p x_i), grouped by block k
        blocks = torch.einsum("ikp,jkp->ijk", S, S) / M          # (n, n, d)
        gram = X @ X.T
        K = torch.zeros(n, n, d, d, dtype=X.dtype)
        idx = torch.arange(d)
        K[:, :, idx, idx] = gram[:, :, None] * blocks
    return K


def infinite_width_ntk(X: Tensor, out_dim: int) -> Tensor:
    """Proposition 4.4 (ReLU, Gaussian rows of B, M -> inf): x_i.x_j [1/2 - arccos(c_ij)/(2 pi)] I_d."""
    V.check_embeddings(X, "X")
    d = V.check_int(out_dim, "out_dim (d)", low=1)
    gram = X @ X.T
    norms = X.norm(dim=1)
    c = (gram / (norms[:, None] * norms[None, :]).clamp_min(1e-300)).clamp(-1.0, 1.0)
    k = gram * (0.5 - torch.arccos(c) / (2 * math.pi))
    return k[:, :, None, None] * torch.eye(d, dtype=X.dtype)


def _as_matrix(K: Tensor) -> Tensor:
    n, _, d, _ = K.shape
    return K.permute(0, 2, 1, 3).reshape(n * d, n * d)


def ntk_step_prediction(model: nn.Module, X: Tensor, loss_fn, lr: float = 1e-4) -> tuple[float, Tensor, Tensor]:
    """Proposition 4.1 for one gradient step w <- w - lr grad_w L(f(w, X)).

    Returns (relative error, actual change of the outputs, predicted change -lr sum_j K_ij grad_{z_j} L).
    The error is O(lr) (second-order terms of the step).
    """
    lr = V.check_positive(lr, "lr")
    K = empirical_ntk(model, X)
    z = model(X)
    loss = loss_fn(z)
    gz = torch.autograd.grad(loss, z, retain_graph=True)[0]
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    predicted = -lr * torch.einsum("ijkl,jl->ik", K, gz.detach())
    with torch.no_grad():
        for p, g in zip([p for p in model.parameters() if p.requires_grad], grads):
            p -= lr * g
        actual = model(X) - z.detach()
        for p, g in zip([p for p in model.parameters() if p.requires_grad], grads):
            p += lr * g
    err = float((actual - predicted).norm() / actual.norm().clamp_min(1e-300))
    return err, actual, predicted


def clustered_points(sizes, delta: float, dim: int | None = None, gen: torch.Generator | None = None,
                     dtype=torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """Data of eq. 16: x_i = xi_q + eps_i, ||eps_i|| < delta, xi_q = e_q orthonormal (N clusters in R^dim).

    Returns (X, labels, centres).
    """
    sizes = [V.check_int(s, "cluster size", low=1) for s in sizes]
    N = len(sizes)
    dim = N if dim is None else V.check_int(dim, "dim", low=N)
    xi = torch.eye(N, dim, dtype=dtype)
    labels = torch.repeat_interleave(torch.arange(N), torch.tensor(sizes))
    eps = torch.randn(len(labels), dim, generator=gen, dtype=dtype)
    radius = delta * torch.rand(len(labels), 1, generator=gen, dtype=dtype)
    eps = eps / eps.norm(dim=1, keepdim=True) * radius
    return xi[labels] + eps, labels, xi


@dataclass
class ClusterVelocity:
    delta: float
    shares: list              # n_q / n
    speeds: list              # mean ||z_dot_i|| over cluster q
    normalized_speeds: list   # speed / (||xi_q||^2 ||beta_q gbar_q||): Theorem 4.5 says = n_q / n
    rel_error: float          # || z_dot - Theorem 4.5 prediction || / || z_dot ||


def cluster_velocities(sizes=(60, 30, 10), delta: float = 0.05, width: int = 256, tau: float = 0.5,
                       seed: int = 0) -> ClusterVelocity:
    """Theorem 4.5 / Remark 4.4: velocities z_dot_i = -(1/n) sum_j K_ij g_j of the eq. 18 network's outputs
    on clustered data (g_j = n grad_{z_j} L, L the invariant NT-Xent), against the prediction
    -(n_q/n) ||xi_q||^2 beta_q gbar_q with gbar_q the mean of g over the cluster (grad L at xi_q + O(delta))."""
    tau = check_tau(tau)
    gen = torch.Generator().manual_seed(seed)
    X, labels, xi = clustered_points(sizes, delta, gen=gen)
    N = len(sizes)
    net = CalderLeeNet(X.shape[1], N, width, generator=gen)
    n = X.shape[0]
    z = net(X).detach().requires_grad_(True)
    g = n * torch.autograd.grad(invariant_ntxent(z, tau), z)[0]
    K = closed_form_ntk(net, X)
    zdot = -torch.einsum("ijkl,jl->ik", K, g) / n
    with torch.no_grad():
        S = net.sigma_prime(xi @ net.B.T).reshape(N, N, width)        # s'(b_p xi_q), blocks k
        beta = (S ** 2).mean(2)                                        # (q, k): beta_q^k of Theorem 4.5
    pred = torch.zeros_like(zdot)
    shares, speeds, normed = [], [], []
    for q in range(N):
        m = labels == q
        gbar = g[m].mean(0)
        share = float(m.sum()) / n
        pred[m] = -share * float(xi[q].norm() ** 2) * beta[q] * gbar
        scale = float(xi[q].norm() ** 2 * (beta[q] * gbar).norm())
        sp = float(zdot[m].norm(dim=1).mean())
        shares.append(share)
        speeds.append(sp)
        normed.append(sp / scale)
    err = float((zdot - pred).norm() / zdot.norm())
    return ClusterVelocity(float(delta), shares, speeds, normed, err)


@dataclass
class NTKResult:
    """Numbers of the NTK analysis (Propositions 4.1, 4.3, 4.4, Theorem 4.5, Corollary 4.6, Remark 4.4)."""

    closed_form_error: dict = field(default_factory=dict)   # activation -> max |K_autograd - K_Prop4.3|
    mlp_ntk_shape: tuple = ()
    step_rel_error: dict = field(default_factory=dict)      # lr -> Prop 4.1 relative error
    widths: list = field(default_factory=list)
    width_errors: list = field(default_factory=list)        # RMS over seeds of ||K_M - K_inf||_F / ||K_inf||_F
    width_slope: float = float("nan")                       # fitted log-log slope (expected -1/2)
    beta_dev: list = field(default_factory=list)            # max_q,k |beta_q^k - 1/2| per width (Corollary 4.6)
    velocities: list = field(default_factory=list)          # ClusterVelocity per delta
    delta_slope: float = float("nan")                       # slope of Theorem 4.5 error vs delta (expected ~1)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        L = ["# Neural tangent kernels (Calder-Lee Propositions 4.1, 4.3, 4.4, Theorem 4.5, Corollary 4.6)", "",
             "## Proposition 4.3: autograd kernel (eq. 12) against the closed form, float64", "",
             "| activation | max abs. difference |", "| --- | --- |"]
        L += [f"| {a} | {e:.2e} |" for a, e in self.closed_form_error.items()]
        L += ["", f"The autograd kernel of a 4-layer MLP has shape {self.mlp_ntk_shape} (any nn.Module works).", "",
              "## Proposition 4.1: one gradient step on w moves the outputs by -lr sum_j K_ij grad L_j", "",
              "| lr | relative error of the prediction |", "| --- | --- |"]
        L += [f"| {lr:g} | {e:.2e} |" for lr, e in self.step_rel_error.items()]
        L += ["", "## Proposition 4.4: convergence to the infinite-width ReLU kernel", "",
              "| width M | rel. Frobenius error | max abs(beta - 1/2) |", "| --- | --- | --- |"]
        L += [f"| {m} | {e:.3e} | {b:.3e} |" for m, e, b in zip(self.widths, self.width_errors, self.beta_dev)]
        L += ["", f"Fitted slope of log error against log M: **{self.width_slope:.3f}** (Monte Carlo rate: -0.5).", "",
              "## Theorem 4.5 / Remark 4.4: velocities on imbalanced clusters (eq. 16, eq. 18 network)", "",
              "| delta | cluster shares n_q/n | mean speed per cluster | speed / (abs(xi_q)^2 abs(beta_q g_q)) | rel. error of eq. 21 |",
              "| --- | --- | --- | --- | --- |"]
        for v in self.velocities:
            L.append(f"| {v.delta:g} | {', '.join(f'{s:.2f}' for s in v.shares)} | "
                     f"{', '.join(f'{s:.2e}' for s in v.speeds)} | {', '.join(f'{s:.3f}' for s in v.normalized_speeds)} | "
                     f"{v.rel_error:.2e} |")
        L += ["", f"Error of the Theorem 4.5 prediction against delta: slope **{self.delta_slope:.2f}** (O(delta) expected). "
                  "The normalized speed equals the cluster's share n_q/n: a cluster with 10% of the data moves "
                  "6x slower than one with 60% (Remark 4.4)."]
        return "\n".join(L) + "\n"


def make_mlp(in_dim: int, out_dim: int, hidden: int = 64, layers: int = 4, seed: int = 0) -> nn.Module:
    """A fully connected tanh network with ``layers`` linear layers (Figure 6 uses 4), float64."""
    gen = torch.Generator().manual_seed(seed)
    mods, w = [], in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(w, hidden), nn.Tanh()]
        w = hidden
    mods.append(nn.Linear(w, out_dim))
    net = nn.Sequential(*mods).double()
    with torch.no_grad():     # default PyTorch init, drawn from a local generator (no global seeding)
        for m in net:
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    return net


def ntk_analysis(n: int = 16, in_dim: int = 3, out_dim: int = 2, widths=(4, 16, 64, 256, 1024, 4096),
                 seeds: int = 8, deltas=(0.2, 0.1, 0.05, 0.025), sizes=(60, 30, 10), tau: float = 0.5,
                 seed: int = 0) -> NTKResult:
    """Run the NTK checks on random data (n points in R^in_dim) and the clustered data of eq. 16."""
    n = V.check_int(n, "n", low=2)
    tau = check_tau(tau)
    widths = [V.check_int(m, "width (M)", low=1) for m in widths]
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, in_dim, generator=gen, dtype=torch.float64)
    res = NTKResult()
    for act in ("relu", "tanh", "softplus"):
        net = CalderLeeNet(in_dim, out_dim, 32, act, generator=gen)
        res.closed_form_error[act] = float((empirical_ntk(net, X, out_dim) - closed_form_ntk(net, X)).abs().max())
    res.mlp_ntk_shape = tuple(empirical_ntk(make_mlp(in_dim, out_dim, 32, seed=seed), X, out_dim).shape)
    net = CalderLeeNet(in_dim, out_dim, 64, "tanh", generator=gen)
    for lr in (1e-2, 1e-3, 1e-4):
        res.step_rel_error[lr] = ntk_step_prediction(net, X, lambda z: invariant_ntxent(z, tau), lr)[0]
    Kinf = infinite_width_ntk(X, out_dim)
    res.widths = widths
    for M in widths:
        errs, betas = [], []
        for _ in range(seeds):
            net = CalderLeeNet(in_dim, out_dim, M, "relu", generator=gen)
            errs.append(float((closed_form_ntk(net, X) - Kinf).norm() / Kinf.norm()))
            xi = torch.eye(out_dim, in_dim, dtype=torch.float64)
            with torch.no_grad():
                S = net.sigma_prime(xi @ net.B.T).reshape(out_dim, out_dim, M)
            betas.append(float(((S ** 2).mean(2) - 0.5).abs().max()))
        res.width_errors.append(float(np.sqrt(np.mean(np.square(errs)))))
        res.beta_dev.append(float(np.mean(betas)))
    res.width_slope = float(np.polyfit(np.log(widths), np.log(res.width_errors), 1)[0])
    res.velocities = [cluster_velocities(sizes, d, tau=tau, seed=seed) for d in deltas]
    errs = [v.rel_error for v in res.velocities]
    res.delta_slope = float(np.polyfit(np.log(list(deltas)), np.log(errs), 1)[0])
    return res
