"""Restarts: the best of several EM runs, each from a random, emEM or user start.

Imports :mod:`emkit.engine.loop` and :mod:`emkit.engine.starts`; neither imports this module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from emkit.engine.backend import blas_on_one_thread
from emkit.engine.loop import EMConfig, FitResult, NumericalError, ProgressCallback, run_em
from emkit.engine.protocol import Model
from emkit.engine.starts import best_of_short_runs, check_short_runs


def fit(
    model: Model,
    data: Any,
    config: EMConfig = EMConfig(),
    *,
    rng: np.random.Generator,
    n_init: int = 1,
    init_params: Any = None,
    callback: ProgressCallback | None = None,
    short_runs: int = 0,
    short_iter: int = 5,
) -> FitResult:
    """Best of ``n_init`` EM runs; ``init_params`` (warm or user start) seeds the first run.

    With ``short_runs > 0`` every run not seeded by ``init_params`` starts from the best of
    ``short_runs`` short EM runs of at most ``short_iter`` iterations (emEM, Biernacki et al.
    2003; :mod:`emkit.engine.starts`); their E-steps are counted in ``n_estep``.
    """
    if int(n_init) != n_init or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    check_short_runs(short_runs, short_iter)
    with blas_on_one_thread(config.threads):  # the backend's threads are the parallelism
        best: FitResult | None = None
        objectives = []
        best_index = 0
        for i in range(int(n_init)):
            extra = 0
            if i == 0 and init_params is not None:
                start = init_params
            elif short_runs > 0:
                shorts = best_of_short_runs(
                    model, data, config, rng=rng, n_runs=short_runs, max_iter=short_iter
                )
                start, extra = shorts.params, shorts.n_estep
            else:
                start = model.init(data, rng)
            try:
                result = run_em(model, data, start, config, callback, restart=(i, int(n_init)))
            except NumericalError as exc:
                exc.from_start = i == 0 and init_params is not None and exc.n_iter == 0
                raise
            if extra:
                result = replace(result, n_estep=result.n_estep + extra)
            objectives.append(result.objective)
            if best is None or result.objective > best.objective:
                best, best_index = result, i
        assert best is not None
        return replace(best, restart_objectives=tuple(objectives), best_restart=best_index)
