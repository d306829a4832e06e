"""Proposition 2.1 (Calder-Lee): for an invariant map the NT-Xent loss depends on the data only
through the push-forward f#mu.

Two very different data sets in R^2, a clustered one (four Gaussian clusters along the first axis)
and a uniform one (the square [-4, 4]^2), are augmented by noise along the second coordinate,
T(x) = x + (0, e). The maps

    f_mu(x) = (cos 2 pi F_mu(x^1), sin 2 pi F_mu(x^1)),

with F_mu the CDF of the first coordinate under mu, are invariant (they ignore x^2) and push both
data sets forward to the uniform distribution on S^1. With the empirical CDF (ranks) the two
push-forwards of the samples are the same n-gon and the losses agree to rounding; with the
population CDF they agree up to sampling error. Controls: a non-invariant map (the direction of
x, which depends on x^2) and one fixed invariant map applied to both data sets (different
push-forwards) give different losses.

The statement itself, with its factor 2 and indicator: for an invariant f the two views embed to
the same point, so eq. 1 (the library's :class:`iconlearn.losses.GeneralizedNTXent`, defaults) becomes

    E_x log(1 + 2 e^{-1/tau} E_y[1_{x != y} exp(sim(f(x), f(y)) / tau)]):

the 2 counts h in {T, T'} (both views of y land on f(y)) and the indicator drops y = x, as written;
the denominator exp(sim(T(x), T'(x)) / tau) = e^{1/tau} remains, and Proposition 2.1 as printed leaves
it out. Both forms are evaluated against eq. 1 on the samples (``statement_rows``), together with the
variants without the 2 and without the indicator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.stats import norm

from .. import _validation as V
from ..losses import GeneralizedNTXent, InfoNCE
from ._common import check_taus
from .ntxent import generalized_ntxent

__all__ = ["InvarianceResult", "clustered_data", "uniform_data", "invariance", "proposition_21_statement"]

CENTERS = (-3.0, -1.0, 1.0, 3.0)
CLUSTER_STD = 0.25
BOX = 4.0


def clustered_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """n points: four Gaussian clusters (std 0.25) centred at -3, -1, 1, 3 on the first axis."""
    c = torch.tensor(CENTERS, dtype=torch.float64)[torch.randint(len(CENTERS), (n,), generator=gen)]
    x = CLUSTER_STD * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x[:, 0] += c
    return x


def uniform_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """n points uniform on the square [-4, 4]^2."""
    return BOX * (2 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 1)


def _cdf_clustered(t: np.ndarray) -> np.ndarray:
    return np.mean([norm.cdf(t, loc=c, scale=CLUSTER_STD) for c in CENTERS], axis=0)


def _cdf_uniform(t: np.ndarray) -> np.ndarray:
    return np.clip((t + BOX) / (2 * BOX), 0.0, 1.0)


def _to_circle(u: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(2 * math.pi * u), torch.sin(2 * math.pi * u)], dim=1)


def rank_map(x_ref: torch.Tensor):
    """The invariant map through the empirical CDF of the first coordinate of x_ref (ranks)."""
    ref = torch.sort(x_ref[:, 0]).values

    def f(x: torch.Tensor) -> torch.Tensor:
        r = torch.searchsorted(ref, x[:, 0].contiguous(), right=True).to(x.dtype)  # 1..n on the reference points
        return _to_circle((r - 0.5) / len(ref))
    return f


def cdf_map(cdf):
    """The invariant map through a population CDF of the first coordinate."""
    def f(x: torch.Tensor) -> torch.Tensor:
        return _to_circle(torch.as_tensor(cdf(x[:, 0].numpy()), dtype=x.dtype))
    return f


def direction_map(x: torch.Tensor) -> torch.Tensor:
    """A non-invariant control: the direction x / ||x|| (depends on the augmented coordinate)."""
    return x / x.norm(dim=1, keepdim=True)


def angle_map(x: torch.Tensor) -> torch.Tensor:
    """A fixed invariant control (x^1 -> angle x^1 * pi / 4): its push-forward depends on the data."""
    return _to_circle(x[:, 0] / 8.0)


@dataclass
class InvarianceRow:
    tau: float
    map: str
    loss_clustered: float     # eq. 4 on (f(T x), f(T' x)) pairs
    loss_uniform: float
    infonce_clustered: float  # SimCLR InfoNCE (iconlearn.losses.InfoNCE) on the same pairs
    infonce_uniform: float

    @property
    def gap(self) -> float:
        return abs(self.loss_clustered - self.loss_uniform)


@dataclass
class InvarianceResult:
    n: int
    aug_std: float
    rows: list = field(default_factory=list)
    max_gap_rank: float = float("nan")        # max |L_clustered - L_uniform| over tau, rank maps
    max_gap_cdf: float = float("nan")         # population-CDF maps (sampling error only)
    min_gap_controls: float = float("nan")    # smallest gap of the controls
    statement_rows: list = field(default_factory=list)  # per tau: |eq. 1 - each reading of Proposition 2.1|
    samples: dict = field(default_factory=dict)  # data and embeddings for the figure

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "samples"}
        d["rows"] = [dict(asdict(r), gap=r.gap) for r in self.rows]
        return d

    def to_markdown(self) -> str:
        lines = ["# Proposition 2.1: the loss of an invariant map ignores the data", "",
                 f"n = {self.n} points per data set, augmentation T(x) = x + (0, e), e ~ N(0, {self.aug_std}^2). "
                 "Loss = generalized NT-Xent (eq. 4) on the pairs (f(T x), f(T' x)); InfoNCE = the library's "
                 "SimCLR loss on the same pairs.", "",
                 "| tau | map | L clustered | L uniform | abs. gap | InfoNCE clustered | InfoNCE uniform |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in self.rows:
            lines.append(f"| {r.tau:g} | {r.map} | {r.loss_clustered:.8f} | {r.loss_uniform:.8f} | {r.gap:.2e} | "
                         f"{r.infonce_clustered:.6f} | {r.infonce_uniform:.6f} |")
        lines += ["", f"Invariant maps with the same push-forward (empirical CDF): largest gap **{self.max_gap_rank:.2e}** "
                      f"(rounding); through the population CDFs: {self.max_gap_cdf:.2e} (sampling error). Controls "
                      f"(non-invariant map, or one fixed map whose push-forwards differ): smallest gap {self.min_gap_controls:.2e}."]
        if self.statement_rows:
            lines += ["", "## The statement, with its factor 2 and indicator", "",
                      "abs(eq. 1 - right-hand side) for the invariant (empirical-CDF) map on the clustered data, where "
                      "RHS = E_x log(1 + c E_y[1_{x != y} e^{sim / tau}]) with c as listed:", "",
                      "| tau | eq. 1 | c = 2 (as printed) | c = 2 e^{-1/tau} (holds) | c = e^{-1/tau} (no factor 2) | "
                      "c = 2 e^{-1/tau}, y = x kept (no indicator) |", "| --- | --- | --- | --- | --- | --- |"]
            for r in self.statement_rows:
                lines.append(f"| {r['tau']:g} | {r['eq1']:.10f} | {r['as_printed']:.3e} | {r['holds']:.3e} | "
                             f"{r['no_factor_2']:.3e} | {r['no_indicator']:.3e} |")
            lines += ["", "The factor 2 and the indicator are right; the printed statement drops the e^{-1/tau} of eq. 1's "
                          "denominator (exp(sim(T(x), T'(x)) / tau) = e^{1/tau} for an invariant map)."]
        return "\n".join(lines) + "\n"


def proposition_21_statement(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> dict:
    """eq. 1 (the library's GeneralizedNTXent, defaults) for the views z1 = f(T x), z2 = f(T' x) of an
    invariant map, against the right-hand side of Proposition 2.1 in the readings of the module
    docstring (numpy, float64)."""
    if not torch.equal(z1, z2):
        raise ValueError("Proposition 2.1 is about invariant maps: the two views must embed to the same points")
    eq1 = float(GeneralizedNTXent(temperature=tau)(z1, z2))
    z = z1.numpy() / np.linalg.norm(z1.numpy(), axis=1, keepdims=True)
    e = np.exp(z @ z.T / tau)
    n = len(z)
    off = (e.sum(1) - np.diag(e)) / n  # E_y[1_{x != y} e^{sim / tau}] over the n items
    full = e.sum(1) / n  # y = x kept

    def rhs(c, inner):
        return float(np.mean(np.log1p(c * inner)))

    c = math.exp(-1.0 / tau)
    return {"tau": tau, "eq1": eq1, "as_printed": abs(eq1 - rhs(2.0, off)), "holds": abs(eq1 - rhs(2.0 * c, off)),
            "no_factor_2": abs(eq1 - rhs(c, off)), "no_indicator": abs(eq1 - rhs(2.0 * c, full))}


def invariance(n: int = 600, taus=(0.1, 0.5), aug_std: float = 0.5, seed: int = 0) -> InvarianceResult:
    """Evaluate Proposition 2.1 on a clustered and a uniform data set (see the module docstring)."""
    n = V.check_int(n, "n", low=4)
    taus = check_taus(taus)
    aug_std = V.check_positive(aug_std, "aug_std")
    gen = torch.Generator().manual_seed(seed)
    data = {"clustered": clustered_data(n, gen), "uniform": uniform_data(n, gen)}

    def views(x):
        e1, e2 = (aug_std * torch.randn(n, generator=gen, dtype=x.dtype) for _ in range(2))
        return x + torch.stack([torch.zeros_like(e1), e1], 1), x + torch.stack([torch.zeros_like(e2), e2], 1)

    pairs = {k: views(x) for k, x in data.items()}
    maps = {
        "invariant, empirical CDF": {k: rank_map(x) for k, x in data.items()},
        "invariant, population CDF": {"clustered": cdf_map(_cdf_clustered), "uniform": cdf_map(_cdf_uniform)},
        "control: fixed invariant map": {"clustered": angle_map, "uniform": angle_map},
        "control: non-invariant map": {"clustered": direction_map, "uniform": direction_map},
    }
    res = InvarianceResult(n, aug_std)
    for tau in taus:
        nce = InfoNCE(temperature=tau)
        for name, fs in maps.items():
            vals = {}
            for k, (a, b) in pairs.items():
                z1, z2 = fs[k](a), fs[k](b)
                vals[k] = (float(generalized_ntxent(z1, z2, tau)), float(nce(z1, z2)))
            res.rows.append(InvarianceRow(tau, name, vals["clustered"][0], vals["uniform"][0],
                                          vals["clustered"][1], vals["uniform"][1]))
    inv = maps["invariant, empirical CDF"]["clustered"]
    z1, z2 = inv(pairs["clustered"][0]), inv(pairs["clustered"][1])
    res.statement_rows = [proposition_21_statement(z1, z2, tau) for tau in taus]
    res.max_gap_rank = max(r.gap for r in res.rows if r.map.endswith("empirical CDF"))
    res.max_gap_cdf = max(r.gap for r in res.rows if r.map.endswith("population CDF"))
    res.min_gap_controls = min(r.gap for r in res.rows if r.map.startswith("control"))
    res.samples = {k: {"x": data[k].numpy(), "z": maps["invariant, empirical CDF"][k](pairs[k][0]).numpy()}
                   for k in data}
    return res
