"""Starting partitions for mixtures and HMMs: ``init_params`` names become these objects.

A start is one M-step on responsibilities ``R`` (rows sum to one) of a starting partition.
Each method is a small object with ``responsibilities(features, weights, K, rng, spread)``;
``spread`` moves that share of each row's weight evenly over all K (a soft partition, which
HMMs use so that no transition starts at zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StartingPartition(Protocol):
    """``name`` (its ``init_params`` value), ``uses_features`` (False: the family's
    ``init_features`` are not computed) and the responsibilities ``(n, K)`` of the partition."""

    name: ClassVar[str]
    uses_features: ClassVar[bool]

    def responsibilities(
        self,
        features: np.ndarray | None,
        weights: np.ndarray,
        K: int,
        rng: np.random.Generator,
        n_rows: int,
        spread: float = 0.0,
    ) -> np.ndarray: ...


def hard_responsibilities(labels: np.ndarray, n_rows: int, K: int, spread: float) -> np.ndarray:
    """One-hot rows of ``labels`` with ``spread`` of each row shared evenly over the K."""
    R = np.full((n_rows, K), spread / K)
    R[np.arange(n_rows), labels] += 1.0 - spread
    return R


def _nearest(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances_argmin

    return pairwise_distances_argmin(features, np.asarray(centers, dtype=features.dtype))


@dataclass(frozen=True)
class KMeansPlusPlus:
    """k-means++ seeds (weighted), every row to its nearest seed."""

    name: ClassVar[str] = "k-means++"
    uses_features: ClassVar[bool] = True

    def responsibilities(self, features, weights, K, rng, n_rows, spread=0.0):
        from sklearn.cluster import kmeans_plusplus

        seed = int(rng.integers(2**31 - 1))
        centers, _ = kmeans_plusplus(features, K, sample_weight=weights, random_state=seed)
        return hard_responsibilities(_nearest(features, centers), n_rows, K, spread)


@dataclass(frozen=True)
class KMeansPartition:
    """The partition of one (weighted) k-means run."""

    name: ClassVar[str] = "kmeans"
    uses_features: ClassVar[bool] = True

    def responsibilities(self, features, weights, K, rng, n_rows, spread=0.0):
        from sklearn.cluster import KMeans

        seed = int(rng.integers(2**31 - 1))
        labels = KMeans(n_clusters=K, n_init=1, random_state=seed).fit(
            features, sample_weight=weights
        ).labels_
        return hard_responsibilities(labels, n_rows, K, spread)


@dataclass(frozen=True)
class RandomRows:
    """K distinct rows of positive weight as seeds, every row to its nearest seed."""

    name: ClassVar[str] = "random_from_data"
    uses_features: ClassVar[bool] = True

    def responsibilities(self, features, weights, K, rng, n_rows, spread=0.0):
        centers = features[rng.choice(np.flatnonzero(weights > 0), size=K, replace=False)]
        return hard_responsibilities(_nearest(features, centers), n_rows, K, spread)


@dataclass(frozen=True)
class RandomResponsibilities:
    """Uniform random responsibilities, normalised per row (``spread`` does not apply)."""

    name: ClassVar[str] = "random"
    uses_features: ClassVar[bool] = False

    def responsibilities(self, features, weights, K, rng, n_rows, spread=0.0):
        R = rng.uniform(size=(n_rows, K))
        return R / R.sum(axis=1, keepdims=True)


PARTITIONS: dict[str, StartingPartition] = {
    p.name: p for p in (KMeansPlusPlus(), KMeansPartition(), RandomResponsibilities(), RandomRows())
}


def starting_partition(spec: Any, allowed: tuple[str, ...] | None = None) -> StartingPartition:
    """The partition object of an ``init_params`` name (or the object itself); ``allowed``
    restricts the names (an HMM has no ``"kmeans"``)."""
    if isinstance(spec, StartingPartition) and not isinstance(spec, type):
        name = spec.name
    else:
        name = spec
    names = tuple(PARTITIONS) if allowed is None else allowed
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"init_params must be one of {names}, got {spec!r}")
    return spec if not isinstance(spec, str) else PARTITIONS[name]
