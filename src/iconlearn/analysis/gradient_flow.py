"""Gradient flows with and without a network (Calder-Lee Figures 5-6, Theorems 4.2 and 4.5).

Data: four clusters with centres -3, -1, 1, 3 on the first axis and noise of radius delta, in R^2
or R^3. The embedding lives on the unit sphere S^{d-1} (d = the data dimension) and the loss is the
generalized NT-Xent of an invariant map (eq. 4 with both views equal; Proposition 2.1). From the
*same* start embedding z0 it is minimised

* directly (eq. 13/14): gradient descent on free points u_i, z_i = u_i / ||u_i||;
* through a network (eq. 15): gradient descent on the weights w of z_i(w) = z0_i + g(w, x_i) - g(w0, x_i),
  where g is the one-hidden-layer network of eq. 18 or a 4-layer MLP. The offset makes the start
  embedding exactly z0 for every parametrisation while the tangent kernel is g's.

Start embeddings: ``"network"`` (z0 = g(w0, x) of the eq. 18 network at its random init) or
``"worst-case"`` (eq. 17: an invariant map unrelated to the data; here every point gets an
independent uniformly random point of the sphere, so the start carries no cluster structure. An
exactly uniform start would be a stationary point, where no flow moves: grad_w L = J^T grad_z L = 0).

Numbers over the iterations: the between/within-cluster spread ratio
sum_c n_c ||m_c - m||^2 / sum_i ||z_i - m_c(i)||^2 (clusters emerge: large), and the squared MMD to
the uniform distribution on the sphere with the kernel exp(-||u - v||^2) (uniform: ~0). The negative
gradients -grad_z L at the points are kept for the snapshots (the arrows of Figure 5).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.special import ive
from torch import Tensor, nn

from .. import _validation as V
from ._common import check_tau, tangent
from .ntk import CalderLeeNet, make_mlp
from .ntxent import invariant_ntxent

__all__ = ["four_cluster_data", "between_within_ratio", "mmd_to_uniform", "velocity_coherence", "FlowRun",
           "GradientFlowResult", "run_flow", "gradient_flows", "gradient_flow_suite", "make_mlp",
           "four_point_loss", "ratio_at_loss"]

CENTERS = (-3.0, -1.0, 1.0, 3.0)


def four_cluster_data(n_per: int = 25, dim: int = 2, delta: float = 0.5, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Figure 4 data: clusters at -3, -1, 1, 3 on the first axis, noise uniform in a ball of radius delta."""
    n_per = V.check_int(n_per, "n_per", low=1)
    dim = V.check_int(dim, "dim", low=2, high=3)
    delta = V.check_positive(delta, "delta")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(CENTERS)).repeat_interleave(n_per)
    X = torch.zeros(len(labels), dim, dtype=torch.float64)
    X[:, 0] = torch.tensor(CENTERS, dtype=torch.float64)[labels]
    eps = torch.randn(len(labels), dim, generator=gen, dtype=torch.float64)
    r = delta * torch.rand(len(labels), 1, generator=gen, dtype=torch.float64) ** (1.0 / dim)
    return X + eps / eps.norm(dim=1, keepdim=True) * r, labels


def between_within_ratio(z: Tensor | np.ndarray, labels) -> float:
    """sum_c n_c ||m_c - m||^2 / sum_i ||z_i - m_c(i)||^2."""
    z = torch.as_tensor(z, dtype=torch.float64)
    labels = torch.as_tensor(labels)
    m = z.mean(0)
    between = within = 0.0
    for c in labels.unique():
        zc = z[labels == c]
        mc = zc.mean(0)
        between += len(zc) * float(((mc - m) ** 2).sum())
        within += float(((zc - mc) ** 2).sum())
    return between / max(within, 1e-300)


def _uniform_kernel_mean(dim: int, t: float = 1.0) -> float:
    """E exp(-t ||u - v||^2) for u, v uniform on S^{dim-1} (dim 2 or 3)."""
    if dim == 2:
        return float(ive(0, 2 * t))            # e^{-2t} I_0(2t)
    if dim == 3:
        return float((1 - math.exp(-4 * t)) / (4 * t))
    raise ValueError(f"the uniform reference is available on S^1 and S^2 only, got dimension {dim}")


def mmd_to_uniform(z: Tensor | np.ndarray, t: float = 1.0) -> float:
    """Squared MMD between the points z (on the unit sphere) and the uniform distribution, kernel
    exp(-t ||u - v||^2): mean_ij k(z_i, z_j) - E_{u,v} k(u, v) (E_v k(z, v) is the same for all z)."""
    z = torch.as_tensor(z, dtype=torch.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    return float(torch.exp(-t * d2).mean()) - _uniform_kernel_mean(z.shape[1], t)


def velocity_coherence(v: Tensor | np.ndarray, labels) -> float:
    """Mean over clusters of ||mean_i v_i|| / mean_i ||v_i||: 1 when a cluster moves as one (Theorem 4.5)."""
    v = torch.as_tensor(v, dtype=torch.float64)
    labels = torch.as_tensor(labels)
    vals = []
    for c in labels.unique():
        vc = v[labels == c]
        vals.append(float(vc.mean(0).norm() / vc.norm(dim=1).mean().clamp_min(1e-300)))
    return float(np.mean(vals))


@dataclass
class FlowRun:
    name: str
    lr: float
    iterations: list = field(default_factory=list)
    ratio: list = field(default_factory=list)
    mmd: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    coherence: list = field(default_factory=list)
    defect: list = field(default_factory=list)      # Theorem 4.2: max_i ||f(w, x_i) - f(w, P x_i)||
    snapshots: dict = field(default_factory=dict)   # iteration -> (z, -grad_z L) as numpy arrays


def _invariant_net(dim: int, width: int, seed: int) -> CalderLeeNet:
    net = CalderLeeNet(dim, dim, width, "tanh", generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        net.B[:, 1:] = 0.0        # f(w0, x) = A^T tanh(B x) depends on x^1 only: invariant to the noise
    return net


def four_point_loss(dim: int, tau: float) -> float:
    """Loss of four equal clusters at the symmetric four-point configuration (square on S^1,
    tetrahedron on S^2): a stationary point of Theorem 3.2 where the network flows plateau."""
    if dim == 2:
        pts = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64)
    else:
        pts = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64) / math.sqrt(3)
    return float(invariant_ntxent(pts, tau))


def ratio_at_loss(run: "FlowRun", level: float) -> float:
    """Between/within ratio at the first recorded iterate whose loss is <= level (nan if never, or
    if the start is already below the level)."""
    if not run.loss or run.loss[0] <= level:
        return float("nan")
    for loss, ratio in zip(run.loss, run.ratio):
        if loss <= level:
            return ratio
    return float("nan")


def _embedding_and_grad(z_raw: Tensor, tau: float) -> tuple[Tensor, Tensor, Tensor]:
    z = z_raw / z_raw.norm(dim=1, keepdim=True)
    zz = z.detach().requires_grad_(True)
    loss = invariant_ntxent(zz, tau)
    (g,) = torch.autograd.grad(loss, zz)
    return z.detach(), -tangent(zz.detach(), g) * len(zz), loss.detach()


def run_flow(X: Tensor, labels: Tensor, z0: Tensor, model: nn.Module | None, tau: float, iters: int, lr: float,
             record=(), snapshots=(), name: str = "", X_clean: Tensor | None = None) -> FlowRun:
    """Gradient descent on the invariant NT-Xent from the start embedding z0 (n x d).

    ``model=None``: free points (eq. 14); otherwise the weights of ``model`` (eq. 15) through
    z(w) = z0 + model(X) - model_w0(X). ``record``/``snapshots``: iterations at which the numbers /
    the embedding and its negative gradient are kept. ``X_clean``: the points with their noise
    removed (P x_i); the run then records the invariance defect max_i ||f(w, x_i) - f(w, P x_i)||
    of the map f(w, x) = z0(x) + g(w, x) - g(w0, x), with z0(P x_i) = z0(x_i) (Theorem 4.2). It is 0
    at the start, stays 0 for the free points (x_i and P x_i share one embedding), and measures how
    far descent on w separates them.
    """
    tau = check_tau(tau)
    iters = V.check_int(iters, "iters", low=0)
    lr = V.check_positive(lr, "lr")
    V.check_embeddings(z0, "z0")
    if z0.shape[0] != X.shape[0]:
        raise ValueError(f"z0 has {z0.shape[0]} rows but X has {X.shape[0]}")
    if model is not None:
        with torch.no_grad():
            try:
                g0 = model(X)
            except RuntimeError as exc:
                raise ValueError(f"the network could not be applied to the data of shape {tuple(X.shape)}: {exc}") from None
        if g0.ndim != 2 or g0.shape[1] != z0.shape[1]:
            raise ValueError(f"the network's output dimension is {g0.shape[1] if g0.ndim == 2 else tuple(g0.shape)} "
                             f"but the embedding dimension is {z0.shape[1]}")
        params = [p for p in model.parameters() if p.requires_grad]
        embed = lambda: z0 + model(X) - g0  # noqa: E731
        if X_clean is not None:
            with torch.no_grad():
                g0c = model(X_clean)
            defect = lambda: float(((model(X) - g0) - (model(X_clean) - g0c)).norm(dim=1).max())  # noqa: E731
    else:
        u = z0.detach().clone().requires_grad_(True)
        params = [u]
        embed = lambda: u  # noqa: E731
        defect = lambda: 0.0  # noqa: E731
    run = FlowRun(name, lr)
    record, snapshots = set(record) | {0, iters}, set(snapshots)
    for it in range(iters + 1):
        z_raw = embed()
        if it in record or it in snapshots:
            z, v, loss = _embedding_and_grad(z_raw.detach(), tau)
            if it in record:
                run.iterations.append(it)
                run.ratio.append(between_within_ratio(z, labels))
                run.mmd.append(mmd_to_uniform(z))
                run.loss.append(float(loss))
                run.coherence.append(velocity_coherence(v, labels))
                if X_clean is not None:
                    with torch.no_grad():
                        run.defect.append(defect())
            if it in snapshots:
                run.snapshots[it] = (z.numpy(), v.numpy())
        if it == iters:
            break
        grads = torch.autograd.grad(invariant_ntxent(z_raw, tau, sphere=True), params)
        with torch.no_grad():     # plain gradient descent (eq. 14 / eq. 15); torch.optim's first step is slow to import
            for p, g in zip(params, grads):
                p -= lr * g
    return run


@dataclass
class GradientFlowResult:
    dim: int
    init: str
    tau: float
    delta: float
    iters: int
    X: np.ndarray
    labels: np.ndarray
    runs: list = field(default_factory=list)   # FlowRun
    plateau_loss: float = float("nan")         # four_point_loss(dim, tau)
    level: float = float("nan")                # loss level at which the ratios are compared

    def final(self, name: str) -> FlowRun:
        return next(r for r in self.runs if r.name == name)

    def to_dict(self) -> dict:
        return {"dim": self.dim, "init": self.init, "tau": self.tau, "delta": self.delta, "iters": self.iters,
                "plateau_loss": self.plateau_loss, "level": self.level,
                "runs": [dict({k: v for k, v in asdict(r).items() if k != "snapshots"},
                              ratio_at_level=ratio_at_loss(r, self.level)) for r in self.runs]}

    def to_markdown(self, header: bool = True) -> str:
        L = []
        if header:
            L += ["# Gradient flows with and without a network (Calder-Lee Figures 5-6, Theorems 4.2, 4.5)", ""]
        L += [f"## {self.dim}-D four-cluster data, start embedding: {self.init}", "",
              f"delta = {self.delta}, tau = {self.tau}, {self.iters} gradient-descent iterations, "
              f"{len(self.labels)} points. Loss of the symmetric four-point configuration (Theorem 3.2): "
              f"{self.plateau_loss:.5f}; ratios are compared where the loss first reaches {self.level:.5f}.", "",
              "| flow | lr | between/within at start | at loss level | at end | MMD^2 to uniform at end | loss at end | "
              "gradient coherence at end | invariance defect start -> end (Thm 4.2) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in self.runs:
            at = ratio_at_loss(r, self.level)
            at = f"{at:.3f}" if math.isfinite(at) else "n/a (starts below)"
            L.append(f"| {r.name} | {r.lr:g} | {r.ratio[0]:.3f} | {at} | {r.ratio[-1]:.3f} | "
                     f"{r.mmd[-1]:.2e} | {r.loss[-1]:.5f} | {r.coherence[-1]:.3f} | "
                     + (f"{r.defect[0]:.2e} -> {r.defect[-1]:.2e} |" if r.defect else "- |"))
        return "\n".join(L) + "\n"


def gradient_flows(dim: int = 2, init: str = "network", n_per: int = 25, delta: float = 0.1, tau: float = 0.2,
                   iters: int = 300, width: int = 64, lr_points: float = 5.0, lr_net: float = 0.5,
                   lr_mlp: float = 0.05, n_records: int = 30, snapshots=(0, 10, 30, 100, 300), seed: int = 0,
                   flows=("vanilla", "eq18", "mlp4", "eq18-invariant")) -> GradientFlowResult:
    """Run the flows of Figures 5-6 from one start embedding.

    Args:
        dim: 2 (Figure 5) or 3 (Figure 6, lower half): data and embedding dimension.
        init: ``"network"`` (the eq. 18 network's own initial output) or ``"worst-case"`` (eq. 17).
        lr_points, lr_net, lr_mlp: step sizes of the vanilla flow (eq. 14) and of the networks (eq. 15).
        flows: any of "vanilla", "eq18" (one hidden layer, eq. 18, tanh, width M), "mlp4" (4 layers),
            "eq18-invariant" (eq. 18 with the weights on the noise coordinates zero at the start, so that
            f(w0, x) = f(w0, P x) is invariant, eq. 17; Theorem 4.2: descent makes it lose the invariance).
    """
    if init not in ("network", "worst-case"):
        raise ValueError(f"init must be 'network' or 'worst-case', got {init!r}")
    tau = check_tau(tau)
    width = V.check_int(width, "width (M)", low=1)
    X, labels = four_cluster_data(n_per, dim, delta, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    nets = {"eq18": lambda: CalderLeeNet(dim, dim, width, "tanh", generator=torch.Generator().manual_seed(seed + 1)),
            "mlp4": lambda: make_mlp(dim, dim, seed=seed + 2), "eq18-invariant": lambda: _invariant_net(dim, width, seed)}
    X_clean = X.clone()
    X_clean[:, 1:] = 0.0          # the manifold is the first axis; the noise orthogonal to it is the perturbation
    if init == "network":
        with torch.no_grad():
            z0 = nets["eq18"]()(X)
    else:
        z0 = torch.randn(len(labels), dim, generator=gen, dtype=torch.float64)
    z0 = z0 / z0.norm(dim=1, keepdim=True)
    record = sorted({0} | {int(round(x)) for x in np.geomspace(1, max(iters, 1), n_records)})
    snaps = sorted({min(int(s), iters) for s in snapshots})
    res = GradientFlowResult(dim, init, tau, float(delta), iters, X.numpy(), labels.numpy())
    res.plateau_loss = four_point_loss(dim, tau)
    res.level = res.plateau_loss + 0.01
    for name in flows:
        if name == "vanilla":
            res.runs.append(run_flow(X, labels, z0, None, tau, iters, lr_points, record, snaps, "vanilla (eq. 14)",
                                     X_clean))
        elif name in nets:
            lr = lr_mlp if name == "mlp4" else lr_net
            label = {"eq18": "network eq. 18 (M=%d)" % width, "mlp4": "4-layer MLP",
                     "eq18-invariant": "eq. 18, invariant start (eq. 17)"}[name]
            res.runs.append(run_flow(X, labels, z0, nets[name](), tau, iters, lr, record, snaps, label, X_clean))
        else:
            raise ValueError(f"unknown flow {name!r}; use 'vanilla', 'eq18', 'eq18-invariant' or 'mlp4'")
    return res


def gradient_flow_suite(full: bool = False, seed: int = 0) -> list[GradientFlowResult]:
    """Figures 5-6: the 2-D data from the network's start and from the worst-case (eq. 17) start, and
    the 3-D variant. ``full`` uses 100 points per cluster and 2000 iterations."""
    kw = dict(n_per=100, iters=2000, snapshots=(0, 30, 200, 700, 2000)) if full else {}
    return [gradient_flows(2, "network", seed=seed, **kw), gradient_flows(2, "worst-case", seed=seed, **kw),
            gradient_flows(3, "network", seed=seed, **kw)]
