"""The I-Con identities as runnable checks (I-Con paper, appendix C; Theorem 3).

Each check evaluates both sides on random data in float64 with the library's code on one side
(core.icon_loss / reverse_icon_loss, the kernels, cluster_log_q, the presets) and a plain numpy
reference written from the formula on the other, and reports the largest deviation.

What holds exactly (q(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc, p(j|i) Gaussian with variance
sigma^2 over all k including i, mu_c the phi-weighted means, L_PKM = sum_ic phi_ic ||x_i - mu_c||^2):

* Theorem 6, exact form: sum_i KL(q_i || p_i) = (1/2 sigma^2) sum_ij ||x_i - x_j||^2 q(j|i)
  - sum_i H(q_i) + sum_i log Z_i.
* sum_ij ||x_i - x_j||^2 q(j|i) = 2 L_PKM (q is doubly stochastic when the rows of phi sum to 1), so
  c-SNE = L_PKM / sigma^2 - sum_i H(q_i) + const: the paper's factor 1/(2 sigma^2) is off by 2
  (its "constant" then varies with phi; measured below).
* Theorem 5: -sum_ij x_i.x_j q(j|i) = L_PKM - sum_i ||x_i||^2 (a constant shift).
* Corollary 2 holds with the opposite sign: +sum_ij ||x_i - x_j||^2 q(j|i) (= 2 L_PKM) has the
  k-means minimisers; the stated -sum_ij ... has them as maximisers (checked by enumerating every
  hard assignment of a small data set).
* Theorem 3: InfoNCE (iconlearn.losses.InfoNCE) equals the standard SimCLR formula and the
  I-Con KL (the one-hot p has zero entropy); with several positives the cross-entropy exceeds the
  KL by the entropy log(#positives); Calder-Lee's eq. 1 with plain sums is the same number.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .. import _validation as V
from ..core import icon_loss, reverse_icon_loss
from ..learned import GaussianKernel, cluster_log_q
from ..losses import GeneralizedNTXent, InfoNCE, SupCon

__all__ = ["IdentityCheck", "IdentitiesResult", "identities"]


@dataclass
class IdentityCheck:
    name: str
    statement: str
    deviation: float      # largest |lhs - rhs| over the trials
    scale: float          # typical size of the terms (for a relative reading)
    holds: bool
    note: str = ""


@dataclass
class IdentitiesResult:
    trials: int
    checks: list = field(default_factory=list)
    paper_constant_spread: float = float("nan")     # spread over phi of c-SNE - (L_PKM/(2 s^2) - sum H)
    exact_constant_spread: float = float("nan")     # same with L_PKM / s^2
    corollary2_agree: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        L = ["# The I-Con identities, evaluated", "",
             f"{self.trials} random draws each, float64; deviation = largest abs(lhs - rhs).", "",
             "| identity | statement | largest deviation | term scale | holds |", "| --- | --- | --- | --- | --- |"]
        for c in self.checks:
            cell = c.statement.replace("||", "‖").replace("|", "\\|")      # a bare | would split the table cell
            L.append(f"| {c.name} | {cell} | {c.deviation:.2e} | {c.scale:.2e} | {'yes' if c.holds else 'NO'} |")
        L += ["", "## The factor in Theorem 6", "",
              f"Over {self.trials} random assignments phi, c-SNE - (L_PKM / sigma^2 - sum_i H(q_i)) varies by "
              f"**{self.exact_constant_spread:.2e}** (a constant, sum_i log Z_i), while the paper's "
              f"c-SNE - (L_PKM / (2 sigma^2) - sum_i H(q_i)) varies by **{self.paper_constant_spread:.2e}**: "
              "the stated factor 1/(2 sigma^2) holds for sum_ij ||x_i - x_j||^2 q(j|i) = 2 L_PKM, not for L_PKM.", "",
              "## Corollary 2's sign (all hard assignments of a small data set enumerated)", ""]
        c = self.corollary2_agree
        if c:
            L += [f"{c['n']} points, {c['k']} clusters, {c['assignments']} assignments: the minimiser of "
                  f"+sum_ij ||x_i - x_j||^2 q(j|i) is the k-means minimiser: **{c['plus_min_is_kmeans']}**; the minimiser of "
                  f"-sum_ij ||x_i - x_j||^2 q(j|i) (as stated) is: **{c['minus_min_is_kmeans']}**; the minimiser of "
                  f"Theorem 5's -sum_ij x_i.x_j q(j|i) is: **{c['thm5_min_is_kmeans']}**."]
        for ch in self.checks:
            if ch.note:
                L.append(f"\n- {ch.name}: {ch.note}")
        return "\n".join(L) + "\n"


def _pkm(X: np.ndarray, phi: np.ndarray) -> float:
    """L_PKM = sum_ic phi_ic ||x_i - mu_c||^2 with mu_c = sum_i phi_ic x_i / sum_i phi_ic (numpy reference)."""
    mu = (phi.T @ X) / phi.sum(0)[:, None]
    return float((phi * ((X[:, None, :] - mu[None]) ** 2).sum(-1)).sum())


def _q_ref(phi: np.ndarray) -> np.ndarray:
    return (phi / phi.sum(0)) @ phi.T


def _sq(X: np.ndarray) -> np.ndarray:
    return ((X[:, None, :] - X[None]) ** 2).sum(-1)


def _nt_xent_ref(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """SimCLR's NT-Xent as a plain loop: 2N anchors, cosine similarity, the anchor itself excluded."""
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        den = sum(np.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        total += -np.log(np.exp(z[i] @ z[pos] / tau) / den)
    return total / (2 * n)


def _enumerate_corollary2(n: int = 8, k: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (n // 2, 2)), rng.normal(3, 1, (n - n // 2, 2))])
    D2, G = _sq(X), X @ X.T
    best = {"kmeans": (np.inf, None), "plus": (np.inf, None), "minus": (np.inf, None), "thm5": (np.inf, None)}
    count = 0
    for assign in itertools.product(range(k), repeat=n):
        a = np.array(assign)
        if len(np.unique(a)) < k or a[0] != 0:      # non-empty clusters, one labelling per partition
            continue
        count += 1
        phi = np.eye(k)[a]
        q = _q_ref(phi)
        vals = {"kmeans": _pkm(X, phi), "plus": float((D2 * q).sum()), "minus": -float((D2 * q).sum()),
                "thm5": -float((G * q).sum())}
        for key, v in vals.items():
            if v < best[key][0] - 1e-12:
                best[key] = (v, tuple(a))
    km = best["kmeans"][1]
    return {"n": n, "k": k, "assignments": count, "plus_min_is_kmeans": best["plus"][1] == km,
            "minus_min_is_kmeans": best["minus"][1] == km, "thm5_min_is_kmeans": best["thm5"][1] == km}


def identities(trials: int = 20, n: int = 40, dim: int = 5, clusters: int = 4, sigma: float = 1.3,
               tau: float = 0.3, seed: int = 0, tol: float = 1e-9) -> IdentitiesResult:
    """Evaluate the identities on ``trials`` random draws (see the module docstring)."""
    trials = V.check_int(trials, "trials", low=2)
    n = V.check_int(n, "n", low=4)
    clusters = V.check_int(clusters, "clusters", low=2)
    sigma = V.check_positive(sigma, "sigma")
    tau = V.check_positive(tau, "tau")
    rng = np.random.default_rng(seed)
    dev = {k: [] for k in ("thm6", "pkm2", "thm6pkm", "thm5", "nce_ref", "nce_kl", "eq1", "supcon")}
    scale = {k: [] for k in dev}
    exact_const, paper_const = [], []
    X = rng.normal(size=(n, dim)) * rng.uniform(0.5, 2.0, size=dim)     # one data set, phi varies
    Xt = torch.from_numpy(X)
    log_p = GaussianKernel(sigma=sigma, exclude_self=False)(Xt)          # p over all k, i included
    D2 = _sq(X)
    logZ = float(np.log(np.exp(-D2 / (2 * sigma**2)).sum(1)).sum())
    for _ in range(trials):
        phi = torch.softmax(torch.from_numpy(rng.normal(size=(n, clusters)) * 2), dim=1)
        log_q = cluster_log_q(phi)
        csne = float(reverse_icon_loss(log_p, log_q, reduction="sum"))
        q = _q_ref(phi.numpy())
        S = float((D2 * q).sum())
        H = float(-(q * np.log(q)).sum())
        pkm = _pkm(X, phi.numpy())
        dev["thm6"].append(abs(csne - (S / (2 * sigma**2) - H + logZ)))
        scale["thm6"].append(abs(csne))
        dev["pkm2"].append(abs(S - 2 * pkm))
        scale["pkm2"].append(abs(S))
        dev["thm6pkm"].append(abs(csne - (pkm / sigma**2 - H + logZ)))
        scale["thm6pkm"].append(abs(csne))
        exact_const.append(csne - (pkm / sigma**2 - H))
        paper_const.append(csne - (pkm / (2 * sigma**2) - H))
        dev["thm5"].append(abs(-float(((X @ X.T) * q).sum()) - (pkm - float((X**2).sum()))))
        scale["thm5"].append(abs(pkm))

        z1 = torch.from_numpy(rng.normal(size=(12, 6)))
        z2 = z1 + 0.5 * torch.from_numpy(rng.normal(size=(12, 6)))
        nce = float(InfoNCE(temperature=tau)(z1, z2))
        ref = _nt_xent_ref(z1.numpy(), z2.numpy(), tau)
        dev["nce_ref"].append(abs(nce - ref))
        scale["nce_ref"].append(abs(ref))
        # one positive: cross-entropy H(p, q) = KL(p || q), H(p) = 0 (I-Con Theorem 3)
        z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
        N = len(z1)
        own = torch.arange(2 * N)
        pos = torch.cat([torch.arange(N, 2 * N), torch.arange(N)])
        p1 = torch.zeros(2 * N, 2 * N, dtype=z.dtype)
        p1[own, pos] = 1.0
        from ..learned import CosineKernel
        lq = CosineKernel(tau)(z)
        dev["nce_kl"].append(abs(float(icon_loss(p1, lq)) - float(icon_loss(p1, lq, cross_entropy=True)))
                             + abs(float(icon_loss(p1, lq)) - nce))
        scale["nce_kl"].append(abs(nce))
        eq1 = float(GeneralizedNTXent(temperature=tau, negatives="both_views", expectation="sum")(z1, z2))
        dev["eq1"].append(abs(eq1 - nce))
        scale["eq1"].append(abs(nce))
        # several positives (SupCon): H(p, q) - KL(p || q) = mean_i log(#positives_i)
        labels = torch.from_numpy(rng.integers(0, 3, size=24))
        zs = torch.from_numpy(rng.normal(size=(24, 6)))
        P = (labels[:, None] == labels[None, :]).double()
        P.fill_diagonal_(0)
        keep = P.sum(1) > 0
        P = P[keep] / P[keep].sum(1, keepdim=True)
        lq = CosineKernel(tau)(zs)[keep]
        ce, kl = float(icon_loss(P, lq, cross_entropy=True)), float(icon_loss(P, lq))
        ent = float(np.log((P > 0).sum(1).numpy()).mean())
        dev["supcon"].append(abs((ce - kl) - ent) + abs(ce - float(SupCon(temperature=tau)(zs, labels))))
        scale["supcon"].append(abs(ce))
    statements = {
        "thm6": ("Theorem 6 (exact form)", "sum_i KL(q_i||p_i) = (1/2s^2) sum_ij d_ij^2 q(j|i) - sum_i H(q_i) + sum_i log Z_i", ""),
        "pkm2": ("sum d^2 q = 2 L_PKM", "sum_ij ||x_i - x_j||^2 q(j|i) = 2 L_PKM (weighted means)",
                 "needs q doubly stochastic: sum_i q(j|i) = sum_c phi_jc = 1"),
        "thm6pkm": ("Theorem 6 via L_PKM", "sum_i KL(q_i||p_i) = L_PKM / s^2 - sum_i H(q_i) + const",
                    "the paper writes 1/(2 s^2) L_PKM; that version fails (see below)"),
        "thm5": ("Theorem 5", "-sum_ij x_i.x_j q(j|i) = L_PKM - sum_i ||x_i||^2", ""),
        "nce_ref": ("Theorem 3: InfoNCE", "iconlearn InfoNCE = SimCLR NT-Xent (plain float64 loop)", ""),
        "nce_kl": ("Theorem 3: InfoNCE = KL", "InfoNCE = H(p, q) = KL(p || q) for the one-hot p (H(p) = 0)", ""),
        "eq1": ("Calder-Lee eq. 1", "GeneralizedNTXent(both views, plain sums) = InfoNCE", ""),
        "supcon": ("SupCon: CE = KL + H(p)", "H(p, q) - KL(p || q) = mean_i log #positives_i, and = SupCon", ""),
    }
    res = IdentitiesResult(trials)
    for key, (name, statement, note) in statements.items():
        d, s = float(max(dev[key])), float(np.mean(scale[key]))
        res.checks.append(IdentityCheck(name, statement, d, s, d <= tol * max(1.0, s), note))
    res.exact_constant_spread = float(np.ptp(exact_const))
    res.paper_constant_spread = float(np.ptp(paper_const))
    res.corollary2_agree = _enumerate_corollary2()
    return res
