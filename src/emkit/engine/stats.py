"""Additive sufficient statistics.

An E-step returns a value ``s`` of a subclass of :class:`Stats`.  Statistics of two batches
add: ``e_step(a) + e_step(b) == e_step(a ∪ b)``, and scale: ``c * s``.  Every subclass is a
frozen dataclass whose fields are floats, numpy arrays, or tuples of those (nested freely, e.g.
one entry per column block of a product family); ``loglik`` (the weighted sum of
log-likelihoods of the batch under the parameters that produced it) and ``weight`` (the total
sample weight of the batch) are always present.

A field that is a *set* rather than a sum (the distinct missingness patterns seen, …) declares
its merge rule, ``field(metadata={"merge": ROW_SET})`` (:func:`row_set`): ``+`` merges it, its
zero is the empty set, and since a merge is idempotent (``a ⊕ a = a``) scaling leaves it
unchanged; :meth:`Stats.allclose` compares it exactly.  Every other field is summed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

import numpy as np


@dataclass(frozen=True)
class Merge:
    """A declared, idempotent merge of one field: ``a ⊕ b = add(a, b)``, identity ``zero(a)``."""

    add: Callable[[Any, Any], Any]
    zero: Callable[[Any], Any]


def union_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct rows of ``a`` and ``b`` (2-D, same width): a set union."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"row sets of widths {a.shape[1:]} and {b.shape[1:]} cannot be merged")
    return unique_rows(np.concatenate([a, b]))


def unique_rows(rows: np.ndarray) -> np.ndarray:
    """The sorted distinct rows of a 2-D array (the canonical form of a row set)."""
    return rows if rows.shape[0] == 0 else np.unique(rows, axis=0)


def empty_rows(a: np.ndarray) -> np.ndarray:
    """The empty row set of ``a``'s width and dtype."""
    return a[:0].copy()


ROW_SET = Merge(add=union_rows, zero=empty_rows)


def row_set() -> Any:
    """A dataclass field holding a set of rows (sorted distinct rows of a 2-D array)."""
    return field(metadata={"merge": ROW_SET})


@dataclass(frozen=True)
class Stats:
    """Base of every additive statistic: ``Σ_batches`` is ``+``; ``c·s`` scales every field
    (a declared set field is merged by ``+`` and left unchanged by ``c·s``)."""

    loglik: float
    weight: float

    def _map(self, other: Any, op, merge_op) -> Self:
        values = {}
        for f in fields(self):
            a = getattr(self, f.name)
            b = getattr(other, f.name) if isinstance(other, Stats) else other
            merge = f.metadata.get("merge")
            values[f.name] = _combine(a, b, op) if merge is None else merge_op(merge, a, b)
        return type(self)(**values)

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return self._map(other, np.add, lambda m, a, b: m.add(a, b))

    def __radd__(self, other: Any) -> Self:
        # lets ``sum(stats_list)`` start from the integer 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, scale: float) -> Self:
        return self._map(float(scale), np.multiply, lambda m, a, _: a)

    __rmul__ = __mul__

    def zeros_like(self) -> Self:
        """The additive zero of this statistic's type and shapes (empty sets for set fields)."""
        return self._map(
            0.0, lambda a, _: np.zeros_like(a) if np.ndim(a) else 0.0, lambda m, a, _: m.zero(a)
        )

    def allclose(self, other: Self, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        """Field-wise comparison (used by the contract tests); set fields must be equal."""
        if type(other) is not type(self):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.metadata.get("merge") is not None:
                if not np.array_equal(a, b):
                    return False
                continue
            pairs = zip(leaves(a), leaves(b), strict=True)
            if not all(np.allclose(x, y, rtol=rtol, atol=atol) for x, y in pairs):
                return False
        return True

    def with_loglik(self, loglik: float) -> Self:
        return replace(self, loglik=loglik)


def sum_in_order(parts: Iterable[Any]) -> Any:
    """The sum of the statistics ``parts``, left to right (None, a piece without rows, is
    skipped): the one fixed order in which the engine adds batches, runs and pieces."""
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else total + part
    if total is None:
        raise ValueError("the data set has no rows")
    return total


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
