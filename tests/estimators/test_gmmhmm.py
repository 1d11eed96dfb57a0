"""GMMHMM: a Gaussian mixture per state (``GaussianMixtureEmission``) on the HMM engine.

hmmlearn's ``GMMHMM`` takes the covariance statistics about the means *before* the M-step
(``Σ γ (x − μ_old)²``), which adds ``(μ_new − μ_old)²`` to every exact Baum-Welch covariance;
at a fixed point both agree.  The comparison runs hmmlearn one iteration at a time and removes
that term after each (under ``tied`` the state's weighted sum ``Σ_m c_km Δμ_km Δμ_kmᵀ``), so
both run exact maximum-likelihood Baum-Welch (flat priors, emkit's ``reg_covar=0``): the
log-likelihoods must agree after every iteration.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from emkit import GMMHMM, Learn
from emkit.families import GaussianMixtureEmission, make_family

hmm = pytest.importorskip("hmmlearn.hmm")

LENGTHS = np.array([70, 130, 40, 160])
N_ITER = 20
K, M, D = 2, 2, 2


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(LENGTHS.sum())
    states = (np.arange(n) // 50) % 2
    comp = rng.integers(0, M, n)
    centres = np.array([[[0.0, 0.0], [4.0, 4.0]], [[8.0, 0.0], [8.0, 6.0]]]) + 10.0
    return centres[states, comp] + rng.normal(size=(n, D)), states


def _start(X: np.ndarray, ct: str):
    rng = np.random.default_rng(1)
    startprob, transmat = np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]])
    weights = np.array([[0.5, 0.5], [0.3, 0.7]])
    means = X[rng.choice(X.shape[0], K * M, replace=False)].reshape(K, M, D)
    covars = {
        "diag": np.full((K, M, D), 2.0),
        "full": np.broadcast_to(np.array([[2.0, 0.3], [0.3, 1.5]]), (K, M, D, D)).copy(),
        "spherical": np.full((K, M), 2.0),
        "tied": np.broadcast_to(np.array([[2.0, 0.3], [0.3, 1.5]]), (K, D, D)).copy(),
    }[ct]
    return startprob, transmat, weights, means, covars


def _hmmlearn_exact_history(X, ct, start) -> np.ndarray:
    startprob, transmat, weights, means, covars = start
    extra = {"covars_prior": -(D + 2) / 2} if ct == "spherical" else {}
    ref = hmm.GMMHMM(K, M, covariance_type=ct, init_params="", params="stmcw", n_iter=1, **extra)
    ref.startprob_, ref.transmat_, ref.weights_ = startprob, transmat, weights
    ref.means_, ref.covars_ = means, covars
    history = []
    for _ in range(N_ITER):
        old = ref.means_.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(X, LENGTHS)
        history.append(ref.monitor_.history[0])
        shift = ref.means_ - old
        if ct == "diag":
            ref.covars_ = ref.covars_ - shift**2
        elif ct == "full":
            ref.covars_ = ref.covars_ - shift[..., :, None] * shift[..., None, :]
        elif ct == "tied":  # pooled over the state's Gaussians with weights n_km / n_k
            ref.covars_ = ref.covars_ - np.einsum("km,kmd,kme->kde", ref.weights_, shift, shift)
        else:
            ref.covars_ = ref.covars_ - (shift**2).mean(axis=-1)
    return np.asarray(history), ref


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_same_loglik_as_hmmlearn_every_iteration(ct: str) -> None:
    X, _ = _data()
    start = _start(X, ct)
    theirs, ref = _hmmlearn_exact_history(X, ct, start)
    startprob, transmat, weights, means, covars = start
    family = GaussianMixtureEmission(M, ct, reg_covar=0.0)
    est = GMMHMM(
        K,
        M,
        ct,
        reg_covar=0.0,
        startprob=startprob,
        transmat=transmat,
        emission_init=family.params_from_covariances(weights, means, covars),
        max_iter=N_ITER,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, LENGTHS)
    ours = est.history_[:N_ITER] * X.shape[0]
    assert theirs[-1] - theirs[0] > 500.0  # EM really moved
    # with tol=0 emkit stops once an iteration changes nothing
    assert ours.size >= 12
    np.testing.assert_allclose(ours, theirs[: ours.size], rtol=1e-6)
    assert est.weights_.shape == (K, M) and est.means_.shape == (K, M, D)
    assert est.covars_.shape == ref.covars_.shape
    # the fitted model scores as hmmlearn scores the same parameters
    ref.startprob_, ref.transmat_, ref.weights_ = est.startprob_, est.transmat_, est.weights_
    ref.means_, ref.covars_ = est.means_, est.covars_
    assert est.score(X, LENGTHS) == pytest.approx(ref.score(X, LENGTHS), rel=1e-9)


def test_hmmlearn_plain_gmmhmm_reaches_the_same_fixed_point() -> None:
    X, _ = _data()
    startprob, transmat, weights, means, covars = _start(X, "diag")
    ref = hmm.GMMHMM(
        K, M, covariance_type="diag", init_params="", params="stmcw", n_iter=200, tol=1e-10
    )
    ref.startprob_, ref.transmat_, ref.weights_ = startprob, transmat, weights
    ref.means_, ref.covars_ = means, covars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, LENGTHS)
    family = GaussianMixtureEmission(M, "diag", reg_covar=0.0)
    est = GMMHMM(
        K,
        M,
        reg_covar=0.0,
        startprob=startprob,
        transmat=transmat,
        emission_init=family.params_from_covariances(weights, means, covars),
        max_iter=500,
        tol=1e-12,
    ).fit(X, LENGTHS)
    np.testing.assert_allclose(est.means_, ref.means_, rtol=1e-5)
    np.testing.assert_allclose(est.weights_, ref.weights_, atol=1e-5)


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_loglik_monotone_and_recovery(ct: str) -> None:
    X, states = _data(3)
    est = GMMHMM(K, M, ct, random_state=0, max_iter=200, tol=1e-8).fit(X, LENGTHS)
    assert np.all(np.diff(est.history_) >= -1e-9 * np.abs(est.history_[:-1]))
    path = est.predict(X, LENGTHS)
    agree = max(np.mean(path == states), np.mean(path != states))
    assert agree > 0.97
    # each state's two inner means are near its two true centres (up to order)
    state = 0 if np.mean(path == states) > 0.5 else 1
    centres = np.array([[10.0, 10.0], [14.0, 14.0]])
    found = np.sort(est.means_[state][:, 0])
    np.testing.assert_allclose(found, np.sort(centres[:, 0]), atol=0.5)


def test_family_protocol_roundtrips() -> None:
    X, _ = _data()
    family = GaussianMixtureEmission(M, "full", reg_covar=1e-6).configure(X)
    again = make_family(family.config())
    assert isinstance(again, GaussianMixtureEmission) and again.config() == family.config()
    R = np.random.default_rng(0).dirichlet(np.ones(K), size=X.shape[0])
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    assert np.all(params.weights > 0.1)  # the split gives every inner Gaussian weight
    sums = family.accumulate(params, X, R)
    halves = [family.accumulate(params, X[s], R[s]) for s in (slice(0, 150), slice(150, None))]
    for whole, a, b in zip(sums, *halves, strict=True):
        np.testing.assert_allclose(whole, a + b, rtol=1e-10, atol=1e-9)
    restored = family.restore(family.describe(params))
    np.testing.assert_array_equal(family.log_prob(restored, X), family.log_prob(params, X))
    back = family.unflatten(family.flatten(params), params)
    np.testing.assert_allclose(family.log_prob(back, X), family.log_prob(params, X), rtol=1e-10)
    swapped = family.take(params, np.array([1, 0]))
    np.testing.assert_array_equal(family.log_prob(swapped, X), family.log_prob(params, X)[:, ::-1])
    assert family.n_parameters(params) == K * (M - 1) + K * M * (D + D * (D + 1) // 2)
    draws = family.sample(params, 0, 500, np.random.default_rng(0))
    assert draws.shape == (500, D) and np.all(np.isfinite(draws))


def test_tied_family_shares_one_covariance_per_state() -> None:
    X, _ = _data()
    family = GaussianMixtureEmission(M, "tied", reg_covar=1e-6).configure(X)
    assert repr(family) == "GaussianMixtureEmission(n_mix=2, covariance='tied', reg_covar=1e-06)"
    again = make_family(family.config())
    assert again.config() == family.config() and again.covariance == family.covariance
    R = np.random.default_rng(0).dirichlet(np.ones(K), size=X.shape[0])
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    # the M-step pools each state's scatter about its own inner means
    sums = family.accumulate(params, X, R)
    nxt = family.m_step(sums, R.sum(axis=0), params)
    inner = np.exp(family._joint(params, X) - family.log_prob(params, X)[:, :, None])
    for k in range(K):
        w = R[:, k : k + 1] * inner[:, k, :]  # (n, M)
        means = (w.T @ X) / w.sum(axis=0)[:, None]
        scatter = sum(
            ((X - means[m]) * w[:, m : m + 1]).T @ (X - means[m]) for m in range(M)
        )
        expected = scatter / w.sum() + 1e-6 * np.eye(D)
        np.testing.assert_allclose(nxt.gaussian.means[k * M : (k + 1) * M], means, rtol=1e-10)
        np.testing.assert_allclose(family.covariances(nxt)[k], expected, rtol=1e-9)
    assert family.covariances(nxt).shape == (K, D, D)
    described = family.describe(nxt)
    assert described["means"].shape == (K, M, D)
    assert described["precisions_cholesky"].shape == (K, D, D)
    restored = family.restore(described)
    np.testing.assert_array_equal(family.log_prob(restored, X), family.log_prob(nxt, X))
    back = family.unflatten(family.flatten(nxt), nxt)
    np.testing.assert_allclose(family.log_prob(back, X), family.log_prob(nxt, X), rtol=1e-10)
    swapped = family.take(nxt, np.array([1, 0]))
    np.testing.assert_array_equal(family.log_prob(swapped, X), family.log_prob(nxt, X)[:, ::-1])
    one = family.take(nxt, np.array([1]))
    np.testing.assert_array_equal(family.log_prob(one, X), family.log_prob(nxt, X)[:, 1:])
    with pytest.raises(ValueError, match="whole groups"):
        family.gaussian.take(nxt.gaussian, np.array([1, 0]))  # splits the states' groups
    assert family.n_parameters(nxt) == K * (M - 1) + K * M * D + K * D * (D + 1) // 2
    covs = family.covariances(nxt)
    fresh = family.params_from_covariances(nxt.weights, described["means"], covs)
    np.testing.assert_allclose(family.log_prob(fresh, X), family.log_prob(nxt, X), rtol=1e-10)
    draws = family.sample(nxt, 1, 4000, np.random.default_rng(0))
    assert draws.shape == (4000, D) and np.all(np.isfinite(draws))


def test_tied_with_missing_cells_is_finite_and_monotone() -> None:
    X, _ = _data(7)
    rng = np.random.default_rng(2)
    Xn = X.copy()
    Xn[rng.random(X.shape) < 0.2] = np.nan
    Xn[np.isnan(Xn).all(axis=1), 0] = X[np.isnan(Xn).all(axis=1), 0]  # keep cells in every row
    assert 0.15 < np.isnan(Xn).mean() < 0.25
    est = GMMHMM(K, M, "tied", random_state=0, max_iter=60, tol=1e-10).fit(Xn, LENGTHS)
    assert np.all(np.isfinite(est.history_)) and est.history_.size > 5
    assert np.all(np.diff(est.history_) >= -1e-9 * np.abs(est.history_[:-1]))
    assert est.covars_.shape == (K, D, D)
    assert np.all(np.linalg.eigvalsh(est.covars_) > 0.0)
    assert np.isfinite(est.score(Xn, LENGTHS))


def test_estimator_rebuilds_from_arrays_samples_and_marginalises() -> None:
    X, _ = _data()
    est = GMMHMM(K, M, "diag", random_state=0, max_iter=30).fit(X, LENGTHS)
    again = copy.deepcopy(est)
    del again.__dict__["_emission_params"]  # rebuilt from the fitted arrays, as a model file
    assert again.score(X, LENGTHS) == pytest.approx(est.score(X, LENGTHS), rel=1e-12)
    Xs, zs = est.sample(200, random_state=1)
    assert Xs.shape == (200, D) and zs.shape == (200,)
    Xn = X.copy()
    Xn[5] = np.nan  # a whole missing row is marginalised
    assert np.isfinite(est.score(Xn, LENGTHS))


@pytest.mark.parametrize("ct", ["diag", "full", "tied"])
def test_save_load_gives_identical_predictions(ct: str, tmp_path) -> None:
    import emkit

    X, _ = _data(5)
    est = GMMHMM(K, M, ct, random_state=0, max_iter=20).fit(X, LENGTHS)
    path = emkit.save(est, tmp_path / "gmmhmm.emk")
    again = emkit.load(path)
    np.testing.assert_array_equal(again.predict(X, LENGTHS), est.predict(X, LENGTHS))
    np.testing.assert_allclose(again.predict_proba(X, LENGTHS), est.predict_proba(X, LENGTHS))
    assert again.score(X, LENGTHS) == est.score(X, LENGTHS)


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_held_means_same_loglik_as_hmmlearn_params_stwc(ct: str) -> None:
    """With the means held, hmmlearn's covariance update (about its current means) is exact:
    ``params="stwc"`` and ``Learn(emissions=("weights", "covariances"))`` agree per iteration."""
    X, _ = _data()
    startprob, transmat, weights, means, covars = _start(X, ct)
    extra = {"covars_prior": -(D + 2) / 2} if ct == "spherical" else {}
    ref = hmm.GMMHMM(K, M, covariance_type=ct, init_params="", params="stwc", n_iter=N_ITER,
                     tol=-np.inf, **extra)
    ref.startprob_, ref.transmat_, ref.weights_ = startprob, transmat, weights
    ref.means_, ref.covars_ = means, covars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, LENGTHS)
    theirs = np.asarray(ref.monitor_.history)
    family = GaussianMixtureEmission(M, ct, reg_covar=0.0)
    est = GMMHMM(K, M, ct, reg_covar=0.0, startprob=startprob, transmat=transmat,
                 emission_init=family.params_from_covariances(weights, means, covars),
                 learn=Learn(emissions=("weights", "covariances")), max_iter=N_ITER, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, LENGTHS)
    n = min(theirs.size, est.history_.size)
    assert n >= 10 and theirs[n - 1] - theirs[0] > 50.0
    np.testing.assert_allclose(est.history_[:n] * X.shape[0], theirs[:n], rtol=1e-6)
    np.testing.assert_array_equal(est.means_, means)
    held = GMMHMM(K, M, ct, reg_covar=0.0, startprob=startprob, transmat=transmat,
                  emission_init=family.params_from_covariances(weights, means, covars),
                  learn=Learn(emissions=("means",)), max_iter=5, tol=0.0,
                  accelerate="squarem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        held.fit(X, LENGTHS)
    np.testing.assert_array_equal(held.weights_, weights)  # SQUAREM steps hold them too
    np.testing.assert_allclose(held.covars_, covars, rtol=1e-12)
    assert np.all(np.diff(held.history_) >= -1e-9)
