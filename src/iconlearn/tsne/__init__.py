"""Internals of SNE / t-SNE (the estimators are :mod:`iconlearn.estimators.tsne`), split as openTSNE:

* :mod:`.affinities`: kNN + perplexity calibration + symmetrisation, sparse (the supervisory p);
* :mod:`.initialization`: PCA, spectral (diffusion map of P) or random, at std 1e-4;
* :mod:`.gradients`: the I-Con loss (exact, small N) and its hand-written gradient (large N);
* :mod:`.interpolation`: FFT-accelerated kernel sums for the repulsion (FIt-SNE), in torch;
* :mod:`.optimizer`: gradient descent with momentum and gains, and the loop over its stages;
* :mod:`.cpu` with :mod:`._numba`: the whole iteration compiled for the CPU (Barnes-Hut or FFT,
  attraction, update) on a thread pool that tolerates a busy machine.
"""
from .affinities import SparseAffinities, conditional_affinities, joint_affinities, nearest_neighbors
from .gradients import sne_exact_loss, sne_gradient, tsne_exact_loss, tsne_gradient
from .interpolation import Grid, kernel_sums

__all__ = ["SparseAffinities", "conditional_affinities", "joint_affinities", "nearest_neighbors",
           "sne_exact_loss", "sne_gradient", "tsne_exact_loss", "tsne_gradient", "Grid", "kernel_sums"]
