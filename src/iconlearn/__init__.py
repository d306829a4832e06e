"""iconlearn: representation learning as one KL divergence (I-Con).

    L = mean_i KL( p(.|i) || q(.|i) )       (I-Con, eq. 3.1.1)

``iconlearn.icon_loss`` is the equation, ``iconlearn.supervisory`` and ``iconlearn.learned`` hold
the choices of p and q, ``iconlearn.losses`` the named presets (InfoNCE, SupCon, CLIP, t-SNE,
k-means, ...).
"""
from .core import SparseRows, Smoothed, icon_loss, reverse_icon_loss, smooth_log_q

__version__ = "0.1.0"

__all__ = ["SparseRows", "Smoothed", "icon_loss", "reverse_icon_loss", "smooth_log_q", "__version__"]
