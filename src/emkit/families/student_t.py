"""Multivariate Student-t components for robust clustering (McLachlan & Peel 2000, ch. 7).

``t_ν(μ, Σ)`` is a scale mixture of normals: ``x | τ ~ N(μ, Σ/τ)``, ``τ ~ Gamma(ν/2, rate ν/2)``.
Treating the scales ``τ`` as missing data gives the EM algorithm of Peel & McLachlan (2000):

- E-step: with ``δ_nk = (x_n − μ_k)ᵀ Σ_k⁻¹ (x_n − μ_k)``, the expected scale is
  ``u_nk = E[τ | x_n, k] = (ν_k + D) / (ν_k + δ_nk)`` and
  ``E[log τ | x_n, k] = log u_nk + ψ((ν_k + D)/2) − log((ν_k + D)/2)``;
- M-step (``R_nk = w_n r_nk``, ``n_k = Σ_n R_nk``):
  ``μ_k = Σ R u x / Σ R u``, ``Σ_k = Σ R u (x − μ_k)(x − μ_k)ᵀ / n_k (+ reg_covar·I)``, and
  ``ν_k`` the root of ``−ψ(ν/2) + log(ν/2) + 1 + (1/n_k) Σ R (log u − u)
  + ψ((ν_old + D)/2) − log((ν_old + D)/2) = 0`` (bracketed, clipped to ``dof_bounds``).

The expected complete-data log-likelihood separates into a (μ, Σ) part and a concave ν part,
so these updates maximise it exactly (up to the root finder's tolerance and ``reg_covar``):
the observed log-likelihood never decreases.

Additive sums per component (float64): ``Σ R u``, ``Σ R u (x − c_k)``,
``Σ R u (x − c_k)(x − c_k)ᵀ``, ``Σ R (log u − u)`` and ``Σ R u c_k``, about each component's
centre ``c_k`` (those of a full Gaussian, :func:`~emkit.families.covariance.shared_origins`:
the fixed ``origin`` near the data mean, set by :meth:`StudentT.configure`, for ordinary data;
a component far from the others gets its own), so the scale ``S_k/n_k − s_k s_kᵀ/(n_k Σ R u)``
is exact at any offset and the sums say their centres (``c_k = Σ R u c_k / Σ R u``).

Missing cells (NaN; Liu & Rubin 1995): a row with observed block ``o`` (``p`` cells) has the
``t_ν(μ_o, Σ_oo)`` density; ``u = (ν + p)/(ν + δ_o)``, the missing block enters the sums at its
conditional mean ``x̂_m = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)`` (weight ``R u``) and the second moment
gains ``R·C`` with ``C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om`` (``E[τ · C/τ] = C``); ``E[log τ]`` uses ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from emkit._validation import real_array
from emkit.families.base import (
    EPS,
    Family,
    check_origin,
    check_parameter,
    expect_params,
    reject_values,
)
from emkit.families.covariance import (
    Full,
    check_factor_matrices,
    moments_about,
    shared_origins,
    start_centres,
)
from emkit.families.missing_cells import gaussian_patterns, incomplete_rows

_FULL = Full()
LOG_PI = float(np.log(np.pi))


@dataclass(frozen=True, eq=False)
class StudentTParams:
    """``K`` components: means ``(K, D)``, upper-triangular precision Cholesky factors
    ``(K, D, D)`` (``Σ_k⁻¹ = L_k L_kᵀ``) and degrees of freedom ``(K,)``."""

    means: np.ndarray
    precisions_cholesky: np.ndarray
    dof: np.ndarray

    @property
    def covariances(self) -> np.ndarray:
        inv = np.linalg.inv(self.precisions_cholesky)  # Σ = L⁻ᵀ L⁻¹
        return np.swapaxes(inv, -1, -2) @ inv


class StudentT(Family):
    """Multivariate Student-t components with full scale matrices and per-component ``ν_k``.

    ``reg_covar`` is added to the diagonal of every scale matrix (as in the Gaussian mixture);
    ``fixed_dof`` fixes every ``ν_k`` (``None``: estimated by the ECM update, starting from
    ``init_dof``, kept within ``dof_bounds``); ``origin`` is the centre of the statistics of
    components near the data (``configure`` sets it to the data mean; ``None`` means zero).
    """

    name = "student_t"
    handles_missing = True  # per missingness pattern (module docstring)

    def __init__(
        self,
        reg_covar: float = 1e-6,
        fixed_dof: float | None = None,
        init_dof: float = 10.0,
        dof_bounds: tuple[float, float] = (0.5, 200.0),
        origin: Any = None,
    ):
        self.reg_covar = float(reg_covar)
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0.0):
            raise ValueError(f"reg_covar must be a non-negative number, got {reg_covar!r}")
        lo, hi = (float(b) for b in dof_bounds)
        if not (0.0 < lo < hi < np.inf):
            raise ValueError(f"dof_bounds must satisfy 0 < low < high < inf, got {dof_bounds!r}")
        self.dof_bounds = (lo, hi)
        self.fixed_dof = None if fixed_dof is None else float(fixed_dof)
        if self.fixed_dof is not None and not (0.0 < self.fixed_dof < np.inf):
            raise ValueError(f"fixed_dof must be a positive number or None, got {fixed_dof!r}")
        self.init_dof = float(init_dof)
        if not lo <= self.init_dof <= hi:
            raise ValueError(
                f"init_dof must lie within dof_bounds {self.dof_bounds}, got {init_dof!r}"
            )
        self.origin = None if origin is None else np.asarray(origin, dtype=np.float64).ravel()
        if self.origin is not None and not np.all(np.isfinite(self.origin)):
            raise ValueError("origin must be finite")

    def __repr__(self) -> str:
        return (
            f"StudentT(reg_covar={self.reg_covar!r}, fixed_dof={self.fixed_dof!r}, "
            f"init_dof={self.init_dof!r}, dof_bounds={self.dof_bounds!r})"
        )

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reg_covar": self.reg_covar,
            "fixed_dof": self.fixed_dof,
            "init_dof": self.init_dof,
            "dof_bounds": list(self.dof_bounds),
            "origin": None if self.origin is None else [float(v) for v in self.origin],
        }

    def configure(self, X: Any) -> StudentT:
        """A copy whose statistics are taken about the mean of the training data."""
        options = {k: v for k, v in self.config().items() if k != "name"}
        X = np.asarray(X, dtype=np.float64)
        finite = np.isfinite(X)
        options["origin"] = np.where(finite, X, 0.0).sum(axis=0) / np.maximum(finite.sum(0), 1)
        return type(self)(**options)

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        reject_values(X, ~np.isfinite(X), names, "Non-finite values cannot be Student-t data")

    # --- densities ----------------------------------------------------------------------------
    def _origin(self, D: int) -> np.ndarray:
        if self.origin is None:
            return np.zeros(D)
        if self.origin.shape != (D,):
            raise ValueError(
                f"this StudentT family was configured for {self.origin.size} features, "
                f"the data have {D}"
            )
        return self.origin

    @staticmethod
    def _log_const(params: StudentTParams, D: int) -> np.ndarray:
        """``log Γ((ν+D)/2) − log Γ(ν/2) − (D/2) log(νπ) + ½ log det Σ⁻¹`` per component."""
        nu = params.dof
        log_det = np.log(np.diagonal(params.precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
        return (
            gammaln(0.5 * (nu + D)) - gammaln(0.5 * nu) - 0.5 * D * (np.log(nu) + LOG_PI) + log_det
        )

    def log_prob(self, params: StudentTParams, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        incomplete = incomplete_rows(X)
        if incomplete is None:
            return self._log_prob_complete(params, X)
        out = np.empty((X.shape[0], params.means.shape[0]))
        out[~incomplete] = self._log_prob_complete(params, X[~incomplete])
        nu = params.dof
        for pat in self._patterns(params, X[incomplete]):
            p = pat.obs.size
            const = gammaln(0.5 * (nu + p)) - gammaln(0.5 * nu) - 0.5 * p * (np.log(nu) + LOG_PI)
            logp = const - 0.5 * pat.log_det - 0.5 * (nu + p) * np.log1p(pat.delta / nu)
            out[np.flatnonzero(incomplete)[pat.rows]] = logp  # 0 if nothing is observed
        return out

    def _patterns(self, params: StudentTParams, X: np.ndarray):
        K = params.means.shape[0]
        return gaussian_patterns(np.zeros(K), params.means, params.covariances, X)

    def _log_prob_complete(self, params: StudentTParams, X: np.ndarray) -> np.ndarray:
        n, D = X.shape
        K = params.means.shape[0]
        const = self._log_const(params, D)
        out = np.empty((n, K))
        for k in range(K):
            Y = (X - params.means[k]) @ params.precisions_cholesky[k]
            delta = np.einsum("nd,nd->n", Y, Y)
            nu = params.dof[k]
            out[:, k] = const[k] - 0.5 * (nu + D) * np.log1p(delta / nu)
        return out

    # --- E- and M-step ------------------------------------------------------------------------
    def accumulate(self, params: StudentTParams | None, X: np.ndarray, R: np.ndarray) -> tuple:
        """``(Σ R u, Σ R u (x−c), Σ R u (x−c)(x−c)ᵀ, Σ R (log u − u), Σ R u c)`` about the
        centres ``c_k`` of ``params``; ``u = 1`` when ``params`` is None (initialisation: the
        Gaussian moments of the starting partition, about its means)."""
        X = np.asarray(X, dtype=np.float64)
        R = np.asarray(R, dtype=np.float64)
        incomplete = incomplete_rows(X)
        if incomplete is not None:
            if params is None:
                raise ValueError("missing cells need current parameters; start from full rows")
            done = self._accumulate_complete(params, X[~incomplete], R[~incomplete])
            more = self._accumulate_missing(params, X[incomplete], R[incomplete])
            return tuple(a + b for a, b in zip(done, more, strict=True))
        return self._accumulate_complete(params, X, R)

    def _accumulate_missing(self, params: StudentTParams, X: np.ndarray, R: np.ndarray) -> tuple:
        """The sums of rows with NaN cells (module docstring), per missingness pattern."""
        n, D = X.shape
        K = R.shape[1]
        centres = self.centres(params)
        nu = params.dof
        su, sux, suxx, slog = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), np.zeros(K)
        for pat in self._patterns(params, X):
            Rp, p, m = R[pat.rows], pat.obs.size, pat.miss
            u = (nu + p) / (nu + pat.delta)  # (n, K); 1 (the prior mean) if nothing is observed
            Ru = Rp * u
            shift = digamma(0.5 * (nu + p)) - np.log(0.5 * (nu + p))
            shift -= digamma(0.5 * (nu + D)) - np.log(0.5 * (nu + D))  # m_step adds the D term
            for k in range(K):
                xc = pat.xhat[k] - centres[k]
                su[k] += Ru[:, k].sum()
                sux[k] += Ru[:, k] @ xc
                suxx[k] += (xc * Ru[:, k : k + 1]).T @ xc
                if m.size:
                    suxx[k][np.ix_(m, m)] += Rp[:, k].sum() * pat.cond[k]
                slog[k] += Rp[:, k] @ (np.log(u[:, k]) - u[:, k]) + Rp[:, k].sum() * shift[k]
        return (su, sux, suxx, slog, su[:, None] * centres)

    def _accumulate_complete(
        self, params: StudentTParams | None, X: np.ndarray, R: np.ndarray
    ) -> tuple:
        n, D = X.shape
        K = R.shape[1]
        if params is None:
            centres, labels = start_centres(X, R, self._origin(D))
            su = R.sum(axis=0)
            sux, suxx = moments_about(_FULL, X, R, centres, labels)
            return (su, sux, suxx, -su, su[:, None] * centres)
        centres = self.centres(params)
        su = np.empty(K)
        sux = np.empty((K, D))
        suxx = np.empty((K, D, D))
        slog = np.empty(K)
        for k in range(K):
            diff = X - params.means[k]
            Y = diff @ params.precisions_cholesky[k]
            delta = np.einsum("nd,nd->n", Y, Y)
            nu = params.dof[k]
            u = (nu + D) / (nu + delta)
            Ru = R[:, k] * u
            s = Ru.sum()
            m = params.means[k] - centres[k]  # zero unless k shares a centre with others
            first = Ru @ diff  # Σ R u (x − μ_k)
            outer = first[:, None] * m[None, :]
            su[k] = s
            sux[k] = first + s * m
            # Σ R u (x−c)(x−c)ᵀ = C + f mᵀ + m fᵀ + s m mᵀ, with C about μ_k and m = μ_k − c
            suxx[k] = (diff * Ru[:, None]).T @ diff + outer + outer.T + s * np.outer(m, m)
            slog[k] = R[:, k] @ (np.log(u) - u)
        return (su, sux, suxx, slog, su[:, None] * centres)

    def centres(self, params: StudentTParams) -> np.ndarray:
        """Each component's centre ``c_k`` for the sums under ``params`` (``shared_origins``)."""
        D = params.means.shape[1]
        return shared_origins(_FULL, params.means, params.precisions_cholesky, self._origin(D))

    def m_step(self, sums: tuple, nk: np.ndarray, params: StudentTParams | None) -> StudentTParams:
        su, sux, suxx, slog, mass = sums
        K, D = sux.shape
        origin = self._origin(D)
        empty = nk <= 2.0 * EPS * nk.sum()  # no responsibility: keep finite placeholders
        s = np.where(empty, 1.0, su)
        means_c = sux / s[:, None]  # μ_k − c_k
        scatter = suxx - s[:, None, None] * means_c[:, :, None] * means_c[:, None, :]
        cov = scatter / np.where(empty, 1.0, nk)[:, None, None]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        idx = np.arange(D)
        cov[:, idx, idx] += self.reg_covar
        means = means_c + mass / s[:, None]
        if empty.any():
            if params is not None:
                means[empty] = params.means[empty]
                cov[empty] = params.covariances[empty]
            else:
                means[empty] = origin
                cov[empty] = np.eye(D)
        return StudentTParams(
            means=means,
            precisions_cholesky=_FULL.precisions_cholesky(cov),
            dof=self._update_dof(slog, nk, params, D, empty),
        )

    def _update_dof(
        self, slog: np.ndarray, nk: np.ndarray, params: StudentTParams | None, D: int,
        empty: np.ndarray,
    ) -> np.ndarray:
        K = nk.shape[0]
        if self.fixed_dof is not None:
            return np.full(K, self.fixed_dof)
        if params is None:
            return np.full(K, self.init_dof)
        old = params.dof
        half = 0.5 * (old + D)
        # (1/n_k) Σ R (E[log τ] − E[τ]) ≤ −1 (Jensen); the root exists iff it is < −1
        c = slog / nk + digamma(half) - np.log(half)
        dof = old.copy()
        for k in range(K):
            if not empty[k]:
                dof[k] = solve_dof(float(c[k]), self.dof_bounds)
        return dof

    # --- bookkeeping --------------------------------------------------------------------------
    def n_parameters(self, params: StudentTParams) -> int:
        K, D = params.means.shape
        return int(K * D + K * D * (D + 1) // 2 + (0 if self.fixed_dof is not None else K))

    def take(self, params: StudentTParams, index: np.ndarray) -> StudentTParams:
        return StudentTParams(
            params.means[index], params.precisions_cholesky[index], params.dof[index]
        )

    def sample(
        self, params: StudentTParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``μ + z·sqrt(ν/χ²_ν)`` with ``z ~ N(0, Σ)``."""
        D = params.means.shape[1]
        z = rng.standard_normal((n, D)) @ np.linalg.inv(params.precisions_cholesky[k])
        nu = float(params.dof[k])
        scale = np.sqrt(nu / rng.chisquare(nu, size=n))
        return params.means[k] + z * scale[:, None]

    def flatten(self, params: StudentTParams) -> np.ndarray:
        return np.concatenate(
            [
                params.means.ravel(),
                _FULL.flatten(params.precisions_cholesky),
                np.log(params.dof),
            ]
        )

    def unflatten(self, vector: np.ndarray, like: StudentTParams) -> StudentTParams:
        K, D = like.means.shape
        n_chol = K * D * (D + 1) // 2
        means = vector[: K * D].reshape(K, D)
        pc = _FULL.unflatten(vector[K * D : K * D + n_chol], K, D)
        if self.fixed_dof is not None:
            dof = np.full(K, self.fixed_dof)
        else:
            lo, hi = np.log(self.dof_bounds)
            dof = np.exp(np.clip(vector[K * D + n_chol :], lo, hi))
        return StudentTParams(means, pc, dof)

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, StudentTParams, self)
        K, D = n_components, n_features
        check_parameter(params.means, label("means"), (K, D))
        what = label("precisions_cholesky")
        check_factor_matrices(real_array(params.precisions_cholesky, what, (K, D, D)), what)
        check_parameter(params.dof, label("dof"), (K,), positive=True)
        check_origin(self.origin, D, self)

    def describe(self, params: StudentTParams) -> dict[str, np.ndarray]:
        return {
            "means": params.means,
            "covariances": params.covariances,
            "precisions_cholesky": params.precisions_cholesky,
            "dof": params.dof,
        }

    def restore(self, arrays: Any) -> StudentTParams:
        """The parameters :meth:`describe` gave (exact: the precision factors are stored)."""
        return StudentTParams(
            np.asarray(arrays["means"], dtype=np.float64),
            np.asarray(arrays["precisions_cholesky"], dtype=np.float64),
            np.asarray(arrays["dof"], dtype=np.float64),
        )

    def row_bytes(self, K: int, D: int) -> int:
        return 8 * (2 * K + 3 * D + 4)


def solve_dof(c: float, bounds: tuple[float, float]) -> float:
    """The root ``ν`` of ``log(ν/2) − ψ(ν/2) + 1 + c = 0``, clipped to ``bounds``.

    The left side decreases strictly in ``ν`` (from +∞ to ``1 + c``) and is the derivative of a
    concave function of ``ν``, so the clipped root is the constrained maximiser.
    """
    lo, hi = bounds

    def f(nu: float) -> float:
        half = 0.5 * nu
        return float(np.log(half) - digamma(half) + 1.0 + c)

    if not np.isfinite(c):
        return hi if c > 0 else lo
    f_lo, f_hi = f(lo), f(hi)
    if f_lo <= 0.0:
        return lo
    if f_hi >= 0.0:
        return hi
    return float(brentq(f, lo, hi, xtol=1e-12, rtol=4.0 * np.finfo(float).eps, maxiter=200))
