"""Independent univariate normal columns (a diagonal Gaussian), and log-normal columns.

Sums are taken about per-component centres ``c_k`` (those of a diagonal Gaussian,
:func:`~emkit.families.covariance.shared_origins`), so the variances
``Σ R (x − c_k)² / n_k − (Σ R (x − c_k) / n_k)²`` are exact at any offset.  The variance floor
is absolute, ``σ²_kd ≥ min_variance`` in squared data units (log units for the log-normal), as
scikit-learn's ``reg_covar``: a constraint, not a penalty, so EM stays monotone, and it does
not depend on how far apart the components are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emkit.families.base import (
    Family,
    check_origin,
    check_parameter,
    expect_params,
    reject_values,
)
from emkit.families.covariance import (
    Diag,
    moments_about,
    parameters_from_moments,
    shared_origins,
    start_centres,
)
from emkit.families.missing_cells import missing_weights, observed_sum, split_missing

_DIAG = Diag()

LOG_2PI = float(np.log(2.0 * np.pi))
LOG_BOUND = 300.0


@dataclass(frozen=True, eq=False)
class NormalParams:
    means: np.ndarray  # (K, D)
    variances: np.ndarray  # (K, D), ≥ floor
    floor: np.ndarray  # (D,) the variance floor (keeps extrapolated points feasible)


def _finite_column_means(T: np.ndarray) -> list[float]:
    means = []
    for column in T.T:
        ok = column[np.isfinite(column)]
        means.append(float(ok.mean()) if ok.size else 0.0)
    return means


class Normal(Family):
    """Independent normals per column, ``f(x|μ,σ²) = Π_d N(x_d | μ_d, σ²_d)``; M-step
    ``μ_k = Σ_n R_nk x_n / n_k``, ``σ²_k = max(Σ_n R_nk (x_n − μ_k)² / n_k, min_variance)``.

    ``min_variance`` is an absolute floor on every variance (squared data units), like
    scikit-learn's ``reg_covar``: it keeps a component on one point, or on equal values, from
    collapsing; data measured more finely than ``√min_variance`` need a smaller one.
    """

    name = "normal"
    handles_missing = True
    _keys: ClassVar[tuple[str, str]] = ("means", "variances")

    def __init__(self, min_variance: float = 1e-9, origin: Any = None):
        self.min_variance = float(min_variance)
        if not self.min_variance > 0.0:
            raise ValueError(f"min_variance must be positive, got {min_variance!r}")
        self.origin = None if origin is None else [float(v) for v in origin]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_variance={self.min_variance!r})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "min_variance": self.min_variance, "origin": self.origin}

    # the data the normal is fitted to (LogNormal: log x); ``values`` are checked already
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def _given_origin(self) -> np.ndarray | None:
        return None if self.origin is None else np.asarray(self.origin)

    def _origin(self, D: int) -> np.ndarray:
        return np.zeros(D) if self.origin is None else np.asarray(self.origin)

    def configure(self, X: Any) -> Normal:
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # check() rejects those values
            T = self._transform(X)
        return type(self)(self.min_variance, _finite_column_means(T))

    def log_prob(self, params: NormalParams, X: np.ndarray) -> np.ndarray:
        Y, missing = split_missing(self._transform(X))
        precisions = 1.0 / params.variances
        const = -0.5 * observed_sum(LOG_2PI + np.log(params.variances), missing)
        out = np.array(np.broadcast_to(const, (Y.shape[0], params.means.shape[0])))
        for k in range(params.means.shape[0]):  # exact squares; a (n, D) temporary each
            squares = np.square(Y - params.means[k])
            if missing is not None:  # observed cells only
                squares *= 1.0 - missing
            out[:, k] -= 0.5 * (squares @ precisions[k])
        return out

    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple:
        """``(Σ R (y − c_k), Σ R (y − c_k)², Σ R c_k)`` of ``y`` (x, or log x) about the centres of
        ``params`` (a start: the means under ``R``); missing cells add their expectations."""
        R = np.asarray(R, dtype=np.float64)
        Y = self._transform(X)
        mask = np.isnan(Y)
        missing = mask if mask.any() else None
        if params is None:
            if missing is not None:
                missing_weights(R, missing, params)  # raises: a start needs complete rows
            centres, labels = start_centres(Y, R, self._origin(Y.shape[1]))
        else:
            pc = 1.0 / np.sqrt(params.variances)
            centres, labels = shared_origins(_DIAG, params.means, pc, self._given_origin()), None
        s1, s2 = moments_about(_DIAG, Y, R, centres, labels, missing)
        if missing is not None:  # E_k[y − c] = μ − c, E_k[(y − c)²] = (μ − c)² + σ²
            weights = missing_weights(R, missing.astype(np.float64), params)
            offsets = params.means - centres
            s1 = s1 + weights * offsets
            s2 = s2 + weights * (offsets**2 + params.variances)
        return (s1, s2, R.sum(axis=0)[:, None] * centres)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> NormalParams:
        s1, s2, mass = sums
        means, variances = parameters_from_moments(_DIAG, nk, s1, s2, mass, 0.0)
        floor = np.full(s1.shape[1], self.min_variance)
        return NormalParams(means, np.maximum(variances, floor), floor)

    def n_parameters(self, params: NormalParams) -> int:
        return int(params.means.size + params.variances.size)

    def take(self, params: NormalParams, index: np.ndarray) -> NormalParams:
        return NormalParams(params.means[index], params.variances[index], params.floor)

    def sample(self, params: NormalParams, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, sd = params.means[k], np.sqrt(params.variances[k])
        return rng.normal(mean, sd, size=(n, mean.size))

    def flatten(self, params: NormalParams) -> np.ndarray:
        return np.concatenate([params.means.ravel(), np.log(params.variances).ravel()])

    def unflatten(self, vector: np.ndarray, like: NormalParams) -> NormalParams:
        shape, half = like.means.shape, like.means.size
        log_var = np.clip(vector[half:].reshape(shape), -LOG_BOUND, LOG_BOUND)
        variances = np.maximum(np.exp(log_var), like.floor)
        return NormalParams(vector[:half].reshape(shape), variances, like.floor)

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, NormalParams, self)
        means, variances = self._keys
        shape = (n_components, n_features)
        check_parameter(params.means, label(means), shape)
        check_parameter(params.variances, label(variances), shape, positive=True)
        check_origin(self.origin, n_features, self)

    def describe(self, params: NormalParams) -> dict[str, np.ndarray]:
        means, variances = self._keys
        return {means: params.means, variances: params.variances}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> NormalParams:
        means, variances = (np.asarray(arrays[key], dtype=np.float64) for key in self._keys)
        return NormalParams(means, variances, np.zeros(means.shape[1]))


class LogNormal(Normal):
    """Log-normal columns, ``f(x|μ,σ²) = Π_d N(log x_d | μ_d, σ²_d) / x_d`` (positive data);
    M-step: the normal M-step on ``log x`` (``μ``, ``σ²`` are the mean and variance of log x)."""

    name = "lognormal"
    positive_only = True
    _keys: ClassVar[tuple[str, str]] = ("log_means", "log_variances")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.log(np.asarray(X, dtype=np.float64))

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        reject_values(
            X, X < 0, names, "Negative values in data cannot be log-normal (x > 0 needed)"
        )
        reject_values(X, ~(X > 0), names, "Log-normal components need positive values (x > 0)")

    def init_features(self, X: np.ndarray) -> np.ndarray:
        return self._transform(X)

    def log_prob(self, params: NormalParams, X: np.ndarray) -> np.ndarray:
        jacobian = split_missing(self._transform(X))[0].sum(axis=1)  # observed cells
        return super().log_prob(params, X) - jacobian[:, None]

    def sample(self, params: NormalParams, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.exp(super().sample(params, k, n, rng))
