"""Where batch work runs: the one place the engine maps a function over batches.

``LocalThreads`` splits the batches into contiguous runs, one per thread (BLAS held to one
thread each; the numba kernels release the GIL), and returns the runs' results in order, so a
sum of them is deterministic for a given thread count.  The E-step (``expected_stats``) and
inference (a fitted mixture's ``predict``, ``score_samples``, …) both go through it; a
distributed backend (Dask) offers the same ``map_runs``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")
MIN_ITEMS_PER_THREAD = 2  # each thread gets at least this many batches, else run serially


@cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries: built once (it scans the process's
    shared objects, about 0.3 ms), then each ``limit`` costs microseconds."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_on_one_thread(threads: int) -> AbstractContextManager:
    """BLAS held to one thread while ``threads`` (> 1) backend threads are the parallelism of a
    fit: a threaded BLAS call between E-steps (an M-step, an init) leaves OpenBLAS's workers
    spinning for about 0.1 s, and they take the cores from the next E-steps' threads (a short
    2e5-row fit ran 1.4× slower)."""
    if threads <= 1:
        return nullcontext()
    return one_blas_thread()


def one_blas_thread() -> AbstractContextManager:
    """BLAS held to one thread (a Dask task: the worker's threads are the parallelism)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class LocalThreads:
    """Contiguous runs of items on ``n_jobs`` threads (None: every usable core)."""

    n_jobs: int | None = None

    @property
    def threads(self) -> int:
        return usable_cores() if self.n_jobs is None else int(self.n_jobs)

    def map_runs(self, fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """``[fn(run) for run in runs]``: the items cut into contiguous runs, in order."""
        jobs = min(self.threads, len(items) // MIN_ITEMS_PER_THREAD)
        if jobs <= 1:
            return [fn(items)]
        bounds = np.linspace(0, len(items), jobs + 1).astype(int)
        runs = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        with blas_on_one_thread(jobs), ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(fn, runs))


def map_row_chunks(
    fn: Callable[[np.ndarray], Any], X: np.ndarray, rows: int, backend: LocalThreads
) -> list[Any]:
    """``fn`` of every chunk of ``rows`` rows of ``X``, in order (through ``backend``)."""
    starts = list(range(0, X.shape[0], max(1, int(rows))))

    def run(run_starts: Sequence[int]) -> list[Any]:
        return [fn(X[a : a + rows]) for a in run_starts]

    return [part for run in backend.map_runs(run, starts) for part in run]
