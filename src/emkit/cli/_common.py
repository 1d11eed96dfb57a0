"""What the ``emkit`` commands share: consoles, error reporting, reading data, warnings and
progress, saving models."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import click
import numpy as np
from rich.console import Console
from rich.text import Text

from emkit._files import is_stdout, same_file
from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.engine.loop import NumericalError, Progress
from emkit.io import MAX_BYTES, ModelFileError, load, save

USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    ModelFileError,
    ValueError,
    OSError,
    NumericalError,
)
EXIT_USER_ERROR = 2
_COVARIANCES = ("full", "tied", "diag", "spherical")


_STDOUT_TAKEN = "emkit.stdout_taken"  # click context meta key: an output is ``-``


def _stdout_taken() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool(ctx.meta.get(_STDOUT_TAKEN))


def _stdout() -> Console:
    """The console for summaries: standard output, or standard error when an output file is
    written there (``-o -``)."""
    return Console(stderr=_stdout_taken(), highlight=False)


def _echo(text: str) -> None:
    """Plain text on the summary stream (see :func:`_stdout`)."""
    click.echo(text, err=_stdout_taken())


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _error(exc: BaseException) -> None:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and "No such file" in message:
        message = f"no such file: {exc.filename}"
    _stderr().print(Text(f"error: {message}", style="bold red"), soft_wrap=True)


class _Group(click.Group):
    """A group that turns user errors anywhere below it into ``error: ...`` and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            _error(exc)
            ctx.exit(EXIT_USER_ERROR)


_force_option = click.option(
    "--force", is_flag=True,
    help="Write an output even where it is the same file as an input (replacing the input).")

_model_size_option = click.option(
    "--max-model-mb", type=click.FloatRange(min=0.0, min_open=True),
    default=MAX_BYTES / 2**20, show_default=True,
    help="Refuse a model file whose contents exceed this many MiB (a guard against forged "
         "files); raise it for an unusually large model.")


def _load_model(path: Path, max_model_mb: float) -> Any:
    """``emkit.load`` with the size cap of ``--max-model-mb``."""
    return load(path, max_bytes=int(max_model_mb * 2**20))


def _check_outputs(
    inputs: Mapping[str, Path | None], outputs: Mapping[str, Path | None], force: bool = False
) -> None:
    """Refuse, before anything is read or fitted, an output that is the same file as an input
    (through links; unless ``force``) or as another output; keys are the arguments' names as
    the user typed them.  An output ``-`` sends the summaries to standard error."""
    given_in = [(name, path) for name, path in inputs.items() if path is not None]
    given_out = [(name, path) for name, path in outputs.items() if path is not None]
    for i, (out_name, out) in enumerate(given_out):
        for in_name, source in given_in:
            if not force and same_file(out, source):
                raise InputError(
                    f"{out_name} {out} is the same file as {in_name} {source}: writing it would "
                    "destroy the input; give another output file (or --force to replace it)"
                )
        for other_name, other in given_out[:i]:
            if same_file(out, other):
                raise InputError(f"{other_name} and {out_name} are the same file ({out}): give "
                                 "each output its own file")
    if any(is_stdout(path) for _, path in given_out):
        click.get_current_context().meta[_STDOUT_TAKEN] = True


def _check_components(
    option: str, k: int, n_rows: int, data: Path, value: str | None = None
) -> None:
    """Refuse, before any fit, more components ``k`` (``option``'s largest, given as ``value``)
    than DATA has rows."""
    if k > n_rows:
        raise InputError(
            f"{option} {value or k} asks for {k} components but {data} has {n_rows} data "
            f"row(s): a mixture needs at least one row per component, so K can be at most "
            f"{n_rows}"
        )


def _split_columns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names:
        raise InputError("--columns is empty: give column names separated by commas")
    return names


def _list(items: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


@contextlib.contextmanager
def _reported_warnings() -> Iterator[None]:
    """Show warnings raised inside (non-convergence, collapsed components) as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            _stderr().print(Text(f"warning: {text}", style="yellow"), soft_wrap=True)


@contextlib.contextmanager
def _fit_progress(
    enabled: bool, max_iter: int, n_init: int
) -> Iterator[Callable[[Progress], None] | None]:
    """A transient rich progress bar fed by the engine's ``callback(progress)``."""
    console = _stderr()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Bar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("EM", total=max(1, max_iter * n_init))

        def callback(progress: Progress) -> None:
            runs = progress.n_restarts
            run = f"run {progress.restart + 1}/{runs} " if runs > 1 else ""
            bar.update(
                task,
                completed=progress.restart * max_iter + progress.iteration,
                description=f"EM {run}mean log-lik {progress.mean_objective:.6g}",
            )

        yield callback


def _family_choices(hmm: bool = False) -> list[str]:
    """Families that can be made from their name alone (the CLI's ``--family`` values; with
    ``hmm``, the ``--emission`` values, which include the HMM-only ones)."""
    from emkit.families import FAMILIES, make_family

    names = []
    for name in sorted(FAMILIES):
        try:
            family = make_family(name)
        except (TypeError, ValueError):
            continue  # needs arguments (e.g. a product of column blocks)
        if hmm or family.mixture_component:
            names.append(name)
    return names


def _text_family(families: Sequence[str]) -> bool:
    from emkit.families import make_family

    return any(not make_family(f).numeric_input for f in families)


def _missing_cells(X: np.ndarray) -> np.ndarray:
    """Boolean mask of missing cells: NaN / inf in numeric tables, NaN or None in text ones."""
    if X.dtype != object:
        return ~np.isfinite(X)
    if not X.size:
        return np.zeros(X.shape, dtype=bool)
    missing = np.vectorize(
        lambda v: v is None or (isinstance(v, float) and not np.isfinite(v)), otypes=[bool]
    )
    return missing(X)


def _require_complete(X: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Name the rows and columns with missing (empty, NA, None) or infinite values."""
    bad = _missing_cells(X) if X.dtype == object else ~np.isfinite(X)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1)) + 1
    cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
    what = "missing" if X.dtype == object else "missing or infinite"
    raise InputError(
        f"{path}: {rows.size} row(s) have {what} values: data rows {_list(rows.tolist())} "
        f"(counting from 1 below the header), in column(s) {_list([repr(c) for c in cols])}; "
        "drop or impute those rows first"
    )


def _marginalised_note(X: np.ndarray) -> str:
    """What a model that marginalises missing cells does with those of ``X`` ("" if none)."""
    gaps = _missing_cells(X)
    if not gaps.any():
        return ""
    rows = int(gaps.any(axis=1).sum())
    return f"{int(gaps.sum())} missing cell(s) in {rows} row(s), marginalised"


class DataTable(NamedTuple):
    """The model's columns of a data file, as :func:`_read_data` returns them."""

    X: np.ndarray
    names: list[str]
    weights: np.ndarray | None
    note: str
    rows: np.ndarray  # the file's data row number (from 1, below the header) of each row of X


def _columns_besides(
    data: Path, columns: str | None, other: str | None, option: str
) -> list[str] | None:
    """The model's columns: ``--columns``, or every column of DATA but ``other`` (the column
    that ``option``, e.g. ``--weights`` or ``--sequence``, names); None: every column."""
    selected = _split_columns(columns)
    if other is None:
        return selected
    if selected is not None:
        if other in selected:
            raise InputError(f"{option} column {other!r} is also in --columns; it is not a "
                             "feature: list it once")
        return selected
    _, every = read_table(data, text=True)
    if other not in every:
        raise InputError(f"{option}: {data} has no column {other!r}; available columns: "
                         f"{', '.join(every)}")
    selected = [c for c in every if c != other]
    if not selected:
        raise InputError(f"{data} has no column besides the {option} column {other!r}")
    return selected


def _read_data(
    data: Path,
    columns: str | None,
    weights: str | None,
    text: bool,
    drop_missing: bool = False,
    marginalise: bool = False,
) -> DataTable:
    """The model columns (all but ``weights`` by default) and the weights column of DATA;
    rows with a missing cell are dropped (the note says so) if ``drop_missing``, else kept
    when the model ``marginalise``-s missing cells, else an error."""
    selected = _columns_besides(data, columns, weights, "--weights")
    X, names = read_table(data, selected, text=text)
    w = read_table(data, [weights])[0][:, 0] if weights is not None else None
    note = ""
    rows = np.arange(1, X.shape[0] + 1)
    if drop_missing:
        keep = ~_missing_cells(X).any(axis=1)
        if w is not None:
            keep &= np.isfinite(w)
        if not keep.all():
            dropped = np.flatnonzero(~keep) + 1
            note = (f"dropped {dropped.size} row(s) with missing values (data rows "
                    f"{_list(dropped.tolist())})")
            X, w, rows = X[keep], (w[keep] if w is not None else None), rows[keep]
        if X.shape[0] == 0:
            raise InputError(f"{data}: every row has a missing value")
    elif marginalise:
        note = _marginalised_note(X)
    if not marginalise:
        _require_complete(X, names, data)
    if w is None:
        return DataTable(X, names, None, note, rows)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise InputError(
            f"{data}: the --weights column {weights!r} must hold non-negative numbers; data row "
            f"{rows[bad[0]]} holds {w[bad[0]]!r}"
        )
    if not w.sum() > 0:
        raise InputError(f"{data}: the --weights column {weights!r} sums to zero")
    return DataTable(X, names, w, note, rows)


def _print_note(note: str) -> None:
    if note:
        _stderr().print(Text(f"note: {note}", style="yellow"), soft_wrap=True)


_COLUMN_INDEX = re.compile(r"\bcolumn (\d+)\b")
_ROW_INDEX = re.compile(r"(?<!data )\brow (\d+)\b")


def _in_file_terms(
    exc: InputError, names: Sequence[str], rows: np.ndarray | None = None
) -> InputError:
    """The error with ``column 3`` written as the file's ``column 'name'`` and ``row 4`` as
    the file's ``data row 5`` (the estimator is fitted on a plain array, so it only knows
    positions; ``rows`` maps them to the file's rows when some were dropped)."""

    def column(match: re.Match[str]) -> str:
        j = int(match.group(1))
        return f"column {names[j]!r}" if j < len(names) else match.group(0)

    def row(match: re.Match[str]) -> str:
        i = int(match.group(1))
        number = i + 1 if rows is None else (rows[i] if i < len(rows) else None)
        return match.group(0) if number is None else f"data row {number}"

    return type(exc)(_ROW_INDEX.sub(row, _COLUMN_INDEX.sub(column, str(exc))))


def _save_model(estimator: Any, names: Sequence[str], output: Path) -> None:
    """Save with the column names, so `predict` / `detect` select the same columns by name."""
    estimator.feature_names_in_ = np.asarray(names, dtype=object)
    try:
        save(estimator, output)
    except TypeError as exc:  # an estimator the model-file format does not know yet
        raise InputError(str(exc)) from None
