"""Out-of-core sources: Parquet datasets and CSV files read a piece at a time, their sample, their
errors (the registry's item 5 checks that fits from them equal in-memory fits)."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import emkit
from emkit.engine import ArrayData, expected_stats
from emkit.engine.sources import CSVData, DataSourceError, ParquetData, read_ahead
from emkit.estimators.missing import EmptyRowsWarning
from emkit.families.gaussian import Gaussian
from emkit.models.mixture import FamilyMixture


def rows(seed: int, n: int = 1000, d: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[: n // 2] += 4.0
    return X[rng.permutation(n)]


def write_parts(X: np.ndarray, folder: Path, n_files: int = 3, group: int = 97) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(X, n_files)):
        table = pa.table({f"c{j}": part[:, j] for j in range(X.shape[1])})
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=group)
    return folder


def test_parquet_folder_reads_every_row_in_order(tmp_path: Path) -> None:
    X = rows(0)
    source = ParquetData(write_parts(X, tmp_path / "d"))
    assert source.n_rows == 1000 and source.width == 3 and source.columns == ("c0", "c1", "c2")
    assert len(source.piece_list) == 3 * 4  # 334 rows per file, row groups of 97
    np.testing.assert_array_equal(np.vstack([p.X for p in source.pieces()]), X)
    np.testing.assert_array_equal(np.vstack([b.X for b in source.batches(50)]), X)
    assert max(b.n_rows for b in source.batches(50)) == 50
    np.testing.assert_array_equal(source.head(150).X, X[:150])
    one = ParquetData(tmp_path / "d" / "part-0.parquet", columns=["c2", "c0"])
    np.testing.assert_array_equal(one.head(10**6).X, X[:334][:, [2, 0]])


def test_the_sample_is_the_in_memory_sample(tmp_path: Path) -> None:
    X = rows(1)
    source = ParquetData(write_parts(X, tmp_path / "d"))
    a = source.sample(100, np.random.default_rng(7))
    b = ArrayData.of(X).sample(100, np.random.default_rng(7))
    np.testing.assert_array_equal(a.X, b.X)
    assert source.sample(5000, np.random.default_rng(7)).n_rows == 1000


def test_statistics_from_disk_equal_statistics_in_memory(tmp_path: Path) -> None:
    X = rows(2)
    source = ParquetData(write_parts(X, tmp_path / "d"))
    model = FamilyMixture(Gaussian("full", 1e-6, X.mean(axis=0)), 2, n_features=3)
    params = model.init(ArrayData.of(X), np.random.default_rng(0))
    disk = expected_stats(model, params, source, max_rows=64, n_jobs=2)
    memory = expected_stats(model, params, ArrayData.of(X), max_rows=64, n_jobs=2)
    assert disk.allclose(memory, rtol=1e-12)


def test_nulls_are_missing_cells_and_float32_stays_float32(tmp_path: Path) -> None:
    table = pa.table(
        {
            "a": pa.array([1.0, None, 3.0], type=pa.float32()),
            "b": pa.array([1.5, 2.5, None], type=pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    X = ParquetData(tmp_path / "t.parquet").head(10).X
    assert X.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(X), [[False, False], [True, False], [False, True]])
    mixed = pa.table({"a": pa.array([1, None, 3]), "b": pa.array([0.5, 1.5, 2.5])})
    pq.write_table(mixed, tmp_path / "m.parquet")
    Y = ParquetData(tmp_path / "m.parquet").head(10).X
    assert Y.dtype == np.float64 and np.isnan(Y[1, 0]) and Y[2, 0] == 3.0


def test_a_part_with_another_schema_is_named(tmp_path: Path) -> None:
    folder = write_parts(rows(3), tmp_path / "d")
    pq.write_table(pa.table({"c0": [1, 2], "c1": [1.0, 2.0], "c2": [3.0, 4.0]}),
                   folder / "part-9.parquet")
    with pytest.raises(DataSourceError, match=r"column 'c0' of .*part-9\.parquet holds int64"):
        ParquetData(folder)
    pq.write_table(pa.table({"c0": [1.0], "c1": [1.0]}), folder / "part-9.parquet")
    with pytest.raises(DataSourceError, match=r"part-9\.parquet has no column 'c2'"):
        ParquetData(folder)


def test_a_truncated_part_is_named(tmp_path: Path) -> None:
    folder = write_parts(rows(4), tmp_path / "d")
    part = folder / "part-1.parquet"
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(DataSourceError, match=r"part-1\.parquet is not a readable Parquet file"):
        ParquetData(folder)


def test_unreadable_columns_and_missing_paths_are_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["a", "b"], "day": pa.array(
        [0, 1], pa.date32())}), tmp_path / "s.parquet")
    with pytest.raises(DataSourceError, match=r"column 'day' .* holds date32\[day\] values: "
                                              r"out-of-core fits read numbers and labels"):
        ParquetData(tmp_path / "s.parquet")
    labelled = ParquetData(tmp_path / "s.parquet", columns=["x", "name"])
    assert labelled.text_columns == (1,)
    assert next(labelled.pieces()).X.tolist() == [[1.0, "a"], [2.0, "b"]]
    assert ParquetData(tmp_path / "s.parquet", columns=["x"]).n_rows == 2
    with pytest.raises(DataSourceError, match=r"no column\(s\) \['y'\]"):
        ParquetData(tmp_path / "s.parquet", columns=["y"])
    with pytest.raises(DataSourceError, match="does not exist"):
        ParquetData(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match=r"no \*\.parquet files"):
        ParquetData(tmp_path / "empty")


def test_csv_in_blocks_with_empty_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import emkit.engine.sources as sources

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 4096)  # many pieces
    X = rows(5, n=2000)
    X[3, 1] = np.nan
    path = tmp_path / "x.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    path.write_text(path.read_text().replace("nan", ""))
    source = CSVData(path)
    assert source.n_rows == 2000 and len(source.piece_list) > 5
    np.testing.assert_array_equal(np.vstack([p.X for p in source.pieces()]), X)
    np.testing.assert_array_equal(
        source.sample(300, np.random.default_rng(2)).X,
        ArrayData.of(X).sample(300, np.random.default_rng(2)).X,
    )
    labels = tmp_path / "labels.csv"  # a column with text in its first block holds labels
    labels.write_text("a,b\n1,2\n3,oops\n")
    assert CSVData(labels).text_columns == (1,)
    with pytest.raises(ValueError, match=r"reads numbers, but column\(s\) \['b'\] of"):
        emkit.GaussianMixture(1).fit(CSVData(labels))
    bad = tmp_path / "bad.csv"  # numbers in the first block, text in a later one
    bad.write_text("a,b\n" + "1,2\n" * 2000 + "3,oops\n")
    with pytest.raises(DataSourceError, match=r"bad\.csv"):
        CSVData(bad)


def test_a_bad_cell_is_named_by_its_piece_and_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emkit.estimators._base as base

    X = rows(6)
    X[700, 2] = np.inf
    source = ParquetData(write_parts(X, tmp_path / "d"))
    with pytest.raises(ValueError, match=r"the first 1000 rows of .*d: X contains infinity"):
        emkit.GaussianMixture(2).fit(source)  # the rows the model is built from
    monkeypatch.setattr(base, "INIT_SAMPLE_ROWS", 300)
    where = r"part-2\.parquet \(row group 0\), rows 667 to 763 .* \(rows 33\)"
    with pytest.raises(ValueError, match=where):
        emkit.GaussianMixture(2).fit(source)


def test_estimators_fit_sources_and_refuse_what_they_cannot(tmp_path: Path) -> None:
    X = rows(7)
    source = ParquetData(write_parts(X, tmp_path / "d"))
    with pytest.raises(ValueError, match="sample_weight cannot be given"):
        emkit.GaussianMixture(2).fit(source, sample_weight=np.ones(1000))
    with pytest.raises(ValueError, match=r"^an HMM fits sequences: open the source with"):
        emkit.GaussianHMM(2).fit(source)
    with pytest.raises(ValueError, match="bootstrap"):
        emkit.MissingNormal(se="bootstrap").fit(source)
    imputer = emkit.EMImputer(random_state=0).fit(source)  # the model fits out of core
    np.testing.assert_allclose(imputer.covariance_,
                               emkit.EMImputer(random_state=0).fit(X).covariance_, rtol=1e-10)
    for refused in (lambda: emkit.GaussianMixture(2).partial_fit(source),
                    lambda: imputer.transform(source),
                    lambda: emkit.GaussianMixture(2, random_state=0).fit(X).predict(source)):
        with pytest.raises(ValueError, match="ParquetData holds its rows out of memory"):
            refused()
    online = emkit.GaussianMixture(2, random_state=0).fit_stream(source)
    assert online.n_iter_ == len(source.piece_list)
    batch = emkit.GaussianMixture(2, random_state=0).fit(source)
    assert abs(online.score(X) - batch.score(X)) < 0.01 * abs(batch.score(X))


def test_a_memmap_fits_without_a_copy(tmp_path: Path) -> None:
    """A numpy memmap is an array the E-step slices chunk by chunk: the fit equals the in-memory
    one and allocates far less than the data."""
    import tracemalloc

    X = rows(8, n=2_000_000, d=8)  # 128 MB
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    memory = emkit.GaussianMixture(2, random_state=0, max_iter=3).fit(X)
    tracemalloc.start()
    disk = emkit.GaussianMixture(2, random_state=0, max_iter=3).fit(mapped)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(disk.means_, memory.means_, rtol=1e-12)
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MiB for {X.nbytes / 2**20:.1f} MiB"


def test_rows_left_out_are_counted_once_from_disk_and_per_batch_online(tmp_path: Path) -> None:
    """MissingNormal's ``n_empty_rows_`` from a source read on every E-step equals the
    in-memory count; an online fit adds up the rows each batch left out."""
    X = rows(9, n=600)
    X[[5, 300, 550]] = np.nan  # three rows with nothing observed
    source = ParquetData(write_parts(X, tmp_path / "d"))
    with pytest.warns(UserWarning):
        memory = emkit.MissingNormal(max_iter=5).fit(X)
        disk = emkit.MissingNormal(max_iter=5).fit(source)
        online = emkit.MissingNormal().fit_stream(np.array_split(X, 3))
    assert memory.n_empty_rows_ == disk.n_empty_rows_ == online.n_empty_rows_ == 3
    np.testing.assert_allclose(disk.covariance_, memory.covariance_, rtol=1e-10)


@pytest.mark.parametrize(("make", "fitted"), [
    (lambda: emkit.MissingNormal(), "mean_"),
    (lambda: emkit.GaussianMixture(2, random_state=0), "means_"),
])
def test_a_piece_may_miss_a_whole_column(tmp_path: Path, make, fitted: str) -> None:
    """The whole data's rules (every column observed twice, at least two rows) are checked on
    the first rows; a piece only drops its empty rows (here a row group whose one row misses
    column c0, and one whose one row is empty): its statistics add to the others'."""
    X = rows(8, n=300)
    X[99, 0] = np.nan
    X[198:200] = np.nan
    X[197, 1] = np.nan
    folder = write_parts(X, tmp_path / "d", n_files=3, group=99)  # row groups of 99 and 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_disk = make().fit(ParquetData(folder))
    # one warning, from the first rows (which build the model); none per piece and E-step
    assert [type(w.message) for w in caught] == [EmptyRowsWarning]
    with pytest.warns(EmptyRowsWarning, match="2 row"):
        in_memory = make().fit(X)
    np.testing.assert_allclose(getattr(from_disk, fitted), getattr(in_memory, fitted),
                               rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_labels_out_of_core_know_every_category(tmp_path: Path, monkeypatch) -> None:
    """A categorical mixture from a table whose first rows (those that build the model) lack
    some labels: the categories are the whole data's (one pass over the label columns), so
    the fit equals the in-memory one; a numeric model refuses the label column by name."""
    import pandas as pd

    rng = np.random.default_rng(3)
    first = rng.choice(["a", "b"], size=100)
    later = rng.choice(["a", "b", "c", "d"], size=200)
    colour = np.concatenate([first, later]).astype(object)
    colour[[5, 150]] = None  # missing labels
    size = rng.normal(size=300)
    frame = pd.DataFrame({"size": size, "colour": colour})
    folder = tmp_path / "t"
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "t.parquet",
                   row_group_size=60)
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False, float_format="%.17g")
    monkeypatch.setattr(emkit.estimators._base, "INIT_SAMPLE_ROWS", 100)  # "a" and "b" only
    family = {"name": "product", "blocks": [["normal", [0]], ["categorical", [1]]]}

    def fitted(data):
        return emkit.MixtureModel(family, 2, random_state=1, max_iter=10, tol=0.0).fit(data)

    in_memory = fitted(frame)
    for source in (ParquetData(folder), CSVData(csv)):
        assert source.text_columns == (1,)
        assert source.distinct_labels() == {1: {"a", "b", "c", "d"}}
        from_disk = fitted(source)
        np.testing.assert_allclose(from_disk.weights_, in_memory.weights_, rtol=1e-10)
        # the categories (the normal block's origin, a centring, is the first rows' mean)
        assert from_disk.family_.config()["blocks"][1] == in_memory.family_.config()["blocks"][1]
        # online, a step per piece: the first piece ("a", "b") starts from the same categories
        online = emkit.MixtureModel(family, 2, random_state=1).fit_stream(source)
        assert online.n_iter_ == len(source.piece_list)
        assert online.family_.config()["blocks"][1] == in_memory.family_.config()["blocks"][1]
    with pytest.raises(ValueError, match=r"GaussianMixture reads numbers, but column\(s\) "
                                         r"\['colour'\] of .* hold labels"):
        emkit.GaussianMixture(2).fit(ParquetData(folder))


def test_read_ahead_keeps_order_and_errors_and_makes_the_next_item_in_a_thread() -> None:
    made: list[tuple[int, str]] = []

    def items(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i} is bad")
            made.append((i, threading.current_thread().name))
            yield i

    assert list(read_ahead(items(5))) == [0, 1, 2, 3, 4]
    assert all(name != threading.current_thread().name for _, name in made)
    made.clear()
    seen = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for i in read_ahead(items(6, fail_at=3)):
            seen.append(i)
    assert seen == [0, 1, 2]  # the items before the error, in order
    made.clear()
    for i in read_ahead(items(100)):
        if i == 2:
            break
    assert len(made) <= 4  # a consumer that stops leaves at most one item made ahead
    assert list(read_ahead(iter(()))) == []


def test_a_csv_fit_in_many_checked_pieces_is_the_in_memory_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emkit.engine.sources as sources

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 8192)  # many pieces, read and checked ahead
    X = rows(8, n=3000)
    path = tmp_path / "x.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    source = CSVData(path)
    assert len(source.piece_list) > 10
    start = dict(means_init=[[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    disk = emkit.GaussianMixture(2, random_state=0, **start).fit(source)
    memory = emkit.GaussianMixture(2, random_state=0, **start).fit(X)
    np.testing.assert_allclose(disk.means_, memory.means_, rtol=1e-10)
    assert disk.n_iter_ == memory.n_iter_
