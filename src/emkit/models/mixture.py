"""Finite mixture of any family: ``p(x) = Σ_k π_k f(x | θ_k)`` as an engine model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emkit.engine.protocol import INIT_SAMPLE_ROWS, ArrayData, Batch
from emkit.engine.sketch import N_BINS, log_density_sketch
from emkit.engine.stats import Stats
from emkit.families._mixture_kernels import argmax_rows, log_softmax_rows
from emkit.families.base import Family, floored_counts
from emkit.families.missing_cells import fill_missing_cells
from emkit.models.learn import MixtureLearn
from emkit.models.partitions import (
    PARTITIONS,
    StartingPartition,
    hard_responsibilities,
    starting_partition,
)

MIXTURE_INITS = tuple(PARTITIONS)  # "k-means++", "kmeans", "random", "random_from_data"


class ComponentCollapseWarning(UserWarning):
    """A component lost all its weight and was re-seeded (``Family.reseed``)."""


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
    """``n_k = Σ w r_nk``, the family's sums (a tuple of arrays) and the sketch of the rows'
    log-densities (:mod:`emkit.engine.sketch`: the outlier table of the fitted model)."""

    nk: np.ndarray
    sums: tuple
    log_densities: np.ndarray


@dataclass(frozen=True, eq=False)
class PreparedMixture:
    """What every batch's E-step needs from :class:`MixtureParams`, once per E-step."""

    params: MixtureParams
    log_weights: np.ndarray
    components: Any  # the family's ``prepare(params.components)``


@dataclass(frozen=True, eq=False)
class FamilyMixture:
    """The engine model of a K-component mixture of ``family``."""

    family: Family
    n_components: int
    init_method: StartingPartition = PARTITIONS["k-means++"]  # or its name
    collapse_fraction: float = 1e-10
    n_features: int = 1  # sizes the E-step chunks
    learn: MixtureLearn = MixtureLearn()
    held: frozenset[str] = field(init=False, default=frozenset())  # the groups ``learn`` holds

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_method", starting_partition(self.init_method))
        object.__setattr__(self, "held", self.learn.held_groups(self.family))

    def prepare(self, params: MixtureParams) -> PreparedMixture:
        return PreparedMixture(
            params, np.log(params.weights), self.family.prepare(params.components)
        )

    def component_log_prob(self, params: MixtureParams, X: np.ndarray) -> np.ndarray:
        """``log π_k + log f(x_n | θ_k)``, shape ``(n, K)``."""
        logp = self.family.log_prob(params.components, X)
        logp += np.log(params.weights)
        return logp

    def log_joint(self, prepared: PreparedMixture, X: np.ndarray) -> np.ndarray:
        """``log π_k + log f(x_n | θ_k)``, shape ``(n, K)`` (the family's fused kernels)."""
        return self.family.mixture_log_joint(prepared.components, prepared.log_weights, X)

    def labels(self, prepared: PreparedMixture, X: np.ndarray) -> np.ndarray:
        """``argmax_k log π_k + log f(x_n | θ_k)``: the most probable component (no softmax)."""
        return argmax_rows(self.log_joint(prepared, X))

    def log_resp(self, prepared: PreparedMixture, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-responsibilities ``(n, K)`` and row log-densities ``log p(x_n)``."""
        return log_softmax_rows(self.log_joint(prepared, X))

    def e_step(self, prepared: PreparedMixture, batch: Batch) -> MixtureStats:
        row_ll, nk, sums = self.family.mixture_chunk(
            prepared.components, prepared.log_weights, batch.X, batch.weights
        )
        return MixtureStats(
            loglik=float(batch.weights @ row_ll),
            weight=float(batch.weights.sum()),
            nk=nk,
            sums=sums,
            log_densities=log_density_sketch(row_ll, batch.weights),
        )

    def m_step(self, stats: MixtureStats, params: MixtureParams | None = None) -> MixtureParams:
        """The family's M-step on the sums; a component whose weight vanished (``n_k`` below
        ``collapse_fraction`` of the total) is re-seeded by the family (``Family.reseed``).
        Parameters held by ``learn`` keep the values of ``params`` (all are estimated at a
        start, ``params=None``)."""
        nk = floored_counts(stats.nk)  # relative: the fit does not depend on the weights' scale
        if params is not None and not self.learn.everything:
            return self._m_step_holding(stats, nk, params)
        components = self.family.m_step(stats.sums, nk, params.components if params else None)
        weights = nk / nk.sum()
        dead = np.flatnonzero(stats.nk <= self.collapse_fraction * stats.nk.sum())
        if dead.size and dead.size < nk.size:
            weights, components, how = self.family.reseed(components, weights, dead)
            warnings.warn(
                f"component(s) {dead.tolist()} of the {self.family.name} mixture lost all their "
                f"weight and were {how}; consider fewer components",
                ComponentCollapseWarning,
                stacklevel=3,
            )
        return MixtureParams(weights, components)

    def _m_step_holding(
        self, stats: MixtureStats, nk: np.ndarray, params: MixtureParams
    ) -> MixtureParams:
        """The conditional maximiser over the free parameters (no re-seeding: a held part
        stays as given)."""
        weights = nk / nk.sum() if self.learn.weights else params.weights
        components = params.components
        if self.held:
            components = self.family.m_step_holding(stats.sums, nk, components, self.held)
        elif self.learn.components:
            components = self.family.m_step(stats.sums, nk, components)
        return MixtureParams(weights, components)

    def n_free_parameters(self, params: MixtureParams) -> int:
        """Parameters EM estimates (BIC's count): the weights' ``K − 1`` and the family's, less
        those ``learn`` holds."""
        K = params.n_components
        count = (K - 1) * self.learn.weights
        if self.learn.components:
            count += self.family.n_parameters(params.components)
            count -= self.family.n_held_parameters(params.components, self.held)
        return int(count)

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
        weights = weights / weights.sum() if self.learn.weights else like.weights
        components = like.components
        if self.learn.components:
            components = self.family.unflatten(vector[K:], like.components)
            if self.held:
                components = self.family.hold(components, like.components, self.held)
        return MixtureParams(weights, components)

    # --- initialisation -----------------------------------------------------------------------
    def init(self, data: ArrayData, rng: np.random.Generator) -> MixtureParams:
        """One M-step on the starting partition ``init_method`` (a partition object of
        :mod:`~emkit.models.partitions`) of a sample of at most ``INIT_SAMPLE_ROWS`` rows
        (``data.sample``): of those with every cell observed, or, if they are too few (under
        ``max(2K, D + 1)``), of all of them with missing cells at their column's median."""
        data = _complete_rows(data.sample(INIT_SAMPLE_ROWS, rng), self.n_components)
        method = self.init_method
        features = self.family.init_features(data.X) if method.uses_features else None
        R = method.responsibilities(features, data.weights, self.n_components, rng, data.n_rows)
        return self.from_resp(data, R)

    def from_means(
        self, data: ArrayData, means: np.ndarray, rng: np.random.Generator
    ) -> MixtureParams:
        """One M-step on the partition of every row of a sample (``data.sample``, at most
        ``INIT_SAMPLE_ROWS``) to its nearest mean (in the family's ``init_features``; missing
        cells at their column's median)."""
        from sklearn.metrics import pairwise_distances_argmin

        data = data.sample(INIT_SAMPLE_ROWS, rng)
        data = ArrayData(fill_missing_cells(data.X), data.weights)
        features = self.family.init_features(data.X)
        labels = pairwise_distances_argmin(features, np.asarray(means, dtype=features.dtype))
        R = hard_responsibilities(labels, data.n_rows, self.n_components, 0.0)
        return self.from_resp(data, R)

    def from_resp(self, data: ArrayData, resp: np.ndarray) -> MixtureParams:
        """One M-step on responsibilities ``resp`` (rows sum to one) of rows without NaN."""
        R = resp * data.weights[:, None]
        stats = MixtureStats(
            loglik=0.0,
            weight=float(data.weights.sum()),
            nk=R.sum(axis=0),
            sums=self.family.accumulate(None, data.X, R),
            log_densities=np.zeros(N_BINS),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ComponentCollapseWarning)
            return self.m_step(stats)


def _complete_rows(data: ArrayData, K: int) -> ArrayData:
    """The rows a start is computed on: complete rows with positive weight, if enough."""
    X = data.X
    if X.dtype.kind != "f" or not np.isnan(X).any():
        return data
    complete = ~np.isnan(X).any(axis=1) & (data.weights > 0)
    if np.count_nonzero(complete) >= max(2 * K, X.shape[1] + 1):
        return data.take(complete)
    return ArrayData(fill_missing_cells(X), data.weights)
