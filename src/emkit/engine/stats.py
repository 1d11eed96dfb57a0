"""Additive sufficient statistics.

An E-step returns a value ``s`` of a subclass of :class:`Stats`.  Statistics of two batches
add: ``e_step(a) + e_step(b) == e_step(a ∪ b)``, and scale: ``c * s``.  Every subclass is a
frozen dataclass whose fields are floats, numpy arrays, or tuples of those (nested freely, e.g.
one entry per column block of a product family); ``loglik`` (the weighted sum of
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
            values[f.name] = _combine(a, b, op)
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
        if type(other) is not type(self):
            return False
        pairs = zip(leaves(self), leaves(other), strict=True)
        return all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in pairs)

    def with_loglik(self, loglik: float) -> Self:
        return replace(self, loglik=loglik)


def add_leaves(a: Any, b: Any) -> Any:
    """``a + b`` leaf by leaf through nested tuples of arrays (a family's sums, by chunks)."""
    return _combine(a, b, np.add)


def _combine(a: Any, b: Any, op) -> Any:
    """``op`` applied leaf by leaf through nested tuples (``b`` may be a scalar)."""
    if isinstance(a, tuple):
        if isinstance(b, tuple):
            if len(a) != len(b):
                raise ValueError("statistics of different structure cannot be combined")
            return tuple(_combine(x, y, op) for x, y in zip(a, b, strict=True))
        return tuple(_combine(x, b, op) for x in a)
    return op(a, b)


def leaves(value: Any) -> list:
    """The arrays and floats inside a statistic (or nested tuple), in a fixed order."""
    if isinstance(value, Stats):
        return [leaf for f in fields(value) for leaf in leaves(getattr(value, f.name))]
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]
