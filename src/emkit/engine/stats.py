"""Additive sufficient statistics.

An E-step returns a value ``s`` of a subclass of :class:`Stats`.  Statistics of two batches
add: ``e_step(a) + e_step(b) == e_step(a ∪ b)``, and scale: ``c * s``.  Every subclass is a
frozen dataclass whose fields are floats or numpy arrays; ``loglik`` (the weighted sum of
log-likelihoods of the batch under the parameters that produced it) and ``weight`` (the total
sample weight of the batch) are always present.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Self

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Base of every additive statistic: ``Σ_batches`` is ``+``; ``c·s`` scales every field."""

    loglik: float
    weight: float

    def _map(self, other: Any, op) -> Self:
        values = {}
        for f in fields(self):
            a = getattr(self, f.name)
            b = getattr(other, f.name) if isinstance(other, Stats) else other
            values[f.name] = op(a, b)
        return type(self)(**values)

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return self._map(other, np.add)

    def __radd__(self, other: Any) -> Self:
        # lets ``sum(stats_list)`` start from the integer 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, scale: float) -> Self:
        return self._map(float(scale), np.multiply)

    __rmul__ = __mul__

    def zeros_like(self) -> Self:
        """The additive zero of this statistic's type and shapes."""
        return self._map(0.0, lambda a, _: np.zeros_like(a) if np.ndim(a) else 0.0)

    def allclose(self, other: Self, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        """Field-wise comparison (used by the contract tests)."""
        return type(other) is type(self) and all(
            np.allclose(getattr(self, f.name), getattr(other, f.name), rtol=rtol, atol=atol)
            for f in fields(self)
        )

    def with_loglik(self, loglik: float) -> Self:
        return replace(self, loglik=loglik)
