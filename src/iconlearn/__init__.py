"""iconlearn: representation learning as one KL divergence (I-Con).

    L = mean_i KL( p(.|i) || q(.|i) )       (I-Con, eq. 3.1.1)

``iconlearn.icon_loss`` is the equation (``iconlearn.icon_divergence`` the same with another
divergence in place of KL), ``iconlearn.supervisory`` and ``iconlearn.learned`` hold
the choices of p and q, ``iconlearn.losses`` the named presets (InfoNCE, SupCon, CLIP, t-SNE,
k-means, ...).
"""
from .core import SparseRows, Smoothed, icon_divergence, icon_loss, reverse_icon_loss, smooth_log_q

__version__ = "0.1.0"

__all__ = ["SparseRows", "Smoothed", "icon_loss", "icon_divergence", "reverse_icon_loss", "smooth_log_q", "__version__",
           "IConClustering", "SNE", "TSNE", "ParametricTSNE"]

_ESTIMATORS = {"IConClustering", "SNE", "TSNE", "ParametricTSNE"}


def __getattr__(name: str):
    """The estimators (``iconlearn.TSNE``, ``iconlearn.IConClustering``, ...) load on first use."""
    if name in _ESTIMATORS:
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'iconlearn' has no attribute {name!r}")
