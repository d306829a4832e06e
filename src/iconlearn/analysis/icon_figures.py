"""Two figures of the I-Con paper on our data.

* :func:`tsne_features` (Figure 1: t-SNE of the pixels beside t-SNE of contrastive features): a
  short SimCLR run of the library's own pretraining loop (:func:`iconlearn.train.pretrain`, cosine
  kernel, InfoNCE) gives the contrastive features; :class:`iconlearn.TSNE` maps both the pixels and
  those features of held-out images to 2-D. Reported: the kNN accuracy (k = 10) and trustworthiness
  of each map, and kNN accuracy / linear probe of the features against the pixels.
* :func:`debias_batch` (Figure 3, left: debiasing against batch size): I-Con clustering
  (:class:`iconlearn.IConClustering`) of the same data at several batch sizes without debiasing and
  with debiasing (eq. 3.3.1 on p, and on both p and q), Hungarian accuracy over seeds, and the share of
  points whose assignment is saturated (largest probability > 0.99; the figure's centre and right
  panels: debiasing keeps the logits away from saturation).

Data: Fashion-MNIST when installed (images at 14 x 14), else MNIST-5k (14 x 14), else scikit-learn's
8 x 8 digits, which every installation has; ``ICONLEARN_WITHOUT=all`` hides the optional two.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _validation as V

__all__ = ["figure_images", "TSNEFeaturesResult", "tsne_features", "DebiasBatchResult", "debias_batch"]

SOURCES = ("fashion-mnist", "mnist5k", "digits")


def figure_images(prefer: str | None = None, n_train: int = 5000, n_test: int = 2000, seed: int = 0):
    """(name, train images, train labels, test images, test labels): uint8 N x 1 x H x W, the first of
    Fashion-MNIST, MNIST-5k (both resized to 14 x 14) and digits (8 x 8) that is installed (or
    ``prefer``), with random subsets of ``n_train`` / ``n_test`` images."""
    from ..data.augment import resize_images
    from ..data.datasets import DataMissingError, load_dataset

    order = SOURCES if prefer is None else (prefer,)
    for name in order:
        if name not in SOURCES:
            raise ValueError(f"prefer must be one of {SOURCES}, got {name!r}")
        try:
            parts = [load_dataset(name, split) for split in ("train", "test")]
        except DataMissingError:
            if prefer is not None:
                raise
            continue
        out = [name]
        rng = np.random.default_rng(seed)
        for ds, n in zip(parts, (n_train, n_test)):
            X = np.asarray(ds.X, dtype=np.float32)
            X = X.reshape(len(X), 1, *X.shape[-2:])
            if name == "digits":
                X = X * (255.0 / 16.0)  # grey levels 0..16
            idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
            X = torch.from_numpy(X[idx])
            if name != "digits":
                X = resize_images(X, 14)
            out += [X.clamp(0, 255).round().to(torch.uint8), torch.as_tensor(np.asarray(ds.y)[idx])]
        return tuple(out)
    raise RuntimeError("no image data set found (digits ships with scikit-learn, so this should not happen)")


@dataclass
class TSNEFeaturesResult:
    dataset: str
    n_points: int
    steps: int
    seconds: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)        # "pixels" / "features" -> metrics
    maps: dict = field(default_factory=dict)          # "pixels" / "features" -> (N x 2); labels
    labels: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "n_points": self.n_points, "steps": self.steps, "seconds": self.seconds,
                "scores": self.scores}

    def to_markdown(self) -> str:
        L = ["# I-Con Figure 1 on our data: t-SNE of pixels and of contrastive features", "",
             f"{self.n_points} held-out {self.dataset} images. Contrastive features: the backbone of a {self.steps}-step "
             "SimCLR run of iconlearn's pretraining loop (InfoNCE, cosine kernel) on the training images. Both "
             "maps by iconlearn.TSNE (perplexity 30).", "",
             "| input | kNN acc in the input space (k=10) | linear probe (5-fold) | t-SNE map: kNN acc (k=10) | "
             "trustworthiness (k=10) |", "| --- | --- | --- | --- | --- |"]
        for name in ("pixels", "features"):
            s = self.scores[name]
            L.append(f"| {name} | {s['knn_input']:.4f} | {s['linear_input']:.4f} | {s['knn_map']:.4f} | "
                     f"{s['trustworthiness']:.4f} |")
        L += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()) + "."]
        return "\n".join(L) + "\n"


def _cv_linear_probe(F: np.ndarray, y: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    return float(cross_val_score(clf, F, y, cv=5).mean())


def tsne_features(n_points: int = 2000, steps: int = 200, batch_size: int = 256, prefer: str | None = None,
                  tsne_iter: int = 500, seed: int = 0) -> TSNEFeaturesResult:
    """Figure 1: see the module docstring (``tsne_iter``: t-SNE iterations after the early exaggeration)."""
    from ..estimators.tsne import TSNE
    from ..metrics import knn_accuracy, trustworthiness
    from ..metrics.probe import extract_features
    from ..train import pretrain

    n_points = V.check_int(n_points, "n_points", low=100)
    steps = V.check_int(steps, "steps", low=1)
    name, Xtr, ytr, Xte, yte = figure_images(prefer, n_test=n_points, seed=seed)
    res = TSNEFeaturesResult(name, len(Xte), steps, labels=yte.numpy())
    t0 = time.perf_counter()
    small = Xtr.shape[-1] <= 8
    cfg = {"model": {"width": 16, "blocks": [1, 1, 1], "stem_stride": 1, "proj_hidden": 256, "proj_dim": 64},
           "method": {"name": "simclr", "temperature": 0.2},
           "augment": {"crop_scale": [0.5 if small else 0.2, 1.0], "flip": not small, "blur_prob": 0.0 if small else 0.5},
           "optim": {"name": "sgd", "lr": 0.3, "warmup_steps": max(1, steps // 10)},
           "train": {"batch_size": min(batch_size, len(Xtr)), "max_steps": steps, "seed": seed, "device": "cpu",
                     "progress": False, "log_every": max(1, steps // 10)},
           "eval": {"enabled": False}}
    model = pretrain(cfg, Xtr, ytr).model
    res.seconds["pretrain"] = time.perf_counter() - t0
    inputs = {"pixels": Xte.flatten(1).float().numpy() / 255.0, "features": extract_features(model, Xte)}
    y = yte.numpy()
    for key, F in inputs.items():
        t = time.perf_counter()
        Y = TSNE(perplexity=30, n_iter=tsne_iter, early_exaggeration_iter=min(250, tsne_iter), random_state=seed,
                 device="cpu").fit_transform(F)
        res.seconds[f"t-SNE of {key}"] = time.perf_counter() - t
        res.maps[key] = np.asarray(Y)
        res.scores[key] = {"knn_input": knn_accuracy(F, y, k=10), "linear_input": _cv_linear_probe(F, y, seed),
                           "knn_map": knn_accuracy(Y, y, k=10), "trustworthiness": trustworthiness(F, Y, k=10)}
    return res


@dataclass
class DebiasBatchResult:
    dataset: str
    n_points: int
    batch_sizes: list
    settings: dict                                    # label -> (alpha_p, alpha_q)
    seeds: list
    accuracy: dict = field(default_factory=dict)      # label -> (len(batch_sizes) x len(seeds))
    saturated: dict = field(default_factory=dict)     # label -> same, share of max prob > 0.99

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "n_points": self.n_points, "batch_sizes": self.batch_sizes,
                "settings": self.settings, "seeds": self.seeds,
                "accuracy": {k: np.asarray(v).tolist() for k, v in self.accuracy.items()},
                "saturated": {k: np.asarray(v).tolist() for k, v in self.saturated.items()}}

    def mean(self, label: str) -> np.ndarray:
        return np.asarray(self.accuracy[label]).mean(1)

    def to_markdown(self) -> str:
        L = ["# I-Con Figure 3 on our data: debiasing against batch size", "",
             f"I-Con clustering (linear head, random start, kNN k = 3 plus 1-step walks, one head) of {self.n_points} "
             f"{self.dataset} images (pixels), 10 clusters; Hungarian accuracy, mean +/- std over seeds "
             f"{', '.join(map(str, self.seeds))}; in brackets the share of points with a saturated assignment "
             "(largest probability > 0.99).", "",
             "| batch | " + " | ".join(f"{k} (alpha_p, alpha_q) = {v}" for k, v in self.settings.items()) + " |",
             "| --- |" + " --- |" * len(self.settings)]
        for b_i, b in enumerate(self.batch_sizes):
            cells = []
            for k in self.settings:
                a, s = np.asarray(self.accuracy[k])[b_i], np.asarray(self.saturated[k])[b_i]
                cells.append(f"{a.mean():.4f} +/- {a.std(ddof=1) if len(a) > 1 else 0.0:.4f} ({s.mean():.2f})")
            L.append(f"| {b} | " + " | ".join(cells) + " |")
        base = list(self.settings)[0]
        gains = {k: float((self.mean(k) - self.mean(base)).mean()) for k in list(self.settings)[1:]}
        L += ["", "Mean gain over the batch sizes against no debiasing: "
              + ", ".join(f"{k} {v:+.4f}" for k, v in gains.items()) + "."]
        return "\n".join(L) + "\n"


def debias_batch(batch_sizes=(32, 128, 512), settings=None, seeds=(0, 1), prefer: str | None = "digits",
                 n_points: int = 2000, seed: int = 0) -> DebiasBatchResult:
    """Figure 3 (left): see the module docstring. ``settings``: label -> (alpha_p, alpha_q)."""
    from ..estimators.clustering import IConClustering
    from ..metrics import hungarian_accuracy

    settings = dict(settings or {"none": (0.0, 0.0), "p": (0.6, 0.0), "p and q": (0.6, 0.6)})
    batch_sizes = [V.check_int(b, "batch_sizes", low=2) for b in batch_sizes]
    seeds = [int(s) for s in seeds]
    name, Xtr, ytr, _, _ = figure_images(prefer, n_train=n_points, n_test=1, seed=seed)
    X = Xtr.flatten(1).float().numpy() / 255.0
    y = ytr.numpy()
    k = len(np.unique(y))
    res = DebiasBatchResult(name, len(X), batch_sizes, {lab: tuple(v) for lab, v in settings.items()}, seeds)
    for lab, (ap, aq) in settings.items():
        acc = np.zeros((len(batch_sizes), len(seeds)))
        sat = np.zeros_like(acc)
        for i, b in enumerate(batch_sizes):
            for j, s in enumerate(seeds):
                est = IConClustering(k, walks=1, alpha_p=ap, alpha_q=aq, n_heads=1, init="random",
                                     batch_size=min(b, len(X)), random_state=s, device="cpu").fit(X)
                acc[i, j] = hungarian_accuracy(y, est.labels_)
                sat[i, j] = float((est.predict_proba(X).max(1) > 0.99).mean())
        res.accuracy[lab], res.saturated[lab] = acc, sat
    return res
