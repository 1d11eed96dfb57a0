"""Regimes and risk of daily returns: normal mixtures and hidden Markov regime models.

A Gaussian mixture of returns is the unconditional distribution of calm and turbulent days; an
HMM adds persistence (expected regime durations ``1/(1 − a_kk)``), a stationary distribution and
a *conditional* forecast: the next day's return is the mixture over states weighted by
``P(z_{T+1} | x_{1:T}) = α_T A`` (the filtered state probabilities at the last observation moved
one step on).  Every fitted model is turned into a :class:`MixtureDistribution` (normal or
Student-t components), whose Value-at-Risk is the root of the mixture CDF and whose Expected
Shortfall is exact (closed-form partial expectations of the components).

Conventions: returns in the units given (MASS ``SP500``: percent); VaR and ES are positive
losses, ``VaR_α = −q_{1−α}`` and ``ES_α = −E[r | r ≤ q_{1−α}]``; annualised figures use 252
trading days (mean ×252, volatility ×√252).  The single Gaussian (maximum likelihood) is the
baseline and the empirical quantile / tail mean the check.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats
from sklearn.exceptions import ConvergenceWarning

from emkit._validation import InputError
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.hmm import HMM
from emkit.estimators.hmm_emissions import GaussianHMM

__all__ = [
    "EMISSIONS",
    "MixtureDistribution",
    "Regime",
    "RegimeReport",
    "RiskEstimate",
    "check_returns",
    "empirical_risk",
    "fit_regimes",
    "plot_regimes",
]

TRADING_DAYS = 252
EMISSIONS = ("gaussian", "student_t")
DEFAULT_LEVELS = (0.95, 0.99)


# --------------------------------------------------------------------------------------------------
# one-dimensional mixtures of normal / Student-t components: quantiles and tail means
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MixtureDistribution:
    """``Σ_k w_k · t_{ν_k}(loc_k, scale_k)`` on the real line; ``ν_k = inf`` is a normal
    component (``scale`` its standard deviation)."""

    weights: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    df: np.ndarray

    @classmethod
    def normal(cls, weights: Any, loc: Any, scale: Any) -> MixtureDistribution:
        w = np.atleast_1d(np.asarray(weights, dtype=np.float64))
        return cls.of(w, loc, scale, np.full(w.shape, np.inf))

    @classmethod
    def of(cls, weights: Any, loc: Any, scale: Any, df: Any) -> MixtureDistribution:
        w, m, s, v = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (weights, loc,
                                                                                 scale, df))
        if not (w.shape == m.shape == s.shape == v.shape and w.ndim == 1 and w.size):
            raise ValueError("weights, loc, scale and df must be 1-D of one length")
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-8):
            raise ValueError(f"weights must be non-negative and sum to one, got {w}")
        if np.any(s <= 0) or np.any(v <= 1):
            raise ValueError("scales must be positive and degrees of freedom above 1")
        return cls(w / w.sum(), m, s, v)

    def _z(self, x: float) -> np.ndarray:
        return (x - self.loc) / self.scale

    def _std_cdf(self, z: np.ndarray) -> np.ndarray:
        normal = np.isinf(self.df)
        return np.where(normal, stats.norm.cdf(z), stats.t.cdf(z, np.where(normal, 2.0, self.df)))

    def cdf(self, x: float) -> float:
        """``P(r ≤ x)``."""
        return float(self.weights @ self._std_cdf(self._z(x)))

    def mean(self) -> float:
        return float(self.weights @ self.loc)

    def std(self) -> float:
        """Standard deviation (infinite when a component has ``ν ≤ 2``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(np.isinf(self.df), 1.0, self.df / (self.df - 2.0))
        var = np.where(self.df > 2, self.scale**2 * factor, np.inf)
        second = float(self.weights @ (var + self.loc**2))
        return float(np.sqrt(max(second - self.mean() ** 2, 0.0)))

    def quantile(self, p: float) -> float:
        """The ``p``-quantile: the root of ``cdf(x) = p`` (Brent, bracketed by the components'
        own quantiles, to 1e-12 relative)."""
        if not 0.0 < p < 1.0:
            raise ValueError(f"p must lie in (0, 1), got {p}")
        normal = np.isinf(self.df)
        zq = np.where(normal, stats.norm.ppf(p), stats.t.ppf(p, np.where(normal, 2.0, self.df)))
        q = self.loc + self.scale * zq
        lo, hi = float(q.min()), float(q.max())
        if hi - lo <= 1e-14 * max(1.0, abs(lo)):
            return lo
        return float(optimize.brentq(lambda x: self.cdf(x) - p, lo, hi, xtol=1e-14, rtol=1e-12))

    def partial_mean(self, x: float) -> float:
        """``E[r · 1{r ≤ x}]``, exact: ``μΦ(z) − σφ(z)`` for a normal component and
        ``μF_ν(z) − s·(ν + z²)/(ν − 1)·f_ν(z)`` for a Student-t one."""
        z = self._z(x)
        normal = np.isinf(self.df)
        v = np.where(normal, 3.0, self.df)
        tail_normal = -stats.norm.pdf(z)
        tail_t = -(v + z**2) / (v - 1.0) * stats.t.pdf(z, v)
        std_partial = np.where(normal, tail_normal, tail_t)
        return float(self.weights @ (self.loc * self._std_cdf(z) + self.scale * std_partial))

    def value_at_risk(self, level: float) -> float:
        """``VaR_α = −q_{1−α}`` (a positive number is a loss)."""
        return -self.quantile(1.0 - _check_level(level))

    def expected_shortfall(self, level: float) -> float:
        """``ES_α = −E[r | r ≤ q_{1−α}] = −E[r·1{r ≤ q}] / (1 − α)``."""
        level = _check_level(level)
        q = self.quantile(1.0 - level)
        return -self.partial_mean(q) / (1.0 - level)

    def sample(self, n: int, rng: Any = None) -> np.ndarray:
        rng = np.random.default_rng(rng)
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        z = np.where(np.isinf(self.df[k]), rng.standard_normal(n),
                     rng.standard_t(np.where(np.isinf(self.df[k]), 3.0, self.df[k])))
        return self.loc[k] + self.scale[k] * z


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must lie in (0.5, 1), e.g. 0.99, got {level}")
    return level


def empirical_risk(returns: Any, level: float) -> tuple[float, float]:
    """``(VaR, ES)`` of the sample: ``−`` its ``1 − level`` quantile (numpy's linear rule) and
    ``−`` the mean of the returns at or below it."""
    r = np.asarray(returns, dtype=np.float64).ravel()
    q = float(np.quantile(r, 1.0 - _check_level(level)))
    return -q, -float(r[r <= q].mean())


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regime:
    """One state of the fitted model, ordered by volatility (0: calmest).

    ``share``: stationary probability (HMM) or mixture weight; ``duration``: expected length of
    a stay ``1/(1 − a_kk)`` in days (None for a mixture); ``days``: decoded days in the regime;
    ``df``: degrees of freedom of a Student-t state (None for a normal one)."""

    mean: float
    volatility: float
    share: float
    duration: float | None
    days: int
    df: float | None = None

    @property
    def annual_mean(self) -> float:
        return self.mean * TRADING_DAYS

    @property
    def annual_volatility(self) -> float:
        return self.volatility * float(np.sqrt(TRADING_DAYS))


@dataclass(frozen=True)
class RiskEstimate:
    """One-day VaR and ES at ``level`` by ``source`` (positive numbers are losses)."""

    source: str
    level: float
    var: float
    es: float


@dataclass(frozen=True, eq=False)
class RegimeReport:
    """Regimes of a returns series and the risk figures of the fitted model against the
    single Gaussian and the sample.

    ``risk`` holds, per level: the model's ``next day`` forecast (HMM: given the filtered state
    probabilities at the last observation; mixture: the mixture itself), the HMM's unconditional
    ``stationary`` mixture, the ``Gaussian mixture`` of the same number of components, the
    ``Gaussian`` baseline and the ``empirical`` check.  ``states`` is the decoded regime of every
    day (Viterbi, relabelled by volatility); ``next_day`` the regime probabilities for the day
    after the last; ``exceedances`` the share of days whose return fell below the model's
    one-step-ahead VaR forecast (in sample: the calibration check, about ``1 − level``)."""

    model: str
    n_observations: int
    regimes: tuple[Regime, ...]
    risk: tuple[RiskEstimate, ...]
    states: np.ndarray
    next_day: np.ndarray
    transmat: np.ndarray | None
    log_likelihood: float
    bic: float
    exceedances: dict[float, float]
    estimator: Any
    mixture: GaussianMixture

    def risk_of(self, source: str, level: float) -> RiskEstimate:
        for row in self.risk:
            if row.source == source and np.isclose(row.level, level):
                return row
        raise KeyError(f"no risk estimate {source!r} at level {level}")

    def to_text(self) -> str:
        """Plain-text tables: the regimes, then VaR/ES by source and level."""
        hmm = self.transmat is not None
        lines = [
            f"{self.model}: {self.n_observations} daily returns, log-likelihood "
            f"{self.log_likelihood:.2f}, BIC {self.bic:.1f}",
            "",
            f"{'regime':>6} {'mean':>8} {'vol':>7} {'ann.mean':>9} {'ann.vol':>8} "
            f"{'share' if not hmm else 'station.':>8} {'duration':>9} {'days':>6}"
            + (f" {'df':>6}" if any(r.df is not None for r in self.regimes) else ""),
        ]
        for k, r in enumerate(self.regimes):
            duration = f"{r.duration:9.1f}" if r.duration is not None else f"{'-':>9}"
            row = (
                f"{k:>6} {r.mean:8.4f} {r.volatility:7.4f} {r.annual_mean:9.2f} "
                f"{r.annual_volatility:8.2f} {r.share:8.3f} {duration} {r.days:>6}"
            )
            if any(g.df is not None for g in self.regimes):
                row += f" {r.df:6.2f}" if r.df is not None else f" {'-':>6}"
            lines.append(row)
        if hmm:
            lines += ["", "transition matrix:"]
            lines += ["  " + " ".join(f"{a:7.4f}" for a in row) for row in self.transmat]
        lines.append(
            "next-day regime probabilities: "
            + ", ".join(f"{k}: {p:.3f}" for k, p in enumerate(self.next_day))
        )
        lines += ["", f"{'one-day risk':<18} {'level':>6} {'VaR':>8} {'ES':>8}"]
        for row in self.risk:
            lines.append(f"{row.source:<18} {row.level:6.3f} {row.var:8.4f} {row.es:8.4f}")
        if self.exceedances:
            lines.append("")
            lines.append(
                "in-sample VaR exceedances of the next-day forecast: "
                + ", ".join(
                    f"{level:.3f}: {rate:.2%} (expected {1 - level:.2%})"
                    for level, rate in self.exceedances.items()
                )
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------------


def check_returns(returns: Any, name: str = "returns") -> np.ndarray:
    """A 1-D float64 array of finite returns (a DataFrame / 2-D input must have one column)."""
    try:
        r = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers") from None
    if r.ndim == 2 and r.shape[1] == 1:
        r = r[:, 0]
    if r.ndim != 1:
        raise InputError(f"{name} must be one series (1-D or one column), got shape {r.shape}")
    bad = ~np.isfinite(r)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} holds {r[i]} at row {i} ({int(bad.sum())} non-finite value(s)); drop or "
            "fill them"
        )
    if r.size < 20:
        raise InputError(f"{name} has {r.size} value(s): a regime model needs at least 20")
    if np.ptp(r) == 0:
        raise InputError(f"{name} is constant ({r[0]}): there is no risk to model")
    return r


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def _mixture_of_gmm(gm: GaussianMixture) -> MixtureDistribution:
    return MixtureDistribution.normal(
        gm.weights_, gm.means_[:, 0], np.sqrt(gm.covariances_.reshape(-1))
    )


def _hmm_components(est: HMM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loc = est.means_[:, 0]
    cov = np.asarray(est.covariances_).reshape(loc.size, -1)[:, 0]
    df = np.asarray(getattr(est, "dof_", np.full(loc.size, np.inf)), dtype=np.float64)
    return loc, np.sqrt(cov), df.reshape(-1)


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """``π`` with ``π A = π``, ``Σ π = 1`` (least squares on the stacked system)."""
    A = np.asarray(transmat, dtype=np.float64)
    K = A.shape[0]
    system = np.vstack([A.T - np.eye(K), np.ones((1, K))])
    rhs = np.zeros(K + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(system, rhs, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def fit_regimes(
    returns: Any,
    n_states: int = 2,
    *,
    emission: str = "gaussian",
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_init: int = 5,
    random_state: Any = 0,
    max_iter: int = 500,
) -> RegimeReport:
    """Fit an ``n_states`` HMM (``emission`` ``"gaussian"`` or ``"student_t"``) and a Gaussian
    mixture of ``n_states`` components to a returns series; regimes, durations, stationary
    distribution and VaR/ES (model vs mixture vs Gaussian vs empirical) at ``levels``."""
    r = check_returns(returns)
    if not (isinstance(n_states, (int, np.integer)) and 1 <= n_states <= 10):
        raise ValueError(f"n_states must be an integer from 1 to 10, got {n_states!r}")
    if emission not in EMISSIONS:
        raise ValueError(f"emission must be one of {EMISSIONS}, got {emission!r}")
    levels = tuple(_check_level(level) for level in levels)
    X = r[:, None]
    common = {"n_init": n_init, "random_state": random_state, "max_iter": max_iter}
    if emission == "gaussian":
        est = _quiet(GaussianHMM(n_states, "full", **common).fit, X)
        name = f"GaussianHMM({n_states})"
    else:
        est = _quiet(HMM("student_t", n_states, **common).fit, X)
        name = f"Student-t HMM({n_states})"
    gm = _quiet(GaussianMixture(n_states, **common).fit, X)

    loc, scale, df = _hmm_components(est)
    vols = np.array(
        [MixtureDistribution.of(np.ones(1), loc[k], scale[k], df[k]).std() for k in range(loc.size)]
    )
    order = np.argsort(vols, kind="stable")
    rank = np.argsort(order)
    A = est.transmat_[np.ix_(order, order)]
    pi = stationary_distribution(A)
    states = rank[est.predict(X)]
    filtered = est.filter_proba(X)[:, order]
    next_day = filtered[-1] @ A
    regimes = tuple(
        Regime(
            mean=float(loc[k]),
            volatility=float(vols[k]),
            share=float(pi[j]),
            duration=float(1.0 / (1.0 - A[j, j])) if A[j, j] < 1 else float("inf"),
            days=int(np.sum(states == j)),
            df=None if np.isinf(df[k]) else float(df[k]),
        )
        for j, k in enumerate(order)
    )
    model_next = MixtureDistribution.of(next_day, loc[order], scale[order], df[order])
    model_stat = MixtureDistribution.of(pi, loc[order], scale[order], df[order])
    mixture = _mixture_of_gmm(gm)
    gauss = MixtureDistribution.normal(1.0, r.mean(), r.std())
    risk = []
    for level in levels:
        for source, dist in (
            ("HMM next day", model_next),
            ("HMM stationary", model_stat),
            ("Gaussian mixture", mixture),
            ("Gaussian", gauss),
        ):
            risk.append(RiskEstimate(source, level, dist.value_at_risk(level),
                                     dist.expected_shortfall(level)))
        risk.append(RiskEstimate("empirical", level, *empirical_risk(r, level)))
    exceed = _exceedances(r, filtered @ A, loc[order], scale[order], df[order], levels)
    return RegimeReport(
        model=name,
        n_observations=int(r.size),
        regimes=regimes,
        risk=tuple(risk),
        states=states,
        next_day=next_day,
        transmat=A,
        log_likelihood=float(est.score(X)),
        bic=float(est.bic(X)),
        exceedances=exceed,
        estimator=est,
        mixture=gm,
    )


def _exceedances(
    r: np.ndarray,
    predicted: np.ndarray,
    loc: np.ndarray,
    scale: np.ndarray,
    df: np.ndarray,
    levels: Sequence[float],
) -> dict[float, float]:
    """Share of days t ≥ 2 with ``r_t < −VaR_{t|t−1}`` (the one-step-ahead forecast); the
    quantiles of all days at once by bisection on the mixture CDF."""
    normal = np.isinf(df)
    v = np.where(normal, 2.0, df)

    def cdf(x: np.ndarray) -> np.ndarray:
        z = (x[:, None] - loc) / scale
        std = np.where(normal, stats.norm.cdf(z), stats.t.cdf(z, v))
        return np.sum(predicted[:-1] * std, axis=1)

    out = {}
    for level in levels:
        p = 1.0 - level
        zq = np.where(normal, stats.norm.ppf(p), stats.t.ppf(p, v))
        lo = np.full(r.size - 1, float(np.min(loc + scale * zq)))
        hi = np.full(r.size - 1, float(np.max(loc + scale * zq)))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        out[level] = float(np.mean(r[1:] < 0.5 * (lo + hi)))
    return out


# --------------------------------------------------------------------------------------------------
# the figure
# --------------------------------------------------------------------------------------------------


def plot_regimes(
    report: RegimeReport, returns: Any, path: str | os.PathLike | None = None, ax: Any = None
) -> Any:
    """Returns coloured by decoded regime (and the next-day VaR line of the highest level);
    written atomically to ``path`` when given.  Returns the axes."""
    from emkit.plotting import new_figure, plot_series_by_state, save_figure

    r = check_returns(returns)
    fig = None
    if ax is None:
        fig, ax = new_figure(figsize=(9.0, 4.0))
    labels = [
        f"regime {k}: vol {g.volatility:.2f}" + (f", {g.duration:.0f} days" if g.duration else "")
        for k, g in enumerate(report.regimes)
    ]
    plot_series_by_state(r, report.states, ax=ax, labels=labels)
    ax.set_xlabel("trading day")
    ax.set_ylabel("return")
    ax.set_title(f"{report.model}: returns by decoded regime")
    if path is not None:
        save_figure(ax.figure if fig is None else fig, Path(path))
    return ax
