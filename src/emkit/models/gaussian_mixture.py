"""Gaussian mixture: ``p(x) = Σ_k π_k N(x | μ_k, Σ_k)`` as an engine model (pure functions)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from emkit.engine.protocol import ArrayData, Batch
from emkit.engine.stats import Stats
from emkit.families._mixture_kernels import normalize_rows
from emkit.families.base import floored_counts
from emkit.families.covariance import (
    CovarianceStructure,
    mahalanobis_about,
    moments_about,
    parameters_from_moments,
    shared_origins,
)

LOG_2PI = float(np.log(2.0 * np.pi))
INIT_METHODS = ("k-means++", "kmeans", "random", "random_from_data")


class ComponentCollapseWarning(UserWarning):
    """A component lost all its weight and was re-seeded by splitting the heaviest one."""


@dataclass(frozen=True, eq=False)
class GaussianMixtureParams:
    """Immutable parameters: weights ``(K,)``, means ``(K, D)`` and precision Cholesky factors."""

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]


@dataclass(frozen=True)
class GaussianMixtureStats(Stats):
    """``n_k = Σ w r_nk``, ``s_k = Σ w r_nk (x_n − c_k)``, the structure's second moment about
    ``c_k`` and ``mass_k = n_k c_k`` (so the sums say their centres, and add).

    The centres are those of :func:`~emkit.families.covariance.shared_origins` for the
    parameters of the E-step (exact at any offset), or the starting partition's means.
    """

    nk: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    mass: np.ndarray


def log_softmax_rows(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``logp ← logp − logsumexp(logp)`` per row; returns (logp, row logsumexp)."""
    top = logp.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    norm = np.log(np.exp(logp - top).sum(axis=1, keepdims=True)) + top
    logp -= norm
    return logp, norm[:, 0]


@lru_cache(maxsize=8)
def _prepared(model: GaussianMixtureModel, params: GaussianMixtureParams) -> tuple:
    """What every chunk's E-step needs from ``params``, computed once per (model, params).

    Both are immutable and hashed by identity, so this is a memo of a pure function.
    """
    centres = shared_origins(
        model.covariance, params.means, params.precisions_cholesky, model.origin
    )
    factors = model.covariance.prepare(params.precisions_cholesky)
    return centres, bool(np.all(centres == centres[0])), factors, model._log_const(params)


@dataclass(frozen=True, eq=False)
class GaussianMixtureModel:
    """A K-component Gaussian mixture with a covariance structure object.

    ``origin`` is a fixed point near the data mean, the centre of the statistics of a soft
    random start; the E-step's statistics are about per-component centres (exact at any
    offset, see :mod:`emkit.families.covariance`).
    """

    n_components: int
    covariance: CovarianceStructure
    reg_covar: float = 1e-6
    origin: np.ndarray | None = None
    init_method: str = "k-means++"
    collapse_fraction: float = field(default=1e-10, repr=False)

    # --- densities ----------------------------------------------------------------------------
    def _origin(self, D: int) -> np.ndarray:
        return np.zeros(D) if self.origin is None else self.origin

    def centres(self, params: GaussianMixtureParams) -> np.ndarray:
        """Each component's origin for the sums under ``params`` (``shared_origins``)."""
        return _prepared(self, params)[0]

    def _log_const(self, params: GaussianMixtureParams) -> np.ndarray:
        """``log π_k + ½ log det Λ_k − (D/2) log 2π``."""
        K, D = params.means.shape
        return (
            np.log(params.weights)
            + self.covariance.log_det_cholesky(params.precisions_cholesky, K, D)
            - 0.5 * D * LOG_2PI
        )

    def component_log_prob(self, params: GaussianMixtureParams, X: np.ndarray) -> np.ndarray:
        """``log π_k + log N(x_n | μ_k, Σ_k)`` as ``(n, K)`` in the dtype of ``X``."""
        centres = self.centres(params)
        maha = mahalanobis_about(
            self.covariance, X, params.means, params.precisions_cholesky, centres
        )
        maha *= -0.5
        maha += self._log_const(params).astype(X.dtype)
        return maha

    # --- engine protocol ----------------------------------------------------------------------
    def e_step(self, params: GaussianMixtureParams, batch: Batch) -> GaussianMixtureStats:
        X, w = batch.X, batch.weights
        centres, shared, factors, log_const = _prepared(self, params)
        if shared:  # one origin for all components: the structure's fused BLAS-3 E-step
            origin = centres[0]
            chunk = self.covariance.accumulate(
                X - origin.astype(X.dtype), w, params.means - origin, factors, log_const
            )
            nk, sx, sxx, row_ll = chunk.nk, chunk.sx, chunk.sxx, chunk.row_ll
        else:  # far-apart groups of components: densities and sums about each group's origin
            logp = mahalanobis_about(
                self.covariance, X.astype(np.float64), params.means,
                params.precisions_cholesky, centres,
            )
            logp *= -0.5
            logp += log_const
            row_ll = np.empty(X.shape[0])
            normalize_rows(logp, w, row_ll)  # logp becomes R = w·r
            nk = logp.sum(axis=0)
            sx, sxx = moments_about(self.covariance, X, logp, centres)
        return GaussianMixtureStats(
            loglik=float(w @ row_ll),
            weight=float(w.sum()),
            nk=nk,
            sx=sx,
            sxx=sxx,
            mass=nk[:, None] * centres,
        )

    def stats_from_resp(
        self,
        X: np.ndarray,
        w: np.ndarray,
        R: np.ndarray,
        loglik: float = 0.0,
        centres: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> GaussianMixtureStats:
        """Statistics of rows ``X`` given weighted responsibilities ``R = w_n r_nk``, about
        ``centres`` (default: the model's origin); ``labels`` for hard assignments."""
        K, D = R.shape[1], X.shape[1]
        if centres is None:
            centres = np.broadcast_to(self._origin(D), (K, D))
        nk = R.sum(axis=0, dtype=np.float64)
        sx, sxx = moments_about(self.covariance, X, R, centres, labels)
        return GaussianMixtureStats(loglik, float(w.sum()), nk, sx, sxx, nk[:, None] * centres)

    def m_step(
        self, stats: GaussianMixtureStats, params: GaussianMixtureParams | None = None
    ) -> GaussianMixtureParams:
        """The sums say their own centres (``mass / n_k``), so ``params`` is not needed."""
        means, cov = parameters_from_moments(
            self.covariance, stats.nk, stats.sx, stats.sxx, stats.mass, self.reg_covar
        )
        total = stats.nk.sum()
        weights = floored_counts(stats.nk)
        weights = weights / weights.sum()
        collapsed = np.flatnonzero(stats.nk <= self.collapse_fraction * total)
        if collapsed.size and collapsed.size < weights.size:
            weights, means, cov = self._reseed(collapsed, weights, means, cov, means.shape[1])
        return GaussianMixtureParams(
            weights=weights,
            means=means,
            precisions_cholesky=self.covariance.precisions_cholesky(cov),
        )

    def _reseed(self, collapsed, weights, means_c, cov, D):
        """Re-seed empty components by splitting the heaviest along its principal axis."""
        weights, means_c = weights.copy(), means_c.copy()
        dead = set(int(k) for k in collapsed)
        for k in sorted(dead):
            alive = [j for j in range(weights.size) if j not in dead]
            h = max(alive, key=lambda j: weights[j])
            var, axis = self.covariance.principal_axis(cov, h, D)
            offset = 0.5 * np.sqrt(max(var, self.reg_covar)) * axis
            means_c[k] = means_c[h] + offset
            means_c[h] = means_c[h] - offset
            weights[k] = weights[h] = weights[h] / 2.0
            cov = self.covariance.copy_component(cov, h, k)
            dead.discard(k)
        warnings.warn(
            f"component(s) {sorted(int(k) for k in collapsed)} lost all their weight and were "
            "re-seeded by splitting the heaviest component; consider fewer components",
            ComponentCollapseWarning,
            stacklevel=3,
        )
        return weights / weights.sum(), means_c, cov

    def log_prior(self, params: GaussianMixtureParams) -> float:
        return 0.0

    def row_bytes(self, params: GaussianMixtureParams) -> int:
        K, D = params.means.shape
        itemsize = params.means.dtype.itemsize
        return self.covariance.temp_bytes_per_row(K, D, itemsize) + 3 * K * 8

    # --- SQUAREM coordinates ------------------------------------------------------------------
    def flatten(self, params: GaussianMixtureParams) -> np.ndarray:
        return np.concatenate(
            [
                np.log(params.weights),
                params.means.ravel(),
                self.covariance.flatten(params.precisions_cholesky),
            ]
        )

    def unflatten(self, vector: np.ndarray, like: GaussianMixtureParams) -> GaussianMixtureParams:
        K, D = like.means.shape
        logw = vector[:K]
        weights = np.exp(logw - logw.max())
        return GaussianMixtureParams(
            weights=weights / weights.sum(),
            means=vector[K : K + K * D].reshape(K, D),
            precisions_cholesky=self.covariance.unflatten(vector[K + K * D :], K, D),
        )

    # --- initialisation -----------------------------------------------------------------------
    def init(self, data: ArrayData, rng: np.random.Generator) -> GaussianMixtureParams:
        """Parameters from one M-step on responsibilities given by ``init_method``."""
        X, w, K = data.X, data.weights, self.n_components
        seed = int(rng.integers(2**31 - 1))
        if self.init_method == "kmeans":
            from sklearn.cluster import KMeans

            labels = (
                KMeans(n_clusters=K, n_init=1, random_state=seed).fit(X, sample_weight=w).labels_
            )
            return self.from_labels(data, labels)
        if self.init_method == "k-means++":
            from sklearn.cluster import kmeans_plusplus

            centers, _ = kmeans_plusplus(X, K, sample_weight=w, random_state=seed)
            return self.from_means(data, centers)
        if self.init_method == "random_from_data":
            positive = np.flatnonzero(w > 0)
            chosen = rng.choice(positive, size=K, replace=False)
            return self.from_means(data, X[chosen])
        if self.init_method == "random":
            R = rng.uniform(size=(X.shape[0], K))
            R /= R.sum(axis=1, keepdims=True)
            return self.m_step(self.stats_from_resp(X, w, R * w[:, None]))
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {self.init_method!r}")

    def from_labels(self, data: ArrayData, labels: np.ndarray) -> GaussianMixtureParams:
        """One M-step on hard assignments ``labels`` (chunked: no dense N×K temporary).

        Two passes: the labelled means (plain float64 sums, no origin to lose digits to), then
        the sums about them (each row about its own component's mean)."""
        step = 65536
        K, D = self.n_components, data.width

        def chunks():
            for start in range(0, data.n_rows, step):
                sl = slice(start, start + step)
                w = data.weights[sl]
                R = np.zeros((w.size, K))
                R[np.arange(w.size), labels[sl]] = w
                yield sl, w, R

        nk, sums = np.zeros(K), np.zeros((K, D))
        for sl, _, R in chunks():
            nk += R.sum(axis=0)
            sums += R.T @ np.asarray(data.X[sl], dtype=np.float64)
        centres = sums / np.where(nk > 0.0, nk, 1.0)[:, None]
        total = None
        for sl, w, R in chunks():
            s = self.stats_from_resp(data.X[sl], w, R, centres=centres, labels=labels[sl])
            total = s if total is None else total + s
        return self.m_step(total)

    def from_means(self, data: ArrayData, means: np.ndarray) -> GaussianMixtureParams:
        """One M-step on assignments of every row to its nearest mean."""
        from sklearn.metrics import pairwise_distances_argmin

        labels = pairwise_distances_argmin(data.X, np.asarray(means, dtype=data.X.dtype))
        return self.from_labels(data, labels)
