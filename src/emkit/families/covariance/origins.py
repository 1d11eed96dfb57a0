"""Statistics about per-component centres (see :mod:`emkit.families.covariance`): shared origins,
moments about them, and the M-step from those moments."""

from __future__ import annotations

import numpy as np

from emkit.families.base import floored_counts
from emkit.families.covariance.diagonal import Diag
from emkit.families.covariance.structure import (
    CovarianceStructure,
)

# --- statistics about per-component centres (module docstring) -----------------------------------
GROUP_RADIUS = 64.0  # sd: a shared origin costs at most ε·64² ≈ 1e-12 of a variance


def shared_origins(
    structure: CovarianceStructure,
    means: np.ndarray,
    pc: np.ndarray,
    origin: np.ndarray | None = None,
) -> np.ndarray:
    """Each component's origin ``c_k`` ``(K, D)``: components whose means lie within
    ``GROUP_RADIUS`` (``‖(μ_k − o) L_k‖``) of a common point share that point exactly.

    Greedy and deterministic: first ``origin`` (the model's fixed point near the data mean, so
    ordinary data keep it for every component, whichever components are evaluated), then the
    centroid of the components left, else the lexicographically smallest mean left, takes every
    component left within the radius; none depends on the order of the components.  Groups of
    ``structure.tie_block`` components move together.
    """
    means = np.asarray(means, dtype=np.float64)
    K, D = means.shape
    block = structure.tie_block
    units = np.arange(K // block)
    zeros = np.zeros_like(means)
    limit = GROUP_RADIUS**2
    centres = np.empty_like(means)

    def members(u: np.ndarray) -> np.ndarray:
        return (u[:, None] * block + np.arange(block)).ravel()

    def within(origin: np.ndarray, u: np.ndarray) -> np.ndarray:
        dist = np.diagonal(structure.mahalanobis(means - origin, zeros, pc))
        return dist.reshape(-1, block).max(axis=1)[u] <= limit

    left = units
    fixed = origin
    while left.size:
        if fixed is not None:
            origin, fixed = np.asarray(fixed, dtype=np.float64), None
        else:
            origin = np.sort(means[members(left)], axis=0).mean(axis=0)
        inside = within(origin, left)
        if not inside.any():
            first = int(np.lexsort(means[left * block].T[::-1])[0])
            origin = means[left[first] * block]
            inside = within(origin, left)
            inside[first] = True
        centres[members(left[inside])] = origin
        left = left[~inside]
    return centres


def start_centres(
    X: np.ndarray, R: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The means under a starting partition ``R`` (plain float64 sums: no origin to lose digits
    to; ``fallback`` for an empty component) and, when ``R`` is hard (one positive column per
    row), the row labels: the centres and ``labels`` for :func:`moments_about`."""
    nk = R.sum(axis=0)
    seen = nk > 0.0
    means = (R.T @ X) / np.where(seen, nk, 1.0)[:, None]
    centres = np.where(seen[:, None], means, np.broadcast_to(fallback, means.shape))
    hard = bool(np.all(np.count_nonzero(R, axis=1) <= 1))
    return centres, (np.argmax(R, axis=1) if hard else None)


def moments_about(
    structure: CovarianceStructure,
    X: np.ndarray,
    R: np.ndarray,
    centres: np.ndarray,
    labels: np.ndarray | None = None,
    missing: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ_n R_nk (x_n − c_k), Σ_n R_nk (x_n − c_k)(x_n − c_k)ᵀ)`` in float64, the second moment
    in the structure's shape.

    Components with the same centre row share one pass about it; with ``labels`` (every row's
    weight in its one column ``labels[n]``: hard assignments) one pass with ``x_n − c_{label}``
    serves them all.  Cells where ``missing`` holds add nothing.
    """
    R = np.asarray(R, dtype=np.float64)
    K, D = centres.shape
    sx, second = np.zeros((K, D)), np.zeros(structure.second_moment_shape(K, D))
    if labels is not None:
        passes = [(np.arange(K), centres[labels])]
    else:
        unique, inverse = np.unique(centres, axis=0, return_inverse=True)
        passes = [(np.flatnonzero(inverse.ravel() == g), unique[g]) for g in range(len(unique))]
    for index, origin in passes:
        Xc = np.asarray(X, dtype=np.float64) - origin
        if missing is not None:
            Xc[missing] = 0.0
        Rg = R if index.size == K else R[:, index]
        sx[index] = Rg.T @ Xc
        structure.add_second_moment(second, Xc, Rg, index)
    return sx, second


def mahalanobis_about(
    structure: CovarianceStructure,
    X: np.ndarray,
    means: np.ndarray,
    pc: np.ndarray,
    centres: np.ndarray,
) -> np.ndarray:
    """``‖(x_n − μ_k) L_k‖²`` ``(n, K)``, each group of components about its shared centre."""
    unique, inverse = np.unique(centres, axis=0, return_inverse=True)
    if len(unique) == 1:
        origin = unique[0]
        return structure.mahalanobis(X - origin.astype(X.dtype), means - origin, pc)
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    for g, origin in enumerate(unique):
        index = np.flatnonzero(inverse.ravel() == g)
        out[:, index] = structure.mahalanobis(
            X - origin.astype(X.dtype), means[index] - origin, structure.take(pc, index)
        )
    return out


def parameters_from_moments(
    structure: CovarianceStructure,
    nk: np.ndarray,
    sx: np.ndarray,
    second: np.ndarray,
    mass: np.ndarray,
    reg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Means and covariances from sums about centres ``c_k = mass_k / n_k``:
    ``μ_k = c_k + s_k/n_k``, ``Σ_k = S_k/n_k − (s_k/n_k)(s_k/n_k)ᵀ + reg·I + δ·diag(S_k/n_k)``.

    The subtraction rounds by about ``ε·S_k/n_k``: tiny while the centres sit near the new
    means, but a step of many new sd (an early EM step from a wide start) can cancel every
    digit.  ``δ = 8(D+1)ε`` keeps the estimate above its own rounding (positive definite);
    the next E-step, centred on the new means, resolves it.  ``n_k`` is floored at ``10ε·Σ n``
    (relative: the same fit for weights scaled by any constant); an empty component gets its
    centre and ``reg·I``.
    """
    n = floored_counts(nk)
    shift = sx / n[:, None]
    cov = structure.covariances(n, shift, second, reg)
    raw = structure.covariances(n, np.zeros_like(shift), second, 0.0)  # S/n: the rounding scale
    delta = 8.0 * (shift.shape[1] + 1) * np.finfo(np.float64).eps
    if isinstance(structure, Diag):  # variances (diag, spherical)
        cov = cov + delta * np.abs(raw)
    else:
        diag = np.arange(cov.shape[-1])
        cov[..., diag, diag] += delta * np.abs(raw[..., diag, diag])
    return mass / n[:, None] + shift, cov
