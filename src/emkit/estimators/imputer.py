"""``emkit.EMImputer``: fill NaN cells from a normal or Gaussian-mixture model fitted by EM."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable
from itertools import chain
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from emkit._validation import InputError, check_finite, check_spd, check_weights, check_X
from emkit.engine.dask_source import is_dask_collection
from emkit.engine.online import DEFAULT_KAPPA, DEFAULT_T0
from emkit.engine.sources import is_table_source
from emkit.estimators._base import SavedEstimator, check_fitted_common, fitted_array
from emkit.estimators._online import first_and_rest
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.missing import MissingNormal, check_incomplete, check_normal_fitted
from emkit.families.covariance import covariance_structure
from emkit.families.missing_cells import full_covariances

MODELS = ("normal", "gmm")


class EMImputer(SavedEstimator, TransformerMixin, BaseEstimator):
    """Fill NaN cells with ``E[x_m | x_o]`` under a model fitted by EM to the incomplete rows.

    ``model="normal"``: ``x ~ N(μ, Σ)`` (:class:`emkit.MissingNormal`), the fill is the
    regression ``μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)``.  ``model="gmm"``: a ``n_components`` Gaussian
    mixture fitted with missing cells marginalised per pattern; the fill is
    ``Σ_k p(k | x_o) E_k[x_m | x_o]``.  ``sample_posterior=True`` draws ``x_m | x_o`` instead
    (for a mixture, a component from ``p(k | x_o)`` first).  :meth:`multiple_imputations`
    gives ``n_imputations`` completed data sets that also reflect parameter uncertainty
    (bootstrap EM, as in Amelia II: refit on a bootstrap resample of the rows, then draw);
    pool analyses of them with :func:`emkit.pool` (Rubin's rules).  Rows with every cell
    missing are left out of the fit and filled from the marginal (mean, or a draw).
    ``accelerate``: the imputation model's acceleration (None: its default, SQUAREM for
    ``"normal"``, none for ``"gmm"``; ``"none"`` for plain EM steps).
    ``backend="dask"``: the imputation model's E-steps on the workers of the active
    ``distributed.Client`` (as :class:`emkit.GaussianMixture`'s).
    A fitted imputer saves and loads with :func:`emkit.save` / :func:`emkit.load`.
    """

    def __init__(
        self,
        model: str = "normal",
        *,
        n_components: int = 2,
        covariance_type: str = "full",
        sample_posterior: bool = False,
        n_imputations: int = 5,
        reg_covar: float = 1e-6,
        max_iter: int = 500,
        tol: float = 1e-8,
        n_init: int = 1,
        accelerate: str | None = None,
        random_state: Any = None,
        backend: str = "local",
    ):
        self.model = model
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.sample_posterior = sample_posterior
        self.n_imputations = n_imputations
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.accelerate = accelerate
        self.random_state = random_state
        self.backend = backend

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # --- fitting ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name, low in (("n_components", 1), ("n_imputations", 2), ("max_iter", 1)):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Integral) and value >= low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        covariance_structure(self.covariance_type)

    def fit(self, X: Any, y: Any = None) -> EMImputer:
        """Fit the model (``model``) to the incomplete rows of ``X`` by EM.  ``X`` may be an
        out-of-core source (:class:`emkit.ParquetData`, :class:`emkit.CSVData`, a Dask array
        or DataFrame), which the imputation model reads a piece at a time; ``transform`` then
        fills rows held in memory."""
        self._check_params()
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        if is_dask_collection(X) or is_table_source(X) or self.backend == "dask":
            self._fit_source(X, seed)
            return self
        names = getattr(X, "columns", None)
        X = check_X(self, X, reset=True, allow_nan=True, min_samples=2)
        self._fit_params(np.asarray(X, dtype=np.float64), names, seed)
        return self

    def _fit_source(self, source: Any, seed: int) -> None:
        """The imputation model's fit to an out-of-core source (its rows weigh one each: the
        last E-step's weight counts the rows kept, those with a value)."""
        model = self._model(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = model._run_engine(*model._fit_data(source))
        for name in ("n_features_in_", "feature_names_in_"):
            if name in model.__dict__:
                setattr(self, name, getattr(model, name))
            else:
                self.__dict__.pop(name, None)
        self._take_fitted(model, result.stats.weight)
        self.__dict__.pop("_online_fit", None)

    def _fit_params(self, X: np.ndarray, names: Any, seed: int) -> None:
        names = None if names is None else [str(c) for c in names]
        if self.model == "gmm":  # rows with nothing observed: errors name the columns
            X = X[check_incomplete(X, np.ones(X.shape[0]), names)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = self._model(seed).fit(X)
        self._take_fitted(model, X.shape[0])
        self.__dict__.pop("_online_fit", None)

    def _model(self, seed: int) -> MissingNormal | GaussianMixture:
        """The unfitted estimator of the imputation model."""
        given: dict[str, Any] = {"backend": self.backend}
        if self.accelerate is not None:
            given["accelerate"] = self.accelerate
        if self.model == "normal":
            return MissingNormal(
                reg_covar=self.reg_covar, max_iter=self.max_iter, tol=self.tol,
                n_init=self.n_init, se=None, random_state=seed, **given,
            )
        return GaussianMixture(
            int(self.n_components), covariance_type=self.covariance_type,
            reg_covar=self.reg_covar, max_iter=self.max_iter, tol=self.tol,
            n_init=self.n_init, random_state=seed, **given,
        )

    def _take_fitted(self, model: MissingNormal | GaussianMixture, n_rows: float) -> None:
        """The fitted mixture of ``model`` (fitted on ``n_rows`` rows, by weight)."""
        if isinstance(model, MissingNormal):
            self.mean_, self.covariance_ = model.mean_, model.covariance_
            self.weights_ = np.ones(1)
            self.means_, self.covariances_ = model.mean_[None], model.covariance_[None]
            self.loglik_ = model.loglik_
        else:
            K, D = model.means_.shape
            structure = covariance_structure(self.covariance_type)
            self.weights_, self.means_ = model.weights_, model.means_
            self.covariances_ = full_covariances(structure, model.precisions_cholesky_, K, D)
            self.precisions_cholesky_ = model.precisions_cholesky_
            self.mean_ = model.weights_ @ model.means_
            self.loglik_ = model.lower_bound_ * n_rows
        self.n_iter_, self.converged_ = model.n_iter_, model.converged_

    # --- online EM (the imputation model's partial_fit / fit_stream) ---------------------------
    def partial_fit(
        self,
        X: Any,
        y: Any = None,
        *,
        t0: float = DEFAULT_T0,
        kappa: float = DEFAULT_KAPPA,
        n_rows: float | None = None,
    ) -> EMImputer:
        """One online EM step of the imputation model on the rows of ``X`` (its
        :meth:`emkit.GaussianMixture.partial_fit`, or MissingNormal's)."""
        model = self.__dict__.get("_online_fit")
        if model is None:
            self._check_params()
        X = np.asarray(check_X(self, X, reset=model is None, allow_nan=True), dtype=np.float64)
        if model is None:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            model = self._model(seed)
        model.partial_fit(X, t0=t0, kappa=kappa, n_rows=n_rows)
        self._take_fitted(model, model._online_fit[1].weight_seen)
        self._online_fit = model
        return self

    def fit_stream(
        self,
        batches: Iterable[Any],
        *,
        t0: float = DEFAULT_T0,
        kappa: float = DEFAULT_KAPPA,
        n_rows: float | None = None,
        stop_early: bool = False,
    ) -> EMImputer:
        """One online pass of the imputation model over ``batches`` (arrays or DataFrames of
        rows), as :meth:`emkit.GaussianMixture.fit_stream`."""
        self._check_params()
        first, items = first_and_rest(batches)

        def rows(X: Any, reset: bool) -> np.ndarray:
            return np.asarray(check_X(self, X, reset=reset, allow_nan=True), dtype=np.float64)

        stream = chain([rows(first, True)], (rows(item, False) for item in items))
        model = self._model(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model.fit_stream(stream, t0=t0, kappa=kappa, n_rows=n_rows, stop_early=stop_early)
        self._take_fitted(model, model._online_fit[1].weight_seen)
        self._online_fit = model
        return self

    def check_fitted_state(self) -> None:
        """Settings as ``fit`` checks them; the mixture (``weights_`` a simplex, ``means_``
        finite, ``covariances_`` positive definite, ``precisions_cholesky_`` valid factors for
        ``"gmm"``) and, for ``"normal"``, ``mean_`` / ``covariance_``."""
        self._check_params()
        means = fitted_array(self, "means_", 2)
        K, D = means.shape
        check_finite(means, "means_")
        check_weights(fitted_array(self, "weights_", 1), K, "weights_")
        covariances = fitted_array(self, "covariances_", 3)
        if covariances.shape != (K, D, D):
            raise InputError(f"covariances_ must have shape {(K, D, D)}, got {covariances.shape}")
        check_spd(covariances, "covariances_")
        check_fitted_common(self, D)
        if self.model == "normal":
            if K != 1:
                raise InputError(f"a 'normal' imputer has one component, means_ holds {K}")
            if check_normal_fitted(self, "mean_", "covariance_").shape != (D,):
                raise InputError(f"mean_ must hold {D} values, as means_ does")
            return
        if K != self.n_components:
            raise InputError(f"means_ holds {K} components, n_components is {self.n_components}")
        check_finite(fitted_array(self, "mean_", 1), "mean_")
        structure = covariance_structure(self.covariance_type)
        pc = fitted_array(self, "precisions_cholesky_", len(structure.shape(K, D)))
        structure.check_factors(pc, K, D, "precisions_cholesky_")

    # --- imputing -----------------------------------------------------------------------------
    def _fill(self, X: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if self.model == "normal":
            from emkit.models.missing import MissingNormalModel, MissingNormalParams

            model = MissingNormalModel(X.shape[1])
            return model.impute(MissingNormalParams(self.mean_, self.covariance_), X, rng)
        from emkit.models.missing import mixture_impute

        return mixture_impute(np.log(self.weights_), self.means_, self.covariances_, X, rng)

    def transform(self, X: Any) -> np.ndarray:
        """``X`` with every NaN cell filled (conditional mean, or a draw if sample_posterior)."""
        check_is_fitted(self, "means_")
        X = np.asarray(check_X(self, X, reset=False, allow_nan=True), dtype=np.float64)
        rng = None
        if self.sample_posterior:
            rs = check_random_state(self.random_state)
            rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        return self._fill(X, rng)

    def multiple_imputations(self, X: Any, n_imputations: int | None = None) -> list[np.ndarray]:
        """``m`` completed copies of ``X``: each from parameters refitted by EM on a bootstrap
        resample of ``X``'s rows, with missing cells drawn from ``x_m | x_o`` (Amelia II)."""
        m = int(self.n_imputations if n_imputations is None else n_imputations)
        if m < 1:
            raise ValueError(f"n_imputations must be >= 1, got {m}")
        if not hasattr(self, "means_"):
            self.fit(X)
        X = np.asarray(check_X(self, X, reset=False, allow_nan=True), dtype=np.float64)
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        n = X.shape[0]
        completed = []
        for _ in range(m):
            boot = EMImputer(**self.get_params())
            for attempt in range(20):
                idx = rng.integers(0, n, n)
                try:
                    boot._fit_params(X[idx], None, int(rng.integers(2**31 - 1)))
                    break
                except ValueError:  # a resample without enough values in some column
                    if attempt == 19:
                        raise
            completed.append(boot._fill(X, rng))
        return completed


