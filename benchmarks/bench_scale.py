"""EM beyond one machine's memory: Dask, out-of-core Parquet, online EM (``make bench-scale``;
opt-in: the large case takes many minutes).

Data: a 16-component, 16-column Gaussian mixture, float32, generated lazily a chunk at a time,
each chunk from its own seed (``rows_of_chunk``), so any run, path or worker sees the same rows
and no path ever holds more than a chunk it did not ask for.

1. large: a lazily generated Dask array of ``--large-rows`` rows (default 4e8, 25.6 GB) on a
   LocalCluster (2 workers, 1 thread each), full and diag, 3 EM iterations from the same start:
   rows/s per iteration, peak memory of the client and of each worker (resident set size);
2. medium (``--rows``, default 1e7): the same model through the in-memory path, a Parquet
   dataset read out of core, and Dask (the array persisted on the workers): rows/s per
   iteration (median), and each path's ratio to in-memory;
3. online: one online pass over the medium rows in batches of ``--batch`` rows against batch EM
   run to convergence from the same start (mean log-likelihood of all rows), and the time of
   one ``partial_fit`` beside scikit-learn's ``MiniBatchKMeans.partial_fit`` on the same batch.

    python benchmarks/bench_scale.py                      # everything (long)
    python benchmarks/bench_scale.py --large-rows 0       # medium and online only
    python benchmarks/bench_scale.py --rows 1e6 --large-rows 2e7
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import emkit

K, D = 16, 16
CHUNK = 1_000_000  # rows per generated chunk (Dask partition, Parquet row group)


def truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and Cholesky factors of the mixture the rows come from."""
    rng = np.random.default_rng(12345)
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=4.0, size=(K, D))
    factors = np.stack([np.tril(rng.normal(scale=0.3, size=(D, D)), -1) + np.diag(
        rng.uniform(0.5, 1.5, D)) for _ in range(K)])
    return weights, means, factors


def rows_of_chunk(index: int, n: int) -> np.ndarray:
    """Chunk ``index`` (``n`` rows), from its own seed: the same rows on every path."""
    weights, means, factors = truth()
    rng = np.random.default_rng([2026, index])
    labels = rng.choice(K, size=n, p=weights)
    noise = rng.standard_normal((n, D))
    X = np.empty((n, D), dtype=np.float32)
    for k in range(K):
        at = labels == k
        X[at] = means[k] + noise[at] @ factors[k].T
    return X


def chunk_sizes(n: int) -> list[int]:
    return [CHUNK] * (n // CHUNK) + ([n % CHUNK] if n % CHUNK else [])


def lazy_array(n: int):
    import dask
    import dask.array as da

    parts = [da.from_delayed(dask.delayed(rows_of_chunk)(i, m), shape=(m, D), dtype=np.float32)
             for i, m in enumerate(chunk_sizes(n))]
    return da.concatenate(parts)


def in_memory(n: int) -> np.ndarray:
    return np.concatenate([rows_of_chunk(i, m) for i, m in enumerate(chunk_sizes(n))])


def start_params(cov: str) -> dict:
    """The same start on every path: emkit's k-means++ start on the first chunk's rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        s = emkit.GaussianMixture(K, covariance_type=cov, max_iter=0, random_state=0).fit(
            rows_of_chunk(0, min(CHUNK, 200_000)))
    return dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_)


def timed_fit(data, n: int, cov: str, iterations: int, start: dict) -> tuple[list[float], object]:
    """Seconds of each EM iteration (between progress callbacks) of a fit from ``start``."""
    stamps: list[float] = []
    model = emkit.GaussianMixture(K, covariance_type=cov, max_iter=iterations, tol=0.0,
                                  stopping="none", **start)
    stamps.append(time.perf_counter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data, callback=lambda p: stamps.append(time.perf_counter()))
    return list(np.diff(stamps[1:])) or [stamps[-1] - stamps[0]], model


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cluster():
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     memory_limit="10GiB")
    return c, Client(c)


def large(n: int, iterations: int) -> None:
    print(f"\n1. large: {n:.3g} rows x {D} float32 ({n * D * 4 / 1e9:.1f} GB), generated lazily, "
          f"on a LocalCluster of 2 workers; {iterations} iterations from the same start")
    print(f"{'case':<22}{'s/iteration':>12}{'rows/s':>14}{'client MB':>11}{'workers MB':>14}")
    c, client = cluster()
    try:
        for cov in ("full", "diag"):
            start = start_params(cov)
            times, _ = timed_fit(lazy_array(n), n, cov, iterations, start)
            workers = client.run(peak_rss_mb)
            per = statistics.median(times)
            print(f"{'dask ' + cov:<22}{per:>12.1f}{n / per:>14,.0f}{peak_rss_mb():>11.0f}"
                  f"{' / '.join(f'{v:.0f}' for v in workers.values()):>14}")
    finally:
        client.close()
        c.close()


def medium(n: int, iterations: int, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    print(f"\n2. medium: {n:.3g} rows x {D} float32; {iterations} iterations from the same start; "
          "rows/s per iteration (median)")
    X = in_memory(n)
    folder.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(chunk_sizes(n)):
        part = X[i * CHUNK : i * CHUNK + m]
        table = pa.table({f"x{j}": part[:, j] for j in range(D)})
        # no dictionary encoding: it cannot shrink continuous values and doubles the read time
        pq.write_table(table, folder / f"part-{i:04d}.parquet", row_group_size=250_000,
                       use_dictionary=False)
    print(f"{'case':<26}{'s/iteration':>12}{'rows/s':>14}{'vs memory':>11}{'ll rel.diff':>13}")
    c, client = cluster()
    try:
        for cov in ("full", "diag"):
            start = start_params(cov)
            base, ref = timed_fit(X, n, cov, iterations, start)
            base_rate = n / statistics.median(base)
            print(f"{'in memory ' + cov:<26}{statistics.median(base):>12.2f}{base_rate:>14,.0f}"
                  f"{'1.00x':>11}{0.0:>13.1e}")
            persisted = lazy_array(n).persist()
            for name, data in (("parquet out of core", emkit.ParquetData(folder)),
                               ("dask (2 workers)", persisted)):
                times, model = timed_fit(data, n, cov, iterations, start)
                rate = n / statistics.median(times)
                diff = abs(model.lower_bound_ - ref.lower_bound_) / abs(ref.lower_bound_)
                print(f"{name + ' ' + cov:<26}{statistics.median(times):>12.2f}{rate:>14,.0f}"
                      f"{rate / base_rate:>10.2f}x{diff:>13.1e}")
            del persisted
    finally:
        client.close()
        c.close()
    online(X, folder)


def online(X: np.ndarray, folder: Path, batch: int = 10_000) -> None:
    from sklearn.cluster import MiniBatchKMeans

    n = X.shape[0]
    print(f"\n3. online EM: one pass over {n:.3g} rows in batches of {batch}, against batch EM "
          "to convergence from the same start (mean log-likelihood of all rows)")
    print(f"{'case':<34}{'seconds':>9}{'mean log-lik':>15}{'vs batch':>11}")
    for cov in ("full", "diag"):
        start = start_params(cov)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            batch_fit = emkit.GaussianMixture(K, covariance_type=cov, max_iter=200,
                                              **start).fit(X)
        batch_time = time.perf_counter() - t
        batch_ll = batch_fit.score(X)
        t = time.perf_counter()
        streamed = emkit.GaussianMixture(K, covariance_type=cov, **start).fit_stream(
            (X[i : i + batch] for i in range(0, n, batch)), n_rows=n)
        stream_time = time.perf_counter() - t
        stream_ll = streamed.score(X)
        gap = (batch_ll - stream_ll) / abs(batch_ll)
        print(f"{'batch EM ' + cov + f' ({batch_fit.n_iter_} it.)':<34}{batch_time:>9.1f}"
              f"{batch_ll:>15.6f}{'':>11}")
        print(f"{'online, one pass ' + cov:<34}{stream_time:>9.1f}{stream_ll:>15.6f}"
              f"{gap:>10.2%}")
    print("\npartial_fit of one batch of "
          f"{batch} rows x {D}, K={K} (median of 20, after 5 warm-up calls)")
    rows = X[:batch].astype(np.float64)
    for name, est in (("emkit GaussianMixture full", emkit.GaussianMixture(K, random_state=0)),
                      ("emkit GaussianMixture diag",
                       emkit.GaussianMixture(K, covariance_type="diag", random_state=0)),
                      ("sklearn MiniBatchKMeans", MiniBatchKMeans(K, random_state=0,
                                                                  n_init=1))):
        for _ in range(5):
            est.partial_fit(rows)
        times = []
        for i in range(20):
            part = X[(i + 1) * batch : (i + 2) * batch].astype(np.float64)
            t = time.perf_counter()
            est.partial_fit(part)
            times.append(time.perf_counter() - t)
        print(f"{name:<34}{statistics.median(times) * 1e3:>9.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large-rows", type=float, default=4e8, help="0 skips the large case")
    parser.add_argument("--rows", type=float, default=1e7, help="0 skips the medium case")
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="emkit-bench-scale-"))
    try:
        if args.large_rows:
            large(int(args.large_rows), args.iterations)
        if args.rows:
            medium(int(args.rows), args.iterations, folder / "parts")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
