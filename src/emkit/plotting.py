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

from emkit.families.covariance import covariance_structure
from emkit.io import atomic_write_bytes

__all__ = ["marginal_covariances", "new_figure", "plot_history", "plot_mixture", "save_figure"]

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
) -> Axes:
    """Fitted Gaussian mixture over its data; returns the axes.

    1-D data: density histogram, the mixture density and each weighted component.  Two or more
    features: scatter of the first two coloured by predicted component, the 1σ and 2σ ellipses
    of each component's covariance on those two features, and the means (crosses).
    """
    frame = X if hasattr(X, "columns") and hasattr(X, "iloc") else None  # a DataFrame
    if feature_names is None and frame is not None:
        feature_names = [str(c) for c in frame.columns]
    if feature_names is None and hasattr(estimator, "feature_names_in_"):
        feature_names = [str(n) for n in estimator.feature_names_in_]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if ax is None:
        _, ax = new_figure()
    if X.shape[1] == 1:
        _plot_1d(estimator, X[:, 0], feature_names, ax)
    else:
        _plot_2d(estimator, X, frame, feature_names, ax)
    return ax


def _plot_1d(estimator: Any, x: np.ndarray, names: Sequence[str] | None, ax: Axes) -> None:
    weights = np.asarray(estimator.weights_)
    means = np.asarray(estimator.means_)[:, 0]
    sd = np.sqrt(marginal_covariances(estimator, [0])[:, 0, 0])
    finite = x[np.isfinite(x)]
    lo = min(finite.min(), (means - 4 * sd).min())
    hi = max(finite.max(), (means + 4 * sd).max())
    grid = np.linspace(lo, hi, 600)
    comps = weights[:, None] * np.exp(
        -0.5 * ((grid[None, :] - means[:, None]) / sd[:, None]) ** 2
    ) / (np.sqrt(2 * np.pi) * sd[:, None])
    bins = int(np.clip(np.sqrt(finite.size), 10, 80))
    ax.hist(finite, bins=bins, density=True, color="0.82", edgecolor="white", label="data")
    colors = _colors(len(weights))
    for k, curve in enumerate(comps):
        ax.plot(grid, curve, color=colors[k], lw=1.5, ls="--",
                label=f"component {k} (weight {weights[k]:.2f})")
    ax.plot(grid, comps.sum(axis=0), color="black", lw=2, label="mixture density")
    ax.set_xlabel(_label(names, 0))
    ax.set_ylabel("density")
    ax.set_title(f"Gaussian mixture, K={len(weights)}")
    ax.legend(frameon=False, fontsize="small")


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
    means = np.asarray(estimator.means_)[:, :2]
    covs = marginal_covariances(estimator, [0, 1])
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
    for k in range(K):
        for radius, style in ((1.0, "-"), (2.0, "--")):
            ax.add_patch(_ellipse(means[k], covs[k], radius, fill=False, edgecolor=colors[k],
                                  lw=1.6, ls=style))
    ax.scatter(means[:, 0], means[:, 1], marker="X", s=110, c=colors, edgecolors="black",
               linewidths=1.0, zorder=5)
    ax.set_xlabel(_label(names, 0))
    ax.set_ylabel(_label(names, 1))
    shown = "" if X.shape[1] == 2 else f" (first 2 of {X.shape[1]} features)"
    ax.set_title(f"Gaussian mixture, K={K}: 1σ (solid) and 2σ (dashed) ellipses{shown}")
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
