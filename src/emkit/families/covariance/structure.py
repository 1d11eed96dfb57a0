"""The covariance-structure protocol (:class:`CovarianceStructure`), its chunk statistics and
errors, and the triangular-factor helpers the structures share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

from emkit._validation import InputError, check_finite, real_array
from emkit.families._mixture_kernels import (
    normalize_rows,
)


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


def _float64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64, copy=False)
