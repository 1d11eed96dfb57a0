"""Gaussian components on the covariance-structure objects: ``f(x | μ, Σ) = N(x; μ, Σ)``.

The adapter of :mod:`emkit.families.covariance` to the :class:`~emkit.families.base.Family`
protocol, so that any model written against families (mixtures of any family, hidden Markov
models) gets Gaussians with the four structures (``full``, ``tied``, ``diag``, ``spherical``).

``log f = ½ log det Λ_k − (D/2) log 2π − ½ ‖(x − μ_k) L_k‖²`` with ``Λ_k = L_k L_kᵀ``.
Additive sums (float64) about per-component centres ``c_k`` (exact at any offset, see
:mod:`emkit.families.covariance`): ``Σ_n R_nk (x_n − c_k)``, the structure's second moment of
``x_n − c_k`` and ``Σ_n R_nk c_k`` (so the sums say their centres).  The centres are
``shared_origins`` of the current parameters, or at a start the starting partition's means.
The M-step is ``μ_k = c_k + s_k / n_k``, ``Σ_k = S_k / n_k − (s_k/n_k)(s_k/n_k)ᵀ +
reg_covar·I`` (shaped and pooled by the structure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit._validation import InputError, check_finite, real_array
from emkit.families._mixture_kernels import normalize_rows
from emkit.families.base import (
    Family,
    check_origin,
    check_parameter,
    expect_params,
    floored_counts,
    reject_values,
)
from emkit.families.covariance import (
    CovarianceError,
    CovarianceStructure,
    covariance_structure,
    mahalanobis_about,
    moments_about,
    parameters_from_moments,
    shared_origins,
    start_centres,
)
from emkit.families.missing_cells import (
    add_pattern_sums,
    conditional_sums,
    full_covariances,
    gaussian_patterns,
    incomplete_rows,
)

LOG_2PI = float(np.log(2.0 * np.pi))
LOG_FACTOR_BOUND = 200.0


@dataclass(frozen=True, eq=False)
class GaussianParams:
    """``K`` components: means ``(K, D)`` and the precision Cholesky factors in the structure's
    shape (full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``)."""

    means: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]


@dataclass(frozen=True, eq=False)
class PreparedGaussian:
    """What one E-step needs from :class:`GaussianParams`, computed once (``Gaussian.prepare``):
    the components' centres (``shared_origins``), whether one serves all, the structure's
    factors for the fused products and ``½ log det Λ_k``."""

    params: GaussianParams
    centres: np.ndarray
    shared: bool
    factors: Any
    log_det: np.ndarray


class Gaussian(Family):
    """Gaussian components with a covariance structure; M-step ``μ_k = Σ R x / n_k``,
    ``Σ_k = Σ R (x − μ_k)(x − μ_k)ᵀ / n_k + reg_covar·I``.

    Computations run in float64 whatever the input dtype (one chunk is converted at a time).
    """

    name = "gaussian"
    handles_missing = True  # conditional normals per missingness pattern

    def __init__(
        self,
        covariance: str | CovarianceStructure = "full",
        reg_covar: float = 1e-6,
        origin: Any = None,
    ):
        self.covariance = covariance_structure(covariance)
        self.reg_covar = float(reg_covar)
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0.0):
            raise ValueError(f"reg_covar must be a non-negative number, got {reg_covar!r}")
        self.origin = None if origin is None else np.asarray(origin, dtype=np.float64).ravel()
        if self.origin is not None and not np.all(np.isfinite(self.origin)):
            raise ValueError("origin must be finite")

    def __repr__(self) -> str:
        return f"Gaussian(covariance={self.covariance.name!r}, reg_covar={self.reg_covar!r})"

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "covariance": self.covariance.name,
            "reg_covar": self.reg_covar,
            "origin": None if self.origin is None else [float(v) for v in self.origin],
        }

    def configure(self, X: Any) -> Gaussian:
        """A copy whose statistics are taken about the column means of the finite cells of X."""
        X = np.asarray(X, dtype=np.float64)
        finite = np.isfinite(X)
        counts = finite.sum(axis=0)
        origin = np.where(finite, X, 0.0).sum(axis=0) / np.maximum(counts, 1)
        return type(self)(self.covariance, self.reg_covar, origin)

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        reject_values(X, ~np.isfinite(X), names, "Non-finite values cannot be Gaussian data")

    # --- densities ----------------------------------------------------------------------------
    def _origin(self, D: int) -> np.ndarray:
        if self.origin is None:
            return np.zeros(D)
        if self.origin.shape != (D,):
            raise ValueError(
                f"this Gaussian family was configured for {self.origin.size} features, "
                f"the data have {D}"
            )
        return self.origin

    def _full_covariances(self, params: GaussianParams) -> np.ndarray:
        K, D = params.means.shape
        return full_covariances(self.covariance, params.precisions_cholesky, K, D)

    # --- one E-step -----------------------------------------------------------------------------
    def prepare(self, params: GaussianParams | PreparedGaussian) -> PreparedGaussian:
        """Centres, factors and log-determinants of ``params``, once per E-step."""
        if isinstance(params, PreparedGaussian):
            return params
        K, D = params.means.shape
        pc = params.precisions_cholesky
        centres = shared_origins(self.covariance, params.means, pc, self.origin)
        return PreparedGaussian(
            params,
            centres,
            bool(np.all(centres == centres[0])),
            self.covariance.prepare(pc),
            self.covariance.log_det_cholesky(pc, K, D),
        )

    def mixture_chunk(
        self, prepared: PreparedGaussian, log_weights: np.ndarray, X: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Complete rows about one shared origin: the structure's fused, BLAS-3 E-step in the
        dtype of ``X`` (densities, responsibilities and sums in one pass); otherwise (far-apart
        components, NaN cells) the generic pass in float64."""
        incomplete = incomplete_rows(X)
        if incomplete is None and prepared.shared:
            _, origin, means_c, factors, log_const = self._fused_arguments(prepared, log_weights, X)
            chunk = self.covariance.accumulate(X, origin, w, means_c, factors, log_const)
            mass = chunk.nk[:, None] * prepared.centres
            return chunk.row_ll, chunk.nk, (chunk.sx, chunk.sxx, mass)
        params = prepared.params
        try:
            if incomplete is not None:
                return self._incomplete_chunk(prepared, log_weights, X, w, incomplete)
            return super().mixture_chunk(prepared, log_weights, X, w)
        except CovarianceError:  # an infeasible (extrapolated) point: the engine rejects it
            K, D = params.means.shape
            shape = self.covariance.second_moment_shape(K, D)
            empty = (np.zeros((K, D)), np.zeros(shape), np.zeros((K, D)))
            return np.full(X.shape[0], -np.inf), np.zeros(K), empty

    def _incomplete_chunk(
        self,
        prepared: PreparedGaussian,
        log_weights: np.ndarray,
        X: np.ndarray,
        w: np.ndarray,
        incomplete: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, tuple]:
        """A chunk with NaN cells: each missingness pattern's conditional normals are formed
        once and serve both the densities of its observed cells and its sums (``x̂``, ``C``)."""
        centres = prepared.centres
        logp, rows, patterns = self._log_prob_by_pattern(prepared, X, incomplete, log_weights)
        row_ll = np.empty(X.shape[0])
        normalize_rows(logp, w, row_ll)  # logp becomes R = w·r
        R, complete = logp, ~incomplete
        sx, second = moments_about(self.covariance, X[complete], R[complete], centres)
        for pat in patterns:
            add_pattern_sums(self.covariance, pat, R[rows[pat.rows]], centres, sx, second)
        nk = R.sum(axis=0)
        return row_ll, nk, (sx, second, nk[:, None] * centres)

    def _fused_arguments(
        self, prepared: PreparedGaussian, log_weights: np.ndarray, X: np.ndarray
    ) -> tuple:
        """``(X, o, μ − o, factors, log π + ½ log det Λ − (D/2) log 2π)`` for the structure's
        fused products; for complete rows when one origin ``o`` serves every component
        (``prepared.shared``)."""
        params, origin = prepared.params, prepared.centres[0]
        log_const = log_weights + prepared.log_det - 0.5 * params.n_features * LOG_2PI
        return X, origin, params.means - origin, prepared.factors, log_const

    def mixture_log_joint(
        self, prepared: PreparedGaussian, log_weights: np.ndarray, X: np.ndarray
    ) -> np.ndarray:
        """``log π_k + log N(x_n | μ_k, Σ_k)`` in the dtype of ``X``: complete rows about one
        shared origin through the structure's fused ``log_densities``."""
        if prepared.shared and incomplete_rows(X) is None:
            return self.covariance.log_densities(*self._fused_arguments(prepared, log_weights, X))
        return super().mixture_log_joint(prepared, log_weights, X).astype(X.dtype, copy=False)

    def init_features(self, X: np.ndarray) -> np.ndarray:
        """The rows themselves, in their own dtype (k-means++ on float32 data stays float32)."""
        X = np.asarray(X)
        return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)

    def log_prob(self, params: GaussianParams | PreparedGaussian, X: np.ndarray) -> np.ndarray:
        """``log N(x_n | μ_k, Σ_k)`` as a float64 ``(n, K)`` array; rows with NaN cells get the
        density of their observed cells, ``log N(x_o | μ_k,o, Σ_k,oo)``."""
        prepared = self.prepare(params)
        params = prepared.params
        incomplete = incomplete_rows(X)
        if incomplete is None:
            return self._log_prob_complete(prepared, X)
        zeros = np.zeros(params.n_components)
        return self._log_prob_by_pattern(prepared, X, incomplete, zeros)[0]

    def _log_prob_by_pattern(
        self,
        prepared: PreparedGaussian,
        X: np.ndarray,
        incomplete: np.ndarray,
        log_weights: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, list]:
        """``(log π_k + log N, rows, patterns)``: float64 ``(n, K)`` joint log-densities of
        the observed cells, the indices of the rows with NaN and their missingness patterns
        (:func:`gaussian_patterns`, over those rows), whose conditionals the sums reuse."""
        params = prepared.params
        logp = np.empty((X.shape[0], params.n_components))
        complete = ~incomplete
        if complete.any():
            logp[complete] = self._log_prob_complete(prepared, X[complete]) + log_weights
        rows = np.flatnonzero(incomplete)
        covs = self._full_covariances(params)
        patterns = list(gaussian_patterns(log_weights, params.means, covs, X[rows]))
        for pat in patterns:
            logp[rows[pat.rows]] = pat.logp
        return logp, rows, patterns

    def _log_prob_complete(self, prepared: PreparedGaussian, X: np.ndarray) -> np.ndarray:
        params = prepared.params
        K, D = params.means.shape
        if X.shape[1] != D:
            raise ValueError(f"these Gaussian parameters have {D} features, the data {X.shape[1]}")
        pc = params.precisions_cholesky
        X = np.asarray(X, dtype=np.float64)
        logp = mahalanobis_about(self.covariance, X, params.means, pc, prepared.centres)
        logp *= -0.5
        logp += prepared.log_det - 0.5 * D * LOG_2PI
        return logp

    def accumulate(
        self, params: GaussianParams | PreparedGaussian | None, X: np.ndarray, R: np.ndarray
    ) -> tuple:
        """``(Σ_n R_nk (x_n − c_k), second moment of x_n − c_k, Σ_n R_nk c_k)``, float64; rows
        with NaN cells add their conditional expectations ``x̂_nk`` and covariances
        (``Σ R (x̂ x̂ᵀ + C)``).  ``params`` None (a start): ``c_k`` are the means under ``R``."""
        R = np.asarray(R, dtype=np.float64)
        incomplete = incomplete_rows(X)
        if params is None:
            if incomplete is not None:
                raise ValueError(
                    "missing cells need current parameters; start from complete rows"
                )
            return self._start_sums(X, R)
        prepared = self.prepare(params)
        params, centres = prepared.params, prepared.centres
        if incomplete is None:
            sx, second = moments_about(self.covariance, X, R, centres)
            return (sx, second, R.sum(axis=0)[:, None] * centres)
        complete = ~incomplete
        sx, second = moments_about(self.covariance, X[complete], R[complete], centres)
        more = conditional_sums(
            self.covariance,
            params.means,
            self._full_covariances(params),
            X[incomplete],
            R[incomplete],
            centres,
        )
        return (sx + more[0], second + more[1], R.sum(axis=0)[:, None] * centres)

    def _start_sums(self, X: np.ndarray, R: np.ndarray) -> tuple:
        """Sums about the means under ``R`` (plain float64 sums: no origin to lose digits to);
        hard assignments take one pass, soft ones one per component."""
        X = np.asarray(X, dtype=np.float64)
        centres, labels = start_centres(X, R, self._origin(X.shape[1]))
        sx, second = moments_about(self.covariance, X, R, centres, labels)
        return (sx, second, R.sum(axis=0)[:, None] * centres)

    def m_step(self, sums: tuple, nk: np.ndarray, params: GaussianParams | None) -> GaussianParams:
        sx, second, mass = sums
        means, cov = parameters_from_moments(self.covariance, nk, sx, second, mass, self.reg_covar)
        return GaussianParams(
            means=means, precisions_cholesky=self.covariance.precisions_cholesky(cov)
        )

    def reseed(
        self, params: GaussianParams, weights: np.ndarray, dead: np.ndarray
    ) -> tuple[np.ndarray, GaussianParams, str]:
        """Each dead component takes half of the heaviest one: the two means move half a
        standard deviation apart along its principal axis, both keep its covariance."""
        K, D = params.means.shape
        weights, means = weights.copy(), params.means.copy()
        cov = self.covariances(params)
        index = np.arange(K)
        left = set(int(k) for k in dead)
        for k in sorted(left):
            h = max((j for j in range(K) if j not in left), key=lambda j: weights[j])
            var, axis = self.covariance.principal_axis(cov, h, D)
            offset = 0.5 * np.sqrt(max(var, self.reg_covar)) * axis
            means[k] = means[h] + offset
            means[h] = means[h] - offset
            weights[k] = weights[h] = weights[h] / 2.0
            cov = self.covariance.copy_component(cov, h, k)
            index[k] = index[h]
            left.discard(k)
        factors = self.covariance.take(params.precisions_cholesky, index)
        return (
            weights / weights.sum(),
            GaussianParams(means, factors),
            "re-seeded by splitting the heaviest component",
        )

    # --- parameter groups (Learn(emissions=("covariances",)) holds the means) ------------------
    parameter_groups = ("means", "covariances")

    def m_step_holding(
        self, sums: tuple, nk: np.ndarray, params: GaussianParams, held: frozenset
    ) -> GaussianParams:
        """Held means: ``Σ_k`` about them, ``S/n − μ̂μ̂ᵀ + (μ̂ − μ)(μ̂ − μ)ᵀ`` with ``μ̂ = s/n``;
        held covariances: only ``μ̂``.  Both are the conditional maximisers."""
        if "means" in held and "covariances" not in held:
            sx, second, mass = sums
            n = floored_counts(nk)
            shift = sx / n[:, None] - (params.means - mass / n[:, None])
            second = second + self.covariance.second_moment(shift, np.diag(n), n)
            sums = (sx, second, mass)
        return self.hold(self.m_step(sums, nk, params), params, held)

    def hold(self, new: GaussianParams, old: GaussianParams, held: frozenset) -> GaussianParams:
        return GaussianParams(
            old.means if "means" in held else new.means,
            old.precisions_cholesky if "covariances" in held else new.precisions_cholesky,
        )

    def n_held_parameters(self, params: GaussianParams, held: frozenset) -> int:
        K, D = params.means.shape
        return int(K * D * ("means" in held)) + int(
            self.covariance.n_parameters(K, D) * ("covariances" in held)
        )

    # --- bookkeeping --------------------------------------------------------------------------
    def _shared(self, D: int) -> bool:
        """True when one covariance serves every component (its shape does not depend on K)."""
        return self.covariance.shape(1, D) == self.covariance.shape(2, D)

    def covariances(self, params: GaussianParams) -> np.ndarray:
        """Covariances in the structure's shape."""
        return self.covariance.covariances_from_cholesky(params.precisions_cholesky)

    def n_parameters(self, params: GaussianParams) -> int:
        K, D = params.means.shape
        return int(K * D + self.covariance.n_parameters(K, D))

    def take(self, params: GaussianParams, index: np.ndarray) -> GaussianParams:
        return GaussianParams(
            params.means[index], self.covariance.take(params.precisions_cholesky, index)
        )

    def sample(
        self, params: GaussianParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        D = params.n_features
        noise = self.covariance.noise(rng, self.covariances(params), k, n, D)
        return params.means[k] + noise

    def flatten(self, params: GaussianParams) -> np.ndarray:
        """Means and the structure's unconstrained factor vector (log Cholesky diagonals)."""
        return np.concatenate(
            [params.means.ravel(), self.covariance.flatten(params.precisions_cholesky)]
        )

    def unflatten(self, vector: np.ndarray, like: GaussianParams) -> GaussianParams:
        """Inverse of :meth:`flatten`; factor coordinates are clipped to ``±LOG_FACTOR_BOUND``
        (no covariance of finite data lies beyond; extrapolated points stay finite)."""
        K, D = like.means.shape
        factors = np.clip(vector[K * D :], -LOG_FACTOR_BOUND, LOG_FACTOR_BOUND)
        return GaussianParams(
            means=vector[: K * D].reshape(K, D),
            precisions_cholesky=self.covariance.unflatten(factors, K, D),
        )

    def check_params(self, params, n_components, n_features, label=str):
        """Means ``(K, D)``, and factors in the structure's shape (its ``check_factors``)."""
        expect_params(params, GaussianParams, self)
        check_parameter(params.means, label("means"), (n_components, n_features))
        what = label("precisions_cholesky")
        self.covariance.check_factors(params.precisions_cholesky, n_components, n_features, what)
        check_origin(self.origin, n_features, self)

    def describe(self, params: GaussianParams) -> dict[str, np.ndarray]:
        return {
            "means": params.means,
            "covariances": self.covariances(params),
            "precisions_cholesky": params.precisions_cholesky,
        }

    def restore(self, arrays: Mapping[str, np.ndarray]) -> GaussianParams:
        """The parameters from ``describe``'s arrays: the factors themselves (exact), else
        the factors of ``covariances`` (a user start in the shape of the structure)."""
        means = real_array(arrays["means"], "means").astype(np.float64)
        if "precisions_cholesky" not in arrays and "covariances" in arrays:
            cov = real_array(arrays["covariances"], "covariances").astype(np.float64)
            K, D = means.shape if means.ndim == 2 else (0, 0)
            want = self.covariance.shape(K, D)
            if cov.shape != want:
                raise InputError(
                    f"covariances must have shape {want} for covariance "
                    f"{self.covariance.covariance_type!r}, got {cov.shape}"
                )
            check_finite(cov, "covariances")
            try:
                return GaussianParams(means, self.covariance.precisions_cholesky(cov))
            except CovarianceError as exc:
                at = "" if exc.component is None else f"[{exc.component}]"
                raise InputError(f"covariances{at} must be positive definite") from None
        return GaussianParams(
            means, np.asarray(arrays["precisions_cholesky"], dtype=np.float64)
        )

    def row_bytes(self, K: int, D: int) -> int:
        return self.covariance.temp_bytes_per_row(K, D, 8)
