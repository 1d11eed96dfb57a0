"""Fused per-row passes of the mixture E-step (numba; arrays in, arrays out).

Matrix products stay in BLAS and ``exp`` in numpy (its SIMD loop); these kernels do the
element-wise work around them that numpy would spread over many passes and temporaries: the
row shift and scaling of the softmax, the diagonal design ``[x − o, (x − o)², 1]``, the block
norms and √r weighting of the whitened rows of full covariances, and the sums over nonzero
responsibilities.  They are serial and release the GIL: the engine runs chunks on parallel
threads, which beats threading inside small, cache-sized chunks.
"""

from __future__ import annotations

import numba
import numpy as np

kernel = numba.njit(nogil=True, cache=True, fastmath=False, error_model="numpy")
# responsibilities below this are set to zero: they change no sum beyond 1e-30 relative, and
# left in they become subnormal numbers in float32, which slow every later product tenfold
NEGLIGIBLE = 1e-30


# exp(t) below this is left out of every sum (see NEGLIGIBLE), so the exponent is raised to it:
# numpy's SIMD exp takes a slow path, 8–30× slower, for results that underflow (t < −708)
FLOOR = -80.0  # exp(FLOOR) ≈ 1.8e-35 is still a normal float32


@kernel
def _shift_rows(logp: np.ndarray, top: np.ndarray, exponents: np.ndarray) -> None:
    """``logp[n] ← logp[n] − t_n`` with ``t_n = max_k logp[n, k]`` (0 where that is not finite,
    so an all −∞ row stays −∞ and a row with +∞ or NaN stays non-finite); ``exponents`` gets
    the same values raised to ``FLOOR`` where they are finite and below it (it may be
    ``logp`` itself).  A row's total is at least 1 (its largest term), so terms of at most
    exp(FLOOR) change no bit of it."""
    for i in range(logp.shape[0]):
        t = logp[i, 0]
        for k in range(1, logp.shape[1]):
            if logp[i, k] > t:
                t = logp[i, k]
        if not np.isfinite(t):
            t = 0.0
        top[i] = t
        for k in range(logp.shape[1]):
            v = logp[i, k] - t
            logp[i, k] = v
            exponents[i, k] = FLOOR if FLOOR > v > -np.inf else v


@kernel
def _row_total(E: np.ndarray, i: int) -> float:
    """``Σ_k E[i, k]`` in float64."""
    total = 0.0
    for k in range(E.shape[1]):
        total += E[i, k]
    return total


@kernel
def _scale_rows(E: np.ndarray, weights: np.ndarray, top: np.ndarray, row_ll: np.ndarray) -> int:
    """In place on ``E = exp(logp − t)``: ``E[n] ← w_n·E[n]/Σ_k E[n, k]`` (0 below
    ``NEGLIGIBLE``) and ``row_ll[n] = log Σ_k E[n, k] + t_n``; returns the nonzeros."""
    nonzero = 0
    for i in range(E.shape[0]):
        total = _row_total(E, i)
        row_ll[i] = np.log(total) + top[i]
        w = weights[i]
        for k in range(E.shape[1]):
            r = E[i, k] / total
            E[i, k] = r * w if r >= NEGLIGIBLE else 0.0
            nonzero += E[i, k] != 0.0
    return nonzero


@kernel
def _log_totals(E: np.ndarray, top: np.ndarray, row_ll: np.ndarray) -> None:
    """``row_ll[n] = log Σ_k E[n, k] + t_n`` (the sum in float64)."""
    for i in range(E.shape[0]):
        row_ll[i] = np.log(_row_total(E, i)) + top[i]


def normalize_rows(logp: np.ndarray, weights: np.ndarray, row_ll: np.ndarray) -> float:
    """In place on float64 ``logp``: ``logp[n] ← w_n·softmax(logp[n])`` and
    ``row_ll[n] = logsumexp(logp[n])``; returns the share of responsibilities not zero.

    Three sweeps of a cache-sized chunk: numpy's SIMD ``exp`` between two kernels is about ten
    times faster than a scalar ``exp`` per element inside one.
    """
    top = np.empty(logp.shape[0])
    _shift_rows(logp, top, logp)
    np.exp(logp, out=logp)
    return _scale_rows(logp, weights, top, row_ll) / max(1, logp.size)


def log_softmax_rows(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``logp ← logp − logsumexp(logp)`` per row; returns (logp, row logsumexp),
    both in the dtype of ``logp`` (the sums run in float64)."""
    top = np.empty(logp.shape[0])
    exponents = np.empty_like(logp)
    _shift_rows(logp, top, exponents)
    row_ll = np.empty(logp.shape[0])
    _log_totals(np.exp(exponents, out=exponents), top, row_ll)
    logp -= (row_ll - top).astype(logp.dtype)[:, None]
    return logp, row_ll.astype(logp.dtype, copy=False)


@kernel
def full_log_densities(Y: np.ndarray, const: np.ndarray, logp: np.ndarray) -> None:
    """``logp[n, k] = const_k − ½‖Y_k[n]‖²`` for the K blocks of centred, whitened rows
    ``Y = [(x − μ_1) L_1, …]`` (n, K·D), summed in float64 whatever the dtype of ``Y``."""
    n = Y.shape[0]
    K = const.shape[0]
    D = Y.shape[1] // K
    for i in range(n):
        for k in range(K):
            s = 0.0
            base = k * D
            for d in range(D):
                t = np.float64(Y[i, base + d])
                s += t * t
            logp[i, k] = const[k] - 0.5 * s


@kernel
def scale_blocks(Y: np.ndarray, R: np.ndarray) -> None:
    """In place: ``Y_k[n] ← √R_nk · Y_k[n]`` for the K blocks of ``Y`` (n, K·D), so that
    ``Y_kᵀ Y_k = Σ_n R_nk y_nk y_nkᵀ``."""
    K = R.shape[1]
    D = Y.shape[1] // K
    for i in range(Y.shape[0]):
        for k in range(K):
            root = np.sqrt(R[i, k])
            base = k * D
            for d in range(D):
                Y[i, base + d] = Y[i, base + d] * root


@kernel
def diagonal_design(X: np.ndarray, origin: np.ndarray, Z: np.ndarray) -> None:
    """``Z[n] = [x_n − o, (x_n − o)², 1]`` in float64 (one sweep, whatever the dtype of ``X``):
    the design of the diagonal E-step's product and of its sums."""
    n, D = X.shape
    for i in range(n):
        for d in range(D):
            x = np.float64(X[i, d]) - origin[d]
            Z[i, d] = x
            Z[i, D + d] = x * x
        Z[i, 2 * D] = 1.0


@kernel
def _argmax_rows(a: np.ndarray, out: np.ndarray) -> None:
    # the running maximum in a register and both updates as selects, not a branch: LLVM emits
    # conditional moves, which random rows (a branch mispredicted half the time) need; 3.7x
    # faster than `if a[i, k] > a[i, best]` on 65536 x 16 (11 against 41 ns a row)
    for i in range(a.shape[0]):
        top = a[i, 0]
        best = 0
        for k in range(1, a.shape[1]):
            value = a[i, k]
            better = value > top  # strict: the first of equal maxima; NaN never wins
            top = value if better else top
            best = k if better else best
        out[i] = best


def argmax_rows(a: np.ndarray) -> np.ndarray:
    """Column of the first largest entry of every row (``a.argmax(axis=1)``, which numpy runs
    several times slower for short rows)."""
    out = np.empty(a.shape[0], dtype=np.intp)
    _argmax_rows(a, out)
    return out


# --- sums over the responsibilities that are not zero ------------------------------------------
# Responsibilities under NEGLIGIBLE are exactly 0, and once components separate most of them are:
# a row then adds into one or two components.  The sums below skip the zeros, so they cost
# O(nonzeros) instead of the O(n·K) of a dense product; ``SPARSE_SHARE`` is the share of
# nonzeros below which that is faster than BLAS.  Measured for K = D = 16 on one core: at a
# share of 0.19 (a 16-component start, three nonzeros a row) the diagonal sums take 0.17 ms
# against BLAS's 0.24 (5461 rows), the full scatter 0.27 against 0.43 + 0.08 for the √r sweep
# (1489 rows); scattered at random, the nonzeros' branch misses move the break-even to 0.13–0.2.
SPARSE_SHARE = 0.2


@kernel
def sparse_sums(R: np.ndarray, Z: np.ndarray, M: np.ndarray) -> None:
    """``M[k] += Σ_n R_nk Z[n]`` over the nonzero ``R_nk`` (``M`` float64, shape (K, P))."""
    for i in range(R.shape[0]):
        for k in range(R.shape[1]):
            r = np.float64(R[i, k])
            if r != 0.0:
                for j in range(Z.shape[1]):
                    M[k, j] += r * Z[i, j]


@kernel
def sparse_block_scatter(R: np.ndarray, Y: np.ndarray, S: np.ndarray) -> None:
    """``S_k += Σ_n R_nk y_nk y_nkᵀ`` over the nonzero ``R_nk``, for the K blocks ``y_nk`` of
    ``Y`` (n, K·D); ``S`` float64 (K, D, D).  The whole square, not a triangle: fixed-length
    inner loops vectorise (the M-step symmetrises the covariances)."""
    K = R.shape[1]
    D = Y.shape[1] // K
    for i in range(R.shape[0]):
        for k in range(K):
            r = np.float64(R[i, k])
            if r != 0.0:
                base = k * D
                for a in range(D):
                    ra = r * Y[i, base + a]
                    for b in range(D):
                        S[k, a, b] += ra * Y[i, base + b]
