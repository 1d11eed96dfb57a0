"""Rich tables and figures that summarise a fitted mixture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from emkit.cli._common import (
    _list,
)
from emkit.estimators.gaussian_mixture import GaussianMixture

_MAX_FEATURES_SHOWN = 6


def _standard_deviations(estimator: GaussianMixture) -> np.ndarray:
    """Per-component standard deviation of every feature, ``(K, D)``, for any covariance type."""
    from emkit.plotting import marginal_covariances

    D = estimator.means_.shape[1]
    covs = marginal_covariances(estimator, range(D))
    return np.sqrt(np.diagonal(covs, axis1=1, axis2=2))


def _component_table(estimator: Any, names: Sequence[str] | None) -> Table:
    if hasattr(estimator, "mean_") and hasattr(estimator, "covariance_"):  # MissingNormal
        return _normal_table(estimator, names)
    if hasattr(estimator, "family_"):  # a MixtureModel of any family
        return _family_component_table(estimator, names)
    # a Gaussian mixture: GaussianMixture, or an EMImputer's (full covariances, K × D × D)
    if isinstance(estimator, GaussianMixture):
        sds = _standard_deviations(estimator)
    else:
        sds = np.sqrt(np.diagonal(np.asarray(estimator.covariances_), axis1=1, axis2=2))
    D = np.asarray(estimator.means_).shape[1]
    table = Table(title=f"components: mean (sd) per feature{_first_features(D)}",
                  title_justify="left")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    cells = _gaussian_columns(table, estimator.means_, sds, names)
    for k in range(len(estimator.weights_)):
        table.add_row(str(k), f"{estimator.weights_[k]:.4f}", *(cell(k) for cell in cells))
    return table


def _normal_table(estimator: Any, names: Sequence[str] | None) -> Table:
    """One multivariate normal: mean (sd) per feature."""
    mean = np.asarray(estimator.mean_)[None, :]
    sd = np.sqrt(np.diagonal(np.asarray(estimator.covariance_)))[None, :]
    table = Table(title=f"normal: mean (sd) per feature{_first_features(mean.shape[1])}",
                  title_justify="left")
    cells = _gaussian_columns(table, mean, sd, names)
    table.add_row(*(cell(0) for cell in cells))
    return table


def _first_features(D: int) -> str:
    shown = min(D, _MAX_FEATURES_SHOWN)
    return f" (first {shown} of {D} features)" if D > shown else ""


def _gaussian_columns(
    table: Table, means: Any, sds: Any, names: Sequence[str] | None
) -> list[Callable[[int], str]]:
    """One column per feature (the first few) holding ``mean (sd)``; the cell makers by row."""
    means, sds = np.asarray(means), np.asarray(sds)
    D = means.shape[1]
    names = list(names) if names is not None else [f"x{j}" for j in range(D)]
    cells: list[Callable[[int], str]] = []
    for j in range(min(D, _MAX_FEATURES_SHOWN)):
        table.add_column(escape(str(names[j])), justify="right")
        cells.append(lambda k, j=j: f"{means[k, j]:#.5g} ({sds[k, j]:#.3g})")
    return cells


def _family_component_table(estimator: Any, names: Sequence[str] | None) -> Table:
    """Weights and the family's named parameter arrays (``describe``), one row per component."""
    family = estimator.family_
    described = family.describe(estimator.components_)
    described.pop("precisions_cholesky", None)  # a computational form of the covariances
    single = len(described) == 1
    title = f"components: {next(iter(described))}" if single else f"{family.name} components"
    table = Table(title=title, title_justify="left")
    table.add_column("k", justify="right")
    table.add_column("weight", justify="right")
    D = int(getattr(estimator, "n_features_in_", 0)) or None
    cells = _family_columns(table, family, described, names, D)
    for k in range(len(estimator.weights_)):
        table.add_row(str(k), f"{estimator.weights_[k]:.4f}", *(cell(k) for cell in cells))
    return table


def _family_columns(
    table: Table,
    family: Any,
    described: dict[str, Any],
    names: Sequence[str] | None,
    D: int | None,
) -> list[Callable[[int], str]]:
    """Columns for a family's named parameter arrays (``describe``); the cell makers by row.

    An array ``(K,)`` is one column; ``(K, D)`` one column per feature; ``(K, D, C)`` (e.g.
    category probabilities) one column per feature listing its values, labelled by the
    family's ``categories`` where its config names them.  With one array the columns are
    named by feature alone, otherwise ``name [feature]``.
    """
    names = list(names) if names is not None else None
    labels = family.config().get("categories")
    single = len(described) == 1
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
            header = str(feature) if single else f"{key} [{feature}]"
            table.add_column(escape(header), justify="right")  # [..] is not rich markup
            if arr.ndim == 2:
                columns.append(lambda k, a=arr, j=j: f"{a[k, j]:#.5g}")
            else:
                cats = labels[j] if isinstance(labels, list) and j < len(labels) else None
                columns.append(lambda k, a=arr, j=j, c=cats: _vector_cell(a[k, j], c))
    return columns


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
        *_run_rows(estimator),
    ]
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


def _run_rows(estimator: Any) -> list[tuple[str, Any]]:
    """Summary rows of an EM run: converged, iterations (E-steps), and restarts when > 1."""
    rows: list[tuple[str, Any]] = [
        ("converged", "yes" if estimator.converged_ else "no"),
        ("iterations", f"{estimator.n_iter_} ({estimator.n_estep_} E-steps)"),
    ]
    if estimator.n_init > 1:
        rows.append(("restarts", f"{estimator.n_init} (best: run {estimator.best_restart_ + 1})"))
    return rows
