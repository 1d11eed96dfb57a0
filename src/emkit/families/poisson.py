"""Poisson components for counts: ``f(x | λ) = Π_d λ_d^{x_d} e^{−λ_d} / x_d!``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from emkit.families.base import (
    Family,
    check_parameter,
    column_label,
    expect_params,
    reject_values,
    safe_divide,
)
from emkit.families.missing_cells import missing_weights, observed_sum, split_missing


class NonIntegerCountsWarning(UserWarning):
    """Counts that are not whole numbers were given to the Poisson family."""


@dataclass(frozen=True, eq=False)
class PoissonParams:
    rates: np.ndarray  # (K, D), positive


class Poisson(Family):
    """Independent Poisson counts per column; M-step ``λ_k = Σ_n r_nk x_n / n_k``."""

    name = "poisson"
    positive_only = True
    discrete = True
    handles_missing = True

    def __init__(self, min_rate: float = 1e-10):
        self.min_rate = float(min_rate)

    def config(self):
        return {"name": self.name, "min_rate": self.min_rate}

    def check(self, X, names=None):
        reject_values(X, X < 0, names, "Negative values in data cannot be Poisson counts")
        fractional = X != np.round(X)
        if X.dtype.kind == "f":
            fractional &= ~np.isnan(X)
        if fractional.any():
            i, j = np.argwhere(fractional)[0]
            warnings.warn(
                f"column {column_label(j, names)} holds {X[i, j].item()!r} at row {i} "
                f"({int(fractional.sum())} non-integer value(s) in all): the Poisson family "
                "treats them as counts (a quasi-likelihood); round them, or model the column "
                "with the 'gamma' or 'normal' family",
                NonIntegerCountsWarning,
                stacklevel=4,
            )

    def log_prob(self, params, X):
        X, missing = split_missing(X)
        log_rates = np.log(params.rates)
        rates = observed_sum(params.rates, missing)
        return X @ log_rates.T - rates - gammaln(X + 1.0).sum(axis=1)[:, None]

    def accumulate(self, params, X, R):
        X, missing = split_missing(X)
        sums = R.T @ X
        if missing is not None:  # E_k[x_d] = λ_kd
            sums = sums + missing_weights(R, missing, params) * params.rates
        return (sums,)

    def m_step(self, sums, nk, params):
        return PoissonParams(np.maximum(safe_divide(sums[0], nk), self.min_rate))

    def n_parameters(self, params):
        return int(params.rates.size)

    def take(self, params, index):
        return PoissonParams(params.rates[index])

    def sample(self, params, k, n, rng):
        return rng.poisson(params.rates[k], size=(n, params.rates.shape[1])).astype(np.float64)

    def flatten(self, params):
        return np.log(params.rates).ravel()

    def unflatten(self, vector, like):
        rates = np.exp(np.clip(vector, -300.0, 300.0))  # any vector: finite rates
        return PoissonParams(rates.reshape(like.rates.shape))

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, PoissonParams, self)
        check_parameter(params.rates, label("rates"), (n_components, n_features), positive=True)

    def describe(self, params):
        return {"rates": params.rates}

    def restore(self, arrays):
        return PoissonParams(np.asarray(arrays["rates"], dtype=np.float64))
