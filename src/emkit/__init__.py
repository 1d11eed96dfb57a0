"""emkit: latent-variable models fitted by Expectation-Maximization, one engine for all."""

from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.mixture import MixtureModel
from emkit.io import load, save

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "MixtureModel", "__version__", "load", "save"]
