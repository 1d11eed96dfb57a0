"""Covariance structures of Gaussian components, as objects (no string branches elsewhere).

Every structure stores the Cholesky factor ``L`` of the precision (``Λ = L Lᵀ``), in the shapes
scikit-learn uses: full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``.
The squared Mahalanobis distance is ``‖(x − μ_k) L_k‖²``.  Coordinates passed in (``Xc``,
``means_c``) are relative to a fixed origin near the data mean, which bounds the rounding of
the expanded quadratic forms by ``ε·(spread / within-component sd)²``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class CovarianceError(ValueError):
    """A covariance matrix is not positive definite (names the component)."""


def _not_pd(k: int | None) -> CovarianceError:
    where = "the shared covariance" if k is None else f"the covariance of component {k}"
    return CovarianceError(
        f"{where} is not positive definite: the component fits too few distinct points; "
        "increase reg_covar, reduce n_components, or scale the data"
    )


def _triangular_precision_cholesky(cov: np.ndarray, component: int | None) -> np.ndarray:
    """Upper-triangular ``L`` with ``L Lᵀ = cov⁻¹`` for one matrix."""
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise _not_pd(component) from None
    eye = np.eye(cov.shape[0])
    from scipy.linalg import solve_triangular

    return solve_triangular(chol, eye, lower=True).T


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

    # --- statistics -------------------------------------------------------------------------
    @abstractmethod
    def second_moment(self, Xc: np.ndarray, R: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The additive second-moment statistic (float64) of rows ``Xc`` with weighted resp ``R``."""

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
    def noise(self, rng: np.random.Generator, cov: np.ndarray, k: int, n: int, D: int) -> np.ndarray:
        """``n`` draws of ``N(0, Σ_k)``."""

    @abstractmethod
    def principal_axis(self, cov: np.ndarray, k: int, D: int) -> tuple[float, np.ndarray]:
        """Largest variance of component ``k`` and its direction (for splitting)."""

    @abstractmethod
    def copy_component(self, cov: np.ndarray, src: int, dst: int) -> np.ndarray: ...

    def temp_bytes_per_row(self, K: int, D: int, itemsize: int) -> int:
        return itemsize * (K + 2 * D)


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
        return np.stack([_triangular_precision_cholesky(c, k) for k, c in enumerate(cov)])

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

    def temp_bytes_per_row(self, K, D, itemsize):
        return itemsize * (K * D + K + 2 * D)


class Tied(CovarianceStructure):
    """All components share one general covariance ``Σ``."""

    name = "tied"

    def second_moment(self, Xc, R, w):
        return (Xc * w[:, None].astype(Xc.dtype)).T @ Xc

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


class Diag(CovarianceStructure):
    """Each component has its own diagonal covariance."""

    name = "diag"

    def second_moment(self, Xc, R, w):
        return R.T @ np.square(Xc)

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
        prec = np.square(pc)
        out = np.square(Xc) @ prec.T.astype(Xc.dtype)
        out -= 2.0 * (Xc @ (means_c * prec).T.astype(Xc.dtype))
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

    def copy_component(self, cov, src, dst):
        cov = cov.copy()
        cov[dst] = cov[src]
        return cov


class Spherical(CovarianceStructure):
    """Each component has its own variance ``σ_k² I``."""

    name = "spherical"

    def second_moment(self, Xc, R, w):
        return R.T @ np.square(Xc)

    def second_moment_shape(self, K, D):
        return (K, D)

    def covariances(self, nk, means_c, second, reg):
        return Diag().covariances(nk, means_c, second, reg).mean(axis=1)

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

    def flatten(self, pc):
        return np.log(pc)

    def unflatten(self, v, K, D):
        return np.exp(v)

    def noise(self, rng, cov, k, n, D):
        return rng.standard_normal((n, D)) * np.sqrt(cov[k])

    def principal_axis(self, cov, k, D):
        return float(cov[k]), np.eye(D)[0]

    def copy_component(self, cov, src, dst):
        cov = cov.copy()
        cov[dst] = cov[src]
        return cov


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
