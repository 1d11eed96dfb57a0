"""Exponential components for non-negative data: ``f(x | λ) = Π_d λ_d e^{−λ_d x_d}``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.families.base import Family, check_parameter, expect_params, reject_values, safe_divide
from emkit.families.missing_cells import missing_weights, observed_sum, split_missing

LOG_BOUND = 300.0  # unflatten keeps exp(±LOG_BOUND): every vector maps to finite parameters


@dataclass(frozen=True, eq=False)
class ExponentialParams:
    rates: np.ndarray  # (K, D), positive


class Exponential(Family):
    """Independent exponential columns, ``f(x|λ) = Π_d λ_d exp(−λ_d x_d)``; M-step
    ``λ_k = n_k / Σ_n R_nk x_n`` (the mean ``1/λ`` kept above ``min_mean`` × the data mean)."""

    name = "exponential"
    positive_only = True
    handles_missing = True

    def __init__(self, min_mean: float = 1e-10):
        self.min_mean = float(min_mean)
        if not self.min_mean > 0.0:
            raise ValueError(f"min_mean must be positive, got {min_mean!r}")

    def __repr__(self) -> str:
        return f"Exponential(min_mean={self.min_mean!r})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "min_mean": self.min_mean}

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        reject_values(
            X, X < 0, names, "Negative values in data cannot be exponential (x ≥ 0 needed)"
        )

    def log_prob(self, params: ExponentialParams, X: np.ndarray) -> np.ndarray:
        X, missing = split_missing(X)
        return observed_sum(np.log(params.rates), missing) - X @ params.rates.T

    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple:
        X, missing = split_missing(X)
        sums = R.T @ X
        if missing is not None:  # E_k[x_d] = 1 / λ_kd
            sums = sums + missing_weights(R, missing, params) / params.rates
        return (sums,)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> ExponentialParams:
        data_mean = sums[0].sum(axis=0) / nk.sum()
        floor = np.maximum(self.min_mean * data_mean, np.finfo(np.float64).tiny)
        return ExponentialParams(1.0 / np.maximum(safe_divide(sums[0], nk), floor))

    def n_parameters(self, params: ExponentialParams) -> int:
        return int(params.rates.size)

    def take(self, params: ExponentialParams, index: np.ndarray) -> ExponentialParams:
        return ExponentialParams(params.rates[index])

    def sample(
        self, params: ExponentialParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        rates = params.rates[k]
        return rng.exponential(1.0 / rates, size=(n, rates.size))

    def flatten(self, params: ExponentialParams) -> np.ndarray:
        return np.log(params.rates).ravel()

    def unflatten(self, vector: np.ndarray, like: ExponentialParams) -> ExponentialParams:
        rates = np.exp(np.clip(vector, -LOG_BOUND, LOG_BOUND))
        return ExponentialParams(rates.reshape(like.rates.shape))

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, ExponentialParams, self)
        check_parameter(params.rates, label("rates"), (n_components, n_features), positive=True)

    def describe(self, params: ExponentialParams) -> dict[str, np.ndarray]:
        return {"rates": params.rates}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> ExponentialParams:
        return ExponentialParams(np.asarray(arrays["rates"], dtype=np.float64))
