"""scikit-learn's own estimator checks for the embedding estimators.

The instances are small and fast: few iterations, small perplexity, one thread. The checks that
cannot pass are listed below with the reason; scikit-learn itself skips its array-API check
unless SCIPY_ARRAY_API=1 is set."""
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from iconlearn import SNE, TSNE, ParametricTSNE

FAST = dict(perplexity=5, random_state=0, n_jobs=1, device="cpu")
ESTIMATORS = [
    TSNE(**FAST, n_iter=20, early_exaggeration_iter=10),
    TSNE(**FAST, n_iter=20, early_exaggeration_iter=10, metric="precomputed", init="spectral"),
    SNE(**FAST, n_iter=20, early_exaggeration_iter=10),
    ParametricTSNE(**FAST, n_epochs=2, hidden=(16,), batch_size=16),
]

# transform(X) places the points of X into the frozen embedding one by one (openTSNE's transform):
# for the training points it does not return fit_transform(X), which these checks require.
_TRANSFORM_IS_NOT_REFIT = "transform embeds X into the fitted embedding, it does not reproduce fit_transform(X)"
_NON_PARAMETRIC = {"check_transformer_general": _TRANSFORM_IS_NOT_REFIT,
                   "check_transformer_data_not_an_array": _TRANSFORM_IS_NOT_REFIT}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"TSNE": _NON_PARAMETRIC, "SNE": _NON_PARAMETRIC}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}))
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
