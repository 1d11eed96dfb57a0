"""Independent univariate normal columns (a diagonal Gaussian), and log-normal columns.

Sums are taken about a fixed ``origin`` (the training data's column means, set by
``configure``), so the variances ``Σ R (x − o)² / n_k − (Σ R (x − o) / n_k)²`` do not lose the
digits that the raw second moment of far-from-zero data would.  The variance floor is
``min_variance`` times the (weighted) variance of the whole data, which the M-step reads off the
sums of all components: a constraint ``σ² ≥ floor``, not a penalty, so EM stays monotone.
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
    safe_divide,
)
from emkit.families.missing_cells import missing_weights, observed_sum, split_missing

LOG_2PI = float(np.log(2.0 * np.pi))
LOG_BOUND = 300.0


@dataclass(frozen=True, eq=False)
class NormalParams:
    means: np.ndarray  # (K, D)
    variances: np.ndarray  # (K, D), ≥ floor
    floor: np.ndarray  # (D,) the variance floor of the fit (keeps extrapolated points feasible)


def _finite_column_means(T: np.ndarray) -> list[float]:
    means = []
    for column in T.T:
        ok = column[np.isfinite(column)]
        means.append(float(ok.mean()) if ok.size else 0.0)
    return means


class Normal(Family):
    """Independent normals per column, ``f(x|μ,σ²) = Π_d N(x_d | μ_d, σ²_d)``; M-step
    ``μ_k = Σ_n R_nk x_n / n_k``, ``σ²_k = max(Σ_n R_nk (x_n − μ_k)² / n_k, min_variance·var(x))``.
    """

    name = "normal"
    handles_missing = True
    _keys: ClassVar[tuple[str, str]] = ("means", "variances")

    def __init__(self, min_variance: float = 1e-6, origin: Any = None):
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

    def _centred(self, X: np.ndarray) -> np.ndarray:
        T = self._transform(X)
        return T - self._origin(T.shape[1])

    def _origin(self, D: int) -> np.ndarray:
        return np.zeros(D) if self.origin is None else np.asarray(self.origin)

    def configure(self, X: Any) -> Normal:
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # check() rejects those values
            T = self._transform(X)
        return type(self)(self.min_variance, _finite_column_means(T))

    def log_prob(self, params: NormalParams, X: np.ndarray) -> np.ndarray:
        Y, missing = split_missing(self._centred(X))
        offsets = params.means - self._origin(Y.shape[1])
        precisions = 1.0 / params.variances
        const = -0.5 * observed_sum(LOG_2PI + np.log(params.variances), missing)
        out = np.array(np.broadcast_to(const, (Y.shape[0], offsets.shape[0])))
        for k in range(offsets.shape[0]):  # exact squares; a (n, D) temporary per component
            squares = np.square(Y - offsets[k])
            if missing is not None:  # observed cells only
                squares *= 1.0 - missing
            out[:, k] -= 0.5 * (squares @ precisions[k])
        return out

    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple:
        Y, missing = split_missing(self._centred(X))
        s1, s2 = R.T @ Y, R.T @ np.square(Y)
        if missing is not None:  # E_k[y] = μ − o, E_k[y²] = (μ − o)² + σ²
            weights = missing_weights(R, missing, params)
            offsets = params.means - self._origin(Y.shape[1])
            s1 = s1 + weights * offsets
            s2 = s2 + weights * (offsets**2 + params.variances)
        return (s1, s2)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> NormalParams:
        s1, s2 = sums
        origin = self._origin(s1.shape[1])
        total = nk.sum()
        pooled_mean = s1.sum(axis=0) / total
        pooled_var = s2.sum(axis=0) / total - pooled_mean**2
        scale = np.where(pooled_var > 0, pooled_var, np.maximum((origin + pooled_mean) ** 2, 1.0))
        floor = self.min_variance * scale
        mean = safe_divide(s1, nk)
        variances = np.maximum(safe_divide(s2, nk) - mean**2, floor)
        return NormalParams(origin + mean, variances, floor)

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
