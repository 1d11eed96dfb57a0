"""``emkit fit hmm``, and what ``predict`` and ``info`` show of a hidden Markov model.

Rows are time steps in file order.  ``--sequence COLUMN`` cuts them into sequences: every run of
equal consecutive values in that column is one sequence (its ``lengths``); the column is not a
feature.  Missing cells (empty, ``NA``) are kept: the HMM marginalises them, and whole missing
rows, so the hidden chain moves on through gaps.  ``--out-of-core`` (always for a folder of
Parquet files) and ``--dask`` read DATA a piece of whole sequences at a time on every iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.table import Table

from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli._common import (
    _COVARIANCES,
    _check_outputs,
    _columns_besides,
    _family_choices,
    _fit_progress,
    _force_option,
    _in_file_terms,
    _list,
    _missing_cells,
    _reported_warnings,
    _save_model,
    _stdout,
)
from emkit.cli._report import (
    _family_columns,
    _first_features,
    _gaussian_columns,
    _key_value_table,
    _run_rows,
)
from emkit.cli._streamed import fit_source, out_of_core_options
from emkit.criteria import criteria
from emkit.engine.dask_source import DaskData
from emkit.engine.sources import TableSource
from emkit.estimators.hmm import HMM
from emkit.estimators.hmm_emissions import GMMHMM, GaussianHMM
from emkit.families import make_family

_HMM_DEFAULTS = HMM().get_params()
_MAX_STATES_SHOWN = 12


def is_hmm(estimator: Any) -> bool:
    return isinstance(estimator, HMM)


# --- reading -------------------------------------------------------------------------------------
def sequence_lengths(data: Path, sequence: str | None, n_rows: int) -> np.ndarray | None:
    """Lengths of the runs of equal consecutive values in the ``sequence`` column of DATA."""
    if sequence is None:
        return None
    try:
        labels = read_table(data, [sequence], text=True)[0][:, 0]
    except InputError as exc:
        if "has no column" not in str(exc):
            raise
        raise InputError(f"--sequence: {exc}") from None
    missing = np.flatnonzero(_missing_cells(labels[:, None])[:, 0])
    if missing.size:
        raise InputError(
            f"{data}: the --sequence column {sequence!r} is empty at data row(s) "
            f"{_list((missing + 1).tolist())} (counting from 1 below the header); every row "
            "needs the label of its sequence"
        )
    if labels.size != n_rows:  # pragma: no cover - the same file was read twice
        raise InputError(f"{data}: the --sequence column has {labels.size} rows, not {n_rows}")
    starts = np.flatnonzero(np.r_[True, np.asarray(labels[1:] != labels[:-1], dtype=bool)])
    return np.diff(np.r_[starts, labels.size])


def _left_right(K: int) -> tuple[np.ndarray, np.ndarray]:
    """Start in state 0; stay or move one state on (0.5 / 0.5); the last state absorbs."""
    startprob = np.zeros(K)
    startprob[0] = 1.0
    transmat = 0.5 * (np.eye(K) + np.eye(K, k=1))
    transmat[-1, -1] = 1.0
    return startprob, transmat


def _check_rows(X: np.ndarray, data: Path, K: int) -> None:
    observed = int((~_missing_cells(X).all(axis=1)).sum())
    if observed < K:
        raise InputError(f"--states {K} needs at least {K} rows with an observed value; {data} "
                         f"has {observed}")


# --- emkit fit hmm -------------------------------------------------------------------------------
@click.command("hmm")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--states", "n_states", type=click.IntRange(min=1), required=True,
              help="Number of hidden states K.")
@click.option("--emission", type=click.Choice(_family_choices(hmm=True)), default="gaussian",
              show_default=True, help="Distribution of the observations within a state.")
@click.option("--covariance", type=click.Choice(_COVARIANCES), default=None,
              help="Covariance structure of Gaussian emissions (default: full; diag for "
                   "gaussian_mixture).")
@click.option("--mix", "n_mix", type=click.IntRange(min=1), default=None,
              help="Gaussians per state of --emission gaussian_mixture (default: 2).")
@click.option("--columns", help="Comma-separated columns to use (default: all but --sequence).")
@click.option("--sequence", metavar="COLUMN",
              help="Column whose runs of equal consecutive values are separate sequences.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the fitted model here (.emk).")
@click.option("--n-init", type=click.IntRange(min=1), default=_HMM_DEFAULTS["n_init"],
              show_default=True, help="EM runs from different starts; the best is kept.")
@click.option("--max-iter", type=click.IntRange(min=0), default=_HMM_DEFAULTS["max_iter"],
              show_default=True, help="Most EM iterations per run.")
@click.option("--tol", type=click.FloatRange(min=0.0), default=_HMM_DEFAULTS["tol"],
              show_default=True,
              help="Stop when the mean log-likelihood changes by at most tol·(1+|ℓ|).")
@click.option("--seed", type=int, default=None, help="Random seed (reproducible fits).")
@click.option("--left-right", is_flag=True,
              help="Left-right chain: start in state 0, then stay or move one state on.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@out_of_core_options
@_force_option
def fit_hmm(
    data: Path,
    n_states: int,
    emission: str,
    covariance: str | None,
    n_mix: int | None,
    columns: str | None,
    sequence: str | None,
    output: Path | None,
    n_init: int,
    max_iter: int,
    tol: float,
    seed: int | None,
    left_right: bool,
    quiet: bool,
    out_of_core: bool,
    dask_address: str | None,
    force: bool,
) -> None:
    """Fit a hidden Markov model to the rows of DATA (in file order) by Baum-Welch.

    Missing cells are kept: the model marginalises them (and whole missing rows).
    """
    _check_outputs({"DATA": data}, {"-o/--output": output}, force)
    gaussian = ("gaussian", "gaussian_mixture")
    if covariance is not None and emission not in gaussian:
        raise InputError("--covariance applies to --emission gaussian or gaussian_mixture, "
                         f"not {emission}")
    if n_mix is not None and emission != "gaussian_mixture":
        raise InputError(f"--mix applies to --emission gaussian_mixture, not {emission}")
    settings: dict[str, Any] = dict(n_init=n_init, max_iter=max_iter, tol=tol,
                                    random_state=seed)
    if left_right:
        settings["startprob"], settings["transmat"] = _left_right(n_states)
    if emission == "gaussian":
        estimator: HMM = GaussianHMM(n_states, covariance or "full", **settings)
    elif emission == "gaussian_mixture":
        estimator = GMMHMM(n_states, n_mix or 2, covariance or "diag", **settings)
    else:
        estimator = HMM(emission, n_states, **settings)
    family = make_family(emission)
    if out_of_core or data.is_dir() or dask_address is not None:
        source = _fit_out_of_core(estimator, data, columns, sequence, quiet, dask_address)
        names = list(source.columns)
        summary = _streamed_hmm_summary(estimator, source, str(data), left_right)
    else:
        X, names = read_table(data, _columns_besides(data, columns, sequence, "--sequence"),
                              text=not family.numeric_input)
        lengths = sequence_lengths(data, sequence, X.shape[0])
        _check_rows(X, data, n_states)
        with _reported_warnings(), _fit_progress(not quiet, max_iter, n_init) as callback:
            try:
                estimator.fit(X, lengths, callback=callback)
            except InputError as exc:
                raise _in_file_terms(exc, names) from None
        summary = _hmm_summary(estimator, X, lengths, names, str(data), left_right)
    out = _stdout()
    if not quiet:
        for table in summary:
            out.print(table)
    if output is not None:
        _save_model(estimator, names, output)
        if not quiet:
            out.print(f"model saved to {output}")


def _fit_out_of_core(
    estimator: HMM, data: Path, columns: str | None, sequence: str | None, quiet: bool,
    dask_address: str | None,
) -> TableSource:
    """Fit to DATA read a piece of whole sequences at a time (or on Dask)."""
    if sequence is None:
        raise InputError("--out-of-core and --dask read DATA a piece of whole sequences at a "
                         "time: name the column of sequence ids with --sequence COLUMN")
    with _reported_warnings():
        return fit_source(estimator, data, columns, sequence=sequence, quiet=quiet,
                          dask_address=dask_address, needs=(estimator.n_states, "states"))


# --- summaries -----------------------------------------------------------------------------------
def _emission_name(estimator: HMM) -> str:
    config = estimator.emission_.config()
    if "covariance" in config:
        return f"{config['name']} ({config['covariance']} covariance)"
    return str(config["name"])


def _hmm_summary(
    estimator: HMM,
    X: np.ndarray,
    lengths: np.ndarray | None,
    names: Sequence[str],
    source: str,
    left_right: bool,
) -> list[Table]:
    """The summary of a fit to rows in memory (their log-likelihood by one forward pass)."""
    missing = _missing_cells(X)
    note = None
    if missing.any():
        note = f"{int(missing.sum())} in {int(missing.any(axis=1).sum())} row(s), marginalised"
    return _summary_tables(estimator, source, X.shape[0], lengths, names, left_right,
                           estimator.score(X, lengths), note)


def _streamed_hmm_summary(
    estimator: HMM, source: TableSource, data: str, left_right: bool
) -> list[Table]:
    """The summary of a fit whose rows are not in memory: the log-likelihood is the last
    E-step's (the fit's own)."""
    how = "fitted on Dask" if isinstance(source, DaskData) else "read out of core"
    return _summary_tables(estimator, f"{data} ({how})", source.n_rows, source.lengths,
                           list(source.columns), left_right,
                           estimator.lower_bound_ * source.n_rows, None)


def _summary_tables(
    estimator: HMM,
    data: str,
    n: int,
    lengths: np.ndarray | None,
    names: Sequence[str],
    left_right: bool,
    loglik: float,
    missing_note: str | None,
) -> list[Table]:
    """The key-value table of a fitted HMM (log-likelihood ``loglik`` of its ``n`` rows; BIC
    and AIC by :func:`emkit.criteria.criteria`), then the state and transition tables."""
    p = estimator.n_parameters()
    scores = criteria(loglik, n, p)
    rows: list[tuple[str, Any]] = [("data", data), ("rows", n)]
    if missing_note is not None:
        rows.append(("missing cells", missing_note))
    if lengths is None:
        rows.append(("sequences", 1))
    else:
        rows.append(("sequences", f"{lengths.size} (lengths {lengths.min()}–{lengths.max()})"))
    rows += [
        ("features (D)", f"{len(names)}: {_list(list(names))}"),
        ("emission", _emission_name(estimator)),
        ("states (K)", estimator.n_states),
        ("chain", "left-right" if left_right else "ergodic (every transition allowed)"),
        *_run_rows(estimator),
        ("log-likelihood", f"{loglik:.6f}"),
        ("parameters", p),
        ("BIC", f"{scores['bic']:.4f}"),
        ("AIC", f"{scores['aic']:.4f}"),
    ]
    return [
        _key_value_table("hidden Markov model fitted by EM", rows),
        *hmm_tables(estimator, names),
    ]


def hmm_tables(estimator: HMM, names: Sequence[str] | None) -> list[Table]:
    """The per-state table and the transition matrix."""
    return [_state_table(estimator, names), _transition_table(estimator)]


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """``π`` with ``π A = π`` and ``Σ π = 1`` (least squares; the minimum-norm solution where
    the chain has several)."""
    K = transmat.shape[0]
    system = np.vstack([transmat.T - np.eye(K), np.ones((1, K))])
    target = np.r_[np.zeros(K), 1.0]
    pi = np.clip(np.linalg.lstsq(system, target, rcond=None)[0], 0.0, None)
    return pi / pi.sum()


def _duration(stay: float) -> str:
    return "∞" if stay >= 1.0 else f"{1.0 / (1.0 - stay):#.4g}"


def _state_table(estimator: HMM, names: Sequence[str] | None) -> Table:
    """Per state: stationary share, expected duration ``1/(1 − a_kk)`` (rows) and the
    emission's parameters by column."""
    transmat = np.asarray(estimator.transmat_)
    K = transmat.shape[0]
    D = int(estimator.n_features_in_)
    family = estimator.emission_
    described = family.describe(estimator.emission_params_)
    described.pop("precisions_cholesky", None)  # a computational form of the covariances
    if isinstance(estimator, GMMHMM):
        return _mixture_state_table(estimator, names)
    gaussian = isinstance(estimator, GaussianHMM)
    if gaussian:
        title = f"states: mean (sd) per feature{_first_features(D)}"
    elif len(described) == 1:
        title = f"states: {next(iter(described))}"
    else:
        title = f"states: {family.name} emission parameters"
    table = Table(title=title, title_justify="left", caption="duration = 1/(1 − a_kk) rows",
                  caption_justify="left")
    for header in ("k", "stationary", "duration"):
        table.add_column(header, justify="right")
    cells: list[Callable[[int], str]]
    if gaussian:
        sds = np.sqrt(np.diagonal(estimator.covars_, axis1=1, axis2=2))
        cells = _gaussian_columns(table, estimator.means_, sds, names)
    else:
        cells = _family_columns(table, family, described, names, D)
    share = stationary_distribution(transmat)
    for k in range(K):
        table.add_row(str(k), f"{share[k]:.4f}", _duration(float(transmat[k, k])),
                      *(cell(k) for cell in cells))
    return table


def _mixture_state_table(estimator: GMMHMM, names: Sequence[str] | None) -> Table:
    """Per state its share and duration, then one row per Gaussian m: weight, mean (sd)."""
    transmat = np.asarray(estimator.transmat_)
    family, params = estimator.emission_, estimator.emission_params_
    K, M = params.weights.shape
    D = params.gaussian.means.shape[1]
    gaussian = family.gaussian
    cov = gaussian.covariance.as_full(gaussian.covariances(params.gaussian), K * M, D)
    sds = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    table = Table(title=f"states: Gaussians m, weight, mean (sd) per feature{_first_features(D)}",
                  title_justify="left", caption="duration = 1/(1 − a_kk) rows",
                  caption_justify="left")
    for header in ("k", "stationary", "duration", "m", "weight"):
        table.add_column(header, justify="right")
    cells = _gaussian_columns(table, params.gaussian.means, sds, names)
    share = stationary_distribution(transmat)
    for k in range(K):
        for m in range(M):
            head = [str(k), f"{share[k]:.4f}", _duration(float(transmat[k, k]))] if m == 0 \
                else ["", "", ""]
            table.add_row(*head, str(m), f"{params.weights[k, m]:.4f}",
                          *(cell(k * M + m) for cell in cells))
    return table


def _transition_table(estimator: HMM) -> Table:
    transmat = np.asarray(estimator.transmat_)
    K = transmat.shape[0]
    shown = min(K, _MAX_STATES_SHOWN)
    more = f" (first {shown} of {K} states)" if K > shown else ""
    table = Table(title=f"transitions a_jk (from j to k){more}",
                  title_justify="left")
    table.add_column("j", justify="right")
    table.add_column("start", justify="right")
    for k in range(shown):
        table.add_column(f"→ {k}", justify="right")
    for j in range(shown):
        table.add_row(str(j), f"{estimator.startprob_[j]:.4f}",
                      *(f"{transmat[j, k]:.4f}" for k in range(shown)))
    return table

