"""GaussianMixture end to end: a short ``fit()`` and inference, emkit against scikit-learn in one
process (run by ``make bench``).  Only public API, so the same script times any emkit version.

- short fit: 5 EM iterations from the same start (weights, means and precisions given), the
  whole ``fit()`` wall time (validation, start, iterations, whatever follows);
- inference: ``predict`` and ``score_samples`` of the same fitted parameters.

The log-likelihoods (fit) and log-densities (inference) must agree to 1e-6 (relative) before
any time is printed.  Times are medians of ``--repeats`` runs.

    python benchmarks/bench_gmm_fit.py
    python benchmarks/bench_gmm_fit.py --fit-rows 200000 --predict-rows 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import emkit

COVARIANCE_TYPES = ("full", "diag")


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    labels = rng.integers(k, size=n)
    scale = rng.uniform(0.5, 1.5, size=(k, 1))[labels]
    return centers[labels] + rng.standard_normal((n, d)) * scale


def start(X: np.ndarray, k: int, cov: str) -> emkit.GaussianMixture:
    """A shared start: emkit's k-means++ start after one iteration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return emkit.GaussianMixture(k, covariance_type=cov, max_iter=1, random_state=0).fit(X)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def short_fit_row(X: np.ndarray, k: int, cov: str, n_iter: int, repeats: int) -> dict:
    s = start(X, k, cov)
    init = dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_)

    def fit_emkit():
        return emkit.GaussianMixture(
            k, covariance_type=cov, max_iter=n_iter, stopping="none", **init
        ).fit(X)

    def fit_sklearn():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk = SkGaussianMixture(k, covariance_type=cov, max_iter=n_iter, tol=0.0, **init)
            return sk.fit(X)

    fit_emkit()  # warm-up: numba compilation
    em_t, em = median_time(fit_emkit, repeats)
    sk_t, sk = median_time(fit_sklearn, repeats)
    em_ll, sk_ll = em.score(X), sk.score(X)
    rel = abs(em_ll - sk_ll) / abs(sk_ll)
    if rel > 1e-6 or em.n_iter_ != sk.n_iter_:
        raise AssertionError(f"fits differ: {em_ll} vs {sk_ll}, {em.n_iter_} vs {sk.n_iter_}")
    return {"case": f"fit {X.shape[0]:.0e}x{X.shape[1]}x{k} {cov}", "sk": sk_t, "em": em_t,
            "rel": rel}


def inference_rows(X: np.ndarray, k: int, cov: str, repeats: int) -> list[dict]:
    em = start(X, k, cov)
    sk = SkGaussianMixture(k, covariance_type=cov)
    sk.weights_, sk.means_ = em.weights_.copy(), em.means_.copy()
    sk.precisions_cholesky_, sk.covariances_ = em.precisions_cholesky_.copy(), em.covariances_
    sk.precisions_ = em.precisions_.copy()
    shape = f"{X.shape[0]:.0e}x{X.shape[1]}x{k} {cov}"
    em.predict(X[:1000])  # warm-up
    rows = []
    for method in ("predict", "score_samples"):
        em_t, em_out = median_time(lambda m=method: getattr(em, m)(X), repeats)
        sk_t, sk_out = median_time(lambda m=method: getattr(sk, m)(X), repeats)
        if method == "score_samples":
            rel = float(np.max(np.abs(em_out - sk_out) / np.abs(sk_out)))
        else:
            rel = float(np.mean(em_out != sk_out))  # share of labels that differ
        if rel > 1e-6:
            raise AssertionError(f"{method} differs by {rel:.2e} on {shape}")
        rows.append({"case": f"{method} {shape}", "sk": sk_t, "em": em_t, "rel": rel})
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print()
    print(title)
    head = f"{'case':<40}{'sklearn s':>11}{'emkit s':>10}{'speed-up':>10}{'rel.diff':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<40}{r['sk']:>11.3f}{r['em']:>10.3f}{r['sk'] / r['em']:>9.1f}x"
            f"{r['rel']:>11.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-rows", type=int, default=200_000)
    parser.add_argument("--predict-rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    d, k = args.features, args.components
    X = make_data(args.fit_rows, d, k)
    rows = [short_fit_row(X, k, cov, args.iterations, args.repeats) for cov in COVARIANCE_TYPES]
    print_table(
        f"whole fit(): {args.iterations} iterations from the same start (median of "
        f"{args.repeats}; rel.diff: mean log-likelihood)",
        rows,
    )
    X = make_data(args.predict_rows, d, k)
    rows = [r for cov in COVARIANCE_TYPES for r in inference_rows(X, k, cov, args.repeats)]
    print_table(
        f"inference (median of {args.repeats}; rel.diff: log-density, or share of labels)", rows
    )


if __name__ == "__main__":
    main()
