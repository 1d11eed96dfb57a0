"""Commands that apply or show a saved model: ``predict``, ``detect`` and ``info``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import click
import numpy as np

from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli._common import (
    _check_outputs,
    _force_option,
    _list,
    _load_model,
    _missing_cells,
    _model_size_option,
    _require_complete,
    _stderr,
    _stdout,
)
from emkit.cli._report import (
    _component_table,
    _key_value_table,
)
from emkit.cli.hmm import hmm_tables, is_hmm, sequence_lengths
from emkit.io import atomic_write_bytes, read_header


def _csv_text(labels: np.ndarray, proba: np.ndarray | None, label: str = "component") -> str:
    buffer = io.StringIO()
    if proba is None:
        header, data, fmt = label, labels[:, None], ["%d"]
    else:
        K = proba.shape[1]
        header = ",".join([label] + [f"p{k}" for k in range(K)])
        data = np.column_stack([labels, proba])
        fmt = ["%d"] + ["%.10g"] * K
    np.savetxt(buffer, data, fmt=fmt, delimiter=",", header=header, comments="")
    return buffer.getvalue()


def _model_columns(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _read_for_model(
    estimator: Any, data: Path, exclude: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """The model's columns of DATA (by name where the model file names them, else every column
    but ``exclude``)."""
    names = _model_columns(estimator)
    family = getattr(estimator, "family_", None) or getattr(estimator, "emission_", None)
    text = family is not None and not family.numeric_input
    if names is not None:
        try:
            return read_table(data, names, text=text)
        except InputError as exc:
            if "has no column" not in str(exc):
                raise
            raise InputError(f"the model was fitted on columns {', '.join(names)}; {exc}") from None
    if exclude is None:
        X, found = read_table(data, text=text)
    else:
        _, every = read_table(data, text=True)
        X, found = read_table(data, [c for c in every if c != exclude] or every, text=text)
    expected = int(estimator.n_features_in_)
    if X.shape[1] != expected:
        raise InputError(
            f"{data} has {X.shape[1]} column(s) ({_list(found)}) but the model was fitted on "
            f"{expected} feature(s)"
        )
    return X, found


@click.command("predict")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the CSV here (default: standard output).")
@click.option("--proba", is_flag=True, help="Add each component's posterior probability "
              "(for an HMM: each state's smoothed posterior, forward-backward).")
@click.option("--sequence", metavar="COLUMN", help="HMM only: column whose runs of equal "
              "consecutive values are separate sequences (as in `emkit fit hmm`).")
@_force_option
@_model_size_option
def predict(model: Path, data: Path, output: Path | None, proba: bool,
            sequence: str | None, force: bool, max_model_mb: float) -> None:
    """Label each row of DATA with its most probable component.

    For a hidden Markov model: the most probable state path (Viterbi), one state per row, rows
    in file order; missing cells are marginalised.
    """
    _check_outputs({"MODEL": model, "DATA": data}, {"-o/--output": output}, force)
    estimator = _load_model(model, max_model_mb)
    hmm = is_hmm(estimator)
    if sequence is not None and not hmm:
        raise InputError(f"--sequence applies to hidden Markov models; {model} holds a "
                         f"{type(estimator).__name__}")
    if not hasattr(estimator, "predict"):
        raise InputError(f"{model} holds a {type(estimator).__name__}, which does not label "
                         "rows: predict takes a mixture or a hidden Markov model")
    X, names = _read_for_model(estimator, data, exclude=sequence)
    if not estimator.__sklearn_tags__().input_tags.allow_nan:  # else missing cells marginalised
        _require_complete(X, names, data)
    # The columns were selected by name above; the array goes in by position.  (Dropping the
    # names avoids scikit-learn's "X does not have valid feature names" check on a plain array.)
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    if hmm:
        lengths = sequence_lengths(data, sequence, X.shape[0])
        labels = estimator.predict(X, lengths)
        probabilities = estimator.predict_proba(X, lengths) if proba else None
        text = _csv_text(labels, probabilities, label="state")
    else:
        labels = estimator.predict(X)
        probabilities = estimator.predict_proba(X) if proba else None
        text = _csv_text(labels, probabilities)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_bytes(output, text.encode("utf-8"))
    _stderr().print(f"{labels.size} rows labelled, written to {output}")


@click.command("detect")
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
@_force_option
@_model_size_option
def detect(model: Path, data: Path, contamination: float, threshold: float | None,
           output: Path | None, drop_missing: bool, force: bool, max_model_mb: float) -> None:
    """Flag the rows of DATA that are unlikely under MODEL (anomaly detection).

    Writes the flagged rows (their data row number, columns, log-density and score = −log p).
    """
    from emkit.estimators._mixture import check_contamination

    _check_outputs({"MODEL": model, "DATA": data}, {"-o/--output": output}, force)
    estimator = _load_model(model, max_model_mb)
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
    _require_complete(X, names, data)
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


@click.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@_model_size_option
def info(model: Path, max_model_mb: float) -> None:
    """Show a model file: estimator, settings, fit status, parameters."""
    header = read_header(model, max_bytes=int(max_model_mb * 2**20))
    estimator = _load_model(model, max_model_mb)
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
    ]
    if attributes.get("lower_bound_") is not None:
        rows.append(("lower bound", f"{attributes['lower_bound_']:.6f} (mean log-likelihood "
                                    "per row)"))
    elif attributes.get("loglik_") is not None:
        rows.append(("log-likelihood", f"{attributes['loglik_']:.6f}"))
    rows += [(f"param {k}", v) for k, v in sorted(params.items()) if v is not None]
    out = _stdout()
    out.print(_key_value_table("model file", rows))
    hmm = is_hmm(estimator)
    for table in hmm_tables(estimator, names) if hmm else [_component_table(estimator, names)]:
        out.print(table)
