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

kernel = numba.njit(nogil=True, cache=True, fastmath=False, error_model="numpy")
# responsibilities below this are set to zero: they change no sum beyond 1e-30 relative, and
# left in they become subnormal numbers in float32, which slow every later product tenfold
NEGLIGIBLE = 1e-30
# exp(t) < NEGLIGIBLE below this: such terms are neither computed nor added.  The row's total
# is at least 1 (its largest term), so leaving out terms under 1e-30 changes no bit of it
SKIP_BELOW = float(np.log(NEGLIGIBLE))


@kernel
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
        t = row[k] - top
        e = np.exp(t) if t >= SKIP_BELOW else 0.0
        row[k] = e
        total += e
    for k in range(K):
        r = row[k] / total
        row[k] = r * weight if r >= NEGLIGIBLE else 0.0
    return np.log(total) + top


@kernel
def normalize_rows(logp: np.ndarray, weights: np.ndarray, row_ll: np.ndarray) -> None:
    """In place: ``logp[n] ← w_n·softmax(logp[n])`` and ``row_ll[n] = logsumexp(logp[n])``."""
    for i in range(logp.shape[0]):
        row_ll[i] = _responsibilities(logp[i], weights[i])


@kernel
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
            t = row[k] - top
            if t >= SKIP_BELOW:
                total += np.exp(t)
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


@kernel
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


@kernel
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


@kernel
def diagonal_log_densities(
    X: np.ndarray, means_t: np.ndarray, prec_t: np.ndarray, const: np.ndarray, logp: np.ndarray
) -> None:
    """``logp[n, k] = const_k − ½ Σ_d (x_nd − μ_kd)² λ_kd`` for diagonal precisions, in float64
    whatever the dtype of ``X``.  ``means_t``, ``prec_t`` are ``(D, K)``: the inner loop runs
    over components (independent sums, so it vectorises without reassociating any of them)."""
    n, D = X.shape
    K = const.shape[0]
    acc = np.empty(K)
    for i in range(n):
        acc[:] = 0.0
        for d in range(D):
            x = np.float64(X[i, d])
            for k in range(K):
                t = x - means_t[d, k]
                acc[k] += t * t * prec_t[d, k]
        for k in range(K):
            logp[i, k] = const[k] - 0.5 * acc[k]
