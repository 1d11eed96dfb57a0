"""EMImputer (normal and Gaussian mixture), Rubin's rules, multiple-imputation coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from emkit import EMImputer, MissingNormal, pool
from emkit.engine import ArrayData, Batch
from emkit.families.base import Family
from emkit.families.gaussian import Gaussian
from emkit.families.missing_cells import full_covariances
from emkit.models.mixture import FamilyMixture

APPLE_SIZE = [8, 6, 11, 22, 14, 17, 18, 24, 19, 23, 26, 40, 4, 4, 5, 6, 8, 10]
APPLE_WORMS = [59, 58, 56, 53, 50, 45, 43, 42, 39, 38, 30, 27] + [np.nan] * 6


def correlated(seed: int, n: int = 300, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]])
    X = rng.multivariate_normal([1.0, -1.0, 0.5], cov, size=n)
    Xm = X.copy()
    mask = rng.random(X.shape) < rate
    mask[mask.all(axis=1), 0] = False
    Xm[mask] = np.nan
    return X, Xm


def test_normal_fill_is_the_regression_on_observed_cells() -> None:
    X = np.column_stack([APPLE_SIZE, APPLE_WORMS]).astype(float)
    imp = EMImputer(reg_covar=0.0, tol=1e-14, max_iter=5000).fit(X)
    filled = imp.transform(X)
    mu, S = imp.mean_, imp.covariance_
    expected = mu[1] + S[1, 0] / S[0, 0] * (X[12:, 0] - mu[0])
    np.testing.assert_allclose(filled[12:, 1], expected, rtol=1e-10)
    np.testing.assert_array_equal(filled[:12], X[:12])


def test_normal_partial_fit_is_missing_normals_online_em() -> None:
    """Three online steps on the whole data at step 1 are three plain EM steps of the model the
    imputer fills from (the registry's online item cannot compare with the imputer's SQUAREM
    fit)."""
    _, Xm = correlated(4, n=200)
    imp = EMImputer(random_state=1)
    for _ in range(3):
        imp.partial_fit(Xm, t0=0.0, kappa=0.0, n_rows=200)
    seed = np.random.RandomState(1).randint(np.iinfo(np.int32).max)  # the imputer's model's
    plain = MissingNormal(
        reg_covar=imp.reg_covar, accelerate="none", max_iter=3, tol=0.0, random_state=seed
    ).fit(Xm)
    assert imp.n_iter_ == 3
    np.testing.assert_allclose(imp.mean_, plain.mean_, rtol=1e-12)
    np.testing.assert_allclose(imp.covariance_, plain.covariance_, rtol=1e-12)
    streamed = EMImputer(random_state=1).fit_stream([Xm] * 3, t0=0.0, kappa=0.0, n_rows=200)
    np.testing.assert_allclose(streamed.covariance_, plain.covariance_, rtol=1e-12)
    np.testing.assert_array_equal(imp.transform(Xm), streamed.transform(Xm))


@pytest.mark.parametrize("model", ["normal", "gmm"])
def test_imputation_beats_column_means(model: str) -> None:
    X, Xm = correlated(0)
    filled = EMImputer(model, random_state=0).fit_transform(Xm)
    miss = np.isnan(Xm)
    rmse = np.sqrt(np.mean((filled[miss] - X[miss]) ** 2))
    means = np.where(miss, np.nanmean(Xm, axis=0), Xm)
    assert rmse < 0.8 * np.sqrt(np.mean((means[miss] - X[miss]) ** 2))


def test_sample_posterior_draws_around_the_mean() -> None:
    X, Xm = correlated(1)
    a = EMImputer(random_state=0).fit(Xm).transform(Xm)
    b = EMImputer(random_state=0, sample_posterior=True).fit(Xm).transform(Xm)
    miss = np.isnan(Xm)
    assert not np.allclose(a[miss], b[miss])
    assert abs(np.mean(b[miss] - a[miss])) < 0.1
    np.testing.assert_array_equal(b[~miss], Xm[~miss])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mixture_missing_path_equals_complete_path(covariance_type: str) -> None:
    """On complete rows the general path (per-pattern code, float64) gives the fused path's
    statistics, and a row with every cell missing adds nothing but its weight."""
    X, _ = correlated(2, n=120)
    family = Gaussian(covariance_type, origin=X.mean(axis=0))
    model = FamilyMixture(family, 3, n_features=3)
    params = model.init(ArrayData.of(X), np.random.default_rng(0))
    prepared = model.prepare(params)
    lw, w = prepared.log_weights, np.ones(120)
    fused = family.mixture_chunk(prepared.components, lw, X, w)
    general = Family.mixture_chunk(family, prepared.components, lw, X, w)
    np.testing.assert_allclose(general[0], fused[0], rtol=1e-12)
    np.testing.assert_allclose(general[1], fused[1], rtol=1e-9, atol=1e-9)
    for a, b in zip(general[2], fused[2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    Xn = np.vstack([X, np.full((1, 3), np.nan)])  # a NaN row forces the general path
    b = model.e_step(prepared, Batch(Xn, np.ones(121)))
    a = model.e_step(prepared, Batch(X, np.ones(120)))
    assert b.weight == a.weight + 1.0
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)  # log Σ π_k · 1 = 0 for that row
    # the empty row's responsibilities are the weights, its expected sums those of the prior
    np.testing.assert_allclose(b.nk, a.nk + params.weights, rtol=1e-9, atol=1e-9)
    centres = prepared.components.centres
    np.testing.assert_allclose(
        b.sums[0], a.sums[0] + params.weights[:, None] * (params.components.means - centres),
        rtol=1e-9, atol=1e-9,
    )
    K, D = params.components.means.shape
    covs = full_covariances(family.covariance, params.components.precisions_cholesky, K, D)
    assert covs.shape == (3, 3, 3)


def test_mixture_with_missing_log_likelihood_never_decreases() -> None:
    from emkit.engine import EMConfig, run_em

    _, Xm = correlated(3, rate=0.3)
    for ct in ("full", "tied", "diag", "spherical"):
        family = Gaussian(ct, reg_covar=0.0, origin=np.nanmean(Xm, 0))
        model = FamilyMixture(family, 2, n_features=Xm.shape[1])
        data = ArrayData.of(Xm)
        result = run_em(model, data, model.init(data, np.random.default_rng(0)),
                        EMConfig(max_iter=40, tol=0.0))
        assert np.all(np.diff(result.history) >= -1e-10 * (1 + np.abs(result.history[1:]))), ct


def test_rows_entirely_missing_get_the_mean() -> None:
    _, Xm = correlated(4)
    Xm[5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = EMImputer(random_state=0).fit(Xm)
    np.testing.assert_allclose(imp.transform(Xm)[5], imp.mean_)


def test_pool_rubins_rules() -> None:
    q = np.array([1.0, 1.2, 0.8, 1.1, 0.9])
    u = np.full(5, 0.04)
    res = pool(q, u)
    b = q.var(ddof=1)
    assert res.estimate == pytest.approx(1.0)
    assert res.total == pytest.approx(0.04 + 1.2 * b)
    r = 1.2 * b / 0.04
    assert res.df == pytest.approx(4 * (1 + 1 / r) ** 2)
    br = pool(q, u, dfcom=20)
    assert br.df < 20 and br.df < res.df
    lo, hi = res.confidence_interval()
    assert lo < 1.0 < hi
    with pytest.raises(ValueError):
        pool([1.0], [0.1])


@pytest.mark.slow
def test_multiple_imputation_coverage_of_a_mean() -> None:
    """95 % intervals for E[x_2] from m=5 bootstrap-EM imputations cover the truth ~95 %."""
    rng = np.random.default_rng(2024)
    cov = np.array([[1.0, 0.7], [0.7, 1.0]])
    covered, reps = 0, 200
    for rep in range(reps):
        X = rng.multivariate_normal([0.0, 0.0], cov, size=60)
        # MAR: x_2 missing more often when x_1 is large
        p = 1.0 / (1.0 + np.exp(-(X[:, 0] - 0.3)))
        X[rng.random(60) < 0.6 * p, 1] = np.nan
        imp = EMImputer(random_state=rep, max_iter=200, tol=1e-8, reg_covar=0.0)
        sets = imp.multiple_imputations(X, n_imputations=5)
        est = [s[:, 1].mean() for s in sets]
        var = [s[:, 1].var(ddof=1) / s.shape[0] for s in sets]
        lo, hi = pool(est, var, dfcom=59).confidence_interval(0.95)
        covered += int(lo <= 0.0 <= hi)
    assert 0.92 <= covered / reps <= 0.98, covered / reps


@parametrize_with_checks(
    [EMImputer(), EMImputer("gmm", n_components=1)],
    expected_failed_checks=lambda e: {},
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.parametrize("model", ["normal", "gmm"])
def test_saved_imputer_fills_the_same_cells(model: str, tmp_path) -> None:
    import emkit

    rng = np.random.default_rng(11)
    X = rng.multivariate_normal([0.0, 3.0, -1.0], [[1, 0.5, 0.2], [0.5, 1, 0.3], [0.2, 0.3, 1]],
                                120)
    X[rng.random(X.shape) < 0.2] = np.nan
    imputer = EMImputer(model, n_components=2, random_state=0).fit(X)
    loaded = emkit.load(emkit.save(imputer, tmp_path / "imputer.emk"))
    assert isinstance(loaded, EMImputer) and loaded.get_params() == imputer.get_params()
    np.testing.assert_array_equal(loaded.transform(X), imputer.transform(X))
    with pytest.raises(ValueError, match="not fitted"):
        emkit.save(EMImputer(), tmp_path / "unfitted.emk")
