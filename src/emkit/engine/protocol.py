"""The contract between the engine and a model, and between the engine and the data.

A model is a small immutable object that knows its structure (number of components, family,
regularisation) and provides four pure functions; parameters are immutable values.  The
engine owns every loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


@runtime_checkable
class DataSource(Protocol):
    """Where the engine reads rows: batches for the E-step and a bounded sample for ``init``.

    ``pieces()`` yields in-memory parts of the data, in order, that together hold every row once
    (an in-memory source is one piece; an out-of-core one reads a piece at a time,
    :mod:`emkit.engine.sources`); ``sum_pieces(step, prepared)`` is ``Σ step(prepared, piece)``
    in the pieces' order, computed where the pieces are (here, or on Dask workers: the one
    place an E-step's statistics are summed); ``batches(max_rows)`` yields every row once, in
    order, at most ``max_rows`` per batch (a source of whole sequences may exceed it by one
    sequence); ``sample(max_rows, rng)`` is a source of at most ``max_rows`` rows drawn without
    replacement (the source itself when it is that small), so no ``init`` reads more than that.
    """

    @property
    def n_rows(self) -> int: ...

    def pieces(self) -> Iterator[Any]: ...

    def sum_pieces(self, step: Callable[[Any, Any], Any], prepared: Any) -> Any: ...

    def batches(self, max_rows: int) -> Iterator[Any]: ...

    def sample(self, max_rows: int, rng: np.random.Generator) -> DataSource: ...


INIT_SAMPLE_ROWS = 2**17  # rows an ``init`` sees at most (``DataSource.sample``)


@dataclass(frozen=True)
class Batch:
    """Rows ``X`` (a dense array or a SciPy sparse CSR matrix), their sample weights and, for
    models of a response (mixtures of regressions), the responses ``y`` of those rows."""

    X: Any
    weights: np.ndarray
    y: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True)
class ArrayData:
    """An in-memory data matrix split into row chunks on demand (bounded E-step memory).

    ``X`` is a dense ``(n, D)`` array or a SciPy sparse matrix (kept as CSR, whose row slices
    are cheap); ``y`` an optional response with one entry (or row) per row of ``X``.
    """

    X: Any
    weights: np.ndarray
    y: np.ndarray | None = None

    @classmethod
    def of(cls, X: Any, weights: Any = None, y: Any = None) -> ArrayData:
        if _is_sparse(X):
            X = X.tocsr()
        n = X.shape[0]
        weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        if weights.shape != (n,):
            raise ValueError(f"weights need one entry per row ({n}), got shape {weights.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.shape[0] != n:
                raise ValueError(f"y needs one entry per row of X ({n}), got shape {y.shape}")
        return cls(X, weights, y)

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def width(self) -> int:
        return self.X.shape[1]

    def take(self, rows: np.ndarray) -> ArrayData:
        """The rows ``rows`` (an index array or a boolean mask) as a new data set."""
        y = None if self.y is None else self.y[rows]
        return ArrayData(self.X[rows], self.weights[rows], y)

    def pieces(self) -> Iterator[ArrayData]:
        yield self

    def sum_pieces(self, step: Callable[[Any, Any], Any], prepared: Any) -> Any:
        """``step(prepared, self)``: the data are one piece, here."""
        return step(prepared, self)

    def batches(self, max_rows: int) -> Iterator[Batch]:
        n = self.n_rows
        step = max(1, int(max_rows))
        for start in range(0, n, step):
            stop = min(n, start + step)
            y = None if self.y is None else self.y[start:stop]
            yield Batch(self.X[start:stop], self.weights[start:stop], y)

    def sample(self, max_rows: int, rng: np.random.Generator) -> ArrayData:
        """At most ``max_rows`` rows drawn without replacement, in their original order; the
        data themselves (no draw from ``rng``) when there are no more rows than that."""
        if self.n_rows <= max_rows:
            return self
        rows = np.sort(rng.choice(self.n_rows, size=int(max_rows), replace=False))
        return self.take(rows)


def _is_sparse(X: Any) -> bool:
    from scipy import sparse

    return sparse.issparse(X)
