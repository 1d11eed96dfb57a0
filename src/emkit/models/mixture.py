"""Finite mixture of any family: ``p(x) = Σ_k π_k f(x | θ_k)`` as an engine model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.engine.protocol import ArrayData, Batch
from emkit.engine.stats import Stats
from emkit.families._mixture_kernels import normalize_rows
from emkit.families.base import Family, floored_counts
from emkit.families.missing_cells import fill_missing_cells
from emkit.models.gaussian_mixture import ComponentCollapseWarning

MIXTURE_INITS = ("k-means++", "random", "random_from_data")


def starting_responsibilities(
    features: np.ndarray | None,
    weights: np.ndarray,
    K: int,
    method: str,
    rng: np.random.Generator,
    n_rows: int,
    spread: float = 0.0,
) -> np.ndarray:
    """Responsibilities ``(n, K)`` of a starting partition, rows summing to one.

    ``"k-means++"``: k-means++ seeds on ``features``, every row to its nearest seed;
    ``"random_from_data"``: random rows as seeds; ``"random"``: uniform random responsibilities.
    ``spread`` moves that share of each row's weight evenly over all K (a soft partition).
    """
    if method == "random":
        R = rng.uniform(size=(n_rows, K))
        return R / R.sum(axis=1, keepdims=True)
    if method == "k-means++":
        from sklearn.cluster import kmeans_plusplus

        seed = int(rng.integers(2**31 - 1))
        centers, _ = kmeans_plusplus(features, K, sample_weight=weights, random_state=seed)
    elif method == "random_from_data":
        centers = features[rng.choice(np.flatnonzero(weights > 0), size=K, replace=False)]
    else:
        raise ValueError(f"init_params must be one of {MIXTURE_INITS}, got {method!r}")
    from sklearn.metrics import pairwise_distances_argmin

    labels = pairwise_distances_argmin(features, centers)
    R = np.full((n_rows, K), spread / K)
    R[np.arange(n_rows), labels] += 1.0 - spread
    return R


@dataclass(frozen=True, eq=False)
class MixtureParams:
    """Mixing weights ``(K,)`` and the family's parameters of the K components."""

    weights: np.ndarray
    components: Any

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]


@dataclass(frozen=True)
class MixtureStats(Stats):
    """``n_k = Σ w r_nk`` and the family's sums (a tuple of arrays)."""

    nk: np.ndarray
    sums: tuple


@dataclass(frozen=True, eq=False)
class FamilyMixture:
    """The engine model of a K-component mixture of ``family``."""

    family: Family
    n_components: int
    init_method: str = "k-means++"
    collapse_fraction: float = 1e-10
    n_features: int = 1  # sizes the E-step chunks

    def component_log_prob(self, params: MixtureParams, X: np.ndarray) -> np.ndarray:
        """``log π_k + log f(x_n | θ_k)``, shape ``(n, K)``."""
        logp = self.family.log_prob(params.components, X)
        logp += np.log(params.weights)
        return logp

    def e_step(self, params: MixtureParams, batch: Batch) -> MixtureStats:
        logp = np.ascontiguousarray(self.component_log_prob(params, batch.X), dtype=np.float64)
        row_ll = np.empty(batch.n_rows)
        normalize_rows(logp, batch.weights, row_ll)  # logp becomes R = w·r
        return MixtureStats(
            loglik=float(batch.weights @ row_ll),
            weight=float(batch.weights.sum()),
            nk=logp.sum(axis=0),
            sums=self.family.accumulate(params.components, batch.X, logp),
        )

    def m_step(self, stats: MixtureStats, params: MixtureParams | None = None) -> MixtureParams:
        nk = floored_counts(stats.nk)  # relative: the fit does not depend on the weights' scale
        components = self.family.m_step(stats.sums, nk, params.components if params else None)
        weights = nk / nk.sum()
        dead = np.flatnonzero(stats.nk <= self.collapse_fraction * stats.nk.sum())
        if dead.size and dead.size < nk.size:
            # an empty component keeps finite parameters (a copy of the heaviest) and ~0 weight
            index = np.arange(nk.size)
            index[dead] = int(np.argmax(stats.nk))
            components = self.family.take(components, index)
            warnings.warn(
                f"component(s) {dead.tolist()} of the {self.family.name} mixture lost all their "
                "weight; consider fewer components",
                ComponentCollapseWarning,
                stacklevel=3,
            )
        return MixtureParams(weights, components)

    def log_prior(self, params: MixtureParams) -> float:
        return float(self.family.log_prior(params.components))

    def row_bytes(self, params: MixtureParams) -> int:
        return self.family.row_bytes(self.n_components, self.n_features) + 24 * self.n_components

    # --- SQUAREM coordinates ------------------------------------------------------------------
    def flatten(self, params: MixtureParams) -> np.ndarray:
        return np.concatenate([np.log(params.weights), self.family.flatten(params.components)])

    def unflatten(self, vector: np.ndarray, like: MixtureParams) -> MixtureParams:
        K = like.n_components
        logw = vector[:K]
        weights = np.exp(logw - logw.max())
        return MixtureParams(
            weights / weights.sum(), self.family.unflatten(vector[K:], like.components)
        )

    # --- initialisation -----------------------------------------------------------------------
    def init(self, data: ArrayData, rng: np.random.Generator) -> MixtureParams:
        """One M-step on a starting partition (see :func:`starting_responsibilities`)."""
        data = ArrayData(fill_missing_cells(data.X), data.weights)  # a start needs full rows
        features = self.family.init_features(data.X) if self.init_method != "random" else None
        R = starting_responsibilities(
            features, data.weights, self.n_components, self.init_method, rng, data.n_rows
        )
        return self.from_resp(data, R)

    def from_resp(self, data: ArrayData, resp: np.ndarray) -> MixtureParams:
        """One M-step on responsibilities ``resp`` (rows sum to one) of rows without NaN."""
        R = resp * data.weights[:, None]
        stats = MixtureStats(
            loglik=0.0,
            weight=float(data.weights.sum()),
            nk=R.sum(axis=0),
            sums=self.family.accumulate(None, data.X, R),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ComponentCollapseWarning)
            return self.m_step(stats)
