"""Fits that read their data a piece at a time (out of core) or in one online pass: the sources,
the batches, the progress (rows/s) and the summary of ``emkit fit gmm|mixture`` (and the
out-of-core and Dask fits of ``emkit fit hmm``)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.table import Table

from emkit._tabular import PARQUET_SUFFIXES
from emkit._validation import InputError
from emkit.cli._common import _split_columns, _stderr
from emkit.cli._report import _component_table, _key_value_table
from emkit.engine.dask_source import DaskData, dask_table
from emkit.engine.loop import Progress
from emkit.engine.sources import CSVData, ParquetData, TableSource

PLOT_ROWS = 20_000  # rows of an out-of-core table a --plot draws (its first rows)


_OUT_OF_CORE = click.option(
    "--out-of-core", is_flag=True,
    help="Read DATA a piece at a time (Parquet row groups, CSV blocks) on every iteration "
         "instead of loading it; a folder of Parquet files always is.")
_DASK = click.option(
    "--dask", "dask_address", metavar="local|ADDRESS",
    help="Fit on Dask: 'local' starts a cluster of this machine's cores, an address "
         "(tcp://host:8786) joins a running scheduler; each E-step runs on the workers that "
         "read DATA's partitions.")


def streamed_options(command: Callable) -> Callable:
    """``--out-of-core``, ``--online``, ``--batch-size`` and ``--dask``."""
    options = (
        _OUT_OF_CORE,
        click.option("--online", is_flag=True,
                     help="One pass of online (stepwise) EM over batches of --batch-size rows "
                          "instead of batch EM."),
        click.option("--batch-size", type=click.IntRange(min=1), default=10_000,
                     show_default=True, help="Rows per online EM step (with --online)."),
        _DASK,
    )
    for option in reversed(options):
        command = option(command)
    return command


def out_of_core_options(command: Callable) -> Callable:
    """``--out-of-core`` and ``--dask`` (models of sequences: no row batches)."""
    return _OUT_OF_CORE(_DASK(command))


def table_source(data: Path, columns: str | None, sequence: str | None = None) -> TableSource:
    """DATA as an out-of-core source: a folder of Parquet files, a Parquet file or a CSV file
    (``sequence``: its column of sequence ids)."""
    if not data.exists():
        raise FileNotFoundError(f"no data file at {data}")
    selected = _split_columns(columns)
    if data.is_dir() or data.suffix.lower() in PARQUET_SUFFIXES:
        return ParquetData(data, selected, sequence=sequence)
    return CSVData(data, selected, sequence=sequence)


def fit_source(
    estimator: Any,
    data: Path,
    columns: str | None,
    *,
    sequence: str | None,
    quiet: bool,
    dask_address: str | None = None,
    needs: tuple[int, str] = (1, "rows"),
) -> TableSource:
    """Fit ``estimator`` to DATA read out of core (or on Dask) with a progress display;
    returns the source.  ``needs``: the fewest rows, and what needs them (for the error)."""
    on_dask = _dask_client(dask_address) if dask_address is not None else contextlib.nullcontext()
    with on_dask:
        if dask_address is not None:
            source: TableSource = DaskData(dask_table(data, _split_columns(columns), sequence),
                                          sequence=sequence)
        else:
            source = table_source(data, columns, sequence)
        _check_rows(data, source.n_rows, needs)
        steps = estimator.max_iter * estimator.n_init
        label = "EM on Dask" if dask_address is not None else "EM"
        with streamed_progress(not quiet, steps, source.n_rows, label) as callback:
            estimator.fit(source, callback=callback)
    # as after the in-memory commands, which fit arrays: the names travel in the model file
    estimator.__dict__.pop("feature_names_in_", None)
    return source


def row_batches(data: np.ndarray | TableSource, size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of ``size`` rows (the last one shorter), read piece by piece."""
    pieces = (p.X for p in data.pieces()) if isinstance(data, TableSource) else iter([data])
    left: np.ndarray | None = None
    for X in pieces:
        if left is not None and left.shape[0]:
            X = np.concatenate([left, X])
        stop = X.shape[0] - X.shape[0] % size
        for start in range(0, stop, size):
            yield X[start : start + size]
        left = X[stop:]
    if left is not None and left.shape[0]:
        yield left


LOG_EVERY_S = 5.0  # without a terminal (a log file, a batch job): a progress line this often


@contextlib.contextmanager
def streamed_progress(
    enabled: bool, steps: int, rows_per_step: int, label: str
) -> Iterator[Callable[[Progress], None] | None]:
    """A transient progress bar with the rows per second of the last step; without a terminal
    (stderr to a file or a pipe, as in a batch job), a plain line on the first step and then at
    most every ``LOG_EVERY_S`` seconds."""
    console = _stderr()
    if not enabled:
        yield None
        return
    if not console.is_terminal:
        yield _progress_lines(console, steps, rows_per_step, label)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"))
    with Bar(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=max(1, steps), rate="")
        last = [time.perf_counter()]

        def callback(progress: Progress) -> None:
            now = time.perf_counter()
            rate = rows_per_step / max(now - last[0], 1e-9)
            last[0] = now
            bar.update(task, completed=progress.iteration, rate=f"{rate:,.0f} rows/s",
                       description=f"{label} mean log-lik {progress.mean_objective:.6g}")

        yield callback


def _progress_lines(
    console: Any, steps: int, rows_per_step: int, label: str
) -> Callable[[Progress], None]:
    """A callback writing ``label step/steps  mean log-lik …  rows/s`` lines, throttled."""
    last_step = [time.perf_counter()]
    last_line = [-math.inf]

    def callback(progress: Progress) -> None:
        now = time.perf_counter()
        rate = rows_per_step / max(now - last_step[0], 1e-9)
        last_step[0] = now
        if now - last_line[0] >= LOG_EVERY_S:
            last_line[0] = now
            console.print(f"{label} {progress.iteration}/{max(1, steps)}  mean log-lik "
                          f"{progress.mean_objective:.10g}  {rate:,.0f} rows/s",
                          soft_wrap=True, highlight=False)

    return callback


def fit_streamed(
    estimator: Any,
    data: Path,
    columns: str | None,
    *,
    online: bool,
    batch_size: int,
    out_of_core: bool,
    quiet: bool,
    dask_address: str | None = None,
) -> tuple[np.ndarray | None, list[str], int, TableSource | None]:
    """Fit ``estimator`` (a mixture) to DATA out of core and/or online; returns the rows in
    memory (None when read out of core), the column names, the number of rows and the
    source."""
    from emkit._tabular import read_table

    if dask_address is not None and online:
        raise InputError("--online and --dask: choose one (online EM runs here)")
    needs = (estimator.n_components, "components")
    if not online:
        source = fit_source(estimator, data, columns, sequence=None, quiet=quiet,
                            dask_address=dask_address, needs=needs)
        return None, list(source.columns), source.n_rows, source
    source, X = None, None
    if out_of_core or data.is_dir():
        source = table_source(data, columns)
        rows: Any = source
        n, names = source.n_rows, list(source.columns)
    else:
        X, names = read_table(data, _split_columns(columns))
        rows, n = X, X.shape[0]
    _check_rows(data, n, needs)
    with streamed_progress(not quiet, math.ceil(n / batch_size), batch_size,
                           "online EM") as callback:
        estimator.fit_stream(row_batches(rows, batch_size), n_rows=n, callback=callback)
    estimator.__dict__.pop("feature_names_in_", None)  # as in fit_source
    return X, names, n, source


def _check_rows(data: Path, n: int, needs: tuple[int, str]) -> None:
    if n < needs[0]:
        raise InputError(f"{data} has {n} rows: fewer than the {needs[0]} {needs[1]}")


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    """A ``distributed.Client``: of a new local cluster, or of the scheduler at ``address``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--dask needs dask and distributed: pip install 'emkit[dask]'") from None
    if address == "local":
        with LocalCluster(threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"--dask {address}: no Dask scheduler answered ({exc})") from None
    with client:
        yield client


def streamed_summary(
    estimator: Any, n: int, names: Sequence[str], data: str, title: str, online: bool,
    source: TableSource | None = None,
) -> list[Table]:
    """The summary of a fit whose rows are not in memory: the log-likelihood is the fit's own
    (the last E-step's; after online EM, the running average over the stream)."""
    p = estimator.n_parameters()
    loglik = estimator.lower_bound_ * n
    label = "log-likelihood (running, online)" if online else "log-likelihood"
    rows = [
        ("data", f"{data} ({_how(online, source)})"),
        ("rows", n),
        ("features (D)", f"{len(names)}: {', '.join(names)}"),
        ("components (K)", estimator.n_components),
        *([("covariance", str(estimator.covariance_type))]
          if hasattr(estimator, "covariance_type") else []),
        ("converged", "yes" if estimator.converged_ else "no"),
        ("online steps" if online else "iterations", estimator.n_iter_),
        (label, f"{loglik:.6f}"),
        ("BIC", f"{-2 * loglik + p * math.log(n):.4f}"),
        ("AIC", f"{-2 * loglik + 2 * p:.4f}"),
    ]
    return [_key_value_table(title, rows), _component_table(estimator, list(names))]


def _how(online: bool, source: TableSource | None) -> str:
    if online:
        return "read in one online pass"
    return "fitted on Dask" if isinstance(source, DaskData) else "read out of core"


def plot_rows(X: np.ndarray | None, source: TableSource | None) -> np.ndarray:
    """The rows a plot draws: all of them in memory, else the first ``PLOT_ROWS``."""
    if X is not None:
        return X
    assert source is not None
    return source.head(PLOT_ROWS).X
