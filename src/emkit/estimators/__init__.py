"""scikit-learn estimator shells over emkit's models."""

from emkit.estimators.gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixture"]
