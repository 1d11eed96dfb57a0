"""Convergence rules on the sequence of mean log-likelihoods (objective per unit weight)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

StoppingRule = Literal["relative", "aitken", "none"]


@dataclass(frozen=True)
class Monitor:
    """Decides convergence from the history ``ℓ_0, ℓ_1, …`` of mean log-likelihoods.

    ``relative``: stop when ``|ℓ_t − ℓ_{t−1}| ≤ tol·(1 + |ℓ_t|)``.
    ``aitken``: stop when Aitken's predicted limit ``ℓ_∞ = ℓ_{t−1} + (ℓ_t − ℓ_{t−1})/(1 − a)``,
    ``a = (ℓ_t − ℓ_{t−1})/(ℓ_{t−1} − ℓ_{t−2})``, satisfies ``|ℓ_∞ − ℓ_t| ≤ tol·(1 + |ℓ_t|)``
    (Böhning et al. 1994); when EM crawls linearly (rate a → 1) ``relative`` stops about
    ``1/(1 − a)`` tolerances short of the limit, Aitken at the tolerance itself.
    ``none``: never stop early: run exactly ``max_iter`` iterations (past the float64 plateau
    of ℓ, e.g. to reproduce a published iteration count; ``tol`` is ignored).
    """

    tol: float = 1e-4
    rule: StoppingRule = "relative"

    def __post_init__(self) -> None:
        if self.rule not in ("relative", "aitken", "none"):
            raise ValueError(
                f"stopping rule must be 'relative', 'aitken' or 'none', got {self.rule!r}"
            )
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")

    @property
    def stops_early(self) -> bool:
        """False for the rule ``none`` (a run then ends only at ``max_iter``)."""
        return self.rule != "none"

    def converged(self, history: Sequence[float]) -> bool:
        if len(history) < 2 or not self.stops_early:
            return False
        cur, prev = history[-1], history[-2]
        scale = self.tol * (1.0 + abs(cur))
        step = cur - prev
        if self.rule == "relative" or len(history) < 3:
            return abs(step) <= scale if self.rule == "relative" else False
        prev_step = prev - history[-3]
        if prev_step == 0.0:
            return step == 0.0
        rate = step / prev_step
        if not (0.0 <= rate < 1.0) or not math.isfinite(rate):
            return abs(step) <= scale * 1e-3  # not in the linear regime: be strict
        limit = prev + step / (1.0 - rate)
        return abs(limit - cur) <= scale
