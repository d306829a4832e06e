"""Learned neighbourhood distributions q(j|i): kernels on embeddings (:mod:`.kernels`) and the
shared cluster likelihood of soft assignments (:mod:`iconlearn.cluster_likelihood`, which the
supervisory side shares)."""
from ..cluster_likelihood import ClusterLikelihood, cluster_log_q
from ..core import smooth_log_q
from ..distances import sq_distances
from .kernels import (
    ConcatSumKernel,
    CosineKernel,
    DotKernel,
    ExponentialKernel,
    GaussianKernel,
    Kernel,
    LaplacianKernel,
    LeakKernel,
    LearnableStudentTKernel,
    NormalizedKernel,
    PointClusterKernel,
    ProductKernel,
    SliceKernel,
    StudentTKernel,
    SumKernel,
    compute_dtype,
    kernel_infonce_kernel,
    masked_log_softmax,
)

__all__ = [
    "ClusterLikelihood", "cluster_log_q", "ConcatSumKernel", "CosineKernel", "DotKernel",
    "ExponentialKernel", "GaussianKernel", "Kernel", "LaplacianKernel", "StudentTKernel", "SumKernel",
    "masked_log_softmax", "sq_distances", "smooth_log_q", "compute_dtype", "LeakKernel", "LearnableStudentTKernel",
    "NormalizedKernel", "PointClusterKernel", "ProductKernel", "SliceKernel", "kernel_infonce_kernel",
]
