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

import numpy as np
import pytest
from scipy.special import expit, logit

from emkit.engine import (
    ArrayData,
    EMConfig,
    Flattenable,
    Model,
    Monitor,
    NumericalError,
    Stats,
    expected_stats,
    fit,
    run_em,
)

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
    seen: list[tuple[int, float]] = []
    result = run_em(
        LinkageModel(),
        counts_data(),
        LinkageParams(0.5),
        EMConfig(max_iter=5, tol=0.0),
        callback=lambda it, ll: seen.append((it, ll)),
    )
    assert result.n_iter == 5 and result.n_estep == 6 and not result.converged
    assert len(result.history) == 6
    assert [it for it, _ in seen] == [1, 2, 3, 4, 5]
    assert [ll for _, ll in seen] == list(result.history[1:])
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
    result = fit(model, data, config, rng=np.random.default_rng(0), n_init=5)
    assert len(result.restart_objectives) == 5
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
