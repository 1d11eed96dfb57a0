"""``emkit.MissingNormal``: the MLE of a multivariate normal from rows with missing cells (NaN)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples

from emkit._validation import (
    InputError,
    check_finite,
    check_sample_weight,
    check_settings,
    check_spd,
    check_X,
)
from emkit.engine import ArrayData, ProgressCallback
from emkit.estimators._base import EMEstimator, check_fitted_common, fitted_array, fitted_scalar
from emkit.models.missing import MissingNormalModel, MissingNormalParams, MissingNormalStats


class EmptyRowsWarning(UserWarning):
    """Rows with every cell missing were left out of the fit (they carry no information)."""


def check_incomplete(
    X: np.ndarray, w: np.ndarray, names: Any = None, min_observed: int = 2, whole: bool = True
) -> np.ndarray:
    """Validate rows with NaN for a normal model; returns the mask of rows kept for fitting.

    A column with fewer than ``min_observed`` observed values (with positive weight), every column
    entirely missing, or no usable row gives an :class:`InputError`; rows with every cell missing
    are dropped with an :class:`EmptyRowsWarning` (they do not change the MLE).  ``whole=False``:
    ``X`` is a piece of the data (of an out-of-core source, or an online batch) for a model
    already built, whose statistics add to the others': its empty rows are dropped, no more
    (the rules above are the whole data's; the estimator counts the dropped rows).
    """
    if not whole:
        return ~np.isnan(X).all(axis=1)
    observed = ~np.isnan(X) & (w[:, None] > 0)
    counts = observed.sum(axis=0)
    label = (lambda j: f"{names[j]!r} (index {j})") if names is not None else (lambda j: f"{j}")
    for j in np.flatnonzero(counts == 0):
        raise InputError(
            f"column {label(int(j))} is entirely missing: nothing can be estimated for it; "
            "drop the column"
        )
    for j in np.flatnonzero(counts < min_observed):
        raise InputError(
            f"column {label(int(j))} has only {int(counts[j])} observed value(s); a variance "
            f"needs at least {min_observed}: drop the column or collect more data"
        )
    empty = np.isnan(X).all(axis=1)
    keep = ~empty
    if empty.any():
        rows = np.flatnonzero(empty)
        shown = ", ".join(str(int(i)) for i in rows[:5]) + (" …" if rows.size > 5 else "")
        warnings.warn(
            f"{rows.size} row(s) have every value missing (rows {shown}) and were left out of "
            "the fit: they carry no information about the distribution",
            EmptyRowsWarning,
            stacklevel=3,
        )
    if np.count_nonzero(keep & (w > 0)) < 2:
        raise InputError("fewer than 2 rows with an observed value: a covariance needs at least 2")
    return keep


def check_normal_fitted(estimator: Any, mean: str, covariance: str) -> np.ndarray:
    """A fitted normal's ``mean`` ``(D,)`` (finite) and ``covariance`` ``(D, D)`` (symmetric
    positive definite); returns the mean."""
    mu = fitted_array(estimator, mean, 1)
    check_finite(mu, mean)
    cov = fitted_array(estimator, covariance, 2)
    D = mu.shape[0]
    if cov.shape != (D, D):
        raise InputError(f"{covariance} must have shape {(D, D)}, got {cov.shape}")
    check_spd(cov, covariance, shared=True)
    return mu


class MissingNormal(DensityMixin, EMEstimator):
    """``x ~ N(μ, Σ)`` fitted by EM from rows with missing cells (NaN), under MCAR/MAR.

    The E-step works per missingness pattern (Little & Rubin 2002, §11.2): missing cells get their
    conditional mean ``μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)`` and the second moment gains the
    conditional covariance ``Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om``.  ``reg_covar=0`` (the default) gives the
    exact MLE.  Rows with every cell missing are dropped (with an :class:`EmptyRowsWarning`); a
    column entirely missing or with fewer than 2 observed values is an error.

    Fitted: ``mean_``, ``covariance_``, ``loglik_`` (observed-data log-likelihood, summed),
    ``mean_se_`` (standard errors of ``mean_``: ``se="information"`` from the observed
    information of μ at the fitted Σ, ``Σ_n w_n P_nᵀ Σ_oo,n⁻¹ P_n``; ``se="bootstrap"``: the sd of
    ``n_bootstrap`` refits on resampled rows), ``n_patterns_`` and ``n_empty_rows_``; the
    likelihood, the information and the patterns are statistics of the final E-step (no extra
    pass over the data).
    ``backend``: ``"local"`` or ``"dask"``, as for :class:`emkit.GaussianMixture`.
    """

    def __init__(
        self,
        *,
        tol: float = 1e-10,
        reg_covar: float = 0.0,
        max_iter: int = 1000,
        n_init: int = 1,
        se: str = "information",
        n_bootstrap: int = 200,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "squarem",
        verbose: int = 0,
        backend: str = "local",
    ):
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.se = se
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.warm_start = warm_start
        self.stopping = stopping
        self.accelerate = accelerate
        self.verbose = verbose
        self.backend = backend

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # --- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        callback: ProgressCallback | None = None,
    ) -> MissingNormal:
        """Fit by EM; ``sample_weight`` multiplies each row's contribution to the statistics."""
        model, data = self._fit_data(X, sample_weight=sample_weight)
        if self.se == "bootstrap" and not isinstance(data, ArrayData):
            raise InputError("se='bootstrap' refits on resampled rows held in memory: fit an "
                             "array, or use se='information' with an out-of-core source")
        result = self._run_engine(model, data, callback)
        if isinstance(data, ArrayData):
            self.n_empty_rows_ = _num_samples(X) - data.n_rows
        else:  # a source's rows weigh one each: the last E-step's weight counts those kept
            self.n_empty_rows_ = data.n_rows - round(result.stats.weight)
        if self.se == "bootstrap":
            self.mean_se_ = self._bootstrap_errors(data.X, data.weights)
        return self

    def _left_out(self, given: int, data: ArrayData, first: bool) -> None:
        """An online batch of ``given`` rows became ``data``: count the empty rows dropped."""
        self.n_empty_rows_ = (0 if first else self.n_empty_rows_) + given - data.n_rows

    def _fit_inputs(
        self, X: Any, *, reset: bool, model: Any = None, sample_weight: Any = None
    ) -> tuple[MissingNormalModel, ArrayData]:
        if model is None:
            self._check_hyperparameters()
        names = getattr(X, "columns", None)
        X = check_X(self, X, reset=reset, allow_nan=True, min_samples=1 if model else 2)
        if not reset and model is None and self.mean_.shape[0] != X.shape[1]:
            raise ValueError("warm_start=True needs data with the fitted number of columns")
        w = check_sample_weight(sample_weight, X)
        keep = check_incomplete(X, w, None if names is None else [str(c) for c in names],
                                whole=model is None)
        X64 = np.asarray(X[keep], dtype=np.float64)
        w = w[keep]
        if model is not None:
            return model, ArrayData(X64, w)
        n_rows = int(np.count_nonzero(w > 0))
        if n_rows <= X.shape[1] and self.reg_covar == 0:
            raise InputError(
                f"{n_rows} rows with positive weight for {X.shape[1]} columns: the MLE of a "
                f"{X.shape[1]}×{X.shape[1]} covariance needs more rows than columns (it would be "
                "singular); use fewer columns, more rows, or reg_covar > 0"
            )
        return self._build_model(X64, w), ArrayData(X64, w)

    def _set_final_stats(self, stats: MissingNormalStats) -> None:
        """What the last E-step measured at the returned parameters (no extra pass): ``loglik_``,
        ``n_patterns_`` and ``mean_se_ = √diag(I⁻¹)``, ``I = Σ w P_oᵀ Σ_oo⁻¹ P_o``."""
        self.loglik_ = float(stats.loglik)
        self.n_patterns_ = stats.n_patterns
        info = stats.mean_info
        if self.se == "information":
            self.mean_se_ = np.sqrt(np.diag(np.linalg.inv(info)))
        else:  # None, or "bootstrap" (refits after this)
            self.mean_se_ = np.full(info.shape[0], np.nan)

    def _check_hyperparameters(self) -> None:
        check_settings(
            self,
            (
                ("tol", 0, False),
                ("reg_covar", 0, False),
                ("max_iter", 0, True),
                ("n_init", 1, True),
                ("n_bootstrap", 2, True),
            ),
        )
        if self.se not in ("information", "bootstrap", None):
            raise ValueError(f"se must be 'information', 'bootstrap' or None, got {self.se!r}")

    def _build_model(self, X: np.ndarray, w: np.ndarray) -> MissingNormalModel:
        filled = np.where(np.isnan(X), 0.0, X)
        ww = np.where(np.isnan(X), 0.0, w[:, None])
        origin = (ww * filled).sum(axis=0) / ww.sum(axis=0)
        return MissingNormalModel(X.shape[1], origin=origin, reg_covar=float(self.reg_covar))

    def _start_params(self, model: Any, data: Any, rng: np.random.Generator) -> None:
        return None

    def _bootstrap_errors(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The sd of ``mean_`` over ``n_bootstrap`` refits on resampled rows."""
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        means = []
        for _ in range(int(self.n_bootstrap)):
            idx = rng.integers(0, X.shape[0], X.shape[0])
            refit = MissingNormal(
                tol=self.tol,
                reg_covar=self.reg_covar,
                max_iter=self.max_iter,
                se=None,
                accelerate=self.accelerate,
                random_state=int(rng.integers(2**31 - 1)),
            )
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    means.append(refit.fit(X[idx], sample_weight=w[idx]).mean_)
            except (ValueError, FloatingPointError):
                continue  # a resample without enough values in some column
        return np.std(np.asarray(means), axis=0, ddof=1)

    # --- fitted parameters --------------------------------------------------------------------
    def _set_fitted(self, params: MissingNormalParams) -> None:
        self.mean_ = params.mean
        self.covariance_ = params.covariance

    def _get_fitted_params(self) -> MissingNormalParams:
        return MissingNormalParams(self.mean_, self.covariance_)

    def check_fitted_state(self) -> None:
        """Settings as ``fit`` checks them; ``mean_`` finite, ``covariance_`` symmetric positive
        definite, ``mean_se_`` non-negative (NaN where not computed)."""
        self._check_hyperparameters()
        mean = check_normal_fitted(self, "mean_", "covariance_")
        D = check_fitted_common(self, mean.shape[0])
        fitted_scalar(self, "loglik_", float)
        se = self.__dict__.get("mean_se_")
        if se is not None:
            se = fitted_array(self, "mean_se_", 1)
            if se.shape != (D,) or np.any(se < 0) or np.isinf(se).any():
                raise InputError(f"mean_se_ must be {D} non-negative standard errors, got {se}")

    def _fitted_model(self) -> MissingNormalModel:
        return MissingNormalModel(self.mean_.shape[0], origin=self.mean_)

    # --- inference ----------------------------------------------------------------------------
    def _check_predict_X(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return np.asarray(check_X(self, X, reset=False, allow_nan=True), dtype=np.float64)

    def score_samples(self, X: Any) -> np.ndarray:
        """``log N(x_o | μ_o, Σ_oo)`` of every row on its observed cells (0 for empty rows)."""
        X = self._check_predict_X(X)
        return self._fitted_model().row_loglik(self._get_fitted_params(), X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean (weighted) observed-data log-likelihood per row."""
        ll = self.score_samples(X)
        if sample_weight is None:
            return float(ll.mean())
        return float(np.average(ll, weights=check_sample_weight(sample_weight, ll[:, None])))

    def impute(self, X: Any, random_state: Any = None, sample: bool = False) -> np.ndarray:
        """``X`` with NaN cells replaced by ``E[x_m | x_o]``, or with draws when ``sample``."""
        X = self._check_predict_X(X)
        rng = None
        if sample:
            rs = check_random_state(random_state)
            rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        return self._fitted_model().impute(self._get_fitted_params(), X, rng)

    def n_parameters(self) -> int:
        """Free parameters: ``D`` means + ``D(D+1)/2`` covariances."""
        self._check_fitted()
        D = self.mean_.shape[0]
        return int(D + D * (D + 1) // 2)

