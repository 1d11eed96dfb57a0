"""Rubin's rules: pooling estimates across ``m`` multiply imputed data sets (Rubin 1987)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Pooled:
    """Pooled estimate ``Q̄``, within ``Ū``, between ``B`` and total ``T = Ū + (1 + 1/m) B``
    variances, degrees of freedom ``df`` and the fraction of missing information
    ``fmi = (r + 2/(df + 3)) / (1 + r)``, ``r = (1 + 1/m) B / Ū``."""

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    df: np.ndarray
    fmi: np.ndarray
    m: int

    @property
    def std_error(self) -> np.ndarray:
        """``√T``."""
        return np.sqrt(self.total)

    def confidence_interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """``Q̄ ± t_{df, (1+level)/2} √T``."""
        t = stats.t.ppf(0.5 + level / 2.0, self.df)
        half = t * self.std_error
        return self.estimate - half, self.estimate + half


def pool(estimates: Any, variances: Any, dfcom: float | None = None) -> Pooled:
    """Rubin's rules for ``m`` estimates ``Q_i`` and their squared standard errors ``U_i``.

    ``Q̄ = mean Q_i``, ``Ū = mean U_i``, ``B = var(Q_i)`` (ddof 1), ``T = Ū + (1 + 1/m) B``;
    ``df = (m − 1)(1 + 1/r)²`` with ``r = (1 + 1/m) B / Ū`` (Rubin 1987), or, given the
    complete-data degrees of freedom ``dfcom``, Barnard & Rubin's (1999) small-sample
    ``df = 1 / (1/df_old + 1/df_obs)``, ``df_obs = (dfcom + 1)/(dfcom + 3) dfcom (1 − λ)``,
    ``λ = (1 + 1/m) B / T``.
    """
    Q = np.asarray(estimates, dtype=np.float64)
    U = np.asarray(variances, dtype=np.float64)
    if Q.ndim == 0 or Q.shape[0] < 2:
        raise ValueError("pool needs at least 2 imputations (estimates along the first axis)")
    if U.shape != Q.shape:
        raise ValueError(f"variances have shape {U.shape}, estimates {Q.shape}: they must match")
    if not (np.all(np.isfinite(Q)) and np.all(np.isfinite(U)) and np.all(U >= 0)):
        raise ValueError("estimates must be finite and variances finite and non-negative")
    m = Q.shape[0]
    qbar, ubar = Q.mean(axis=0), U.mean(axis=0)
    b = Q.var(axis=0, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(t > 0, (1.0 + 1.0 / m) * b / t, 0.0)
        df_old = np.where(lam > 0, (m - 1) / np.square(lam), np.inf)
        if dfcom is None:
            df = df_old
        else:
            df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
            df = 1.0 / (1.0 / df_old + 1.0 / df_obs)
        r = np.where(ubar > 0, (1.0 + 1.0 / m) * b / ubar, np.inf)
        fmi = np.where(t > 0, (r + 2.0 / (df + 3.0)) / (1.0 + r), 0.0)  # Rubin's γ
    return Pooled(qbar, ubar, b, t, df, fmi, m)
