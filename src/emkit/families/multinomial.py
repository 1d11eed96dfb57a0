"""Multinomial components for rows of counts over D categories (word counts, symbol tallies).

``f(x | p) = n! / Π_d x_d! · Π_d p_d^{x_d}`` with ``n = Σ_d x_d``, which may differ between
rows.  The sums are ``Σ_n R_nk x_n`` and the M-step normalises them, ``p_k ∝ Σ_n R_nk x_n``
(kept ≥ ``min_probability``).  A missing count leaves the row's total unknown, so a row
is observed or missing as a whole (``handles_missing`` is False).  ``n_trials`` (the count per
row) is needed only to ``sample``; ``configure`` takes it from the data when every row has
the same total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from emkit.families.base import Family, check_probability_rows, expect_params, reject_values
from emkit.families.categorical import project_simplex_floor, softmax_rows


@dataclass(frozen=True, eq=False)
class MultinomialParams:
    probabilities: np.ndarray  # (K, D), rows sum to one


class Multinomial(Family):
    """Counts over D categories per row, ``f(x|p) = n!/Πx_d! Π p_d^{x_d}``; M-step
    ``p_k = Σ_n R_nk x_n / Σ_n R_nk n_n`` (each probability ≥ ``min_probability``)."""

    name = "multinomial"
    positive_only = True
    discrete = True

    def __init__(self, n_trials: int | None = None, min_probability: float = 1e-10):
        self.min_probability = float(min_probability)
        if not 0.0 < self.min_probability < 0.5:
            raise ValueError(f"min_probability must lie in (0, 0.5), got {min_probability!r}")
        if n_trials is not None and not (
            isinstance(n_trials, (int, np.integer)) and int(n_trials) >= 1
        ):
            raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
        self.n_trials = None if n_trials is None else int(n_trials)

    def __repr__(self) -> str:
        return f"Multinomial(n_trials={self.n_trials!r}, min_probability={self.min_probability!r})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "n_trials": self.n_trials,
                "min_probability": self.min_probability}

    def configure(self, X: Any) -> Multinomial:
        """A copy whose ``n_trials`` is the rows' common total (unless given or totals differ)."""
        if self.n_trials is not None:
            return self
        X = np.asarray(X, dtype=np.float64)
        totals = X[np.isfinite(X).all(axis=1)].sum(axis=1)
        common = totals.size and np.all(totals == totals[0]) and totals[0] >= 1
        n_trials = int(totals[0]) if common and float(totals[0]).is_integer() else None
        return Multinomial(n_trials, self.min_probability)

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        reject_values(X, X < 0, names, "Negative values in data cannot be multinomial counts")
        reject_values(X, X != np.round(X), names, "Multinomial counts must be whole numbers")

    def init_features(self, X: np.ndarray) -> np.ndarray:
        """Each row's proportions (so starts group rows by composition, not by size)."""
        X = np.asarray(X, dtype=np.float64)
        return X / np.maximum(X.sum(axis=1, keepdims=True), 1.0)

    # --- the E- and M-step --------------------------------------------------------------------
    def log_prob(self, params: MultinomialParams, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        norm = gammaln(X.sum(axis=1) + 1.0) - gammaln(X + 1.0).sum(axis=1)
        return X @ np.log(params.probabilities).T + norm[:, None]

    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple:
        return (np.asarray(R, dtype=np.float64).T @ np.asarray(X, dtype=np.float64),)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> MultinomialParams:
        return MultinomialParams(project_simplex_floor(sums[0], self.min_probability))

    # --- bookkeeping --------------------------------------------------------------------------
    def n_parameters(self, params: MultinomialParams) -> int:
        K, D = params.probabilities.shape
        return int(K * (D - 1))

    def take(self, params: MultinomialParams, index: np.ndarray) -> MultinomialParams:
        return MultinomialParams(params.probabilities[index])

    def sample(
        self, params: MultinomialParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        if self.n_trials is None:
            raise ValueError(
                "sampling needs n_trials (the count per row): give Multinomial(n_trials=...); "
                "it is taken from the data only when every row has the same total"
            )
        return rng.multinomial(self.n_trials, params.probabilities[k], size=n).astype(np.float64)

    def flatten(self, params: MultinomialParams) -> np.ndarray:
        return np.log(params.probabilities).ravel()

    def unflatten(self, vector: np.ndarray, like: MultinomialParams) -> MultinomialParams:
        logits = np.asarray(vector, dtype=np.float64).reshape(like.probabilities.shape)
        return MultinomialParams(softmax_rows(logits))

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, MultinomialParams, self)
        shape = (n_components, n_features)
        check_probability_rows(params.probabilities, label("probabilities"), shape)

    def describe(self, params: MultinomialParams) -> dict[str, np.ndarray]:
        return {"probabilities": params.probabilities}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> MultinomialParams:
        return MultinomialParams(np.asarray(arrays["probabilities"], dtype=np.float64))
