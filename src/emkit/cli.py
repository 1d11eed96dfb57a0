"""The ``emkit`` command: fit models to CSV/Parquet files, inspect and apply them, run demos.

Every user error (bad file, bad column, bad option value, unreadable model) prints one red
``error: ...`` line on stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from emkit import __version__
from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.engine.loop import NumericalError
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.io import ModelFileError, atomic_write_bytes, load, read_header, save
from emkit.models.gaussian_mixture import INIT_METHODS

USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    ModelFileError,
    ValueError,
    OSError,
    NumericalError,
)
EXIT_USER_ERROR = 2
_COVARIANCES = ("full", "tied", "diag", "spherical")
_DEFAULTS = GaussianMixture().get_params()
_MAX_FEATURES_SHOWN = 6


def _stdout() -> Console:
    return Console(highlight=False)


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emkit")
def main() -> None:
    """Fit latent-variable models by Expectation-Maximization."""


# --- helpers -------------------------------------------------------------------------------------
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


def _require_complete(X: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Name the rows and columns with missing (empty, NA) or infinite values."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1)) + 1
    cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
    raise InputError(
        f"{path}: {rows.size} row(s) have missing or infinite values: data rows "
        f"{_list(rows.tolist())} (counting from 1 below the header), in column(s) "
        f"{_list([repr(c) for c in cols])}; drop or impute those rows first"
    )


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
) -> Iterator[Callable[[int, float], None] | None]:
    """A transient rich progress bar fed by the engine's ``callback(iteration, mean_loglik)``."""
    console = _stderr()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("EM", total=max(1, max_iter * n_init))
        state = {"restart": 0, "last": 0}

        def callback(iteration: int, mean_loglik: float) -> None:
            if iteration <= state["last"]:
                state["restart"] += 1
            state["last"] = iteration
            run = f"run {state['restart'] + 1}/{n_init} " if n_init > 1 else ""
            progress.update(
                task,
                completed=state["restart"] * max_iter + iteration,
                description=f"EM {run}mean log-lik {mean_loglik:.6g}",
            )

        yield callback


def _standard_deviations(estimator: GaussianMixture) -> np.ndarray:
    """Per-component standard deviation of every feature, ``(K, D)``, for any covariance type."""
    from emkit.plotting import marginal_covariances

    D = estimator.means_.shape[1]
    covs = marginal_covariances(estimator, range(D))
    return np.sqrt(np.diagonal(covs, axis1=1, axis2=2))


def _component_table(estimator: Any, names: Sequence[str] | None) -> Table:
    if not hasattr(estimator, "means_"):
        return _family_component_table(estimator, names)
    means = np.asarray(estimator.means_)
    K, D = means.shape
    names = list(names) if names is not None else [f"x{j}" for j in range(D)]
    sds = _standard_deviations(estimator)
    shown = min(D, _MAX_FEATURES_SHOWN)
    more = f" (first {shown} of {D} features)" if D > shown else ""
    table = Table(title=f"components: mean (sd) per feature{more}", title_justify="left")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    for j in range(shown):
        table.add_column(str(names[j]), justify="right")
    for k in range(K):
        cells = [f"{means[k, j]:#.5g} ({sds[k, j]:#.3g})" for j in range(shown)]
        table.add_row(str(k), f"{estimator.weights_[k]:.4f}", *cells)
    return table


def _family_component_table(estimator: Any, names: Sequence[str] | None) -> Table:
    """Weights and the family's named parameter arrays (``describe``), one row per component.

    An array ``(K,)`` is one column; ``(K, D)`` one column per feature; ``(K, D, C)`` (e.g.
    category probabilities) one column per feature listing its values, labelled by the
    family's ``categories`` where its config names them.
    """
    family = estimator.family_
    described = family.describe(estimator.components_)
    K = len(estimator.weights_)
    D = int(getattr(estimator, "n_features_in_", 0)) or None
    names = list(names) if names is not None else None
    labels = family.config().get("categories")
    single = len(described) == 1
    title = f"components: {next(iter(described))}" if single else f"{family.name} components"
    table = Table(title=title, title_justify="left")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    columns: list[Callable[[int], str]] = []
    for key, value in described.items():
        arr = np.asarray(value)
        if arr.ndim == 1:
            table.add_column(key, justify="right")
            columns.append(lambda k, a=arr: f"{a[k]:#.5g}")
            continue
        width = arr.shape[1]
        shown = min(width, _MAX_FEATURES_SHOWN)
        for j in range(shown):
            feature = names[j] if names is not None and width == D and j < len(names) else j
            table.add_column(str(feature) if single else f"{key} [{feature}]", justify="right")
            if arr.ndim == 2:
                columns.append(lambda k, a=arr, j=j: f"{a[k, j]:#.5g}")
            else:
                cats = labels[j] if isinstance(labels, list) and j < len(labels) else None
                columns.append(lambda k, a=arr, j=j, c=cats: _vector_cell(a[k, j], c))
    for k in range(K):
        table.add_row(str(k), f"{estimator.weights_[k]:.4f}", *(cell(k) for cell in columns))
    return table


def _vector_cell(values: np.ndarray, labels: Sequence[Any] | None) -> str:
    values = np.asarray(values).ravel()
    n = len(labels) if labels is not None else values.size
    parts = [f"{labels[i] if labels is not None else i} {values[i]:.2f}" for i in range(n)]
    return "\n".join(parts)


def _key_value_table(title: str, rows: Sequence[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def _cov_name(estimator: GaussianMixture) -> str:
    from emkit.families.covariance import covariance_structure

    return covariance_structure(estimator.covariance_type).name


def _fit_summary(
    estimator: GaussianMixture, X: np.ndarray, names: Sequence[str], source: str
) -> list[Table]:
    n, D = X.shape
    loglik = float(estimator.score(X) * n)
    rows = [
        ("data", source),
        ("rows", n),
        ("features (D)", f"{D}: {_list(list(names))}"),
        ("components (K)", estimator.n_components),
        ("covariance", _cov_name(estimator)),
        ("converged", "yes" if estimator.converged_ else "no"),
        ("iterations", estimator.n_iter_),
        ("log-likelihood", f"{loglik:.6f}"),
        ("BIC", f"{estimator.bic(X):.4f}"),
        ("AIC", f"{estimator.aic(X):.4f}"),
    ]
    if estimator.n_init > 1:
        best = estimator.best_restart_ + 1
        rows.insert(7, ("restarts", f"{estimator.n_init} (best: run {best})"))
    return [
        _key_value_table("Gaussian mixture fitted by EM", rows),
        _component_table(estimator, names),
    ]


def _csv_text(labels: np.ndarray, proba: np.ndarray | None) -> str:
    buffer = io.StringIO()
    if proba is None:
        header, data, fmt = "component", labels[:, None], ["%d"]
    else:
        K = proba.shape[1]
        header = ",".join(["component"] + [f"p{k}" for k in range(K)])
        data = np.column_stack([labels, proba])
        fmt = ["%d"] + ["%.10g"] * K
    np.savetxt(buffer, data, fmt=fmt, delimiter=",", header=header, comments="")
    return buffer.getvalue()


def _save_plot(estimator: GaussianMixture, X: np.ndarray, names: Sequence[str], path: Path,
               with_history: bool = False) -> Path:
    from emkit.plotting import new_figure, plot_history, plot_mixture, save_figure

    if with_history:
        fig, (left, right) = new_figure(figsize=(12.0, 4.8), ncols=2,
                                        width_ratios=(1.5, 1.0))
        plot_mixture(estimator, X, feature_names=names, ax=left)
        plot_history(estimator, ax=right)
    else:
        fig, ax = new_figure(figsize=(7.2, 5.4))
        plot_mixture(estimator, X, feature_names=names, ax=ax)
    return save_figure(fig, path)


# --- emkit fit -----------------------------------------------------------------------------------
@main.group("fit", cls=_Group)
def fit_group() -> None:
    """Fit a model to a CSV (with a header row) or Parquet file."""


@fit_group.command("gmm")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-k", "--components", "n_components", type=click.IntRange(min=1), required=True,
              help="Number of mixture components K.")
@click.option("--covariance", type=click.Choice(_COVARIANCES), default="full", show_default=True,
              help="Covariance structure of the components.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the fitted model here (.emk).")
@click.option("--columns", help="Comma-separated columns to use (default: all).")
@click.option("--n-init", type=click.IntRange(min=1), default=_DEFAULTS["n_init"],
              show_default=True, help="EM runs from different starts; the best is kept.")
@click.option("--max-iter", type=click.IntRange(min=0), default=_DEFAULTS["max_iter"],
              show_default=True, help="Most EM iterations per run.")
@click.option("--tol", type=click.FloatRange(min=0.0), default=_DEFAULTS["tol"],
              show_default=True,
              help="Stop when the mean log-likelihood changes by at most tol·(1+|ℓ|).")
@click.option("--init", "init_params", type=click.Choice(INIT_METHODS),
              default=_DEFAULTS["init_params"], show_default=True, help="How starts are drawn.")
@click.option("--seed", type=int, default=None, help="Random seed (reproducible fits).")
@click.option("--squarem", is_flag=True, help="Accelerate EM with SQUAREM.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of the fit here.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def fit_gmm(
    data: Path,
    n_components: int,
    covariance: str,
    output: Path | None,
    columns: str | None,
    n_init: int,
    max_iter: int,
    tol: float,
    init_params: str,
    seed: int | None,
    squarem: bool,
    plot_path: Path | None,
    quiet: bool,
) -> None:
    """Fit a Gaussian mixture to the numeric columns of DATA."""
    X, names = read_table(data, _split_columns(columns))
    _require_complete(X, names, data)
    estimator = GaussianMixture(
        n_components=n_components,
        covariance_type=covariance,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        init_params=init_params,
        random_state=seed,
        accelerate="squarem" if squarem else "none",
    )
    with _reported_warnings(), _fit_progress(not quiet, max_iter, n_init) as callback:
        estimator.fit(X, callback=callback)
    out = _stdout()
    if not quiet:
        for table in _fit_summary(estimator, X, names, str(data)):
            out.print(table)
    if plot_path is not None:
        _save_plot(estimator, X, names, plot_path)
        if not quiet:
            out.print(f"plot saved to {plot_path}")
    if output is not None:
        # Fitted on a plain array; the column names go with the model so `predict` can select
        # the same columns by name (scikit-learn's attribute for it).
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
        save(estimator, output)
        if not quiet:
            out.print(f"model saved to {output}")


def _family_choices() -> list[str]:
    """Families that can be made from their name alone (the CLI's ``--family`` values)."""
    from emkit.families import FAMILIES, make_family

    names = []
    for name in sorted(FAMILIES):
        try:
            make_family(name)
        except (TypeError, ValueError):
            continue  # needs arguments (e.g. a product of column blocks)
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


def _require_complete_cells(X: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Like :func:`_require_complete` for numeric or text (object) tables."""
    if X.dtype != object:
        _require_complete(X, names, path)
        return
    bad = _missing_cells(X)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1)) + 1
    cols = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
    raise InputError(
        f"{path}: {rows.size} row(s) have missing values: data rows {_list(rows.tolist())} "
        f"(counting from 1 below the header), in column(s) {_list([repr(c) for c in cols])}; "
        "drop those rows first"
    )


def _read_data(
    data: Path, columns: str | None, weights: str | None, text: bool, drop_missing: bool = False
) -> tuple[np.ndarray, list[str], np.ndarray | None, str]:
    """The model columns (all but ``weights`` by default), the weights column of DATA, and a
    note; rows with a missing cell are an error, or dropped (the note says so) if
    ``drop_missing``."""
    selected = _split_columns(columns)
    if weights is not None:
        if selected is not None and weights in selected:
            raise InputError(f"--weights column {weights!r} is also in --columns; list it once")
        if selected is None:
            from emkit._tabular import read_table as _read

            _, every = _read(data, text=True)
            selected = [c for c in every if c != weights]
            if len(selected) == len(every):
                raise InputError(
                    f"{data} has no column {weights!r}; available columns: {', '.join(every)}"
                )
            if not selected:
                raise InputError(f"{data} has no column besides the --weights column {weights!r}")
    X, names = read_table(data, selected, text=text)
    w = read_table(data, [weights])[0][:, 0] if weights is not None else None
    note = ""
    if drop_missing:
        keep = ~_missing_cells(X).any(axis=1)
        if w is not None:
            keep &= np.isfinite(w)
        if not keep.all():
            dropped = np.flatnonzero(~keep) + 1
            note = (f"dropped {dropped.size} row(s) with missing values (data rows "
                    f"{_list(dropped.tolist())})")
            X, w = X[keep], (w[keep] if w is not None else None)
        if X.shape[0] == 0:
            raise InputError(f"{data}: every row has a missing value")
    _require_complete_cells(X, names, data)
    if w is None:
        return X, names, None, note
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise InputError(
            f"{data}: the --weights column {weights!r} must hold non-negative numbers; data row "
            f"{bad[0] + 1} holds {w[bad[0]]!r}"
        )
    if not w.sum() > 0:
        raise InputError(f"{data}: the --weights column {weights!r} sums to zero")
    return X, names, w, note


def _print_note(note: str) -> None:
    if note:
        _stderr().print(Text(f"note: {note}", style="yellow"), soft_wrap=True)


_COLUMN_INDEX = re.compile(r"\bcolumn (\d+)\b")


def _with_column_names(exc: InputError, names: Sequence[str]) -> InputError:
    """The error with ``column 3`` written as the file's ``column 'name'`` (the estimator is
    fitted on a plain array, so it only knows positions)."""

    def name(match: re.Match[str]) -> str:
        j = int(match.group(1))
        return f"column {names[j]!r}" if j < len(names) else match.group(0)

    return type(exc)(_COLUMN_INDEX.sub(name, str(exc)))


def _mixture_summary(
    estimator: Any, X: np.ndarray, names: Sequence[str], source: str, w: np.ndarray | None
) -> list[Table]:
    from emkit.select import information_criteria

    crit = information_criteria(estimator, X, w)
    n, D = X.shape
    rows: list[tuple[str, Any]] = [
        ("data", source),
        ("rows", n if w is None else f"{n} (total weight {crit['n']:g})"),
        ("features (D)", f"{D}: {_list(list(names))}"),
        ("family", estimator.family_.name),
        ("components (K)", estimator.n_components),
        ("converged", "yes" if estimator.converged_ else "no"),
        ("iterations", f"{estimator.n_iter_} ({estimator.n_estep_} E-steps)"),
    ]
    if estimator.n_init > 1:
        rows.append(("restarts", f"{estimator.n_init} (best: run {estimator.best_restart_ + 1})"))
    rows += [
        ("log-likelihood", f"{crit['loglik']:.6f}"),
        ("BIC", f"{crit['bic']:.4f}"),
        ("AIC", f"{crit['aic']:.4f}"),
        ("ICL", f"{crit['icl']:.4f}"),
    ]
    return [
        _key_value_table(f"{estimator.family_.name} mixture fitted by EM", rows),
        _component_table(estimator, names),
    ]


_MIXTURE_DEFAULTS = {"n_init": 1, "max_iter": 100, "tol": 1e-5, "init_params": "k-means++"}


@fit_group.command("mixture")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--family", type=click.Choice(_family_choices()), required=True,
              help="Component family.")
@click.option("-k", "--components", "n_components", type=click.IntRange(min=1), required=True,
              help="Number of mixture components K.")
@click.option("--columns", help="Comma-separated columns to use (default: all but --weights).")
@click.option("--weights", "weights", metavar="COLUMN",
              help="Column of row weights (e.g. how often each row was observed).")
@click.option("--drop-missing", is_flag=True,
              help="Drop rows with a missing cell (default: they are an error).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the fitted model here (.emk).")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="EM runs from different starts; the best is kept.")
@click.option("--short-runs", type=click.IntRange(min=0), default=0, show_default=True,
              help="emEM: start each run from the best of this many short EM runs.")
@click.option("--max-iter", type=click.IntRange(min=0), default=100, show_default=True,
              help="Most EM iterations per run.")
@click.option("--tol", type=click.FloatRange(min=0.0), default=1e-5, show_default=True,
              help="Stop when the mean log-likelihood changes by at most tol·(1+|ℓ|).")
@click.option("--init", "init_params", type=click.Choice(("k-means++", "random",
              "random_from_data")), default="k-means++", show_default=True,
              help="How starts are drawn.")
@click.option("--seed", type=int, default=None, help="Random seed (reproducible fits).")
@click.option("--squarem", is_flag=True, help="Accelerate EM with SQUAREM.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of the fit here (one column: histogram or bar chart with the "
                   "mixture and its components).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def fit_mixture(
    data: Path,
    family: str,
    n_components: int,
    columns: str | None,
    weights: str | None,
    drop_missing: bool,
    output: Path | None,
    n_init: int,
    short_runs: int,
    max_iter: int,
    tol: float,
    init_params: str,
    seed: int | None,
    squarem: bool,
    plot_path: Path | None,
    quiet: bool,
) -> None:
    """Fit a mixture of FAMILY components to the columns of DATA."""
    from emkit.estimators.mixture import MixtureModel

    text = _text_family([family])
    X, names, w, note = _read_data(data, columns, weights, text, drop_missing)
    if plot_path is not None and text and X.shape[1] > 1:
        raise InputError("--plot draws one categorical column; select it with --columns")
    _print_note(note)
    estimator = MixtureModel(
        family,
        n_components,
        n_init=n_init,
        short_runs=short_runs,
        max_iter=max_iter,
        tol=tol,
        init_params=init_params,
        random_state=seed,
        accelerate="squarem" if squarem else "none",
    )
    with _reported_warnings(), _fit_progress(not quiet, max_iter, n_init) as callback:
        try:
            estimator.fit(X, sample_weight=w, callback=callback)
        except InputError as exc:
            raise _with_column_names(exc, names) from None
    out = _stdout()
    if not quiet:
        for table in _mixture_summary(estimator, X, names, str(data), w):
            out.print(table)
    if plot_path is not None:
        from emkit.plotting import new_figure, plot_mixture, save_figure

        fig, ax = new_figure(figsize=(7.2, 5.4))
        plot_mixture(estimator, X, feature_names=names, ax=ax, sample_weight=w)
        save_figure(fig, plot_path)
        if not quiet:
            out.print(f"plot saved to {plot_path}")
    if output is not None:
        _save_model(estimator, names, output)
        if not quiet:
            out.print(f"model saved to {output}")


def _save_model(estimator: Any, names: Sequence[str], output: Path) -> None:
    """Save with the column names, so `predict` / `detect` select the same columns by name."""
    estimator.feature_names_in_ = np.asarray(names, dtype=object)
    try:
        save(estimator, output)
    except TypeError as exc:  # an estimator the model-file format does not know yet
        raise InputError(str(exc)) from None


# --- emkit select ---------------------------------------------------------------------------------
def _parse_ks(value: str) -> list[int]:
    """``"1-9"``, ``"2,3,5"`` or ``"3"`` as a list of positive integers."""
    ks: list[int] = []
    try:
        for part in value.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ks.extend(range(lo, hi + 1))
            elif part:
                ks.append(int(part))
    except ValueError:
        raise InputError(f"--k must look like 1-9, 2,3,5 or 3; got {value!r}") from None
    if not ks or min(ks) < 1:
        raise InputError(f"--k needs positive numbers of components, got {value!r}")
    return sorted(set(ks))


def _parse_names(value: str | None, option: str, allowed: Sequence[str]) -> list[str]:
    if value is None:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in names if v not in allowed]
    if unknown or not names:
        raise InputError(f"{option} takes some of {', '.join(allowed)}; got {value!r}")
    return names


@main.command("select")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--k", "ks", default="1-9", show_default=True,
              help="Numbers of components to try: a range 1-9 or a list 2,3,5.")
@click.option("--covariance", help="Gaussian covariance structures, comma-separated "
              "(default: full,tied,diag,spherical, or none when --family is given).")
@click.option("--family", "families", help="Also fit mixtures of these families, comma-separated "
              f"({', '.join(_family_choices())}).")
@click.option("--criterion", type=click.Choice(("bic", "aic", "icl")), default="bic",
              show_default=True, help="Choose the model with the lowest value of this.")
@click.option("--columns", help="Comma-separated columns to use (default: all but --weights).")
@click.option("--weights", "weights", metavar="COLUMN", help="Column of row weights.")
@click.option("--drop-missing", is_flag=True,
              help="Drop rows with a missing cell (default: they are an error).")
@click.option("--n-init", type=click.IntRange(min=1), default=3, show_default=True,
              help="EM runs per candidate; the best is kept.")
@click.option("--short-runs", type=click.IntRange(min=0), default=0, show_default=True,
              help="emEM: start each run from the best of this many short EM runs.")
@click.option("--seed", type=int, default=None, help="Random seed (reproducible fits).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of the criterion against K here.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the chosen model here (.emk).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the chosen model.")
def select_command(
    data: Path,
    ks: str,
    covariance: str | None,
    families: str | None,
    criterion: str,
    columns: str | None,
    weights: str | None,
    drop_missing: bool,
    n_init: int,
    short_runs: int,
    seed: int | None,
    plot_path: Path | None,
    output: Path | None,
    quiet: bool,
) -> None:
    """Fit mixtures over K × covariance structure (× family) and compare BIC, AIC and ICL.

    BIC = −2ℓ + p·ln n, AIC = −2ℓ + 2p and ICL = BIC + 2·entropy are lower-is-better
    (scikit-learn's sign); the table also shows mclust's BIC = 2ℓ − p·ln n (higher is better).
    """
    from emkit.select import select

    k_values = _parse_ks(ks)
    family_names = _parse_names(families, "--family", _family_choices())
    structures = _parse_names(covariance, "--covariance", _COVARIANCES)
    if covariance is None and not family_names:
        structures = list(_COVARIANCES)
    text = _text_family(family_names)
    if text and structures:
        raise InputError("categorical families take text columns, which Gaussian mixtures "
                         "cannot model: leave out --covariance")
    X, names, w, note = _read_data(data, columns, weights, text, drop_missing)
    _print_note(note)
    with _reported_warnings(), _select_progress(not quiet) as progress:
        result = select(X, n_components=k_values, covariance_types=structures,
                        families=family_names or None, criterion=criterion, n_init=n_init,
                        short_runs=short_runs, random_state=seed, sample_weight=w,
                        progress=progress)
    out = _stdout()
    if quiet:
        best = result.best
        out.print(f"{best.model} {best.label} ({criterion.upper()} "
                  f"{getattr(best, criterion):.4f})")
    else:
        if out.is_terminal and out.width >= 132:
            out.print(result)  # a rich table; its caption names the winner and the signs
            for row in result.rows:
                if row.note:
                    out.print(Text(f"note: {row.label}: {row.note}", style="yellow"),
                              soft_wrap=True)
        else:
            click.echo(result.to_text())  # plain text: never truncated, fine in a pipe
    if plot_path is not None:
        from emkit.plotting import new_figure, save_figure

        fig, ax = new_figure(figsize=(7.2, 5.0))
        result.plot(ax=ax)
        save_figure(fig, plot_path)
        if not quiet:
            out.print(f"plot saved to {plot_path}")
    if output is not None:
        _save_model(result.best_estimator, names, output)
        if not quiet:
            out.print(f"model saved to {output}")


@contextlib.contextmanager
def _select_progress(enabled: bool) -> Iterator[Callable[[int, int, Any], None] | None]:
    console = _stderr()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("fitting candidates", total=None)

        def progress(done: int, total: int, row: Any) -> None:
            bar.update(task, completed=done, total=total, description=f"fitted {row.label}")

        yield progress


# --- emkit detect ---------------------------------------------------------------------------------
@main.command("detect")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--contamination", type=float, default=0.01, show_default=True,
              help="Fraction of the training data to call outliers: rows whose density is below "
                   "this quantile of the training rows' densities are flagged (0 < c ≤ 0.5).")
@click.option("--threshold", type=float, default=None,
              help="Flag rows with log-density below this instead (overrides --contamination).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the flagged rows here (CSV; default: standard output).")
@click.option("--drop-missing", is_flag=True,
              help="Skip rows with a missing cell (default: they are an error).")
def detect(model: Path, data: Path, contamination: float, threshold: float | None,
           output: Path | None, drop_missing: bool) -> None:
    """Flag the rows of DATA that are unlikely under MODEL (anomaly detection).

    Writes the flagged rows (their data row number, columns, log-density and score = −log p).
    """
    from emkit.estimators._mixture import check_contamination

    estimator = load(model)
    if not hasattr(estimator, "detect_outliers"):
        raise InputError(f"{model} holds a {type(estimator).__name__}, not a mixture")
    if threshold is None:
        check_contamination(contamination)
        cut = estimator.outlier_threshold(contamination)
        rule = f"below {cut:.6g}, the {contamination:g} quantile of the training rows"
    else:
        if not np.isfinite(threshold):
            raise InputError(f"--threshold must be a finite log-density, got {threshold!r}")
        cut = float(threshold)
        rule = f"below {cut:.6g}"
    X, names = _read_for_model(estimator, data)
    rows = np.arange(1, X.shape[0] + 1)
    if drop_missing:
        keep = ~_missing_cells(X).any(axis=1)
        X, rows = X[keep], rows[keep]
    _require_complete_cells(X, names, data)
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_  # columns were selected by name; the array goes by position
    log_density = estimator.score_samples(X)
    flagged = np.flatnonzero(log_density < cut)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", *names, "log_density", "score"])
    for i in flagged:
        cells = [_cell_text(v) for v in X[i]]
        writer.writerow([rows[i], *cells, f"{log_density[i]:.10g}", f"{-log_density[i]:.10g}"])
    text = buffer.getvalue()
    summary = (f"{flagged.size} of {X.shape[0]} rows flagged (log-density {rule}); row numbers "
               "count from 1 below the header")
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_bytes(output, text.encode("utf-8"))
        summary += f", written to {output}"
    _stderr().print(summary, soft_wrap=True)


def _cell_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.10g}"
    return str(value)


# --- emkit predict --------------------------------------------------------------------------------
def _model_columns(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _read_for_model(estimator: Any, data: Path) -> tuple[np.ndarray, list[str]]:
    names = _model_columns(estimator)
    family = getattr(estimator, "family_", None)
    text = family is not None and not family.numeric_input
    if names is not None:
        try:
            return read_table(data, names, text=text)
        except InputError as exc:
            if "has no column" not in str(exc):
                raise
            raise InputError(f"the model was fitted on columns {', '.join(names)}; {exc}") from None
    X, found = read_table(data, text=text)
    expected = int(estimator.n_features_in_)
    if X.shape[1] != expected:
        raise InputError(
            f"{data} has {X.shape[1]} column(s) ({_list(found)}) but the model was fitted on "
            f"{expected} feature(s)"
        )
    return X, found


@main.command("predict")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the CSV here (default: standard output).")
@click.option("--proba", is_flag=True, help="Add each component's posterior probability.")
def predict(model: Path, data: Path, output: Path | None, proba: bool) -> None:
    """Label each row of DATA with its most probable component."""
    estimator = load(model)
    X, names = _read_for_model(estimator, data)
    _require_complete_cells(X, names, data)
    # The columns were selected by name above; the array goes in by position.  (Dropping the
    # names avoids scikit-learn's "X does not have valid feature names" check on a plain array.)
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    labels = estimator.predict(X)
    probabilities = estimator.predict_proba(X) if proba else None
    text = _csv_text(labels, probabilities)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_bytes(output, text.encode("utf-8"))
    _stderr().print(f"{labels.size} rows labelled, written to {output}")


# --- emkit impute ---------------------------------------------------------------------------------
def _pattern_table(X: np.ndarray, names: Sequence[str]) -> Table:
    """Counts of rows per missingness pattern (✓ observed, · missing), most frequent first."""
    from emkit.families.missing_cells import missingness_patterns

    unique, inverse = missingness_patterns(np.isnan(X))
    counts = np.bincount(inverse, minlength=unique.shape[0])
    table = Table(title="missingness patterns")
    for name in names:
        table.add_column(str(name), justify="center")
    table.add_column("rows", justify="right")
    for p in np.argsort(-counts, kind="stable"):
        table.add_row(*["·" if m else "✓" for m in unique[p]], str(int(counts[p])))
    return table


def _table_csv(X: np.ndarray, names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([[repr(float(v)) for v in row] for row in X])
    return buffer.getvalue()


@main.command("impute")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Completed CSV (with --multiple m: OUTPUT_1.csv … OUTPUT_m.csv).")
@click.option("--model", type=click.Choice(["normal", "gmm"]), default="normal", show_default=True)
@click.option("-k", "--components", type=int, default=2, show_default=True,
              help="Components of the Gaussian mixture (--model gmm).")
@click.option("--multiple", type=int, default=None,
              help="Write this many multiple imputations (bootstrap EM + posterior draws).")
@click.option("--columns", default=None, help="Comma-separated columns to use (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
def impute(data: Path, output: Path, model: str, components: int, multiple: int | None,
           columns: str | None, seed: int) -> None:
    """Fill the missing cells of DATA by EM (conditional expectations, or multiple draws)."""
    from emkit.estimators.imputer import EMImputer

    X, names = read_table(data, _split_columns(columns))
    X = np.asarray(X, dtype=np.float64)
    _stdout().print(_pattern_table(X, names))
    imputer = EMImputer(model, n_components=components, random_state=seed)
    with _reported_warnings():
        imputer.fit(X)
        if multiple is None:
            atomic_write_bytes(output, _table_csv(imputer.transform(X), names).encode("utf-8"))
            _stderr().print(f"{int(np.isnan(X).sum())} cells filled, written to {output}")
            return
        sets = imputer.multiple_imputations(X, n_imputations=multiple)
    for i, filled in enumerate(sets, start=1):
        path = output.with_name(f"{output.stem}_{i}{output.suffix or '.csv'}")
        atomic_write_bytes(path, _table_csv(filled, names).encode("utf-8"))
    _stderr().print(f"{len(sets)} completed data sets written next to {output}")


# --- emkit info -----------------------------------------------------------------------------------
@main.command("info")
@click.argument("model", type=click.Path(path_type=Path))
def info(model: Path) -> None:
    """Show a model file: estimator, settings, fit status, parameters."""
    header = read_header(model)
    estimator = load(model)
    attributes = header.get("attributes", {})
    params = header.get("params", {})
    names = _model_columns(estimator)
    D = int(attributes.get("n_features_in_") or getattr(estimator, "n_features_in_", 0))
    rows: list[tuple[str, Any]] = [
        ("file", str(model)),
        ("estimator", header.get("estimator")),
        ("written by", f"emkit {header.get('emkit_version')} "
                       f"(format {header.get('format_version')})"),
        ("features", f"{D}: {_list(names)}" if names else D),
        ("converged", "yes" if attributes.get("converged_") else "no"),
        ("iterations", attributes.get("n_iter_")),
        ("lower bound", f"{attributes.get('lower_bound_'):.6f} (mean log-likelihood per row)"),
    ]
    rows += [(f"param {k}", v) for k, v in sorted(params.items()) if v is not None]
    out = _stdout()
    out.print(_key_value_table("model file", rows))
    out.print(_component_table(estimator, names))


# --- emkit demo -----------------------------------------------------------------------------------
@main.group("demo", cls=_Group)
def demo() -> None:
    """Demonstrations on bundled or synthetic data."""


_OUT_OPTION = click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                           default=Path("demo-output"), show_default=True,
                           help="Folder for the figures.")


@demo.command("denoise")
@_OUT_OPTION
def demo_denoise(out_dir: Path) -> None:
    """The original pixel-GMM "denoising" example, measured (PSNR) and drawn."""
    from emkit.apps.denoise import pixel_gmm_denoise, plot_denoise
    from emkit.plotting import save_figure

    result = pixel_gmm_denoise()
    path = save_figure(plot_denoise(result), out_dir / "denoise.png")
    out = _stdout()
    table = Table(title="the article's image, 100×100, noise sd 0.1", title_justify="left")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_row("true (reference)", "∞")
    table.add_row("noisy input", f"{result.psnr_noisy:.2f}")
    table.add_row(f"pixel GMM, K={result.estimator.n_components}, 50 iterations",
                  f"{result.psnr_result:.2f}")
    out.print(table)
    out.print(
        f"The pixel-intensity GMM lowers the PSNR by {-result.psnr_change:.2f} dB: it quantizes "
        f"the image into K={result.estimator.n_components} grey levels (each pixel pulled "
        "towards a component mean); it does not denoise. Pixels are treated as independent "
        "draws, so neighbouring pixels never inform each other."
    )
    out.print(
        "A patch-based GMM prior denoiser (EPLL-style, mixture learned by EM on image patches) "
        "is the method planned in the image issue."
    )
    out.print(f"figure saved to {path}")


@demo.command("faithful")
@_OUT_OPTION
def demo_faithful(out_dir: Path) -> None:
    """A two-component Gaussian mixture on Old Faithful (eruption time, waiting time)."""
    from emkit.datasets import load_faithful

    ds = load_faithful()
    estimator = GaussianMixture(n_components=2, covariance_type="full", random_state=0)
    with _reported_warnings():
        estimator.fit(ds.data)
    out = _stdout()
    for table in _fit_summary(estimator, ds.data, ds.feature_names, "Old Faithful (bundled)"):
        out.print(table)
    path = _save_plot(estimator, ds.data, ds.feature_names, out_dir / "faithful.png",
                      with_history=True)
    out.print(f"figure saved to {path}")


# --- emkit regimes --------------------------------------------------------------------------------
@main.command("regimes")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--column", default=None,
              help="The returns column (default: the file's only column).")
@click.option("--states", type=int, default=2, show_default=True,
              help="Number of regimes (HMM states and mixture components), 1-10.")
@click.option("--emission", type=click.Choice(["gaussian", "student_t"]), default="gaussian",
              show_default=True, help="Distribution of returns within a regime.")
@click.option("--level", "levels", type=float, multiple=True,
              help="VaR/ES confidence level, e.g. 0.99 (repeatable; default 0.95 and 0.99).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the returns coloured by decoded regime here (PNG).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the starts.")
def regimes(data: Path, column: str | None, states: int, emission: str,
            levels: tuple[float, ...], plot: Path | None, seed: int) -> None:
    """Volatility regimes of the daily returns in DATA (CSV/Parquet, time order): an HMM and a
    Gaussian mixture; regime means, volatilities and durations; one-day VaR and ES of the model
    against the single Gaussian and the empirical quantile."""
    from emkit.apps.finance import DEFAULT_LEVELS, fit_regimes, plot_regimes

    X, names = read_table(data, [column] if column is not None else None)
    if X.shape[1] != 1:
        raise InputError(f"{data} has {X.shape[1]} columns ({_list(names)}); choose the returns "
                         "with --column")
    bad = np.flatnonzero(~np.isfinite(X[:, 0]))
    if bad.size:
        raise InputError(f"{data}: column {names[0]!r} has no finite return at data row "
                         f"{bad[0] + 1} ({bad.size} such row(s)); drop or fill them")
    if not 1 <= states <= 10:
        raise InputError(f"--states must be from 1 to 10, got {states}")
    report = fit_regimes(X[:, 0], states, emission=emission, levels=levels or DEFAULT_LEVELS,
                         random_state=seed)
    click.echo(report.to_text())
    if plot is not None:
        plot_regimes(report, X[:, 0], plot)
        _stdout().print(f"figure saved to {plot}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
