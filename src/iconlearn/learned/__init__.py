"""Learned neighbourhood distributions q(j|i): kernels on embeddings and cluster likelihoods."""
from ..core import smooth_log_q
from ..distances import sq_distances
from .clusters import ClusterLikelihood, cluster_log_q
from .kernels import (
    ConcatSumKernel,
    CosineKernel,
    DotKernel,
    ExponentialKernel,
    GaussianKernel,
    Kernel,
    LaplacianKernel,
    StudentTKernel,
    SumKernel,
    compute_dtype,
    normalize,
)

__all__ = [
    "ClusterLikelihood", "cluster_log_q", "ConcatSumKernel", "CosineKernel", "DotKernel",
    "ExponentialKernel", "GaussianKernel", "Kernel", "LaplacianKernel", "StudentTKernel", "SumKernel", "normalize", "sq_distances",
    "smooth_log_q", "compute_dtype",
]
