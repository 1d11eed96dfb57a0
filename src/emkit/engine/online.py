"""Online (stepwise) EM: one M-step per mini-batch on a running average of statistics.

Cappé & Moulines (2009), Liang & Klein (2009): with ``s_B`` the statistics of batch ``B`` at the
current parameters and ``|B|`` its weight, the running statistics per unit weight are

    s̄_t = (1 − ρ_t)·s̄_{t−1} + ρ_t·s_B/|B|,   ρ_0 = 1,  ρ_t = (t + t0)^−κ  (t ≥ 1),

and the M-step sees ``N·s̄_t``, ``N`` the data's weight where it is known (``scale``), else the
weight seen so far.  With one batch of all the data and ``κ = 0`` (ρ ≡ 1) every step is exactly a
batch EM iteration.  ``κ ∈ (0.5, 1]`` gives the convergence of stochastic approximation; the
defaults ``t0 = 2``, ``κ = 0.6`` are in the range both papers recommend.

A component that collapses is re-seeded by the model's M-step as in batch EM; its running
statistics are (close to) zero, so the next batch's statistics of the re-seeded component are
its whole average: the average stays the statistics of the parameters it produced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np

from emkit.engine.loop import (
    EMConfig,
    NumericalError,
    Progress,
    ProgressCallback,
    chunk_rows,
    expected_stats,
)
from emkit.engine.protocol import Model
from emkit.engine.stats import Stats

P = TypeVar("P")

DEFAULT_T0 = 2.0
DEFAULT_KAPPA = 0.6


@dataclass(frozen=True)
class StepSizes:
    """``ρ_0 = 1``, ``ρ_t = (t + t0)^−κ``: ``κ = 0`` is batch EM on each batch."""

    t0: float = DEFAULT_T0
    kappa: float = DEFAULT_KAPPA

    def __post_init__(self) -> None:
        if not (isinstance(self.t0, (int, float)) and math.isfinite(self.t0) and self.t0 >= 0):
            raise ValueError(f"t0 must be a finite number >= 0, got {self.t0!r}")
        if not (isinstance(self.kappa, (int, float)) and 0 <= self.kappa <= 1):
            raise ValueError(
                f"kappa must be in [0, 1] (0.5 < kappa <= 1 converges), got {self.kappa!r}"
            )

    def __call__(self, step: int) -> float:
        if step == 0 or self.kappa == 0:
            return 1.0
        return float((step + self.t0) ** -self.kappa)


@dataclass(frozen=True)
class OnlineState(Generic[P]):
    """Where an online fit stands: parameters, the running statistics per unit weight (None
    before the first step), steps taken, weight seen, and every batch's mean log-likelihood
    under the parameters it was scored with (before they learnt from it: a held-out score)."""

    params: P
    average: Stats | None = None
    steps: int = 0
    weight_seen: float = 0.0
    history: tuple[float, ...] = ()


def online_step(
    model: Model,
    state: OnlineState,
    stats: Stats,
    sizes: StepSizes = StepSizes(),
    scale: float | None = None,
) -> OnlineState:
    """One stepwise-EM step from ``stats``, the E-step statistics of one batch at
    ``state.params``: update the running average, then one M-step on ``N·s̄``."""
    weight = float(stats.weight)
    if not weight > 0:
        raise ValueError("a batch of online EM has no weight (no rows, or all weights zero)")
    per_unit = stats * (1.0 / weight)
    rho = sizes(state.steps)
    if state.average is None or rho == 1.0:
        average = per_unit
    else:
        average = state.average * (1.0 - rho) + per_unit * rho
    seen = state.weight_seen + weight
    total = seen if scale is None else float(scale)
    params = model.m_step(average * total, state.params)
    mean_ll = float(stats.loglik) / weight
    return replace(
        state,
        params=params,
        average=average,
        steps=state.steps + 1,
        weight_seen=seen,
        history=(*state.history, mean_ll),
    )


@dataclass(frozen=True)
class OnlineMonitor:
    """Convergence of noisy per-batch mean log-likelihoods: the means of the last two windows
    of ``window`` batches, ``m₁`` then ``m₂``, differ by at most ``tol·(1 + |m₂|)`` or by no
    more than twice their standard error (the improvement is lost in the batches' noise)."""

    tol: float = 1e-4
    window: int = 10

    def __post_init__(self) -> None:
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        if int(self.window) != self.window or self.window < 2:
            raise ValueError(f"window must be an integer >= 2, got {self.window!r}")

    def converged(self, history: Sequence[float]) -> bool:
        w = int(self.window)
        if len(history) < 2 * w:
            return False
        older = np.asarray(history[-2 * w : -w])
        recent = np.asarray(history[-w:])
        change = float(recent.mean() - older.mean())
        noise = math.sqrt((older.var(ddof=1) + recent.var(ddof=1)) / w)
        return abs(change) <= max(self.tol * (1.0 + abs(float(recent.mean()))), 2.0 * noise)


def run_online(
    model: Model,
    state: OnlineState,
    stream: Iterable[Any],
    config: EMConfig = EMConfig(),
    sizes: StepSizes = StepSizes(),
    *,
    scale: float | None = None,
    monitor: OnlineMonitor | None = None,
    stop_early: bool = False,
    callback: ProgressCallback | None = None,
) -> tuple[OnlineState, bool]:
    """One online step per data set of ``stream`` (each a batch: ``batches``/``n_rows``), its
    E-step chunked and threaded as in batch EM.  Returns the state and whether ``monitor``
    says it converged (at the end of the stream, or, with ``stop_early``, as soon as it does)."""
    for data in stream:
        rows = chunk_rows(model, state.params, config)
        stats = expected_stats(model, state.params, data, rows, config.threads)
        if not math.isfinite(float(stats.loglik)):
            raise NumericalError(
                f"the log-likelihood of batch {state.steps} is {float(stats.loglik)}: the batch "
                "holds rows the model cannot score, or the model is degenerate (try a larger "
                "reg_covar)",
                state.steps,
                float(stats.loglik),
            )
        state = online_step(model, state, stats, sizes, scale)
        if callback is not None:
            callback(Progress(0, 1, state.steps, state.history[-1]))
        if stop_early and monitor is not None and monitor.converged(state.history):
            return state, True
    return state, monitor is not None and monitor.converged(state.history)
