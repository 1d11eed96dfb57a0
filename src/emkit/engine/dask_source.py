"""A Dask array or DataFrame as a data source: each E-step runs on the workers that hold the
partitions, and only statistics come back.

``sum_pieces`` is one map over the row partitions (each task: the piece's statistics by the
engine's chunked E-step, one thread per task) and a pairwise tree of additions in the
partitions' order, computed by ``dask.compute`` (the active ``distributed.Client`` if there is
one).  The prepared parameters and the step go into the graph once per E-step; nothing of size
N returns to the client.  The tree's shape depends only on the number of partitions, so for a
given partitioning the statistics are identical at any number of workers.  A task lost with its
worker is recomputed by Dask (the tasks are pure), so the fit is the same or stops with Dask's
error.  ``dask`` is imported only when such a collection is given (the ``dask`` extra).
"""

from __future__ import annotations

import ctypes
from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np

from emkit.engine.backend import one_blas_thread
from emkit.engine.loop import PieceEStep
from emkit.engine.protocol import ArrayData
from emkit.engine.sources import (
    CheckedStep,
    DataSourceError,
    PieceStep,
    TableSource,
    located_error,
)
from emkit.engine.stats import sum_in_order


def is_dask_collection(X: Any) -> bool:
    """True for a Dask array or DataFrame (without importing dask for anything else)."""
    if not type(X).__module__.startswith("dask"):
        return False
    from dask.base import is_dask_collection as dask_collection

    return bool(dask_collection(X))


class DaskData(TableSource):
    """The rows of a 2-D Dask array, or of the (numeric) columns of a Dask DataFrame, a
    partition (a block of whole rows) per piece."""

    def __init__(self, X: Any, columns: list[str] | None = None):
        import dask.dataframe as dd

        if isinstance(X, dd.DataFrame):
            frame = X if columns is None else X[list(columns)]
            names = [str(c) for c in frame.columns]
            bad = [c for c, kind in frame.dtypes.items() if kind.kind not in "biuf"]
            if bad:
                raise DataSourceError(
                    f"column(s) {bad} of the Dask DataFrame are not numeric: choose numeric "
                    "columns"
                )
            array = frame.to_dask_array(lengths=True)
        else:
            array = X
            if array.ndim != 2:
                raise DataSourceError(f"a Dask array of rows must be 2-D, got shape {X.shape}")
            names = [f"x{j}" for j in range(array.shape[1])]
            self.named = False
        if array.dtype.kind not in "biuf":
            raise DataSourceError(f"the Dask array holds {array.dtype} values, not numbers")
        if any(np.isnan(c) for c in array.chunks[0]):
            array = array.compute_chunk_sizes()
        self.array = array.rechunk({1: -1})  # whole rows in every block
        self.columns = tuple(names)
        self.path = "the Dask collection"  # type: ignore[assignment]
        self.piece_list = ()

    @property
    def n_rows(self) -> int:
        return int(self.array.shape[0])

    @property
    def row_chunks(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.array.chunks[0])

    def labels(self) -> list[str]:
        return [f"Dask partition {i}" for i in range(len(self.row_chunks))]

    def pieces(self) -> Any:
        """The partitions computed here, one at a time (``fit_stream``, checks)."""
        for block in self.array.blocks:
            yield ArrayData.of(_float_rows(block.compute()))

    def head(self, max_rows: int) -> ArrayData:
        return ArrayData.of(_float_rows(self.array[:max_rows].compute()))

    def sample(self, max_rows: int, rng: np.random.Generator) -> ArrayData:
        """The rows :meth:`ArrayData.sample` would draw with ``rng``, gathered by Dask (only
        they come to the client)."""
        n = self.n_rows
        if n <= max_rows:
            return self.head(n)
        rows = np.sort(rng.choice(n, size=int(max_rows), replace=False))
        return ArrayData.of(_float_rows(self.array[rows].compute()))

    def sum_pieces(self, step: PieceStep, prepared: Any) -> Any:
        import dask

        one_thread = _one_thread(step)
        shared_step = dask.delayed(one_thread, traverse=False)
        shared_params = dask.delayed(prepared, traverse=False)
        task = dask.delayed(_partition_stats, pure=True)
        parts = [
            task(shared_step, shared_params, block, label)
            for block, label in zip(self.array.to_delayed().ravel(), self.labels(), strict=True)
        ]
        return dask.compute(_tree_sum(parts))[0]

    def __repr__(self) -> str:
        return (f"DaskData({self.n_rows} rows in {len(self.row_chunks)} partitions, "
                f"columns={list(self.columns)})")


def _float_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@cache
def _reuse_freed_memory() -> None:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every E-step temporary is then a fresh mapping and freed
    memory goes straight back to the OS, so a partition's E-step ran twice as long as in the
    client (1e6 rows, 16 x 16 full: 0.90 s against 0.45 s).  Once per worker process: map only
    blocks above 64 MiB, give back free memory above 256 MiB (0.45-0.50 s)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 2**20)
    libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20)


def _partition_stats(step: PieceStep, prepared: Any, block: np.ndarray, label: str) -> Any:
    """One partition's statistics (on its worker); a ``ValueError`` names the partition."""
    _reuse_freed_memory()
    try:
        with one_blas_thread():  # the worker's threads are the parallelism
            return step(prepared, ArrayData.of(_float_rows(block)))
    except ValueError as exc:
        raise located_error(exc, label) from None


def _tree_sum(parts: list[Any]) -> Any:
    """Pairwise additions, ``((p0 + p1) + (p2 + p3)) + …``: a fixed order for a given count."""
    import dask

    add = dask.delayed(_add_two, pure=True)
    while len(parts) > 1:
        paired = [add(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = paired + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def _add_two(a: Any, b: Any) -> Any:
    return sum_in_order([a, b]) if (a is not None or b is not None) else None


def _one_thread(step: PieceStep) -> PieceStep:
    """The step with its piece's batches on one thread: a Dask worker's threads are the
    parallelism (and the sum order no longer depends on the client's core count)."""
    if isinstance(step, CheckedStep):
        return replace(step, step=_one_thread(step.step))
    if isinstance(step, PieceEStep):
        return replace(step, n_jobs=1)
    return step
