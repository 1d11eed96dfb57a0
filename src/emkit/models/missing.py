"""Multivariate normal with missing values (MCAR/MAR): ``x ~ N(μ, Σ)``, NaN marks a missing cell.

The E-step groups the rows of a batch by their missingness pattern, so its cost scales with the
number of patterns, not rows.  For a pattern with observed block ``o`` and missing block ``m``:

    x̂_m = μ_m + (x_o − μ_o) B,    B = Σ_oo⁻¹ Σ_om  (through the Cholesky factor of Σ_oo),
    C   = Σ_mm − Σ_mo B            (the conditional covariance, the same for every row),

and the statistics are ``Σ w``, ``Σ w x̂`` and ``Σ w (x̂ x̂ᵀ + C)`` (C on the ``mm`` block), plus
the observed-data log-likelihood ``Σ w log N(x_o | μ_o, Σ_oo)``.  The M-step is closed form:
``μ = Σ w x̂ / Σ w``, ``Σ = Σ w (x̂x̂ᵀ + C) / Σ w − μμᵀ`` (Little & Rubin 2002, section 11.2).
Rows with every cell missing carry no information and contribute nothing (weight included).

The statistics also carry what the estimator reports after the fit, so it needs no extra pass:
the observed information of μ at fixed Σ, ``Σ w P_oᵀ Σ_oo⁻¹ P_o`` (``P_o`` selects the observed
cells), and the set of distinct missingness patterns (merged by union across batches).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from emkit.engine.protocol import INIT_SAMPLE_ROWS, ArrayData, Batch
from emkit.engine.stats import Stats, row_set, unique_rows
from emkit.families._mixture_kernels import log_softmax_rows
from emkit.families.covariance import CovarianceError
from emkit.families.covariance.structure import _upper_to_vector, _vector_to_upper
from emkit.families.missing_cells import (
    cholesky,
    gaussian_patterns,
    missingness_patterns,
)

LOG_2PI = float(np.log(2.0 * np.pi))


def pattern_rows(masks: np.ndarray) -> np.ndarray:
    """Boolean NaN masks (P, D) as the canonical row set of their ``np.packbits`` rows."""
    return unique_rows(np.packbits(masks, axis=1))


@dataclass(frozen=True, eq=False)
class MissingNormalParams:
    """Immutable parameters: mean ``(D,)`` and covariance ``(D, D)``."""

    mean: np.ndarray
    covariance: np.ndarray

    @property
    def n_features(self) -> int:
        return self.mean.shape[0]


@dataclass(frozen=True)
class MissingNormalStats(Stats):
    """``sx = Σ w x̂`` and ``sxx = Σ w (x̂x̂ᵀ + C)``, about the model's fixed origin;
    ``mean_info = Σ w P_oᵀ Σ_oo⁻¹ P_o`` (D, D), the observed information of μ at fixed Σ;
    ``patterns``: the distinct NaN masks of the rows with an observed cell (whatever their
    weight), as sorted ``np.packbits`` rows (P, ⌈D/8⌉) uint8, a set merged by union."""

    sx: np.ndarray
    sxx: np.ndarray
    mean_info: np.ndarray
    patterns: np.ndarray = row_set()

    @property
    def n_patterns(self) -> int:
        return int(self.patterns.shape[0])


@dataclass(frozen=True)
class Pattern:
    """Rows of a batch sharing one missingness pattern, with the conditional-normal pieces.

    ``rows`` index the batch; ``obs`` and ``miss`` are column indices; ``B = Σ_oo⁻¹ Σ_om``;
    ``cond_cov = Σ_mm − Σ_mo B``; ``chol`` is the lower Cholesky factor of ``Σ_oo`` and
    ``chol_inv`` its inverse (small: one per pattern).
    """

    rows: np.ndarray
    obs: np.ndarray
    miss: np.ndarray
    chol: np.ndarray
    chol_inv: np.ndarray
    B: np.ndarray
    cond_cov: np.ndarray


def iter_patterns(params: MissingNormalParams, mask: np.ndarray) -> Iterator[Pattern]:
    """The patterns of a batch's NaN ``mask``, each with its conditional regression on ``params``.

    Rows with every cell missing are skipped (they carry no information).
    """
    cov = params.covariance
    unique, inverse = missingness_patterns(mask)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(unique.shape[0] + 1))
    for p, pattern in enumerate(unique):
        obs, miss = np.flatnonzero(~pattern), np.flatnonzero(pattern)
        if obs.size == 0:
            continue
        rows = order[bounds[p] : bounds[p + 1]]
        chol = cholesky(cov[np.ix_(obs, obs)])
        chol_inv = np.linalg.inv(chol)
        if miss.size:
            B = chol_inv.T @ (chol_inv @ cov[np.ix_(obs, miss)])
            cond = cov[np.ix_(miss, miss)] - cov[np.ix_(miss, obs)] @ B
            cond = 0.5 * (cond + cond.T)
        else:
            B, cond = np.zeros((obs.size, 0)), np.zeros((0, 0))
        yield Pattern(rows, obs, miss, chol, chol_inv, B, cond)


@dataclass(frozen=True, eq=False)
class MissingNormalModel:
    """The engine model: EM for ``N(μ, Σ)`` from rows with NaN cells (MAR ignorable).

    ``origin`` is a fixed point near the data mean (statistics are sums about it);
    ``reg_covar`` is added to the diagonal of Σ after every M-step (0: the exact MLE).
    """

    n_features: int
    origin: np.ndarray | None = None
    reg_covar: float = 0.0

    def _origin(self) -> np.ndarray:
        return np.zeros(self.n_features) if self.origin is None else self.origin

    # --- E-step -------------------------------------------------------------------------------
    def prepare(self, params: MissingNormalParams) -> MissingNormalParams:
        return params  # the patterns' regressions depend on the batch

    def e_step(self, params: MissingNormalParams, batch: Batch) -> MissingNormalStats:
        """Observed-data log-likelihood, ``Σ w x̂``, ``Σ w (x̂x̂ᵀ + C)``, ``Σ w P_oᵀ Σ_oo⁻¹ P_o``
        and the missingness patterns of one batch."""
        X = np.asarray(batch.X, dtype=np.float64)
        w = batch.weights
        D = self.n_features
        origin = self._origin()
        mu = params.mean - origin
        Xc = X - origin
        mask = np.isnan(Xc)
        sx, sxx, info = np.zeros(D), np.zeros((D, D)), np.zeros((D, D))
        loglik = 0.0
        weight = 0.0
        try:
            patterns = list(iter_patterns(params, mask))
        except CovarianceError:  # an infeasible (extrapolated) point: the engine rejects it
            unique = missingness_patterns(mask)[0]
            seen = pattern_rows(unique[~unique.all(axis=1)])
            return MissingNormalStats(-np.inf, float(w.sum()), sx, sxx, info, seen)
        for pat in patterns:
            wp = w[pat.rows]
            Z = Xc[np.ix_(pat.rows, pat.obs)] - mu[pat.obs]
            Y = Z @ pat.chol_inv.T
            maha = np.einsum("ij,ij->i", Y, Y)
            log_det = 2.0 * np.log(np.diag(pat.chol)).sum()
            loglik += float(wp @ (-0.5 * (pat.obs.size * LOG_2PI + log_det + maha)))
            total = float(wp.sum())
            weight += total
            info[np.ix_(pat.obs, pat.obs)] += total * (pat.chol_inv.T @ pat.chol_inv)
            Xhat = np.empty((pat.rows.size, D))
            Xhat[:, pat.obs] = Xc[np.ix_(pat.rows, pat.obs)]
            if pat.miss.size:
                Xhat[:, pat.miss] = mu[pat.miss] + Z @ pat.B
            sx += wp @ Xhat
            sxx += (Xhat * wp[:, None]).T @ Xhat
            if pat.miss.size:
                sxx[np.ix_(pat.miss, pat.miss)] += total * pat.cond_cov
        masks = np.zeros((len(patterns), D), dtype=bool)
        for i, pat in enumerate(patterns):
            masks[i, pat.miss] = True
        return MissingNormalStats(loglik, weight, sx, sxx, info, pattern_rows(masks))

    def m_step(
        self, stats: MissingNormalStats, params: MissingNormalParams | None = None
    ) -> MissingNormalParams:
        """``μ = Σ w x̂ / W``, ``Σ = Σ w (x̂x̂ᵀ + C) / W − μμᵀ`` (+ reg_covar·I)."""
        if not stats.weight > 0:
            raise ValueError("no row with an observed value and positive weight")
        mu_c = stats.sx / stats.weight
        cov = stats.sxx / stats.weight - np.outer(mu_c, mu_c)
        cov = 0.5 * (cov + cov.T)
        cov[np.diag_indices_from(cov)] += self.reg_covar
        return MissingNormalParams(mean=mu_c + self._origin(), covariance=cov)

    def log_prior(self, params: MissingNormalParams) -> float:
        return 0.0

    def row_bytes(self, params: MissingNormalParams) -> int:
        return 8 * (4 * self.n_features + 4)

    # --- SQUAREM coordinates: mean and the Cholesky factor of Σ with log diagonal ---------------
    def flatten(self, params: MissingNormalParams) -> np.ndarray:
        upper = cholesky(params.covariance).T
        return np.concatenate([params.mean, _upper_to_vector(upper)])

    def unflatten(self, vector: np.ndarray, like: MissingNormalParams) -> MissingNormalParams:
        D = like.mean.shape[0]
        upper = _vector_to_upper(vector[D:], (D, D))
        return MissingNormalParams(mean=np.array(vector[:D]), covariance=upper.T @ upper)

    # --- initialisation -----------------------------------------------------------------------
    def init(self, data: ArrayData, rng: np.random.Generator) -> MissingNormalParams:
        """Available-case column means (jittered by 0.1 sd when restarting) and variances of a
        sample of at most ``INIT_SAMPLE_ROWS`` rows (``data.sample``)."""
        data = data.sample(INIT_SAMPLE_ROWS, rng)
        X = np.asarray(data.X, dtype=np.float64)
        w = np.where(np.isnan(X), 0.0, data.weights[:, None])
        total = w.sum(axis=0)
        filled = np.where(np.isnan(X), 0.0, X)
        mean = (w * filled).sum(axis=0) / total
        var = (w * (filled - mean) ** 2).sum(axis=0) / total
        var = np.where(var > 0, var, 1.0) + self.reg_covar
        mean = mean + 0.1 * np.sqrt(var) * rng.standard_normal(mean.size)
        return MissingNormalParams(mean=mean, covariance=np.diag(var))

    # --- inference ----------------------------------------------------------------------------
    def row_loglik(self, params: MissingNormalParams, X: np.ndarray) -> np.ndarray:
        """``log N(x_o | μ_o, Σ_oo)`` of every row on its observed cells (0 for empty rows)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros(X.shape[0])
        for pat in iter_patterns(params, np.isnan(X)):
            Z = X[np.ix_(pat.rows, pat.obs)] - params.mean[pat.obs]
            Y = Z @ pat.chol_inv.T
            log_det = 2.0 * np.log(np.diag(pat.chol)).sum()
            out[pat.rows] = -0.5 * (pat.obs.size * LOG_2PI + log_det + (Y * Y).sum(axis=1))
        return out

    def impute(
        self,
        params: MissingNormalParams,
        X: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """NaN cells replaced by ``E[x_m | x_o]`` (or, with ``rng``, draws of ``x_m | x_o``).

        Rows with every cell missing get ``μ`` (or draws of ``N(μ, Σ)``).
        """
        X = np.array(X, dtype=np.float64)
        mask = np.isnan(X)
        for pat in iter_patterns(params, mask):
            if not pat.miss.size:
                continue
            Z = X[np.ix_(pat.rows, pat.obs)] - params.mean[pat.obs]
            fill = params.mean[pat.miss] + Z @ pat.B
            if rng is not None:
                fill += _normal_noise(rng, pat.cond_cov, pat.rows.size)
            X[np.ix_(pat.rows, pat.miss)] = fill
        empty = np.flatnonzero(mask.all(axis=1))
        if empty.size:
            X[empty] = params.mean
            if rng is not None:
                X[empty] += _normal_noise(rng, params.covariance, empty.size)
        return X


def _normal_noise(rng: np.random.Generator, cov: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of ``N(0, cov)`` (cov may be singular: through its eigen-decomposition)."""
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return rng.standard_normal((n, cov.shape[0])) @ root.T


# --------------------------------------------------------------------------------------------------
# Gaussian mixtures with missing cells: every component's conditional normal, per pattern
# --------------------------------------------------------------------------------------------------


def mixture_impute(
    log_weights: np.ndarray,
    means: np.ndarray,
    covs: np.ndarray,
    X: np.ndarray,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """NaN cells replaced by ``Σ_k p(k | x_o) E_k[x_m | x_o]``; with ``rng``: a component drawn
    from ``p(k | x_o)`` and then ``x_m`` from its conditional normal."""
    X = np.array(X, dtype=np.float64)
    for pat in gaussian_patterns(log_weights, means, covs, X):
        if not pat.miss.size:
            continue
        log_resp, _ = log_softmax_rows(np.array(pat.logp, dtype=np.float64))
        resp = np.exp(log_resp)
        if rng is None:
            fill = np.einsum("nk,knm->nm", resp, pat.xhat[:, :, pat.miss])
        else:
            cum = np.cumsum(resp, axis=1)
            u = rng.random(pat.rows.size)[:, None]
            labels = np.minimum((cum < u).sum(axis=1), resp.shape[1] - 1)
            fill = pat.xhat[labels, np.arange(pat.rows.size)][:, pat.miss]
            for k in np.unique(labels):
                sel = labels == k
                fill[sel] += _normal_noise(rng, pat.cond[k], int(sel.sum()))
        X[np.ix_(pat.rows, pat.miss)] = fill
    return X
