"""Analysis metrics for the MAML papers.

* :mod:`.rsa` — representational similarity analysis (Goerttler & Obermayer [G]).
* :mod:`.cka` — centered kernel alignment, linear/RBF, biased/debiased (Kornblith et al. 2019; [R]).
* :mod:`.cca` — SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018) ([R]).
* :mod:`.curvature` — Hessian spectral norm at adapted solutions (Guiroy et al. [L] §4.1).
* :mod:`.coherence` — coherence of trajectories, gradients, representations ([L] §4.2, §4.3, §6).

Activations are always ``(n, ...)`` with one row per example and flattened to ``(n, d)``;
scalar metrics return python floats, matrices are float64 tensors on the input's device.
"""

from mamlscope.metrics.cca import canonical_correlations, pwcca, svcca, svd_reduce
from mamlscope.metrics.cka import (
    cka,
    cka_grams,
    gram,
    gram_linear,
    gram_rbf,
    hsic,
    linear_cka,
    linear_cka_features,
    rbf_cka,
)
from mamlscope.metrics.coherence import (
    PairwiseMean,
    adaptation_deltas,
    flatten_params,
    gradient_coherence,
    pairwise_mean,
    representation_coherence,
    trajectory_coherence,
)
from mamlscope.metrics.curvature import (
    HessianEigen,
    hessian_spectral_norm,
    hessian_spectral_norm_batched,
    hessian_top_eigen,
    hessian_vector_product,
)
from mamlscope.metrics.rsa import (
    compare_rdms,
    flatten_examples,
    mds_embedding,
    rank_rows,
    rdm,
    rdm_of_rdms,
    representational_dissimilarity,
    upper_triangle,
)

__all__ = [
    "rdm", "upper_triangle", "rank_rows", "compare_rdms", "rdm_of_rdms", "mds_embedding",
    "representational_dissimilarity", "flatten_examples",
    "cka", "cka_grams", "gram", "linear_cka", "rbf_cka", "linear_cka_features", "gram_linear", "gram_rbf", "hsic",
    "svcca", "pwcca", "canonical_correlations", "svd_reduce",
    "hessian_spectral_norm", "hessian_spectral_norm_batched", "hessian_top_eigen",
    "hessian_vector_product", "HessianEigen",
    "trajectory_coherence", "gradient_coherence", "representation_coherence", "pairwise_mean",
    "flatten_params", "adaptation_deltas", "PairwiseMean",
]
