"""Named losses, each a choice of supervisory p and learned q for :func:`iconlearn.core.icon_loss`
(I-Con Table 1). No preset writes its own softmax or KL: they build p and log q and call the core.

| preset | p(j\\|i) | q(j\\|i) | reference |
| --- | --- | --- | --- |
| SNELoss | Gaussian on inputs, perplexity-calibrated | Gaussian on embeddings | I-Con Thm 1 |
| TSNELoss | same (joint by default) | Student-t / Cauchy | I-Con Thm 2 |
| InfoNCE | uniform over the other view | exp(cos / tau), anchor excluded | I-Con Thm 3 |
| SupCon | uniform over same label | exp(cos / tau) | I-Con Thm 3 |
| CLIPLoss | partner in the other modality | exp(cos / tau) over the other modality | I-Con Thm 4 |
| CrossEntropyICon | the true class | exp(f . phi_c / tau) over classes | I-Con Cor 1 |
| MSEICon | N(y_i, sigma^2 I) on R^d | N(f(x_i), sigma^2 I) on R^d | I-Con sec 3.2 (regression) |
| InfoNCEClustering | uniform over the other view | phi_i . phi_j / sum_k phi_i . phi_k (by point) | I-Con Table 1 |
| KernelInfoNCE | uniform over the other view | exp(-\\|x-y\\|^gamma / tau) and mixtures (one softmax, or a sum of losses) | Kernel-InfoNCE |
| KMeansICon | KL(q \\|\\| p): Gaussian on data | shared cluster likelihood | I-Con Thm 5-6 |
| NormalizedCutsICon | exp(w_ij / d_j) or w_ij / d_i | degree-weighted cluster likelihood | I-Con Thm 8 |
| MIClustering | uniform over kNN / views | shared cluster likelihood | I-Con Thm 7 |
| IConClusteringLoss | views / kNN / walks, debiased | cluster likelihood, debiased | I-Con sec 3.3 |

and, standing apart because they are not a divergence between a p and a q: GeneralizedNTXent,
Psi(E_y eta / eta+) (Calder and Lee, eqs. 1, 4, 5); SpectralContrastiveLoss (HaoChen et al.);
DebiasedContrastiveLoss (Chuang et al., tau+). Every preset built on InfoNCE takes ``divergence=``
to compare p and q by reverse KL, Jensen-Shannon, total variation, Hellinger or L2
(:func:`iconlearn.core.icon_divergence`) instead of KL.

The modules hold one family each: :mod:`.neighbor_embedding`, :mod:`.contrastive`,
:mod:`.clustering` (with its fused pass, :mod:`.fused_clustering`), :mod:`.ntxent`, :mod:`.beyond_kl`; the shared
base and checks are in :mod:`._batch`. Every loss that contrasts across a batch takes
``gather_distributed``: candidates are gathered from all ranks
(:func:`iconlearn.distributed.gather`), anchors stay local, and the mean of the ranks' losses
equals the single-process loss on the global batch.
"""
from .beyond_kl import DebiasedContrastiveLoss, SpectralContrastiveLoss
from .clustering import IConClusteringLoss, KMeansICon, MIClustering, NormalizedCutsICon
from .contrastive import CLIPLoss, CrossEntropyICon, InfoNCE, InfoNCEClustering, KernelInfoNCE, MSEICon, SupCon
from .neighbor_embedding import SNELoss, TSNELoss
from .ntxent import GeneralizedNTXent

__all__ = [
    "SNELoss", "TSNELoss", "InfoNCE", "SupCon", "CLIPLoss", "CrossEntropyICon", "KernelInfoNCE",
    "GeneralizedNTXent", "KMeansICon", "NormalizedCutsICon", "MIClustering", "IConClusteringLoss",
    "InfoNCEClustering", "MSEICon", "SpectralContrastiveLoss", "DebiasedContrastiveLoss",
]
