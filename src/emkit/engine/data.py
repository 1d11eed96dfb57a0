"""Sequence data for the engine: rows grouped into whole sequences (hidden Markov models).

A batch never splits a sequence: :meth:`SequenceData.batches` groups consecutive whole
sequences up to about ``max_rows`` rows (a longer sequence is a batch of its own), so the
engine's chunked, threaded E-step works unchanged for models whose statistics are additive
over sequences rather than rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


class LengthsError(ValueError):
    """``lengths`` do not describe a partition of the rows into non-empty sequences."""


def check_lengths(lengths: Any, n_rows: int | None) -> np.ndarray:
    """Validated ``lengths`` (positive integers summing to ``n_rows``) as an int64 array.

    ``None`` means one sequence of all the rows; ``n_rows=None`` skips the sum check.
    """
    if lengths is None:
        if n_rows is None or n_rows < 1:
            raise LengthsError("the data have no rows")
        return np.array([n_rows], dtype=np.int64)
    raw = np.asarray(lengths)
    if raw.ndim != 1:
        raise LengthsError(f"lengths must be a 1-D sequence of integers, got shape {raw.shape}")
    if raw.size == 0:
        raise LengthsError("lengths is empty: give the length of every sequence")
    if raw.dtype.kind not in "iuf":
        raise LengthsError(f"lengths must be integers, got {raw[:3].tolist()!r} ({raw.dtype})")
    if raw.dtype.kind == "f":
        integral = np.isfinite(raw) & (raw == np.round(raw))
        if not integral.all():
            i = int(np.flatnonzero(~integral)[0])
            raise LengthsError(f"lengths must be integers, got lengths[{i}] = {raw[i]!r}")
    if np.any(raw < 1):
        i = int(np.flatnonzero(raw < 1)[0])
        raise LengthsError(
            f"lengths[{i}] = {raw[i].item()}: every sequence needs at least one row "
            f"({int((raw < 1).sum())} such entr{'y' if (raw < 1).sum() == 1 else 'ies'})"
        )
    limit = float(2**62 if n_rows is None else n_rows)
    huge = raw.astype(np.float64) > limit  # before the cast to int64, which would wrap
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        rows = "too many rows" if n_rows is None else f"X has only {n_rows} rows"
        raise LengthsError(
            f"lengths[{i}] = {raw[i].item()} is longer than the data allow ({rows}): the "
            f"lengths of the {raw.size} sequence(s) must add up to the number of rows"
        )
    out = raw.astype(np.int64)
    total = int(out.sum(dtype=object))  # exact (Python integers): an int64 sum can wrap
    if total >= 2**62:
        raise LengthsError(f"lengths sum to {total}: too many rows for one data set")
    if n_rows is not None and total != n_rows:
        raise LengthsError(
            f"lengths sum to {total} but X has {n_rows} rows: the lengths of the "
            f"{out.size} sequence(s) must add up to the number of rows"
        )
    return out


def sequence_rows(lengths: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The row numbers of the sequences ``index`` (in that order) of sequences of ``lengths``."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return np.concatenate(
        [np.arange(offsets[i], offsets[i + 1]) for i in index] or [np.empty(0, np.int64)]
    )


def sample_sequences(
    lengths: np.ndarray, max_rows: int, rng: np.random.Generator
) -> np.ndarray | None:
    """The sequences (sorted indices) :meth:`SequenceData.sample` keeps: a random order, then
    every sequence while the rows add up to at most ``max_rows`` (the first always); None,
    without a draw from ``rng``, when all the rows fit."""
    if int(lengths.sum()) <= max_rows:
        return None
    order = rng.permutation(lengths.shape[0])
    within = np.cumsum(lengths[order]) <= max_rows
    within[0] = True
    return np.sort(order[within])


@dataclass(frozen=True)
class SequenceBatch:
    """Whole sequences: rows ``X``, ``offsets`` (``S + 1``, from 0) and one weight per sequence."""

    X: np.ndarray
    offsets: np.ndarray
    sequence_weights: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_sequences(self) -> int:
        return self.sequence_weights.shape[0]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def weights(self) -> np.ndarray:
        """The weight of every row (its sequence's weight)."""
        return np.repeat(self.sequence_weights, self.lengths)


@dataclass(frozen=True)
class SequenceData:
    """Rows ``X`` (n, D) cut into sequences of ``lengths``, with one weight per sequence.

    ``n_rows`` counts observations; the statistics' ``weight`` is ``Σ_s w_s T_s``.
    """

    X: np.ndarray
    lengths: np.ndarray
    sequence_weights: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, lengths: Any = None, weights: Any = None) -> SequenceData:
        """Checked construction: ``lengths`` must add up to the rows, weights be one per sequence,
        finite and non-negative."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features), got shape {X.shape}")
        lengths = check_lengths(lengths, X.shape[0])
        if weights is None:
            w = np.ones(lengths.size)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != lengths.shape:
                raise ValueError(
                    f"sample_weight needs one weight per sequence ({lengths.size}), "
                    f"got shape {w.shape}"
                )
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("sample_weight must be finite and non-negative")
            if not np.max(w) > 0:
                raise ValueError("sample_weight sums to zero: at least one sequence needs weight")
        return cls(X, lengths, w)

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def width(self) -> int:
        return self.X.shape[1]

    @property
    def n_sequences(self) -> int:
        return self.lengths.shape[0]

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def weights(self) -> np.ndarray:
        """The weight of every row (its sequence's weight)."""
        return np.repeat(self.sequence_weights, self.lengths)

    def subset(self, index: Any) -> SequenceData:
        """The sequences ``index`` (in that order) as a new data set."""
        index = np.asarray(index, dtype=np.int64).ravel()
        rows = sequence_rows(self.lengths, index)
        return SequenceData(self.X[rows], self.lengths[index], self.sequence_weights[index])

    def with_weights(self, weights: Any) -> SequenceData:
        """The same sequences with new per-sequence weights."""
        return SequenceData.of(self.X, self.lengths, weights)

    def sample(self, max_rows: int, rng: np.random.Generator) -> SequenceData:
        """Whole sequences drawn at random (kept in their order) up to about ``max_rows`` rows
        (at least one sequence); the data themselves when they have no more rows than that."""
        chosen = sample_sequences(self.lengths, max_rows, rng)
        return self if chosen is None else self.subset(chosen)

    def pieces(self) -> Iterator[SequenceData]:
        yield self

    def sum_pieces(self, step: Callable[[Any, Any], Any], prepared: Any) -> Any:
        """``step(prepared, self)``: the sequences are one piece, here."""
        return step(prepared, self)

    def batches(self, max_rows: int) -> Iterator[SequenceBatch]:
        """Consecutive whole sequences, at most ``max_rows`` rows per batch unless one sequence
        alone is longer (then it is a batch of its own)."""
        step = max(1, int(max_rows))
        offsets = self.offsets
        S = self.n_sequences
        first = 0
        while first < S:
            last = first + 1  # sequences [first, last)
            while last < S and offsets[last + 1] - offsets[first] <= step:
                last += 1
            a, b = offsets[first], offsets[last]
            yield SequenceBatch(
                self.X[a:b], offsets[first : last + 1] - a, self.sequence_weights[first:last]
            )
            first = last
