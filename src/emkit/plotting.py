"""Matplotlib figures of fitted models (Agg canvas only: nothing is ever shown on screen).

Figures are built as :class:`matplotlib.figure.Figure` objects without :mod:`matplotlib.pyplot`,
so no global state or interactive backend is touched; :func:`save_figure` writes atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator

from emkit.criteria import check_criterion
from emkit.families.covariance import covariance_structure
from emkit.io import atomic_write_bytes

__all__ = [
    "marginal_covariances",
    "new_figure",
    "plot_history",
    "plot_mixture",
    "plot_selection",
    "plot_series_by_state",
    "save_figure",
]

_CMAP = "tab10"


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), **subplots: Any) -> tuple[Figure, Any]:
    """A figure on an Agg canvas and its axes (``subplots`` as in ``Figure.subplots``)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, PNG by default) atomically."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def marginal_covariances(estimator: Any, features: Sequence[int]) -> np.ndarray:
    """Covariances ``(K, d, d)`` of every component on the given feature indices.

    Works for all four covariance types: full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``
    and spherical ``(K,)``.
    """
    idx = np.asarray(features, dtype=np.intp)
    cov = np.asarray(estimator.covariances_, dtype=np.float64)
    K = np.asarray(estimator.weights_).shape[0]
    name = covariance_structure(estimator.covariance_type).name
    if name == "full":
        return cov[:, idx[:, None], idx[None, :]]
    if name == "tied":
        return np.broadcast_to(cov[np.ix_(idx, idx)], (K, idx.size, idx.size)).copy()
    if name == "diag":
        return np.stack([np.diag(row[idx]) for row in cov])
    if name == "spherical":
        return cov[:, None, None] * np.eye(idx.size)
    raise ValueError(f"cannot plot covariance type {name!r}")


def _colors(K: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps[_CMAP]
    return [cmap(k % cmap.N) for k in range(K)]


def _label(names: Sequence[str] | None, j: int) -> str:
    return str(names[j]) if names is not None and j < len(names) else f"feature {j}"


def plot_mixture(
    estimator: Any,
    X: Any,
    feature_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    *,
    sample_weight: Any = None,
) -> Axes:
    """A fitted mixture (``GaussianMixture`` or any ``MixtureModel``) over its data; returns
    the axes.

    1-D data: for continuous data a density histogram, the mixture density and each weighted
    component ``π_k f_k`` (from the fitted engine model's ``component_log_prob``); for counts
    and categories a bar chart of relative frequencies with the mixture's and the weighted
    components' probabilities.  Two or more numeric features: scatter of the first two coloured
    by predicted component, with (Gaussian mixtures) the 1σ and 2σ ellipses of each component's
    covariance on those two features and the means (crosses).  ``sample_weight`` weights the
    histogram or frequencies (e.g. counts of identical rows).
    """
    frame = X if hasattr(X, "columns") and hasattr(X, "iloc") else None  # a DataFrame
    if feature_names is None and frame is not None:
        feature_names = [str(c) for c in frame.columns]
    if feature_names is None and hasattr(estimator, "feature_names_in_"):
        feature_names = [str(n) for n in estimator.feature_names_in_]
    family = getattr(estimator, "family_", None)
    numeric = family is None or family.numeric_input
    X = np.asarray(X, dtype=np.float64 if numeric else object)
    if X.ndim == 1:
        X = X[:, None]
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w is not None and w.shape != (X.shape[0],):
        raise ValueError(f"sample_weight must have one value per row ({X.shape[0]}), got {w.shape}")
    if X.shape[1] > 1 and not numeric:
        raise ValueError(
            "plot_mixture draws one categorical column, or numeric columns; select one column"
        )
    if ax is None:
        _, ax = new_figure()
    if X.shape[1] == 1:
        _plot_1d(estimator, X[:, 0], feature_names, ax, w)
    else:
        _plot_2d(estimator, X, frame, feature_names, ax)
    return ax


def _mixture_title(estimator: Any) -> str:
    family = getattr(estimator, "family_", None)
    name = "Gaussian" if family is None else family.name
    return f"{name.capitalize() if family is not None else name} mixture"


def _component_curves(estimator: Any, column: np.ndarray) -> np.ndarray:
    """``π_k f_k(x)`` at the 1-D points ``column`` (raw values), shape ``(K, len(column))``."""
    family = getattr(estimator, "family_", None)
    values = column[:, None]
    Xe = np.asarray(values, dtype=np.float64) if family is None else family.encode(values)
    model, params = estimator._fitted_model(), estimator._get_fitted_params()
    with np.errstate(all="ignore"):
        logp = np.asarray(model.component_log_prob(params, Xe), dtype=np.float64)
        curves = np.exp(logp).T
    return np.nan_to_num(curves, nan=0.0, posinf=0.0)


def _is_discrete(estimator: Any) -> bool:
    """Counts or categories (the family declares ``discrete``, or takes non-numeric input):
    plotted as bars.  Gaussian mixtures: never."""
    family = getattr(estimator, "family_", None)
    return family is not None and (family.discrete or not family.numeric_input)


def _plot_1d(
    estimator: Any,
    x: np.ndarray,
    names: Sequence[str] | None,
    ax: Axes,
    w: np.ndarray | None = None,
) -> None:
    weights = np.asarray(estimator.weights_)
    K = weights.shape[0]
    colors = _colors(K)
    if _is_discrete(estimator):
        _plot_1d_discrete(estimator, x, w, ax, colors)
    else:
        _plot_1d_continuous(estimator, x, w, ax, colors)
    ax.set_xlabel(_label(names, 0))
    ax.set_title(f"{_mixture_title(estimator)}, K={K}")
    ax.legend(frameon=False, fontsize="small")


def _plot_1d_continuous(
    estimator: Any, x: np.ndarray, w: np.ndarray | None, ax: Axes, colors: list[Any]
) -> None:
    weights = np.asarray(estimator.weights_)
    keep = np.isfinite(x) if w is None else np.isfinite(x) & (w > 0)
    finite = x[keep]
    lo, hi = float(finite.min()), float(finite.max())
    if hasattr(estimator, "means_") and hasattr(estimator, "covariances_"):  # Gaussian tails
        means = np.asarray(estimator.means_)[:, 0]
        sd = np.sqrt(marginal_covariances(estimator, [0])[:, 0, 0])
        lo, hi = min(lo, float((means - 4 * sd).min())), max(hi, float((means + 4 * sd).max()))
    else:
        pad = 0.1 * (hi - lo) or 1.0
        lo, hi = lo - pad, hi + pad
        family = getattr(estimator, "family_", None)
        if family is not None and family.positive_only:
            lo = max(lo, 0.0)
    grid = np.linspace(lo, hi, 600)
    comps = _component_curves(estimator, grid)
    bins = int(np.clip(np.sqrt(finite.size), 10, 80))
    ax.hist(finite, bins=bins, density=True, weights=None if w is None else w[keep],
            color="0.82", edgecolor="white", label="data")
    for k, curve in enumerate(comps):
        ax.plot(grid, curve, color=colors[k], lw=1.5, ls="--",
                label=f"component {k} (weight {weights[k]:.2f})")
    ax.plot(grid, comps.sum(axis=0), color="black", lw=2, label="mixture density")
    ax.set_ylabel("density")


def _plot_1d_discrete(
    estimator: Any, x: np.ndarray, w: np.ndarray | None, ax: Axes, colors: list[Any]
) -> None:
    weights = np.asarray(estimator.weights_)
    w = np.ones(x.shape[0]) if w is None else w
    if x.dtype == object:  # categories: one bar per observed value, in sorted order
        present = np.asarray([not (isinstance(v, float) and np.isnan(v)) for v in x])
        x, w = x[present], w[present]
        support = np.asarray(sorted(set(x.tolist()), key=str), dtype=object)
        positions = np.arange(support.size, dtype=np.float64)
        index = {v: i for i, v in enumerate(support.tolist())}
        codes = np.asarray([index[v] for v in x.tolist()], dtype=np.intp)
    else:  # counts: every whole number between the smallest and largest
        keep = np.isfinite(x)
        x, w = x[keep], w[keep]
        lo, hi = int(np.floor(x.min())), int(np.ceil(x.max()))
        support = np.arange(lo, hi + 1, dtype=np.float64) if hi - lo <= 400 else np.unique(x)
        positions = support.astype(np.float64)
        codes = np.searchsorted(support, x)
    freq = np.bincount(codes, weights=w, minlength=support.size) / w.sum()
    comps = _component_curves(estimator, support)
    ax.bar(positions, freq, width=0.8, color="0.82", edgecolor="white",
           label="data (relative frequency)")
    for k, curve in enumerate(comps):
        ax.plot(positions, curve, color=colors[k], lw=1.2, ls="--", marker="o", ms=3,
                label=f"component {k} (weight {weights[k]:.2f})")
    ax.plot(positions, comps.sum(axis=0), color="black", lw=2, marker="s", ms=4,
            label="mixture probability")
    if x.dtype == object:
        ax.set_xticks(positions, [str(v) for v in support])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("probability")


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float, **kwargs: Any) -> Ellipse:
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
    width, height = 2.0 * radius * np.sqrt(vals[::-1])
    return Ellipse(tuple(mean), float(width), float(height), angle=angle, **kwargs)


def _plot_2d(
    estimator: Any, X: np.ndarray, frame: Any, names: Sequence[str] | None, ax: Axes
) -> None:
    weights = np.asarray(estimator.weights_)
    K = weights.shape[0]
    gaussian = hasattr(estimator, "means_") and hasattr(estimator, "covariances_")
    colors = _colors(K)
    complete = np.all(np.isfinite(X), axis=1)
    # A DataFrame goes in as it came, so an estimator fitted on named columns sees its names.
    rows = frame.iloc[np.flatnonzero(complete)] if frame is not None else X[complete]
    labels = np.asarray(estimator.predict(rows))
    pts = X[complete]
    size = float(np.clip(3000.0 / max(len(pts), 1), 4.0, 30.0))
    for k in range(K):
        sel = labels == k
        ax.scatter(pts[sel, 0], pts[sel, 1], s=size, color=colors[k], alpha=0.6, lw=0,
                   label=f"component {k} (weight {weights[k]:.2f})")
    shown = "" if X.shape[1] == 2 else f" (first 2 of {X.shape[1]} features)"
    if gaussian:
        means = np.asarray(estimator.means_)[:, :2]
        covs = marginal_covariances(estimator, [0, 1])
        for k in range(K):
            for radius, style in ((1.0, "-"), (2.0, "--")):
                ax.add_patch(_ellipse(means[k], covs[k], radius, fill=False,
                                      edgecolor=colors[k], lw=1.6, ls=style))
        ax.scatter(means[:, 0], means[:, 1], marker="X", s=110, c=colors, edgecolors="black",
                   linewidths=1.0, zorder=5)
        ax.set_title(f"Gaussian mixture, K={K}: 1σ (solid) and 2σ (dashed) ellipses{shown}")
    else:
        ax.set_title(f"{_mixture_title(estimator)}, K={K}: most probable component{shown}")
    ax.set_xlabel(_label(names, 0))
    ax.set_ylabel(_label(names, 1))
    ax.legend(frameon=False, fontsize="small", markerscale=max(1.0, 20.0 / size))
    ax.autoscale_view()


def plot_history(estimator: Any, ax: Axes | None = None) -> Axes:
    """Mean log-likelihood after every iteration (``estimator.history_``); returns the axes."""
    history = np.asarray(estimator.history_, dtype=np.float64)
    if ax is None:
        _, ax = new_figure()
    ax.plot(np.arange(history.size), history, marker="o", ms=3, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration (0 = start)")
    ax.set_ylabel("mean log-likelihood")
    status = "converged" if getattr(estimator, "converged_", False) else "not converged"
    ax.set_title(f"EM progress: {history.size - 1} iterations, {status}")
    ax.grid(alpha=0.3)
    return ax


def plot_selection(result: Any, criterion: str | None = None, ax: Axes | None = None) -> Axes:
    """Criterion against K for every covariance structure / family of an
    :func:`emkit.select` result (lower is better), the winner circled; returns the axes."""
    key = check_criterion(criterion or result.criterion)
    if ax is None:
        _, ax = new_figure()
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in result.rows:
        groups.setdefault((row.model, row.structure), []).append(row)
    colors = _colors(len(groups))
    degenerate_labelled = False
    for color, ((model, structure), rows) in zip(colors, groups.items(), strict=True):
        ok = [r for r in rows if r.ok and not r.degenerate]
        label = structure if model == "GaussianMixture" else f"{structure} (family)"
        ax.plot([r.n_components for r in ok], [getattr(r, key) for r in ok], marker="o", ms=4,
                lw=1.5, color=color, label=label)
        bad = [r for r in rows if r.ok and r.degenerate]
        if bad:
            ax.scatter([r.n_components for r in bad], [getattr(r, key) for r in bad],
                       marker="x", s=40, color=color, zorder=4,
                       label=None if degenerate_labelled else "degenerate fit (not chosen)")
            degenerate_labelled = True
    best = result.rows[result.ranking(key)[0]]
    ax.scatter([best.n_components], [getattr(best, key)], s=180, facecolors="none",
               edgecolors="black", linewidths=1.8, zorder=5,
               label=f"best: {best.structure}, K={best.n_components}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{key.upper()} (lower is better)")
    ax.set_title(f"model selection by {key.upper()} on {result.n_samples:g} rows")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_series_by_state(
    values: Any,
    states: Any,
    ax: Axes | None = None,
    labels: Sequence[str] | None = None,
    x: Any = None,
) -> Axes:
    """A series (e.g. daily returns) as vertical bars from zero, coloured by each point's
    decoded state (an HMM's Viterbi path)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    states = np.asarray(states).ravel()
    if values.shape != states.shape:
        raise ValueError(f"{values.size} values but {states.size} states")
    x = np.arange(values.size) if x is None else np.asarray(x)
    if ax is None:
        _, ax = new_figure(figsize=(9.0, 4.0))
    K = int(states.max()) + 1 if states.size else 0
    colors = _colors(K)
    for k in range(K):
        on = states == k
        label = labels[k] if labels is not None else f"state {k}"
        ax.vlines(x[on], 0.0, values[on], color=colors[k], linewidth=0.6, label=label)
    ax.axhline(0.0, color="black", linewidth=0.5)
    if K:
        ax.legend(loc="lower left", fontsize="small")
    return ax
