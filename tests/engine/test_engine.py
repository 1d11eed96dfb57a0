"""Engine unit tests with a model written here: the genetic-linkage example of Dempster, Laird &
Rubin (1977), plus the monitor rules, Stats arithmetic, errors and validation.

Genetic linkage (DLR 1977, section 1; ORACLES.md): 197 animals fall in four cells with counts
(125, 18, 20, 34) and probabilities (1/2 + θ/4, (1−θ)/4, (1−θ)/4, θ/4).  The first cell is a
mixture of a "1/2" part and a "θ/4" part; EM splits it.  The MLE solves 197θ² − 15θ − 68 = 0:
θ̂ = 0.6268214979.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.special import expit, logit

from emkit.engine import (
    ArrayData,
    Batch,
    DataSource,
    EMConfig,
    Flattenable,
    Model,
    Monitor,
    NumericalError,
    Progress,
    Stats,
    expected_stats,
    fit,
    run_em,
)
from emkit.engine.stats import row_set, union_rows, unique_rows

COUNTS = np.array([125.0, 18.0, 20.0, 34.0])
THETA_HAT = 0.6268214979  # DLR (1977), to 10 digits
THETA_EXACT = (15.0 + math.sqrt(15.0**2 + 4.0 * 197.0 * 68.0)) / (2.0 * 197.0)


# --------------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkageStats(Stats):
    """Expected animals in the θ cells (θ/4 share of cell 1, and cell 4) and in the (1−θ) cells."""

    theta_cells: float
    other_cells: float


@dataclass(frozen=True)
class LinkageParams:
    theta: float


def cell_probabilities(theta: float) -> np.ndarray:
    return np.array([0.5 + theta / 4.0, (1.0 - theta) / 4.0, (1.0 - theta) / 4.0, theta / 4.0])


class LinkageModel:
    """Rows are animals (column 0: cell index 0..3); sample weights may carry the counts."""

    def init(self, data: ArrayData, rng: np.random.Generator) -> LinkageParams:
        return LinkageParams(float(rng.uniform(0.05, 0.95)))

    def prepare(self, params: LinkageParams) -> LinkageParams:
        return params

    def e_step(self, params: LinkageParams, batch) -> LinkageStats:
        theta = params.theta
        cell = batch.X[:, 0].astype(int)
        w = batch.weights
        share_theta = np.array([(theta / 4.0) / (0.5 + theta / 4.0), 0.0, 0.0, 1.0])[cell]
        other = np.array([0.0, 1.0, 1.0, 0.0])[cell]
        return LinkageStats(
            loglik=float(w @ np.log(cell_probabilities(theta)[cell])),
            weight=float(w.sum()),
            theta_cells=float(w @ share_theta),
            other_cells=float(w @ other),
        )

    def m_step(self, stats: LinkageStats, params: LinkageParams) -> LinkageParams:
        return LinkageParams(stats.theta_cells / (stats.theta_cells + stats.other_cells))

    def log_prior(self, params: LinkageParams) -> float:
        return 0.0

    def row_bytes(self, params: LinkageParams) -> int:
        return 64

    # SQUAREM extrapolates θ in logit coordinates: every real number maps into (0, 1)
    def flatten(self, params: LinkageParams) -> np.ndarray:
        return np.array([logit(params.theta)])

    def unflatten(self, vector: np.ndarray, like: LinkageParams) -> LinkageParams:
        return LinkageParams(float(expit(vector[0])))


class CountingLinkageModel(LinkageModel):
    """Records θ at every E-step (to count E-steps until θ̂ is reached)."""

    def __init__(self) -> None:
        self.evaluated: list[float] = []

    def e_step(self, params, batch):
        self.evaluated.append(params.theta)
        return super().e_step(params, batch)


class NoFlattenModel:
    """The linkage model without flatten/unflatten (SQUAREM cannot run on it)."""

    def __init__(self) -> None:
        self._inner = LinkageModel()

    def init(self, data, rng):
        return self._inner.init(data, rng)

    def prepare(self, params):
        return params

    def e_step(self, params, batch):
        return self._inner.e_step(params, batch)

    def m_step(self, stats, params):
        return self._inner.m_step(stats, params)

    def log_prior(self, params):
        return 0.0

    def row_bytes(self, params):
        return 64


class NaNPriorModel(LinkageModel):
    """A model whose objective becomes NaN once θ exceeds a threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def log_prior(self, params: LinkageParams) -> float:
        return math.nan if params.theta > self.threshold else 0.0


def counts_data() -> ArrayData:
    """Four rows (the cells) weighted by their counts."""
    return ArrayData.of(np.arange(4.0)[:, None], COUNTS)


def animals_data() -> ArrayData:
    """197 rows, one per animal, unit weights."""
    return ArrayData.of(np.repeat(np.arange(4.0), COUNTS.astype(int))[:, None])


def plain_em(model, data, theta0: float, steps: int) -> LinkageParams:
    """``steps`` applications of the engine's plain EM map (one M-step per call)."""
    params = LinkageParams(theta0)
    for _ in range(steps):
        result = run_em(model, data, params, EMConfig(max_iter=1, tol=0.0))
        assert result.n_iter == 1
        params = result.params
    return params


# --------------------------------------------------------------------------------------------------
# genetic linkage: plain EM and SQUAREM reach the published MLE
# --------------------------------------------------------------------------------------------------


def test_linkage_model_satisfies_the_protocols() -> None:
    assert isinstance(LinkageModel(), Model)
    assert isinstance(LinkageModel(), Flattenable)
    assert not isinstance(NoFlattenModel(), Flattenable)


def test_published_theta_is_the_root_of_the_likelihood_equation() -> None:
    assert THETA_EXACT == pytest.approx(THETA_HAT, abs=5e-11)
    # θ̂ is a fixed point of the EM map
    model, data = LinkageModel(), counts_data()
    stats = expected_stats(model, LinkageParams(THETA_EXACT), data, max_rows=4)
    assert model.m_step(stats, LinkageParams(THETA_EXACT)).theta == pytest.approx(
        THETA_EXACT, abs=1e-15
    )


def test_plain_em_reaches_theta_hat() -> None:
    params = plain_em(LinkageModel(), counts_data(), 0.5, steps=25)
    assert params.theta == pytest.approx(THETA_HAT, abs=1e-9)


def test_plain_em_run_to_convergence_stops_at_the_likelihood_plateau() -> None:
    # The relative rule on the log-likelihood stops once ℓ no longer changes in float64; θ is
    # then within ~1e-8 (ℓ is flat at the optimum: Δℓ ≈ ½·I·Δθ²).
    result = run_em(LinkageModel(), counts_data(), LinkageParams(0.5), EMConfig(tol=1e-14))
    assert result.converged
    assert result.params.theta == pytest.approx(THETA_HAT, abs=1e-7)
    assert result.history[-1] * 197 == pytest.approx(result.loglik, rel=1e-15)
    assert np.all(np.diff(result.history) >= 0)


def test_squarem_reaches_theta_hat() -> None:
    config = EMConfig(max_iter=100, tol=0.0, accelerate="squarem")
    result = run_em(LinkageModel(), counts_data(), LinkageParams(0.5), config)
    assert result.params.theta == pytest.approx(THETA_HAT, abs=1e-9)
    assert np.all(np.diff(result.history) >= -1e-15)


@pytest.mark.parametrize("theta0", [0.05, 0.5, 0.95])
def test_squarem_needs_fewer_esteps_than_plain_em(theta0: float) -> None:
    """E-steps until the point being evaluated is within 1e-9 of θ̂, counted the same way."""

    def esteps_to_reach(model: CountingLinkageModel) -> int:
        error = np.abs(np.asarray(model.evaluated) - THETA_EXACT)
        hits = np.flatnonzero(error < 1e-9)
        assert hits.size, f"never within 1e-9 of θ̂ (closest {error.min():.3g})"
        return int(hits[0]) + 1

    plain = CountingLinkageModel()
    plain_em(plain, counts_data(), theta0, steps=30)
    squarem = CountingLinkageModel()
    config = EMConfig(max_iter=100, tol=0.0, accelerate="squarem")
    run_em(squarem, counts_data(), LinkageParams(theta0), config)
    plain_count, squarem_count = esteps_to_reach(plain), esteps_to_reach(squarem)
    assert squarem_count < plain_count


def test_weights_equal_repeated_rows_in_the_engine() -> None:
    model = LinkageModel()
    config = EMConfig(max_iter=8, tol=0.0)
    weighted = run_em(model, counts_data(), LinkageParams(0.3), config)
    repeated = run_em(model, animals_data(), LinkageParams(0.3), config)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-13)
    assert weighted.params.theta == pytest.approx(repeated.params.theta, rel=1e-13)
    assert weighted.stats.allclose(repeated.stats, rtol=1e-12)


@pytest.mark.parametrize("max_rows", [1, 2, 3, 50, 197])
def test_chunked_e_step_equals_one_pass(max_rows: int) -> None:
    model, data, params = LinkageModel(), animals_data(), LinkageParams(0.4)
    whole = expected_stats(model, params, data, max_rows=10**6)
    assert expected_stats(model, params, data, max_rows=max_rows).allclose(whole, rtol=1e-12)
    result = run_em(model, data, params, EMConfig(max_iter=3, tol=0.0, max_rows=max_rows))
    reference = run_em(model, data, params, EMConfig(max_iter=3, tol=0.0))
    np.testing.assert_allclose(result.history, reference.history, rtol=1e-13)


def test_expected_stats_of_no_rows_is_an_error() -> None:
    empty = ArrayData.of(np.empty((0, 1)))
    with pytest.raises(ValueError, match="no rows"):
        expected_stats(LinkageModel(), LinkageParams(0.5), empty, max_rows=10)


# --------------------------------------------------------------------------------------------------
# the loop: results, callbacks, restarts, errors
# --------------------------------------------------------------------------------------------------


def test_result_bookkeeping_of_plain_em() -> None:
    seen: list[Progress] = []
    result = run_em(
        LinkageModel(),
        counts_data(),
        LinkageParams(0.5),
        EMConfig(max_iter=5, tol=0.0),
        callback=seen.append,
    )
    assert result.n_iter == 5 and result.n_estep == 6 and not result.converged
    assert len(result.history) == 6
    assert [p.iteration for p in seen] == [1, 2, 3, 4, 5]
    assert [p.mean_objective for p in seen] == list(result.history[1:])
    assert {(p.restart, p.n_restarts) for p in seen} == {(0, 1)}
    assert result.stats.weight == 197.0
    assert result.objective == result.loglik  # log_prior is 0
    assert result.mean_objective == pytest.approx(result.history[-1], rel=1e-15)
    # the returned parameters own the returned statistics
    again = expected_stats(LinkageModel(), result.params, counts_data(), max_rows=4)
    assert again.allclose(result.stats, rtol=0.0)


def test_max_iter_zero_evaluates_the_start_only() -> None:
    result = run_em(LinkageModel(), counts_data(), LinkageParams(0.5), EMConfig(max_iter=0))
    assert result.params == LinkageParams(0.5)
    assert result.n_iter == 0 and result.n_estep == 1 and not result.converged
    assert len(result.history) == 1


@pytest.mark.parametrize("max_iter", [1, 2, 3, 4, 5, 6, 7, 9])
def test_squarem_respects_max_iter(max_iter: int) -> None:
    config = EMConfig(max_iter=max_iter, tol=0.0, accelerate="squarem")
    result = run_em(LinkageModel(), counts_data(), LinkageParams(0.1), config)
    assert result.n_iter == max_iter


def test_squarem_needs_flatten() -> None:
    config = EMConfig(accelerate="squarem")
    with pytest.raises(TypeError, match="flatten"):
        run_em(NoFlattenModel(), counts_data(), LinkageParams(0.5), config)
    # plain EM runs on it
    result = run_em(NoFlattenModel(), counts_data(), LinkageParams(0.5), EMConfig(tol=1e-12))
    assert result.params.theta == pytest.approx(THETA_HAT, abs=1e-6)


def test_restarts_keep_the_best_and_report_all() -> None:
    model, data = LinkageModel(), counts_data()
    config = EMConfig(max_iter=2, tol=0.0)  # two steps leave the restarts apart
    seen: list[Progress] = []
    result = fit(model, data, config, rng=np.random.default_rng(0), n_init=5, callback=seen.append)
    assert len(result.restart_objectives) == 5
    # the callback knows the run: two steps in each of the five
    assert [(p.restart, p.iteration) for p in seen] == [(r, i) for r in range(5) for i in (1, 2)]
    assert {p.n_restarts for p in seen} == {5}
    last = [p.mean_objective for p in seen if p.iteration == 2]
    assert last == pytest.approx([o / 197.0 for o in result.restart_objectives], rel=1e-14)
    assert result.objective == max(result.restart_objectives)
    assert result.restart_objectives[result.best_restart] == result.objective
    # the same draws, one run at a time
    rng = np.random.default_rng(0)
    singles = [run_em(model, data, model.init(data, rng), config).objective for _ in range(5)]
    assert list(result.restart_objectives) == singles
    assert len(set(singles)) == 5


def test_init_params_seed_the_first_restart_only() -> None:
    model, data = LinkageModel(), counts_data()
    config = EMConfig(max_iter=0)
    result = fit(
        model,
        data,
        config,
        rng=np.random.default_rng(1),
        n_init=3,
        init_params=LinkageParams(THETA_EXACT),
    )
    assert result.best_restart == 0  # the optimum itself beats the random starts
    assert result.params == LinkageParams(THETA_EXACT)
    rng = np.random.default_rng(1)
    others = [run_em(model, data, model.init(data, rng), config).objective for _ in range(2)]
    assert list(result.restart_objectives[1:]) == others


@pytest.mark.parametrize("n_init", [0, -1, 1.5, 2.5])
def test_n_init_must_be_a_positive_integer(n_init) -> None:
    with pytest.raises(ValueError, match="n_init"):
        fit(LinkageModel(), counts_data(), rng=np.random.default_rng(0), n_init=n_init)


def test_numerical_error_when_the_objective_becomes_nan() -> None:
    # θ: 0.5 -> 0.608 after one M-step, where the prior turns NaN
    model = NaNPriorModel(threshold=0.6)
    with pytest.raises(NumericalError, match="after 1 iterations"):
        run_em(model, counts_data(), LinkageParams(0.5), EMConfig(max_iter=10, tol=0.0))
    with pytest.raises(NumericalError, match="after 0 iterations"):
        run_em(model, counts_data(), LinkageParams(0.7), EMConfig(max_iter=10, tol=0.0))
    config = EMConfig(max_iter=10, tol=0.0, accelerate="squarem")
    with pytest.raises(NumericalError, match="log-likelihood is nan"):
        run_em(model, counts_data(), LinkageParams(0.5), config)
    assert issubclass(NumericalError, FloatingPointError)


def test_numerical_error_on_an_infinite_log_likelihood() -> None:
    # θ = 0 gives the observed fourth cell probability 0: ℓ = −inf
    with np.errstate(divide="ignore"), pytest.raises(NumericalError, match="-inf"):
        run_em(LinkageModel(), counts_data(), LinkageParams(0.0), EMConfig(max_iter=3))


# --------------------------------------------------------------------------------------------------
# EMConfig validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_iter": -1}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"tol": -1e-3}, "tol"),
        ({"tol": math.nan}, "tol"),
        ({"stopping": "absolute"}, "stopping"),
        ({"accelerate": "anderson"}, "accelerate"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_em_config_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMConfig(**kwargs)


def test_em_config_defaults_and_monitor() -> None:
    config = EMConfig(tol=1e-7, stopping="aitken")
    assert config.monitor == Monitor(1e-7, "aitken")
    assert EMConfig().max_iter == 100 and EMConfig().accelerate == "none"
    assert EMConfig(max_iter=3.0).max_iter == 3  # integral floats are accepted


# --------------------------------------------------------------------------------------------------
# Monitor rules on synthetic sequences
# --------------------------------------------------------------------------------------------------


def geometric(limit: float, gap: float, rate: float, n: int) -> list[float]:
    """ℓ_t = limit − gap·rateᵗ: EM's linear convergence."""
    return [limit - gap * rate**t for t in range(n)]


def first_stop(monitor: Monitor, sequence: list[float]) -> int | None:
    for t in range(1, len(sequence) + 1):
        if monitor.converged(sequence[:t]):
            return t - 1
    return None


def test_monitor_needs_two_values() -> None:
    for rule in ("relative", "aitken"):
        assert not Monitor(1.0, rule).converged([])
        assert not Monitor(1.0, rule).converged([-3.0])


def test_relative_rule_threshold() -> None:
    monitor = Monitor(tol=1e-4, rule="relative")
    scale = 1e-4 * (1.0 + 10.0)
    assert monitor.converged([-10.0 - 0.99 * scale, -10.0])
    assert not monitor.converged([-10.0 - 1.01 * scale, -10.0])
    # a decrease counts by its size too
    assert monitor.converged([-10.0, -10.0 - 0.5 * scale])
    assert not monitor.converged([-10.0, -10.5])
    assert Monitor(tol=0.0).converged([-2.0, -2.0])
    assert not Monitor(tol=0.0).converged([-2.0, -2.0 + 1e-15])


def test_aitken_needs_three_values() -> None:
    monitor = Monitor(tol=1e-3, rule="aitken")
    assert not monitor.converged([-1.0, -1.0])
    assert monitor.converged([-1.0, -1.0, -1.0])  # no change twice: converged


def test_aitken_predicts_the_limit_of_a_linear_sequence() -> None:
    tol, limit = 1e-8, -2.0
    seq = geometric(limit, gap=1.0, rate=0.9, n=400)
    stop = first_stop(Monitor(tol, "aitken"), seq)
    assert stop is not None
    # Aitken's limit is exact on a geometric sequence: it stops exactly when the true distance
    # to the limit first falls below tol·(1 + |ℓ|)
    true_stop = next(t for t in range(2, 400) if abs(limit - seq[t]) <= tol * (1 + abs(seq[t])))
    assert abs(stop - true_stop) <= 1


def test_relative_rule_stops_early_when_em_crawls_and_aitken_does_not() -> None:
    tol, limit = 1e-8, -2.0
    seq = geometric(limit, gap=1.0, rate=0.98, n=2000)
    relative = first_stop(Monitor(tol, "relative"), seq)
    aitken = first_stop(Monitor(tol, "aitken"), seq)
    assert relative is not None and aitken is not None
    # at rate 0.98 the step is 2% of the remaining distance: the relative rule stops while
    # the true distance to the limit is still ~50× the tolerance; Aitken's rule waits
    assert abs(limit - seq[relative]) > 10 * tol * (1 + abs(seq[relative]))
    assert abs(limit - seq[aitken]) <= tol * (1 + abs(seq[aitken])) * 1.0001
    assert aitken > relative


def test_aitken_is_strict_outside_the_linear_regime() -> None:
    monitor = Monitor(tol=1e-4, rule="aitken")
    # oscillating steps (rate < 0): only a step 1000× below the tolerance counts
    assert not monitor.converged([-1.0, -1.0 + 1e-6, -1.0 + 5e-7])
    assert monitor.converged([-1.0, -1.0 + 1e-6, -1.0 + 1e-6 - 1e-8])
    # accelerating steps (rate > 1)
    assert not monitor.converged([-1.0, -1.0 + 1e-6, -1.0 + 3e-6])


@pytest.mark.parametrize(
    ("tol", "rule"), [(-1.0, "relative"), (math.nan, "aitken"), (1e-3, "absolute")]
)
def test_monitor_validation(tol: float, rule: str) -> None:
    with pytest.raises(ValueError):
        Monitor(tol, rule)


# --------------------------------------------------------------------------------------------------
# Stats arithmetic
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorStats(Stats):
    counts: np.ndarray
    total: float


@dataclass(frozen=True)
class OtherStats(Stats):
    counts: np.ndarray
    total: float


def vs(loglik, weight, counts, total) -> VectorStats:
    return VectorStats(loglik, weight, np.asarray(counts, dtype=np.float64), total)


def test_stats_add_fieldwise() -> None:
    a = vs(-1.0, 2.0, [1.0, 2.0], 3.0)
    b = vs(-2.5, 1.0, [0.5, 0.0], 4.0)
    c = a + b
    assert type(c) is VectorStats
    assert c.loglik == -3.5 and c.weight == 3.0 and c.total == 7.0
    np.testing.assert_array_equal(c.counts, [1.5, 2.0])
    np.testing.assert_array_equal(a.counts, [1.0, 2.0])  # operands are not modified


def test_stats_scale_by_a_scalar() -> None:
    a = vs(-1.0, 2.0, [1.0, 2.0], 3.0)
    for scaled in (2.0 * a, a * 2.0, np.float64(2.0) * a):
        assert type(scaled) is VectorStats
        assert scaled.loglik == -2.0 and scaled.weight == 4.0 and scaled.total == 6.0
        np.testing.assert_array_equal(scaled.counts, [2.0, 4.0])
    assert (0.0 * a).allclose(a.zeros_like(), rtol=0.0)


def test_stats_sum_starts_from_zero() -> None:
    parts = [
        vs(-1.0, 1.0, [1.0, 0.0], 1.0),
        vs(-2.0, 2.0, [0.0, 2.0], 2.0),
        vs(-3.0, 3.0, [3.0, 3.0], 3.0),
    ]
    total = sum(parts)
    assert total.allclose(parts[0] + parts[1] + parts[2], rtol=0.0)
    assert total.loglik == -6.0 and total.weight == 6.0
    assert sum(parts[:1]) is parts[0]


def test_stats_zeros_like_is_the_additive_zero() -> None:
    a = vs(-1.0, 2.0, [[1.0, 2.0], [3.0, 4.0]], 3.0)
    zero = a.zeros_like()
    assert type(zero) is VectorStats
    assert zero.counts.shape == (2, 2) and not zero.counts.any()
    assert zero.loglik == 0.0 and zero.weight == 0.0 and zero.total == 0.0
    assert (a + zero).allclose(a, rtol=0.0)
    assert (zero + a).allclose(a, rtol=0.0)


def test_stats_type_mismatch() -> None:
    a = vs(-1.0, 2.0, [1.0, 2.0], 3.0)
    other = OtherStats(-1.0, 2.0, np.array([1.0, 2.0]), 3.0)
    with pytest.raises(TypeError):
        a + other  # noqa: B018
    with pytest.raises(TypeError):
        a + 1  # noqa: B018
    with pytest.raises(TypeError):
        1 + a  # noqa: B018
    assert not a.allclose(other)
    assert not a.allclose(vs(-1.0, 2.0, [1.0, 2.5], 3.0))
    assert a.allclose(vs(-1.0, 2.0, [1.0, 2.0 + 1e-13], 3.0))


def test_stats_are_frozen_and_with_loglik_copies() -> None:
    a = vs(-1.0, 2.0, [1.0, 2.0], 3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.loglik = 0.0  # type: ignore[misc]
    b = a.with_loglik(-7.0)
    assert b.loglik == -7.0 and a.loglik == -1.0 and b.total == a.total


@dataclass(frozen=True)
class NestedStats(Stats):
    sums: tuple


def test_stats_fields_may_nest_tuples() -> None:
    a = NestedStats(-1.0, 1.0, (np.array([1.0, 2.0]), (np.ones((2, 2)), 3.0)))
    b = NestedStats(-2.0, 2.0, (np.array([0.5, 0.5]), (np.eye(2), 1.0)))
    c = a + b
    np.testing.assert_array_equal(c.sums[0], [1.5, 2.5])
    np.testing.assert_array_equal(c.sums[1][0], [[2.0, 1.0], [1.0, 2.0]])
    assert c.sums[1][1] == 4.0
    d = 2.0 * a
    np.testing.assert_array_equal(d.sums[1][0], 2.0 * np.ones((2, 2)))
    zero = a.zeros_like()
    assert zero.sums[0].shape == (2,) and zero.sums[1][1] == 0.0
    assert (a + zero).allclose(a, rtol=0.0)
    assert sum([a, b]).allclose(c, rtol=0.0)
    assert not c.allclose(a)


def test_base_stats_alone_are_additive() -> None:
    s = Stats(loglik=-1.0, weight=1.0) + Stats(loglik=-2.0, weight=3.0)
    assert s == Stats(loglik=-3.0, weight=4.0)
    assert 0.5 * s == Stats(loglik=-1.5, weight=2.0)


@dataclass(frozen=True)
class SeenStats(Stats):
    counts: np.ndarray  # Σ w x (summed)
    seen: np.ndarray = row_set()  # the distinct rows of x (merged by union)


def seen_stats(x: np.ndarray, w: np.ndarray) -> SeenStats:
    """A toy E-step over boolean rows: ``Σ w x`` and the set of distinct rows (packed)."""
    return SeenStats(0.0, float(w.sum()), w @ x, unique_rows(np.packbits(x, axis=1)))


def test_a_declared_set_field_merges_by_union() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((60, 11)) < 0.3
    x[:20] = x[0]  # repeated rows
    w = rng.uniform(0.5, 2.0, 60)
    whole = seen_stats(x, w)
    assert whole.seen.dtype == np.uint8 and whole.seen.shape[1] == 2
    assert whole.seen.shape[0] == np.unique(x, axis=0).shape[0]
    for cut in (1, 20, 37):
        parts = [seen_stats(x[:cut], w[:cut]), seen_stats(x[cut:], w[cut:])]
        assert (parts[0] + parts[1]).allclose(whole, rtol=1e-12)  # e_step(a)+e_step(b)
        assert (parts[1] + parts[0]).allclose(whole, rtol=1e-12)
        assert sum(parts).allclose(whole, rtol=1e-12)
    assert (whole + whole).allclose(2.0 * whole, rtol=0.0)  # a union is idempotent
    # scaling scales the sums and leaves the set as it is; the zero holds the empty set
    half = 0.5 * whole
    np.testing.assert_array_equal(half.counts, 0.5 * whole.counts)
    np.testing.assert_array_equal(half.seen, whole.seen)
    zero = whole.zeros_like()
    assert zero.seen.shape == (0, 2) and zero.seen.dtype == np.uint8 and not zero.counts.any()
    assert (whole + zero).allclose(whole, rtol=0.0) and (zero + whole).allclose(whole, rtol=0.0)
    # sets compare exactly; sets of different widths do not merge
    assert not dataclasses.replace(whole, seen=whole.seen[1:]).allclose(whole)
    with pytest.raises(ValueError, match="cannot be merged"):
        union_rows(whole.seen, np.zeros((1, 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------------
# batches that carry a response y and sparse X: a mixture of two linear regressions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RegressionParams:
    weights: np.ndarray  # (K,)
    coef: np.ndarray  # (K, D)
    variances: np.ndarray  # (K,)


@dataclass(frozen=True)
class RegressionStats(Stats):
    nk: np.ndarray  # Σ w r_k
    xtx: np.ndarray  # (K, D, D) Σ w r_k x xᵀ
    xty: np.ndarray  # (K, D) Σ w r_k x y
    yty: np.ndarray  # (K,) Σ w r_k y²


class RegressionMixture:
    """``y | x ~ Σ_k π_k N(xᵀβ_k, σ_k²)``: the E-step reads ``batch.y``; ``batch.X`` may be a
    SciPy sparse matrix (the products below work on either)."""

    K = 2

    def init(self, data: ArrayData, rng: np.random.Generator) -> RegressionParams:
        D = data.width
        return RegressionParams(np.full(2, 0.5), rng.normal(size=(2, D)), np.ones(2))

    def prepare(self, params: RegressionParams) -> RegressionParams:
        return params

    def e_step(self, params: RegressionParams, batch: Batch) -> RegressionStats:
        assert batch.y is not None
        mean = np.asarray(batch.X @ params.coef.T)  # (n, K)
        resid = batch.y[:, None] - mean
        logp = (
            np.log(params.weights)
            - 0.5 * np.log(2 * np.pi * params.variances)
            - 0.5 * resid**2 / params.variances
        )
        row = np.logaddexp.reduce(logp, axis=1)
        R = np.exp(logp - row[:, None]) * batch.weights[:, None]
        xtx = np.stack([weighted_gram(batch.X, R[:, k]) for k in range(self.K)])
        return RegressionStats(
            loglik=float(batch.weights @ row),
            weight=float(batch.weights.sum()),
            nk=R.sum(axis=0),
            xtx=xtx,
            xty=np.asarray(batch.X.T @ (R * batch.y[:, None])).T,
            yty=R.T @ batch.y**2,
        )

    def m_step(self, stats: RegressionStats, params: RegressionParams) -> RegressionParams:
        coef = np.linalg.solve(stats.xtx, stats.xty[..., None])[..., 0]
        rss = stats.yty - np.einsum("kd,kd->k", coef, stats.xty)
        return RegressionParams(stats.nk / stats.nk.sum(), coef, rss / stats.nk)

    def log_prior(self, params: RegressionParams) -> float:
        return 0.0

    def row_bytes(self, params: RegressionParams) -> int:
        return 64


def weighted_gram(X: Any, r: np.ndarray) -> np.ndarray:
    """``Σ_n r_n x_n x_nᵀ`` of dense or sparse rows."""
    from scipy import sparse

    if sparse.issparse(X):
        return (X.T @ X.multiply(r[:, None])).toarray()
    return X.T @ (X * r[:, None])


def regression_data(sparse_x: bool) -> ArrayData:
    from scipy import sparse

    rng = np.random.default_rng(7)
    n, D = 3000, 5
    X = rng.normal(size=(n, D)) * (rng.uniform(size=(n, D)) < 0.4)  # 60 % zeros
    X[:, 0] = 1.0
    beta = np.array([[1.0, 2.0, -1.0, 0.0, 0.5], [-2.0, -1.0, 1.0, 3.0, 0.0]])
    z = rng.integers(2, size=n)
    y = np.einsum("nd,nd->n", X, beta[z]) + rng.normal(scale=0.3, size=n)
    return ArrayData.of(sparse.csr_matrix(X) if sparse_x else X, rng.uniform(0.5, 2, n), y)


def test_batches_carry_the_response_and_sparse_rows() -> None:
    from scipy import sparse

    dense, csr = regression_data(False), regression_data(True)
    assert sparse.issparse(csr.X)
    batches = list(csr.batches(1000))
    assert len(batches) == 3 and all(b.y is not None and b.y.shape == (b.n_rows,) for b in batches)
    assert sparse.issparse(batches[0].X)
    np.testing.assert_array_equal(np.concatenate([b.y for b in batches]), csr.y)
    model, config = RegressionMixture(), EMConfig(max_iter=200, tol=1e-10, max_rows=700, n_jobs=2)
    start = RegressionParams(
        np.full(2, 0.5), np.array([[0.5, 1, 0, 0, 0], [-1, 0, 0, 1, 0.0]]), np.ones(2)
    )
    a, b = run_em(model, dense, start, config), run_em(model, csr, start, config)
    assert a.converged and b.converged and a.n_iter == b.n_iter
    np.testing.assert_allclose(b.params.coef, a.params.coef, rtol=1e-10)
    order = np.argsort(a.params.coef[:, 0])[::-1]
    np.testing.assert_allclose(a.params.coef[order], [[1, 2, -1, 0, 0.5], [-2, -1, 1, 3, 0]],
                               atol=0.05)
    np.testing.assert_allclose(np.sqrt(a.params.variances), 0.3, rtol=0.1)
    # one batch or many, one thread or two: the same fixed point
    whole = run_em(model, dense, start, EMConfig(max_iter=200, tol=1e-10, n_jobs=1))
    np.testing.assert_allclose(whole.params.coef, a.params.coef, rtol=1e-8)


def test_a_sample_for_init_is_bounded_and_keeps_rows_whole() -> None:
    from emkit.engine.data import SequenceData

    data = regression_data(False)
    assert isinstance(data, DataSource) and isinstance(SequenceData.of(data.X), DataSource)
    assert data.sample(5000, np.random.default_rng(0)) is data  # small enough: itself, no draw
    part = data.sample(100, np.random.default_rng(0))
    assert part.n_rows == 100
    rows = [int(np.flatnonzero(data.y == y)[0]) for y in part.y]  # y is continuous: unique
    assert rows == sorted(rows) and len(set(rows)) == 100
    np.testing.assert_array_equal(part.X, data.X[rows])
    np.testing.assert_array_equal(part.weights, data.weights[rows])
    csr = regression_data(True).sample(100, np.random.default_rng(0))
    np.testing.assert_array_equal(csr.X.toarray(), part.X)
