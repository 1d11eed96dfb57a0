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
from pathlib import Path
from typing import Any

import numpy as np

from emkit.engine.backend import one_blas_thread
from emkit.engine.data import SequenceData, check_lengths, sample_sequences, sequence_rows
from emkit.engine.loop import PieceEStep
from emkit.engine.protocol import ArrayData
from emkit.engine.sources import (
    CheckedStep,
    DataSourceError,
    PieceCheck,
    PieceStep,
    TableSource,
    check_one_of,
    feature_columns,
    located_error,
)
from emkit.engine.stats import sum_in_order
from emkit.engine.table_sequences import (
    SequenceIdError,
    check_runs_unique,
    has_missing,
    plain,
    runs_of,
)


def is_dask_collection(X: Any) -> bool:
    """True for a Dask array or DataFrame (without importing dask for anything else)."""
    if not type(X).__module__.startswith("dask"):
        return False
    from dask.base import is_dask_collection as dask_collection

    return bool(dask_collection(X))


class DaskData(TableSource):
    """The rows of a 2-D Dask array, or of the (numeric) columns of a Dask DataFrame, a
    partition (a block of whole rows) per piece (``columns``: the DataFrame's columns to read,
    or the names of the array's columns; ``labels``: which of an object array's columns hold
    labels).  Sequences (hidden Markov models): the
    DataFrame's column of sequence ids (``sequence``), or the sequences' ``lengths``; every
    sequence must lie within one partition.  ``holds``: the futures of data scattered to the
    cluster that the collection reads (:func:`scattered`), released with the source."""

    def __init__(
        self,
        X: Any,
        columns: list[str] | None = None,
        *,
        sequence: str | None = None,
        lengths: Any = None,
        holds: Any = (),
        labels: tuple[int, ...] = (),
    ):
        import dask.dataframe as dd

        self.holds = tuple(holds)  # scattered pieces the collection reads: kept while it lives
        check_one_of(sequence, lengths)
        ids = None
        if isinstance(X, dd.DataFrame):
            chosen = feature_columns(list(X.columns), columns, sequence, "the Dask DataFrame")
            if sequence is not None:
                ids = X[sequence]
            frame = X if chosen == list(X.columns) else X[chosen]
            names = [str(c) for c in frame.columns]
            kinds = list(frame.dtypes.items())
            self.text_columns = tuple(
                j for j, (_, kind) in enumerate(kinds) if _is_label_dtype(kind)
            )
            bad = [c for j, (c, kind) in enumerate(kinds)
                   if kind.kind not in "biuf" and j not in self.text_columns]
            if bad:
                raise DataSourceError(
                    f"column(s) {bad} of the Dask DataFrame hold neither numbers nor labels "
                    "(strings): choose other columns, or convert them"
                )
            array = frame.to_dask_array(lengths=True)
        else:
            if sequence is not None:
                raise DataSourceError(
                    "a Dask array has no columns to name sequences: give lengths=[...]"
                )
            array = X
            if array.ndim != 2:
                raise DataSourceError(f"a Dask array of rows must be 2-D, got shape {X.shape}")
            if columns is None:
                names = [f"x{j}" for j in range(array.shape[1])]
                self.named = False
            else:  # the names of the array's columns (rows scattered from a DataFrame)
                names = [str(c) for c in columns]
            self.text_columns = tuple(labels)
        if array.dtype.kind not in "biuf" and not self.text_columns:
            raise DataSourceError(f"the Dask array holds {array.dtype} values, not numbers")
        if any(np.isnan(c) for c in array.chunks[0]):
            array = array.compute_chunk_sizes()
        self.array = array.rechunk({1: -1})  # whole rows in every block
        self.columns = tuple(names)
        self.path = "the Dask collection"  # type: ignore[assignment]
        self.piece_list = ()
        self.partition_lengths: list[np.ndarray | None] = [None] * len(self.row_chunks)
        if ids is not None and sequence is not None:
            self._sequences_from_ids(ids, sequence)
        elif lengths is not None:
            self._sequences_from_lengths(lengths)

    @classmethod
    def read(cls, source: TableSource) -> DaskData:
        """The table of a Parquet or CSV source read by Dask (its partitions on the workers):
        the same columns, sequence column or lengths."""
        frame = dask_table(source.path, list(source.columns), source.sequence,
                           source.delimiter)
        if source.sequence is None and source.lengths is not None:
            return cls(frame, lengths=source.lengths)
        return cls(frame, columns=list(source.columns), sequence=source.sequence)

    def _sequences_from_ids(self, ids: Any, column: str) -> None:
        """Each partition's runs of equal ids (computed where the partitions are; only the
        runs come back), checked: no run continues into the next partition, no id twice."""
        import dask

        runs = dask.compute(*[dask.delayed(_runs)(part) for part in ids.to_delayed()])
        labels = self.labels()
        for label, (values, _) in zip(labels, runs, strict=True):
            if has_missing(values):
                raise DataSourceError(
                    f"the sequence column {column!r} of {label} has missing values: every row "
                    "needs the id of its sequence"
                )
        firsts = [(i, r) for i, r in enumerate(runs) if r[0].size]
        for (_, (before, _)), (i, (after, _)) in zip(firsts, firsts[1:], strict=False):
            if before[-1] == after[0]:
                raise DataSourceError(
                    f"sequence {plain(after[0])!r} of column {column!r} continues from an earlier "
                    f"partition into {labels[i]}: every sequence must lie within one "
                    f"partition (repartition at sequence boundaries)"
                )
        try:
            check_runs_unique(np.concatenate([r[0] for r in runs]), column)
        except SequenceIdError as exc:
            raise DataSourceError(f"the Dask DataFrame: {exc}") from None
        self.sequence = column
        self.lengths = np.concatenate([counts for _, counts in runs])
        self.partition_lengths = [counts for _, counts in runs]

    def _sequences_from_lengths(self, lengths: Any) -> None:
        """Given lengths, checked to end a sequence at every partition's end."""
        try:
            lengths = check_lengths(lengths, self.n_rows)
        except ValueError as exc:
            raise DataSourceError(f"the Dask array: {exc}") from None
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ends = np.cumsum(self.row_chunks)
        cut = np.searchsorted(offsets, ends)
        inside = np.flatnonzero(offsets[np.minimum(cut, offsets.size - 1)] != ends)
        if inside.size:
            i = int(inside[0])
            s = int(cut[i]) - 1
            raise DataSourceError(
                f"Dask partition {i} ends at row {int(ends[i]) - 1}, within sequence {s} (rows "
                f"{int(offsets[s])} to {int(offsets[s + 1]) - 1}): every sequence must lie "
                "within one partition (rechunk the rows at sequence ends)"
            )
        starts = np.concatenate([[0], cut[:-1]])
        self.lengths = lengths
        self.partition_lengths = [lengths[a:b] for a, b in zip(starts, cut, strict=True)]

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
        for block, lengths in zip(self.array.blocks, self.partition_lengths, strict=True):
            yield _piece(block.compute(), lengths, self.text_columns)

    def distinct_labels(self) -> dict[int, set[Any]]:
        """Every label column's distinct values, gathered from the partitions by Dask."""
        import dask

        found = dask.compute(*[
            dask.delayed(_labels_of)(block, self.text_columns)
            for block in self.array.to_delayed().ravel()
        ])
        return {j: set().union(*(part[j] for part in found)) for j in self.text_columns}

    def head(self, max_rows: int) -> Any:
        text = self.text_columns
        if self.lengths is None:
            return ArrayData.of(_rows(self.array[:max_rows].compute(), text))
        ends = np.cumsum(self.lengths)
        keep = max(1, int(np.searchsorted(ends, max_rows, side="right")))
        return _piece(self.array[: int(ends[keep - 1])].compute(), self.lengths[:keep], text)

    def sample(self, max_rows: int, rng: np.random.Generator) -> Any:
        """The rows :meth:`ArrayData.sample` would draw with ``rng`` (for sequences, the
        sequences :meth:`SequenceData.sample` would keep), gathered by Dask (only they come
        to the client)."""
        n = self.n_rows
        if self.lengths is not None:
            chosen = sample_sequences(self.lengths, max_rows, rng)
            if chosen is None:
                return _piece(self.array.compute(), self.lengths, self.text_columns)
            rows = sequence_rows(self.lengths, chosen)
            return _piece(self.array[rows].compute(), self.lengths[chosen], self.text_columns)
        if n <= max_rows:
            return self.head(n)
        rows = np.sort(rng.choice(n, size=int(max_rows), replace=False))
        return ArrayData.of(_rows(self.array[rows].compute(), self.text_columns))

    def sum_pieces(self, step: PieceStep, prepared: Any, check: PieceCheck | None = None) -> Any:
        """The sum of ``step(prepared, check(partition))`` over the partitions, each on the
        worker holding it, added in a fixed tree."""
        import dask

        if check is not None:
            step = CheckedStep(check, step)
        one_thread = _one_thread(step)
        shared_step = dask.delayed(one_thread, traverse=False)
        shared_params = dask.delayed(prepared, traverse=False)
        task = dask.delayed(_partition_stats, pure=True)
        blocks = self.array.to_delayed().ravel()
        parts = [
            task(shared_step, shared_params, block, label, lengths, self.text_columns)
            for block, label, lengths in zip(
                blocks, self.labels(), self.partition_lengths, strict=True
            )
        ]
        return dask.compute(_tree_sum(parts))[0]

    def __repr__(self) -> str:
        return (f"DaskData({self.n_rows} rows in {len(self.row_chunks)} partitions, "
                f"columns={list(self.columns)})")


def dask_table(
    path: Any, columns: list[str] | None, sequence: str | None = None, delimiter: str = ","
) -> Any:
    """The Dask DataFrame of a Parquet folder or file, or of a CSV file: the ``columns``
    (None: all) and the ``sequence`` column, if any."""
    import dask.dataframe as dd

    from emkit._tabular import PARQUET_SUFFIXES

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    chosen = None if columns is None else ([sequence] if sequence else []) + list(columns)
    if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
        return dd.read_parquet(path, columns=chosen)
    frame = dd.read_csv(path, sep=delimiter)
    return frame if chosen is None else frame[chosen]


def active_client() -> Any:
    """The active ``distributed.Client`` (``backend="dask"`` needs one)."""
    try:
        from distributed import default_client
    except ImportError:
        raise DataSourceError(
            "backend='dask' needs dask and distributed: pip install 'emkit[dask]'"
        ) from None
    try:
        return default_client()
    except ValueError:
        raise DataSourceError(
            "backend='dask' runs the E-steps on the workers of a distributed.Client: start one "
            "first (distributed.Client() for this machine, or Client('tcp://host:8786'))"
        ) from None


def scattered(X: Any, lengths: Any = None) -> DaskData:
    """In-memory rows ``X`` (an array or a DataFrame) sent once to the workers of the active
    Client, as about two partitions per worker thread (each of whole sequences, when
    ``lengths`` cut ``X`` into sequences): the E-steps then run there (``backend="dask"``)."""
    import dask
    import dask.array as da

    client = active_client()
    n = len(X)
    parts = max(1, min(n, 2 * sum(client.nthreads().values())))
    ends = np.linspace(0, n, parts + 1).round().astype(np.int64)
    if lengths is not None:
        lengths = check_lengths(lengths, n)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ends = offsets[np.unique(np.searchsorted(offsets, ends))]  # at sequence ends
    bounds = list(zip(ends[:-1].tolist(), ends[1:].tolist(), strict=True))
    names: list[str] | None = None
    labels: tuple[int, ...] = ()
    if hasattr(X, "iloc"):  # a pandas DataFrame: its columns' names and labels travel
        names = [str(c) for c in X.columns]
        labels = tuple(j for j, kind in enumerate(X.dtypes) if _is_label_dtype(kind))
        X = X.to_numpy(dtype=object if labels else None)
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataSourceError(f"backend='dask' takes 2-D rows, got shape {X.shape}")
    futures = client.scatter([X[a:b] for a, b in bounds])
    array = da.concatenate([
        da.from_delayed(dask.delayed(f), shape=(b - a, X.shape[1]), dtype=X.dtype)
        for f, (a, b) in zip(futures, bounds, strict=True)
    ])
    return DaskData(array, names, lengths=lengths, holds=futures, labels=labels)


def _rows(block: np.ndarray, text: tuple[int, ...] = ()) -> np.ndarray:
    """A partition's rows as floats; with label columns (``text``), as the object array a
    Parquet source reads: Python floats (NaN where missing) and strings (None where
    missing)."""
    X = np.asarray(block)
    if not text:
        return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)
    import pandas as pd

    out = np.empty(X.shape, dtype=object)
    for j in range(X.shape[1]):
        column = X[:, j]
        missing = np.asarray(pd.isna(column), dtype=bool)
        if j in text:
            out[:, j] = column
            out[missing, j] = None
        else:
            out[:, j] = np.where(missing, np.nan, column).astype(np.float64)
    return out


def _labels_of(block: np.ndarray, text: tuple[int, ...]) -> dict[int, set[Any]]:
    """The distinct labels of a partition's label columns (missing ones left out)."""
    import pandas as pd

    X = np.asarray(block)
    return {j: {v for v in X[:, j].tolist() if not pd.isna(v)} for j in text}


def _is_label_dtype(kind: Any) -> bool:
    """Object, string and categorical columns hold labels (NumPy and pandas dtypes say "O")."""
    return bool(kind.kind == "O")


def _piece(block: np.ndarray, lengths: np.ndarray | None, text: tuple[int, ...] = ()) -> Any:
    """A partition's rows, or its whole sequences (of the checked ``lengths``)."""
    X = _rows(block, text)
    if lengths is None:
        return ArrayData.of(X)
    return SequenceData(X, lengths, np.ones(lengths.size))


def _runs(ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """The runs of equal ids (first id, length) of a partition's column (on its worker)."""
    return runs_of(ids.to_numpy(dtype=object) if ids.dtype == object else ids.to_numpy())


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


def _partition_stats(
    step: PieceStep, prepared: Any, block: np.ndarray, label: str, lengths: np.ndarray | None,
    text: tuple[int, ...],
) -> Any:
    """One partition's statistics (on its worker); a ``ValueError`` names the partition."""
    _reuse_freed_memory()
    try:
        with one_blas_thread():  # the worker's threads are the parallelism
            return step(prepared, _piece(block, lengths, text))
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
