"""MissingNormal: the apple oracle (Little & Rubin), bad input, and the contract suite."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st
from sklearn.utils.estimator_checks import parametrize_with_checks

import emkit.models.missing as missing_module
from contract import ContractCase, Problem, estimators_for_checks
from emkit import MissingNormal
from emkit._validation import InputError, check_sample_weight
from emkit.engine import ArrayData, EMConfig, expected_stats, run_em
from emkit.estimators._base import EMEstimator
from emkit.estimators.missing import EmptyRowsWarning
from emkit.families.missing_cells import missingness_patterns
from emkit.models.missing import (
    MissingNormalModel,
    MissingNormalParams,
    iter_patterns,
    pattern_rows,
)

SIZE = [8, 6, 11, 22, 14, 17, 18, 24, 19, 23, 26, 40, 4, 4, 5, 6, 8, 10]
WORMS = [59, 58, 56, 53, 50, 45, 43, 42, 39, 38, 30, 27] + [np.nan] * 6
APPLE = np.column_stack([SIZE, WORMS]).astype(float)


def incomplete_normal(seed: int, n: int = 200, d: int = 3, rate: float = 0.25) -> np.ndarray:
    """Correlated normal rows with cells removed at random (no row or column left empty)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    X = rng.standard_normal((n, d)) @ A + rng.normal(size=d) * 3
    mask = rng.random((n, d)) < rate
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


# --- the oracle -------------------------------------------------------------------------------
@pytest.mark.parametrize("accelerate", ["none", "squarem"])
def test_apple_oracle(accelerate: str) -> None:
    # the log-likelihood is flat at the optimum: run plain EM a fixed, generous number of steps
    stopping = "none" if accelerate == "none" else "relative"
    est = MissingNormal(tol=1e-14, max_iter=3000, accelerate=accelerate, stopping=stopping)
    est.fit(APPLE)
    np.testing.assert_allclose(est.mean_, [14.722222, 49.333333], atol=5e-7)
    np.testing.assert_allclose(
        est.covariance_, [[89.533951, -90.696729], [-90.696729, 114.694955]], atol=5e-7
    )
    assert est.loglik_ == pytest.approx(-101.78563, abs=5e-6)
    assert est.n_patterns_ == 2


def test_apple_equals_factored_likelihood() -> None:
    """Monotone pattern: the MLE in closed form (regression of worms on size, complete rows)."""
    size, worms = APPLE[:, 0], APPLE[:12, 1]
    mu1, s11 = size.mean(), size.var()
    b = np.cov(size[:12], worms, bias=True)
    beta = b[0, 1] / b[0, 0]
    alpha = worms.mean() - beta * size[:12].mean()
    resid = b[1, 1] - beta**2 * b[0, 0]
    mu2 = alpha + beta * mu1
    est = MissingNormal(tol=1e-14, max_iter=10_000, random_state=0).fit(APPLE)
    # EM stops when the log-likelihood stops changing (~ε): up to ~5e-10 is left in the means,
    # depending on the start (measured over 40 seeds)
    np.testing.assert_allclose(est.mean_, [mu1, mu2], rtol=2e-9)
    np.testing.assert_allclose(est.covariance_[1, 1], resid + beta**2 * s11, rtol=1e-8)


def test_complete_data_gives_sample_moments() -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    est = MissingNormal().fit(X)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(est.covariance_, np.cov(X.T, bias=True), rtol=1e-10)
    np.testing.assert_allclose(est.mean_se_, np.sqrt(np.diag(est.covariance_) / 50), rtol=1e-10)


def test_standard_errors_information_and_bootstrap_agree() -> None:
    X = incomplete_normal(1, n=300)
    info = MissingNormal().fit(X).mean_se_
    boot = MissingNormal(se="bootstrap", n_bootstrap=100, random_state=0).fit(X).mean_se_
    np.testing.assert_allclose(boot, info, rtol=0.25)


# --- what the fit reports comes from the statistics of the final E-step -----------------------
def previous_information(
    mean: np.ndarray, cov: np.ndarray, X: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """The post-fit pass this replaced: ``Σ_n w_n P_nᵀ Σ_oo,n⁻¹ P_n`` at the fitted (μ, Σ)."""
    D = mean.shape[0]
    info = np.zeros((D, D))
    for pat in iter_patterns(MissingNormalParams(mean, cov), np.isnan(X)):
        inv = pat.chol_inv.T @ pat.chol_inv
        info[np.ix_(pat.obs, pat.obs)] += float(w[pat.rows].sum()) * inv
    return info


def engine_config(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Make MissingNormal run the engine with these EMConfig changes (batches, threads)."""
    monkeypatch.setattr(
        MissingNormal, "_config", lambda self: replace(EMEstimator._config(self), **changes)
    )


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("engine", [{}, {"max_rows": 7, "n_jobs": 1}, {"max_rows": 7, "n_jobs": 3}])
def test_final_stats_equal_the_previous_post_fit_pass(
    monkeypatch: pytest.MonkeyPatch, weighted: bool, engine: dict
) -> None:
    X = np.vstack([incomplete_normal(8, n=300, d=4, rate=0.3), np.full((2, 4), np.nan)])
    rng = np.random.default_rng(8)
    w = np.where(rng.random(X.shape[0]) < 0.1, 0.0, rng.uniform(0.2, 3.0, X.shape[0]))
    w = w if weighted else np.ones(X.shape[0])
    engine_config(monkeypatch, **engine)
    with pytest.warns(EmptyRowsWarning):
        est = MissingNormal(random_state=0).fit(X, sample_weight=w)
    keep = ~np.isnan(X).all(axis=1)
    w = check_sample_weight(w, X)  # as fit scales them (mean one)
    info = previous_information(est.mean_, est.covariance_, X[keep], w[keep])
    np.testing.assert_allclose(est.mean_se_, np.sqrt(np.diag(np.linalg.inv(info))), rtol=1e-10)
    n_patterns = missingness_patterns(np.isnan(X[keep]))[0].shape[0]
    assert est.n_patterns_ == n_patterns > 8  # every row with an observed cell, as before
    assert est.loglik_ == pytest.approx(float(w @ est.score_samples(X)), rel=1e-10)


def test_final_stats_of_the_engine_are_at_the_returned_parameters() -> None:
    X = incomplete_normal(9, n=120, d=3, rate=0.35)
    w = np.random.default_rng(9).uniform(0.5, 2.0, X.shape[0])
    model = MissingNormalModel(3, origin=np.nanmean(X, axis=0))
    data = ArrayData.of(X, w)
    start = model.init(data, np.random.default_rng(0))
    result = run_em(model, data, start, EMConfig(max_iter=50, tol=0.0, max_rows=11, n_jobs=2))
    p = result.params
    np.testing.assert_allclose(
        result.stats.mean_info, previous_information(p.mean, p.covariance, X, w), rtol=1e-12
    )
    np.testing.assert_array_equal(result.stats.patterns, pattern_rows(np.isnan(X)))
    assert result.stats.n_patterns == missingness_patterns(np.isnan(X))[0].shape[0]


@pytest.mark.parametrize("se", ["information", None])
def test_fit_makes_no_pass_over_the_data_after_the_last_e_step(
    monkeypatch: pytest.MonkeyPatch, se: str | None
) -> None:
    """Every use of the per-pattern pieces happens inside an E-step: the estimator reads the
    final E-step's statistics and makes no pass of its own."""
    e_step, real_iter = MissingNormalModel.e_step, missing_module.iter_patterns
    rows: list[int] = []
    inside = [False]

    def counted(self: MissingNormalModel, params: MissingNormalParams, batch: Any) -> Any:
        rows.append(batch.n_rows)
        inside[0] = True
        try:
            return e_step(self, params, batch)
        finally:
            inside[0] = False

    def guarded(params: MissingNormalParams, mask: np.ndarray) -> Any:
        assert inside[0], "a pass over the data outside the E-step"
        return real_iter(params, mask)

    monkeypatch.setattr(MissingNormalModel, "e_step", counted)
    monkeypatch.setattr(missing_module, "iter_patterns", guarded)
    engine_config(monkeypatch, max_rows=50, n_jobs=1)
    X = incomplete_normal(10, n=230)
    est = MissingNormal(se=se, random_state=0).fit(X)
    assert len(rows) == est.n_estep_ * 5 and sum(rows) == est.n_estep_ * 230
    assert est.n_patterns_ > 1 and np.isfinite(est.mean_se_).all() == (se is not None)


def test_impute_conditional_mean_and_score_samples() -> None:
    X = incomplete_normal(2)
    est = MissingNormal().fit(X)
    filled = est.impute(X)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    row = np.array([[np.nan, X[0, 1] if not np.isnan(X[0, 1]) else 0.0, np.nan]])
    mu, S = est.mean_, est.covariance_
    expected = mu[[0, 2]] + S[[0, 2], 1] / S[1, 1] * (row[0, 1] - mu[1])
    np.testing.assert_allclose(est.impute(row)[0, [0, 2]], expected, rtol=1e-12)
    from scipy.stats import norm

    expected_ll = norm(mu[1], np.sqrt(S[1, 1])).logpdf(row[0, 1])
    assert est.score_samples(row)[0] == pytest.approx(expected_ll)
    assert est.score(X) * X.shape[0] == pytest.approx(est.loglik_, rel=1e-9)


# --- bad input --------------------------------------------------------------------------------
def test_column_entirely_missing_is_an_error() -> None:
    X = incomplete_normal(3)
    X[:, 1] = np.nan
    with pytest.raises(InputError, match="column 1 is entirely missing"):
        MissingNormal().fit(X)


def test_column_with_one_value_is_an_error() -> None:
    X = incomplete_normal(3)
    X[1:, 2] = np.nan
    X[0, 2] = 1.0
    with pytest.raises(InputError, match="only 1 observed value"):
        MissingNormal().fit(X)


def test_rows_entirely_missing_are_dropped_with_a_warning() -> None:
    X = incomplete_normal(4)
    with_empty = np.vstack([X, np.full((2, 3), np.nan)])
    with pytest.warns(EmptyRowsWarning, match="2 row"):
        a = MissingNormal(random_state=0).fit(with_empty)
    b = MissingNormal(random_state=0).fit(X)
    np.testing.assert_allclose(a.mean_, b.mean_, rtol=1e-12)
    assert a.n_empty_rows_ == 2
    assert np.all(np.isfinite(a.impute(with_empty)))


def test_too_few_rows_is_an_error() -> None:
    with pytest.raises(InputError):
        MissingNormal().fit(np.array([[1.0, np.nan], [np.nan, 2.0]]))


def test_collinear_columns_give_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    X = np.column_stack([x, 2 * x, rng.normal(size=40)])
    X[:5, 0] = np.nan
    with pytest.raises((ValueError, FloatingPointError), match="reg_covar"):
        MissingNormal(random_state=0).fit(X)
    fitted = MissingNormal(reg_covar=1e-4, random_state=0).fit(X)
    assert np.all(np.isfinite(fitted.covariance_))


def test_infinity_is_rejected_with_a_message() -> None:
    X = incomplete_normal(5)
    X[3, 1] = np.inf
    with pytest.raises(InputError, match="infinite"):
        MissingNormal().fit(X)


def test_pattern_grouping_equals_row_by_row() -> None:
    X = incomplete_normal(6, n=60)
    model = MissingNormalModel(3)
    params = MissingNormalParams(np.array([0.1, -0.2, 0.3]), np.eye(3) + 0.3)
    whole = expected_stats(model, params, ArrayData.of(X), max_rows=10**9)
    rows = expected_stats(model, params, ArrayData.of(X), max_rows=1)
    assert whole.allclose(rows, rtol=1e-10, atol=1e-9)


# --- the contract suite -----------------------------------------------------------------------
def missing_problem(seed: int, n: int = 200, d: int = 3, rate: float = 0.25) -> Problem:
    X = incomplete_normal(seed, n, d, rate)
    model = MissingNormalModel(d, origin=np.nanmean(X, axis=0))
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(seed)))


def missing_problems() -> st.SearchStrategy:
    @st.composite
    def build(draw: st.DrawFn) -> Problem:
        return missing_problem(
            draw(st.integers(0, 2**32 - 1)),
            n=draw(st.integers(30, 200)),
            d=draw(st.integers(1, 4)),
            rate=draw(st.floats(0.0, 0.5)),
        )

    return build()


def split_rows(data: ArrayData, rng: np.random.Generator) -> tuple[ArrayData, ArrayData]:
    order = rng.permutation(data.n_rows)
    cut = int(rng.integers(1, data.n_rows))
    a, b = np.sort(order[:cut]), np.sort(order[cut:])
    return ArrayData(data.X[a], data.weights[a]), ArrayData(data.X[b], data.weights[b])


def slow_problem() -> Problem:
    """Half the cells of a strongly correlated pair missing: plain EM crawls."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    X = np.column_stack([x, x + 0.1 * rng.normal(size=400)])
    X[:200, 1] = np.nan
    X[200:300, 0] = np.nan
    model = MissingNormalModel(2, origin=np.nanmean(X, axis=0))
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(1)))


CASE = ContractCase(
    id="missing-normal",
    problem=missing_problem,
    problems=missing_problems(),
    split=split_rows,
    reweight=lambda data, w: ArrayData(data.X, np.asarray(w, dtype=np.float64)),
    acceleration_problem=slow_problem,
    estimator=lambda **kw: MissingNormal(**{"accelerate": "none", **kw}),
    estimator_data=lambda seed: incomplete_normal(seed),
    fitted_params=lambda e: {"mean_": e.mean_, "covariance_": e.covariance_},
    predict_methods=("score_samples", "impute"),
    expected_failed_checks={
        "check_sample_weight_equivalence_on_dense_data": (
            "the check fits 15 rows of 30 columns: with reg_covar=0 the MLE of a 30×30 "
            "covariance does not exist, and MissingNormal says so (InputError) instead of "
            "returning a singular matrix"
        )
    },
)


ESTIMATORS, EXPECTED_FAILURES = estimators_for_checks([CASE])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=EXPECTED_FAILURES, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyRowsWarning)
        check(estimator)


def test_engine_squarem_hits_the_apple_oracle() -> None:
    model = MissingNormalModel(2, origin=np.nanmean(APPLE, axis=0))
    data = ArrayData.of(APPLE)
    start = model.init(data, np.random.default_rng(0))
    result = run_em(model, data, start, EMConfig(max_iter=1000, tol=1e-14, accelerate="squarem"))
    assert result.loglik == pytest.approx(-101.78563, abs=5e-6)
