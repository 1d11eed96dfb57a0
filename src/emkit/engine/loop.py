"""The one EM loop: plain or SQUAREM-accelerated iterations, history and progress.

Every model runs through :func:`run_em` (restarts: :func:`emkit.engine.restarts.fit`); no model
writes a loop of its own.  The returned
parameters are always the ones whose log-likelihood was measured last, so ``result.loglik``
belongs to ``result.params``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from emkit.engine.backend import LocalThreads
from emkit.engine.monitor import Monitor, StoppingRule
from emkit.engine.protocol import Flattenable, Model
from emkit.engine.stats import Stats, sum_in_order

P = TypeVar("P")

Acceleration = Literal["none", "squarem"]


@dataclass(frozen=True)
class Progress:
    """What a progress callback is told after every accepted step: run ``restart`` (from 0) of
    ``n_restarts``, M-steps taken in that run, and its objective per unit weight."""

    restart: int
    n_restarts: int
    iteration: int
    mean_objective: float


ProgressCallback = Callable[[Progress], None]


class NumericalError(FloatingPointError):
    """The log-likelihood became NaN or infinite: the model or the data is degenerate.

    ``from_start`` is True when the starting parameters themselves gave it (before any M-step)
    and they were the ones given to :func:`fit` as ``init_params`` (a user or warm start)."""

    def __init__(self, message: str, n_iter: int | None = None, value: float = math.nan):
        super().__init__(message)
        self.n_iter = n_iter
        self.value = value
        self.from_start = False


@dataclass(frozen=True)
class EMConfig:
    """Settings of the loop; every field has the meaning it has in scikit-learn where it exists."""

    max_iter: int = 100
    tol: float = 1e-4
    stopping: StoppingRule = "relative"
    accelerate: Acceleration = "none"
    memory_budget: int = 4 * 2**20  # bytes of E-step temporaries per chunk (cache-sized)
    max_rows: int | None = None  # fixed chunk size; overrides memory_budget
    n_jobs: int | None = None  # threads over chunks; None: every usable core

    def __post_init__(self) -> None:
        if int(self.max_iter) != self.max_iter or self.max_iter < 0:
            raise ValueError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        if self.accelerate not in ("none", "squarem"):
            raise ValueError(f"accelerate must be 'none' or 'squarem', got {self.accelerate!r}")
        Monitor(self.tol, self.stopping)  # validates tol and the rule
        if self.n_jobs is not None and (int(self.n_jobs) != self.n_jobs or self.n_jobs < 1):
            raise ValueError(f"n_jobs must be a positive integer or None, got {self.n_jobs!r}")

    @property
    def threads(self) -> int:
        return LocalThreads(self.n_jobs).threads

    @property
    def monitor(self) -> Monitor:
        return Monitor(self.tol, self.stopping)


@dataclass(frozen=True)
class FitResult(Generic[P]):
    """Outcome of one EM run (or the best of several restarts)."""

    params: P
    stats: Stats  # E-step statistics at ``params``
    objective: float  # loglik + log_prior, summed over the data
    history: tuple[float, ...]  # objective per unit weight after each (accepted) step
    n_iter: int  # M-steps taken
    n_estep: int  # E-steps (full passes over the data)
    converged: bool
    restart_objectives: tuple[float, ...] = field(default=())
    best_restart: int = 0

    @property
    def loglik(self) -> float:
        return float(self.stats.loglik)

    @property
    def mean_objective(self) -> float:
        return self.objective / self.stats.weight


def chunk_rows(model: Model, params: Any, config: EMConfig) -> int:
    if config.max_rows is not None:
        return int(config.max_rows)
    return max(64, config.memory_budget // max(1, int(model.row_bytes(params))))


def expected_stats(model: Model, params: Any, data: Any, max_rows: int, n_jobs: int = 1) -> Stats:
    """One full E-step: ``model.prepare(params)`` once, then the sum of the batch statistics
    (memory bounded by ``max_rows``), piece by piece where the pieces are
    (``data.sum_pieces``: the whole data in memory; a part at a time from disk; Dask
    partitions on their workers).

    A piece's batches run on :class:`~emkit.engine.backend.LocalThreads` (contiguous runs on
    ``n_jobs`` threads) and the runs' sums, then the pieces' sums, are added in a fixed order:
    the result is deterministic for a given ``n_jobs`` and partitioning.
    """
    total = data.sum_pieces(PieceEStep(model, int(max_rows), int(n_jobs)), model.prepare(params))
    if total is None:
        raise ValueError("the data set has no rows")
    return total


@dataclass(frozen=True)
class PieceEStep:
    """The E-step of one in-memory piece: its batches of ``max_rows`` on ``n_jobs`` threads,
    their statistics summed in order (None for a piece without rows).  A value, so that it can
    be shipped to the worker holding the piece."""

    model: Any
    max_rows: int
    n_jobs: int

    def __call__(self, prepared: Any, piece: Any) -> Stats | None:
        batches = list(piece.batches(self.max_rows))
        if not batches:
            return None
        model = self.model

        def summed(run: Sequence) -> Stats:
            return sum_in_order(model.e_step(prepared, batch) for batch in run)

        return sum_in_order(LocalThreads(self.n_jobs).map_runs(summed, batches))


class _Runner:
    """E-step counting, objective and history shared by the plain and accelerated loops."""

    def __init__(
        self,
        model: Model,
        data: Any,
        config: EMConfig,
        callback: ProgressCallback | None,
        restart: tuple[int, int],
    ):
        self.model, self.data, self.config, self.callback = model, data, config, callback
        self.restart = restart
        self.n_estep = 0
        self.max_rows: int | None = None

    def report(self, n_iter: int, mean_objective: float) -> None:
        if self.callback is not None:
            self.callback(Progress(*self.restart, n_iter, mean_objective))

    def estep(self, params: Any) -> tuple[Stats, float]:
        if self.max_rows is None:
            self.max_rows = chunk_rows(self.model, params, self.config)
        stats = expected_stats(self.model, params, self.data, self.max_rows, self.config.threads)
        self.n_estep += 1
        objective = float(stats.loglik) + float(self.model.log_prior(params))
        return stats, objective

    def check(self, objective: float, n_iter: int) -> None:
        if not math.isfinite(objective):
            raise NumericalError(
                f"the log-likelihood is {objective} after {n_iter} iterations; the data may "
                "contain extreme values or the model is degenerate (try a larger reg_covar)",
                n_iter,
                objective,
            )


def run_em(
    model: Model,
    data: Any,
    params: Any,
    config: EMConfig = EMConfig(),
    callback: ProgressCallback | None = None,
    *,
    restart: tuple[int, int] = (0, 1),
) -> FitResult:
    """Iterate EM from ``params`` until the monitor says converged or ``max_iter`` M-steps;
    ``callback`` gets a :class:`Progress` (run ``restart[0]`` of ``restart[1]``) after each."""
    runner = _Runner(model, data, config, callback, restart)
    if config.accelerate == "squarem":
        if not isinstance(model, Flattenable):
            raise TypeError(f"{type(model).__name__} has no flatten/unflatten: SQUAREM needs them")
        return _run_squarem(runner, params)
    return _run_plain(runner, params)


def _run_plain(runner: _Runner, params: Any) -> FitResult:
    model, config = runner.model, runner.config
    monitor = config.monitor
    stats, objective = runner.estep(params)
    runner.check(objective, 0)
    history = [objective / stats.weight]
    converged = False
    n_iter = 0
    while n_iter < config.max_iter:
        params = model.m_step(stats, params)
        n_iter += 1
        stats, objective = runner.estep(params)
        runner.check(objective, n_iter)
        history.append(objective / stats.weight)
        runner.report(n_iter, history[-1])
        if monitor.converged(history):
            converged = True
            break
    return FitResult(params, stats, objective, tuple(history), n_iter, runner.n_estep, converged)


def _run_squarem(runner: _Runner, params: Any) -> FitResult:
    """SQUAREM, scheme S3 (Varadhan & Roland 2008), with a monotone safeguard.

    One cycle: θ1 = F(θ0), θ2 = F(θ1), r = θ1 − θ0, v = θ2 − 2θ1 + θ0, α = min(−‖r‖/‖v‖, −1),
    θ' = θ0 − 2αr + α²v (in the model's unconstrained coordinates), then θ_next = F(θ').
    If θ' is not finite or its log-likelihood is below that of θ1, θ' falls back to θ2
    (which is α = −1, i.e. two plain EM steps), so the measured objective never decreases.
    """
    model, config = runner.model, runner.config
    assert isinstance(model, Flattenable)  # checked by run_em
    monitor = config.monitor
    stats0, obj0 = runner.estep(params)
    runner.check(obj0, 0)
    weight = stats0.weight
    history = [obj0 / weight]
    converged = False
    n_iter = 0
    while n_iter < config.max_iter:
        theta1 = model.m_step(stats0, params)
        stats1, obj1 = runner.estep(theta1)
        n_iter += 1
        runner.check(obj1, n_iter)
        if n_iter >= config.max_iter:  # no room left for an extrapolation: a plain EM step
            params, stats0, obj0 = theta1, stats1, obj1
            history.append(obj0 / weight)
            break
        theta2 = model.m_step(stats1, theta1)
        n_iter += 1
        v0, v1, v2 = (model.flatten(t) for t in (params, theta1, theta2))
        r, v = v1 - v0, v2 - 2.0 * v1 + v0
        norm_v = float(np.linalg.norm(v))
        candidate = theta2
        if norm_v > 0.0 and math.isfinite(norm_v):
            alpha = min(-float(np.linalg.norm(r)) / norm_v, -1.0)
            extrapolated = v0 - 2.0 * alpha * r + alpha * alpha * v
            if np.all(np.isfinite(extrapolated)):
                candidate = model.unflatten(extrapolated, params)
        stats_c, obj_c = runner.estep(candidate)
        if candidate is not theta2 and not (math.isfinite(obj_c) and obj_c >= obj1):
            candidate = theta2
            stats_c, obj_c = runner.estep(candidate)
        runner.check(obj_c, n_iter)
        if n_iter >= config.max_iter:
            params, stats0, obj0 = candidate, stats_c, obj_c
            history.append(obj0 / weight)
            break
        params = model.m_step(stats_c, candidate)
        n_iter += 1
        stats0, obj0 = runner.estep(params)
        runner.check(obj0, n_iter)
        history.append(obj0 / weight)
        runner.report(n_iter, history[-1])
        if monitor.converged(history):
            converged = True
            break
    return FitResult(params, stats0, obj0, tuple(history), n_iter, runner.n_estep, converged)

