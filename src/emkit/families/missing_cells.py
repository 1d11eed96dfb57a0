"""Missing cells (NaN) inside rows, for the families that marginalise them.

A family with ``handles_missing = True`` accepts NaN cells in ``log_prob`` and ``accumulate``:

- ``log_prob`` is the density of the observed cells, ``log f(x_o | θ_k)`` (the missing cells
  integrated out);
- ``accumulate`` adds, for every missing cell, its *expected* sufficient statistics given the
  observed cells under the current ``θ_k`` (the E-step of EM with the cells as latent data,
  Little & Rubin 2002, ch. 8), so the M-step is unchanged and ``n_k`` still counts rows.

Independent-column families need the cell's expectation under the component alone
(``E_k[x_d]`` for Poisson, ``E_k[log x_d]`` for Gamma …): :func:`split_missing` and
:func:`missing_weights` give each of them the pieces in two lines, :func:`observed_sum` the
constant terms of the observed cells.  Gaussians with correlated
columns need the conditional normal of the missing block given the observed one, per
missingness pattern: :func:`gaussian_patterns`, :func:`add_pattern_sums` and
:func:`conditional_sums`, shared with the Gaussian mixture with missing values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.families.covariance import CovarianceError

LOG_2PI = float(np.log(2.0 * np.pi))


# --- independent columns --------------------------------------------------------------------------
def split_missing(X: np.ndarray, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X with NaN cells set to fill, float64 mask of those cells)``; when no cell is missing,
    ``X`` itself and ``None`` (the fast path costs one scan)."""
    if X.dtype.kind != "f":
        return X, None
    mask = np.isnan(X)
    if not mask.any():
        return X, None
    return np.where(mask, fill, X), mask.astype(np.float64)


def observed_sum(terms: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
    """``Σ_d terms_kd`` over the observed cells of each row: ``(K,)`` when no cell is missing
    (``missing`` None), else ``(n, K)`` (a row's missing cells add nothing)."""
    return terms.sum(axis=1) if missing is None else (1.0 - missing) @ terms.T


def incomplete_rows(X: np.ndarray) -> np.ndarray | None:
    """Rows holding a NaN cell, or None when there is none (families with correlated columns
    keep their complete-row code for the others)."""
    if X.dtype.kind != "f":
        return None
    with np.errstate(all="ignore"):
        if np.isfinite(np.add.reduce(X, axis=None)):  # one pass, no temporary: no NaN (or inf)
            return None
    incomplete = np.isnan(X).any(axis=1)
    return incomplete if incomplete.any() else None


def is_missing(value: Any) -> bool:
    """A missing cell of object (text) input: None or a float NaN."""
    return value is None or (isinstance(value, float) and value != value)


def missing_weights(R: np.ndarray, missing: np.ndarray, params: Any) -> np.ndarray:
    """``Σ_n R_nk [x_nd missing]`` as ``(K, D)``: the weight of each component's expected cell
    statistics.  They need current parameters, so a start (``params is None``) must not hold NaN."""
    if params is None:
        raise ValueError(
            "missing cells need current parameters (their expected statistics); "
            "start from rows without NaN or with the cells filled"
        )
    return np.asarray(R, dtype=np.float64).T @ missing


def fill_missing_cells(X: np.ndarray) -> np.ndarray:
    """NaN cells set to their column's observed median (an observed value, so valid for any
    family): starts need complete rows; the fit then marginalises the cells."""
    missing = np.isnan(X) if X.dtype.kind == "f" else None
    if missing is None or not missing.any():
        return X
    X = X.copy()
    for j in np.flatnonzero(missing.any(axis=0)):
        seen = X[~missing[:, j], j]
        X[missing[:, j], j] = np.quantile(seen, 0.5, method="inverted_cdf") if seen.size else 0.0
    return X


# --- correlated Gaussian columns ------------------------------------------------------------------
def missingness_patterns(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of the boolean ``mask`` (P, D) and each row's pattern index (n,)."""
    if mask.shape[0] == 0:
        return np.zeros((0, mask.shape[1]), dtype=bool), np.zeros(0, dtype=np.intp)
    if mask.shape[1] <= 62:  # one integer key per row: a 1-D unique is much faster
        keys = mask.astype(np.int64) @ (np.int64(1) << np.arange(mask.shape[1], dtype=np.int64))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return mask[first], inverse.reshape(-1)
    unique, inverse = np.unique(mask, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, or a :class:`CovarianceError` saying what to change."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise CovarianceError(
            "the covariance is not positive definite: some columns are (nearly) collinear or "
            "have too few observed values; drop a column, or set reg_covar > 0"
        ) from None


def full_covariances(structure: Any, pc: np.ndarray, K: int, D: int) -> np.ndarray:
    """Every component's covariance as a ``(K, D, D)`` stack, whatever the structure."""
    cov = np.asarray(structure.covariances_from_cholesky(pc), dtype=np.float64)
    return structure.as_full(cov, K, D)


@dataclass(frozen=True)
class GaussianPattern:
    """One missingness pattern under K Gaussians: ``logp`` (n, K) of ``log N(x_o | μ_k, Σ_k)``
    (plus the given log-weights), ``xhat`` (K, n, D) with missing cells at ``E_k[x_m | x_o]``,
    ``cond`` (K, m, m) the conditional covariances of the missing block, and the pieces of the
    density: ``delta`` (n, K) the Mahalanobis distances ``(x_o − μ_o)ᵀ Σ_oo⁻¹ (x_o − μ_o)`` and
    ``log_det`` (K,) ``log det Σ_oo`` (Student-t components reuse them)."""

    rows: np.ndarray
    obs: np.ndarray
    miss: np.ndarray
    logp: np.ndarray
    xhat: np.ndarray
    cond: np.ndarray
    delta: np.ndarray
    log_det: np.ndarray


def gaussian_patterns(
    log_weights: np.ndarray, means: np.ndarray, covs: np.ndarray, X: np.ndarray
) -> Iterator[GaussianPattern]:
    """Per pattern of NaN in ``X``: joint log-densities of the observed cells and conditionals,
    ``x̂_m = μ_m + (x_o − μ_o) Σ_oo⁻¹ Σ_om``, ``C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om``.

    Rows with every cell missing get ``logp = log π_k``, ``xhat = μ_k`` and ``cond = Σ_k``.
    """
    K, D = means.shape
    mask = np.isnan(X)
    unique, inverse = missingness_patterns(mask)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(unique.shape[0] + 1))
    for p, pattern in enumerate(unique):
        obs, miss = np.flatnonzero(~pattern), np.flatnonzero(pattern)
        rows = order[bounds[p] : bounds[p + 1]]
        n = rows.size
        logp = np.empty((n, K))
        xhat = np.empty((K, n, D))
        cond = np.empty((K, miss.size, miss.size))
        delta, log_det = np.zeros((n, K)), np.zeros(K)
        Xo = X[np.ix_(rows, obs)]
        for k in range(K):
            cov = covs[k]
            if obs.size == 0:
                logp[:, k] = log_weights[k]
                xhat[k] = means[k]
                cond[k] = cov
                continue
            chol = cholesky(cov[np.ix_(obs, obs)])
            inv = np.linalg.inv(chol)
            Z = Xo - means[k, obs]
            Y = Z @ inv.T
            log_det[k] = 2.0 * np.log(np.diag(chol)).sum()
            delta[:, k] = np.einsum("ij,ij->i", Y, Y)
            logp[:, k] = log_weights[k] - 0.5 * (obs.size * LOG_2PI + log_det[k] + delta[:, k])
            xhat[k][:, obs] = Xo
            if miss.size:
                B = inv.T @ (inv @ cov[np.ix_(obs, miss)])
                xhat[k][:, miss] = means[k, miss] + Z @ B
                c = cov[np.ix_(miss, miss)] - cov[np.ix_(miss, obs)] @ B
                cond[k] = 0.5 * (c + c.T)
        yield GaussianPattern(rows, obs, miss, logp, xhat, cond, delta, log_det)


def add_pattern_sums(
    structure: Any,
    pat: GaussianPattern,
    R: np.ndarray,
    centres: np.ndarray,
    sx: np.ndarray,
    second: np.ndarray,
) -> None:
    """Add one pattern's ``Σ R x̂_k`` and second moments ``Σ R (x̂_k x̂_kᵀ + C_k)`` (about
    each component's centre ``centres[k]``, in the structure's shape: full ``(K,D,D)``, tied
    ``(D,D)``, group-tied ``(K/s,D,D)``, diag/spherical ``(K,D)`` diagonals) into ``sx`` and
    ``second``; ``R`` (n, K) weights the pattern's rows.  Component ``k`` adds into
    ``structure.moment_slot(second, k)``: a matrix, or a diagonal."""
    rk = R.sum(axis=0)
    xc = pat.xhat - np.asarray(centres)[:, None, :]  # (K, n, D)
    sx += np.einsum("nk,knd->kd", R, xc)
    m = pat.miss
    for k in range(R.shape[1]):
        slot = structure.moment_slot(second, k)  # a view: added into in place
        if slot.ndim == 2:
            block = (xc[k] * R[:, k : k + 1]).T @ xc[k]
            if m.size:
                block[np.ix_(m, m)] += rk[k] * pat.cond[k]
            slot += block
        else:
            slot += R[:, k] @ np.square(xc[k])
            if m.size:
                slot[m] += rk[k] * np.diag(pat.cond[k])


def conditional_sums(
    structure: Any,
    means: np.ndarray,
    covs: np.ndarray,
    X: np.ndarray,
    R: np.ndarray,
    centres: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ_n R_nk x̂_nk, Σ_n R_nk (x̂_nk x̂_nkᵀ + C_nk))`` about ``centres`` (K, D) for rows
    with NaN, given weights ``R`` (n, K) from elsewhere (an HMM's posteriors)."""
    K, D = means.shape
    sx, second = np.zeros((K, D)), np.zeros(structure.second_moment_shape(K, D))
    R = np.asarray(R, dtype=np.float64)
    for pat in gaussian_patterns(np.zeros(K), means, covs, np.asarray(X, dtype=np.float64)):
        add_pattern_sums(structure, pat, R[pat.rows], centres, sx, second)
    return sx, second
