"""Read tables (CSV with a header row, or Parquet) into an array with column names.

Numeric mode (the default) gives float64.  CSV goes through ``np.loadtxt`` (compiled, fast);
only when that fails is the file scanned row by row with the :mod:`csv` module, either to read
cells numpy cannot (empty cells, ``NA``, quoted numbers) or to raise an error that names the
column, the line and the value at fault.  Text mode (``text=True``, for families of categorical
data) keeps strings: an object array whose numeric columns hold floats and whose other columns
hold the cells' text.

A file that cannot be read twice (a named pipe, bash's ``<(command)``, a device) is read once
into memory and parsed from there; every later read of the same stream in this process gets
those bytes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import stat
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emkit._validation import InputError, NonNumericError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_ENCODING = "utf-8-sig"
# Bytes of the streams read so far (pipes, devices), by (path, device, inode): read once.
_STREAMS: dict[tuple[str, int, int], bytes] = {}
# Cells read as missing (NaN), compared case-insensitively after stripping blanks.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
# In text columns fewer tokens mean missing: "None" or "null" can be answers (MASS survey).
TEXT_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan"})


def read_table(
    path: str | os.PathLike, columns: Sequence[str] | None = None, *, text: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Numeric columns of a CSV or Parquet file as ``(X, names)``, ``X`` float64 of shape (n, d).

    ``columns`` selects and orders columns by name (default: all).  Empty cells (and ``NA``,
    ``NaN``, ``null``) become NaN.  Raises :class:`~emkit._validation.InputError` (or its subclass
    :class:`~emkit._validation.NonNumericError`) naming the problem, and ``FileNotFoundError``.

    With ``text=True`` any column is accepted and ``X`` is an object array: a column whose cells
    are all numbers (or missing) holds floats, any other column the stripped text of its cells;
    missing cells are NaN (in text columns only empty, ``NA``, ``N/A`` and ``NaN`` are missing,
    so answers such as ``None`` stay text).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a data file")
    if _size(path) == 0:
        raise InputError(f"{path} is empty: expected a header row and at least one data row")
    if columns is not None:
        columns = [str(c) for c in columns]
        if not columns:
            raise InputError("no columns selected: give at least one column name")
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise InputError(f"column(s) selected twice: {', '.join(map(repr, duplicated))}")
    head = _head(path)
    if head == _ZIP_MAGIC:
        raise _zip_error(path)
    if path.suffix.lower() in PARQUET_SUFFIXES or head == _PARQUET_MAGIC:
        return _read_parquet(path, columns, text)
    try:
        if text:
            return _read_csv_text(path, columns)
        return _read_csv(path, columns)
    except UnicodeDecodeError:
        raise _encoding_error(path) from None


# --- the bytes of a file -------------------------------------------------------------------------
def _stream_bytes(path: Path) -> bytes | None:
    """The whole content of a file that is not a regular file (a pipe, ``<(command)``, a
    device), read once and kept; None for a regular file (read from disk as needed)."""
    st = path.stat()
    if stat.S_ISREG(st.st_mode):
        return None
    key = (str(path), st.st_dev, st.st_ino)
    if key not in _STREAMS:
        with open(path, "rb") as fh:
            _STREAMS[key] = fh.read()
    return _STREAMS[key]


def _size(path: Path) -> int:
    data = _stream_bytes(path)
    return path.stat().st_size if data is None else len(data)


def _head(path: Path, n: int = 4) -> bytes:
    data = _stream_bytes(path)
    if data is not None:
        return data[:n]
    with open(path, "rb") as fh:
        return fh.read(n)


def _binary(path: Path) -> Any:
    """What readers that take a path or a binary file get: the path, or the stream's bytes."""
    data = _stream_bytes(path)
    return path if data is None else io.BytesIO(data)


@contextlib.contextmanager
def _text(path: Path) -> Iterator[Any]:
    """The file as UTF-8 text (a leading byte-order mark skipped), for :mod:`csv` (no newline
    translation)."""
    data = _stream_bytes(path)
    if data is None:
        with open(path, newline="", encoding=_ENCODING) as fh:
            yield fh
    else:
        yield io.StringIO(data.decode(_ENCODING), newline="")


def _encoding_error(path: Path) -> InputError:
    """Where the file stops being UTF-8 (byte offset and line), and how to convert it."""
    data = _stream_bytes(path)
    if data is None:
        data = path.read_bytes()
    where = ""
    try:
        data.decode("utf-8")  # not utf-8-sig: offsets count a byte-order mark too
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f" (byte offset {exc.start}, line {line}: {data[exc.start:exc.start + 1]!r})"
    return InputError(
        f"{path} is not UTF-8 text{where}: emkit reads UTF-8 CSV files; re-save it as UTF-8 "
        f"(e.g. iconv -f latin1 -t utf-8 {path} > utf8.csv, or \"CSV UTF-8\" in a spreadsheet)"
    )


def _zip_error(path: Path) -> InputError:
    try:
        with zipfile.ZipFile(_binary(path)) as zf:
            model = "model.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        model = False
    if model:
        return InputError(
            f"{path} is an emkit model file, not a data table (CSV or Parquet): model files are "
            "read by `emkit predict MODEL DATA`, `emkit detect MODEL DATA` and `emkit info MODEL`"
        )
    return InputError(f"{path} is a zip archive, not a CSV or Parquet file: unzip it and give "
                      "the data file inside")


def _select(path: Path, names: list[str], columns: list[str] | None) -> list[int]:
    if columns is None:
        return list(range(len(names)))
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise InputError(
            f"{path} has no column {', '.join(map(repr, unknown))}; "
            f"available columns: {', '.join(names)}"
        )
    return [names.index(c) for c in columns]


# --- CSV -----------------------------------------------------------------------------------------
def _read_header(path: Path) -> list[str]:
    with _text(path) as fh:
        reader = csv.reader(fh)
        for row in reader:
            if any(cell.strip() for cell in row):
                return [cell.strip() or f"column_{j + 1}" for j, cell in enumerate(row)]
    raise InputError(f"{path} is empty: expected a header row and at least one data row")


def _check_header(path: Path, names: list[str]) -> None:
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"{path}: the header names column(s) more than once: {duplicated}")
    if all((v := _parse(n)) is not None and not math.isnan(v) for n in names):
        raise InputError(
            f"{path}: the first line ({','.join(names)}) holds only numbers; emkit expects a "
            "header row of column names first (add one, e.g. x1,x2,...)"
        )


def _read_csv(path: Path, columns: list[str] | None) -> tuple[np.ndarray, list[str]]:
    names = _read_header(path)
    _check_header(path, names)
    index = _select(path, names, columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            with _text(path) as fh:
                X = np.loadtxt(
                    fh,
                    delimiter=",",
                    skiprows=1,
                    ndmin=2,
                    dtype=np.float64,
                    comments=None,
                    quotechar='"',
                )
    except ValueError:
        X = None  # empty cells, text, ragged rows: the row-by-row scan reads or explains
    if X is not None and X.shape[1] == len(names) and X.shape[0] > 0:
        return np.ascontiguousarray(X[:, index]), [names[j] for j in index]
    return _scan_csv(path, names, index), [names[j] for j in index]


def _parse(cell: str) -> float | None:
    """The number in ``cell`` (NaN for a missing token), or None if it is not a number."""
    text = cell.strip()
    if text.lower() in MISSING_TOKENS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _data_rows(path: Path, names: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of every data row; a ragged row is an error naming its line."""
    width = len(names)
    with _text(path) as fh:
        reader = csv.reader(fh)
        header_seen = False
        for row in reader:
            if len(row) <= 1 and not any(cell.strip() for cell in row):
                continue  # a blank line (a line of empty cells, e.g. ",", is a row of gaps)
            if not header_seen:
                header_seen = True
                continue
            if len(row) != width:
                raise InputError(
                    f"{path}, line {reader.line_num}: {len(row)} field(s) where the header has "
                    f"{width} ({', '.join(names)}); every row needs one value per column (an "
                    "empty cell for a missing value)" + _delimiter_hint(row)
                )
            yield reader.line_num, row


def _no_rows(path: Path, names: list[str]) -> InputError:
    return InputError(f"{path} has a header ({', '.join(names)}) but no data rows: nothing to fit")


def _read_csv_text(path: Path, columns: list[str] | None) -> tuple[np.ndarray, list[str]]:
    names = _read_header(path)
    _check_header(path, names)
    index = _select(path, names, columns)
    cells = [[row[j] for j in index] for _, row in _data_rows(path, names)]
    if not cells:
        raise _no_rows(path, names)
    out = np.empty((len(cells), len(index)), dtype=object)
    for j in range(len(index)):
        out[:, j] = _typed_column([r[j] for r in cells])
    return out, [names[j] for j in index]


def _typed_column(cells: list[Any]) -> list[Any]:
    """Floats (NaN for missing) if every cell is a number or missing, else stripped text."""
    numbers = [_parse(str(c)) if c is not None else math.nan for c in cells]
    if all(v is not None for v in numbers):
        return numbers
    out: list[Any] = []
    for c in cells:
        text = "" if c is None else str(c).strip()
        out.append(math.nan if text.lower() in TEXT_MISSING_TOKENS else text)
    return out


def _scan_csv(path: Path, names: list[str], index: list[int]) -> np.ndarray:
    """Row-by-row read: precise errors for ragged rows and text cells; missing cells → NaN."""
    rows: list[list[float]] = []
    for line, row in _data_rows(path, names):
        values = []
        for j in index:
            value = _parse(row[j])
            if value is None:
                raise NonNumericError(
                    f"{path}: column {names[j]!r} is not numeric (line {line} holds "
                    f"{row[j]!r}); select numeric columns with --columns"
                    + _columns_example(names, row)
                    + _delimiter_hint(row)
                )
            values.append(value)
        rows.append(values)
    if not rows:
        raise _no_rows(path, names)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(index))


def _columns_example(names: list[str], row: list[str]) -> str:
    numeric = [n for n, cell in zip(names, row, strict=True) if _parse(cell) is not None]
    if not numeric:
        return ""
    shown = ",".join(numeric[:8]) + (",..." if len(numeric) > 8 else "")
    return f" (e.g. --columns {shown})"


def _delimiter_hint(row: list[str]) -> str:
    text = ",".join(row)
    for sep, label in ((";", "semicolons"), ("\t", "tabs")):
        if sep in text:
            return f"; the file seems to use {label}: emkit reads comma-separated files"
    return ""


# --- Parquet -------------------------------------------------------------------------------------
def _read_parquet(
    path: Path, columns: list[str] | None, text: bool = False
) -> tuple[np.ndarray, list[str]]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"reading {path} needs pyarrow: install emkit[parquet] (pip install 'emkit[parquet]')"
        ) from None
    try:
        schema = pq.read_schema(_binary(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc})") from None
    names = [str(n) for n in schema.names]
    index = _select(path, names, columns)
    selected = [names[j] for j in index]
    table = pq.read_table(_binary(path), columns=selected)
    if table.num_rows == 0:
        raise InputError(f"{path} has columns ({', '.join(names)}) but no rows: nothing to fit")
    out = np.empty((table.num_rows, len(selected)), dtype=object if text else np.float64)
    for j, name in enumerate(selected):
        col = table.column(name)
        kind = col.type
        numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean,
                   pa.types.is_decimal)
        if text and not any(is_kind(kind) for is_kind in numeric):
            out[:, j] = _typed_column(col.to_pylist())
            continue
        if any(is_kind(kind) for is_kind in numeric):
            col = pc.cast(col, pa.float64())
            out[:, j] = col.to_numpy(zero_copy_only=False)  # nulls become NaN
            continue
        values = col.to_pylist()
        for i, value in enumerate(values):
            parsed = math.nan if value is None else _parse(str(value))
            if parsed is None:
                raise NonNumericError(
                    f"{path}: column {name!r} is not numeric (row {i} holds {value!r}, type "
                    f"{kind}); select numeric columns with --columns"
                )
            out[i, j] = parsed
    return out, selected
