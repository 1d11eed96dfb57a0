"""``emkit regimes``: volatility regimes of a returns series."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli._common import (
    _check_outputs,
    _echo,
    _force_option,
    _list,
    _stdout,
)


@click.command("regimes")
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
@_force_option
def regimes(data: Path, column: str | None, states: int, emission: str,
            levels: tuple[float, ...], plot: Path | None, seed: int, force: bool) -> None:
    """Volatility regimes of the daily returns in DATA (CSV/Parquet, time order): an HMM and a
    Gaussian mixture; regime means, volatilities and durations; one-day VaR and ES of the model
    against the single Gaussian and the empirical quantile."""
    from emkit.apps.finance import DEFAULT_LEVELS, fit_regimes, plot_regimes

    _check_outputs({"DATA": data}, {"--plot": plot}, force)
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
    _echo(report.to_text())
    if plot is not None:
        plot_regimes(report, X[:, 0], plot)
        _stdout().print(f"figure saved to {plot}")
