"""General covariances: one per component (:class:`Full`), one for all (:class:`Tied`), one per
group of components (:class:`GroupTied`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from emkit.families._mixture_kernels import (
    SPARSE_SHARE,
    full_log_densities,
    normalize_rows,
    scale_blocks,
    sparse_block_scatter,
)
from emkit.families.covariance.structure import (
    ChunkStats,
    CovarianceError,
    CovarianceStructure,
    _float64,
    _triangular_precision_cholesky,
    _upper_to_vector,
    _vector_to_upper,
)


class _FullFactors(NamedTuple):
    pc: np.ndarray  # (K, D, D) upper-triangular precision factors
    stacked: np.ndarray  # (D, K·D): x @ stacked = [x L_1, …, x L_K]
    inverse: np.ndarray  # (K, D, D) L_k⁻¹


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
