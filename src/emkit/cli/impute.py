"""``emkit impute``: fill missing cells by EM."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from emkit._files import is_stdout
from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli._common import (
    _check_components,
    _check_outputs,
    _force_option,
    _load_model,
    _model_size_option,
    _reported_warnings,
    _save_model,
    _split_columns,
    _stderr,
    _stdout,
)
from emkit.cli.predict import _read_for_model
from emkit.io import atomic_write_bytes


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


def _multiple_paths(output: Path, m: int) -> list[Path]:
    """``OUTPUT_1.csv`` … ``OUTPUT_m.csv``: where ``--multiple m`` writes its data sets."""
    return [output.with_name(f"{output.stem}_{i}{output.suffix or '.csv'}")
            for i in range(1, m + 1)]


@click.command("impute")
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
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the fitted imputer here (.emk), to fill new files the same way.")
@click.option("--imputer", "imputer_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Fill with this saved imputer (its columns, by name) instead of fitting one.")
@_force_option
@_model_size_option
def impute(data: Path, output: Path, model: str, components: int, multiple: int | None,
           columns: str | None, seed: int, save_path: Path | None,
           imputer_path: Path | None, force: bool, max_model_mb: float) -> None:
    """Fill the missing cells of DATA by EM (conditional expectations, or multiple draws)."""
    from emkit.estimators.imputer import EMImputer

    if multiple is not None and is_stdout(output):
        raise InputError("--multiple writes one file per imputation: give -o a file name, "
                         "not - (standard output)")
    completed = {"-o/--output": output} if multiple is None else {
        f"-o/--output (imputation {i})": path
        for i, path in enumerate(_multiple_paths(output, multiple), start=1)}
    _check_outputs({"DATA": data, "--imputer": imputer_path},
                   {**completed, "--save": save_path}, force)

    if imputer_path is not None:
        if multiple is not None or save_path is not None or columns is not None:
            raise InputError("--imputer fills with a saved model: --multiple, --save and "
                             "--columns do not apply")
        imputer = _load_model(imputer_path, max_model_mb)
        if not isinstance(imputer, EMImputer):
            raise InputError(f"{imputer_path} holds a {type(imputer).__name__}, not an EMImputer")
        X, names = _read_for_model(imputer, data)
        del imputer.feature_names_in_  # columns selected by name above; the array by position
    else:
        X, names = read_table(data, _split_columns(columns))
        if model == "gmm":
            _check_components("-k", components, X.shape[0], data)
    X = np.asarray(X, dtype=np.float64)
    _stdout().print(_pattern_table(X, names))
    if imputer_path is None:
        imputer = EMImputer(model, n_components=components, random_state=seed)
    with _reported_warnings():
        if imputer_path is None:
            imputer.fit(X)
        if save_path is not None:
            _save_model(imputer, names, save_path)
            del imputer.feature_names_in_
            _stderr().print(f"imputer saved to {save_path}")
        if multiple is None:
            atomic_write_bytes(output, _table_csv(imputer.transform(X), names).encode("utf-8"))
            _stderr().print(f"{int(np.isnan(X).sum())} cells filled, written to {output}")
            return
        sets = imputer.multiple_imputations(X, n_imputations=multiple)
    for path, filled in zip(_multiple_paths(output, len(sets)), sets, strict=True):
        atomic_write_bytes(path, _table_csv(filled, names).encode("utf-8"))
    _stderr().print(f"{len(sets)} completed data sets written next to {output}")
