"""Rich tables and figures that summarise a fitted mixture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
