"""``emkit select``: compare mixtures over K, covariance structure and family."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from emkit._validation import InputError
from emkit.cli._common import (
    _COVARIANCES,
    _check_components,
    _check_outputs,
    _echo,
    _family_choices,
    _force_option,
    _print_note,
    _read_data,
    _reported_warnings,
    _save_model,
    _stderr,
    _stdout,
    _text_family,
)
from emkit.families import make_family


def _parse_ks(value: str) -> list[range]:
    """``"1-9"``, ``"2,3,5"`` or ``"3"`` as ranges of positive integers (not expanded: ``--k``
    is bounded by the rows of DATA first, see :func:`_expand_ks`)."""
    ranges: list[range] = []
    try:
        for part in value.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ranges.append(range(lo, hi + 1))
            elif part:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise InputError(f"--k must look like 1-9, 2,3,5 or 3; got {value!r}") from None
    if not ranges or min(r.start for r in ranges) < 1:
        raise InputError(f"--k needs positive numbers of components, got {value!r}")
    return ranges


def _expand_ks(ranges: list[range], value: str, n_rows: int, data: Path) -> list[int]:
    """The K values of ``--k``, once they are known not to exceed the rows of DATA."""
    _check_components("--k", max(r[-1] for r in ranges), n_rows, data, value)
    return sorted({k for r in ranges for k in r})


def _parse_names(value: str | None, option: str, allowed: Sequence[str]) -> list[str]:
    if value is None:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in names if v not in allowed]
    if unknown or not names:
        raise InputError(f"{option} takes some of {', '.join(allowed)}; got {value!r}")
    return names


@click.command("select")
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
              help="Drop rows with a missing cell (default: missing cells are "
                   "marginalised).")
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
@_force_option
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
    force: bool,
) -> None:
    """Fit mixtures over K × covariance structure (× family) and compare BIC, AIC and ICL.

    BIC = −2ℓ + p·ln n, AIC = −2ℓ + 2p and ICL = BIC + 2·entropy are lower-is-better
    (scikit-learn's sign); the table also shows mclust's BIC = 2ℓ − p·ln n (higher is better).
    """
    from emkit.select import DegenerateSelectionError, select

    _check_outputs({"DATA": data}, {"-o/--output": output, "--plot": plot_path}, force)
    k_ranges = _parse_ks(ks)
    family_names = _parse_names(families, "--family", _family_choices())
    structures = _parse_names(covariance, "--covariance", _COVARIANCES)
    if covariance is None and not family_names:
        structures = list(_COVARIANCES)
    text = _text_family(family_names)
    if text and structures:
        raise InputError("categorical families take text columns, which Gaussian mixtures "
                         "cannot model: leave out --covariance")
    marginalise = all(make_family(name).handles_missing for name in family_names)
    table = _read_data(data, columns, weights, text, drop_missing, marginalise)
    X, names, w, note = table.X, table.names, table.weights, table.note
    k_values = _expand_ks(k_ranges, ks, X.shape[0], data)
    _print_note(note)
    try:
        with _reported_warnings(), _select_progress(not quiet) as progress:
            result = select(X, n_components=k_values, covariance_types=structures,
                            families=family_names or None, criterion=criterion,
                            n_init=n_init, short_runs=short_runs, random_state=seed,
                            sample_weight=w, progress=progress)
    except DegenerateSelectionError as exc:
        if not quiet:
            _print_table(exc.result)  # what was fitted; then the error line, exit status 2
        raise InputError(f"{data}: {exc}") from None
    out = _stdout()
    if quiet:
        best = result.best
        out.print(f"{best.model} {best.label} ({criterion.upper()} "
                  f"{getattr(best, criterion):.4f})")
    else:
        _print_table(result)
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


def _print_table(result: Any) -> None:
    """The selection table: rich on a wide terminal, else plain text (never truncated)."""
    out = _stdout()
    if out.is_terminal and out.width >= 132:
        out.print(result)  # a rich table; its caption names the winner and the signs
        for row in result.rows:
            if row.note:
                out.print(Text(f"note: {row.label}: {row.note}", style="yellow"), soft_wrap=True)
    else:
        _echo(result.to_text())


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
