"""Online (stepwise) EM: step sizes, the running average, the noisy-likelihood monitor, and the
estimators' partial_fit / fit_stream (the registry's item 6 checks full-batch equality)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import emkit
from emkit.engine import ArrayData, EMConfig, expected_stats, run_em
from emkit.engine.online import OnlineMonitor, OnlineState, StepSizes, online_step, run_online
from emkit.families.gaussian import Gaussian
from emkit.models.mixture import ComponentCollapseWarning, FamilyMixture


def two_clusters(seed: int, n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n // 2, 2)), rng.normal(size=(n - n // 2, 2)) * 0.5 + 3])
    return X[rng.permutation(n)]


def test_step_sizes() -> None:
    sizes = StepSizes(t0=2.0, kappa=0.6)
    assert sizes(0) == 1.0
    assert sizes(1) == pytest.approx(3.0**-0.6)
    assert sizes(10) == pytest.approx(12.0**-0.6)
    assert all(StepSizes(0.0, 0.0)(t) == 1.0 for t in range(5))
    for bad in ({"kappa": 1.5}, {"kappa": -0.1}, {"t0": -1.0}, {"t0": float("nan")}):
        with pytest.raises(ValueError, match="t0|kappa"):
            StepSizes(**bad)


def test_running_average_is_the_stepwise_formula() -> None:
    """s̄_1 = s_1/|B_1|, s̄_2 = (1 − ρ_1) s̄_1 + ρ_1 s_2/|B_2|, and the M-step sees N·s̄."""
    X = two_clusters(0, 600)
    model = FamilyMixture(Gaussian("full", 1e-6, X.mean(axis=0)), 2, n_features=2)
    a, b = ArrayData.of(X[:200]), ArrayData.of(X[200:])
    params = model.init(ArrayData.of(X), np.random.default_rng(0))
    sizes = StepSizes(2.0, 0.6)
    s1 = expected_stats(model, params, a, 10**9)
    state = online_step(model, OnlineState(params), s1, sizes, scale=600.0)
    assert state.average.allclose(s1 * (1 / 200), rtol=1e-14)
    s2 = expected_stats(model, state.params, b, 10**9)
    state2 = online_step(model, state, s2, sizes, scale=600.0)
    rho = 3.0**-0.6
    expected = s1 * ((1 - rho) / 200) + s2 * (rho / 400)
    assert state2.average.allclose(expected, rtol=1e-12)
    again = model.m_step(expected * 600.0, state.params)
    np.testing.assert_allclose(state2.params.components.means, again.components.means, rtol=1e-12)
    assert state2.steps == 2 and state2.weight_seen == 600.0
    assert state2.history == pytest.approx((s1.loglik / 200, s2.loglik / 400))


def test_a_batch_without_weight_is_refused() -> None:
    X = two_clusters(1, 100)
    model = FamilyMixture(Gaussian("diag", 1e-6, X.mean(axis=0)), 2, n_features=2)
    data = ArrayData.of(X[:10], np.zeros(10))
    params = model.init(ArrayData.of(X), np.random.default_rng(0))
    with pytest.raises(ValueError, match="no weight"):
        run_online(model, OnlineState(params), [data])


def test_monitor_settles_on_noise_and_not_on_a_trend() -> None:
    rng = np.random.default_rng(2)
    monitor = OnlineMonitor(tol=1e-6, window=10)
    noisy_flat = list(-3.0 + 0.05 * rng.standard_normal(40))
    assert monitor.converged(noisy_flat)
    rising = list(-3.0 + np.linspace(0.0, 1.0, 40) + 0.001 * rng.standard_normal(40))
    assert not monitor.converged(rising)
    assert not monitor.converged(noisy_flat[:19])  # two windows needed
    with pytest.raises(ValueError, match="window"):
        OnlineMonitor(window=1)


def test_one_pass_over_mini_batches_nears_the_batch_optimum() -> None:
    """One pass of 40 batches of 100 rows: the mean log-likelihood within 1 % of batch EM's, the
    means within 0.1 of its."""
    X = two_clusters(3)
    batch = emkit.GaussianMixture(2, random_state=0).fit(X)
    online = emkit.GaussianMixture(2, random_state=0).fit_stream(np.array_split(X, 40))
    assert online.n_iter_ == 40 and online.history_.shape == (40,)
    assert abs(online.score(X) - batch.score(X)) <= 0.01 * abs(batch.score(X))
    order = np.argsort(online.means_[:, 0])
    np.testing.assert_allclose(
        online.means_[order], batch.means_[np.argsort(batch.means_[:, 0])], atol=0.1
    )


def test_stop_early_ends_the_pass_when_the_likelihoods_settle() -> None:
    X = two_clusters(4, 20_000)
    batches = np.array_split(X, 200)
    seen = []
    online = emkit.GaussianMixture(2, random_state=0).fit_stream(
        batches, stop_early=True, callback=lambda p: seen.append(p.iteration)
    )
    assert online.converged_ and 20 <= online.n_iter_ < 200
    assert seen == list(range(1, online.n_iter_ + 1))
    full = emkit.GaussianMixture(2, random_state=0).fit_stream(batches)
    assert full.n_iter_ == 200 and full.converged_


def test_partial_fit_continues_and_fit_starts_over() -> None:
    X = two_clusters(5, 1000)
    gm = emkit.GaussianMixture(2, random_state=0)
    for part in np.array_split(X, 5):
        gm.partial_fit(part)
    assert gm.n_iter_ == 5 and gm.history_.shape == (5,)
    gm.fit(X)
    converged_iterations = gm.n_iter_
    gm.partial_fit(X[:100])  # a new average from the fitted parameters
    assert gm.n_iter_ == 1
    assert converged_iterations > 1
    with pytest.raises(ValueError, match="features"):
        gm.partial_fit(np.ones((10, 3)))


def test_fit_stream_takes_weights_and_dataframes() -> None:
    pd = pytest.importorskip("pandas")
    X = two_clusters(6, 800)
    frames = [pd.DataFrame(p, columns=["a", "b"]) for p in np.array_split(X, 4)]
    gm = emkit.GaussianMixture(2, random_state=0).fit_stream(frames)
    assert list(gm.feature_names_in_) == ["a", "b"]
    weighted = emkit.GaussianMixture(2, random_state=0).fit_stream(
        [(p, np.ones(len(p))) for p in np.array_split(X, 4)]
    )
    np.testing.assert_allclose(weighted.means_, gm.means_, rtol=1e-12)
    with pytest.raises(ValueError, match="pair"):
        emkit.GaussianMixture(2).fit_stream([(X, None, None)])
    with pytest.raises(ValueError, match="no batches"):
        emkit.GaussianMixture(2).fit_stream([])


def test_hmm_streams_sequences() -> None:
    """Twelve batches of two sequences each: the state means near the truth (0 and 3) and those
    of Baum-Welch on all the sequences at once."""
    rng = np.random.default_rng(7)
    states = (np.cumsum(rng.random(12_000) < 0.05) % 2).astype(int)
    X = (states * 3.0 + rng.normal(size=12_000))[:, None]
    batch = emkit.GaussianHMM(2, random_state=0).fit(X, [500] * 24)
    model = emkit.GaussianHMM(2, random_state=0)
    model.fit_stream([(X[i : i + 1000], [500, 500]) for i in range(0, 12_000, 1000)])
    assert model.n_iter_ == 12
    means = np.sort(model.means_.ravel())
    np.testing.assert_allclose(means, [0.0, 3.0], atol=0.1)
    np.testing.assert_allclose(means, np.sort(batch.means_.ravel()), atol=0.1)
    with pytest.raises(ValueError, match="lengths"):
        model.fit_stream([(X, [1, 2, 3])])


def test_a_collapsed_component_is_reseeded_and_the_average_stays_finite() -> None:
    """A start with a component far from every row: its batch statistics are zero, the M-step
    re-seeds it, and the running average of the re-seeded component comes from later batches."""
    X = two_clusters(8, 2000)
    means = np.array([[0.0, 0.0], [3.0, 3.0], [1e6, 1e6]])
    gm = emkit.GaussianMixture(3, means_init=means, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm.fit_stream(np.array_split(X, 10))
    assert any(issubclass(w.category, ComponentCollapseWarning) for w in caught)
    assert np.all(np.isfinite(gm.means_)) and np.all(gm.weights_ > 0)
    assert np.abs(gm.means_).max() < 10
    assert np.isfinite(gm.score(X))


def test_online_equals_batch_em_through_threads_and_chunks() -> None:
    """The online step's E-step is the engine's: chunked and threaded as batch EM."""
    X = two_clusters(9, 3000)
    model = FamilyMixture(Gaussian("full", 1e-6, X.mean(axis=0)), 2, n_features=2)
    data = ArrayData.of(X)
    params = model.init(data, np.random.default_rng(0))
    config = EMConfig(max_iter=2, tol=0.0, stopping="none", max_rows=100, n_jobs=2)
    batch = run_em(model, data, params, config)
    state, _ = run_online(model, OnlineState(params), [data, data], config, StepSizes(0, 0),
                          scale=3000.0)
    np.testing.assert_allclose(
        state.params.components.means, batch.params.components.means, rtol=1e-13
    )
