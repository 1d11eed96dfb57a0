"""GaussianMixture: emkit against scikit-learn in one process (run by ``make bench``).

Per-iteration cost: both libraries start from the same parameters and run the same number of
EM iterations; the log-likelihoods must agree (relative 1e-6) before any time is printed.
One scikit-learn iteration is its ``_e_step`` + ``_m_step``; one emkit iteration is the engine's
chunked E-step + M-step.  Times are medians of ``--repeats`` iterations; memory is the peak of
numpy temporaries during one iteration (tracemalloc), the data itself excluded.

    python benchmarks/bench_gmm.py                 # every case of the issue
    python benchmarks/bench_gmm.py --quick         # small cases only
    python benchmarks/bench_gmm.py --cases 1e5x32x16:full
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import emkit
from emkit.engine import ArrayData, EMConfig, expected_stats
from emkit.engine.backend import blas_on_one_thread
from emkit.engine.loop import chunk_rows
from emkit.families.gaussian import GaussianParams
from emkit.models.mixture import MixtureParams

CASES = [
    (1_000_000, 16, 16, "full"),
    (1_000_000, 16, 16, "diag"),
    (1_000_000, 64, 64, "diag"),
    (100_000, 32, 16, "full"),
    (100_000, 32, 16, "tied"),
    (10_000, 8, 4, "diag"),
]


def matmul_peak(dtype: type, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n×n matrix product on this machine (median)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def make_data(n: int, d: int, k: int, dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    labels = rng.integers(k, size=n)
    X = centers[labels] + rng.standard_normal((n, d)) * rng.uniform(0.5, 1.5, size=(k, 1))[labels]
    return X.astype(dtype)


def flop_count(n: int, d: int, k: int, cov: str) -> float:
    """Multiply-adds ×2 of one E+M iteration in the matrix products that dominate it."""
    if cov == "full":
        return 4.0 * n * k * d * d
    if cov == "tied":
        return 2.0 * n * d * d + 8.0 * n * k * d
    return 8.0 * n * k * d


def start_params(X: np.ndarray, k: int, cov: str) -> emkit.GaussianMixture:
    """A shared starting point: emkit's k-means++ start after one iteration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return emkit.GaussianMixture(k, covariance_type=cov, max_iter=1, random_state=0).fit(X)


def start_of(start: emkit.GaussianMixture) -> MixtureParams:
    """The fitted parameters of ``start`` as the engine model's parameters."""
    return MixtureParams(start.weights_, GaussianParams(start.means_, start.precisions_cholesky_))


def sklearn_iterations(X, start, cov, n_iter):
    sk = SkGaussianMixture(start.n_components, covariance_type=cov, reg_covar=start.reg_covar)
    sk.weights_ = start.weights_.copy()
    sk.means_ = start.means_.copy()
    sk.precisions_cholesky_ = start.precisions_cholesky_.copy()
    sk.covariances_ = start.covariances_.copy()
    times, lls = [], []
    for _ in range(n_iter):
        t = time.perf_counter()
        log_prob_norm, log_resp = sk._e_step(X)
        sk._m_step(X, log_resp)
        times.append(time.perf_counter() - t)
        lls.append(float(log_prob_norm))
    return times, lls


def emkit_iterations(X, start, cov, n_iter):
    est = emkit.GaussianMixture(start.n_components, covariance_type=cov, reg_covar=start.reg_covar)
    model = est._build_model(X, np.ones(X.shape[0]))
    data = ArrayData.of(X)
    params = start_of(start)
    config = EMConfig()
    rows = chunk_rows(model, params, config)
    times, lls = [], []
    with blas_on_one_thread(config.threads):  # as fit() holds it (engine/backend.py)
        for _ in range(n_iter):
            t = time.perf_counter()
            stats = expected_stats(model, params, data, rows, config.threads)
            params = model.m_step(stats, params)
            times.append(time.perf_counter() - t)
            lls.append(stats.loglik / stats.weight)
    return times, lls


def peak_memory(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def run_case(n, d, k, cov, dtype, repeats, peak):
    X = make_data(n, d, k, dtype)
    start = start_params(X, k, cov)
    emkit_iterations(X, start, cov, 1)  # warm-up: numba compilation, page faults
    sk_times, sk_ll = sklearn_iterations(X, start, cov, repeats)
    em_times, em_ll = emkit_iterations(X, start, cov, repeats)
    rel = max(abs(a - b) / abs(b) for a, b in zip(em_ll, sk_ll, strict=True))
    if rel > 1e-6:
        raise AssertionError(f"log-likelihoods differ by {rel:.2e} (relative) on {n}x{d}x{k} {cov}")
    sk_mem = peak_memory(lambda: sklearn_iterations(X, start, cov, 1))
    em_mem = peak_memory(lambda: emkit_iterations(X, start, cov, 1))
    sk_t, em_t = statistics.median(sk_times), statistics.median(em_times)
    gflops = flop_count(n, d, k, cov) / em_t / 1e9
    return {
        "case": f"{n:.0e}x{d}x{k} {cov}".replace("e+0", "e"),
        "dtype": np.dtype(dtype).name,
        "sk_s": sk_t,
        "em_s": em_t,
        "ratio": sk_t / em_t,
        "sk_mb": sk_mem,
        "em_mb": em_mem,
        "gflops": gflops,
        "peak_frac": gflops / peak,
        "rel": rel,
    }


def print_table(rows):
    head = (
        f"{'case':<22}{'dtype':<9}{'sklearn s/it':>13}{'emkit s/it':>12}{'speed-up':>10}"
        f"{'sk MB':>9}{'emkit MB':>10}{'GFLOP/s':>9}{'of peak':>9}{'ll rel.diff':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<22}{r['dtype']:<9}{r['sk_s']:>13.4f}{r['em_s']:>12.4f}"
            f"{r['ratio']:>9.1f}x{r['sk_mb']:>9.0f}{r['em_mb']:>10.0f}{r['gflops']:>9.1f}"
            f"{r['peak_frac']:>9.0%}{r['rel']:>13.1e}"
        )


class RecordingModel:
    """Wraps a model and records the log-likelihood of every full E-step (one batch each)."""

    def __init__(self, model):
        self.model = model
        self.logliks: list[float] = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def e_step(self, prepared, batch):
        stats = self.model.e_step(prepared, batch)
        self.logliks.append(stats.loglik / stats.weight)
        return stats


def overlapping_mixtures():
    """Mixtures whose components overlap strongly: plain EM needs hundreds of iterations."""
    rng = np.random.default_rng(1)

    def draw(means, sds, n):
        k = rng.integers(len(means), size=n)
        means, sds = np.asarray(means, float), np.asarray(sds, float)
        return means[k] + rng.standard_normal((n, means.shape[1])) * sds[k][:, None]

    yield "1-D, 2 comp., means 0 / 1.2", draw([[0.0], [1.2]], [1.0, 0.8], 3000), 2, "full"
    yield (
        "2-D, 3 comp. full",
        draw([[0, 0], [1.0, 0.3], [0.4, 1.0]], [1, 0.8, 0.9], 4000),
        3,
        "full",
    )
    yield (
        "5-D, 4 comp. diag",
        draw(rng.normal(scale=0.7, size=(4, 5)), [1, 1, 0.8, 1.2], 5000),
        4,
        "diag",
    )
    yield (
        "3-D, 3 comp. tied",
        draw([[0, 0, 0], [0.8, 0.5, 0], [0, 0.8, 0.6]], [1, 1, 1], 4000),
        3,
        "tied",
    )


def squarem_table() -> None:
    """E-steps that plain EM and SQUAREM need to reach the same log-likelihood (to 1e-8)."""
    from emkit.engine import run_em

    print()
    print("E-steps to reach the optimum's mean log-likelihood to 1e-8 (relative), same start")
    head = f"{'mixture':<30}{'plain EM':>10}{'SQUAREM':>10}{'fewer':>8}{'optimum rel.diff':>18}"
    print(head)
    print("-" * len(head))
    for name, X, k, cov in overlapping_mixtures():
        start = start_params(X, k, cov)
        est = emkit.GaussianMixture(k, covariance_type=cov)
        params0 = start_of(start)
        results, counts = {}, {}
        for method in ("none", "squarem"):
            model = RecordingModel(est._build_model(X, np.ones(X.shape[0])))
            config = EMConfig(
                max_iter=200_000, tol=1e-15, accelerate=method, max_rows=X.shape[0], n_jobs=1
            )
            results[method] = run_em(model, ArrayData.of(X), params0, config)
            counts[method] = model.logliks
        best = max(r.mean_objective for r in results.values())
        target = best - 1e-8 * abs(best)
        need = {
            m: next(i + 1 for i, ll in enumerate(lls) if ll >= target) for m, lls in counts.items()
        }
        diff = abs(results["none"].mean_objective - results["squarem"].mean_objective) / abs(best)
        print(
            f"{name:<30}{need['none']:>10}{need['squarem']:>10}"
            f"{need['none'] / need['squarem']:>7.1f}x{diff:>18.1e}"
        )


def converged_fit_table(n: int = 1_000_000, d: int = 16, k: int = 16) -> None:
    """Time to a converged fit with each library's defaults (init included)."""
    X = make_data(n, d, k, np.float64)
    print()
    print(f"time to a converged fit, {n:.0e}x{d}x{k} full, random_state=0 (init included)")
    head = f"{'fit':<40}{'seconds':>9}{'iterations':>12}{'mean log-lik.':>16}"
    print(head)
    print("-" * len(head))

    def row(label, make):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            est = make().fit(X)
            seconds = time.perf_counter() - t
        ll = est.score(X)
        print(f"{label:<40}{seconds:>9.1f}{est.n_iter_:>12}{ll:>16.6f}", flush=True)
        return seconds, ll

    em_s, em_ll = row("emkit (defaults)", lambda: emkit.GaussianMixture(k, random_state=0))
    sk_s, sk_ll = row("scikit-learn (defaults)", lambda: SkGaussianMixture(k, random_state=0))
    for tol in (1e-4, 1e-5, 1e-6):
        if sk_ll >= em_ll - 1e-6 * abs(em_ll):
            break
        sk_s, sk_ll = row(
            f"scikit-learn (tol={tol:g})",
            lambda tol=tol: SkGaussianMixture(k, random_state=0, tol=tol),
        )


def parse_cases(text: str | None, quick: bool):
    if text:
        cases = []
        for item in text.split(","):
            shape, cov = item.split(":")
            n, d, k = (int(float(v)) for v in shape.split("x"))
            cases.append((n, d, k, cov))
        return cases
    return [c for c in CASES if c[0] <= 100_000] if quick else CASES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma list like 1e6x16x16:full")
    parser.add_argument("--quick", action="store_true", help="only the cases with N <= 1e5")
    parser.add_argument("--repeats", type=int, default=3, help="iterations timed per case")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--skip-iterations", action="store_true")
    parser.add_argument("--skip-squarem", action="store_true")
    parser.add_argument("--skip-converged", action="store_true")
    args = parser.parse_args()
    if not args.skip_squarem:
        squarem_table()
    if args.skip_iterations:
        if not args.skip_converged:
            converged_fit_table()
        return
    peaks = {np.float64: matmul_peak(np.float64), np.float32: matmul_peak(np.float32)}
    print(
        f"matrix-product peak: float64 {peaks[np.float64]:.1f} GFLOP/s, "
        f"float32 {peaks[np.float32]:.1f} GFLOP/s"
    )
    dtypes = [getattr(np, name) for name in args.dtypes.split(",")]
    rows = []
    for n, d, k, cov in parse_cases(args.cases, args.quick):
        for dtype in dtypes:
            rows.append(run_case(n, d, k, cov, dtype, args.repeats, peaks[dtype]))
            print(f"  done {rows[-1]['case']} {rows[-1]['dtype']}", flush=True)
    print()
    print_table(rows)
    if not (args.skip_converged or args.quick):
        converged_fit_table()


if __name__ == "__main__":
    main()
