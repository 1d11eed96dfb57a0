"""Sequences in a table read a piece at a time: pieces regrouped into whole sequences.

A table source of sequences knows every sequence's length (from a column of sequence ids, or
given).  Its pieces as the engine sees them hold whole sequences only: the rows of a sequence
that runs past the end of a file's piece are carried into the next one, so the forward-backward
pass of each sequence sees all of its rows, and the statistics (additive over sequences) equal
those of the same sequences in memory.  Only the rows of the sequence that crosses a piece
boundary are held beyond one piece.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.engine.data import SequenceData, sample_sequences


class SequenceIdError(ValueError):
    """A column of sequence ids does not cut the rows into consecutive runs, one per sequence."""


@dataclass(frozen=True)
class SequenceCut:
    """The whole sequences ``[first, stop)`` completed by piece ``last`` of the file(s)
    (their rows began in piece ``begins``)."""

    begins: int
    last: int
    first: int
    stop: int


def run_lengths(ids: Iterable[np.ndarray], column: str, where: Sequence[str]) -> np.ndarray:
    """The lengths of the runs of equal ids, in order, over the pieces' id arrays (a run may
    continue from one piece into the next); an id met again after another one is an error,
    as is a missing id.  ``where`` names the pieces."""
    run_ids: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    last: Any = None
    for label, values in zip(where, ids, strict=True):
        values = np.asarray(values)
        if values.size == 0:
            continue
        if has_missing(values):
            raise SequenceIdError(
                f"the sequence column {column!r} of {label} has missing values: every row "
                "needs the id of its sequence"
            )
        firsts, counts = runs_of(values)
        if run_ids and firsts[0] == last:  # the previous piece's last sequence goes on
            lengths[-1] = lengths[-1].copy()
            lengths[-1][-1] += counts[0]
            firsts, counts = firsts[1:], counts[1:]
        if counts.size:
            run_ids.append(firsts)
            lengths.append(counts)
            last = firsts[-1]
    if not lengths:
        raise SequenceIdError("the table has no rows")
    every = np.concatenate(run_ids)
    check_runs_unique(every, column)
    return np.concatenate(lengths).astype(np.int64)


def runs_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first value and the length (int64) of every run of equal consecutive values."""
    values = np.asarray(values)
    if values.size == 0:
        return values, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    return values[starts], np.diff(np.append(starts, values.size)).astype(np.int64)


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def has_missing(values: np.ndarray) -> bool:
    if values.dtype.kind == "f":
        return bool(np.isnan(values).any())
    if values.dtype == object:
        return any(v is None or (isinstance(v, float) and v != v) for v in values)
    return False


def check_runs_unique(run_ids: np.ndarray, column: str) -> None:
    order = np.argsort(run_ids, kind="stable")
    ordered = run_ids[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeated.size:
        value = ordered[repeated[0]]
        runs = int(np.sum(run_ids == value))
        value = plain(value)
        raise SequenceIdError(
            f"sequence {value!r} of column {column!r} appears in {runs} separate runs of rows: "
            f"the rows of a sequence must be consecutive (sort the table by {column!r}, keeping "
            "the order of the rows within each sequence)"
        )


def sequence_cuts(piece_rows: Sequence[int], lengths: np.ndarray) -> tuple[SequenceCut, ...]:
    """Where the whole sequences end: after each piece, the sequences completed by its rows
    (pieces that complete none are merged into the next)."""
    ends = np.cumsum(np.asarray(piece_rows, dtype=np.int64))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if ends.size == 0 or ends[-1] != offsets[-1]:
        raise ValueError(
            f"the sequences' lengths add up to {int(offsets[-1])} rows, the table has "
            f"{int(ends[-1]) if ends.size else 0}"
        )
    done = np.searchsorted(offsets[1:], ends, side="right")  # sequences complete after piece i
    cuts, first = [], 0
    for i, stop in enumerate(done.tolist()):
        if stop > first:
            begins = int(np.searchsorted(ends, offsets[first], side="right"))
            cuts.append(SequenceCut(begins, i, first, stop))
            first = stop
    return tuple(cuts)


def whole_sequences(
    pieces: Iterable[Any], lengths: np.ndarray, cuts: Sequence[SequenceCut]
) -> Iterator[SequenceData]:
    """The rows of ``pieces`` (in-memory pieces, in order) regrouped by ``cuts`` into whole
    sequences of ``lengths``, each with unit weights."""
    by_piece = {cut.last: cut for cut in cuts}
    held: list[np.ndarray] = []
    for i, piece in enumerate(pieces):
        held.append(piece.X)
        cut = by_piece.get(i)
        if cut is None:
            continue
        rows = held[0] if len(held) == 1 else np.concatenate(held)
        n = int(lengths[cut.first : cut.stop].sum())
        own = lengths[cut.first : cut.stop]
        yield SequenceData(rows[:n], own, np.ones(own.size))
        held = [rows[n:]] if rows.shape[0] > n else []


def head_sequences(pieces: Iterable[SequenceData], max_rows: int) -> SequenceData:
    """The first whole sequences that hold at most ``max_rows`` rows (at least one)."""
    parts: list[SequenceData] = []
    count = 0
    for piece in pieces:
        offsets = piece.offsets
        keep = max(int(np.searchsorted(offsets[1:], max_rows - count, side="right")),
                   0 if parts else 1)
        if keep:
            parts.append(piece.subset(np.arange(keep)))
            count += int(offsets[keep])
        if keep < piece.n_sequences:
            break
    return _joined(parts)


def sample_sequence_pieces(
    pieces: Iterable[SequenceData], lengths: np.ndarray, max_rows: int, rng: np.random.Generator
) -> SequenceData:
    """The sequences ``SequenceData.sample(max_rows, rng)`` of all of them would keep (the
    same draws from ``rng``), picked in one pass over the pieces of whole sequences."""
    chosen = sample_sequences(lengths, max_rows, rng)
    parts, first = [], 0
    for piece in pieces:
        stop = first + piece.n_sequences
        if chosen is None:
            parts.append(piece)
        else:
            a, b = np.searchsorted(chosen, [first, stop])
            if b > a:
                parts.append(piece.subset(chosen[a:b] - first))
        first = stop
    return _joined(parts)


def _joined(parts: Sequence[SequenceData]) -> SequenceData:
    if len(parts) == 1:
        return parts[0]
    return SequenceData(
        np.concatenate([p.X for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.sequence_weights for p in parts]),
    )
