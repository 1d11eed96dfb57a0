"""Covariance structures of Gaussian components, as objects (no string branches elsewhere).

Every structure stores the Cholesky factor ``L`` of the precision (``Λ = L Lᵀ``), in the shapes
scikit-learn uses: full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``;
:class:`GroupTied` ties the covariance within groups of consecutive components (the inner
Gaussians of one HMM state, hmmlearn's GMMHMM ``"tied"``), ``(K / group_size, D, D)``.
The squared Mahalanobis distance is ``‖(x − μ_k) L_k‖²``.  Coordinates passed in (``Xc``,
``means_c``) are relative to an origin ``o``; the expanded quadratic forms (``x² λ − 2xμλ +
μ²λ``) then lose ``ε·(|μ_k − o| / σ_k)²`` of the distance and of the variance estimate.

Exact statistics at any offset: :func:`shared_origins` gives every component an origin (its
"centre" ``c_k``) within ``GROUP_RADIUS`` of its own sd, components with nearby means sharing
one, so ordinary data keep one origin and one BLAS-3 product per chunk while a component far
from the others gets its own; :func:`moments_about` sums ``Σ R (x − c_k)`` and the second
moment about ``c_k``; :func:`parameters_from_moments` is the M-step
``μ_k = c_k + s_k/n_k``, ``Σ_k = S_k/n_k − (s_k/n_k)(s_k/n_k)ᵀ``, whose cancellation is
bounded by ``ε·(GROUP_RADIUS + |μ_new − μ_old|/σ_k)²`` whatever the offset of the data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from emkit._validation import InputError, check_finite, check_positive, real_array
from emkit.families._mixture_kernels import (
    SPARSE_SHARE,
    diagonal_design,
    full_log_densities,
    normalize_rows,
    scale_blocks,
    sparse_block_scatter,
    sparse_sums,
)
from emkit.families.base import floored_counts


class ChunkStats(NamedTuple):
    """What one chunk contributes: per-row log-likelihoods and float64 sufficient statistics."""

    row_ll: np.ndarray
    nk: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray


class CovarianceError(ValueError):
    """A covariance matrix is not positive definite (names the component: ``component``,
    ``None`` for a shared covariance)."""

    component: int | None = None


def _not_pd(k: int | None) -> CovarianceError:
    where = "the shared covariance" if k is None else f"the covariance of component {k}"
    error = CovarianceError(
        f"{where} is not positive definite: the component fits too few distinct points; "
        "increase reg_covar, reduce n_components, or scale the data"
    )
    error.component = k
    return error


def _triangular_precision_cholesky(cov: np.ndarray, component: int | None) -> np.ndarray:
    """Upper-triangular ``L`` with ``L Lᵀ = Σ⁻¹``, for one ``(D, D)`` or a stack ``(K, D, D)``."""
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        if cov.ndim == 3:  # name the first component at fault
            for k, c in enumerate(cov):
                _triangular_precision_cholesky(c, k)
        raise _not_pd(component) from None
    return np.swapaxes(np.linalg.inv(chol), -1, -2)


def check_factor_matrices(pc: np.ndarray, what: str) -> None:
    """Upper-triangular ``(…, D, D)`` factors with a positive diagonal (the strict lower
    triangle zero up to rounding of the inversion that made them)."""
    check_finite(pc, what)
    diagonal = np.diagonal(pc, axis1=-2, axis2=-1)
    if not np.all(diagonal > 0):
        raise InputError(f"{what} must have a positive diagonal (Cholesky factors)")
    scale = np.abs(pc).max(axis=(-2, -1), keepdims=True)
    if np.any(np.abs(np.tril(pc, -1)) > 1e-8 * scale):
        raise InputError(f"{what} must be upper triangular (Cholesky factors of precisions)")


def _upper_to_vector(L: np.ndarray) -> np.ndarray:
    """Upper triangle of ``(..., D, D)`` with the diagonal as logs (an unconstrained vector)."""
    D = L.shape[-1]
    iu = np.triu_indices(D)
    M = L.copy()
    diag = np.arange(D)
    M[..., diag, diag] = np.log(M[..., diag, diag])
    return M[..., iu[0], iu[1]].ravel()


def _vector_to_upper(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    D = shape[-1]
    iu = np.triu_indices(D)
    M = np.zeros(shape)
    M[..., iu[0], iu[1]] = v.reshape(shape[:-2] + (len(iu[0]),))
    diag = np.arange(D)
    M[..., diag, diag] = np.exp(M[..., diag, diag])
    return M


class CovarianceStructure(ABC):
    """How the components' covariances are shaped, estimated, inverted and counted."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    # --- statistics ---------------------------------------------------------------------------
    @abstractmethod
    def second_moment(self, Xc: np.ndarray, R: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Additive second-moment statistic (float64) of rows ``Xc``, weighted resp ``R``."""

    @abstractmethod
    def second_moment_shape(self, K: int, D: int) -> tuple[int, ...]: ...

    @abstractmethod
    def covariances(
        self, nk: np.ndarray, means_c: np.ndarray, second: np.ndarray, reg: float
    ) -> np.ndarray:
        """Covariances maximising the expected log-likelihood, plus ``reg·I``."""

    # --- parameterisation ---------------------------------------------------------------------
    @abstractmethod
    def precisions_cholesky(self, cov: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def covariances_from_cholesky(self, pc: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def precisions_from_cholesky(self, pc: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def covariances_from_precisions(self, prec: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def shape(self, K: int, D: int) -> tuple[int, ...]:
        """Shape of covariances, precisions and their Cholesky factors."""

    @abstractmethod
    def log_det_cholesky(self, pc: np.ndarray, K: int, D: int) -> np.ndarray:
        """``½ log det Λ_k`` for each component, shape ``(K,)``."""

    @abstractmethod
    def mahalanobis(self, Xc: np.ndarray, means_c: np.ndarray, pc: np.ndarray) -> np.ndarray:
        """``‖(x_n − μ_k) L_k‖²`` as an ``(n, K)`` array in the dtype of ``Xc``."""

    @abstractmethod
    def n_parameters(self, K: int, D: int) -> int: ...

    @abstractmethod
    def flatten(self, pc: np.ndarray) -> np.ndarray:
        """Unconstrained vector (log of Cholesky diagonals)."""

    @abstractmethod
    def unflatten(self, v: np.ndarray, K: int, D: int) -> np.ndarray: ...

    @abstractmethod
    def noise(
        self, rng: np.random.Generator, cov: np.ndarray, k: int, n: int, D: int
    ) -> np.ndarray:
        """``n`` draws of ``N(0, Σ_k)``."""

    @abstractmethod
    def principal_axis(self, cov: np.ndarray, k: int, D: int) -> tuple[float, np.ndarray]:
        """Largest variance of component ``k`` and its direction (for splitting)."""

    @abstractmethod
    def copy_component(self, cov: np.ndarray, src: int, dst: int) -> np.ndarray: ...

    @abstractmethod
    def as_full(self, cov: np.ndarray, K: int, D: int) -> np.ndarray:
        """Every component's covariance as a ``(K, D, D)`` stack, from ``cov`` in this shape."""

    @abstractmethod
    def moment_slot(self, second: np.ndarray, k: int) -> np.ndarray:
        """The view of the second-moment statistic that component ``k`` adds into: a
        ``(D, D)`` matrix for general covariances, the ``(D,)`` diagonal for diagonal ones."""

    def take(self, pc: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The factors of components ``index`` (in that order), in this structure's shape."""
        return pc[np.asarray(index, dtype=np.intp)]

    def check_factors(self, pc: Any, K: int, D: int, what: str) -> None:
        """``InputError`` unless ``pc`` are precision Cholesky factors of K components on D
        features in this structure's shape: finite, upper triangular, positive diagonal."""
        check_factor_matrices(real_array(pc, what, self.shape(K, D)), what)


    tie_block: ClassVar[int] = 1  # components that must share an origin (GroupTied: a group)

    def add_second_moment(
        self, second: np.ndarray, Xc: np.ndarray, R: np.ndarray, index: np.ndarray
    ) -> None:
        """Add the second moment of rows ``Xc`` under the columns ``R`` of components ``index``
        into ``second`` (in place): per component by default, one product where the
        structure allows."""
        second[index] += self.second_moment(Xc, R, R.sum(axis=1))

    def within_groups(self, group_size: int) -> CovarianceStructure:
        """This structure for components in groups of ``group_size`` consecutive ones, sharing
        applying within a group (a shared covariance becomes one per group)."""
        return self

    @property
    def covariance_type(self) -> str:
        """The ``covariance_type`` that names this structure (with :meth:`within_groups`)."""
        return self.name

    def temp_bytes_per_row(self, K: int, D: int, itemsize: int) -> int:
        return itemsize * (K + 2 * D)

    def prepare(self, pc: np.ndarray) -> Any:
        """Whatever :meth:`accumulate` needs from the factors, computed once per E-step."""
        return pc

    def log_densities(
        self,
        X: np.ndarray,
        origin: np.ndarray,
        means_c: np.ndarray,
        factors: Any,
        log_const: np.ndarray,
    ) -> np.ndarray:
        """``log p_nk = log_const_k − ½·maha_nk`` ``(n, K)`` in the dtype of ``X`` (inference:
        the E-step's products without the sums) for rows ``X`` and means ``means_c`` about
        ``origin``.  ``factors`` is ``prepare(pc)``."""
        logp = self.mahalanobis(X - origin.astype(X.dtype), means_c, factors)
        logp *= -0.5
        logp += log_const.astype(logp.dtype)
        return logp

    def accumulate(
        self,
        X: np.ndarray,
        origin: np.ndarray,
        w: np.ndarray,
        means_c: np.ndarray,
        factors: Any,
        log_const: np.ndarray,
    ) -> ChunkStats:
        """E-step of one chunk: ``log p_nk = log_const_k − ½·maha_nk``, responsibilities, and
        the sums about ``origin`` (``means_c`` are the means about it; the structure centres
        the rows as it goes).

        ``factors`` is ``prepare(pc)``.  The generic path; structures override it with fused
        products where that pays.
        """
        Xc = X - origin.astype(X.dtype)
        logp = self.mahalanobis(Xc, means_c, factors)
        logp *= -0.5
        logp += log_const.astype(logp.dtype)
        return _finish(Xc, w, logp, self)


class _FullFactors(NamedTuple):
    pc: np.ndarray  # (K, D, D) upper-triangular precision factors
    stacked: np.ndarray  # (D, K·D): x @ stacked = [x L_1, …, x L_K]
    inverse: np.ndarray  # (K, D, D) L_k⁻¹


def _finish(Xc, w, logp, structure) -> ChunkStats:
    row_ll = np.empty(Xc.shape[0])
    normalize_rows(logp, w, row_ll)
    R = logp
    return ChunkStats(
        row_ll,
        R.sum(axis=0, dtype=np.float64),
        (R.T @ Xc).astype(np.float64),
        np.asarray(structure.second_moment(Xc, R, w), dtype=np.float64),
    )


def _squares_and_values(Xc: np.ndarray) -> np.ndarray:
    """``Z = [Xc, Xc²]`` (n, 2D) in the dtype of ``Xc``."""
    n, D = Xc.shape
    Z = np.empty((n, 2 * D), dtype=Xc.dtype)
    Z[:, :D] = Xc
    np.square(Xc, out=Z[:, D:])
    return Z


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


def _float64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64, copy=False)


def _whitened(X, origin, means_c, factors) -> tuple[np.ndarray, np.ndarray]:
    """``(X − o, Y)`` with ``Y_k = (x − μ_k) L_k`` for every component in one product, in the
    dtype of ``X``: ``[X − o, 1]·[L_1 … L_K; −(μ_1 − o) L_1 … ]`` (the centring rides in the
    product instead of a sweep that rewrites ``Y``)."""
    pc, stacked, _ = factors
    K, D = means_c.shape
    design = np.empty((X.shape[0], D + 1), dtype=X.dtype)
    np.subtract(X, origin.astype(X.dtype), out=design[:, :D])
    design[:, D] = 1.0
    offsets = np.einsum("kd,kde->ke", means_c, pc).reshape(1, K * D)
    Y = design @ np.vstack([stacked, -offsets]).astype(X.dtype)
    return design[:, :D], Y


class Full(CovarianceStructure):
    """Each component has its own general covariance ``Σ_k``."""

    name = "full"

    def second_moment(self, Xc, R, w):
        out = np.empty((R.shape[1], Xc.shape[1], Xc.shape[1]))
        for k in range(R.shape[1]):
            out[k] = (Xc * R[:, k : k + 1]).T @ Xc
        return out

    def second_moment_shape(self, K, D):
        return (K, D, D)

    def covariances(self, nk, means_c, second, reg):
        cov = second / nk[:, None, None] - means_c[:, :, None] * means_c[:, None, :]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        idx = np.arange(cov.shape[-1])
        cov[:, idx, idx] += reg
        return cov

    def precisions_cholesky(self, cov):
        return _triangular_precision_cholesky(cov, None)

    def covariances_from_cholesky(self, pc):
        return self.covariances_from_precisions(self.precisions_from_cholesky(pc))

    def precisions_from_cholesky(self, pc):
        return pc @ pc.transpose(0, 2, 1)

    def covariances_from_precisions(self, prec):
        return np.linalg.inv(prec)

    def shape(self, K, D):
        return (K, D, D)

    def log_det_cholesky(self, pc, K, D):
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)

    def mahalanobis(self, Xc, means_c, pc):
        K, D, _ = pc.shape
        n = Xc.shape[0]
        L = pc.astype(Xc.dtype, copy=False)
        W = L.transpose(1, 0, 2).reshape(D, K * D)  # x @ W = [x L_0, …, x L_{K−1}]
        Y = Xc @ W
        Y -= np.einsum("kd,kde->ke", means_c, pc).reshape(K * D).astype(Xc.dtype)
        np.square(Y, out=Y)
        return Y.reshape(n, K, D).sum(axis=2)

    def n_parameters(self, K, D):
        return K * D * (D + 1) // 2

    def flatten(self, pc):
        return _upper_to_vector(pc)

    def unflatten(self, v, K, D):
        return _vector_to_upper(v, (K, D, D))

    def noise(self, rng, cov, k, n, D):
        return rng.standard_normal((n, D)) @ np.linalg.cholesky(cov[k]).T

    def principal_axis(self, cov, k, D):
        vals, vecs = np.linalg.eigh(cov[k])
        return float(vals[-1]), vecs[:, -1]

    def copy_component(self, cov, src, dst):
        cov = cov.copy()
        cov[dst] = cov[src]
        return cov

    def as_full(self, cov, K, D):
        return cov

    def moment_slot(self, second, k):
        return second[k]

    def temp_bytes_per_row(self, K, D, itemsize):
        return itemsize * (K * D + K + 2 * D)

    def prepare(self, pc):
        K, D, _ = pc.shape
        return _FullFactors(pc, pc.transpose(1, 0, 2).reshape(D, K * D), np.linalg.inv(pc))

    def log_densities(self, X, origin, means_c, factors, log_const):
        """One product for the centred, whitened rows (:func:`_whitened`) and one sweep for the
        log-densities."""
        Xc, Y = _whitened(X, origin, means_c, factors)
        logp = np.empty((X.shape[0], means_c.shape[0]), dtype=X.dtype)
        full_log_densities(Y, np.asarray(log_const, dtype=np.float64), logp)
        return logp

    def accumulate(self, X, origin, w, means_c, factors, log_const):
        """One product for the centred, whitened rows (:func:`_whitened`), a sweep for the
        log-densities, the responsibilities, a sweep for √r weighting, then
        ``S_k = Y_kᵀ Y_k`` mapped back by ``L_k⁻¹``: the second moment about each component
        mean, so nothing cancels in the working dtype.
        """
        _, _, inv_pc = factors
        K, D = means_c.shape
        n = X.shape[0]
        Xc, Y = _whitened(X, origin, means_c, factors)
        logp = np.empty((n, K))
        full_log_densities(Y, np.asarray(log_const, dtype=np.float64), logp)
        row_ll = np.empty(n)
        share = normalize_rows(logp, w, row_ll)
        R = logp.astype(X.dtype, copy=False)
        nk = R.sum(axis=0, dtype=np.float64)
        sx = (R.T @ Xc).astype(np.float64)
        if share <= SPARSE_SHARE:  # Σ w r y yᵀ over the nonzero r only
            scatter = np.zeros((K, D, D))
            sparse_block_scatter(logp, Y, scatter)
        else:  # Y_k ← √r Y_k, then Y_kᵀ Y_k for every k in one batched product
            scale_blocks(Y, R)
            Yk = Y.reshape(n, K, D).transpose(1, 0, 2)  # (K, n, D) view
            scatter = np.matmul(Yk.transpose(0, 2, 1), Yk).astype(np.float64)
        second = inv_pc.transpose(0, 2, 1) @ scatter @ inv_pc  # Σ w r (x−μ_k)(x−μ_k)ᵀ
        # about the origin: Σ w r (x−o)(x−o)ᵀ = C + u mᵀ + m uᵀ + n_k m mᵀ, u = s_x − n_k m
        u = sx - nk[:, None] * means_c
        outer = u[:, :, None] * means_c[:, None, :]
        second += outer + outer.transpose(0, 2, 1)
        second += nk[:, None, None] * means_c[:, :, None] * means_c[:, None, :]
        return ChunkStats(row_ll, nk, sx, second)


class Tied(CovarianceStructure):
    """All components share one general covariance ``Σ``."""

    name = "tied"

    def second_moment(self, Xc, R, w):
        Xc64 = _float64(Xc)  # uncentred: formed in float64 whatever the data's dtype
        return (Xc64 * w[:, None]).T @ Xc64

    def second_moment_shape(self, K, D):
        return (D, D)

    def covariances(self, nk, means_c, second, reg):
        cov = (second - (means_c * nk[:, None]).T @ means_c) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        cov[np.diag_indices_from(cov)] += reg
        return cov

    def precisions_cholesky(self, cov):
        return _triangular_precision_cholesky(cov, None)

    def covariances_from_cholesky(self, pc):
        return np.linalg.inv(pc @ pc.T)

    def precisions_from_cholesky(self, pc):
        return pc @ pc.T

    def covariances_from_precisions(self, prec):
        return np.linalg.inv(prec)

    def shape(self, K, D):
        return (D, D)

    def log_det_cholesky(self, pc, K, D):
        return np.full(K, np.log(np.diagonal(pc)).sum())

    def mahalanobis(self, Xc, means_c, pc):
        L = pc.astype(Xc.dtype, copy=False)
        Y = Xc @ L
        B = (means_c @ pc).astype(Xc.dtype)
        out = Y @ (-2.0 * B.T)
        out += np.einsum("nd,nd->n", Y, Y)[:, None]
        out += np.einsum("kd,kd->k", B, B)[None, :]
        return out

    def n_parameters(self, K, D):
        return D * (D + 1) // 2

    def flatten(self, pc):
        return _upper_to_vector(pc)

    def unflatten(self, v, K, D):
        return _vector_to_upper(v, (D, D))

    def noise(self, rng, cov, k, n, D):
        return rng.standard_normal((n, D)) @ np.linalg.cholesky(cov).T

    def principal_axis(self, cov, k, D):
        vals, vecs = np.linalg.eigh(cov)
        return float(vals[-1]), vecs[:, -1]

    def copy_component(self, cov, src, dst):
        return cov

    def as_full(self, cov, K, D):
        return np.broadcast_to(cov, (K, D, D)).copy()

    def moment_slot(self, second, k):
        return second

    def take(self, pc, index):
        return pc

    def add_second_moment(self, second, Xc, R, index):
        second += self.second_moment(Xc, R, R.sum(axis=1))

    def within_groups(self, group_size):
        return GroupTied(group_size)


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
        prec = np.square(pc)  # one product [Xc, Xc²]·[−2μΛ; Λ], then + Σ μ²Λ per component
        G = np.vstack([-2.0 * (means_c * prec).T, prec.T]).astype(Xc.dtype)
        out = _squares_and_values(Xc) @ G
        out += (np.square(means_c) * prec).sum(axis=1).astype(Xc.dtype)
        return out

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


class GroupTied(CovarianceStructure):
    """Components in groups of ``group_size`` consecutive ones; each group shares one general
    covariance ``Σ_g`` (hmmlearn's GMMHMM ``"tied"``: the inner Gaussians of one state).

    Factors ``(K / group_size, D, D)``.  Densities use :class:`Full` with every group's factor
    repeated for its members; the M-step pools the members' scatter about their own means,
    ``Σ_g = (Σ_{k∈g} S_k − Σ_{k∈g} n_k μ_k μ_kᵀ) / Σ_{k∈g} n_k + reg·I`` (:class:`Tied` per
    group).  Not in :data:`STRUCTURES`: ``Tied().within_groups(size)`` builds it.
    """

    name = "group_tied"

    def __init__(self, group_size: int):
        if not (isinstance(group_size, (int, np.integer)) and group_size >= 1):
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        self.group_size = int(group_size)

    def __repr__(self) -> str:
        return f"GroupTied({self.group_size})"

    @property
    def tie_block(self) -> int:  # type: ignore[override]
        return self.group_size

    def add_second_moment(self, second, Xc, R, index):
        """``index`` holds whole groups (:func:`shared_origins` keeps a group together)."""
        Xc64 = _float64(Xc)
        for j, k in enumerate(np.asarray(index)):
            self.moment_slot(second, int(k))[...] += (Xc64 * R[:, j : j + 1]).T @ Xc64

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.group_size == other.group_size

    def __hash__(self) -> int:
        return hash((type(self), self.group_size))

    @property
    def covariance_type(self) -> str:
        return "tied"

    def within_groups(self, group_size):
        if group_size != self.group_size:
            raise ValueError(
                f"this structure ties groups of {self.group_size} components, not {group_size}"
            )
        return self

    def _groups(self, K: int) -> int:
        if K % self.group_size:
            raise ValueError(
                f"{K} components do not form groups of {self.group_size} (group-tied covariance)"
            )
        return K // self.group_size

    def _repeated(self, pc: np.ndarray) -> np.ndarray:
        """One factor per component, ``(K, D, D)``."""
        return np.repeat(pc, self.group_size, axis=0)

    # --- statistics ---------------------------------------------------------------------------
    def second_moment(self, Xc, R, w):
        n, K = R.shape
        group_weights = R.reshape(n, self._groups(K), self.group_size).sum(axis=2)
        return Full().second_moment(_float64(Xc), _float64(group_weights), w)

    def second_moment_shape(self, K, D):
        return (self._groups(K), D, D)

    def covariances(self, nk, means_c, second, reg):
        G, g = self._groups(nk.size), self.group_size
        outer = nk[:, None, None] * means_c[:, :, None] * means_c[:, None, :]
        cov = second - outer.reshape((G, g) + outer.shape[1:]).sum(axis=1)
        cov /= nk.reshape(G, g).sum(axis=1)[:, None, None]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        idx = np.arange(cov.shape[-1])
        cov[:, idx, idx] += reg
        return cov

    # --- parameterisation ---------------------------------------------------------------------
    def precisions_cholesky(self, cov):
        try:
            return _triangular_precision_cholesky(cov, None)
        except CovarianceError:
            g = self.group_size
            for group, c in enumerate(cov):
                if np.linalg.eigvalsh(c)[0] <= 0.0 or not np.all(np.isfinite(c)):
                    raise CovarianceError(
                        f"the covariance shared by components {group * g}..{group * g + g - 1} "
                        "is not positive definite: the group fits too few distinct points; "
                        "increase reg_covar, reduce n_components, or scale the data"
                    ) from None
            raise

    def covariances_from_cholesky(self, pc):
        return np.linalg.inv(self.precisions_from_cholesky(pc))

    def precisions_from_cholesky(self, pc):
        return pc @ pc.transpose(0, 2, 1)

    def covariances_from_precisions(self, prec):
        return np.linalg.inv(prec)

    def shape(self, K, D):
        return (self._groups(K), D, D)

    def log_det_cholesky(self, pc, K, D):
        per_group = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
        return np.repeat(per_group, self.group_size)

    def mahalanobis(self, Xc, means_c, pc):
        return Full().mahalanobis(Xc, means_c, self._repeated(pc))

    def n_parameters(self, K, D):
        return self._groups(K) * D * (D + 1) // 2

    def flatten(self, pc):
        return _upper_to_vector(pc)

    def unflatten(self, v, K, D):
        return _vector_to_upper(v, (self._groups(K), D, D))

    def noise(self, rng, cov, k, n, D):
        return rng.standard_normal((n, D)) @ np.linalg.cholesky(cov[k // self.group_size]).T

    def principal_axis(self, cov, k, D):
        vals, vecs = np.linalg.eigh(cov[k // self.group_size])
        return float(vals[-1]), vecs[:, -1]

    def copy_component(self, cov, src, dst):
        """Component ``dst`` takes ``src``'s covariance: its whole group does (a no-op within
        one group)."""
        g = self.group_size
        if src // g == dst // g:
            return cov
        cov = cov.copy()
        cov[dst // g] = cov[src // g]
        return cov

    def as_full(self, cov, K, D):
        return np.repeat(cov, self.group_size, axis=0)

    def moment_slot(self, second, k):
        return second[k // self.group_size]

    def take(self, pc, index):
        """The factors of whole groups: ``index`` must list every member of each group it
        selects, in order (``[g·s, …, g·s + s − 1]`` for ``s = group_size``)."""
        index = np.asarray(index, dtype=np.intp).ravel()
        g = self.group_size
        members = index.reshape(-1, g) if index.size % g == 0 else None
        if members is None or np.any(members != members[:, :1] + np.arange(g)) or np.any(
            members[:, 0] % g
        ):
            raise ValueError(
                f"group-tied components are selected by whole groups of {g} in order, "
                f"got {index.tolist()}"
            )
        return pc[members[:, 0] // g]

    def temp_bytes_per_row(self, K, D, itemsize):
        return itemsize * (K * D + K + 2 * D)


STRUCTURES: dict[str, type[CovarianceStructure]] = {
    s.name: s for s in (Full, Tied, Diag, Spherical)
}


def covariance_structure(spec: str | CovarianceStructure) -> CovarianceStructure:
    """The structure object for ``"full" | "tied" | "diag" | "spherical"`` (or pass one through)."""
    if isinstance(spec, CovarianceStructure):
        return spec
    try:
        return STRUCTURES[spec]()
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(STRUCTURES)}, got {spec!r}"
        ) from None


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
