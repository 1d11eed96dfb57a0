"""Sources of sequences (hidden Markov models): a column of sequence ids, or given lengths, cuts
a Parquet, CSV or Dask table into whole sequences; the pieces the engine reads hold whole
sequences (a sequence crossing row groups or files is carried into the next piece), so the fit
equals the in-memory fit of ``(X, lengths)`` (the registry's items 5 check every HMM case)."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import emkit
from emkit.engine.data import SequenceData
from emkit.engine.sources import DataSourceError
from emkit.engine.table_sequences import SequenceIdError, run_lengths, sequence_cuts

LENGTHS = np.array([50, 37, 13, 160, 40, 90, 10, 1, 99])  # one sequence spans four row groups


def sequences(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.integers(0, 3, size=LENGTHS.sum() // 10 + 1), 10)[: LENGTHS.sum()]
    return rng.normal(size=(LENGTHS.sum(), 2)) + 3.0 * level[:, None]


def write(X: np.ndarray, ids: np.ndarray, folder: Path, files: int = 2, group: int = 41) -> Path:
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), files)):
        table = pa.table({"a": X[rows, 0], "id": ids[rows], "b": X[rows, 1]})
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=group)
    return folder


def hmm(**overrides) -> emkit.GaussianHMM:
    return emkit.GaussianHMM(**{"n_states": 3, "random_state": 2, "max_iter": 6, "tol": 0.0,
                                **overrides})


def fitted(data, *lengths) -> emkit.GaussianHMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hmm().fit(data, *lengths)


def assert_same_fit(a, b) -> None:
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-11)


def ids_of(lengths: np.ndarray, labels: bool = False) -> np.ndarray:
    ids = np.repeat(np.arange(lengths.size) * 5 + 2, lengths)
    return np.array([f"run-{i}" for i in ids], dtype=object) if labels else ids


def test_runs_of_ids_continue_across_pieces_and_must_not_repeat() -> None:
    where = ["p0", "p1", "p2"]
    pieces = [np.array([4, 4, 7]), np.array([7, 7, 7]), np.array([7, 1, 1, 9])]
    np.testing.assert_array_equal(run_lengths(pieces, "id", where), [2, 5, 2, 1])
    with pytest.raises(SequenceIdError, match=r"sequence 4 of column 'id' appears in 2 sep"):
        run_lengths([np.array([4, 4, 7]), np.array([4])], "id", where[:2])
    with pytest.raises(SequenceIdError, match="'id' of p1 has missing values"):
        run_lengths([np.array([1.0]), np.array([2.0, np.nan])], "id", where[:2])


def test_cuts_end_at_the_last_whole_sequence_of_each_piece() -> None:
    # pieces of 4, 4, 4 rows; sequences of 3, 6, 3: the second piece completes none
    cuts = sequence_cuts([4, 4, 4], np.array([3, 6, 3]))
    assert [(c.begins, c.last, c.first, c.stop) for c in cuts] == [(0, 0, 0, 1), (0, 2, 1, 3)]


@pytest.mark.parametrize("labels", [False, True])
def test_parquet_and_csv_of_sequences_fit_as_in_memory(tmp_path: Path, labels: bool) -> None:
    X = sequences(1)
    ids = ids_of(LENGTHS, labels)
    parquet = emkit.ParquetData(write(X, ids, tmp_path / "parts"), sequence="id")
    csv = tmp_path / "rows.csv"
    pd.DataFrame({"a": X[:, 0], "id": ids, "b": X[:, 1]}).to_csv(csv, index=False)
    emkit.engine.sources.CSV_BLOCK_BYTES, block = 2**10, emkit.engine.sources.CSV_BLOCK_BYTES
    try:
        text = emkit.CSVData(csv, sequence="id")
        assert len(text.piece_list) > 3  # blocks that cut sequences
        in_memory = fitted(X, LENGTHS)
        for source in (parquet, text):
            assert source.columns == ("a", "b")
            np.testing.assert_array_equal(source.lengths, LENGTHS)
            pieces = list(source.pieces())
            assert all(isinstance(p, SequenceData) for p in pieces)
            np.testing.assert_array_equal(np.concatenate([p.X for p in pieces]), X)
            np.testing.assert_array_equal(np.concatenate([p.lengths for p in pieces]), LENGTHS)
            from_disk = fitted(source)
            assert_same_fit(from_disk, in_memory)
            assert list(from_disk.feature_names_in_) == ["a", "b"]
    finally:
        emkit.engine.sources.CSV_BLOCK_BYTES = block


def test_the_sample_and_head_are_whole_sequences_as_in_memory(tmp_path: Path) -> None:
    X = sequences(2)
    source = emkit.ParquetData(write(X, ids_of(LENGTHS), tmp_path / "d"), sequence="id")
    in_memory = SequenceData.of(X, LENGTHS)
    a = source.sample(200, np.random.default_rng(9))
    b = in_memory.sample(200, np.random.default_rng(9))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    head = source.head(120)
    np.testing.assert_array_equal(head.lengths, [50, 37, 13])
    assert source.head(10).lengths.tolist() == [50]  # at least one sequence


def test_lengths_may_be_given_instead_of_a_column(tmp_path: Path) -> None:
    X = sequences(3)
    folder = write(X, ids_of(LENGTHS), tmp_path / "d")
    source = emkit.ParquetData(folder, columns=["a", "b"], lengths=LENGTHS)
    assert_same_fit(fitted(source), fitted(X, LENGTHS))
    with pytest.raises(DataSourceError, match="lengths sum to 499 but X has 500 rows"):
        emkit.ParquetData(folder, columns=["a", "b"], lengths=LENGTHS - np.eye(9)[0])


def test_online_steps_on_pieces_of_whole_sequences(tmp_path: Path) -> None:
    X = sequences(4)
    source = emkit.ParquetData(write(X, ids_of(LENGTHS), tmp_path / "d"), sequence="id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        online = hmm().fit_stream(source)
    assert online.n_iter_ == len(source.cuts) < len(source.piece_list)
    assert np.all(np.isfinite(online.means_))


def test_sequence_sources_refuse_what_does_not_make_sequences(tmp_path: Path) -> None:
    X = sequences(5)
    ids = ids_of(LENGTHS)
    folder = write(X, ids, tmp_path / "ok")
    shuffled = ids.copy()
    shuffled[[3, 300]] = shuffled[[300, 3]]
    with pytest.raises(DataSourceError, match=r"bad: sequence 2 of column 'id' appears in 3 "):
        emkit.ParquetData(write(X, shuffled, tmp_path / "bad"), sequence="id")
    with pytest.raises(DataSourceError, match="has no sequence column 'seq'"):
        emkit.ParquetData(folder, sequence="seq")
    with pytest.raises(DataSourceError, match="'id' is the sequence column of .* cannot also"):
        emkit.ParquetData(folder, columns=["a", "id"], sequence="id")
    with pytest.raises(DataSourceError, match="the sequence column or the lengths, not both"):
        emkit.ParquetData(folder, sequence="id", lengths=LENGTHS)
    with pytest.raises(ValueError, match=r"^GaussianMixture fits rows, but the source cuts"):
        emkit.GaussianMixture(2).fit(emkit.ParquetData(folder, sequence="id"))
    with pytest.raises(ValueError, match=r"^an HMM fits sequences"):
        hmm().fit_stream(emkit.ParquetData(folder))


def test_dask_partitions_of_whole_sequences_fit_as_in_memory() -> None:
    X = sequences(6)
    in_memory = fitted(X, LENGTHS)
    ends = [0, 3, 6, 9]  # sequences per partition: 3, 3, 3
    chunks = tuple(int(LENGTHS[a:b].sum()) for a, b in zip(ends[:-1], ends[1:], strict=True))
    frame = pd.DataFrame({"a": X[:, 0], "id": ids_of(LENGTHS, labels=True), "b": X[:, 1]})
    starts = np.concatenate([[0], np.cumsum(chunks)])
    parts = [dd.from_pandas(frame.iloc[a:b], npartitions=1)
             for a, b in zip(starts[:-1], starts[1:], strict=True)]
    with dask.config.set(scheduler="sync"):
        from_array = emkit.DaskData(da.from_array(X, chunks=(chunks, 2)), lengths=LENGTHS)
        from_frame = emkit.DaskData(dd.concat(parts), sequence="id")
        assert from_frame.columns == ("a", "b")
        for source in (from_array, from_frame):
            assert_same_fit(fitted(source), in_memory)


def test_dask_sequences_must_lie_within_a_partition() -> None:
    X = sequences(7)
    with pytest.raises(DataSourceError, match=r"partition 0 ends at row 119, within sequence 3 "
                                              r"\(rows 100 to 259\)"):
        emkit.DaskData(da.from_array(X, chunks=(120, 2)), lengths=LENGTHS)
    frame = pd.DataFrame({"id": ids_of(LENGTHS), "a": X[:, 0]})
    with dask.config.set(scheduler="sync"), pytest.raises(
        DataSourceError, match=r"sequence \d+ of column 'id' continues .* into Dask partition 1"
    ):
        emkit.DaskData(dd.from_pandas(frame, chunksize=120, sort=False), sequence="id")
    with pytest.raises(DataSourceError, match="a Dask array has no columns .* lengths="):
        emkit.DaskData(da.from_array(X, chunks=(120, 2)), sequence="id")
