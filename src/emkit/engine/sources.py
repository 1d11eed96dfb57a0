"""Out-of-core data sources: a Parquet dataset or a CSV file, read a piece at a time.

A piece is one Parquet row group, or one block of CSV rows; each E-step reads the pieces in order
(the next one read and checked in a thread while the engine works on this one) and sums
their statistics (:func:`emkit.engine.loop.expected_stats`), so the fit equals the in-memory fit
of the same rows to rounding.  ``sample(max_rows, rng)`` draws the rows an in-memory
:class:`~emkit.engine.protocol.ArrayData` of the same rows would draw (the same call on ``rng``)
and reads only those, so both paths start from the same rows.

Columns of numbers (integers, floats, booleans) and of labels (strings); a null is a missing
cell (NaN, or None among labels).  A table with label columns reads as an object array, as a
DataFrame with such columns does in memory; :meth:`TableSource.distinct_labels` gives every
label column's values over all pieces (so that a family's categories can be those of the whole
data, not of the rows that build the model).  A source
of sequences (hidden Markov models) names the column of sequence ids (``sequence="id"``) or
gives the sequences' ``lengths``; its pieces then hold whole sequences
(:mod:`emkit.engine.table_sequences`).  Reading needs ``pyarrow`` (the ``parquet`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from emkit.engine.data import check_lengths
from emkit.engine.protocol import ArrayData, Batch
from emkit.engine.stats import sum_in_order
from emkit.engine.table_sequences import (
    SequenceCut,
    SequenceIdError,
    head_sequences,
    run_lengths,
    sample_sequence_pieces,
    sequence_cuts,
    whole_sequences,
)

CSV_BLOCK_BYTES = 16 * 2**20  # bytes of CSV text per piece
T = TypeVar("T")


class DataSourceError(ValueError):
    """A file of a data source cannot be read as the source's table (named in the message)."""


def _arrow() -> Any:
    try:
        import pyarrow
    except ImportError:  # pragma: no cover - the parquet extra is part of the test extra
        raise DataSourceError(
            "reading Parquet or CSV sources needs pyarrow: pip install 'emkit[parquet]'"
        ) from None
    return pyarrow


@dataclass(frozen=True)
class Piece:
    """One readable part of a table: a file and, in a Parquet file, a row group."""

    path: Path
    row_group: int
    n_rows: int


class TableSource:
    """What Parquet and CSV sources share: pieces of known size, numeric columns, a sample;
    for a table of sequences (``lengths`` known), pieces of whole sequences."""

    path: Path
    columns: tuple[str, ...]
    piece_list: tuple[Piece, ...]
    named = True  # the columns have names of their own (a Dask array's are x0, x1, …)
    sequence: str | None = None  # the column of sequence ids, if the lengths come from one
    lengths: np.ndarray | None = None  # rows of every sequence, in order (None: rows alone)
    cuts: tuple[SequenceCut, ...] = ()  # where the pieces of whole sequences end
    text_columns: tuple[int, ...] = ()  # the columns of labels (strings), by position
    delimiter = ","  # a CSV file's field separator (a Dask reader of the table needs it)

    @property
    def n_rows(self) -> int:
        return sum(p.n_rows for p in self.piece_list)

    @property
    def width(self) -> int:
        return len(self.columns)

    @property
    def has_sequences(self) -> bool:
        return self.lengths is not None

    def pieces(self) -> Iterator[Any]:
        """Every piece as an in-memory data set, in order: rows (:class:`ArrayData`), or whole
        sequences (:class:`SequenceData`) for a table of sequences."""
        if self.lengths is None:
            return self._row_pieces()
        return whole_sequences(self._row_pieces(), self.lengths, self.cuts)

    def _row_pieces(self) -> Iterator[ArrayData]:
        """The pieces as stored (files' row groups or blocks), in order."""
        raise NotImplementedError

    def _row_labels(self) -> list[str]:
        return [_where(piece) for piece in self.piece_list]

    def labels(self) -> list[str]:
        """Where each piece is (a file and row group; for sequences, the stored pieces its rows
        come from and its sequences), for error messages."""
        stored = self._row_labels()
        if self.lengths is None:
            return stored
        return [f"{self._span(cut.begins, cut.last)}, sequences {cut.first} to {cut.stop - 1}"
                for cut in self.cuts]

    def _span(self, first: int, last: int) -> str:
        """Where the stored pieces ``first`` to ``last`` are."""
        a, b = self.piece_list[first], self.piece_list[last]
        if first == last or (a.path == b.path and a.row_group < 0):
            return _where(b)
        if a.path == b.path:
            return f"{a.path} (row groups {a.row_group} to {b.row_group})"
        return f"{_where(a)} to {_where(b)}"

    def _set_sequences(self, sequence: str | None, lengths: Any) -> None:
        """Read the sequences' lengths from the column ``sequence`` (or check the given
        ``lengths``) and cut the stored pieces at sequence ends."""
        check_one_of(sequence, lengths)
        if sequence is None and lengths is None:
            return
        where = self._row_labels()
        if sequence is not None:
            try:
                ids = (_id_values(columns[0]) for columns in self._stored_columns([sequence]))
                lengths = run_lengths(ids, sequence, where)
            except SequenceIdError as exc:
                raise DataSourceError(f"{self.path}: {exc}") from None
        else:
            try:
                lengths = check_lengths(lengths, self.n_rows)
            except ValueError as exc:
                raise DataSourceError(f"{self.path}: {exc}") from None
        self.sequence, self.lengths = sequence, lengths
        self.cuts = sequence_cuts([p.n_rows for p in self.piece_list], lengths)

    def _stored_columns(self, names: Sequence[str]) -> Iterator[list[Any]]:
        """The Arrow columns ``names`` alone (label columns read as in the pieces), a stored
        piece at a time: a pass that needs a few columns reads only those."""
        raise NotImplementedError

    def sum_pieces(self, step: PieceStep, prepared: Any, check: PieceCheck | None = None) -> Any:
        """``Σ step(prepared, check(piece))`` over the pieces, in order, read here (the E-step):
        the next piece is read and checked in a thread while ``step`` runs on this one."""
        return sum_in_order(
            _located(step, prepared, label, piece)
            for label, _, piece in self.checked_pieces(check)
        )

    def checked_pieces(self, check: PieceCheck | None = None) -> Iterator[tuple[str, int, Any]]:
        """``(where, rows read, check(piece))`` of every piece, in order (a check may drop
        rows; its error names the piece and its rows), the next one read and checked in a
        thread while the caller works on this one."""
        return read_ahead(self._checked(check))

    def _checked(self, check: PieceCheck | None) -> Iterator[tuple[str, int, Any]]:
        start = 0
        for label, data in zip(self.labels(), self.pieces(), strict=True):
            stop = start + data.n_rows
            try:
                checked = data if check is None else check(data)
            except ValueError as exc:
                raise located_error(exc, label, start, stop) from None
            yield label, data.n_rows, checked
            start = stop

    def batches(self, max_rows: int) -> Iterator[Batch]:
        for piece in self.pieces():
            yield from piece.batches(max_rows)

    def head(self, max_rows: int) -> Any:
        """The first ``max_rows`` rows (or all of them), in memory; for sequences, the first
        whole sequences within ``max_rows`` rows (at least one)."""
        if self.lengths is not None:
            return head_sequences(self.pieces(), max_rows)
        parts, count = [], 0
        for piece in self.pieces():
            if count >= max_rows:
                break
            parts.append(piece.X[: max_rows - count])
            count += parts[-1].shape[0]
        return ArrayData.of(np.concatenate(parts) if parts else self._empty())

    def sample(self, max_rows: int, rng: np.random.Generator) -> Any:
        """The rows :meth:`ArrayData.sample` of the whole table would draw with ``rng`` (all of
        them when there are no more than ``max_rows``), in one pass over the pieces; for
        sequences, the sequences :meth:`SequenceData.sample` would keep."""
        if self.lengths is not None:
            return sample_sequence_pieces(self.pieces(), self.lengths, max_rows, rng)
        return sample_pieces(self.pieces, self.n_rows, max_rows, rng)

    def distinct_labels(self) -> dict[int, set[Any]]:
        """Every label column's distinct values (missing ones left out), over all pieces (a
        pass that reads the label columns only)."""
        seen: dict[int, set[Any]] = {j: set() for j in self.text_columns}
        for columns in self._stored_columns([self.columns[j] for j in self.text_columns]):
            for values, column in zip(seen.values(), columns, strict=True):
                values.update(_label_values(column).tolist())
        return {j: values - {None} for j, values in seen.items()}

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.width), dtype=object if self.text_columns else np.float64)

    def _matrix(self, table: Any, piece: Piece) -> np.ndarray:
        """The columns of an Arrow table as one 2-D array: float32 when every column is
        float32, else float64; nulls become NaN.  With label columns, an object array of
        Python floats and strings (None for a missing label)."""
        pa = _arrow()
        if table.num_rows != piece.n_rows:
            raise DataSourceError(
                f"{_where(piece)} has {table.num_rows} rows, its metadata said {piece.n_rows}: "
                "the file changed while the fit ran, or is damaged"
            )
        if self.text_columns:
            return self._object_matrix(table)
        types = [table.schema.field(name).type for name in self.columns]
        dtype = np.float32 if all(t == pa.float32() for t in types) else np.float64
        target = pa.from_numpy_dtype(dtype)
        out = np.empty((table.num_rows, self.width), dtype=dtype, order="F")
        for j, name in enumerate(self.columns):
            out[:, j] = _float_values(table.column(name), target)
        # rows contiguous, as the E-step reads them: a column-major fill (contiguous copies)
        # and one transposing copy take 2.9 ms for 250,000 x 16 float32, np.stack 4.8 ms
        return np.ascontiguousarray(out)

    def _object_matrix(self, table: Any) -> np.ndarray:
        pa = _arrow()
        out = np.empty((table.num_rows, self.width), dtype=object)
        for j, name in enumerate(self.columns):
            column = table.column(name)
            if j in self.text_columns:
                out[:, j] = _label_values(column)
            else:
                out[:, j] = _float_values(column, pa.float64())
        return out


def check_one_of(sequence: str | None, lengths: Any) -> None:
    """Sequences come from a column of ids or from lengths, not both."""
    if sequence is not None and lengths is not None:
        raise DataSourceError("give the sequence column or the lengths, not both")


def _float_values(column: Any, target: Any) -> np.ndarray:
    """An Arrow column as a NumPy array of the float type ``target``, nulls as NaN."""
    import pyarrow.compute as pc

    if column.type != target:
        column = column.cast(target)
    if column.null_count:
        column = pc.fill_null(column, np.nan)
    return column.to_numpy()


def _label_values(column: Any) -> np.ndarray:
    """An Arrow column of labels as an object array of strings, nulls as None."""
    return column.cast(_arrow().string()).to_numpy(zero_copy_only=False)


def sample_pieces(
    pieces: Callable[[], Iterator[ArrayData]], n_rows: int, max_rows: int, rng: np.random.Generator
) -> ArrayData:
    """The rows ``ArrayData.sample(max_rows, rng)`` draws from the ``n_rows`` rows of the
    concatenated ``pieces()`` (the same call on ``rng``), picked in one pass."""
    if n_rows <= max_rows:
        chosen = list(pieces())
    else:
        rows = np.sort(rng.choice(n_rows, size=int(max_rows), replace=False))
        chosen, start = [], 0
        for piece in pieces():
            stop = start + piece.n_rows
            a, b = np.searchsorted(rows, [start, stop])
            if b > a:
                chosen.append(piece.take(rows[a:b] - start))
            start = stop
    return ArrayData(
        np.concatenate([p.X for p in chosen]), np.concatenate([p.weights for p in chosen])
    )


PieceStep = Callable[[Any, Any], Any]  # (prepared parameters, in-memory piece) -> Stats | None
PieceCheck = Callable[[Any], Any]  # in-memory piece -> the estimator's checked data set
_DONE = object()


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """The items in order, the next one made (read from disk, checked) in a thread while the
    caller works on this one: reading and checking a piece overlap the previous piece's
    E-step instead of running between E-steps."""
    source = iter(items)
    with ThreadPoolExecutor(1) as thread:
        pending = thread.submit(next, source, _DONE)
        while True:
            item = pending.result()
            if item is _DONE:
                return
            pending = thread.submit(next, source, _DONE)
            yield cast(T, item)


def _located(step: PieceStep, prepared: Any, label: str, piece: Any) -> Any:
    """``step(prepared, piece)``; a ``ValueError`` is raised again naming the piece."""
    try:
        return step(prepared, piece)
    except ValueError as exc:
        raise located_error(exc, label) from None


def located_error(exc: ValueError, label: str, start: int | None = None,
                  stop: int | None = None) -> ValueError:
    """``exc`` with the piece (and its rows of the data, when known) in front of its message."""
    where = label
    if start is not None and stop is not None:
        where += (f", rows {start} to {stop - 1} of the data (row numbers below count from the "
                  f"piece's first row, {start})")
    return type(exc)(f"{where}: {exc}")


def _where(piece: Piece) -> str:
    return f"{piece.path}" + (f" (row group {piece.row_group})" if piece.row_group >= 0 else "")


def feature_columns(
    names: Sequence[str], columns: Sequence[str] | None, sequence: str | None, where: str
) -> list[str]:
    """The chosen ``columns`` of a table with columns ``names`` (default: every but the
    ``sequence`` column), checked: each exists, the sequence column exists and is not one of
    them, at least one."""
    names = list(names)
    if sequence is not None and sequence not in names:
        raise DataSourceError(
            f"{where} has no sequence column {sequence!r}; its columns are {names}"
        )
    chosen = list([n for n in names if n != sequence] if columns is None else columns)
    missing = [c for c in chosen if c not in names]
    if missing:
        raise DataSourceError(f"{where} has no column(s) {missing}; its columns are {names}")
    if sequence is not None and sequence in chosen:
        raise DataSourceError(
            f"{sequence!r} is the sequence column of {where}: it names the sequences and "
            "cannot also be a feature column"
        )
    if not chosen:
        raise DataSourceError(f"{where}: no columns to read")
    return chosen


def _table_columns(
    schema: Any, columns: Sequence[str] | None, path: Path, sequence: str | None = None
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The chosen (default: every but the ``sequence`` column) column names, each of a
    numeric or string Arrow type, and the positions of the string (label) columns."""
    pa = _arrow()
    chosen = feature_columns(list(schema.names), columns, sequence, str(path))
    text = []
    for j, name in enumerate(chosen):
        kind = schema.field(name).type
        if _is_label_type(kind):
            text.append(j)
        elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                  or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
            raise DataSourceError(
                f"column {name!r} of {path} holds {kind} values: out-of-core fits read numbers "
                "and labels (strings); choose the columns with columns=[...]"
            )
    return tuple(chosen), tuple(text)


def _is_label_type(kind: Any) -> bool:
    pa = _arrow()
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


class ParquetData(TableSource):
    """A Parquet file, or a folder of part files (every ``*.parquet`` under it, in path order),
    read one row group at a time.  Every part must hold the chosen columns with the types of
    the first part.  ``sequence``: the column of sequence ids (the rows of a sequence are
    consecutive), or ``lengths``: the rows of every sequence, in order (hidden Markov
    models)."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Sequence[str] | None = None,
        *,
        sequence: str | None = None,
        lengths: Any = None,
    ):
        import pyarrow.parquet as pq

        pa = _arrow()
        root = Path(path)
        if root.is_dir():
            files = sorted(root.rglob("*.parquet"))
            if not files:
                raise DataSourceError(f"the folder {root} holds no *.parquet files")
        elif root.exists():
            files = [root]
        else:
            raise DataSourceError(f"{root} does not exist")
        pieces: list[Piece] = []
        chosen: tuple[str, ...] = ()
        first_types: list[Any] = []
        for i, file in enumerate(files):
            try:
                meta = pq.ParquetFile(file)
            except (pa.ArrowException, OSError) as exc:
                raise DataSourceError(
                    f"{file} is not a readable Parquet file ({exc}); it may be truncated"
                ) from None
            schema = meta.schema_arrow
            if i == 0:
                chosen, self.text_columns = _table_columns(schema, columns, file, sequence)
                first_types = [schema.field(c).type for c in chosen]
            else:
                _check_same_schema(schema, chosen, first_types, file, files[0])
                if sequence is not None and sequence not in schema.names:
                    raise DataSourceError(f"{file} has no sequence column {sequence!r}")
            for g in range(meta.num_row_groups):
                pieces.append(Piece(file, g, meta.metadata.row_group(g).num_rows))
        self.path, self.columns, self.piece_list = root, chosen, tuple(pieces)
        self._set_sequences(sequence, lengths)

    def _stored_columns(self, names: Sequence[str]) -> Iterator[list[Any]]:
        opened: dict[Path, Any] = {}
        for piece in self.piece_list:
            table = self._read_table(piece, opened, names)
            yield [table.column(name) for name in names]

    def _row_pieces(self) -> Iterator[ArrayData]:
        """The row groups in order (a fit reads them ahead: :meth:`checked_pieces`)."""
        opened: dict[Path, Any] = {}  # this pass's open files (each file's footer read once)
        for piece in self.piece_list:
            yield ArrayData.of(self._read(piece, opened))

    def _read(self, piece: Piece, opened: dict[Path, Any]) -> np.ndarray:
        return self._matrix(self._read_table(piece, opened, self.columns), piece)

    def _read_table(self, piece: Piece, opened: dict[Path, Any], names: Sequence[str]) -> Any:
        """The columns ``names`` of one row group (``opened``: the pass's open file)."""
        import pyarrow.parquet as pq

        pa = _arrow()
        try:
            if piece.path not in opened:
                opened.clear()  # the previous file is done
                opened[piece.path] = pq.ParquetFile(piece.path, memory_map=True)
            return opened[piece.path].read_row_group(piece.row_group, columns=list(names))
        except (pa.ArrowException, OSError) as exc:
            raise DataSourceError(f"{_where(piece)} cannot be read ({exc})") from None

    def __repr__(self) -> str:
        return f"ParquetData({str(self.path)!r}, {self.n_rows} rows, columns={list(self.columns)})"


def _check_same_schema(
    schema: Any, columns: Sequence[str], types: Sequence[Any], file: Path, first: Path
) -> None:
    for name, kind in zip(columns, types, strict=True):
        if name not in schema.names:
            raise DataSourceError(f"{file} has no column {name!r} (the first part, {first}, has)")
        if schema.field(name).type != kind:
            raise DataSourceError(
                f"column {name!r} of {file} holds {schema.field(name).type}, but {kind} in the "
                f"first part ({first}): every part file needs the same schema"
            )


class CSVData(TableSource):
    """A CSV file with a header row, read in blocks of about ``CSV_BLOCK_BYTES`` (each E-step
    parses the file again: convert large tables to Parquet for speed).  Empty cells are
    missing (NaN)."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Sequence[str] | None = None,
        delimiter: str = ",",
        *,
        sequence: str | None = None,
        lengths: Any = None,
    ):
        self.path, self.delimiter = Path(path), delimiter
        if not self.path.is_file():
            raise DataSourceError(f"{self.path} is not a file")
        header = self._reader(None)
        self.columns, self.text_columns = _table_columns(
            header.schema, columns, self.path, sequence
        )
        sizes = [batch.num_rows for batch in self._blocks()]  # one pass: checks every cell
        self.piece_list = tuple(Piece(self.path, -1, n) for n in sizes if n)
        self._set_sequences(sequence, lengths)

    def _stored_columns(self, names: Sequence[str]) -> Iterator[list[Any]]:
        for batch in self._blocks(self._reader(None, only=names)):
            if batch.num_rows:
                yield [batch.column(name) for name in names]

    def _reader(self, columns: Sequence[str] | None, only: Sequence[str] | None = None) -> Any:
        """A block reader of the chosen ``columns`` (labels as strings, numbers as float64), or
        of the columns ``only`` (labels as strings, other types as inferred), or of all."""
        import pyarrow.csv as csv

        pa = _arrow()
        convert: dict[str, Any] = {}
        if columns is not None or only is not None:  # (the chosen columns are known by then)
            labels = {self.columns[j] for j in self.text_columns}
            names = list(columns) if columns is not None else list(only or ())
            other = pa.float64() if columns is not None else None  # None: as inferred
            types = {c: pa.string() if c in labels else other for c in names}
            convert = {"include_columns": names,
                       "column_types": {c: t for c, t in types.items() if t is not None},
                       "strings_can_be_null": bool(labels & set(names))}  # "" label: missing
        try:
            return csv.open_csv(
                self.path,
                read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=csv.ParseOptions(delimiter=self.delimiter),
                convert_options=csv.ConvertOptions(**convert),
            )
        except (pa.ArrowException, OSError) as exc:
            raise DataSourceError(f"{self.path} cannot be read as CSV ({exc})") from None

    def _blocks(self, reader: Any = None) -> Iterator[Any]:
        """The record batches of ``reader`` (default: the chosen columns), errors named."""
        pa = _arrow()
        reader = self._reader(self.columns) if reader is None else reader
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise DataSourceError(f"{self.path}: {exc}") from None
            yield batch

    def _row_pieces(self) -> Iterator[ArrayData]:
        pa = _arrow()
        blocks = (b for b in self._blocks() if b.num_rows)
        for piece in self.piece_list:
            batch = next(blocks, None)
            if batch is None:
                raise DataSourceError(f"{self.path} has fewer rows than when it was opened")
            yield ArrayData.of(self._matrix(pa.Table.from_batches([batch]), piece))
        if next(blocks, None) is not None:
            raise DataSourceError(f"{self.path} has more rows than when it was opened")

    def __repr__(self) -> str:
        return f"CSVData({str(self.path)!r}, {self.n_rows} rows, columns={list(self.columns)})"


def _id_values(column: Any) -> np.ndarray:
    """A column of sequence ids as a NumPy array (strings as objects; nulls as None)."""
    return np.asarray(column.to_numpy(zero_copy_only=False))


def is_table_source(X: Any) -> bool:
    """True for the out-of-core sources of this module."""
    return isinstance(X, TableSource)


@dataclass(frozen=True)
class CheckedSource:
    """An out-of-core ``source`` whose every piece (and sample) goes through ``check`` (rows →
    an in-memory data set: an estimator's checks and encoding) each time it is read; an error
    names the piece and its rows."""

    source: TableSource
    check: Callable[[Any], Any]

    @property
    def n_rows(self) -> int:
        return self.source.n_rows

    @property
    def width(self) -> int:
        return self.source.width

    def pieces(self) -> Iterator[Any]:
        for _, checked in self.counted_pieces():
            yield checked

    def counted_pieces(self) -> Iterator[tuple[int, Any]]:
        """``(rows read, checked piece)`` of every piece, in order (a check may drop rows)."""
        for _, rows, checked in self.source.checked_pieces(self.check):
            yield rows, checked

    def sum_pieces(self, step: PieceStep, prepared: Any) -> Any:
        """The source's sum (where its pieces are read: here, or on Dask workers) of ``step``
        on every checked piece."""
        return self.source.sum_pieces(step, prepared, self.check)

    def batches(self, max_rows: int) -> Iterator[Any]:
        for piece in self.pieces():
            yield from piece.batches(max_rows)

    def sample(self, max_rows: int, rng: np.random.Generator) -> Any:
        """As :meth:`TableSource.sample`, of the checked rows (a pass to count them, one to
        pick): the rows an in-memory fit of the checked data would sample.  Sequences are
        sampled whole from the source (a check keeps every row of a sequence), then checked."""
        if self.source.has_sequences:
            return self.check(self.source.sample(max_rows, rng))
        n_rows = sum(piece.n_rows for piece in self.pieces())
        return sample_pieces(self.pieces, n_rows, max_rows, rng)


@dataclass(frozen=True)
class CheckedStep:
    """``step(prepared, check(piece))``: a piece checked where it is read, then its step."""

    check: Callable[[Any], Any]
    step: PieceStep

    def __call__(self, prepared: Any, piece: Any) -> Any:
        return self.step(prepared, self.check(piece))
