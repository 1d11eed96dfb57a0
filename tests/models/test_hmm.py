"""Hidden Markov models: kernels against oracles and brute force, sequence data, the estimator's
topology, freezing, missing rows, sampling, and clear errors on bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

import emkit
from emkit import HMM, CategoricalHMM, GaussianHMM, Learn, MixtureModel, PoissonHMM
from emkit._validation import InputError
from emkit.engine import ArrayData, EMConfig, expected_stats, run_em
from emkit.engine.data import LengthsError, SequenceData, check_lengths
from emkit.families import FAMILIES, make_family
from emkit.families.base import Family
from emkit.families.gaussian import Gaussian, GaussianParams
from emkit.families.poisson import Poisson
from emkit.models._hmm_kernels import forward_backward, viterbi
from emkit.models.hmm import HMMModel, HMMParams, ProbabilityError
from emkit.models.mixture import FamilyMixture

# --------------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------------


def run_forward_backward(logb, lengths, startprob, transmat, weights=None):
    lengths = np.asarray(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    K = startprob.size
    weights = np.ones(lengths.size) if weights is None else np.asarray(weights, dtype=float)
    gamma = np.empty_like(logb)
    loglik = np.empty(lengths.size)
    xi, start, occupancy = np.zeros((K, K)), np.zeros(K), np.zeros(K)
    forward_backward(
        np.array(logb, dtype=float), offsets, startprob, transmat, weights, gamma, loglik, xi,
        start, occupancy, False,
    )
    np.testing.assert_allclose(occupancy, np.repeat(weights, lengths) @ gamma, rtol=1e-12)
    return loglik, gamma, xi, start


def run_viterbi(logb, lengths, startprob, transmat):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    logprob = np.empty(len(lengths))
    states = np.empty(logb.shape[0], dtype=np.intp)
    with np.errstate(divide="ignore"):
        log_start, log_trans_t = np.log(startprob), np.ascontiguousarray(np.log(transmat).T)
    viterbi(np.ascontiguousarray(logb, dtype=float), offsets, log_start, log_trans_t, logprob,
            states)
    return logprob, states


def test_forward_backward_textbook_oracle() -> None:
    """ORACLES.md, "Hidden Markov models": the two-state example."""
    transmat = np.array([[0.7, 0.3], [0.3, 0.7]])
    startprob = np.array([0.5, 0.5])
    frames = np.array([[0.9, 0.2], [0.9, 0.2], [0.1, 0.8], [0.9, 0.2], [0.9, 0.2]])
    loglik, gamma, xi, start = run_forward_backward(np.log(frames), [5], startprob, transmat)
    assert loglik[0] == pytest.approx(-3.3725020, abs=5e-8)
    expected = [[0.8673, 0.1327], [0.8204, 0.1796], [0.3075, 0.6925], [0.8204, 0.1796],
                [0.8673, 0.1327]]
    np.testing.assert_allclose(gamma, expected, atol=5e-5)
    assert xi.sum() == pytest.approx(4.0)  # T − 1 transitions
    np.testing.assert_allclose(start, gamma[0])
    logprob, states = run_viterbi(np.log(frames), [5], startprob, transmat)
    assert logprob[0] == pytest.approx(-4.4590283, abs=5e-8)
    np.testing.assert_array_equal(states, [0, 0, 1, 0, 0])


def brute_force(logb, startprob, transmat):
    """Enumerate every path of one short sequence: log P, γ, Σξ, best path and its log-prob."""
    T, K = logb.shape
    with np.errstate(divide="ignore"):
        ls, lt = np.log(startprob), np.log(transmat)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    joint = ls[paths[:, 0]] + logb[np.arange(T), paths].sum(axis=1)
    joint += lt[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    loglik = logsumexp(joint)
    post = np.exp(joint - loglik)
    gamma = np.zeros((T, K))
    xi = np.zeros((K, K))
    for p, path in zip(post, paths, strict=True):
        gamma[np.arange(T), path] += p
        np.add.at(xi, (path[:-1], path[1:]), p)
    best = int(np.argmax(joint))
    return loglik, gamma, xi, joint[best], paths[best]


@pytest.mark.parametrize("seed", range(6))
def test_kernels_equal_brute_force_with_zeros_and_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    K = 3
    lengths = [4, 1, 5, 3]
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if seed % 2:  # structural zeros (a left-right chain) and a zero start entry
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob[2] = 0.0
        startprob /= startprob.sum()
    logb = rng.normal(size=(sum(lengths), K)) * 3.0 - 20.0
    weights = rng.uniform(0.2, 2.0, size=len(lengths))
    loglik, gamma, xi, start = run_forward_backward(logb, lengths, startprob, transmat, weights)
    logprob, states = run_viterbi(logb, lengths, startprob, transmat)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    xi_sum, start_sum = np.zeros((K, K)), np.zeros(K)
    for s, (a, b) in enumerate(itertools.pairwise(offsets)):
        ll, g, x, best, path = brute_force(logb[a:b], startprob, transmat)
        assert loglik[s] == pytest.approx(ll, rel=1e-12)
        np.testing.assert_allclose(gamma[a:b], g, atol=1e-12)
        assert logprob[s] == pytest.approx(best, rel=1e-12)
        np.testing.assert_array_equal(states[a:b], path)
        xi_sum += weights[s] * x
        start_sum += weights[s] * g[0]
    np.testing.assert_allclose(xi, xi_sum, atol=1e-12)
    np.testing.assert_allclose(start, start_sum, atol=1e-12)
    assert np.all(xi[transmat == 0] == 0.0)  # forbidden transitions get exactly nothing


def test_forward_backward_survives_emissions_that_underflow_the_scaling() -> None:
    """A reachable state explaining x_t 1e5 nats worse than an unreachable one: the exact
    log-space shift takes over and the result equals the log-space brute force."""
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    logb = np.array(
        [[0.0, -1.0, -2.0], [-1e5, -1e5 - 3.0, 0.0], [-5.0, -1.0, -1e5], [-2.0, -4.0, -1.0]]
    )
    loglik, gamma, xi, _ = run_forward_backward(logb, [4], startprob, transmat)
    ll, g, x, best, path = brute_force(logb, startprob, transmat)
    assert np.isfinite(loglik[0])
    assert loglik[0] == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(gamma, g, atol=1e-12)
    np.testing.assert_allclose(xi, x, atol=1e-12)
    logprob, states = run_viterbi(logb, [4], startprob, transmat)
    assert logprob[0] == pytest.approx(best, rel=1e-12)
    np.testing.assert_array_equal(states, path)


def test_sequence_no_state_can_emit_has_minus_infinite_loglik() -> None:
    logb = np.array([[0.0, -1.0], [-np.inf, -np.inf]])
    loglik, *_ = run_forward_backward(logb, [2], np.array([0.5, 0.5]), np.full((2, 2), 0.5))
    assert loglik[0] == -np.inf
    # only an unreachable state could emit the second row: impossible, not NaN
    logb = np.array([[0.0, -1.0], [-np.inf, 0.0], [0.0, 0.0]])
    stay = np.array([[1.0, 0.0], [0.0, 1.0]])
    loglik, gamma, *_ = run_forward_backward(logb, [3], np.array([1.0, 0.0]), stay)
    assert loglik[0] == -np.inf and not np.isnan(gamma).any()


# --------------------------------------------------------------------------------------------------
# sequence data
# --------------------------------------------------------------------------------------------------


def test_check_lengths_errors_name_the_problem() -> None:
    np.testing.assert_array_equal(check_lengths(None, 5), [5])
    np.testing.assert_array_equal(check_lengths([2.0, 3.0], 5), [2, 3])
    with pytest.raises(LengthsError, match="sum to 6 but X has 5 rows"):
        check_lengths([3, 3], 5)
    with pytest.raises(LengthsError, match=r"lengths\[1\] = 0"):
        check_lengths([5, 0], 5)
    with pytest.raises(LengthsError, match=r"lengths\[0\] = -1"):
        check_lengths([-1, 6], 5)
    with pytest.raises(LengthsError, match="integers"):
        check_lengths([2.5, 2.5], 5)
    with pytest.raises(LengthsError, match="integers"):
        check_lengths(["2", "3"], 5)
    with pytest.raises(LengthsError, match="1-D"):
        check_lengths([[5]], 5)
    with pytest.raises(LengthsError, match="empty"):
        check_lengths([], 5)


@pytest.mark.parametrize("max_rows", [1, 4, 10, 25, 1000])
def test_batches_hold_whole_sequences(max_rows: int) -> None:
    lengths = np.array([3, 12, 1, 4, 4, 7])
    X = np.arange(lengths.sum(), dtype=float)[:, None]
    data = SequenceData.of(X, lengths, weights=np.arange(1.0, 7.0))
    batches = list(data.batches(max_rows))
    seen_lengths = np.concatenate([b.lengths for b in batches])
    np.testing.assert_array_equal(seen_lengths, lengths)
    np.testing.assert_array_equal(np.concatenate([b.X for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b.weights for b in batches]), data.weights)
    for b in batches:
        assert b.n_rows <= max_rows or b.n_sequences == 1  # only a long sequence exceeds it
    assert (len(batches) == 1) == (max_rows >= lengths.sum())
    if max_rows == 1:
        assert len(batches) == lengths.size


def test_sequence_data_subset_and_weights() -> None:
    X = np.arange(10.0)[:, None]
    data = SequenceData.of(X, [2, 5, 3], [1.0, 2.0, 3.0])
    part = data.subset([2, 0])
    np.testing.assert_array_equal(part.X[:, 0], [7, 8, 9, 0, 1])
    np.testing.assert_array_equal(part.sequence_weights, [3.0, 1.0])
    with pytest.raises(ValueError, match="one weight per sequence"):
        SequenceData.of(X, [2, 5, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        SequenceData.of(X, [2, 5, 3], [1.0, -2.0, 1.0])


# --------------------------------------------------------------------------------------------------
# the Gaussian family
# --------------------------------------------------------------------------------------------------


class GeneralGaussian(Gaussian):
    """The Gaussian family without its fused E-step (the family protocol's general pass)."""

    def mixture_chunk(self, prepared, log_weights, X, w):
        return Family.mixture_chunk(self, prepared, log_weights, X, w)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_fused_e_step_equals_the_general_pass(ct: str, blobs: np.ndarray) -> None:
    """The Gaussian family's fused chunk (one BLAS-3 pass) and the general pass of the family
    protocol (log_prob, softmax, accumulate): the same E-step log-likelihood and M-step."""
    X = blobs + 100.0  # far from zero: the origin must do its work
    family = Gaussian(ct).configure(X)
    fused, general = FamilyMixture(family, 3), FamilyMixture(GeneralGaussian(ct).configure(X), 3)
    data = ArrayData.of(X)
    p = fused.init(data, np.random.default_rng(0))
    s_fused = expected_stats(fused, p, data, 10**9)
    s_general = expected_stats(general, p, data, 97)
    assert s_general.loglik == pytest.approx(s_fused.loglik, rel=1e-12)
    new_fused, new_general = fused.m_step(s_fused, p), general.m_step(s_general, p)
    np.testing.assert_allclose(new_general.weights, new_fused.weights, rtol=1e-10)
    np.testing.assert_allclose(
        new_general.components.means, new_fused.components.means, rtol=1e-10
    )
    np.testing.assert_allclose(
        new_general.components.precisions_cholesky,
        new_fused.components.precisions_cholesky,
        rtol=1e-7,
    )


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_family_bookkeeping(ct: str, blobs: np.ndarray) -> None:
    family = Gaussian(ct, reg_covar=1e-4).configure(blobs)
    assert "gaussian" in FAMILIES
    again = make_family(family.config())
    assert again.config() == family.config()
    K, D = 3, blobs.shape[1]
    R = np.random.default_rng(1).dirichlet(np.ones(K), size=blobs.shape[0])
    params = family.m_step(family.accumulate(None, blobs, R), R.sum(axis=0), None)
    back = family.unflatten(family.flatten(params), params)
    np.testing.assert_allclose(back.means, params.means)
    np.testing.assert_allclose(back.precisions_cholesky, params.precisions_cholesky, atol=1e-12)
    assert family.flatten(params).size == family.n_parameters(params)
    swapped = family.take(params, np.array([2, 0, 1]))
    np.testing.assert_allclose(family.log_prob(swapped, blobs), family.log_prob(params, blobs)[
        :, [2, 0, 1]])
    draws = family.sample(params, 1, 20000, np.random.default_rng(2))
    cov = family.describe(params)["covariances"]
    full = {"full": lambda c: c[1], "tied": lambda c: c, "diag": lambda c: np.diag(c[1]),
            "spherical": lambda c: np.eye(D) * c[1]}[ct](cov)
    np.testing.assert_allclose(draws.mean(axis=0), params.means[1], atol=0.05)
    np.testing.assert_allclose(np.cov(draws.T), full, rtol=0.05, atol=0.3)  # ~5 sd


def test_mixture_model_with_the_gaussian_family(blobs: np.ndarray) -> None:
    model = MixtureModel("gaussian", 3, random_state=0).fit(blobs)
    ref = emkit.GaussianMixture(3, random_state=0).fit(blobs)
    assert model.score(blobs) == pytest.approx(ref.score(blobs), rel=1e-6)
    assert model.means_.shape == (3, 2) and model.covariances_.shape == (3, 2, 2)


# --------------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------------


def sample_hmm(seed, lengths, means, transmat, startprob=None, scale=0.5):
    """Gaussian sequences of a known HMM (isotropic noise ``scale``)."""
    rng = np.random.default_rng(seed)
    K = len(means)
    startprob = np.full(K, 1.0 / K) if startprob is None else startprob
    states = []
    for T in lengths:
        z = [rng.choice(K, p=startprob)]
        for _ in range(T - 1):
            z.append(rng.choice(K, p=transmat[z[-1]]))
        states.extend(z)
    states = np.array(states)
    means = np.asarray(means, dtype=float)
    return means[states] + rng.normal(size=(len(states), means.shape[1])) * scale, states


LEFT_RIGHT = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]])


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(*args, **kwargs)


def test_recovers_a_known_model_from_sequences_of_different_lengths() -> None:
    transmat = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.1, 0.0, 0.9]])
    means = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    lengths = [300, 17, 150, 1, 532]
    X, states = sample_hmm(0, lengths, means, transmat)
    est = GaussianHMM(3, "diag", random_state=0, n_init=2).fit(X, lengths)
    order = np.argsort(est.means_[:, 0] + 2 * est.means_[:, 1])
    np.testing.assert_allclose(est.means_[order], means, atol=0.1)
    np.testing.assert_allclose(est.transmat_[np.ix_(order, order)], transmat, atol=0.04)
    assert est.covars_.shape == (3, 2, 2) and est.covariances_.shape == (3, 2)
    path = est.predict(X, lengths)
    assert np.mean(np.argsort(order)[path] == states) > 0.99  # estimated state -> true state
    # the score of several sequences is the sum of their scores
    per = est.score_sequences(X, lengths)
    assert per.shape == (5,)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    singles = [est.score(X[a:b]) for a, b in itertools.pairwise(offsets)]
    np.testing.assert_allclose(per, singles, rtol=1e-12)
    assert est.score(X, lengths) == pytest.approx(sum(singles), rel=1e-12)
    # decoding: Viterbi's path is at least as probable as the MAP path
    vit, _ = est.decode(X, lengths)
    mp, _ = est.decode(X, lengths, algorithm="map")
    assert vit >= mp - 1e-12 * abs(mp)
    proba = est.predict_proba(X, lengths)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_left_right_zeros_stay_zero() -> None:
    X, _ = sample_hmm(1, [60] * 8, [[0.0], [3.0], [6.0]], LEFT_RIGHT,
                      startprob=np.array([1.0, 0.0, 0.0]))
    lengths = [60] * 8
    for accelerate in ("none", "squarem"):
        est = quiet_fit(
            GaussianHMM(3, "diag", startprob=[1.0, 0.0, 0.0], transmat=LEFT_RIGHT,
                        accelerate=accelerate, random_state=0, max_iter=50),
            X, lengths,
        )
        assert np.all(est.transmat_[LEFT_RIGHT == 0] == 0.0), accelerate
        assert np.all(est.transmat_[LEFT_RIGHT > 0] > 0.0)
        assert est.startprob_[1] == est.startprob_[2] == 0.0
        np.testing.assert_allclose(est.transmat_.sum(axis=1), 1.0)
        # parameters count only the free entries: 2 + 2 + 1 transitions... minus one per row
        assert est.n_parameters() == (1 - 1) + (5 - 3) + 3 * 1 + 3 * 1
        _, states = est.sample(lengths=[40, 40], random_state=3)
        for seq in (states[:40], states[40:]):
            assert seq[0] == 0 and np.all(np.diff(seq) >= 0)  # never moves backwards


@pytest.mark.parametrize(
    "learn",
    [Learn(start=False), Learn(transitions=False), Learn(emissions=False),
     Learn(start=False, transitions=False, emissions=False)],
)
def test_frozen_parameters_stay_fixed(learn: Learn) -> None:
    transmat = np.array([[0.6, 0.4], [0.3, 0.7]])
    X, _ = sample_hmm(2, [100, 80], [[0.0], [2.0]], np.array([[0.9, 0.1], [0.2, 0.8]]))
    emission = GaussianParams(np.array([[-1.0], [3.0]]), np.array([[[1.0]], [[0.5]]]))
    est = quiet_fit(
        GaussianHMM(2, "full", startprob=[0.3, 0.7], transmat=transmat, emission_init=emission,
                    learn=learn, max_iter=20, accelerate="squarem"),
        X, [100, 80],
    )
    assert (est.startprob_ == np.array([0.3, 0.7])).all() != learn.start
    assert (est.transmat_ == transmat).all() != learn.transitions
    assert (est.means_ == emission.means).all() != learn.emissions
    if not learn.emissions:
        assert (est.emission_params_.precisions_cholesky == emission.precisions_cholesky).all()
    if not (learn.start or learn.transitions or learn.emissions):
        assert est.n_parameters() == 0
    assert np.all(np.diff(est.history_) >= -1e-12)


def test_learn_names_emission_groups_and_says_which_exist(tmp_path) -> None:
    X, _ = sample_hmm(2, [100, 80], [[0.0], [2.0]], np.array([[0.9, 0.1], [0.2, 0.8]]))
    emission = GaussianParams(np.array([[-1.0], [3.0]]), np.array([[[1.0]], [[0.5]]]))
    learn = Learn(emissions=["covariances"])  # any collection of names; stored as a frozenset
    assert learn.emissions == frozenset({"covariances"}) and learn == Learn(
        emissions=("covariances",))
    est = quiet_fit(GaussianHMM(2, "full", emission_init=emission, learn=learn, max_iter=20,
                                accelerate="squarem"), X, [100, 80])
    np.testing.assert_array_equal(est.means_, emission.means)  # SQUAREM steps hold them too
    assert not np.allclose(est.covars_, [[[1.0]], [[4.0]]])
    assert np.all(np.diff(est.history_) >= -1e-12)
    loaded = emkit.load(emkit.save(est, tmp_path / "held.emk"))
    assert loaded.learn == learn
    np.testing.assert_array_equal(loaded.predict_proba(X, [100, 80]),
                                  est.predict_proba(X, [100, 80]))
    with pytest.raises(ValueError, match=r"names \['mean'\].*groups \['means', 'covariances'\]"):
        GaussianHMM(2, learn=Learn(emissions=("mean",))).fit(X)
    with pytest.raises(ValueError, match="'poisson' emission estimates its parameters as one"):
        PoissonHMM(2, learn=Learn(emissions=("rates",))).fit(np.abs(np.round(X)))
    with pytest.raises(TypeError, match="collection of parameter group names"):
        Learn(emissions="means")
    with pytest.raises(TypeError, match="Learn.start must be True or False"):
        Learn(start="yes")


def test_missing_rows_are_marginalised() -> None:
    """A NaN row contributes b_k = 1 to every state: the log-likelihood equals that of the
    sequence with the emission term of that step dropped (computed by the kernel directly)."""
    X, _ = sample_hmm(3, [50, 30], [[0.0, 0.0], [3.0, 1.0]], np.array([[0.8, 0.2], [0.3, 0.7]]))
    est = GaussianHMM(2, "full", random_state=0, max_iter=10).fit(X, [50, 30])
    holes = [0, 7, 8, 49, 50, 79]  # first, inner, consecutive, last rows of both sequences
    Xm = X.copy()
    Xm[holes] = np.nan
    model, params = est._engine_model(), est._get_fitted_params()
    logb = est.emission_.log_prob(params.emission, X)
    logb[holes] = 0.0
    loglik, gamma, *_ = run_forward_backward(logb, [50, 30], params.startprob, params.transmat)
    np.testing.assert_allclose(est.score_sequences(Xm, [50, 30]), loglik, rtol=1e-12)
    np.testing.assert_allclose(est.predict_proba(Xm, [50, 30]), gamma, atol=1e-12)
    assert est.score(Xm, [50, 30]) > est.score(X, [50, 30])  # fewer densities multiplied
    # fitting with missing rows: the statistics skip them, the fit stays finite and monotone
    fitted = quiet_fit(GaussianHMM(2, "full", random_state=0, max_iter=30), Xm, [50, 30])
    assert np.all(np.isfinite(fitted.means_))
    assert np.all(np.diff(fitted.history_) >= -1e-12)
    stats = expected_stats(model, params, SequenceData.of(Xm, [50, 30]), 10**9)
    assert stats.nk.sum() == pytest.approx(80 - len(holes))
    assert stats.trans.sum() == pytest.approx(78)  # transitions through missing rows count
    Xp = X.copy()
    Xp[3, 1] = np.nan  # a single cell: marginalised by the family (families/test_missing_cells.py)
    assert np.isfinite(est.score(Xp))

    class WholeRowsOnly(Gaussian):  # a user's family that cannot marginalise single cells
        handles_missing = False

    rows_only = quiet_fit(HMM(WholeRowsOnly("full"), 2, random_state=0, max_iter=3), X)
    assert np.isfinite(rows_only.score(Xm, [50, 30]))  # whole missing rows still work
    with pytest.raises(InputError, match="row 3 is missing column 1 but not every column"):
        rows_only.predict(Xp)
    with pytest.raises(InputError, match="inf"):
        Xi = X.copy()
        Xi[4, 0] = np.inf
        est.fit(Xi)


def test_poisson_hmm_and_generic_hmm_agree() -> None:
    rng = np.random.default_rng(4)
    states = np.repeat([0, 1, 0, 2, 1], 60)
    X = rng.poisson(np.array([[2.0, 9.0], [8.0, 1.0], [15.0, 15.0]])[states]).astype(float)
    a = PoissonHMM(3, random_state=1, max_iter=40, tol=0.0)
    b = HMM("poisson", 3, random_state=1, max_iter=40, tol=0.0)
    quiet_fit(a, X)
    quiet_fit(b, X)
    np.testing.assert_array_equal(a.lambdas_, b.rates_)
    np.testing.assert_array_equal(a.transmat_, b.transmat_)
    with pytest.raises(InputError, match="Negative"):
        a.predict(-X)


def test_sequence_weights_equal_repeated_sequences() -> None:
    X, _ = sample_hmm(5, [40, 25, 35], [[0.0], [3.0]], np.array([[0.85, 0.15], [0.2, 0.8]]))
    parts = np.split(X, np.cumsum([40, 25]))
    start = GaussianParams(np.array([[0.5], [2.5]]), np.array([[1.0], [1.0]]))
    common = dict(emission_init=start, max_iter=15, tol=0.0)
    weighted = quiet_fit(GaussianHMM(2, **common), X, [40, 25, 35], sample_weight=[2, 1, 3])
    repeated = np.vstack([parts[0], parts[0], parts[1], parts[2], parts[2], parts[2]])
    copies = quiet_fit(GaussianHMM(2, **common), repeated, [40, 40, 25, 35, 35, 35])
    np.testing.assert_allclose(weighted.means_, copies.means_, rtol=1e-10)
    np.testing.assert_allclose(weighted.transmat_, copies.transmat_, rtol=1e-10)
    n = min(weighted.history_.size, copies.history_.size)  # tol=0: stops when nothing changes
    assert n >= 5
    np.testing.assert_allclose(weighted.history_[:n], copies.history_[:n], rtol=1e-10)


def test_sample_shapes_and_chain() -> None:
    X, _ = sample_hmm(6, [200], [[0.0], [5.0]], np.array([[0.95, 0.05], [0.05, 0.95]]))
    est = GaussianHMM(2, random_state=0).fit(X)
    Xs, zs = est.sample(500)
    assert Xs.shape == (500, 1) and zs.shape == (500,)
    Xs2, zs2 = est.sample(lengths=[3, 4], random_state=1)
    assert Xs2.shape == (7, 1)
    again = est.sample(lengths=[3, 4], random_state=1)
    np.testing.assert_array_equal(again[0], Xs2)
    switches = np.mean(zs[1:] != zs[:-1])
    assert switches < 0.15  # sticky chain
    with pytest.raises(ValueError, match="n_samples=5 but the lengths add up to 7"):
        est.sample(5, lengths=[3, 4])


def test_bad_input_gives_clear_errors() -> None:
    X, _ = sample_hmm(7, [50], [[0.0, 0.0], [3.0, 3.0]], np.array([[0.9, 0.1], [0.1, 0.9]]))
    with pytest.raises(LengthsError, match="sum to 40 but X has 50 rows"):
        GaussianHMM(2).fit(X, [20, 20])
    with pytest.raises(ProbabilityError, match="row 1 of transmat is all zeros"):
        GaussianHMM(2, transmat=[[0.5, 0.5], [0.0, 0.0]]).fit(X)
    with pytest.raises(ProbabilityError, match="row 0 of transmat sums to 0.9"):
        GaussianHMM(2, transmat=[[0.5, 0.4], [0.5, 0.5]]).fit(X)
    with pytest.raises(ProbabilityError, match="startprob sums to 1.2"):
        GaussianHMM(2, startprob=[0.6, 0.6]).fit(X)
    with pytest.raises(ProbabilityError, match="shape"):
        GaussianHMM(2, startprob=[1.0]).fit(X)
    with pytest.raises(ProbabilityError, match="non-negative"):
        GaussianHMM(2, transmat=[[1.5, -0.5], [0.5, 0.5]]).fit(X)
    est = GaussianHMM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianHMM is expecting 2"):
        est.predict(np.ones((4, 3)))
    with pytest.raises(LengthsError, match="sum to 3 but X has 50 rows"):
        est.predict_proba(X, [1, 2])
    with pytest.raises(InputError, match="one weight per sequence"):
        GaussianHMM(2).fit(X, [25, 25], sample_weight=[1.0])
    with pytest.raises(InputError, match="every row of X is missing"):
        GaussianHMM(2).fit(np.full((5, 2), np.nan))
    with pytest.raises(TypeError, match="Learn"):
        GaussianHMM(2, learn="st").fit(X)
    with pytest.raises(ValueError, match="n_states"):
        GaussianHMM(0).fit(X)
    with pytest.raises(ValueError, match="algorithm"):
        est.decode(X, algorithm="forward")
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianHMM(2, "banded").fit(X)


def test_information_criteria_count_free_parameters() -> None:
    X, _ = sample_hmm(8, [120], [[0.0, 0.0], [3.0, 3.0]], np.array([[0.9, 0.1], [0.1, 0.9]]))
    est = GaussianHMM(2, "full", random_state=0).fit(X)
    p = 1 + 2 + (2 * 2 + 2 * 3)  # start, transitions, means and full covariances
    assert est.n_parameters() == p
    ll = est.score(X)
    assert est.bic(X) == pytest.approx(-2 * ll + p * np.log(120))
    assert est.aic(X) == pytest.approx(-2 * ll + 2 * p)


def test_float32_input_and_pandas() -> None:
    pd = pytest.importorskip("pandas")
    X, _ = sample_hmm(9, [100], [[0.0, 0.0], [3.0, 3.0]], np.array([[0.9, 0.1], [0.1, 0.9]]))
    est = GaussianHMM(2, random_state=0).fit(pd.DataFrame(X.astype(np.float32), columns=["a", "b"]))
    assert est.means_.dtype == np.float64
    assert est.predict(pd.DataFrame(X, columns=["a", "b"])).shape == (100,)


def test_engine_model_init_respects_user_chain_and_poisson_family() -> None:
    X = np.random.default_rng(0).poisson(3.0, size=(40, 2)).astype(float)
    trans = np.array([[0.5, 0.5], [0.0, 1.0]])
    model = HMMModel(Poisson(), 2, transmat=trans)
    params = model.init(SequenceData.of(X, [20, 20]), np.random.default_rng(0))
    assert isinstance(params, HMMParams)
    np.testing.assert_array_equal(params.transmat, trans)
    result = run_em(model, SequenceData.of(X, [20, 20]), params, EMConfig(max_iter=5, tol=0.0))
    assert result.params.transmat[1, 0] == 0.0


def test_emission_init_must_fit_the_states_and_features() -> None:
    X = np.arange(20.0)[:, None]
    three = GaussianParams(np.zeros((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="emission_init describes 3 states"):
        GaussianHMM(2, emission_init=three).fit(X)
    wide = GaussianParams(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="emission_init"):
        GaussianHMM(2, emission_init=wide).fit(X)


def test_categorical_hmm_with_string_symbols_and_missing_rows() -> None:
    if "categorical" not in FAMILIES:
        pytest.skip("the categorical family is not in emkit.families.FAMILIES")

    rng = np.random.default_rng(10)
    symbols = np.array(["rain", "sun", "wind"], dtype=object)
    emissions = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    z = [0]
    for _ in range(299):
        z.append(z[-1] if rng.random() < 0.9 else 1 - z[-1])
    X = np.array([[symbols[rng.choice(3, p=emissions[k])]] for k in z], dtype=object)
    est = CategoricalHMM(2, random_state=0, n_init=3).fit(X, [150, 150])
    table = est.emissionprob_
    assert table.shape == (2, 3)
    np.testing.assert_allclose(np.sort(table.max(axis=1)), [0.8, 0.8], atol=0.08)
    Xm = X.copy()
    Xm[[5, 6, 200]] = None  # whole rows missing (one column): marginalised
    assert np.isfinite(est.score(Xm, [150, 150]))
    assert est.score(Xm, [150, 150]) > est.score(X, [150, 150])
    refit = CategoricalHMM(2, random_state=0).fit(Xm, [150, 150])
    assert np.all(np.diff(refit.history_) >= -1e-12)
    with pytest.raises(InputError, match="'fog'.*not seen in fit"):
        est.predict(np.array([["sun"], ["fog"]], dtype=object))
    Xs, zs = est.sample(20, random_state=0)
    assert Xs.shape == (20, 1) and set(Xs[:, 0]) <= set(symbols)


def test_mixture_model_with_the_gaussian_family_saves_and_loads(tmp_path, blobs) -> None:
    model = MixtureModel("gaussian", 3, random_state=0).fit(blobs)
    loaded = emkit.load(emkit.save(model, tmp_path / "gaussian.emk"))
    np.testing.assert_array_equal(loaded.predict_proba(blobs), model.predict_proba(blobs))
    np.testing.assert_array_equal(loaded.score_samples(blobs), model.score_samples(blobs))


@pytest.mark.parametrize("make", [lambda: GaussianHMM(2, "tied"), lambda: PoissonHMM(2)])
def test_fitted_hmm_rebuilds_from_its_public_arrays_and_config(make) -> None:
    """What a model file keeps (fitted ``name_`` arrays and JSON values) rebuilds the family and
    the emission parameters exactly: the same predictions as the fitted estimator."""
    X, _ = sample_hmm(11, [80, 40], [[1.0, 1.0], [6.0, 6.0]], np.array([[0.9, 0.1], [0.2, 0.8]]))
    Xr = np.abs(X).round()  # counts for the Poisson HMM
    est = make().set_params(random_state=0).fit(Xr, [80, 40])
    fresh = make().set_params(random_state=0)
    for name, value in vars(est).items():
        if name.endswith("_") and not name.startswith("_"):
            setattr(fresh, name, value)
    assert "_emission" not in vars(fresh) and "_emission_params" not in vars(fresh)
    np.testing.assert_array_equal(
        fresh.predict_proba(Xr, [80, 40]), est.predict_proba(Xr, [80, 40])
    )
    np.testing.assert_array_equal(fresh.predict(Xr, [80, 40]), est.predict(Xr, [80, 40]))
    assert fresh.score(Xr, [80, 40]) == est.score(Xr, [80, 40])


def test_hmm_settings_survive_save_and_load(tmp_path) -> None:
    """A frozen ``Learn``, a user chain with a structural zero and starting emission parameters
    are constructor arguments with JSON forms: a loaded model refits to the same result."""
    X, _ = sample_hmm(12, [60] * 5, [[0.0], [3.0], [6.0]], LEFT_RIGHT,
                      startprob=np.array([1.0, 0.0, 0.0]))
    lengths = [60] * 5
    init = GaussianParams(np.array([[0.5], [2.5], [5.5]]), np.ones((3, 1)))
    est = quiet_fit(
        GaussianHMM(3, "diag", startprob=[1.0, 0.0, 0.0], transmat=LEFT_RIGHT,
                    emission_init=init, learn=Learn(start=False), random_state=0, max_iter=20),
        X, lengths,
    )
    loaded = emkit.load(emkit.save(est, tmp_path / "lr.emk"))
    assert loaded.learn == Learn(start=False)
    np.testing.assert_array_equal(loaded.startprob, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(loaded.transmat, LEFT_RIGHT)
    assert set(loaded.emission_init) == {"means", "covariances", "precisions_cholesky"}
    np.testing.assert_array_equal(loaded.predict_proba(X, lengths), est.predict_proba(X, lengths))
    (lp, path), (lp0, path0) = loaded.decode(X, lengths), est.decode(X, lengths)
    assert lp == lp0
    np.testing.assert_array_equal(path, path0)
    refit = quiet_fit(loaded, X, lengths)  # emission_init as the family's named arrays
    again = quiet_fit(clone_hmm(est), X, lengths)
    np.testing.assert_array_equal(refit.transmat_, again.transmat_)
    np.testing.assert_array_equal(refit.means_, again.means_)
    assert refit.transmat_[0, 2] == 0.0 and refit.startprob_[1] == 0.0


def clone_hmm(est):
    from sklearn.base import clone

    return clone(est)


def test_generic_and_categorical_hmms_save_and_load(tmp_path) -> None:
    X, _ = sample_hmm(13, [70, 50], [[1.0], [7.0]], np.array([[0.9, 0.1], [0.2, 0.8]]))
    counts = np.abs(X).round()
    est = HMM("poisson", 2, random_state=0).fit(counts, [70, 50])
    loaded = emkit.load(emkit.save(est, tmp_path / "p.emk"))
    assert type(loaded) is HMM and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(counts), est.predict_proba(counts))
    if "categorical" not in FAMILIES:
        return
    symbols = np.where(counts > 3, "high", "low").astype(object)
    cat = CategoricalHMM(2, random_state=0).fit(symbols, [70, 50])
    back = emkit.load(emkit.save(cat, tmp_path / "c.emk"))
    np.testing.assert_array_equal(back.predict(symbols), cat.predict(symbols))
    np.testing.assert_array_equal(back.emissionprob_, cat.emissionprob_)
    with pytest.raises(InputError, match="not seen in fit"):
        back.predict(np.array([["medium"]], dtype=object))


def test_invalid_learn_in_a_model_file_is_a_model_file_error(tmp_path) -> None:
    import json
    import zipfile

    X, _ = sample_hmm(14, [80], [[0.0], [4.0]], np.array([[0.9, 0.1], [0.1, 0.9]]))
    path = emkit.save(GaussianHMM(2, random_state=0).fit(X), tmp_path / "m.emk")
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["model.json"])
    assert header["params"]["learn"] == {"start": True, "transitions": True, "emissions": True}
    header["params"]["learn"] = {"start": "yes"}
    members["model.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    with pytest.raises(emkit.io.ModelFileError, match="learn"):
        emkit.load(path)


@pytest.mark.parametrize(
    "lengths",
    [
        [2**62, 2**62, 2**62, 2**62 + 200],  # int64 sum wraps to 200
        [2**63 - 1, 2**63 - 1, 202],
        np.array([2**64 - 1, 201], dtype=np.uint64),
        [1e300, 1.0],
    ],
)
def test_lengths_whose_sum_wraps_are_refused_before_the_kernels(lengths) -> None:
    X = np.random.default_rng(0).normal(size=(200, 2))
    with pytest.raises(LengthsError, match=r"lengths\[0\] = .*\(X has only 200 rows\)"):
        emkit.GaussianHMM(2, random_state=0).fit(X, lengths)
    fitted = emkit.GaussianHMM(2, random_state=0, max_iter=2).fit(X)
    with pytest.raises(LengthsError, match=r"lengths\[0\]"):
        fitted.score(X, lengths)
    with pytest.raises(LengthsError, match="too many rows"):
        check_lengths([2**61, 2**61], None)
