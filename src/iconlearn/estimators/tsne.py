"""SNE, t-SNE and parametric t-SNE as scikit-learn estimators (I-Con Theorems 1-2).

Each is one choice of p and q in the I-Con equation: p is a perplexity-calibrated Gaussian over
the 3 x perplexity nearest neighbours (:mod:`iconlearn.tsne.affinities`); q is a Student-t (t-SNE)
or Gaussian (SNE) kernel on the embedding. The optimiser and its defaults are openTSNE's (PCA
initialisation scaled to std 1e-4, learning rate N / exaggeration, early exaggeration 12 for 250
iterations, then 500 iterations, momentum 0.8, gains, step norm clipped at 5); the repulsion is
Barnes-Hut (van der Maaten 2014) or FFT interpolation (FIt-SNE, Linderman et al. 2019).
openTSNE's and scikit-learn's parameter names are both accepted (``n_iter`` / ``max_iter``,
``initialization`` / ``init``, ``negative_gradient_method`` / ``method``, ``theta`` / ``angle``);
where the two libraries differ, docs/tsne.md says which convention holds here.

    >>> from iconlearn import TSNE
    >>> tsne = TSNE(perplexity=30, random_state=0)
    >>> emb = tsne.fit_transform(X)                                   # doctest: +SKIP
    >>> new = tsne.transform(X_new)                                   # doctest: +SKIP
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_non_negative, validate_data
from torch import Tensor

from .. import _validation as V
from .._runtime import limit_threads, resolve_n_jobs
from ..tsne import _numba
from ..tsne import affinities as A
from ..tsne.cpu import TSNEDescent, threads_for
from ..tsne.gradients import reference_gradient, sne_gradient, tsne_exact_loss, tsne_gradient
from ..tsne.initialization import pca_init, random_init, spectral_init
from ..tsne.interpolation import DeviceGrids, Grid
from ..tsne.optimizer import GainsOptimizer, TorchDescent, optimize
from .base import EmbeddingEstimator, Timer, draw_seed, like_input, resolve_device, torch_seeded

#: ``negative_gradient_method="auto"`` on the CPU: Barnes-Hut below this many points, FFT from it
BH_MAX_N = 10_000
#: ``"auto"`` where there is no Barnes-Hut (the GPU, SNE): the exact O(N^2) sums up to this many points
EXACT_MAX_N = 1_000

_METHODS = {"auto": "auto", "exact": "exact", "bh": "bh", "barnes-hut": "bh", "barnes_hut": "bh",
            "fft": "fft", "interpolation": "fft"}
_METRICS = ("euclidean", "cosine", "precomputed")
_INITS = ("pca", "spectral", "random")


def _tensor_to_numpy(X):
    """Tensors (any device, half precision included) as numpy; anything else as it is."""
    if isinstance(X, Tensor):
        X = X.detach()
        return (X.float() if X.dtype in (torch.float16, torch.bfloat16) else X).cpu().numpy()
    return X


def _same(a, b) -> bool:
    """Equal as parameter values: identical objects, or equal strings / numbers (never arrays)."""
    scalar = (str, int, float, np.number)
    return a is b or (isinstance(a, scalar) and isinstance(b, scalar) and not isinstance(a, bool) and a == b)


def _one_name(name: str, value, default, alias: str, alias_value):
    """The value of a parameter with two names (openTSNE's and scikit-learn's): the one that is set,
    an error when both are set to different values."""
    if alias_value is None:
        return value
    if _same(value, default) or _same(value, alias_value):
        return alias_value
    raise ValueError(f"{name}={value!r} and {alias}={alias_value!r} name the same parameter "
                     f"({name} as openTSNE, {alias} as scikit-learn) and disagree: set only one")


def _generator(random_state) -> np.random.Generator:
    """A local generator from ``random_state``: None, a non-negative int, a numpy Generator or a
    RandomState (which is advanced by one draw, as scikit-learn's estimators advance it)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if random_state is None or isinstance(random_state, np.random.Generator) or (
            isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state must be None, a non-negative integer, a numpy Generator or a RandomState; "
                     f"got {random_state!r}")


class _Embedding(TransformerMixin, EmbeddingEstimator, auto_wrap_output_keys=None):
    """What the three estimators share: scikit-learn's input checks and tags. (No ``set_output``
    wrapping: it would make X positional, and ``fit_transform(affinities=P)`` needs no X.)"""

    _accepts_sparse = True

    def fit_transform(self, X=None, y=None, **fit_params):
        """Fit and return the embedding of X (numpy for numpy or sparse input, a tensor on the
        input's device for a tensor)."""
        return EmbeddingEstimator.fit_transform(self, X, y, **fit_params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accepts_sparse
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _validate(self, X, reset: bool, min_samples: int = 4):
        """X as a float32 / float64 numpy array or CSR matrix, checked by scikit-learn (2-D, finite,
        real, enough rows; when ``reset`` is False, as many features as in fit), and divided by
        ``input_scale_``: the power of two nearest the largest |x| that fit saw. The division is
        exact and changes no neighbour, perplexity or embedding; it keeps data multiplied by 1e30
        or 1e-30 from overflowing or underflowing in squared distances."""
        X = _tensor_to_numpy(X)
        X = validate_data(self, X, reset=reset, accept_sparse="csr" if self._accepts_sparse else False,
                          dtype=[np.float64, np.float32], ensure_min_samples=min_samples if reset else 1)
        if reset:
            top = float(abs(X).max()) if X.shape[0] * X.shape[1] else 0.0
            self.input_scale_ = float(np.ldexp(1.0, np.frexp(top)[1])) if top > 0 else 1.0
        if self.input_scale_ == 1.0:
            return X
        scaled = X.astype(np.float64) * (1.0 / self.input_scale_)  # in float64: float32 would overflow 1/scale
        return (scaled.tocsr() if sp.issparse(X) else scaled).astype(X.dtype)


class _NeighborEmbedding(_Embedding):
    """Shared machinery of :class:`SNE` and :class:`TSNE` (non-parametric: an embedding table)."""

    _symmetric = True

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, *, learning_rate="auto",
                 early_exaggeration=12.0, early_exaggeration_iter: int = 250, n_iter: int | None = None,
                 max_iter: int | None = None, exaggeration: float | None = None, dof: float = 1.0,
                 theta: float = 0.5, angle: float | None = None, n_interpolation_points: int = 3,
                 min_num_intervals: int = 50, ints_in_interval: float = 1.0, initialization="pca", init=None,
                 metric: str = "euclidean", initial_momentum: float = 0.8, final_momentum: float = 0.8,
                 max_grad_norm: float | None = None, max_step_norm: float | None = 5.0, n_jobs: int | None = -1,
                 negative_gradient_method: str = "auto", method: str | None = None, callbacks=None,
                 callbacks_every_iters: int = 50, device="auto", random_state=None, verbose: bool = False):
        self.n_components = n_components
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.n_iter = n_iter
        self.max_iter = max_iter
        self.exaggeration = exaggeration
        self.dof = dof
        self.theta = theta
        self.angle = angle
        self.n_interpolation_points = n_interpolation_points
        self.min_num_intervals = min_num_intervals
        self.ints_in_interval = ints_in_interval
        self.initialization = initialization
        self.init = init
        self.metric = metric
        self.initial_momentum = initial_momentum
        self.final_momentum = final_momentum
        self.max_grad_norm = max_grad_norm
        self.max_step_norm = max_step_norm
        self.n_jobs = n_jobs
        self.negative_gradient_method = negative_gradient_method
        self.method = method
        self.callbacks = callbacks
        self.callbacks_every_iters = callbacks_every_iters
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _accepts_sparse(self) -> bool:
        return self.metric != "precomputed"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = tags.input_tags.positive_only = self.metric == "precomputed"  # distances
        return tags

    # ------------------------------------------------------------------ parameters
    def _iterations(self) -> tuple[int, int]:
        """(early exaggeration iterations, iterations after them) from openTSNE's ``n_iter`` (after
        early exaggeration) or scikit-learn's ``max_iter`` (all of them)."""
        ee = V.check_int(self.early_exaggeration_iter, "early_exaggeration_iter", 0)
        n_iter = 500 if self.n_iter is None else V.check_int(self.n_iter, "n_iter", 0)
        if self.max_iter is None:
            return ee, n_iter
        total = V.check_int(self.max_iter, "max_iter", 0)
        if total < ee:
            raise ValueError(f"max_iter={total} counts all iterations, early exaggeration included (scikit-learn's "
                             f"meaning), so it must be at least early_exaggeration_iter={ee}")
        if self.n_iter is not None and n_iter + ee != total:
            raise ValueError(f"n_iter={n_iter} (openTSNE's meaning: iterations after early exaggeration) and "
                             f"max_iter={total} (scikit-learn's: all iterations) disagree, as "
                             f"early_exaggeration_iter={ee}; set only one of them")
        return ee, total - ee

    def _method_name(self) -> str:
        method = _one_name("negative_gradient_method", self.negative_gradient_method, "auto", "method", self.method)
        if not isinstance(method, str) or method.lower() not in _METHODS:
            raise ValueError(f"negative_gradient_method (method) must be one of {sorted(_METHODS)}, got {method!r}")
        return _METHODS[method.lower()]

    def _initialization(self):
        init = _one_name("initialization", self.initialization, "pca", "init", self.init)
        if isinstance(init, str):
            if init not in _INITS:
                raise ValueError(f"initialization must be one of {_INITS} or an (N x n_components) array, got {init!r}")
            return init
        return np.asarray(_tensor_to_numpy(init))

    def _callbacks(self) -> list:
        cbs = self.callbacks
        if cbs is None:
            return []
        cbs = [cbs] if callable(cbs) else cbs
        try:
            cbs = list(cbs)
        except TypeError:
            raise ValueError(f"callbacks must be a callable or a list of callables, got {self.callbacks!r}") from None
        for cb in cbs:
            if not callable(cb):
                raise ValueError(f"callbacks must be callables callback(iteration, kl, embedding), got {cb!r}")
        return cbs

    def _check_params(self) -> dict:
        """Every parameter checked and resolved, before the data is touched."""
        V.check_int(self.n_components, "n_components", 1)
        ee_iter, n_iter = self._iterations()
        for name in ("dof", "n_interpolation_points", "ints_in_interval"):
            V.check_positive(getattr(self, name), name)
        for name in ("initial_momentum", "final_momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        V.check_int(self.n_interpolation_points, "n_interpolation_points", 1)
        V.check_int(self.min_num_intervals, "min_num_intervals", 1)
        V.check_int(self.callbacks_every_iters, "callbacks_every_iters", 1)
        exaggeration = 1.0 if self.exaggeration is None else V.check_positive(self.exaggeration, "exaggeration")
        if isinstance(self.early_exaggeration, str) and self.early_exaggeration == "auto":
            early = max(12.0, exaggeration)  # openTSNE's "auto"
        else:
            early = V.check_positive(self.early_exaggeration, "early_exaggeration")
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            V.check_positive(self.learning_rate, "learning_rate")
        for name in ("max_grad_norm", "max_step_norm"):
            if getattr(self, name) is not None:
                V.check_positive(getattr(self, name), name)
        theta = _one_name("theta", self.theta, 0.5, "angle", self.angle)
        if isinstance(theta, bool) or not isinstance(theta, (int, float, np.number)) or not 0 <= theta <= 1:
            raise ValueError(f"theta (angle) must be a number in [0, 1] (0: exact sums), got {theta!r}")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        return dict(ee_iter=ee_iter, n_iter=n_iter, early=early, exaggeration=exaggeration, theta=float(theta),
                    method=self._method_name(), init=self._initialization(), callbacks=self._callbacks(),
                    n_jobs=resolve_n_jobs(self.n_jobs))

    def _resolve_method(self, requested: str, n: int, device: torch.device) -> str:
        raise NotImplementedError

    @property
    def _fft(self) -> dict:
        return dict(n_interp=self.n_interpolation_points, min_intervals=self.min_num_intervals,
                    ints_in_interval=self.ints_in_interval)

    # ------------------------------------------------------------------ fit
    def _affinities(self, X, n: int, affinities, neighbors, timer: Timer, device,
                    n_threads: int) -> tuple[A.SparseAffinities, float]:
        """P and the perplexity it was calibrated to."""
        if affinities is not None:
            with timer.stage("affinities"):
                P = A.from_matrix(affinities, symmetric=self._symmetric)
            if P.n_rows != n:
                raise ValueError(f"affinities are {P.n_rows} x {P.n_rows} but X has {n} rows")
            return P, float("nan")
        if neighbors is not None:
            dist, idx = (np.asarray(_tensor_to_numpy(a)) for a in neighbors)
            if dist.shape != idx.shape or dist.ndim != 2 or dist.shape[0] != n:
                raise ValueError(f"neighbors must be (distances, indices), both (N x k) with N={n}; "
                                 f"got {dist.shape} and {idx.shape}")
            if not np.isfinite(dist).all() or (dist < 0).any():
                raise ValueError("neighbor distances must be finite and non-negative")
            if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"neighbor indices must be integers in [0, {n})")
            perplexity = A.effective_perplexity(self.perplexity, dist.shape[1])
            top = float(dist.max()) if dist.size else 0.0
            scale = float(np.ldexp(1.0, np.frexp(top)[1])) if top > 0 else 1.0  # exact; no overflow when squared
            sq = (torch.as_tensor(dist, dtype=torch.float64) / scale) ** 2  # distances, squared as openTSNE does
            idx = torch.as_tensor(idx, dtype=torch.long)
        else:
            k = A.n_neighbors_for(float(V.check_positive(self.perplexity, "perplexity")), n)
            perplexity = A.effective_perplexity(self.perplexity, k)
            k = A.n_neighbors_for(perplexity, n)
            with timer.stage("neighbors"):
                sq, idx = A.nearest_neighbors(X, k, self.metric, device=device if device.type != "cpu" else None)
        sq, idx = sq.to(device), idx.to(device)  # calibration and symmetrisation on the GPU when there is one
        with timer.stage("affinities"):
            if self._symmetric:
                return A.joint_affinities(sq, idx, perplexity, n_threads), perplexity
            return A.conditional_affinities(sq, idx, perplexity, n, n_threads), perplexity

    def _init(self, init, X, P: A.SparseAffinities, n: int, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(init, str):
            y = V.check_array(init, "initialization", dtype=np.float64)
            if y.shape != (n, self.n_components):
                raise ValueError(f"initialization must have shape ({n}, {self.n_components}), got {y.shape}")
            return y
        if init == "pca" and (X is None or self.metric == "precomputed"):
            warnings.warn("PCA initialisation needs the data matrix; using spectral initialisation instead "
                          "(as openTSNE)", UserWarning, stacklevel=4)
            init = "spectral"
        if init == "pca":
            return pca_init(X, self.n_components, rng)
        if init == "spectral":
            M = P.to("cpu", torch.float64)
            return spectral_init(sp.csr_matrix((M.values.numpy(), (M.rows.numpy(), M.cols.numpy())), shape=(n, n)),
                                 self.n_components, rng)
        return random_init(n, self.n_components, rng)

    def _descent(self, y0: np.ndarray, P: A.SparseAffinities, method: str, theta: float, device, n_threads: int):
        raise NotImplementedError

    def fit(self, X=None, y=None, *, affinities=None, neighbors=None):
        """Embed X (N x D: numpy, torch or scipy sparse; N x N distances for ``metric="precomputed"``).
        ``affinities`` (N x N, dense or scipy sparse) or ``neighbors`` = (distances, indices)
        (N x k) replace the kNN and calibration steps."""
        plan = self._check_params()
        if X is None and affinities is None and neighbors is None:
            raise ValueError("fit needs X, or precomputed affinities= or neighbors=")
        Xa = self._validate(X, reset=True) if X is not None else None
        if Xa is not None and self.metric == "precomputed":
            if Xa.shape[0] != Xa.shape[1]:
                raise ValueError(f"metric='precomputed' needs a square N x N distance matrix, got shape {Xa.shape}")
            check_non_negative(Xa, f"{type(self).__name__}.fit with metric='precomputed'")
        n = (Xa.shape[0] if Xa is not None else A.from_matrix(affinities, True).n_rows if affinities is not None
             else int(np.asarray(_tensor_to_numpy(neighbors[1])).shape[0]))
        if n < 4:
            raise ValueError(f"t-SNE needs at least 4 points, got {n}")
        plan["threads"] = threads_for(n, plan["n_jobs"])
        with limit_threads(plan["threads"]):  # small inputs: one thread, more would only wait on each other
            return self._fit(Xa, n, affinities, neighbors, plan)

    def _fit(self, Xa, n: int, affinities, neighbors, plan: dict):
        device = resolve_device(self.device)
        method = self._resolve_method(plan["method"], n, device)
        rng = _generator(self.random_state)
        timer = Timer(self.verbose)
        P, perplexity = self._affinities(Xa, n, affinities, neighbors, timer, device, plan["threads"])
        with timer.stage("initialization"), limit_threads(1):  # small dense algebra: threads only wait
            y0 = self._init(plan["init"], Xa, P, n, rng)
        lr = lambda exag: n / exag if self.learning_rate == "auto" else float(self.learning_rate)  # noqa: E731
        stages = [(plan["early"], plan["ee_iter"], lr(plan["early"]), self.initial_momentum),
                  (plan["exaggeration"], plan["n_iter"], lr(plan["exaggeration"]), self.final_momentum)]
        descent = self._descent(y0, P.to(device), method, plan["theta"], device, plan["threads"])
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=plan["ee_iter"] + plan["n_iter"], desc=f"{type(self).__name__} ({method}, {device.type})")
        try:
            with timer.stage("optimization"):
                done, history = optimize(descent, stages, max_step_norm=self.max_step_norm,
                                         max_grad_norm=self.max_grad_norm, callbacks=plan["callbacks"],
                                         every=self.callbacks_every_iters, progress=progress)
                kl = descent.kl()
                embedding = descent.embedding
        finally:
            descent.close()
            if progress is not None:
                progress.close()
        if not np.isfinite(embedding).all() or not np.isfinite(kl):
            raise FloatingPointError("the embedding diverged (non-finite values); lower learning_rate")
        self.embedding_ = embedding.astype(Xa.dtype if Xa is not None else np.float32)
        self.kl_divergence_ = float(kl)
        self.kl_history_ = history
        self.n_iter_ = done
        self.perplexity_ = perplexity
        self.learning_rate_ = stages[-1][2]
        self.affinities_ = P
        self.timings_ = timer.timings
        self.method_ = method
        self.device_ = device
        if Xa is None:
            self.n_features_in_ = None
        self._X_fit = Xa
        return self

    # ------------------------------------------------------------------ transform
    def transform(self, X_new, *, perplexity: float = 5.0, k: int = 25, n_iter: int = 250,
                  learning_rate: float = 0.1, exaggeration: float = 1.5, momentum: float = 0.8,
                  max_grad_norm: float = 0.25):
        """Embed new points into the frozen reference embedding (openTSNE's ``transform`` and its
        defaults): p(j|i) over the k nearest training points, start at the median of those
        points' positions, then optimise only the new points' own KL(p(.|i) || q(.|i)). Every new
        point is placed independently of the others. For ``metric="precomputed"`` X_new holds the
        distances from the new points to the training points."""
        self._check_fitted("embedding_")
        if self._X_fit is None:
            raise ValueError("transform needs the training X; the model was fitted from precomputed affinities")
        Xn = self._validate(X_new, reset=False)
        with limit_threads(threads_for(Xn.shape[0], resolve_n_jobs(self.n_jobs))):
            Y = self._transform(Xn, perplexity, k, n_iter, learning_rate, exaggeration, momentum, max_grad_norm)
        return like_input(Y.astype(Xn.dtype), X_new)

    def _transform(self, Xn, perplexity, k, n_iter, learning_rate, exaggeration, momentum, max_grad_norm) -> np.ndarray:
        n_ref = self._X_fit.shape[0]
        k = min(V.check_int(k, "k", 2), n_ref)
        perp = min(V.check_positive(perplexity, "perplexity"), k - 1)
        P = A.reference_affinities(Xn, self._X_fit, perp, k, self.metric)
        device = self.device_
        dtype = torch.float64 if device.type == "cpu" else torch.float32  # CPU: rows independent to the last bit
        y_ref = torch.as_tensor(self.embedding_, dtype=dtype, device=device)
        cols = P.cols.view(Xn.shape[0], -1).to(device)
        Y = y_ref[cols].median(1).values.clone()
        P = P.to(device, dtype)
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
        return Y.cpu().numpy()


class TSNE(_NeighborEmbedding):
    """t-SNE (I-Con Theorem 2): joint Gaussian p over the kNN graph, Student-t q (``dof``, Cauchy at 1).

    Parameters take openTSNE's names and defaults; scikit-learn's names are accepted too, for the
    same meaning (set one of the two):

    Args:
        n_components: embedding dimension (Barnes-Hut and FFT: 1-3; more take the exact O(N^2) sums).
        perplexity: effective number of neighbours; 3 x perplexity neighbours are searched. Too
            large for the data (>= N - 1) it is lowered to (N - 1) / 3 with a warning, as openTSNE
            does (``perplexity_`` holds the value used).
        n_iter: iterations after early exaggeration (openTSNE, default 500). ``max_iter``:
            scikit-learn's count of *all* iterations, early exaggeration included.
        early_exaggeration / early_exaggeration_iter / exaggeration / initial_momentum /
            final_momentum / max_grad_norm / max_step_norm: openTSNE's optimiser and defaults;
            ``early_exaggeration="auto"`` is max(12, exaggeration).
        learning_rate: "auto" (N / exaggeration in each phase), or a number on openTSNE's scale;
            scikit-learn's gradient is 4 times openTSNE's, so its learning rates are 4 times smaller.
        dof: degrees of freedom of the Student-t q, (1 + d^2/dof)^(-(dof+1)/2).
        theta (``angle``): Barnes-Hut's opening angle (0: every pair summed exactly).
        negative_gradient_method (``method``): "bh" (Barnes-Hut; also "barnes_hut"), "fft"
            (interpolation, 1-3 components), "exact" (all pairs, O(N^2)) or "auto": on the CPU
            Barnes-Hut below 10,000 points and FFT above (openTSNE's rule); on the GPU, exact up
            to 1,000 points and FFT above.
        n_interpolation_points / min_num_intervals / ints_in_interval: the FFT grid (openTSNE).
        initialization (``init``): "pca" (std 1e-4), "spectral" (diffusion map of P; used
            instead of "pca" when there is no data matrix), "random" or an (N x n_components) array.
        metric: "euclidean", "cosine" (1 - cos, unsquared, as scikit-learn; openTSNE squares it)
            or "precomputed" (X is an N x N distance matrix; its entries are squared, as
            openTSNE does and scikit-learn does not).
        n_jobs: threads for the whole fit (torch, numba, BLAS, faiss; restored after): -1
            (default) all physical cores allowed to this process, -2 all but one, or a count.
            Below a few thousand points one thread is used, as more would only wait on each other.
        callbacks: callable(s) ``callback(iteration, kl, embedding)`` called every
            ``callbacks_every_iters`` iterations (iteration counted over both phases); returning
            True stops the optimisation there (openTSNE's contract).
        device: "auto" (CUDA when available), "cpu", "cuda", ...

    Fitted attributes: ``embedding_`` (float64 for float64 input, float32 otherwise),
    ``kl_divergence_`` (KL(P || Q) of the final embedding, as openTSNE and scikit-learn report it),
    ``kl_history_`` ((iteration, KL) every ``callbacks_every_iters`` iterations, always filled),
    ``n_iter_`` (all iterations run, scikit-learn's meaning), ``perplexity_``, ``learning_rate_``,
    ``affinities_``, ``method_``, ``timings_`` (seconds per stage).
    """

    _symmetric = True

    def _compiled(self, device: torch.device) -> bool:
        """Whether the compiled CPU path runs this fit (1-3 components on the CPU)."""
        return device.type == "cpu" and _numba.HAVE_NUMBA and self.n_components <= 3

    def _resolve_method(self, requested: str, n: int, device: torch.device) -> str:
        if self.n_components > 3 and requested in ("auto", "exact"):
            return "exact"
        if self.n_components > 3:
            raise ValueError(f"Barnes-Hut and the FFT repulsion support 1-3 components, got "
                             f"n_components={self.n_components}; use negative_gradient_method='exact' (O(N^2))")
        if requested == "auto":
            return ("bh" if n < BH_MAX_N else "fft") if self._compiled(device) else ("exact" if n <= EXACT_MAX_N else "fft")
        if requested == "bh" and not self._compiled(device):
            raise ValueError("Barnes-Hut runs on the CPU (with numba); on the GPU use negative_gradient_method='fft'")
        return requested

    def _descent(self, y0, P, method, theta, device, n_threads):
        if self._compiled(device):
            return TSNEDescent(y0, P, self.dof, "fft" if method == "fft" else "bh", 0.0 if method == "exact" else theta,
                               fft=self._fft, n_threads=n_threads)
        dtype = torch.float64 if method == "exact" else torch.float32
        P = P.to(device, dtype)
        dof, fft = self.dof, self._fft
        grids = DeviceGrids(**fft) if method == "fft" else lambda y: None
        return TorchDescent(torch.as_tensor(y0, dtype=dtype, device=device).contiguous(),
                            lambda y, exag, kl: tsne_gradient(y, P, dof, exag, method, fft, kl, grid=grids(y)))

    def exact_loss(self, X=None) -> float:
        """KL(P || Q) of the fitted embedding computed literally as ``icon_loss`` (small N only)."""
        self._check_fitted("embedding_")
        if self.embedding_.shape[0] > 5000:
            raise ValueError("exact_loss builds N x N matrices; use kl_divergence_ for N > 5000")
        y = torch.as_tensor(self.embedding_, dtype=torch.float64)
        return float(tsne_exact_loss(self.affinities_.to("cpu", torch.float64).to_dense(), y, self.dof))


class SNE(_NeighborEmbedding):
    """SNE (I-Con Theorem 1): conditional Gaussian p(j|i) over the kNN, Gaussian q(j|i) on the
    embedding; minimises mean_i KL(p(.|i) || q(.|i)), I-Con's row form, as is (Hinton and
    Roweis's cost is the sum over i: N times this ``kl_divergence_``). Same parameters as
    :class:`TSNE`; ``dof`` and ``theta`` are unused, and the repulsion is "exact" or "fft"
    ("auto": exact up to 1,000 points)."""

    _symmetric = False

    def _resolve_method(self, requested: str, n: int, device: torch.device) -> str:
        if requested == "bh":
            raise ValueError("SNE has no Barnes-Hut repulsion; use negative_gradient_method='fft' or 'exact'")
        if requested == "auto":
            return "exact" if n <= EXACT_MAX_N else "fft"
        if requested == "fft" and self.n_components > 3:
            raise ValueError(f"the FFT repulsion supports 1-3 components, got n_components={self.n_components}; "
                             "use negative_gradient_method='exact'")
        return requested

    def _descent(self, y0, P, method, theta, device, n_threads):
        dtype = torch.float64 if method == "exact" else torch.float32
        P = P.to(device, dtype)
        fft = self._fft
        return TorchDescent(torch.as_tensor(y0, dtype=dtype, device=device).contiguous(),
                            lambda y, exag, kl: sne_gradient(y, P, exag, method, fft, kl))


__all__ = ["SNE", "TSNE", "ParametricTSNE"]


class ParametricTSNE(_Embedding):
    """Parametric t-SNE (van der Maaten 2009) as I-Con: a network f maps inputs to the embedding and
    is trained on mini-batches with ``icon_loss`` between the batch's joint Gaussian p (perplexity
    calibrated inside the batch, symmetrised) and the Student-t joint q of f(x) — the same two
    distributions as :class:`TSNE`, restricted to a batch. ``transform`` is one forward pass.

    Args:
        hidden: widths of the MLP's hidden layers (ReLU, batch norm).
        batch_size / n_epochs (``max_iter``, as scikit-learn's MLPs count epochs) / learning_rate:
            Adam on shuffled batches.
        early_exaggeration / early_exaggeration_epochs: p multiplied in the attractive term early on.
        perplexity: lowered with a warning to what a batch (and the data) can reach.
        n_jobs: threads for the fit and transform (as :class:`TSNE`: one below 4,000 points per thread).
    Input: numpy, torch or scipy sparse (densified one batch at a time).
    Fitted: ``embedding_``, ``kl_divergence_`` (mean batch KL of the last epoch), ``n_iter_``
    (optimiser steps), ``network_``, ``loss_history_``, ``timings_``.
    """

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, *, hidden=(256, 256),
                 batch_size: int = 1024, n_epochs: int = 30, max_iter: int | None = None, learning_rate: float = 1e-3,
                 early_exaggeration: float = 4.0, early_exaggeration_epochs: int = 5, dof: float = 1.0,
                 n_jobs: int | None = -1, device="auto", random_state=None, verbose: bool = False):
        self.n_components = n_components
        self.perplexity = perplexity
        self.hidden = hidden
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_epochs = early_exaggeration_epochs
        self.dof = dof
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _network(self, d_in: int) -> torch.nn.Module:
        layers, width = [], d_in
        try:
            hidden = [V.check_int(h, "hidden width", 1) for h in self.hidden]
        except TypeError:
            raise ValueError(f"hidden must be a sequence of layer widths, got {self.hidden!r}") from None
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.BatchNorm1d(h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, self.n_components))
        return torch.nn.Sequential(*layers)

    @staticmethod
    def _batch_p(xb: Tensor, perplexity: float) -> Tensor:
        from ..supervisory.gaussian import gaussian_targets
        from ..distances import sq_distances

        b = xb.shape[0]
        cond = gaussian_targets(sq_distances(xb.double(), xb.double()), perplexity=min(perplexity, (b - 1) / 3))
        joint = (cond + cond.T) / (2.0 * b)
        return joint.to(xb.dtype)

    def _data(self, X):
        """The standardised data, whole on the device when dense; sparse rows stay on the host."""
        if sp.issparse(X):
            return X
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32, device=self.device_)

    def _rows(self, data, idx) -> Tensor:
        if not sp.issparse(data):
            return data[torch.as_tensor(idx, device=self.device_)]
        rows = (data[idx].toarray() - self.mean_) / self.scale_
        return torch.as_tensor(rows, dtype=torch.float32, device=self.device_)

    def fit(self, X, y=None):
        n_epochs = _one_name("n_epochs", self.n_epochs, 30, "max_iter", self.max_iter)
        V.check_int(n_epochs, "n_epochs (max_iter)", 1)
        V.check_int(self.n_components, "n_components", 1)
        V.check_int(self.batch_size, "batch_size", 4)
        V.check_int(self.early_exaggeration_epochs, "early_exaggeration_epochs", 0)
        V.check_positive(self.learning_rate, "learning_rate")
        V.check_positive(self.early_exaggeration, "early_exaggeration")
        V.check_positive(self.dof, "dof")
        Xa = self._validate(X, reset=True)
        with limit_threads(threads_for(Xa.shape[0], resolve_n_jobs(self.n_jobs))):
            return self._fit(Xa, n_epochs)

    def _fit(self, Xa, n_epochs: int):
        n = Xa.shape[0]
        bs = min(self.batch_size, n)
        perplexity = A.effective_perplexity(self.perplexity, A.n_neighbors_for(float(V.check_positive(
            self.perplexity, "perplexity")), bs))
        self.device_ = device = resolve_device(self.device)
        seed = draw_seed(_generator(self.random_state))
        gen = torch.Generator().manual_seed(seed)  # the batches
        timer = Timer(self.verbose)
        size = Xa.shape[0] * Xa.shape[1]
        self.mean_ = np.asarray(Xa.sum(0, dtype=np.float64)).ravel() / n
        mean_sq = float((Xa.multiply(Xa) if sp.issparse(Xa) else np.square(Xa, dtype=np.float64)).sum()) / size
        self.scale_ = float(np.sqrt(max(mean_sq - (self.mean_.sum() / Xa.shape[1]) ** 2, 0.0))) or 1.0  # std of all entries
        data = self._data(Xa)
        with torch_seeded(seed):  # the network's initial weights
            net = self._network(Xa.shape[1]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        steps, history = 0, []
        from tqdm.auto import tqdm

        with timer.stage("optimization"):
            for epoch in tqdm(range(n_epochs), desc="ParametricTSNE", disable=not self.verbose):
                perm = torch.randperm(n, generator=gen).numpy()
                exag = self.early_exaggeration if epoch < self.early_exaggeration_epochs else 1.0
                total = torch.zeros((), dtype=torch.float64, device=device)
                count = 0
                net.train()
                for s in range(0, n - bs + 1, bs):  # full batches only (the perplexity needs a size)
                    xb = self._rows(data, perm[s:s + bs])
                    P = self._batch_p(xb, perplexity)
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
                    total += kl.detach()
                    count += 1
                history.append(float(total) / max(count, 1))  # one host sync per epoch
        if not np.isfinite(history[-1]):
            raise FloatingPointError("the training diverged (non-finite loss); lower learning_rate")
        self.network_ = net.eval()
        self.kl_divergence_ = history[-1]
        self.loss_history_ = history
        self.n_iter_ = steps
        self.timings_ = timer.timings
        self.embedding_ = self._embed(Xa)
        return self

    @torch.no_grad()
    def _embed(self, Xa) -> np.ndarray:
        data, n = self._data(Xa), Xa.shape[0]
        out = [self.network_(self._rows(data, np.arange(s, min(s + 8192, n)))) for s in range(0, n, 8192)]
        return torch.cat(out).cpu().numpy().astype(Xa.dtype)

    def transform(self, X_new):
        """Embed new points with one forward pass of the trained network."""
        self._check_fitted("network_")
        Xn = self._validate(X_new, reset=False)
        with limit_threads(threads_for(Xn.shape[0], resolve_n_jobs(self.n_jobs))):
            return like_input(self._embed(Xn), X_new)
