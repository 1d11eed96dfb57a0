"""Imputation RMSE and time: column means, IterativeImputer, KNNImputer, emkit EMImputer.

Cells are removed MCAR (10 % and 30 %) from complete rows of bundled real data (iris's four
measurements, Old Faithful); columns are standardised; RMSE is over the removed cells, averaged
over 5 random masks.  Run: python benchmarks/bench_impute.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from emkit import EMImputer
from emkit.datasets import load_faithful, load_iris

REPEATS = 5


def methods() -> dict:
    return {
        "column mean": lambda: SimpleImputer(),
        "IterativeImputer": lambda: IterativeImputer(max_iter=20, random_state=0),
        "KNNImputer(5)": lambda: KNNImputer(n_neighbors=5),
        "EMImputer normal": lambda: EMImputer("normal", random_state=0),
        "EMImputer gmm K=2": lambda: EMImputer("gmm", n_components=2, random_state=0),
        "EMImputer gmm K=3": lambda: EMImputer("gmm", n_components=3, random_state=0),
    }


def mask_cells(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = rng.random(X.shape) < rate
    full = mask.all(axis=1)  # keep one observed cell per row
    mask[full, rng.integers(0, X.shape[1], full.sum())] = False
    return mask


def main() -> None:
    sets = {"iris (4 cols)": load_iris().data, "faithful (2 cols)": load_faithful().data}
    print(f"{'data':18s} {'rate':>5s} {'method':18s} {'RMSE':>7s} {'time ms':>8s}")
    for name, raw in sets.items():
        X = (raw - raw.mean(axis=0)) / raw.std(axis=0)
        for rate in (0.1, 0.3):
            scores: dict[str, list[float]] = {m: [] for m in methods()}
            times: dict[str, list[float]] = {m: [] for m in methods()}
            for rep in range(REPEATS):
                rng = np.random.default_rng(rep)
                mask = mask_cells(X, rate, rng)
                Xm = np.where(mask, np.nan, X)
                for method, make in methods().items():
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        filled = make().fit_transform(Xm)
                    times[method].append(time.perf_counter() - start)
                    scores[method].append(np.sqrt(np.mean((filled[mask] - X[mask]) ** 2)))
            for method in methods():
                print(
                    f"{name:18s} {rate:5.0%} {method:18s} {np.mean(scores[method]):7.3f} "
                    f"{1e3 * np.mean(times[method]):8.1f}"
                )


if __name__ == "__main__":
    main()
