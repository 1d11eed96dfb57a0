"""The contract between the engine and a model, and between the engine and the data.

A model is a small immutable object that knows its structure (number of components, family,
regularisation) and provides four pure functions; parameters are immutable values.  The
engine owns every loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from emkit.engine.stats import Stats

P = TypeVar("P")
S = TypeVar("S", bound=Stats)


@runtime_checkable
class Model(Protocol[P, S]):
    """What the engine needs from a model.

    ``prepare(params)`` computes, once per E-step, what every batch needs from ``params``
    (factors, log-weights, centres; models that need nothing return ``params``);
    ``e_step(prepare(params), batch)`` returns additive statistics of the batch *including* the
    batch's log-likelihood under ``params``; ``m_step(stats, params)`` returns the parameters
    that maximise the expected complete-data log-likelihood (plus ``log_prior``).
    """

    def init(self, data: Any, rng: np.random.Generator) -> P: ...

    def prepare(self, params: P) -> Any: ...

    def e_step(self, prepared: Any, batch: Any) -> S: ...

    def m_step(self, stats: S, params: P) -> P: ...

    def log_prior(self, params: P) -> float: ...

    def row_bytes(self, params: P) -> int:
        """Bytes of E-step temporaries per data row (sets the chunk size)."""
        ...


@runtime_checkable
class Flattenable(Protocol[P]):
    """Optional: an unconstrained vector view of the parameters (for SQUAREM extrapolation).

    ``unflatten(flatten(p), p)`` must return ``p``; any vector must map to feasible parameters.
    """

    def flatten(self, params: P) -> np.ndarray: ...

    def unflatten(self, vector: np.ndarray, like: P) -> P: ...


@dataclass(frozen=True)
class Batch:
    """Rows of a data matrix and their sample weights."""

    X: np.ndarray
    weights: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True)
class ArrayData:
    """An in-memory data matrix split into row chunks on demand (bounded E-step memory)."""

    X: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, weights: np.ndarray | None = None) -> ArrayData:
        if weights is None:
            weights = np.ones(X.shape[0], dtype=np.float64)
        return cls(X, np.asarray(weights, dtype=np.float64))

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def width(self) -> int:
        return self.X.shape[1]

    def batches(self, max_rows: int) -> Iterator[Batch]:
        n = self.n_rows
        step = max(1, int(max_rows))
        for start in range(0, n, step):
            stop = min(n, start + step)
            yield Batch(self.X[start:stop], self.weights[start:stop])
