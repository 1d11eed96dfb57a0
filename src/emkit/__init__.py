"""emkit: latent-variable models fitted by Expectation-Maximization, one engine for all."""

from emkit.engine.dask_source import DaskData
from emkit.engine.sources import CSVData, DataSourceError, ParquetData
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.hmm import HMM
from emkit.estimators.hmm_emissions import (
    GMMHMM,
    CategoricalHMM,
    GaussianHMM,
    MultinomialHMM,
    PoissonHMM,
)
from emkit.estimators.imputer import EMImputer
from emkit.estimators.missing import MissingNormal
from emkit.estimators.mixture import MixtureModel
from emkit.io import load, save
from emkit.models.learn import Learn, MixtureLearn
from emkit.pooling import Pooled, pool
from emkit.select import select

__version__ = "0.1.0"

__all__ = [
    "GMMHMM",
    "HMM",
    "CSVData",
    "CategoricalHMM",
    "DaskData",
    "DataSourceError",
    "EMImputer",
    "GaussianHMM",
    "GaussianMixture",
    "Learn",
    "MixtureLearn",
    "MissingNormal",
    "MixtureModel",
    "MultinomialHMM",
    "ParquetData",
    "PoissonHMM",
    "Pooled",
    "__version__",
    "load",
    "pool",
    "save",
    "select",
]
