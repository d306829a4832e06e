"""Supervisory neighbourhood distributions p(j|i) (I-Con Table 1 and section 3.3)."""
from ..core import SparseRows, Smoothed
from .gaussian import calibrate, gaussian_targets, symmetrize
from .graph import cluster_targets, degrees, graph_matrix, knn_matrix, restrict_to_batch, rows_of, walk_matrix
from .pairs import augmentation_targets, cross_modal_targets, has_positive, same_group_targets
from .transforms import debias, mix

__all__ = [
    "SparseRows", "Smoothed", "calibrate", "gaussian_targets", "symmetrize", "cluster_targets", "degrees",
    "graph_matrix", "knn_matrix", "restrict_to_batch", "rows_of", "walk_matrix", "augmentation_targets",
    "cross_modal_targets", "has_positive", "same_group_targets", "debias", "mix",
]
