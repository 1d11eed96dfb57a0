"""Anomaly detection on fitted mixtures: scores, the training log-density table, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

import emkit
from emkit import GaussianMixture, MixtureModel
from emkit.engine.sketch import log_density_sketch, sketch_quantiles
from emkit.estimators._mixture import QUANTILE_LEVELS

N_INLIERS, N_OUTLIERS = 2940, 60  # 2 % planted outliers


def recall_precision(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int(np.sum(flagged & truth))
    return hits / int(truth.sum()), hits / max(int(flagged.sum()), 1)


@pytest.fixture(scope="module")
def gaussian_sample() -> tuple[np.ndarray, np.ndarray]:
    """Three clusters (sd 0.5-1) and 2 % of points planted 12-20 units from the centre."""
    rng = np.random.default_rng(11)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 6.0]])
    sizes = [1000, 980, 960]
    inliers = np.vstack([c + rng.normal(scale=s, size=(n, 2))
                         for c, s, n in zip(centres, (1.0, 0.7, 0.5), sizes, strict=True)])
    angle = rng.uniform(0.0, 2.0 * np.pi, N_OUTLIERS)
    radius = rng.uniform(12.0, 20.0, N_OUTLIERS)
    outliers = centres.mean(axis=0) + np.c_[np.cos(angle), np.sin(angle)] * radius[:, None]
    X = np.vstack([inliers, outliers])
    truth = np.r_[np.zeros(N_INLIERS, bool), np.ones(N_OUTLIERS, bool)]
    order = rng.permutation(X.shape[0])
    return X[order], truth[order]


@pytest.fixture(scope="module")
def gmm(gaussian_sample) -> GaussianMixture:
    X, _ = gaussian_sample
    return GaussianMixture(3, random_state=0).fit(X)


@pytest.fixture(scope="module")
def poisson_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean training counts (rates 2 and 12), and new counts of the same mixture with 2 %
    planted counts of 40-60.

    A Poisson mixture fitted to data that holds the planted counts gives them a component of
    their own (light tails: that is the maximum-likelihood answer), so here the model learns
    from clean data and screens new data, the other common use of a density for detection.
    """
    rng = np.random.default_rng(5)
    train = np.r_[rng.poisson(2.0, 1500), rng.poisson(12.0, 1440)].astype(np.float64)[:, None]
    inliers = np.r_[rng.poisson(2.0, 1500), rng.poisson(12.0, 1440)]
    outliers = rng.integers(40, 61, N_OUTLIERS)
    X = np.r_[inliers, outliers].astype(np.float64)[:, None]
    truth = np.r_[np.zeros(inliers.size, bool), np.ones(N_OUTLIERS, bool)]
    return train, X, truth


def test_scores_are_negative_log_densities(gmm, gaussian_sample):
    X, _ = gaussian_sample
    np.testing.assert_array_equal(gmm.outlier_scores(X), -gmm.score_samples(X))


def sketch_bound(values: np.ndarray) -> np.ndarray:
    """The sketch's stated error bound at ``values``: ``(1 + |ℓ|)/255``."""
    return (1.0 + np.abs(values)) / 255.0


def assert_within_sketch_bound(table, values, weights=None) -> None:
    """``table`` holds the weighted quantiles of ``values`` to the sketch's bound: each entry
    within the bound of the exact (inverted-CDF) quantiles at its level (a level that falls on
    a row's cumulative weight, to rounding, has every value between that row and the next)."""
    levels = np.linspace(0, 1, QUANTILE_LEVELS)
    weights = np.ones_like(values) if weights is None else weights
    keep = weights > 0
    order = np.argsort(values[keep])
    v, w = values[keep][order], weights[keep][order]
    cum = np.cumsum(w) / w.sum()
    low = v[np.clip(np.searchsorted(cum, levels - 1e-9), 0, v.size - 1)]
    high = v[np.clip(np.searchsorted(cum, levels + 1e-9), 0, v.size - 1)]
    assert np.all(table >= low - sketch_bound(low))
    assert np.all(table <= high + sketch_bound(high))


def test_the_table_is_small_and_holds_the_training_quantiles(gmm, gaussian_sample):
    X, _ = gaussian_sample
    table = gmm.log_density_quantiles_
    assert table.shape == (QUANTILE_LEVELS,) and table.dtype == np.float64
    assert np.all(np.diff(table) >= 0)
    ll = gmm.score_samples(X)
    assert abs(table[0] - ll.min()) <= sketch_bound(ll.min())
    assert abs(table[-1] - ll.max()) <= sketch_bound(ll.max())
    assert_within_sketch_bound(table, ll)


def test_gmm_finds_the_planted_outliers(gmm, gaussian_sample):
    # 2 % planted, contamination 2 %: nearly every planted point is among the 2 % least likely
    # rows (they lie 12-20 units out, clusters have sd ≤ 1); thresholds leave room for a few
    # planted points that land near a cluster and a few tail inliers.
    X, truth = gaussian_sample
    flagged = gmm.detect_outliers(X, contamination=0.02)
    recall, precision = recall_precision(flagged, truth)
    assert recall >= 0.9 and precision >= 0.85, (recall, precision)
    # at most 2 % are flagged; fewer only by the rows within the sketch's bound of the cut
    ll, cut = gmm.score_samples(X), gmm.outlier_threshold(0.02)
    near = np.mean(np.abs(ll - cut) <= sketch_bound(cut))
    assert 0.02 - near - 1.0 / X.shape[0] <= flagged.mean() <= 0.02


def test_poisson_mixture_finds_the_planted_outliers(poisson_sample):
    train, X, truth = poisson_sample
    model = MixtureModel("poisson", 2, random_state=0, max_iter=500).fit(train)
    np.testing.assert_allclose(np.sort(model.rates_[:, 0]), [2.0, 12.0], rtol=0.1)
    # 0.5 %: about 15 clean rows in 2,940 fall below the cut, against 60 planted ones; counts
    # tie, so at most that fraction of the training rows is flagged (the rule is strict "<").
    flagged = model.detect_outliers(X, contamination=0.005)
    recall, precision = recall_precision(flagged, truth)
    assert recall >= 0.95 and precision >= 0.7, (recall, precision)
    assert model.detect_outliers(train, contamination=0.005).mean() <= 0.005


def test_threshold_is_a_log_density_cut_off(gmm, gaussian_sample):
    X, _ = gaussian_sample
    ll = gmm.score_samples(X)
    cut = gmm.outlier_threshold(0.05)
    np.testing.assert_array_equal(gmm.detect_outliers(X, contamination=0.05), ll < cut)
    np.testing.assert_array_equal(gmm.detect_outliers(X, threshold=-6.0), ll < -6.0)
    assert not gmm.detect_outliers(X, threshold=-np.inf).any()
    assert gmm.outlier_threshold(0.01) <= gmm.outlier_threshold(0.05) <= gmm.outlier_threshold(0.5)
    assert gmm.outlier_threshold(0.5) == pytest.approx(np.median(ll), abs=0.02)


@pytest.mark.parametrize("contamination", [0.0, -0.1, 0.51, 1.0, float("nan"), "a", None])
def test_contamination_must_be_in_zero_to_one_half(gmm, gaussian_sample, contamination):
    X, _ = gaussian_sample
    with pytest.raises(ValueError, match=r"contamination must be"):
        gmm.detect_outliers(X[:5], contamination=contamination)
    with pytest.raises(ValueError, match=r"contamination must be"):
        gmm.outlier_threshold(contamination)


def test_nan_threshold_is_refused(gmm, gaussian_sample):
    X, _ = gaussian_sample
    with pytest.raises(ValueError, match="threshold"):
        gmm.detect_outliers(X[:5], threshold=float("nan"))


def test_weighted_fit_uses_weighted_quantiles():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 1))
    w = rng.integers(1, 4, 400).astype(float)
    model = GaussianMixture(1).fit(X, sample_weight=w)
    assert_within_sketch_bound(model.log_density_quantiles_, model.score_samples(X), w)
    unweighted = GaussianMixture(1).fit(X)  # the weights move the table, not only the fit
    assert not np.allclose(unweighted.log_density_quantiles_, model.log_density_quantiles_)
    # zero weights leave rows out of the table
    w0 = w.copy()
    w0[:50] = 0.0
    model0 = GaussianMixture(1).fit(X, sample_weight=w0)
    ll0 = model0.score_samples(X)[50:]
    assert abs(model0.log_density_quantiles_[0] - ll0.min()) <= sketch_bound(ll0.min())
    assert_within_sketch_bound(model0.log_density_quantiles_, model0.score_samples(X), w0)


def test_sketches_of_parts_add_and_keep_the_bound():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-30.0, 5.0, 5000), rng.normal(2.0, 0.1, 100), [-4e4, 300.0]])
    w = rng.uniform(0.0, 2.0, x.size)
    whole = log_density_sketch(x, w)
    np.testing.assert_allclose(log_density_sketch(x[:777], w[:777])
                               + log_density_sketch(x[777:], w[777:]), whole, rtol=1e-12)
    table = sketch_quantiles(whole, np.linspace(0, 1, QUANTILE_LEVELS))
    assert np.all(np.diff(table) >= 0)
    assert_within_sketch_bound(table, x, w)
    with pytest.raises(ValueError, match="positive weight"):
        sketch_quantiles(log_density_sketch(x, np.zeros(x.size)), [0.5])


def test_save_load_round_trip_keeps_detection(tmp_path, gmm, gaussian_sample):
    X, _ = gaussian_sample
    path = emkit.save(gmm, tmp_path / "gmm.emk")
    assert path.stat().st_size < 64 * 1024  # the table adds 8 kB, not the training data
    same = emkit.load(path)
    np.testing.assert_array_equal(same.log_density_quantiles_, gmm.log_density_quantiles_)
    assert same.outlier_threshold(0.02) == gmm.outlier_threshold(0.02)
    np.testing.assert_array_equal(same.detect_outliers(X, 0.02), gmm.detect_outliers(X, 0.02))


def test_save_load_round_trip_of_a_poisson_mixture(tmp_path, poisson_sample):
    from emkit.io import _registry

    if "MixtureModel" not in _registry():
        pytest.skip("model files do not hold a MixtureModel yet (built alongside this suite)")
    train, X, _ = poisson_sample
    model = MixtureModel("poisson", 2, random_state=0, max_iter=500).fit(train)
    same = emkit.load(emkit.save(model, tmp_path / "poisson.emk"))
    np.testing.assert_array_equal(same.detect_outliers(X, 0.02), model.detect_outliers(X, 0.02))
    np.testing.assert_array_equal(same.outlier_scores(X), model.outlier_scores(X))


def test_a_model_without_the_table_asks_for_a_threshold(gaussian_sample):
    X, _ = gaussian_sample
    model = GaussianMixture(2, random_state=0).fit(X[:500])
    del model.log_density_quantiles_  # as in a model file written before the table existed
    with pytest.raises(ValueError, match="threshold="):
        model.detect_outliers(X)
    assert model.detect_outliers(X, threshold=-8.0).sum() == np.sum(model.score_samples(X) < -8)


def test_refit_and_warm_start_refresh_the_table(gaussian_sample):
    X, _ = gaussian_sample
    model = GaussianMixture(3, random_state=0, max_iter=2, warm_start=True)
    with pytest.warns(Warning):
        model.fit(X)
    first = model.log_density_quantiles_.copy()
    model.set_params(max_iter=200)
    model.fit(X)
    assert not np.array_equal(first, model.log_density_quantiles_)
    ll = model.score_samples(X)
    np.testing.assert_allclose(
        model.log_density_quantiles_[[0, -1]], [ll.min(), ll.max()],
        atol=float(sketch_bound(np.abs(ll).max())),
    )


def test_unfitted_model_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixture(2).outlier_threshold(0.1)
