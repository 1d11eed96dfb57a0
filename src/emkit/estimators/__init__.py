"""scikit-learn estimator shells over emkit's models."""

from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.mixture import MixtureModel

__all__ = ["GaussianMixture", "MixtureModel"]
