"""Evaluation metrics (clustering, embeddings, probes), computed without N x N matrices."""
from .clustering import ami, ari, clustering_scores, contingency, hungarian_accuracy, match_clusters, mean_std, nmi
from .embedding import knn_accuracy, neighborhood_preservation, trustworthiness

__all__ = ["ami", "ari", "clustering_scores", "contingency", "hungarian_accuracy", "match_clusters", "mean_std",
           "nmi", "knn_accuracy", "neighborhood_preservation", "trustworthiness"]
