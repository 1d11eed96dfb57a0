"""Dask collections as a data source: the same statistics at any number of workers, DataFrames,
a worker killed mid-fit, and no dask import on the local path (the registry's item 5 checks
that every model's fit on a LocalCluster equals its in-memory fit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import dask.array as da
import dask.dataframe as dd
import distributed
import numpy as np
import pytest

import emkit
from emkit.engine import ArrayData, expected_stats
from emkit.engine.dask_source import DaskData, is_dask_collection
from emkit.engine.sources import DataSourceError
from emkit.families.gaussian import Gaussian
from emkit.models.mixture import FamilyMixture


def rows(seed: int, n: int = 6000, d: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[: n // 3] += 4.0
    return X[rng.permutation(n)]


def _stats(data, model, params, scheduler=None):
    import dask

    with dask.config.set(scheduler=scheduler) if scheduler else _nothing():
        return expected_stats(model, params, data, max_rows=500, n_jobs=2)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_statistics_are_identical_at_any_number_of_workers(dask_client) -> None:
    X = rows(0)
    model = FamilyMixture(Gaussian("full", 1e-6, X.mean(axis=0)), 3, n_features=3)
    params = model.init(ArrayData.of(X), np.random.default_rng(0))
    data = DaskData(da.from_array(X, chunks=(700, 3)))
    on_two = _stats(data, model, params)  # the session's cluster of two workers
    serial = _stats(data, model, params, scheduler="synchronous")
    threads = _stats(data, model, params, scheduler="threads")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as one:
            import dask

            with dask.config.set(scheduler=one.get):
                on_one = expected_stats(model, params, data, max_rows=500, n_jobs=2)
    for other in (serial, threads, on_one):
        assert other.allclose(on_two, rtol=0.0)
    in_memory = expected_stats(model, params, ArrayData.of(X), max_rows=500, n_jobs=2)
    assert on_two.allclose(in_memory, rtol=1e-12)


@pytest.mark.slow
def test_a_dataframe_fits_with_its_column_names(dask_client) -> None:
    import pandas as pd

    X = rows(1, n=3000)
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=4)
    on_cluster = emkit.GaussianMixture(2, random_state=0).fit(frame)
    in_memory = emkit.GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(on_cluster.means_, in_memory.means_, rtol=1e-10)
    assert list(on_cluster.feature_names_in_) == ["a", "b", "c"]
    array_fit = emkit.GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=(700, 3)))
    assert not hasattr(array_fit, "feature_names_in_")  # an array's columns have no names
    texts = dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]}), npartitions=1)
    with pytest.raises(ValueError, match=r"GaussianMixture reads numbers, but column\(s\) "
                                         r"\['s'\] of the Dask collection hold labels"):
        emkit.GaussianMixture(1).fit(texts)
    dates = dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0],
                                         "t": pd.to_datetime(["2026-01-01", "2026-01-02"])}),
                           npartitions=1)
    with pytest.raises(DataSourceError, match=r"\['t'\] of the Dask DataFrame hold neither"):
        emkit.GaussianMixture(1).fit(dates)


@pytest.mark.slow
def test_a_bad_cell_names_its_partition(dask_client, monkeypatch) -> None:
    import emkit.estimators._base as base

    monkeypatch.setattr(base, "INIT_SAMPLE_ROWS", 500)  # the model from the first 500 rows
    X = rows(2, n=3000)
    X[2500, 1] = np.inf
    with pytest.raises(ValueError, match=r"Dask partition 4.* infinity"):
        emkit.GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=(600, 3)))


@pytest.mark.slow
def test_a_worker_killed_mid_fit_changes_nothing() -> None:
    """A worker process killed (SIGKILL) between two E-steps: Dask recomputes its tasks
    elsewhere, and the fit is the one without the fault."""
    X = rows(3, n=20_000)
    chunks = (2500, 3)
    reference = emkit.GaussianMixture(3, random_state=0, max_iter=6, tol=0.0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            reference.fit(da.from_array(X, chunks=chunks))
            killed: list[int] = []

            def kill_a_worker(progress) -> None:
                if progress.iteration == 2 and not killed:
                    pid = next(iter(client.run(os.getpid).values()))
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            faulted = emkit.GaussianMixture(3, random_state=0, max_iter=6, tol=0.0)
            faulted.fit(da.from_array(X, chunks=chunks), callback=kill_a_worker)
    assert killed and faulted.n_iter_ == reference.n_iter_ == 6
    np.testing.assert_array_equal(faulted.means_, reference.means_)
    np.testing.assert_array_equal(faulted.covariances_, reference.covariances_)


def test_the_local_path_never_imports_dask() -> None:
    code = (
        "import sys, numpy as np, emkit\n"
        "X = np.random.default_rng(0).normal(size=(50, 2))\n"
        "emkit.GaussianMixture(2, random_state=0).fit(X)\n"
        "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert not is_dask_collection(np.ones((3, 2)))
    assert is_dask_collection(da.ones((3, 2)))
    with pytest.raises(DataSourceError, match="2-D"):
        DaskData(da.ones(5))


def _ran_on_workers(client, fit) -> tuple[object, set[str]]:
    """``fit()`` and the names of the tasks the cluster ran meanwhile."""
    with distributed.get_task_stream(client) as stream:
        result = fit()
    return result, {str(task["key"]).split("-")[0].strip("('") for task in stream.data}


@pytest.mark.slow
def test_backend_dask_sends_in_memory_rows_to_the_client(dask_client, tmp_path) -> None:
    """``backend="dask"``: arrays and DataFrames are scattered once to the workers, a Parquet
    source is read there by Dask; every E-step runs on the workers; the fit equals the local
    one (rows, sequences, labels)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = rows(3, n=2000)
    local = emkit.GaussianMixture(2, random_state=0).fit(X)
    remote, tasks = _ran_on_workers(
        dask_client, lambda: emkit.GaussianMixture(2, random_state=0, backend="dask").fit(X)
    )
    assert "_partition_stats" in tasks
    np.testing.assert_allclose(remote.means_, local.means_, rtol=1e-10)
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}),
                   tmp_path / "x.parquet", row_group_size=300)
    from_parquet, tasks = _ran_on_workers(dask_client, lambda: emkit.GaussianMixture(
        2, random_state=0, backend="dask").fit(emkit.ParquetData(tmp_path / "x.parquet")))
    assert "_partition_stats" in tasks
    np.testing.assert_allclose(from_parquet.means_, local.means_, rtol=1e-10)

    lengths = np.array([300, 500, 200, 650, 350])
    hmm = emkit.GaussianHMM(2, random_state=0, max_iter=5)
    np.testing.assert_allclose(
        emkit.GaussianHMM(2, random_state=0, max_iter=5, backend="dask").fit(X, lengths).means_,
        hmm.fit(X, lengths).means_, rtol=1e-9,
    )
    labels = pd.DataFrame({"size": X[:, 0], "colour": np.where(X[:, 1] > 0, "red", "blue")})
    family = {"name": "product", "blocks": [["normal", [0]], ["categorical", [1]]]}
    mixture = emkit.MixtureModel(family, 2, random_state=0, max_iter=5)
    np.testing.assert_allclose(
        emkit.MixtureModel(family, 2, random_state=0, max_iter=5, backend="dask")
        .fit(labels).weights_, mixture.fit(labels).weights_, rtol=1e-10,
    )
    with pytest.raises(ValueError, match="sample_weight cannot be given .* backend='dask'"):
        emkit.GaussianMixture(2, backend="dask").fit(X, sample_weight=np.ones(2000))
    with pytest.raises(ValueError, match=r"backend must be one of \('local', 'dask'\)"):
        emkit.GaussianMixture(2, backend="spark").fit(X)


def test_backend_dask_without_a_client_says_so() -> None:
    code = (
        "import numpy as np, emkit\n"
        "try:\n"
        "    emkit.GaussianMixture(2, backend='dask').fit(np.ones((10, 2)))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "backend='dask' runs the E-steps on the workers of a distributed.Client" in out.stdout
