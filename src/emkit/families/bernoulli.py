"""Bernoulli components for binary data: ``f(x | p) = Π_d p_d^{x_d} (1 − p_d)^{1 − x_d}``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit._validation import InputError
from emkit.families.base import (
    Family,
    check_parameter,
    expect_params,
    expit,
    logit,
    reject_values,
    safe_divide,
)
from emkit.families.missing_cells import missing_weights, observed_sum, split_missing


@dataclass(frozen=True, eq=False)
class BernoulliParams:
    probabilities: np.ndarray  # (K, D), within [min_probability, 1 − min_probability]


class Bernoulli(Family):
    """Independent binary columns, ``f(x|p) = Π_d p_d^{x_d} (1−p_d)^{1−x_d}``; M-step
    ``p_k = clip(Σ_n R_nk x_n / n_k, ε, 1 − ε)`` with ``ε = min_probability`` (log_prob finite)."""

    name = "bernoulli"
    positive_only = True
    discrete = True
    handles_missing = True

    def __init__(self, min_probability: float = 1e-10):
        self.min_probability = float(min_probability)
        if not 0.0 < self.min_probability < 0.5:
            raise ValueError(f"min_probability must lie in (0, 0.5), got {min_probability!r}")

    def __repr__(self) -> str:
        return f"Bernoulli(min_probability={self.min_probability!r})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "min_probability": self.min_probability}

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        bad = (X != 0.0) & (X != 1.0)
        reject_values(X, bad, names, "Bernoulli components need binary values (0 or 1)")

    def _clip(self, p: np.ndarray) -> np.ndarray:
        return np.clip(p, self.min_probability, 1.0 - self.min_probability)

    def log_prob(self, params: BernoulliParams, X: np.ndarray) -> np.ndarray:
        X, missing = split_missing(X)
        p = params.probabilities
        log1m = np.log1p(-p)
        return X @ (np.log(p) - log1m).T + observed_sum(log1m, missing)

    def accumulate(self, params: BernoulliParams | None, X: np.ndarray, R: np.ndarray) -> tuple:
        X, missing = split_missing(X)
        sums = R.T @ X
        if missing is not None:  # E_k[x_d] = p_kd
            weights = missing_weights(R, missing, params)  # raises when params is None
            assert params is not None
            sums = sums + weights * params.probabilities
        return (sums,)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> BernoulliParams:
        return BernoulliParams(self._clip(safe_divide(sums[0], nk)))

    def n_parameters(self, params: BernoulliParams) -> int:
        return int(params.probabilities.size)

    def take(self, params: BernoulliParams, index: np.ndarray) -> BernoulliParams:
        return BernoulliParams(params.probabilities[index])

    def sample(
        self, params: BernoulliParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        p = params.probabilities[k]
        return (rng.random((n, p.size)) < p).astype(np.float64)

    def flatten(self, params: BernoulliParams) -> np.ndarray:
        return logit(params.probabilities).ravel()

    def unflatten(self, vector: np.ndarray, like: BernoulliParams) -> BernoulliParams:
        return BernoulliParams(self._clip(expit(vector)).reshape(like.probabilities.shape))

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, BernoulliParams, self)
        what = label("probabilities")
        p = check_parameter(params.probabilities, what, (n_components, n_features), positive=True)
        if np.any(p >= 1.0):
            raise InputError(f"{what} must lie strictly between 0 and 1")

    def describe(self, params: BernoulliParams) -> dict[str, np.ndarray]:
        return {"probabilities": params.probabilities}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> BernoulliParams:
        return BernoulliParams(np.asarray(arrays["probabilities"], dtype=np.float64))
