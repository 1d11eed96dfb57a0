"""Fused per-row passes of the mixture E-step (numba; arrays in, arrays out).

Matrix products stay in BLAS; these kernels do the element-wise work that numpy would spread
over many passes and temporaries: the log-sum-exp normalisation of each row, and for full
covariances the centring, squaring and re-weighting of the projected rows in one sweep while the
row is in cache.  They are serial and release the GIL: the engine runs chunks on parallel
threads, which beats threading inside small, cache-sized chunks.
"""

from __future__ import annotations

import numba
import numpy as np

_OPTS = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
# responsibilities below this are set to zero: they change no sum beyond 1e-30 relative, and
# left in they become subnormal numbers in float32, which slow every later product tenfold
NEGLIGIBLE = 1e-30


@numba.njit(**_OPTS)
def _responsibilities(row: np.ndarray, weight: float) -> float:
    """In place on one row of log-probabilities: ``row ← w·softmax(row)``; returns logsumexp.

    Responsibilities below ``NEGLIGIBLE`` become 0.
    """
    K = row.shape[0]
    top = row[0]
    for k in range(1, K):
        if row[k] > top:
            top = row[k]
    if not np.isfinite(top):
        top = 0.0
    total = 0.0
    for k in range(K):
        e = np.exp(row[k] - top)
        row[k] = e
        total += e
    for k in range(K):
        r = row[k] / total
        row[k] = r * weight if r >= NEGLIGIBLE else 0.0
    return np.log(total) + top


@numba.njit(**_OPTS)
def normalize_rows(logp: np.ndarray, weights: np.ndarray, row_ll: np.ndarray) -> None:
    """In place: ``logp[n] ← w_n·softmax(logp[n])`` and ``row_ll[n] = logsumexp(logp[n])``."""
    for i in range(logp.shape[0]):
        row_ll[i] = _responsibilities(logp[i], weights[i])


@numba.njit(**_OPTS)
def _log_normalize_rows(logp: np.ndarray, row_ll: np.ndarray) -> None:
    for i in range(logp.shape[0]):
        row = logp[i]
        top = row[0]
        for k in range(1, row.shape[0]):
            if row[k] > top:
                top = row[k]
        if not np.isfinite(top):
            top = 0.0
        total = 0.0
        for k in range(row.shape[0]):
            total += np.exp(row[k] - top)
        norm = np.log(total) + top
        row_ll[i] = norm
        for k in range(row.shape[0]):
            row[k] -= norm


def log_softmax_rows(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``logp ← logp − logsumexp(logp)`` per row; returns (logp, row logsumexp),
    both in the dtype of ``logp`` (the sums run in float64)."""
    row_ll = np.empty(logp.shape[0], dtype=logp.dtype)
    _log_normalize_rows(logp, row_ll)
    return logp, row_ll


@numba.njit(**_OPTS)
def full_rows(
    Y: np.ndarray,
    offsets: np.ndarray,
    const: np.ndarray,
    weights: np.ndarray,
    logp: np.ndarray,
    R: np.ndarray,
    row_ll: np.ndarray,
) -> None:
    """One sweep over ``Y = X L`` (n, K·D) for full covariances, in place.

    ``Y_k ← Y_k − μ_k L_k``; ``log p_k = const_k − ½‖Y_k‖²``; ``R[n] = w_n softmax(log p)``;
    ``Y_k ← √R_nk · Y_k`` so that ``Y_kᵀ Y_k = Σ_n w_n r_nk y_nk y_nkᵀ``.  ``logp`` is a float64
    scratch of shape (n, K) (it may be ``R`` itself when ``R`` is float64).
    """
    n = Y.shape[0]
    K = const.shape[0]
    D = Y.shape[1] // K
    for i in range(n):
        for k in range(K):
            s = 0.0
            base = k * D
            for d in range(D):
                t = Y[i, base + d] - offsets[base + d]
                Y[i, base + d] = t
                s += t * t
            logp[i, k] = const[k] - 0.5 * s
        row_ll[i] = _responsibilities(logp[i], weights[i])
        for k in range(K):
            r = logp[i, k]
            R[i, k] = r
            root = np.sqrt(r)
            base = k * D
            for d in range(D):
                Y[i, base + d] = Y[i, base + d] * root


@numba.njit(**_OPTS)
def full_log_densities(
    Y: np.ndarray, offsets: np.ndarray, const: np.ndarray, logp: np.ndarray
) -> None:
    """``logp[n, k] = const_k − ½‖Y_k[n] − offsets_k‖²`` from ``Y = X L`` (n, K·D), summed in
    float64 whatever the dtype of ``Y``; ``Y`` is left as it is."""
    n = Y.shape[0]
    K = const.shape[0]
    D = Y.shape[1] // K
    for i in range(n):
        for k in range(K):
            s = 0.0
            base = k * D
            for d in range(D):
                t = Y[i, base + d] - offsets[base + d]
                s += t * t
            logp[i, k] = const[k] - 0.5 * s
