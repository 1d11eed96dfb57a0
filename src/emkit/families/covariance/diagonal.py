"""Diagonal covariances: one diagonal per component (:class:`Diag`), one variance per component
(:class:`Spherical`); the E-step's design ``[x − o, (x − o)², 1]`` and its two products."""

from __future__ import annotations

import numpy as np

from emkit._validation import check_positive, real_array
from emkit.families._mixture_kernels import (
    SPARSE_SHARE,
    diagonal_design,
    normalize_rows,
    sparse_sums,
)
from emkit.families.covariance.structure import (
    ChunkStats,
    CovarianceStructure,
    _float64,
    _not_pd,
)


def _diagonal_log_joint(X, origin, means_c, prec, log_const) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, log p)`` in float64: ``Z = [x − o, (x − o)², 1]`` and ``log p = Z·[μΛ; −½Λ; c]``
    (the E-step's and inference's one product)."""
    n, D = X.shape
    Z = np.empty((n, 2 * D + 1))
    diagonal_design(X, np.asarray(origin, dtype=np.float64), Z)
    const = log_const - 0.5 * (np.square(means_c) * prec).sum(axis=1)
    return Z, Z @ np.vstack([(means_c * prec).T, -0.5 * prec.T, const[None, :]])


def _diagonal_accumulate(X, origin, w, means_c, prec, log_const) -> ChunkStats:
    """Diagonal precisions ``prec`` (K, D): ``log p = Z·[μΛ; −½Λ; c]`` with ``Z = [x, x², 1]``
    about ``origin``, then the sums ``Rᵀ Z = [s_x, s_xx, n_k]``: one sweep builds ``Z``, two
    products carry every other row operation.

    The expanded form loses ``ε·(|x − o|/σ_k)²`` of the Mahalanobis distance; in float32 that
    breaks the monotonicity of EM once a component shrinks, so it is evaluated in float64 for
    every input dtype (the data stay float32 in memory; one chunk is converted at a time).
    """
    n, D = X.shape
    Z, logp = _diagonal_log_joint(X, origin, means_c, prec, log_const)
    row_ll = np.empty(n)
    if normalize_rows(logp, w, row_ll) <= SPARSE_SHARE:
        M = np.zeros((logp.shape[1], Z.shape[1]))
        sparse_sums(logp, Z, M)
    else:
        M = logp.T @ Z
    return ChunkStats(row_ll, M[:, 2 * D].copy(), M[:, :D], M[:, D : 2 * D])


class Diag(CovarianceStructure):
    """Each component has its own diagonal covariance."""

    name = "diag"

    def second_moment(self, Xc, R, w):
        return _float64(R).T @ np.square(_float64(Xc))

    def second_moment_shape(self, K, D):
        return (K, D)

    def covariances(self, nk, means_c, second, reg):
        return second / nk[:, None] - np.square(means_c) + reg

    def precisions_cholesky(self, cov):
        if np.any(cov <= 0.0):
            raise _not_pd(int(np.argwhere(cov <= 0.0)[0, 0]))
        return 1.0 / np.sqrt(cov)

    def covariances_from_cholesky(self, pc):
        return 1.0 / np.square(pc)

    def precisions_from_cholesky(self, pc):
        return np.square(pc)

    def covariances_from_precisions(self, prec):
        return 1.0 / prec

    def shape(self, K, D):
        return (K, D)

    def log_det_cholesky(self, pc, K, D):
        return np.log(pc).sum(axis=1)

    def mahalanobis(self, Xc, means_c, pc):
        """One product of the E-step's design: ``[x, x², 1]·[−2μΛ; Λ; Σ_d μ²Λ]`` (float64)."""
        prec = np.square(pc)
        Z = np.empty((Xc.shape[0], 2 * Xc.shape[1] + 1))
        diagonal_design(Xc, np.zeros(Xc.shape[1]), Z)
        G = np.vstack([-2.0 * (means_c * prec).T, prec.T, (np.square(means_c) * prec).sum(axis=1)])
        return (Z @ G).astype(Xc.dtype, copy=False)

    def n_parameters(self, K, D):
        return K * D

    def flatten(self, pc):
        return np.log(pc).ravel()

    def unflatten(self, v, K, D):
        return np.exp(v).reshape(K, D)

    def noise(self, rng, cov, k, n, D):
        return rng.standard_normal((n, D)) * np.sqrt(cov[k])

    def principal_axis(self, cov, k, D):
        d = int(np.argmax(cov[k]))
        return float(cov[k, d]), np.eye(D)[d]

    def _precisions(self, pc: np.ndarray, D: int) -> np.ndarray:
        """The ``(K, D)`` diagonal precisions of the factors ``pc``."""
        return np.square(pc)

    def accumulate(self, X, origin, w, means_c, pc, log_const):
        prec = self._precisions(pc, X.shape[1])
        return _diagonal_accumulate(X, origin, w, means_c, prec, log_const)

    def log_densities(self, X, origin, means_c, pc, log_const):
        """The E-step's expanded form (:func:`_diagonal_log_joint`, float64), in the dtype of
        ``X``: inference scores rows exactly as the fit did."""
        prec = self._precisions(pc, X.shape[1])
        _, logp = _diagonal_log_joint(X, origin, means_c, prec, log_const)
        return logp.astype(X.dtype, copy=False)

    def temp_bytes_per_row(self, K, D, itemsize):
        return itemsize * (K + 2 * D)

    def copy_component(self, cov, src, dst):
        cov = cov.copy()
        cov[dst] = cov[src]
        return cov

    def as_full(self, cov, K, D):
        out = np.zeros((K, D, D))
        out[:, np.arange(D), np.arange(D)] = cov
        return out

    def moment_slot(self, second, k):
        return second[k]

    def check_factors(self, pc, K, D, what):
        """Diagonal factors: positive entries ``1/σ``."""
        check_positive(real_array(pc, what, self.shape(K, D)), what)


class Spherical(Diag):
    """Each component has its own variance ``σ_k² I`` (a diagonal with equal entries)."""

    name = "spherical"

    def covariances(self, nk, means_c, second, reg):
        return super().covariances(nk, means_c, second, reg).mean(axis=1)

    def shape(self, K, D):
        return (K,)

    def log_det_cholesky(self, pc, K, D):
        return D * np.log(pc)

    def mahalanobis(self, Xc, means_c, pc):
        prec = np.square(pc)
        out = Xc @ (-2.0 * means_c.T).astype(Xc.dtype)
        out += np.einsum("nd,nd->n", Xc, Xc)[:, None]
        out += np.einsum("kd,kd->k", means_c, means_c).astype(Xc.dtype)
        out *= prec.astype(Xc.dtype)
        return out

    def n_parameters(self, K, D):
        return K

    def unflatten(self, v, K, D):
        return np.exp(v)

    def principal_axis(self, cov, k, D):
        return float(cov[k]), np.eye(D)[0]

    def as_full(self, cov, K, D):
        return cov[:, None, None] * np.eye(D)

    def _precisions(self, pc: np.ndarray, D: int) -> np.ndarray:
        return np.repeat(np.square(pc)[:, None], D, axis=1)
