"""scikit-learn style front doors. Imported lazily so that ``import iconlearn`` stays light."""
from __future__ import annotations

import importlib

_WHERE = {
    "IConClustering": "iconlearn.estimators.clustering",
    "SNE": "iconlearn.estimators.tsne",
    "TSNE": "iconlearn.estimators.tsne",
    "ParametricTSNE": "iconlearn.estimators.tsne",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'iconlearn.estimators' has no attribute {name!r}")
