"""``emkit.GaussianMixture``: a scikit-learn estimator over the mixture of the Gaussian family.

The engine model is :class:`~emkit.models.mixture.FamilyMixture` of
:class:`~emkit.families.gaussian.Gaussian` (the one mixture stack); this shell keeps
scikit-learn's parameters and fitted attributes (``means_``, ``precisions_cholesky_``, …).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import DensityMixin

from emkit._validation import (
    InputError,
    check_positive,
    check_sample_weight,
    check_settings,
    check_spd,
    check_weights,
    check_X,
    real_array,
    weighted_column_mean,
)
from emkit.engine import ArrayData, ProgressCallback
from emkit.estimators._base import EMEstimator, check_fitted_common, fitted_array, fitted_name
from emkit.estimators._mixture import MixtureInference
from emkit.estimators.missing import check_incomplete
from emkit.families.covariance import CovarianceStructure, covariance_structure
from emkit.families.gaussian import Gaussian, GaussianParams
from emkit.families.missing_cells import incomplete_rows
from emkit.models.learn import MixtureLearn
from emkit.models.mixture import MIXTURE_INITS, FamilyMixture, MixtureParams


def _check_precisions(prec: np.ndarray, structure: str) -> None:
    """User-given precisions: symmetric positive definite matrices, or positive numbers."""
    if structure in ("diag", "spherical"):
        check_positive(prec, "precisions_init")
    else:
        check_spd(prec, "precisions_init", shared=structure == "tied")


class GaussianMixture(MixtureInference, DensityMixin, EMEstimator):
    """Gaussian mixture fitted by EM: ``p(x) = Σ_k π_k N(x | μ_k, Σ_k)``.

    Parameters follow :class:`sklearn.mixture.GaussianMixture`; additions are ``sample_weight``
    in :meth:`fit`, ``stopping`` (``"relative"``: ``|Δℓ| ≤ tol·(1+|ℓ|)`` on the mean
    log-likelihood ℓ; ``"aitken"``: Aitken's predicted limit; ``"none"``: exactly ``max_iter``
    iterations), ``accelerate="squarem"``, and
    ``init_params="k-means++"`` (the default: k-means++ seeds, every row assigned to its nearest
    seed, one M-step).  ``tol`` is relative (mclust's default 1e-5), not scikit-learn's absolute
    1e-3.  ``short_runs`` > 0 starts each of the ``n_init`` runs from the best of that many short
    EM runs of at most ``short_iter`` iterations (emEM, Biernacki, Celeux & Govaert 2003);
    ``restart_objectives_`` and ``best_restart_`` tell which run won.  ``learn`` (an
    :class:`emkit.MixtureLearn`) holds parameters at their start, e.g.
    ``MixtureLearn(components=("covariances",))`` with ``means_init`` zeros: zero-mean components.
    ``backend``: where the E-steps run, ``"local"`` (this machine's threads) or ``"dask"``
    (the workers of the active ``distributed.Client``; rows in memory are sent there once, a
    Parquet or CSV source is read there); a Dask array or DataFrame always runs on Dask.
    """

    _start_arguments = ("weights_init", "means_init", "precisions_init")

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str | CovarianceStructure = "full",
        tol: float = 1e-5,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means++",
        short_runs: int = 0,
        short_iter: int = 5,
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        learn: MixtureLearn | None = None,
        verbose: int = 0,
        backend: str = "local",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.short_runs = short_runs
        self.short_iter = short_iter
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.stopping = stopping
        self.accelerate = accelerate
        self.learn = learn
        self.verbose = verbose
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing cells are marginalised
        return tags

    # --- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        callback: ProgressCallback | None = None,
    ) -> GaussianMixture:
        """Fit by EM.  ``sample_weight`` multiplies each row's contribution to the statistics."""
        self._run_engine(*self._fit_data(X, sample_weight=sample_weight), callback)
        return self

    def _fit_inputs(
        self, X: Any, *, reset: bool, model: Any = None, sample_weight: Any = None
    ) -> tuple[FamilyMixture, ArrayData]:
        if model is None:
            self._check_hyperparameters()
            if not reset:
                self._check_warm_start()
        X = check_X(self, X, reset=reset, allow_nan=True)
        if model is None and X.shape[0] < self.n_components:
            raise InputError(
                f"Found {X.shape[0]} sample(s), but n_components={self.n_components} needs a "
                f"minimum of {self.n_components}; reduce n_components"
            )
        w = check_sample_weight(sample_weight, X)
        if model is None and np.count_nonzero(w) < self.n_components:
            raise InputError(
                f"only {np.count_nonzero(w)} rows have positive sample_weight; "
                f"n_components={self.n_components} needs at least {self.n_components}"
            )
        if incomplete_rows(X) is not None:  # missing cells: marginalised (MissingNormal's rules)
            keep = check_incomplete(X, w, getattr(self, "feature_names_in_", None),
                                    whole=model is None)
            X, w = X[keep], w[keep]
        return (self._build_model(X, w) if model is None else model), ArrayData(X, w)

    def _check_warm_start(self) -> None:
        """A warm start continues the fitted mixture: its shape must match the settings."""
        K, D = int(self.n_components), self.means_.shape[1]
        shape = self._structure().shape(K, D)
        if self.weights_.shape != (K,) or self.precisions_cholesky_.shape != shape:
            raise ValueError(
                f"warm_start=True continues the fitted mixture ({self.weights_.shape[0]} "
                f"components, precisions of shape {self.precisions_cholesky_.shape}), which does "
                f"not match n_components={K}, covariance_type={self.covariance_type!r}; set "
                "warm_start=False to start over"
            )

    def _check_hyperparameters(self) -> None:
        if not (isinstance(self.n_components, (int, np.integer)) and self.n_components >= 1):
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        self._structure()
        self._learn()
        if self.init_params not in MIXTURE_INITS:
            raise ValueError(
                f"init_params must be one of {MIXTURE_INITS}, got {self.init_params!r}"
            )
        check_settings(
            self,
            (
                ("tol", 0, False),
                ("reg_covar", 0, False),
                ("max_iter", 0, True),
                ("n_init", 1, True),
            ),
        )

    def _build_model(self, X: np.ndarray, w: np.ndarray) -> FamilyMixture:
        """The mixture of the Gaussian family, its sums about the weighted column means of the
        observed cells (data with NaN are marginalised per pattern; complete chunks still take
        the fused path)."""
        incomplete = incomplete_rows(X) is not None  # one reduction when there is no NaN
        origin = weighted_column_mean(np.nan_to_num(X) if incomplete else X, w)
        if incomplete:
            observed = (~np.isnan(X) * w[:, None]).sum(axis=0)
            origin = origin * w.sum() / np.maximum(observed, 1e-300)
        return self._mixture(int(self.n_components), origin, X.shape[1])

    def _mixture(self, K: int, origin: np.ndarray, D: int) -> FamilyMixture:
        family = Gaussian(self._structure(), self.reg_covar, origin)
        return FamilyMixture(family, K, self.init_params, n_features=D, learn=self._learn())

    def _structure(self) -> CovarianceStructure:
        """The covariance structure object of ``covariance_type`` (a name or an object)."""
        return covariance_structure(self.covariance_type)

    def _start_params(
        self, model: FamilyMixture, data: ArrayData, rng: np.random.Generator
    ) -> MixtureParams | None:
        """The user's start (any of weights/means/precisions given), else None (use init).

        With all three given they are the start as they are; otherwise the missing ones come
        from one M-step on the nearest-mean partition of ``means_init`` (or on the init's)."""
        given = [v is not None for v in (self.weights_init, self.means_init, self.precisions_init)]
        if not any(given):
            return None
        K, D = model.n_components, data.width
        structure = model.family.covariance
        weights = means = pc = None
        if self.weights_init is not None:
            weights = check_weights(self.weights_init, K, "weights_init")
        if self.means_init is not None:
            means = self._user_array("means_init", self.means_init, (K, D))
        if self.precisions_init is not None:
            prec = self._user_array("precisions_init", self.precisions_init, structure.shape(K, D))
            _check_precisions(prec, structure.name)
            pc = structure.precisions_cholesky(structure.covariances_from_precisions(prec))
        if not all(given):
            if means is not None:
                base = model.from_means(data, means, rng)
            else:
                base = model.init(data, rng)
            weights = base.weights if weights is None else weights
            means = base.components.means if means is None else means
            pc = base.components.precisions_cholesky if pc is None else pc
        return MixtureParams(weights, GaussianParams(means, pc))

    @staticmethod
    def _user_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        arr = real_array(value, name).astype(np.float64)
        if arr.shape != shape:
            raise InputError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN or inf")
        return arr

    # --- fitted parameters --------------------------------------------------------------------
    def _set_fitted(self, params: MixtureParams) -> None:
        structure = self._structure()
        pc = params.components.precisions_cholesky
        self.weights_ = params.weights
        self.means_ = params.components.means
        self.precisions_cholesky_ = pc
        self.precisions_ = structure.precisions_from_cholesky(pc)
        self.covariances_ = structure.covariances_from_cholesky(pc)

    def check_fitted_state(self) -> None:
        """Settings as ``fit`` checks them; ``weights_`` a simplex, ``means_`` finite and
        ``precisions_cholesky_`` valid factors (the Gaussian family's check); precisions and
        covariances are rebuilt from the factors."""
        self._check_hyperparameters()
        means = fitted_array(self, "means_", 2)
        K, D = means.shape
        if K != self.n_components:
            raise InputError(f"means_ holds {K} components, n_components is {self.n_components}")
        weights = fitted_array(self, "weights_", 1)
        check_weights(weights, K, "weights_")
        structure = self._structure()
        pc = fitted_array(self, "precisions_cholesky_", len(structure.shape(K, D)))
        Gaussian(structure).check_params(GaussianParams(means, pc), K, D, fitted_name)
        check_fitted_common(self, D)
        self._check_quantile_table()
        self._set_fitted(MixtureParams(weights, GaussianParams(means, pc)))

    def _get_fitted_params(self) -> MixtureParams:
        return MixtureParams(self.weights_, GaussianParams(self.means_, self.precisions_cholesky_))

    def _fitted_model(self) -> FamilyMixture:
        K, D = self.means_.shape
        return self._mixture(K, np.asarray(self.weights_ @ self.means_), D)

    # --- inference (shared: MixtureInference) -------------------------------------------------
    def _check_predict_X(self, X: Any) -> np.ndarray:
        return check_X(self, X, reset=False, allow_nan=True)

    def _sample_component(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        structure = self._structure()
        return self.means_[k] + structure.noise(rng, self.covariances_, k, n, self.means_.shape[1])

