"""A Gaussian mixture per component: ``f(x | θ_k) = Σ_m c_km N(x; μ_km, Σ_km)``.

The emission family of a GMM-HMM (hmmlearn's ``GMMHMM``): each of the ``K`` components (the
states of a hidden Markov model) is itself a mixture of ``n_mix`` Gaussians.  The ``K·M``
inner Gaussians are one :class:`~emkit.families.gaussian.Gaussian` family's components (row
``k·M + m``), so the covariance structures, their numerics and the fixed origin of the second
moments are the Gaussian family's.  Structures ``full``, ``diag`` and ``spherical`` (each inner
Gaussian its own covariance) and ``tied`` as hmmlearn means it: the ``n_mix`` Gaussians of one
state share one full covariance (:class:`~emkit.families.covariance.GroupTied`, groups of
``n_mix``; covariances ``(K, D, D)``, pooled over the state's Gaussians in the M-step).

E-step: given the state weights ``R_nk`` the inner responsibilities are
``r_nkm = c_km N(x_n; μ_km, Σ_km) / f(x_n | θ_k)``; the additive float64 sums are
``Σ_n R_nk r_nkm`` ``(K, M)`` and the Gaussian family's sums under the weights ``R_nk r_nkm``.
M-step: ``c_km ∝ Σ_n R_nk r_nkm``, then the Gaussian M-step for the ``K·M`` inner components.
An inner Gaussian that explains nothing copies the parameters of its state's busiest one
(its weight stays ~0, so the expected log-likelihood is unchanged); under ``tied`` it shares
the state's covariance anyway and copies the mean only.

Initialisation (``params`` is None, e.g. from a k-means++ partition of the states): for each
state, its weighted rows are projected on their first principal axis; ``M`` centres sit at the
normal quantiles ``(m + ½)/M`` of the projections (weighted mean ± sd); each row gives
``1 − INIT_SPREAD`` of its weight to its nearest centre and spreads the rest evenly over the
``M`` inner Gaussians.  Deterministic (no random numbers) and every inner Gaussian starts with
weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.special import logsumexp

from emkit._validation import InputError
from emkit.families.base import EPS, Family, check_parameter, expect_params
from emkit.families.covariance import CovarianceStructure, GroupTied, covariance_structure
from emkit.families.gaussian import Gaussian, GaussianParams

INIT_SPREAD = 0.3


@dataclass(frozen=True, eq=False)
class GaussianMixtureEmissionParams:
    """``weights`` ``(K, M)`` (rows sum to one) and the ``K·M`` inner Gaussians (row
    ``k·M + m`` is inner Gaussian ``m`` of state ``k``; under ``tied`` their factors are one
    ``(D, D)`` per state)."""

    weights: np.ndarray
    gaussian: GaussianParams

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def n_mix(self) -> int:
        return self.weights.shape[1]


class GaussianMixtureEmission(Family):
    """Each component a mixture of ``n_mix`` Gaussians with a covariance structure
    (``"full" | "diag" | "spherical" | "tied"``; ``tied``: one covariance per component,
    shared by its ``n_mix`` Gaussians), ``reg_covar`` added to every variance."""

    name = "gaussian_mixture"
    handles_missing = True  # through the Gaussian family (observed-cell densities per sub-state)
    mixture_component = False  # a mixture of these is a GaussianMixture with K·M components

    def __init__(
        self,
        n_mix: int = 1,
        covariance: str | CovarianceStructure = "diag",
        reg_covar: float = 1e-6,
        origin: Any = None,
    ):
        if not (isinstance(n_mix, (int, np.integer)) and n_mix >= 1):
            raise ValueError(f"n_mix must be a positive integer, got {n_mix!r}")
        self.n_mix = int(n_mix)
        # a shared covariance is shared within each state's n_mix Gaussians (hmmlearn's "tied")
        structure = covariance_structure(covariance).within_groups(self.n_mix)
        self.gaussian = Gaussian(structure, reg_covar, origin)
        # factors per state (tied) rather than per inner Gaussian: arrays are (K, …)
        self._per_state = isinstance(structure, GroupTied)

    @property
    def covariance(self) -> CovarianceStructure:
        return self.gaussian.covariance

    @property
    def reg_covar(self) -> float:
        return self.gaussian.reg_covar

    def __repr__(self) -> str:
        return (
            f"GaussianMixtureEmission(n_mix={self.n_mix}, "
            f"covariance={self.covariance.covariance_type!r}, "
            f"reg_covar={self.reg_covar!r})"
        )

    def config(self) -> dict[str, Any]:
        out = self.gaussian.config()
        out.update(name=self.name, n_mix=self.n_mix, covariance=self.covariance.covariance_type)
        return out

    def configure(self, X: Any) -> GaussianMixtureEmission:
        """A copy whose second moments are taken about the mean of the finite rows of ``X``."""
        origin = self.gaussian.configure(X).origin
        return GaussianMixtureEmission(self.n_mix, self.covariance, self.reg_covar, origin)

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        self.gaussian.check(X, names)

    # --- the E- and M-step --------------------------------------------------------------------
    def _joint(self, params: GaussianMixtureEmissionParams, X: np.ndarray) -> np.ndarray:
        """``log c_km + log N(x_n; μ_km, Σ_km)`` as ``(n, K, M)``."""
        K, M = params.weights.shape
        inner = self.gaussian.log_prob(params.gaussian, X).reshape(X.shape[0], K, M)
        with np.errstate(divide="ignore"):
            inner += np.log(params.weights)
        return inner

    def log_prob(self, params: GaussianMixtureEmissionParams, X: np.ndarray) -> np.ndarray:
        """``log Σ_m c_km N(x_n; μ_km, Σ_km)`` as a float64 ``(n, K)`` array."""
        return logsumexp(self._joint(params, X), axis=2)

    def accumulate(
        self, params: GaussianMixtureEmissionParams | None, X: np.ndarray, R: np.ndarray
    ) -> tuple:
        """``(Σ_n R_nk r_nkm, Gaussian sums under R_nk r_nkm)``, float64."""
        X = np.asarray(X, dtype=np.float64)
        R = np.asarray(R, dtype=np.float64)
        n, K = R.shape
        if params is None:
            inner = self._initial_inner(X, R)
        else:
            joint = self._joint(params, X)
            inner = np.exp(joint - logsumexp(joint, axis=2, keepdims=True))
            inner = np.nan_to_num(inner, nan=1.0 / self.n_mix)
        W = (R[:, :, None] * inner).reshape(n, K * self.n_mix)
        gaussian = None if params is None else params.gaussian  # NaN cells need current values
        return (W.sum(axis=0).reshape(K, self.n_mix),) + self.gaussian.accumulate(gaussian, X, W)

    def _initial_inner(self, X: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Inner responsibilities ``(n, K, M)`` at initialisation (see the module docstring)."""
        n, K = R.shape
        M = self.n_mix
        out = np.full((n, K, M), 1.0 / M)
        if M == 1:
            return out
        z = np.array([NormalDist().inv_cdf((m + 0.5) / M) for m in range(M)])
        for k in range(K):
            w = R[:, k]
            total = w.sum()
            if total <= 0.0:
                continue
            mean = w @ X / total
            Xc = X - mean
            cov = (Xc * w[:, None]).T @ Xc / total
            axis = np.linalg.eigh(cov)[1][:, -1]
            t = Xc @ axis
            sd = np.sqrt(max(float(w @ t**2 / total), 0.0))
            nearest = np.argmin(np.abs(t[:, None] - sd * z[None, :]), axis=1)
            out[:, k, :] = INIT_SPREAD / M
            out[np.arange(n), k, nearest] += 1.0 - INIT_SPREAD
        return out

    def m_step(
        self, sums: tuple, nk: np.ndarray, params: GaussianMixtureEmissionParams | None
    ) -> GaussianMixtureEmissionParams:
        return self._m_step(sums, params, frozenset())

    # --- parameter groups (Learn(emissions=(...)) holds the others) ----------------------------
    parameter_groups = ("weights", "means", "covariances")

    def m_step_holding(
        self, sums: tuple, nk: np.ndarray, params: GaussianMixtureEmissionParams, held: frozenset
    ) -> GaussianMixtureEmissionParams:
        """Held weights stay; held means or covariances as for one Gaussian (its
        ``m_step_holding``: covariances about held means)."""
        return self.hold(self._m_step(sums, params, held), params, held)

    def hold(
        self, new: GaussianMixtureEmissionParams, old: GaussianMixtureEmissionParams,
        held: frozenset,
    ) -> GaussianMixtureEmissionParams:
        weights = old.weights if "weights" in held else new.weights
        return GaussianMixtureEmissionParams(weights, self.gaussian.hold(new.gaussian,
                                                                         old.gaussian, held))

    def n_held_parameters(self, params: GaussianMixtureEmissionParams, held: frozenset) -> int:
        K, M = params.weights.shape
        return int(K * (M - 1) * ("weights" in held)) + self.gaussian.n_held_parameters(
            params.gaussian, held
        )

    def _inner_m_step(
        self, sums: tuple, nk: np.ndarray, params: GaussianMixtureEmissionParams | None,
        held: frozenset,
    ) -> GaussianParams:
        inner = held & {"means", "covariances"}
        if inner and params is not None:
            return self.gaussian.m_step_holding(sums, nk, params.gaussian, inner)
        return self.gaussian.m_step(sums, nk, None)

    def _m_step(
        self, sums: tuple, params: GaussianMixtureEmissionParams | None, held: frozenset
    ) -> GaussianMixtureEmissionParams:
        nkm = np.asarray(sums[0], dtype=np.float64)
        K, M = nkm.shape
        totals = nkm.sum(axis=1, keepdims=True)
        weights = np.where(totals > 0.0, nkm / np.where(totals > 0.0, totals, 1.0), 1.0 / M)
        # an inner Gaussian without weight copies the sums of its state's busiest one (relative
        # to the state's total: weights of any scale)
        dead = nkm <= EPS * totals
        busiest = np.argmax(nkm, axis=1)
        own = np.arange(K * M).reshape(K, M)
        source = np.where(dead, (np.arange(K) * M + busiest)[:, None], own).ravel()
        if self._per_state:
            # the state's pooled scatter stays as summed (a dead Gaussian adds ~nothing and
            # keeps it positive definite); the dead one takes its busiest neighbour's mean
            gaussian = self._inner_m_step(tuple(sums[1:]), nkm.ravel(), params, held)
            means = gaussian.means[source]
            return GaussianMixtureEmissionParams(
                weights, GaussianParams(means, gaussian.precisions_cholesky)
            )
        gsums = tuple(np.asarray(s)[source] for s in sums[1:])
        gaussian = self._inner_m_step(gsums, nkm.ravel()[source], params, held)
        return GaussianMixtureEmissionParams(weights, gaussian)

    # --- bookkeeping --------------------------------------------------------------------------
    def _inner_index(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.intp).ravel()
        return (index[:, None] * self.n_mix + np.arange(self.n_mix)).ravel()

    def _factor_lead(self, K: int, M: int) -> tuple[int, ...]:
        """Leading shape of covariance-like arrays: ``(K,)`` under tied, else ``(K, M)``."""
        return (K,) if self._per_state else (K, M)

    def _per_factor(self, value: np.ndarray, K: int, M: int) -> np.ndarray:
        """An array with leading ``(K, M)`` or ``(K,)`` as the inner Gaussian family holds it
        (leading ``K·M``, or ``K`` under tied)."""
        lead = self._factor_lead(K, M)
        return value.reshape((int(np.prod(lead)),) + value.shape[len(lead) :])

    def covariances(self, params: GaussianMixtureEmissionParams) -> np.ndarray:
        """Covariances in the structure's shape per inner Gaussian, ``(K, M, …)``; under
        ``tied`` one per state, ``(K, D, D)`` (hmmlearn's shapes)."""
        K, M = params.weights.shape
        cov = self.gaussian.covariances(params.gaussian)
        return cov.reshape(self._factor_lead(K, M) + cov.shape[1:])

    def n_parameters(self, params: GaussianMixtureEmissionParams) -> int:
        K, M = params.weights.shape
        return int(K * (M - 1) + self.gaussian.n_parameters(params.gaussian))

    def take(
        self, params: GaussianMixtureEmissionParams, index: np.ndarray
    ) -> GaussianMixtureEmissionParams:
        index = np.asarray(index, dtype=np.intp)
        return GaussianMixtureEmissionParams(
            params.weights[index], self.gaussian.take(params.gaussian, self._inner_index(index))
        )

    def sample(
        self, params: GaussianMixtureEmissionParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        M = params.n_mix
        which = rng.choice(M, size=n, p=params.weights[k])
        out = np.empty((n, params.gaussian.n_features))
        for m in range(M):
            rows = np.flatnonzero(which == m)
            if rows.size:
                out[rows] = self.gaussian.sample(params.gaussian, k * M + m, rows.size, rng)
        return out

    def flatten(self, params: GaussianMixtureEmissionParams) -> np.ndarray:
        """Log weights (per state), then the inner Gaussians' vector."""
        logw = np.log(np.clip(params.weights, 1e-300, None)).ravel()
        return np.concatenate([logw, self.gaussian.flatten(params.gaussian)])

    def unflatten(
        self, vector: np.ndarray, like: GaussianMixtureEmissionParams
    ) -> GaussianMixtureEmissionParams:
        K, M = like.weights.shape
        logw = vector[: K * M].reshape(K, M)
        weights = np.exp(logw - logsumexp(logw, axis=1, keepdims=True))
        return GaussianMixtureEmissionParams(
            weights, self.gaussian.unflatten(vector[K * M :], like.gaussian)
        )

    def check_params(self, params, n_components, n_features, label=str):
        """Weights ``(K, M)`` (rows: probabilities, zeros allowed), the ``K·M`` inner Gaussians
        by the Gaussian family's check."""
        expect_params(params, GaussianMixtureEmissionParams, self)
        K, M = n_components, self.n_mix
        weights = check_parameter(params.weights, label("weights"), (K, M))
        if np.any(weights < 0) or np.any(np.abs(weights.sum(axis=1) - 1.0) > 1e-6):
            raise InputError(f"{label('weights')} must be non-negative rows summing to 1")
        self.gaussian.check_params(params.gaussian, K * M, n_features, label)

    def describe(self, params: GaussianMixtureEmissionParams) -> dict[str, np.ndarray]:
        """``weights`` ``(K, M)``, ``means`` ``(K, M, D)``, ``covariances`` and
        ``precisions_cholesky`` ``(K, M, …)`` in the structure's shape (``(K, D, D)`` under
        ``tied``)."""
        K, M = params.weights.shape
        out = {"weights": params.weights}
        for name, value in self.gaussian.describe(params.gaussian).items():
            lead = (K, M) if name == "means" else self._factor_lead(K, M)
            out[name] = value.reshape(lead + value.shape[1:])
        return out

    def restore(self, arrays: Mapping[str, np.ndarray]) -> GaussianMixtureEmissionParams:
        weights = np.asarray(arrays["weights"], dtype=np.float64)
        if weights.ndim != 2:
            raise ValueError(f"weights must be (n_states, n_mix), got shape {weights.shape}")
        K, M = weights.shape
        means = np.asarray(arrays["means"], dtype=np.float64)
        pc = np.asarray(arrays["precisions_cholesky"], dtype=np.float64)
        inner = self.gaussian.restore(
            {
                "means": means.reshape((K * M,) + means.shape[2:]),
                "precisions_cholesky": self._per_factor(pc, K, M),
            }
        )
        return GaussianMixtureEmissionParams(weights, inner)

    def params_from_covariances(
        self, weights: Any, means: Any, covariances: Any
    ) -> GaussianMixtureEmissionParams:
        """Parameters from weights ``(K, M)``, means ``(K, M, D)`` and covariances ``(K, M,
        …)`` in the structure's shape, ``(K, D, D)`` under ``tied`` (hmmlearn's ``weights_``,
        ``means_``, ``covars_``)."""
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        K, M = weights.shape
        pc = self.covariance.precisions_cholesky(self._per_factor(cov, K, M))
        return GaussianMixtureEmissionParams(
            weights, GaussianParams(means.reshape(K * M, -1), pc)
        )

    def row_bytes(self, K: int, D: int) -> int:
        KM = K * self.n_mix
        return self.gaussian.row_bytes(KM, D) + 8 * KM * (D + 3)
