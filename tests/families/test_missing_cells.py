"""Missing cells (NaN) marginalised by the families and by HMMs built on them.

The family checks are identities of the marginal: with one cell missing, ``log_prob`` must be
the log of the density summed (discrete) or integrated (continuous, on a fine grid) over that
cell, and ``accumulate`` must equal the statistics of the completed rows averaged under the
cell's conditional distribution.  The HMM checks compare against independent references.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from emkit import GMMHMM, HMM, GaussianHMM, MissingNormal, PoissonHMM
from emkit._validation import InputError
from emkit.families import make_family
from emkit.families.poisson import Poisson, PoissonParams
from emkit.models.hmm import HMMModel, HMMParams
from emkit.models.mixture import ComponentCollapseWarning

K = 3


def _leaves(sums):
    if isinstance(sums, tuple):
        return [leaf for part in sums for leaf in _leaves(part)]
    return [np.asarray(sums, dtype=np.float64)]


def _family_case(name: str, seed: int = 0):
    """A configured family, parameters from one M-step on random responsibilities, and data."""
    rng = np.random.default_rng(seed)
    n = 60
    counts = rng.poisson([2.0, 5.0, 1.0], size=(n, 3)).astype(float)
    spec = {
        "poisson": ("poisson", counts),
        "bernoulli": ("bernoulli", (counts > 2).astype(float)),
        "categorical": ("categorical", np.minimum(counts, 3.0)),
        "exponential": ("exponential", rng.exponential([1.0, 3.0, 0.5], size=(n, 3))),
        "gamma": ("gamma", rng.gamma([2.0, 5.0, 1.5], size=(n, 3))),
        "normal": ("normal", rng.normal([0.0, 10.0, -3.0], [1.0, 2.0, 0.5], size=(n, 3))),
        "lognormal": ("lognormal", rng.lognormal([0.0, 1.0, -1.0], 0.5, size=(n, 3))),
        "gaussian_full": (
            {"name": "gaussian", "covariance": "full"},
            rng.multivariate_normal([0, 2, 1], [[1, 0.6, 0.3], [0.6, 2, -0.5], [0.3, -0.5, 1]], n),
        ),
        "gaussian_tied": (
            {"name": "gaussian", "covariance": "tied"},
            rng.multivariate_normal([0, 2, 1], [[1, 0.6, 0.3], [0.6, 2, -0.5], [0.3, -0.5, 1]], n),
        ),
        "gaussian_diag": ({"name": "gaussian", "covariance": "diag"}, rng.normal(size=(n, 3))),
        "gaussian_spherical": (
            {"name": "gaussian", "covariance": "spherical"},
            rng.normal(size=(n, 3)),
        ),
        "gaussian_mixture": (
            {"name": "gaussian_mixture", "n_mix": 2, "covariance": "full"},
            rng.multivariate_normal([0, 2, 1], [[1, 0.6, 0.3], [0.6, 2, -0.5], [0.3, -0.5, 1]], n),
        ),
        "student_t": (
            {"name": "student_t", "fixed_dof": 4.0},
            rng.multivariate_normal([0, 2, 1], [[1, 0.6, 0.3], [0.6, 2, -0.5], [0.3, -0.5, 1]], n),
        ),
        "product": (
            {"name": "product", "blocks": [("normal", [0]), ("poisson", [1]), ("gamma", [2])]},
            np.column_stack([rng.normal(size=n), counts[:, 1], rng.gamma(2.0, size=n)]),
        ),
    }[name]
    family = make_family(spec[0]).configure(spec[1])
    X = np.asarray(family.encode(spec[1]), dtype=np.float64)
    R = rng.dirichlet(np.ones(K), size=n)
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    return family, params, X


DISCRETE = ["poisson", "bernoulli", "categorical"]
CONTINUOUS = ["exponential", "gamma", "normal", "lognormal", "gaussian_full", "gaussian_tied",
              "gaussian_diag", "gaussian_spherical", "gaussian_mixture", "student_t", "product"]


def _grid(name: str, X: np.ndarray, j: int, family, params) -> tuple[np.ndarray, np.ndarray]:
    """Values of cell ``j`` and their quadrature weights (trapezoid on a wide, fine grid)."""
    if name in DISCRETE or (name == "product" and j == 1):  # the product's column 1: Poisson
        values = {"categorical": np.arange(float(family.sizes[j])) if name == "categorical" else 0,
                  "bernoulli": np.array([0.0, 1.0])}.get(name, np.arange(400.0))
        return values, np.ones(values.size)
    column = X[:, j]
    positive = family.name in ("exponential", "gamma", "lognormal") or (
        name == "product" and j == 2
    )
    if positive:  # a log-spaced grid resolves densities near zero and long right tails
        values = np.geomspace(1e-9, 50.0 * column.max(), 200001)
    else:
        spread = column.max() - column.min()
        values = np.linspace(column.min() - 8 * spread, column.max() + 8 * spread, 200001)
    weights = np.empty_like(values)
    gaps = np.diff(values)
    weights[0], weights[-1] = gaps[0] / 2, gaps[-1] / 2
    weights[1:-1] = (gaps[:-1] + gaps[1:]) / 2
    return values, weights


@pytest.mark.parametrize("name", list(DISCRETE) + CONTINUOUS)
@pytest.mark.parametrize("j", [0, 1])
def test_marginal_density_and_expected_statistics(name: str, j: int) -> None:
    family, params, X = _family_case(name)
    assert family.handles_missing
    row = X[5].copy()
    holed = row.copy()
    holed[j] = np.nan
    values, weights = _grid(name, X, j, family, params)
    completed = np.repeat(row[None, :], values.size, axis=0)
    completed[:, j] = values
    logp = family.log_prob(params, completed)  # (m, K)
    marginal = family.log_prob(params, holed[None, :])[0]
    top = logp.max(axis=0)
    integral = np.log(weights @ np.exp(logp - top)) + top
    np.testing.assert_allclose(marginal, integral, rtol=0, atol=2e-6)
    for k in range(K):  # expected statistics under component k's conditional of the cell
        e_k = np.zeros((1, K))
        e_k[0, k] = 1.0
        posterior = weights * np.exp(logp[:, k] - marginal[k])
        R = np.zeros((values.size, K))
        R[:, k] = posterior
        want = _leaves(family.accumulate(params, completed, R))
        got = _leaves(family.accumulate(params, holed[None, :], e_k))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", list(DISCRETE) + CONTINUOUS)
def test_complete_rows_are_unchanged_and_rows_mix(name: str) -> None:
    """A batch with some NaN cells gives the complete rows exactly their complete-data values,
    and its sums are the sums of its rows taken one by one (additivity)."""
    family, params, X = _family_case(name, seed=1)
    rng = np.random.default_rng(2)
    holes = X.copy()
    holes[rng.random(X.shape) < 0.2] = np.nan
    holes[3] = np.nan  # a whole row too
    complete = ~np.isnan(holes).any(axis=1)
    np.testing.assert_allclose(
        family.log_prob(params, holes)[complete], family.log_prob(params, X)[complete],
        rtol=1e-12, atol=1e-12,
    )
    np.testing.assert_allclose(family.log_prob(params, holes)[3], 0.0, atol=1e-12)  # density 1
    R = rng.dirichlet(np.ones(K), size=X.shape[0])
    whole = _leaves(family.accumulate(params, holes, R))
    parts = [_leaves(family.accumulate(params, holes[i : i + 1], R[i : i + 1]))
             for i in range(X.shape[0])]
    for index, leaf in enumerate(whole):
        np.testing.assert_allclose(leaf, sum(p[index] for p in parts), rtol=1e-10, atol=1e-10)


def test_a_start_with_missing_cells_is_refused_clearly() -> None:
    family, _, X = _family_case("poisson")
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing cells need current parameters"):
        family.accumulate(None, X, np.full((X.shape[0], K), 1.0 / K))


# --- HMMs with missing cells ------------------------------------------------------------------
def _regimes(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    transmat = np.array([[0.95, 0.05], [0.1, 0.9]])
    states = np.zeros(n, dtype=int)
    for t in range(1, n):
        states[t] = rng.random() < transmat[states[t - 1], 1]
    means = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0]])
    cov = np.array([[1.0, 0.7, 0.2], [0.7, 1.0, 0.1], [0.2, 0.1, 1.0]])
    X = means[states] + rng.multivariate_normal(np.zeros(3), cov, size=n)
    return X, states


def test_one_state_hmm_equals_the_missing_normal_mle() -> None:
    """A one-state Gaussian HMM is a multivariate normal: with NaN cells its Baum-Welch fit
    is the MLE that MissingNormal (a separate EM code) finds."""
    X, _ = _regimes(0)
    rng = np.random.default_rng(1)
    X[rng.random(X.shape) < 0.25] = np.nan
    hmm = GaussianHMM(1, "full", reg_covar=0.0, tol=0.0, max_iter=300).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with every cell missing: left out, as they should
        mvn = MissingNormal(tol=0.0, max_iter=300, accelerate="none").fit(X)
    np.testing.assert_allclose(hmm.means_[0], mvn.mean_, atol=1e-8)
    np.testing.assert_allclose(hmm.covars_[0], mvn.covariance_, atol=1e-8)
    assert hmm.score(X) == pytest.approx(mvn.loglik_, rel=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_hmm_with_missing_cells_recovers_the_regimes(covariance_type: str) -> None:
    X, states = _regimes(3)
    rng = np.random.default_rng(4)
    holed = X.copy()
    holed[rng.random(X.shape) < 0.3] = np.nan
    holed[10:15] = np.nan  # whole rows too
    est = GaussianHMM(2, covariance_type, random_state=0, n_init=2).fit(holed)
    assert np.all(np.diff(est.history_) >= -1e-9)
    decoded = est.predict(holed)
    accuracy = max(np.mean(decoded == states), np.mean(decoded != states))
    assert accuracy > 0.9
    order = np.argsort(est.means_[:, 0])
    np.testing.assert_allclose(est.means_[order], [[0, 0, 0], [3, -2, 1]], atol=0.3)
    complete = GaussianHMM(2, covariance_type, random_state=0, n_init=2).fit(X)
    np.testing.assert_allclose(
        est.transmat_[np.ix_(order, order)],
        complete.transmat_[np.ix_(*[np.argsort(complete.means_[:, 0])] * 2)],
        atol=0.06,
    )


def test_a_column_missing_everywhere_scores_as_the_model_without_it() -> None:
    """Marginalising column 1 in every row equals the HMM on the other columns alone."""
    rng = np.random.default_rng(5)
    X = rng.poisson([[3.0, 8.0, 1.0]], size=(300, 3)).astype(float)
    est = PoissonHMM(2, random_state=0, max_iter=200).fit(X)
    holed = X.copy()
    holed[:, 1] = np.nan
    wide = est._get_fitted_params()
    narrow = HMMParams(wide.startprob, wide.transmat, PoissonParams(est.lambdas_[:, [0, 2]]))
    loglik, _ = HMMModel(Poisson(), 2).posteriors(narrow, X[:, [0, 2]], np.array([0, 300]))
    assert est.score(holed) == pytest.approx(float(loglik[0]), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    family=st.sampled_from(["poisson", "gaussian", "categorical", "product", "gamma",
                            "student_t"]),
    fraction=st.floats(0.05, 0.5),
)
def test_log_likelihood_never_decreases_with_missing_cells(
    seed: int, family: str, fraction: float
) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    base = rng.poisson([2.0, 6.0], size=(n, 2)).astype(float)
    data = {
        "poisson": base,
        "gaussian": base + rng.normal(size=(n, 2)),
        "categorical": np.minimum(base, 4.0),
        "product": base,
        "gamma": base + 0.5,
        "student_t": base + rng.standard_t(3.0, size=(n, 2)),
    }[family]
    spec = {
        "product": {"name": "product", "blocks": [("poisson", [0]), ("normal", [1])]},
        "gaussian": {"name": "gaussian", "covariance": "full", "reg_covar": 0.0},
    }.get(family, family)
    X = data.copy()
    X[rng.random(X.shape) < fraction] = np.nan
    est = HMM(spec, 2, random_state=seed, max_iter=25, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComponentCollapseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # 25 iterations: enough to check
        est.fit(X, [60, 60])
    history = np.asarray(est.history_)
    assert np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1]))


def test_categorical_cells_given_as_none_or_nan() -> None:
    rng = np.random.default_rng(6)
    states = np.repeat([0, 1, 0, 1], 50)
    table = np.array([["a", "b", "c"], ["c", "c", "a"]])
    X = np.array([[table[s, rng.integers(3)], table[s, rng.integers(3)]] for s in states],
                 dtype=object)
    X[5, 0] = None
    X[9, 1] = float("nan")
    X[20] = [None, None]
    est = HMM("categorical", 2, random_state=0).fit(X)
    proba = est.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(InputError, match="'z'.*not seen in fit"):
        est.predict(np.array([["z", "a"]], dtype=object))


def test_gmmhmm_and_student_t_marginalise_cells_a_family_without_it_refuses() -> None:
    X, _ = _regimes(7, n=300)
    X[np.random.default_rng(8).random(X.shape) < 0.2] = np.nan
    est = GMMHMM(2, n_mix=2, covariance_type="full", random_state=0, max_iter=30).fit(X)
    assert np.all(np.diff(est.history_) >= -1e-9)
    student = HMM("student_t", 2, random_state=0, max_iter=30).fit(X)
    assert np.all(np.diff(student.history_) >= -1e-9)

    class WholeRowsOnly(Poisson):  # a family of a user's that cannot marginalise cells
        handles_missing = False

    with pytest.raises(InputError, match="'poisson' emission marginalises whole missing rows"):
        HMM(WholeRowsOnly(), 2).fit(np.abs(np.round(X)))
