"""scikit-learn estimator shells over emkit's models."""

from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.hmm import HMM
from emkit.estimators.hmm_emissions import (
    GMMHMM,
    CategoricalHMM,
    GaussianHMM,
    MultinomialHMM,
    PoissonHMM,
)
from emkit.estimators.mixture import MixtureModel

__all__ = [
    "GMMHMM",
    "HMM",
    "CategoricalHMM",
    "GaussianHMM",
    "GaussianMixture",
    "MultinomialHMM",
    "PoissonHMM",
    "MixtureModel",
]
