"""SNE, t-SNE and parametric t-SNE as scikit-learn style estimators (I-Con Theorems 1-2).

Each is one choice of p and q in the I-Con equation: p is a perplexity-calibrated Gaussian over
the 3 x perplexity nearest neighbours (:mod:`iconlearn.tsne.affinities`); q is a Student-t (t-SNE)
or Gaussian (SNE) kernel on the embedding. Optimisation follows openTSNE's defaults (PCA
initialisation scaled to std 1e-4, learning rate N / exaggeration, early exaggeration 12 for
250 iterations, then 500 iterations, momentum 0.8 (openTSNE >= 1.0; 0.5 for the early phase in
the original t-SNE), gains, step norm clipped at 5), with the repulsion by FFT interpolation.

    >>> from iconlearn import TSNE
    >>> emb = TSNE(perplexity=30, random_state=0).fit_transform(X)   # doctest: +SKIP
    >>> new = tsne.transform(X_new)                                   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import _validation as V
from ..tsne import affinities as A
from ..tsne.gradients import reference_gradient, sne_gradient, tsne_exact_loss, tsne_gradient
from ..tsne.initialization import pca_init, random_init
from ..tsne.interpolation import Grid
from ..tsne.optimizer import GainsOptimizer, run_stage
from .base import EmbeddingEstimator, Timer, check_array, draw_seed, like_input, resolve_device, torch_seeded

EXACT_MAX_N = 1000  # "auto" uses the exact O(N^2) repulsion up to this many points (openTSNE: BH below 10k)


class _NeighborEmbedding(EmbeddingEstimator):
    """Shared machinery of :class:`SNE` and :class:`TSNE` (non-parametric: an embedding table)."""

    _symmetric = True

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, *, n_iter: int = 500,
                 early_exaggeration: float = 12.0, early_exaggeration_iter: int = 250,
                 exaggeration: float | None = None, learning_rate="auto", dof: float = 1.0,
                 initialization="pca", metric: str = "euclidean", initial_momentum: float = 0.8,
                 final_momentum: float = 0.8, max_step_norm: float | None = 5.0,
                 negative_gradient_method: str = "auto", n_interpolation_points: int = 3,
                 min_num_intervals: int = 50, ints_in_interval: float = 1.0, device="auto",
                 random_state=None, verbose: bool = False):
        self.n_components = n_components
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.exaggeration = exaggeration
        self.learning_rate = learning_rate
        self.dof = dof
        self.initialization = initialization
        self.metric = metric
        self.initial_momentum = initial_momentum
        self.final_momentum = final_momentum
        self.max_step_norm = max_step_norm
        self.negative_gradient_method = negative_gradient_method
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self, n: int) -> None:
        V.check_int(self.n_components, "n_components", 1)
        A.check_perplexity(self.perplexity, n)
        V.check_int(self.n_iter, "n_iter", 0)
        V.check_int(self.early_exaggeration_iter, "early_exaggeration_iter", 0)
        V.check_positive(self.early_exaggeration, "early_exaggeration")
        if self.exaggeration is not None:
            V.check_positive(self.exaggeration, "exaggeration")
        if self.learning_rate != "auto":
            V.check_positive(self.learning_rate, "learning_rate")
        V.check_positive(self.dof, "dof")
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}")
        if self.negative_gradient_method not in ("auto", "fft", "exact"):
            raise ValueError(f"negative_gradient_method must be 'auto', 'fft' or 'exact', got {self.negative_gradient_method!r}")
        if isinstance(self.initialization, str) and self.initialization not in ("pca", "random"):
            raise ValueError(f"initialization must be 'pca', 'random' or an (N x n_components) array, got {self.initialization!r}")

    def _method(self, n: int) -> str:
        method = self.negative_gradient_method
        if method == "auto":
            method = "exact" if n <= EXACT_MAX_N else "fft"
        if method == "fft" and self.n_components > 3:
            raise ValueError(f"the FFT repulsion supports 1-3 components, got n_components={self.n_components}; "
                             "use negative_gradient_method='exact' (O(N^2), small N only)")
        return method

    @property
    def _fft(self) -> dict:
        return dict(n_interp=self.n_interpolation_points, min_intervals=self.min_num_intervals,
                    ints_in_interval=self.ints_in_interval)

    # ------------------------------------------------------------------ fit
    def _affinities(self, X: np.ndarray | None, n: int, affinities, neighbors, timer: Timer,
                    device=None) -> A.SparseAffinities:
        if affinities is not None:
            with timer.stage("affinities"):
                P = A.from_matrix(affinities, symmetric=self._symmetric)
            if P.n_rows != n:
                raise ValueError(f"affinities are {P.n_rows} x {P.n_rows} but X has {n} rows")
            return P
        if neighbors is not None:
            dist, idx = neighbors
            dist = torch.as_tensor(np.asarray(dist), dtype=torch.float64)
            idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
            if dist.shape != idx.shape or dist.ndim != 2 or dist.shape[0] != n:
                raise ValueError(f"neighbors must be (distances, indices), both (N x k) with N={n}; "
                                 f"got {tuple(dist.shape)} and {tuple(idx.shape)}")
            if not torch.isfinite(dist).all() or (dist < 0).any():
                raise ValueError("neighbor distances must be finite and non-negative")
            if idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"neighbor indices must lie in [0, {n})")
            if self.perplexity >= dist.shape[1]:
                raise ValueError(f"perplexity ({self.perplexity}) must be smaller than the number of "
                                 f"neighbours given ({dist.shape[1]})")
            sq = dist ** 2  # distances, as openTSNE's precomputed neighbours
        else:
            k = A.n_neighbors_for(self.perplexity, n)
            with timer.stage("neighbors"):
                sq, idx = A.nearest_neighbors(X, k, self.metric, device=device if device.type != "cpu" else None)
        sq, idx = sq.to(device), idx.to(device)  # calibration and symmetrisation on the GPU when there is one
        with timer.stage("affinities"):
            if self._symmetric:
                return A.joint_affinities(sq, idx, self.perplexity)
            return A.conditional_affinities(sq, idx, self.perplexity, n)

    def _init(self, X: np.ndarray | None, n: int) -> np.ndarray:
        init = self.initialization
        if not isinstance(init, str):
            y = check_array(init, "initialization").astype(np.float64)
            if y.shape != (n, self.n_components):
                raise ValueError(f"initialization must have shape ({n}, {self.n_components}), got {y.shape}")
            return y
        if init == "pca" and X is not None:
            return pca_init(X, self.n_components, self.random_state)
        return random_init(n, self.n_components, self.random_state)

    def _gradient(self, P, method, exaggeration):
        raise NotImplementedError

    def fit(self, X=None, y=None, *, affinities=None, neighbors=None):
        """Embed X (N x D, numpy or torch). ``affinities`` (N x N, dense or scipy sparse) or
        ``neighbors`` = (distances, indices) (N x k) replace the kNN + calibration steps."""
        if X is None and affinities is None and neighbors is None:
            raise ValueError("fit needs X, or precomputed affinities= or neighbors=")
        Xa = check_array(X, "X") if X is not None else None
        n = Xa.shape[0] if Xa is not None else (A.from_matrix(affinities, True).n_rows if affinities is not None
                                                else int(np.asarray(neighbors[1]).shape[0]))
        if n < 4:
            raise ValueError(f"t-SNE needs at least 4 points, got {n}")
        self._check_params(n)
        method = self._method(n)
        device = resolve_device(self.device)
        timer = Timer(self.verbose)
        P = self._affinities(Xa, n, affinities, neighbors, timer, device).to(device, torch.float32)
        with timer.stage("initialization"):
            y0 = self._init(Xa, n)
        dtype = torch.float64 if method == "exact" else torch.float32
        Y = torch.as_tensor(y0, dtype=dtype, device=device).contiguous()
        opt = GainsOptimizer(Y)
        stages = [(self.early_exaggeration, self.early_exaggeration_iter, self.initial_momentum),
                  (self.exaggeration or 1.0, self.n_iter, self.final_momentum)]
        history = []
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=sum(s[1] for s in stages), desc=f"{type(self).__name__} ({method}, {device.type})")
        with timer.stage("optimization"):
            offset = 0
            for exag, n_it, momentum in stages:
                lr = n / exag if self.learning_rate == "auto" else float(self.learning_rate)
                grad_fn = self._gradient(P, method, exag)
                hist = run_stage(Y, opt, grad_fn, n_it, lr, momentum, progress=progress,
                                 max_step_norm=self.max_step_norm)
                history += [(it + offset, kl) for it, kl in hist]
                offset += n_it
        if progress is not None:
            progress.close()
        _, kl = self._gradient(P, method, 1.0)(Y, True)
        if not torch.isfinite(Y).all():
            raise FloatingPointError("the embedding diverged (non-finite values); lower learning_rate")
        self.embedding_ = Y.float().cpu().numpy()
        self.kl_divergence_ = float(kl)
        self.n_iter_ = offset
        self.n_features_in_ = Xa.shape[1] if Xa is not None else None
        self.affinities_ = P
        self.kl_history_ = history
        self.timings_ = timer.timings
        self.method_ = method
        self.device_ = device
        self._X_fit = Xa
        self._input = X
        return self

    # ------------------------------------------------------------------ transform
    def transform(self, X_new, *, perplexity: float = 5.0, k: int = 25, n_iter: int = 250,
                  learning_rate: float = 0.1, exaggeration: float = 1.5, momentum: float = 0.8,
                  max_grad_norm: float = 0.25):
        """Embed new points into the frozen reference embedding (openTSNE's ``transform`` and its
        defaults): p(j|i) over the k nearest training points, start at the median of those
        points' positions, then optimise only the new points' own KL(p(.|i) || q(.|i))."""
        self._check_fitted("embedding_")
        if self._X_fit is None:
            raise ValueError("transform needs the training X; the model was fitted from precomputed affinities")
        Xn = self._check_features(X_new, "X_new")
        n_ref = self._X_fit.shape[0]
        k = min(V.check_int(k, "k", 2), n_ref)
        perp = min(V.check_positive(perplexity, "perplexity"), k - 1)
        P = A.reference_affinities(Xn, self._X_fit, perp, k, self.metric)
        device = self.device_
        y_ref = torch.as_tensor(self.embedding_, dtype=torch.float32, device=device)
        cols = P.cols.view(Xn.shape[0], -1).to(device)
        Y = y_ref[cols].median(1).values.clone()
        P = P.to(device, torch.float32)
        method = "exact" if n_ref * Xn.shape[0] <= 4_000_000 or self.method_ == "exact" else "fft"
        grid = None
        if method == "fft":
            lo, hi = float(y_ref.min()), float(y_ref.max())
            margin = 0.1 * (hi - lo) + 1.0
            lo, width = lo - margin, hi - lo + 2 * margin
            n_boxes = max(self.min_num_intervals, int(width / self.ints_in_interval))
            grid = Grid(torch.full((y_ref.shape[1],), lo, device=device), width, min(n_boxes, 1000),
                        self.n_interpolation_points, y_ref.shape[1])
        dof = None if isinstance(self, SNE) else self.dof
        opt = GainsOptimizer(Y)
        for _ in range(V.check_int(n_iter, "n_iter", 0)):
            g = reference_gradient(Y, P, y_ref, dof, exaggeration, method, grid=grid)
            opt.step(Y, g, learning_rate, momentum, max_step_norm=None, max_grad_norm=max_grad_norm, recenter=False)
            if grid is not None:
                Y.clamp_(lo + 1e-3, lo + width - 1e-3)
        return like_input(Y.cpu().numpy(), X_new)


class TSNE(_NeighborEmbedding):
    """t-SNE (I-Con Theorem 2): joint Gaussian p over the kNN graph, Student-t q (``dof``, Cauchy at 1).

    Args:
        n_components: embedding dimension (the FFT repulsion supports 1-3).
        perplexity: effective number of neighbours (0 < perplexity < N - 1); 3 x perplexity
            neighbours are searched.
        n_iter / early_exaggeration / early_exaggeration_iter / exaggeration / learning_rate /
            initial_momentum / final_momentum / max_step_norm: openTSNE's optimiser and defaults.
        dof: degrees of freedom of the Student-t q, (1 + d^2/dof)^(-(dof+1)/2).
        initialization: "pca" (std 1e-4), "random" or an (N x n_components) array.
        negative_gradient_method: "fft" (interpolation, O(N)), "exact" (O(N^2)) or "auto"
            (exact up to 1,000 points).
        device: "auto" (CUDA when available), "cpu", "cuda", ...

    Fitted attributes: ``embedding_``, ``kl_divergence_``, ``n_iter_``, ``affinities_``,
    ``timings_`` (seconds per stage), ``kl_history_``.
    """

    _symmetric = True

    def _gradient(self, P, method, exaggeration):
        dof, fft = self.dof, self._fft
        return lambda Y, with_kl: tsne_gradient(Y, P, dof, exaggeration, method, fft, with_kl)

    def exact_loss(self, X=None) -> float:
        """KL(P || Q) of the fitted embedding computed literally as ``icon_loss`` (small N only)."""
        if self.embedding_.shape[0] > 5000:
            raise ValueError("exact_loss builds N x N matrices; use kl_divergence_ for N > 5000")
        y = torch.as_tensor(self.embedding_, dtype=torch.float64)
        return float(tsne_exact_loss(self.affinities_.to("cpu", torch.float64).to_dense(), y, self.dof))


class SNE(_NeighborEmbedding):
    """SNE (I-Con Theorem 1): conditional Gaussian p(j|i) over the kNN, Gaussian q(j|i) on the
    embedding; minimises mean_i KL(p(.|i) || q(.|i)), I-Con's row form, as is. Same optimiser as
    :class:`TSNE` (``dof`` is unused)."""

    _symmetric = False

    def _gradient(self, P, method, exaggeration):
        fft = self._fft
        return lambda Y, with_kl: sne_gradient(Y, P, exaggeration, method, fft, with_kl)


__all__ = ["SNE", "TSNE", "ParametricTSNE"]


class ParametricTSNE(EmbeddingEstimator):
    """Parametric t-SNE (van der Maaten 2009) as I-Con: a network f maps inputs to the embedding and
    is trained on mini-batches with ``icon_loss`` between the batch's joint Gaussian p (perplexity
    calibrated inside the batch, symmetrised) and the Student-t joint q of f(x) — the same two
    distributions as :class:`TSNE`, restricted to a batch. ``transform`` is one forward pass.

    Args:
        hidden: widths of the MLP's hidden layers (ReLU, batch norm).
        batch_size / n_epochs / learning_rate: Adam on shuffled batches.
        early_exaggeration / early_exaggeration_epochs: p multiplied in the attractive term early on.
    Fitted: ``embedding_``, ``kl_divergence_`` (mean batch KL of the last epoch), ``n_iter_``
    (optimiser steps), ``network_``, ``loss_history_``, ``timings_``.
    """

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, *, hidden=(256, 256),
                 batch_size: int = 1024, n_epochs: int = 30, learning_rate: float = 1e-3,
                 early_exaggeration: float = 4.0, early_exaggeration_epochs: int = 5, dof: float = 1.0,
                 device="auto", random_state=None, verbose: bool = False):
        self.n_components = n_components
        self.perplexity = perplexity
        self.hidden = hidden
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_epochs = early_exaggeration_epochs
        self.dof = dof
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _network(self, d_in: int) -> torch.nn.Module:
        layers, width = [], d_in
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.BatchNorm1d(h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, self.n_components))
        return torch.nn.Sequential(*layers)

    def _batch_p(self, xb: Tensor, perplexity: float) -> Tensor:
        from ..supervisory.gaussian import gaussian_targets
        from ..distances import sq_distances

        b = xb.shape[0]
        cond = gaussian_targets(sq_distances(xb.double(), xb.double()), perplexity=min(perplexity, (b - 1) / 3))
        joint = (cond + cond.T) / (2.0 * b)
        return joint.to(xb.dtype)

    def fit(self, X, y=None):
        Xa = check_array(X, "X")
        n = Xa.shape[0]
        if n < 4:
            raise ValueError(f"t-SNE needs at least 4 points, got {n}")
        V.check_int(self.n_components, "n_components", 1)
        A.check_perplexity(self.perplexity, n)
        V.check_int(self.batch_size, "batch_size", 4)
        V.check_int(self.n_epochs, "n_epochs", 1)
        V.check_positive(self.learning_rate, "learning_rate")
        V.check_positive(self.dof, "dof")
        device = resolve_device(self.device)
        seed = draw_seed(np.random.default_rng(self.random_state))
        gen = torch.Generator().manual_seed(seed)  # the batches
        timer = Timer(self.verbose)
        self.mean_ = Xa.mean(0)
        self.scale_ = float(Xa.std()) or 1.0
        Xt = torch.as_tensor((Xa - self.mean_) / self.scale_, device=device)
        with torch_seeded(seed):  # the network's initial weights
            net = self._network(Xa.shape[1]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        bs = min(self.batch_size, n)
        steps, history = 0, []
        from tqdm.auto import tqdm

        with timer.stage("optimization"):
            for epoch in tqdm(range(self.n_epochs), desc="ParametricTSNE", disable=not self.verbose):
                perm = torch.randperm(n, generator=gen).to(device)
                exag = self.early_exaggeration if epoch < self.early_exaggeration_epochs else 1.0
                total, count = 0.0, 0
                net.train()
                for s in range(0, n - bs + 1, bs):  # full batches only (the perplexity needs a size)
                    xb = Xt[perm[s:s + bs]]
                    P = self._batch_p(xb, self.perplexity)
                    Y = net(xb)
                    kl = tsne_exact_loss(P, Y, self.dof)
                    loss = kl
                    if exag != 1.0:  # exaggerated attraction: (exag - 1) * (-sum p log w) on top of the KL
                        from ..learned.kernels import StudentTKernel

                        log_w = StudentTKernel(self.dof).log_affinity(Y, Y)
                        loss = kl - (exag - 1.0) * (P * log_w.masked_fill(P == 0, 0.0)).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    steps += 1
                    total, count = total + kl.item(), count + 1
                history.append(total / max(count, 1))
        self.network_ = net.eval()
        self.n_features_in_ = Xa.shape[1]
        self.kl_divergence_ = history[-1]
        self.loss_history_ = history
        self.n_iter_ = steps
        self.timings_ = timer.timings
        self.device_ = device
        self.embedding_ = self._embed(Xa)
        return self

    @torch.no_grad()
    def _embed(self, Xa: np.ndarray) -> np.ndarray:
        Xt = torch.as_tensor((Xa - self.mean_) / self.scale_, device=self.device_)
        return torch.cat([self.network_(Xt[s:s + 8192]) for s in range(0, len(Xt), 8192)]).float().cpu().numpy()

    def transform(self, X_new):
        """Embed new points with one forward pass of the trained network."""
        self._check_fitted("network_")
        return like_input(self._embed(self._check_features(X_new, "X_new")), X_new)
