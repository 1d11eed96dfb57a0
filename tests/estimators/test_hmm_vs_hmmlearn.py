"""Baum-Welch from the same start as hmmlearn: the same log-likelihood after every iteration.

hmmlearn with ``init_params=""`` uses the parameters set by hand; its priors are switched off
(``covars_prior=0``, ``means_weight=0``; Dirichlet priors of 1 are flat) and emkit's
``reg_covar=0``, so both run plain maximum-likelihood EM.  ``monitor_.history[i]`` is the
log-likelihood of the parameters after ``i`` M-steps, as emkit's ``history[i]`` (per observation).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emkit import CategoricalHMM, GaussianHMM, Learn, MultinomialHMM, PoissonHMM
from emkit.engine import EMConfig, run_em
from emkit.engine.data import SequenceData
from emkit.families import FAMILIES
from emkit.families.gaussian import Gaussian, GaussianParams
from emkit.families.poisson import Poisson, PoissonParams
from emkit.models.hmm import HMMModel, HMMParams

hmm = pytest.importorskip("hmmlearn.hmm")

N_ITER = 25
LENGTHS = np.array([70, 130, 40, 160])
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _chain(rng: np.random.Generator, K: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.dirichlet(np.ones(K)), rng.dirichlet(np.full(K, 2.0), size=K)


def _gaussian_sequences(seed: int, K: int = 3, D: int = 2) -> np.ndarray:
    """Sequences from a 3-state HMM with correlated Gaussian emissions, away from the origin."""
    rng = np.random.default_rng(seed)
    trans = np.full((K, K), 0.1 / (K - 1)) + np.eye(K) * (0.9 - 0.1 / (K - 1))
    states = [0]
    for _ in range(LENGTHS.sum() - 1):
        states.append(rng.choice(K, p=trans[states[-1]]))
    means = rng.normal(size=(K, D)) * 3.0 + 10.0
    mix = rng.normal(size=(K, D, D)) * 0.4 + np.eye(D)
    noise = np.einsum("nd,nde->ne", rng.standard_normal((len(states), D)), mix[states])
    return means[states] + noise


def _start_covariances(ct: str, K: int, D: int, rng: np.random.Generator) -> np.ndarray:
    """Starting covariances in hmmlearn's (and the structure's) shape for ``ct``."""
    A = rng.normal(size=(K, D, D)) * 0.3
    full = A @ A.transpose(0, 2, 1) + 1.5 * np.eye(D)
    return {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[ct]


def _hmmlearn_history(ref, X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, lengths)
    return np.asarray(ref.monitor_.history)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_hmm_same_loglik_every_iteration(covariance_type: str) -> None:
    X = _gaussian_sequences(1)
    K, D = 3, X.shape[1]
    rng = np.random.default_rng(2)
    startprob, transmat = _chain(rng, K)
    means = X[rng.choice(X.shape[0], K, replace=False)]
    covars = _start_covariances(covariance_type, K, D, rng)

    ref = hmm.GaussianHMM(
        K,
        covariance_type,
        init_params="",
        params="stmc",
        means_prior=0,
        means_weight=0,
        covars_prior=0.0,
        n_iter=N_ITER,
        tol=-np.inf,
    )
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = startprob, transmat, means, covars
    theirs = _hmmlearn_history(ref, X, LENGTHS)

    family = Gaussian(covariance_type, reg_covar=0.0).configure(X)
    emission = GaussianParams(means, family.covariance.precisions_cholesky(covars))
    result = run_em(
        HMMModel(family, K),
        SequenceData.of(X, LENGTHS),
        HMMParams(startprob, transmat, emission),
        EMConfig(max_iter=N_ITER, tol=0.0),
    )
    ours = np.asarray(result.history[:N_ITER]) * X.shape[0]
    assert theirs.shape == (N_ITER,)
    assert theirs[-1] - theirs[0] > 50.0  # EM really moved
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_gaussian_hmm_estimator_matches_hmmlearn_parameters_and_inference() -> None:
    """The estimator from a user start: per-iteration log-likelihoods, fitted parameters,
    Viterbi path and log-probability, posteriors and score equal hmmlearn's."""
    X = _gaussian_sequences(3)
    K = 3
    rng = np.random.default_rng(4)
    startprob, transmat = _chain(rng, K)
    means = X[rng.choice(X.shape[0], K, replace=False)]
    covars = _start_covariances("full", K, X.shape[1], rng)
    ref = hmm.GaussianHMM(
        K, "full", init_params="", means_weight=0, covars_prior=0.0, n_iter=N_ITER, tol=-np.inf
    )
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = startprob, transmat, means, covars
    theirs = _hmmlearn_history(ref, X, LENGTHS)

    family = Gaussian("full", reg_covar=0.0)
    ours = GaussianHMM(
        K,
        "full",
        reg_covar=0.0,
        startprob=startprob,
        transmat=transmat,
        emission_init=GaussianParams(means, family.covariance.precisions_cholesky(covars)),
        max_iter=N_ITER,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, LENGTHS)
    np.testing.assert_allclose(ours.history_[:N_ITER] * X.shape[0], theirs, rtol=1e-6)
    # hmmlearn's fit ends with an M-step after its last measured E-step, as emkit's does
    np.testing.assert_allclose(ours.startprob_, ref.startprob_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.transmat_, ref.transmat_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.covars_, ref.covars_, rtol=1e-6)
    assert ours.score(X, LENGTHS) == pytest.approx(ref.score(X, LENGTHS), rel=1e-9)
    ref_logprob, ref_path = ref.decode(X, LENGTHS, algorithm="viterbi")
    logprob, path = ours.decode(X, LENGTHS)
    assert logprob == pytest.approx(ref_logprob, rel=1e-9)
    np.testing.assert_array_equal(path, ref_path)
    np.testing.assert_allclose(
        ours.predict_proba(X, LENGTHS), ref.predict_proba(X, LENGTHS), atol=1e-9
    )
    np.testing.assert_array_equal(
        ours.decode(X, LENGTHS, algorithm="map")[1], ref.decode(X, LENGTHS, algorithm="map")[1]
    )


def test_poisson_hmm_same_loglik_every_iteration() -> None:
    rng = np.random.default_rng(5)
    K, D = 3, 2
    rates = np.array([[1.0, 8.0], [5.0, 2.0], [12.0, 12.0]])
    trans = np.full((K, K), 0.1) + np.eye(K) * 0.7
    states = [0]
    for _ in range(LENGTHS.sum() - 1):
        states.append(rng.choice(K, p=trans[states[-1]]))
    X = rng.poisson(rates[states]).astype(np.float64)
    startprob, transmat = _chain(rng, K)
    start_rates = rng.uniform(1.0, 10.0, size=(K, D))

    ref = hmm.PoissonHMM(K, init_params="", params="stl", n_iter=N_ITER, tol=-np.inf)
    ref.startprob_, ref.transmat_, ref.lambdas_ = startprob, transmat, start_rates
    theirs = _hmmlearn_history(ref, X, LENGTHS)

    result = run_em(
        HMMModel(Poisson(), K),
        SequenceData.of(X, LENGTHS),
        HMMParams(startprob, transmat, PoissonParams(start_rates)),
        EMConfig(max_iter=N_ITER, tol=0.0),
    )
    ours = np.asarray(result.history[:N_ITER]) * X.shape[0]
    assert theirs[-1] - theirs[0] > 50.0
    # with tol=0 emkit stops once an iteration changes nothing (here after ~16 of them)
    assert ours.size >= 12
    np.testing.assert_allclose(ours, theirs[: ours.size], rtol=1e-6)

    est = PoissonHMM(
        K,
        startprob=startprob,
        transmat=transmat,
        emission_init=PoissonParams(start_rates),
        max_iter=N_ITER,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, LENGTHS)
    np.testing.assert_allclose(est.lambdas_, ref.lambdas_, rtol=1e-6)
    np.testing.assert_array_equal(est.predict(X, LENGTHS), ref.predict(X, LENGTHS))


def test_categorical_hmm_same_loglik_every_iteration() -> None:
    if "categorical" not in FAMILIES:
        pytest.skip("the categorical family is not in emkit.families.FAMILIES")
    from emkit.families.categorical import CategoricalParams

    rng = np.random.default_rng(6)
    K, C = 3, 5
    emissions = rng.dirichlet(np.full(C, 0.5), size=K)
    trans = np.full((K, K), 0.1) + np.eye(K) * 0.7
    states = [0]
    for _ in range(LENGTHS.sum() - 1):
        states.append(rng.choice(K, p=trans[states[-1]]))
    X = np.array([[rng.choice(C, p=emissions[z])] for z in states])
    assert set(X[:, 0]) == set(range(C))  # every symbol seen: codes equal the symbols
    startprob, transmat = _chain(rng, K)
    start_emissions = rng.dirichlet(np.ones(C), size=K)

    ref = hmm.CategoricalHMM(K, init_params="", params="ste", n_iter=N_ITER, tol=-np.inf)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = startprob, transmat, start_emissions
    theirs = _hmmlearn_history(ref, X, LENGTHS)

    est = CategoricalHMM(
        K,
        startprob=startprob,
        transmat=transmat,
        emission_init=CategoricalParams(start_emissions),
        max_iter=N_ITER,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, LENGTHS)
    ours = est.history_[:N_ITER] * X.shape[0]
    assert theirs[-1] - theirs[0] > 20.0
    assert ours.size >= 12
    np.testing.assert_allclose(ours, theirs[: ours.size], rtol=1e-6)
    if ours.size == N_ITER:
        np.testing.assert_allclose(est.emissionprob_, ref.emissionprob_, rtol=1e-5, atol=1e-9)
        np.testing.assert_array_equal(est.predict(X, LENGTHS), ref.predict(X, LENGTHS))


# hmmlearn's letter strings and the typed Learn that replaces them.  hmmlearn's "stc" (means
# held) is not a reference: it collects Σ γ x only when "m" is in params, so its covariances come
# out of the order of Σ γ x² (1e9 here); that case is checked against a direct computation below.
LEARN_CASES = [
    ("stm", Learn(emissions=("means",))),  # covariances held
    ("mc", Learn(start=False, transitions=False)),
    ("st", Learn(emissions=False)),
]


def _held_case(seed: int, covariance_type: str):
    X = _gaussian_sequences(seed)
    K, D = 3, X.shape[1]
    rng = np.random.default_rng(seed + 1)
    startprob, transmat = _chain(rng, K)
    means = X[rng.choice(X.shape[0], K, replace=False)]
    covars = _start_covariances(covariance_type, K, D, rng)
    family = Gaussian(covariance_type, reg_covar=0.0)
    emission = GaussianParams(means, family.covariance.precisions_cholesky(covars))
    return X, startprob, transmat, means, covars, emission


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(("letters", "learn"), LEARN_CASES, ids=[c[0] for c in LEARN_CASES])
def test_held_parameters_same_loglik_as_hmmlearn_params(
    covariance_type: str, letters: str, learn: Learn
) -> None:
    X, startprob, transmat, means, covars, emission = _held_case(5, covariance_type)
    ref = hmm.GaussianHMM(3, covariance_type, init_params="", params=letters, means_prior=0,
                          means_weight=0, covars_prior=0.0, n_iter=N_ITER, tol=-np.inf)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = startprob, transmat, means, covars
    theirs = _hmmlearn_history(ref, X, LENGTHS)
    ours = GaussianHMM(3, covariance_type, reg_covar=0.0, startprob=startprob,
                       transmat=transmat, emission_init=emission, learn=learn,
                       max_iter=N_ITER, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, LENGTHS)
    assert theirs[-1] - theirs[0] > 10.0  # EM really moved
    n = min(theirs.size, ours.history_.size)
    assert n >= 10
    np.testing.assert_allclose(ours.history_[:n] * X.shape[0], theirs[:n], rtol=1e-6)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6)
    if letters == "stm":
        np.testing.assert_allclose(ours.covariances_, covars, rtol=1e-12)
    if not learn.start:
        np.testing.assert_allclose(ours.startprob_, startprob, rtol=1e-14)  # as normalised
        np.testing.assert_allclose(ours.transmat_, transmat, rtol=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_held_means_give_covariances_about_them(covariance_type: str) -> None:
    """One Baum-Welch step with the means held: Σ_k = Σ_t γ_tk (x_t − μ_k)(x_t − μ_k)ᵀ / Σ_t γ_tk
    (pooled over states for tied, averaged over features for spherical), from the posteriors
    of the starting parameters; then the log-likelihood only rises."""
    X, startprob, transmat, means, covars, emission = _held_case(7, covariance_type)
    model = HMMModel(Gaussian(covariance_type, reg_covar=0.0).configure(X), 3)
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)])
    _, gamma = model.posteriors(HMMParams(startprob, transmat, emission), X, offsets)
    scatter = np.stack([(X - means[k]).T @ ((X - means[k]) * gamma[:, k : k + 1])
                        for k in range(3)])
    nk = gamma.sum(axis=0)
    want = {
        "full": scatter / nk[:, None, None],
        "tied": scatter.sum(axis=0) / nk.sum(),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None],
        "spherical": np.diagonal(scatter, axis1=1, axis2=2).mean(axis=1) / nk,
    }[covariance_type]
    est = GaussianHMM(3, covariance_type, reg_covar=0.0, startprob=startprob, transmat=transmat,
                      emission_init=emission, learn=Learn(emissions=("covariances",)),
                      max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, LENGTHS)
        np.testing.assert_array_equal(est.means_, means)
        np.testing.assert_allclose(est.covariances_, want, rtol=1e-9)
        longer = est.set_params(max_iter=30).fit(X, LENGTHS)
    assert np.all(np.diff(longer.history_) >= -1e-12)
    # start 2 + transitions 6 + the covariances (the held means are not counted)
    assert longer.n_parameters() == 2 + 6 + {"full": 9, "tied": 3, "diag": 6,
                                             "spherical": 3}[covariance_type]


def test_multinomial_hmm_same_loglik_every_iteration() -> None:
    """Rows of counts over 5 categories (20 per row), hmmlearn's MultinomialHMM from the same
    start: the same log-likelihood after every iteration and the same emission table."""
    rng = np.random.default_rng(8)
    K, D, N = 2, 5, 20
    table = np.array([[0.5, 0.2, 0.1, 0.1, 0.1], [0.05, 0.05, 0.2, 0.3, 0.4]])
    states = (np.arange(LENGTHS.sum()) // 40) % 2
    X = np.array([rng.multinomial(N, table[s]) for s in states])
    startprob, transmat = _chain(rng, K)
    start_table = rng.dirichlet(np.ones(D), size=K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hmmlearn's note on its MultinomialHMM's history
        ref = hmm.MultinomialHMM(K, n_trials=N, init_params="", params="ste", n_iter=N_ITER,
                                 tol=-np.inf)
        ref.startprob_, ref.transmat_, ref.emissionprob_ = startprob, transmat, start_table
        theirs = _hmmlearn_history(ref, X, LENGTHS)
    # stopping="none": every iteration, also along the float64 plateau hmmlearn runs on
    ours = MultinomialHMM(K, startprob=startprob, transmat=transmat,
                          emission_init={"probabilities": start_table}, max_iter=N_ITER,
                          stopping="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X.astype(float), LENGTHS)
    n = min(theirs.size, ours.history_.size)
    assert n >= 8 and theirs[n - 1] - theirs[0] > 100.0
    np.testing.assert_allclose(ours.history_[:n] * X.shape[0], theirs[:n], rtol=1e-6)
    np.testing.assert_allclose(ours.emissionprob_, ref.emissionprob_, atol=1e-6)
    assert ours.n_parameters() == 1 + 2 + K * (D - 1)
    assert ours.sample(30, random_state=0)[0].sum(axis=1).tolist() == [N] * 30
