"""I-Con clustering on frozen features (I-Con section 4), scikit-learn style.

The recipe of the paper's Table 2 row "I-Con", section 3.3 and section 4:

- supervisory p(j|i): uniform over the anchor's augmented views (when given) and its kNN
  neighbours (cosine, k = 3) propagated by walks on the kNN graph (``walks=1``: P + P^2; the
  default is 3), restricted to the batch and debiased with ``alpha_p`` (eq. 3.3.1);
- learned q(j|i): the shared cluster likelihood of the head's soft assignments (Table 1,
  k-means row), debiased with ``alpha_q`` (default 0.3); optionally the columns' assignments
  come from an EMA teacher;
- several linear (or MLP) heads trained at once with Adam; the one with the lowest loss is kept
  (no labels used); batches of anchors with sampled neighbours (and views).

:class:`HeadClusterer` is the training harness shared with the baselines of
:mod:`iconlearn.estimators.baselines` (SCAN, TEMI, plain I-Con): same features, same batches,
same heads, same selection; a subclass only defines its loss on a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .. import _validation as V
from ..core import SparseRows
from ..losses import IConClusteringLoss
from ..neighbors import knn
from ..nn.ema import EMA
from ..graph_partition import refine_partition
from ..nn import MultiHead, keep_heads
from ..nn.heads import fit_head_to_labels
from ..supervisory.graph import knn_matrix, restrict_to_batch, walk_matrix
from ..supervisory.pairs import same_group_targets
from ..supervisory.transforms import mix
from .base import Clusterer, Timer, draw_seed, resolve_device, resolve_seed
from .kmeans_init import kmeans_heads


UNIT_SPREAD = 10.0  # columns whose standard deviations differ by more than this are in different units


def normalize_features(X: np.ndarray, how: str | None, stats: dict | None = None) -> tuple[np.ndarray, dict]:
    """The representation that the kNN graph, the heads and the baselines all see.

    ``how``:

    - ``"l2"``: unit rows (the cosine geometry of sentence encoders such as MiniLM, which
      normalise their output themselves);
    - ``"standard"``: zero mean, unit variance per column (tabular measurements in different
      units, e.g. scikit-learn's wine: proline in the hundreds, hue near 1);
    - ``"scale"``: one factor for all entries (their root mean square), so the geometry is kept:
      pixels, CNN features and PCA scores, whose columns share a unit and whose small-variance
      columns are mostly noise that standardising would blow up (pbmc68k's PCA scores: the share
      of kNN neighbours in the same cell type falls from 0.74 to 0.63);
    - ``"center-l2"``: subtract the mean, then unit rows; ``None``: as given;
    - ``"auto"`` (default of the estimators): ``"l2"`` when the rows are already unit vectors,
      ``"standard"`` when the largest column standard deviation exceeds the median one by more
      than ``UNIT_SPREAD`` (10x: the data sets of docs/data.md whose columns share a unit stay
      below 4x, wine and breast_cancer lie above 380x), else ``"scale"``.

    ``stats`` from a fit are reused at predict (including auto's choice)."""
    stats = {} if stats is None else stats
    if how == "auto":
        if "auto" not in stats:
            norms = np.linalg.norm(X, axis=1)
            sd = X.std(0)
            sd = sd[sd > 1e-12 * max(float(sd.max()), 1e-300)]
            spread = float(sd.max() / np.median(sd)) if sd.size else 1.0
            stats["auto"] = "l2" if np.abs(norms - 1.0).max() < 1e-3 else \
                "standard" if spread > UNIT_SPREAD else "scale"
        how = stats["auto"]
    if how in (None, "none"):
        return X, stats
    if how == "scale":
        rms = stats.setdefault("rms", float(np.sqrt(np.mean(np.square(X, dtype=np.float64)))) or 1.0)
        return (X / rms).astype(X.dtype, copy=False), stats
    if how in ("center-l2", "standard"):
        mean = stats.setdefault("mean", X.mean(0))
        X = X - mean
    if how == "standard":
        std = stats.setdefault("std", X.std(0) + 1e-6)
        return X / std, stats
    if how in ("l2", "center-l2"):
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12), stats
    raise ValueError(f"normalize must be 'auto', 'l2', 'standard', 'scale', 'center-l2' or None, got {how!r}")


@dataclass
class Batch:
    """One training batch: rows = B anchors, then their sampled neighbours, then views of anchors.

    ``ids`` (R,) dataset index of each row; ``x`` (R x D) features; ``partners`` (B x m) rows of
    each anchor's positives (neighbours and views), the pairs SCAN/TEMI use; ``p`` the I-Con
    target from the B anchors to the R rows (None unless the method asks for it). The loss is
    taken over the anchors' rows only: B x R, not R x R.
    """

    ids: np.ndarray
    x: Tensor
    partners: Tensor
    p: object = None


def sample_rows(W: sp.csr_matrix, rows: np.ndarray, m: int, rng: np.random.Generator,
                cum: np.ndarray | None = None) -> np.ndarray:
    """m column indices per row, drawn from the row-stochastic sparse rows of W (B x m).
    ``cum`` is ``np.cumsum(W.data)``, computed once by a caller that samples many batches (it
    costs O(nnz), a batch only O(B m log nnz))."""
    indptr, start = W.indptr, W.indptr[rows]
    count = indptr[rows + 1] - start
    if (count == 0).any():
        raise ValueError("a point has no neighbours in the kNN graph")
    # cumulative probabilities within each row, searched per draw
    cum = np.cumsum(W.data) if cum is None else cum
    base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    total = cum[indptr[rows + 1] - 1] - base
    u = base[:, None] + rng.random((len(rows), m)) * total[:, None]
    pos = np.searchsorted(cum, u, side="right")
    pos = np.clip(pos, start[:, None], (start + count - 1)[:, None])
    return W.indices[pos]


class HeadClusterer(Clusterer):
    """Shared harness: multi-head training on frozen features with kNN-neighbour batches.

    Subclasses set ``_needs_target`` and implement :meth:`_head_losses` returning (H,) losses.
    """

    _needs_target = False
    _uses_teacher = False
    _cosine_heads = False  # weight-normalised last layer (TEMI's head)
    init = "random"  # subclasses with an ``init`` parameter override it
    n_init = "auto"  # heads started at k-means runs, pruned to n_heads ('auto': 4 per head)
    prune_steps = 50  # optimiser steps (whole epochs) after which the n_heads lowest-loss heads go on

    def _check_params(self, n: int) -> None:
        self._check_n_clusters(n)
        V.check_int(self.n_neighbors, "n_neighbors", 0)
        if self.n_neighbors >= n:
            raise ValueError(f"n_neighbors must be smaller than the number of points: k={self.n_neighbors}, n={n}")
        V.check_int(self.walks, "walks", 0)
        V.check_int(self.n_heads, "n_heads", 1)
        V.check_int(self.hidden, "hidden", 0)
        V.check_int(self.epochs, "epochs", 1)
        V.check_int(self.min_steps, "min_steps", 0)
        if self.max_steps is not None:
            V.check_int(self.max_steps, "max_steps", 1)
        V.check_int(self.prune_steps, "prune_steps", 1)
        if self.batch_size != "auto":
            V.check_int(self.batch_size, "batch_size", 2)
        V.check_int(self.neighbors_per_anchor, "neighbors_per_anchor", 0)
        V.check_positive(self.lr, "lr")
        if self.ema_decay is not None and not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be None or lie in [0, 1), got {self.ema_decay!r}")
        if self.init not in ("auto", "k-means", "random"):
            raise ValueError(f"init must be 'auto', 'k-means' or 'random', got {self.init!r}")
        if self.n_init != "auto":
            V.check_int(self.n_init, "n_init", 1)
        if self.init == "k-means" and self.hidden:
            raise ValueError("init='k-means' starts linear heads at k-means centroids; use hidden=0 or init='random'")
        if self.n_neighbors == 0 and not self._has_views:
            raise ValueError("no positives: n_neighbors=0 needs augmented views (fit(X, views=...))")

    def _batch_size(self, n: int) -> int:
        """Anchors per batch: ``batch_size``, or for ``"auto"`` n / 16 within [256, 1024] (small
        data sets get several steps per epoch instead of full-batch steps)."""
        if self.batch_size == "auto":
            return min(n, 1024, max(256, n // 16))
        return min(int(self.batch_size), n)

    # ------------------------------------------------------------------ data
    def _prepare(self, X, views):
        X = self._validate(X, reset=True)
        n = X.shape[0]
        self._has_views = views is not None
        if views is not None:
            views = np.asarray(views.detach().cpu() if isinstance(views, Tensor) else views)
            if views.ndim == 2:
                views = views[None]
            if views.ndim != 3 or views.shape[1:] != X.shape:
                raise ValueError(f"views must be (n_views x N x D) matching X {X.shape}, got shape {views.shape}")
            views = self._validate(views.reshape(-1, X.shape[1]), "views").reshape(views.shape)
        self._check_params(n)
        Xn, self.norm_stats_ = normalize_features(X, self.normalize)
        Vn = None if views is None else np.stack([normalize_features(v, self.normalize, self.norm_stats_)[0] for v in views])
        W = None
        if self.n_neighbors > 0:
            _, idx = knn(Xn, self.n_neighbors, metric="cosine")  # the graph sees what the heads see
            self.neighbors_ = idx
            W = walk_matrix(knn_matrix(idx, n), steps=1 + self.walks, binarize=self.binarize_walks)
        self.graph_ = W
        return X, Xn, Vn, W

    def _batches(self, n: int, W, n_views: int, rng: np.random.Generator):
        b = self._batch_size(n)
        perm = rng.permutation(n)
        cum = np.cumsum(W.data) if W is not None else None
        for s in range(0, n - b + 1 if n >= b else 1, b):
            anchors = perm[s:s + b]
            nbrs = sample_rows(W, anchors, self.neighbors_per_anchor, rng, cum) if (W is not None and self.neighbors_per_anchor) else None
            yield anchors, nbrs, rng.integers(0, n_views, size=(len(anchors), min(2, n_views))) if n_views else None

    def _make_batch(self, X: Tensor, Vw: Tensor | None, W, anchors, nbrs, view_ids) -> Batch:
        B = len(anchors)
        parts_ids, parts_x = [anchors], [X[torch.as_tensor(anchors, device=X.device)]]
        partners = []
        row = B
        if nbrs is not None:
            m = nbrs.shape[1]
            parts_ids.append(nbrs.T.ravel())
            parts_x.append(X[torch.as_tensor(nbrs.T.ravel(), device=X.device)])
            partners.append(row + np.arange(m)[None, :] * B + np.arange(B)[:, None])
            row += m * B
        if view_ids is not None:
            v = view_ids.shape[1]
            a_t = torch.as_tensor(anchors, device=X.device)
            for j in range(v):
                parts_ids.append(anchors)
                parts_x.append(Vw[torch.as_tensor(view_ids[:, j], device=X.device), a_t])
            partners.append(row + np.arange(v)[None, :] * B + np.arange(B)[:, None])
        ids = np.concatenate(parts_ids)
        partners_t = torch.as_tensor(np.concatenate(partners, 1) if partners else np.zeros((B, 0), np.int64),
                                     device=X.device)
        batch = Batch(ids, torch.cat(parts_x), partners_t)
        if self._needs_target:
            batch.p = self._target(ids, B, W, X.device)
        return batch

    def _target(self, ids: np.ndarray, n_anchors: int, W, device):
        """p from each anchor (the first ``n_anchors`` rows) to the batch's rows: its augmented
        views (same dataset id) and its kNN-walk neighbours present in the batch."""
        dtype = torch.float32
        parts, weights = [], []
        if self._has_views:
            ids_t = torch.as_tensor(ids, device=device)
            own = torch.arange(n_anchors, device=device)
            parts.append(same_group_targets(ids_t[:n_anchors], ids_t, self_columns=own, dtype=dtype))
            weights.append(1.0)
        if W is not None:
            sr = restrict_to_batch(W, ids[:n_anchors], ids, device=device)
            parts.append(type(sr)(sr.values.to(dtype), sr.indices))
            weights.append(1.0)
        return parts[0] if len(parts) == 1 else mix(parts, weights)

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None, views=None):
        """Train the heads on features X (N x D); ``views`` (n_views x N x D) are features of
        augmented copies (optional). ``y`` is ignored (present for the scikit-learn API)."""
        if self.n_clusters == 1:  # the trivial answer, as scikit-learn's KMeans gives: no graph, no training
            return self._fit_one_cluster(X)
        timer = Timer()
        X_raw, Xn, Vn, W = self._prepare(X, views)
        device = resolve_device(self.device)
        seed = resolve_seed(self.random_state)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(draw_seed(rng))
        n, d = Xn.shape
        Xt = torch.as_tensor(Xn, device=device)
        Vt = None if Vn is None else torch.as_tensor(Vn, device=device)
        kmeans_start = self.init == "k-means" or (self.init == "auto" and not self.hidden)
        n_start = max(self.n_heads, 4 * self.n_heads if self.n_init == "auto" else int(self.n_init)) \
            if kmeans_start else self.n_heads
        heads = MultiHead(d, self.n_clusters, n_start, self.hidden, generator=gen, cosine=self._cosine_heads)
        if kmeans_start:
            w, b = kmeans_heads(X_raw, Xn, self.n_clusters, [draw_seed(rng) for _ in range(n_start)])
            with torch.no_grad():
                heads.out.weight.copy_(torch.as_tensor(w))
                heads.out.bias.copy_(torch.as_tensor(b)[:, None, :])
        heads = heads.to(device)
        teacher = EMA(heads, float(self.ema_decay)) if (self.ema_decay is not None or self._uses_teacher) else None
        opt = torch.optim.Adam(heads.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, n // self._batch_size(n))
        epochs = max(self.epochs, -(-self.min_steps // steps_per_epoch))  # small data: at least min_steps
        if self.max_steps is not None:  # large data: at most max_steps (whole epochs, at least one)
            epochs = min(epochs, max(1, self.max_steps // steps_per_epoch))
        step_every = max(1, epochs // 3)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_every, gamma=0.5)
        self._init_state(device)
        from tqdm.auto import tqdm

        history = []
        prune_at = min(-(-self.prune_steps // steps_per_epoch), epochs) if n_start > self.n_heads else -1
        bar = tqdm(range(epochs), desc=type(self).__name__, disable=not self.verbose, unit="epoch")
        for epoch in bar:
            epoch_loss = self._epoch(heads, teacher, opt, Xt, Vt, W, rng)
            sched.step()
            history.append(epoch_loss)
            if epoch + 1 == prune_at:  # the n_heads starts with the lowest loss go on
                keep = np.argsort(epoch_loss, kind="stable")[:self.n_heads]
                keep_heads(heads, keep, opt, teacher)
                self.start_losses_ = epoch_loss
                history = [h[keep] for h in history]
            bar.set_postfix(loss=float(history[-1].min()))
        # select on one more pass with the final weights (same batches for every head, no updates)
        with torch.no_grad():
            self.head_losses_ = self._epoch(heads, teacher, None, Xt, Vt, W, np.random.default_rng(seed))
        self.best_head_ = int(np.argmin(self.head_losses_))
        self.loss_history_ = np.array(history)
        self.heads_ = heads.eval()
        self.device_ = device
        self.n_features_in_ = d
        self.labels_ = self._refine(Xt, Xn, W, seed)
        if self.labels_ is None:
            self.labels_ = self.predict(X)
        self.fit_time_ = timer.elapsed()
        return self

    def _refine(self, Xt: Tensor, Xn: np.ndarray, W, seed: int) -> np.ndarray | None:
        """A last stage after head selection that may return the final labels (none in the shared
        harness)."""
        return None

    def _epoch(self, heads, teacher, opt, Xt, Vt, W, rng) -> np.ndarray:
        """One pass over the data in batches; trains when ``opt`` is given. Mean loss per head."""
        running = torch.zeros(heads.n_heads, device=Xt.device)
        n_batches = 0
        for anchors, nbrs, view_ids in self._batches(len(Xt), W, 0 if Vt is None else Vt.shape[0], rng):
            batch = self._make_batch(Xt, Vt, W, anchors, nbrs, view_ids)
            probs = self._assign(heads(batch.x), teacher=False)
            probs_t = self._assign(teacher(batch.x), teacher=True) if teacher is not None else None
            losses = self._head_losses(probs, probs_t, batch)
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()
                opt.step()
                if teacher is not None:
                    teacher.update(heads)
            running += losses.detach()
            n_batches += 1
        return (running / max(n_batches, 1)).cpu().numpy()

    def _fit_one_cluster(self, X):
        """n_clusters=1: every point in cluster 0, by a head with one output (softmax 1 everywhere)."""
        X = self._validate(X, reset=True)
        self._check_n_clusters(len(X))
        _, self.norm_stats_ = normalize_features(X, self.normalize)
        self.heads_ = MultiHead(X.shape[1], 1, 1, 0, generator=torch.Generator().manual_seed(0)).eval()
        self.best_head_, self.head_losses_, self.loss_history_ = 0, np.zeros(1), np.zeros((0, 1))
        self.device_, self.fit_time_ = torch.device("cpu"), 0.0
        self.labels_ = np.zeros(len(X), dtype=np.int64)
        return self

    def _init_state(self, device) -> None:
        pass

    def _assign(self, logits: Tensor, teacher: bool) -> Tensor:
        """Soft assignments from logits (subclasses may use temperatures)."""
        return torch.softmax(logits, dim=-1)

    def _head_losses(self, probs: Tensor, probs_t: Tensor | None, batch: Batch) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def heads_proba(self, X) -> np.ndarray:
        """Soft cluster assignments of every kept head (n_heads x N x n_clusters, float64, as
        scikit-learn's GaussianMixture); ``best_head_`` indexes the selected one."""
        self._check_fitted("heads_")
        X = self._validate(X)
        Xn, _ = normalize_features(X, self.normalize, self.norm_stats_)
        out = []
        for s in range(0, len(Xn), 8192):
            xb = torch.as_tensor(Xn[s:s + 8192], device=self.device_)
            out.append(self._assign(self.heads_(xb), teacher=False).float().cpu())
        return torch.cat(out, 1).double().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Soft cluster assignments (N x n_clusters) of the selected head."""
        return self.heads_proba(X)[self.best_head_]

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(1)

    def fit_predict(self, X, y=None, views=None) -> np.ndarray:
        return self.fit(X, views=views).labels_


class IConClustering(HeadClusterer):
    """I-Con clustering (section 4): p from kNN walks (+ augmentations), q the shared cluster
    likelihood, both debiased; several heads, the lowest-loss one kept.

    Args:
        n_clusters: number of clusters (1 puts every point in cluster 0 without training, as
            scikit-learn's KMeans does).
        n_neighbors: k of the cosine kNN graph (paper: 3); 0 uses augmented views only.
        walks: how many extra steps the walks on the kNN graph take after the first: 0 gives
            p = P (neighbours only), 1 gives P + P^2 (paper: 1), 3 (default) gives P + ... + P^4.
        binarize_walks: uniform over the reachable points instead of the walk counts.
        alpha_p, alpha_q: debiasing weights on p and on q (paper recommends 0.6-0.8; defaults
            0.6 and 0.3).
        ema_decay: None, or the decay of an EMA teacher whose assignments form q's columns.
        n_heads: heads trained at once; hidden: 0 for linear heads, else the MLP width.
        epochs, batch_size (anchors per batch; 'auto': n / 16 within [256, 1024]),
        neighbors_per_anchor (sampled from the walk graph and added to the batch), lr (Adam, halved
        every third of the epochs), weight_decay.
        normalize: feature preprocessing, seen by the kNN graph and the heads alike ('auto', 'l2',
            'scale', 'standard', 'center-l2', None; :func:`normalize_features`): 'auto' keeps
            unit-norm rows (sentence encoders), standardises columns in different units (tabular
            data) and rescales anything else as a whole (pixels, CNN features, PCA scores).
        init: 'k-means' starts each linear head at a spherical k-means run
            (:mod:`iconlearn.estimators.kmeans_init`), so the loss refines k-means partitions and the
            lowest-loss head is kept; 'random' is the plain initialisation; 'auto' (default) is
            'k-means' for linear heads and 'random' for MLP heads.
        n_init: with a k-means start, heads are started at this many k-means runs ('auto': 4 per
            kept head) and trained together; after ``prune_steps`` optimiser steps (rounded up to whole
            epochs; default 50) the ``n_heads`` with the lowest loss go on (no labels used). Ignored
            for random starts.
        device: 'auto', 'cpu' or 'cuda'. random_state: seed. verbose: progress bar.
        min_steps: optimiser steps at least (default 300), whatever the data set's size: epochs are
            raised to reach it.
        prune_steps: optimiser steps before the k-means starts are pruned to ``n_heads``.
        max_steps: optimiser steps at most (default 2,000; None: no cap): epochs are lowered to
            stay within it, at least one. A linear head's few parameters need about as many steps
            at any N, while an epoch grows with N: the cap bounds the time of very large fits
            (1,000,000 points: 2 epochs instead of 20) and leaves data sets up to about 100,000
            points (20 epochs of 1,024 anchors) as they are.
        refine: after training, merge-split moves on the selected head's partition that lower the
            exact I-Con loss of the hard partition (:mod:`iconlearn.graph_partition`); they join
            large classes that the heads cut in two. ``labels_`` is the refined partition and the
            head is re-fitted to it for ``predict``.

    The defaults ``walks=3, alpha_q=0.3`` differ from the paper's recipe (walks 1, alpha 0.6-0.8,
    tuned on balanced ImageNet). For a hard partition the loss charges each point log n_c (its
    cluster's size), a prior towards equal cluster sizes; longer walks spread p over more of
    each cluster and a smaller alpha_q makes cut kNN edges dearer (about log(N / alpha_q) each),
    so both weaken that prior relative to the graph. How far each default moves the results on
    balanced and imbalanced data is measured in BENCHMARKS.md (docs/clustering.md explains it).

    Fitted attributes: ``labels_``, ``best_head_``, ``head_losses_``, ``loss_history_``,
    ``neighbors_`` (N x k kNN indices), ``fit_time_`` (seconds). ``heads_proba(X)`` gives every
    kept head's assignments.
    """

    _needs_target = True

    #: I-Con section 4 as the paper states it (linear head on frozen features): Adam, batch 4,096,
    #: learning rate 1e-3 halved every 10 of 30 epochs, no feature normalisation, cosine kNN with
    #: k = 3, walks of length 1, debiasing on both sides (alpha 0.6, the low end of the recommended
    #: 0.6-0.8), two neighbours sampled per image, one randomly initialised head, no refinement.
    PAPER_RECIPE = dict(n_neighbors=3, walks=1, alpha_p=0.6, alpha_q=0.6, epochs=30, batch_size=4096, lr=1e-3,
                        normalize=None, init="random", n_heads=1, min_steps=0, neighbors_per_anchor=2, refine=False,
                        max_steps=None)

    @classmethod
    def paper(cls, n_clusters: int = 10, **overrides) -> "IConClustering":
        """The paper's own setting (:attr:`PAPER_RECIPE`), with ``overrides`` (e.g. ``random_state``)."""
        return cls(n_clusters, **{**cls.PAPER_RECIPE, **overrides})

    def __init__(self, n_clusters: int = 10, n_neighbors: int = 3, walks: int = 3, binarize_walks: bool = False,
                 alpha_p: float = 0.6, alpha_q: float = 0.3, ema_decay: float | None = None, n_heads: int = 5,
                 hidden: int = 0, epochs: int = 20, batch_size: int | str = "auto", neighbors_per_anchor: int = 2,
                 lr: float = 1e-2, weight_decay: float = 0.0, normalize: str | None = "auto", init: str = "auto",
                 n_init: int | str = "auto", device="auto", random_state: int | None = None, verbose: bool = False,
                 min_steps: int = 300, prune_steps: int = 50, refine: bool = True, max_steps: int | None = 2000):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.walks = walks
        self.binarize_walks = binarize_walks
        self.alpha_p = alpha_p
        self.alpha_q = alpha_q
        self.ema_decay = ema_decay
        self.n_heads = n_heads
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.neighbors_per_anchor = neighbors_per_anchor
        self.lr = lr
        self.weight_decay = weight_decay
        self.normalize = normalize
        self.init = init
        self.n_init = n_init
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.min_steps = min_steps
        self.prune_steps = prune_steps
        self.refine = refine
        self.max_steps = max_steps

    def _check_params(self, n: int) -> None:
        super()._check_params(n)
        self._loss = IConClusteringLoss(self.alpha_p, self.alpha_q)

    def _refine(self, Xt: Tensor, Xn: np.ndarray, W, seed: int) -> np.ndarray | None:
        """Merge-split moves on the selected head's hard partition that lower the exact I-Con loss
        (:func:`iconlearn.graph_partition.refine_partition`). The refined partition is ``labels_``;
        the selected head is re-fitted to it (multinomial logistic regression), so ``predict`` and
        ``predict_proba`` of new points follow it."""
        self.refine_moves_ = 0
        if not self.refine or W is None:
            return None
        with torch.no_grad():
            labels = self.heads_(Xt)[self.best_head_].argmax(1).cpu().numpy()
        refined, self.refine_moves_ = refine_partition(labels, W, Xn, self.alpha_p, self.alpha_q, random_state=seed)
        if self.refine_moves_:
            fit_head_to_labels(self.heads_, self.best_head_, Xt, torch.as_tensor(refined, device=Xt.device))
        return refined

    def _head_losses(self, probs, probs_t, batch) -> Tensor:
        B = batch.partners.shape[0]
        cols = probs if probs_t is None else probs_t
        if isinstance(batch.p, SparseRows):  # all heads in one fused pass
            return self._loss.per_head(probs[:, :B], batch.p, cols)
        return torch.stack([self._loss(probs[h, :B], target=batch.p, probs_ref=cols[h])
                            for h in range(probs.shape[0])])
