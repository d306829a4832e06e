"""The analyses of the Calder-Lee and Kernel-InfoNCE papers, and the I-Con identities, as
functions that return data (dataclasses with ``to_markdown()`` / ``to_dict()``); the figures are in
:mod:`iconlearn.analysis.plotting`; ``iconlearn reproduce NAME --out DIR`` runs them.

=================  ===========================================================================
``landscape``      NT-Xent on K points of S^1, thresholds vs tau, stationarity (Fig. 3, Thm 3.2)
``invariance``     Proposition 2.1: invariant maps with one push-forward give one loss
``gradient_flow``  flows with and without a network, worst-case start (Figs. 5-6, Thms 4.2, 4.5)
``ntk``            empirical / closed-form / infinite-width kernels (Props 4.1, 4.3, 4.4, Rem. 4.4)
``spectral``       InfoNCE embeddings vs Laplacian eigenvectors, kernel comparison, CLIP
``identities``     I-Con Theorems 5, 6, Corollary 2, InfoNCE = KL, as measured deviations
``kernel_theory``  Kernel-InfoNCE Theorem 6.1 (max entropy) and the MRF identity of section 4
``variational``    Calder-Lee Propositions 3.1 (eqs. 6-7), A.1 and Lemma A.2 against autograd
``icon_figures``   I-Con Figure 1 (t-SNE of pixels / contrastive features), Figure 3 (debiasing)
=================  ===========================================================================
"""
from .gradient_flow import GradientFlowResult, gradient_flow_suite, gradient_flows
from .icon_figures import DebiasBatchResult, TSNEFeaturesResult, debias_batch, tsne_features
from .identities import IdentitiesResult, identities
from .invariance import InvarianceResult, invariance
from .kernel_theory import kernel_theory
from .landscape import LandscapeResult, landscape
from .ntk import CalderLeeNet, NTKResult, closed_form_ntk, empirical_ntk, infinite_width_ntk, ntk_analysis
from .spectral import SpectralResult, spectral
from .variational import variational

__all__ = ["landscape", "LandscapeResult", "invariance", "InvarianceResult", "gradient_flows", "gradient_flow_suite",
           "GradientFlowResult", "ntk_analysis", "NTKResult", "CalderLeeNet", "empirical_ntk", "closed_form_ntk",
           "infinite_width_ntk", "spectral", "SpectralResult", "identities", "IdentitiesResult", "kernel_theory",
           "variational", "tsne_features", "TSNEFeaturesResult", "debias_batch", "DebiasBatchResult"]
