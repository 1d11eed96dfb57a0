"""Starting values that fight local optima: emEM short runs (Biernacki, Celeux & Govaert 2003).

emEM ("short EM, then long EM"): draw ``n_runs`` starts from the model's own ``init``, run each
for a few iterations with a loose tolerance, keep the one with the highest objective, and start
the long run from it.  A start that is bad after a few iterations rarely becomes the best after
many, so the short runs spend a little computation to skip most poor local optima.

Reference: C. Biernacki, G. Celeux and G. Govaert (2003), "Choosing starting values for the EM
algorithm for getting the highest likelihood in multivariate Gaussian mixture models",
*Computational Statistics & Data Analysis* 41, 561-575.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from emkit.engine.loop import EMConfig, NumericalError, run_em
from emkit.engine.protocol import Model

SHORT_TOL = 1e-3  # a short run also stops when |Δℓ| ≤ SHORT_TOL·(1 + |ℓ|) (mean log-likelihood)


@dataclass(frozen=True, eq=False)
class ShortRunsResult:
    """The winning short run: its parameters, and what every short run reached."""

    params: Any
    objective: float  # objective (log-likelihood + log-prior) of ``params``
    objectives: tuple[float, ...]  # one per short run (-inf where a run broke down)
    best_run: int
    n_estep: int  # E-steps spent on all short runs together


def check_short_runs(n_runs: Any, max_iter: Any) -> None:
    """Raise ``ValueError`` unless ``n_runs >= 0`` and ``max_iter >= 1`` are integers."""
    if not _is_int(n_runs) or n_runs < 0:
        raise ValueError(f"short_runs must be a non-negative integer, got {n_runs!r}")
    if not _is_int(max_iter) or max_iter < 1:
        raise ValueError(f"short_iter must be a positive integer, got {max_iter!r}")


def best_of_short_runs(
    model: Model,
    data: Any,
    config: EMConfig,
    *,
    rng: np.random.Generator,
    n_runs: int,
    max_iter: int = 5,
    tol: float = SHORT_TOL,
) -> ShortRunsResult:
    """emEM: ``n_runs`` short plain-EM runs of at most ``max_iter`` iterations from
    ``model.init``; returns the parameters of the best (highest objective).

    A short run whose log-likelihood breaks down (NaN, a degenerate start) scores ``-inf`` and
    is passed over; if every one breaks down the last error is raised.
    """
    check_short_runs(n_runs, max_iter)
    if n_runs < 1:
        raise ValueError("best_of_short_runs needs at least one run")
    short = replace(config, max_iter=int(max_iter), tol=float(tol), stopping="relative",
                    accelerate="none")
    best, best_objective, best_run = None, -math.inf, 0
    objectives: list[float] = []
    n_estep = 0
    error: NumericalError | None = None
    for i in range(int(n_runs)):
        try:
            result = run_em(model, data, model.init(data, rng), short)
        except NumericalError as exc:
            error = exc
            objectives.append(-math.inf)
            continue
        n_estep += result.n_estep
        objectives.append(result.objective)
        if best is None or result.objective > best_objective:
            best, best_objective, best_run = result.params, result.objective, i
    if best is None:
        assert error is not None
        raise error
    return ShortRunsResult(best, best_objective, tuple(objectives), best_run, n_estep)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
