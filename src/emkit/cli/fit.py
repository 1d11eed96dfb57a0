"""``emkit fit gmm`` and ``emkit fit mixture`` (``emkit fit hmm`` is in :mod:`emkit.cli.hmm`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli._common import (
    _COVARIANCES,
    _check_components,
    _check_outputs,
    _family_choices,
    _fit_progress,
    _force_option,
    _Group,
    _in_file_terms,
    _marginalised_note,
    _print_note,
    _read_data,
    _reported_warnings,
    _save_model,
    _split_columns,
    _stdout,
    _text_family,
)
from emkit.cli._report import (
    _fit_summary,
    _mixture_summary,
    _save_plot,
)
from emkit.cli._streamed import fit_streamed, plot_rows, streamed_options, streamed_summary
from emkit.cli.hmm import fit_hmm
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.families import make_family
from emkit.models.mixture import MIXTURE_INITS

_DEFAULTS = GaussianMixture().get_params()


@click.group("fit", cls=_Group)
def fit_group() -> None:
    """Fit a model to a CSV (with a header row) or Parquet file."""


fit_group.add_command(fit_hmm)


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
@click.option("--init", "init_params", type=click.Choice(MIXTURE_INITS),
              default=_DEFAULTS["init_params"], show_default=True, help="How starts are drawn.")
@click.option("--seed", type=int, default=None, help="Random seed (reproducible fits).")
@click.option("--squarem", is_flag=True, help="Accelerate EM with SQUAREM.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of the fit here.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@streamed_options
@_force_option
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
    out_of_core: bool,
    online: bool,
    batch_size: int,
    dask_address: str | None,
    force: bool,
) -> None:
    """Fit a Gaussian mixture to the numeric columns of DATA (a CSV or Parquet file, or a
    folder of Parquet files, which is read out of core)."""
    _check_outputs({"DATA": data}, {"-o/--output": output, "--plot": plot_path}, force)
    streamed = online or out_of_core or data.is_dir() or dask_address is not None
    if not streamed:
        X, names = read_table(data, _split_columns(columns))
        _check_components("-k", n_components, X.shape[0], data)
        if not quiet:
            _print_note(_marginalised_note(X))
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
    source = None
    if streamed:
        with _reported_warnings():
            kept, names, n, source = fit_streamed(
                estimator, data, columns, online=online, batch_size=batch_size,
                out_of_core=out_of_core, quiet=quiet, dask_address=dask_address,
            )
    else:
        with _reported_warnings(), _fit_progress(not quiet, max_iter, n_init) as callback:
            estimator.fit(X, callback=callback)
        kept = X
    out = _stdout()
    if not quiet:
        if kept is not None:
            summary = _fit_summary(estimator, kept, names, str(data))
        else:
            summary = streamed_summary(
                estimator, n, names, str(data), "Gaussian mixture fitted by EM", online, source
            )
        for table in summary:
            out.print(table)
    if plot_path is not None:
        _save_plot(estimator, plot_rows(kept, source), names, plot_path)
        if not quiet:
            out.print(f"plot saved to {plot_path}")
    if output is not None:
        _save_model(estimator, names, output)
        if not quiet:
            out.print(f"model saved to {output}")


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
              help="Drop rows with a missing cell (default: missing cells are "
                   "marginalised).")
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
@streamed_options
@_force_option
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
    out_of_core: bool,
    online: bool,
    batch_size: int,
    dask_address: str | None,
    force: bool,
) -> None:
    """Fit a mixture of FAMILY components to the columns of DATA (a CSV or Parquet file, or a
    folder of Parquet files, which is read out of core)."""
    from emkit.estimators.mixture import MixtureModel

    _check_outputs({"DATA": data}, {"-o/--output": output, "--plot": plot_path}, force)
    if online or out_of_core or data.is_dir() or dask_address is not None:
        _fit_mixture_streamed(
            MixtureModel(family, n_components, n_init=n_init, short_runs=short_runs,
                         max_iter=max_iter, tol=tol, init_params=init_params,
                         random_state=seed, accelerate="squarem" if squarem else "none"),
            data, columns, weights, drop_missing, output, plot_path, quiet, out_of_core,
            online, batch_size, dask_address,
        )
        return
    text = _text_family([family])
    marginalise = make_family(family).handles_missing
    table = _read_data(data, columns, weights, text, drop_missing, marginalise)
    X, names, w, note = table.X, table.names, table.weights, table.note
    _check_components("-k", n_components, X.shape[0], data)
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
            raise _in_file_terms(exc, names, table.rows) from None
    out = _stdout()
    if not quiet:
        for table in _mixture_summary(estimator, X, names, str(data), w):
            out.print(table)
    _plot_and_save(estimator, X, names, plot_path, output, quiet, w)


def _fit_mixture_streamed(
    estimator: Any,
    data: Path,
    columns: str | None,
    weights: str | None,
    drop_missing: bool,
    output: Path | None,
    plot_path: Path | None,
    quiet: bool,
    out_of_core: bool,
    online: bool,
    batch_size: int,
    dask_address: str | None,
) -> None:
    """``emkit fit mixture`` out of core, online or on Dask: no weights; labels (text
    columns) out of core and on Dask, not online (its batches would not know every label)."""
    if weights is not None or drop_missing:
        option = "--weights" if weights is not None else "--drop-missing"
        raise InputError(f"{option} needs DATA in memory: leave out --out-of-core/--online (and "
                         "give a file, not a folder)")
    if online and _text_family([estimator.family]):
        raise InputError(f"a {estimator.family} mixture reads text columns, which --online "
                         "batches do not: leave out --online (out of core reads them)")
    with _reported_warnings():
        kept, names, n, source = fit_streamed(
            estimator, data, columns, online=online, batch_size=batch_size,
            out_of_core=out_of_core, quiet=quiet, dask_address=dask_address,
        )
    out = _stdout()
    if not quiet:
        if kept is not None:
            summary = _mixture_summary(estimator, kept, names, str(data), None)
        else:
            title = f"{estimator.family_.name} mixture fitted by EM"
            summary = streamed_summary(estimator, n, names, str(data), title, online, source)
        for table in summary:
            out.print(table)
    rows = plot_rows(kept, source) if plot_path is not None else None
    _plot_and_save(estimator, rows, names, plot_path, output, quiet)


def _plot_and_save(
    estimator: Any,
    X: Any,
    names: list[str],
    plot_path: Path | None,
    output: Path | None,
    quiet: bool,
    w: Any = None,
) -> None:
    """``--plot`` (the mixture over the rows ``X``) and ``-o`` of ``emkit fit mixture``."""
    out = _stdout()
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
