"""The HMM estimators named by their emission family (hmmlearn's classes): Gaussian, a Gaussian
mixture per state, Poisson, multinomial counts and categorical symbols, each a thin
:class:`~emkit.estimators.hmm.HMM` with its family's parameters and fitted attributes."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from emkit.estimators.hmm import HMM
from emkit.families import Family, make_family
from emkit.families.gaussian import Gaussian
from emkit.families.gaussian_mixture_emission import GaussianMixtureEmission
from emkit.families.multinomial import Multinomial
from emkit.families.poisson import Poisson
from emkit.models.hmm import HMMParams, Learn


def _common(self: BaseEstimator, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(self, name, value)


class GaussianHMM(HMM):
    """HMM with Gaussian emissions; ``covariance_type`` in ``"full" | "tied" | "diag" |
    "spherical"`` (hmmlearn's default ``"diag"``), ``reg_covar`` added to every variance.

    Fitted ``means_`` ``(K, D)``, ``covariances_`` in the structure's shape (as scikit-learn's
    GaussianMixture) and ``covars_`` as hmmlearn returns them, ``(K, D, D)`` for every type.
    """

    def __init__(
        self,
        n_states: int = 1,
        covariance_type: str = "diag",
        reg_covar: float = 1e-6,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        _common(self, locals())

    def _make_family(self) -> Family:
        return Gaussian(self.covariance_type, self.reg_covar)

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        cov = self.emission_.covariances(params.emission)
        K, D = params.emission.means.shape
        if cov.ndim == 3:
            full = cov
        elif cov.ndim == 2 and cov.shape == (D, D) and self.emission_._shared(D):
            full = np.broadcast_to(cov, (K, D, D)).copy()
        elif cov.ndim == 2:
            full = np.zeros((K, D, D))
            full[:, np.arange(D), np.arange(D)] = cov
        else:
            full = cov[:, None, None] * np.eye(D)
        return {"covars_": full}


class GMMHMM(HMM):
    """HMM whose states each emit a mixture of ``n_mix`` Gaussians (hmmlearn's ``GMMHMM``);
    ``covariance_type`` in ``"full" | "diag" | "spherical" | "tied"`` (default ``"diag"``;
    ``"tied"``: the ``n_mix`` Gaussians of one state share one full covariance), ``reg_covar``
    added to every variance.  ``emission_init`` takes the family's parameters or a dict of
    ``weights`` / ``means`` / ``precisions_cholesky``; see
    :meth:`~emkit.families.GaussianMixtureEmission.params_from_covariances` to start from
    covariances.

    Fitted ``weights_`` ``(K, M)``, ``means_`` ``(K, M, D)``, ``covariances_`` and hmmlearn's
    ``covars_`` ``(K, M, …)`` in the structure's shape, ``(K, D, D)`` for ``"tied"`` (as
    hmmlearn returns them).
    """

    def __init__(
        self,
        n_states: int = 1,
        n_mix: int = 1,
        covariance_type: str = "diag",
        reg_covar: float = 1e-6,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        _common(self, locals())

    def _make_family(self) -> Family:
        return GaussianMixtureEmission(self.n_mix, self.covariance_type, self.reg_covar)

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        return {"covars_": self.emission_.covariances(params.emission)}


class PoissonHMM(HMM):
    """HMM with independent Poisson counts per column; fitted ``rates_`` (and hmmlearn's name
    ``lambdas_``), shape ``(K, D)``."""

    def __init__(
        self,
        n_states: int = 1,
        min_rate: float = 1e-10,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        _common(self, locals())

    def _make_family(self) -> Family:
        return Poisson(self.min_rate)

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        return {"lambdas_": params.emission.rates}


class MultinomialHMM(HMM):
    """HMM whose states emit rows of counts over D categories (hmmlearn's ``MultinomialHMM``);
    fitted ``emissionprob_`` ``(K, D)``.  ``n_trials`` (counts per row) is needed only by
    ``sample``; rows may have different totals."""

    def __init__(
        self,
        n_states: int = 1,
        n_trials: int | None = None,
        min_probability: float = 1e-10,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        _common(self, locals())

    def _make_family(self) -> Family:
        return Multinomial(self.n_trials, self.min_probability)

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        return {"emissionprob_": params.emission.probabilities}


class CategoricalHMM(HMM):
    """HMM with independent categorical columns (symbols as strings or numbers); fitted
    ``probabilities_`` ``(K, D, max_j C_j)`` and, for one column, hmmlearn's ``emissionprob_``
    ``(K, C)``.  Needs the ``categorical`` family (:mod:`emkit.families.categorical`)."""

    def __init__(
        self,
        n_states: int = 1,
        categories: Any = None,
        min_probability: float = 1e-10,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        _common(self, locals())

    def _make_family(self) -> Family:
        return make_family(
            {
                "name": "categorical",
                "categories": self.categories,
                "min_probability": self.min_probability,
            }
        )

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        table = self.emission_.describe(params.emission)["probabilities"]
        return {"emissionprob_": table[:, 0, :].copy()} if table.shape[1] == 1 else {}
