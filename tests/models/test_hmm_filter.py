"""HMM inference on the fast path: the numba forward filter against a plain numpy reference,
batches through the engine's backend (threads, one ``prepare``), and the one memory budget."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from emkit import GaussianHMM
from emkit.engine import EMConfig, expected_stats
from emkit.engine.data import SequenceData
from emkit.engine.loop import chunk_rows
from emkit.estimators.hmm import map_sequence_batches
from emkit.families.gaussian import Gaussian, GaussianParams
from emkit.models._hmm_kernels import forward_backward, forward_filter
from emkit.models.hmm import HMMModel


def reference_filter(logb, offsets, startprob, transmat):
    """``α_t ∝ (α_{t−1} A) ⊙ b_t`` step by step in numpy; a row whose product is zero (or
    NaN: no state can emit it) keeps the prediction ``α_{t−1} A``."""
    with np.errstate(invalid="ignore"):
        b = np.exp(logb - logb.max(axis=1, keepdims=True))
    alpha = np.empty_like(b)
    for a, e in itertools.pairwise(offsets):
        prior = startprob
        for t in range(int(a), int(e)):
            p = prior * b[t]
            total = p.sum()
            alpha[t] = p / total if total > 0 else prior
            prior = alpha[t] @ transmat
    return alpha


def run_filter(logb, offsets, startprob, transmat):
    alpha = np.empty_like(logb)
    loglik = np.empty(len(offsets) - 1)
    forward_filter(np.array(logb, dtype=float), offsets, startprob, transmat, alpha, loglik)
    return loglik, alpha


def run_forward_backward(logb, offsets, startprob, transmat):
    K, S = startprob.size, len(offsets) - 1
    gamma, loglik = np.empty_like(logb), np.empty(S)
    forward_backward(
        np.array(logb, dtype=float), offsets, startprob, transmat, np.ones(S), gamma, loglik,
        np.zeros((K, K)), np.zeros(K), np.zeros(K), False,
    )
    return loglik, gamma


@pytest.mark.parametrize("seed", range(4))
def test_filter_kernel_equals_numpy_reference_with_missing_and_impossible_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    K = 3
    lengths = np.array([6, 1, 9, 4])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if seed % 2:  # a left-right chain: structural zeros
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
    logb = rng.normal(size=(lengths.sum(), K)) * 3.0 - 10.0
    logb[2] = 0.0  # a missing row: b_k = 1 for every state
    logb[[3, 4]] = 0.0  # two in a row
    logb[6] = 0.0  # a whole missing sequence of one row
    logb[10] = -np.inf  # no state can emit it
    logb[12, :2] = -np.inf  # only state 2 can emit it (reachable or not, by the chain)
    loglik, alpha = run_filter(logb, offsets, startprob, transmat)
    np.testing.assert_allclose(alpha, reference_filter(logb, offsets, startprob, transmat),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-12)
    # the filter's log-likelihoods are forward-backward's, bit for bit (one forward pass)
    ll_fb, gamma = run_forward_backward(logb, offsets, startprob, transmat)
    np.testing.assert_array_equal(loglik, ll_fb)
    assert loglik[2] == -np.inf and np.isfinite(loglik[[0, 1, 3]]).all()
    last = offsets[1:] - 1  # at the last row, filtering and smoothing agree
    np.testing.assert_allclose(alpha[last], gamma[last], rtol=1e-12, atol=1e-15)


def test_filter_kernel_survives_emissions_that_underflow_the_scaling() -> None:
    """Reachable states explaining x_t 1e3 nats worse than an unreachable one: the exact
    log-space shift gives the filtered probabilities (the naive product underflows to 0)."""
    startprob = np.array([0.5, 0.5, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    logb = np.array([[0.0, -1.0, 0.0], [-1e3, -1e3 - 1.0, 0.0], [-1.0, 0.0, 0.0]])
    offsets = np.array([0, 3])
    _, alpha = run_filter(logb, offsets, startprob, transmat)
    shifted = logb + 1e3 * np.array([[0.0], [1.0], [0.0]])  # the same filter, no underflow
    shifted[:, 2] = -np.inf
    np.testing.assert_allclose(alpha, reference_filter(shifted, offsets, startprob, transmat),
                               rtol=1e-12)
    _, gamma = run_forward_backward(logb, offsets, startprob, transmat)
    np.testing.assert_allclose(alpha[-1], gamma[-1], rtol=1e-12)


def sequences(seed: int, lengths, K: int = 3, D: int = 2):
    """Rows of a K-state Gaussian HMM (unit variances, means apart) with ``lengths``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    transmat = np.full((K, K), 0.1 / (K - 1)) + np.eye(K) * (0.9 - 0.1 / (K - 1))
    X = np.empty((int(np.sum(lengths)), D))
    z = 0
    for t in range(X.shape[0]):
        z = rng.choice(K, p=transmat[z])
        X[t] = means[z] + rng.normal(size=D)
    return X


def fitted(X, lengths, K: int = 3) -> GaussianHMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianHMM(K, "diag", random_state=0, max_iter=15).fit(X, lengths)


def test_filter_proba_equals_reference_and_predict_proba_at_last_rows() -> None:
    lengths = np.array([40, 1, 25, 60, 7])
    X = sequences(0, lengths)
    est = fitted(X, lengths)
    Xm = X.copy()
    holes = [0, 10, 11, 40, 65, 124, 131]  # first, inner, consecutive, one-row and last rows
    Xm[holes] = np.nan
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    model, params = est._engine_model(), est._get_fitted_params()
    logb, missing = model.log_emission(params, Xm)
    assert missing[holes].all() and np.all(logb[holes] == 0.0)
    alpha = est.filter_proba(Xm, lengths)
    expected = reference_filter(logb, offsets, params.startprob, params.transmat)
    np.testing.assert_allclose(alpha, expected, rtol=1e-10, atol=1e-14)
    last = offsets[1:] - 1
    np.testing.assert_allclose(alpha[last], est.predict_proba(Xm, lengths)[last], atol=1e-12)
    # the score is the filter's log-likelihood; one sequence alone gives its own row
    scores = est.score_sequences(Xm, lengths)
    np.testing.assert_array_equal(scores, model.posteriors(params, Xm, offsets)[0])
    a, b = offsets[3], offsets[4]
    np.testing.assert_allclose(est.filter_proba(Xm[a:b]), alpha[a:b], rtol=1e-12, atol=1e-15)


def decoders(model, prepared, batch):
    return (
        model.filter(prepared, batch.X, batch.offsets),
        model.posteriors(prepared, batch.X, batch.offsets),
        model.viterbi(prepared, batch.X, batch.offsets),
        model.map_path(prepared, batch.X, batch.offsets),
    )


def joined(parts):
    """The parts' arrays concatenated over batches, output by output."""
    return [
        np.concatenate([p[i][j] for p in parts]) for i in range(len(parts[0])) for j in range(2)
    ]


def test_threaded_inference_equals_one_thread_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 30, size=60)
    X = sequences(1, lengths)
    X[rng.choice(X.shape[0], size=20, replace=False)] = np.nan
    est = fitted(X, lengths)
    model, params = est._engine_model(), est._get_fitted_params()
    data = SequenceData.of(X, lengths)
    serial = map_sequence_batches(model, params, data, decoders, EMConfig(n_jobs=1, max_rows=50))
    threaded = map_sequence_batches(
        model, params, data, decoders, EMConfig(n_jobs=2, max_rows=50)
    )
    assert len(serial) == len(threaded) >= 4  # enough batches for two threads
    for one, two in zip(joined(serial), joined(threaded), strict=True):
        np.testing.assert_array_equal(one, two)
    # batches of any size give the same results (whole sequences per batch)
    whole = map_sequence_batches(model, params, data, decoders, EMConfig(n_jobs=1))
    for one, two in zip(joined(serial), joined(whole), strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-12)
    # the estimator's methods are these, in order
    offsets = data.offsets
    filt, post, vit, mp = (joined(serial)[i] for i in (1, 3, 5, 7))
    np.testing.assert_allclose(est.filter_proba(X, lengths), filt, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(est.predict_proba(X, lengths), post, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(est.predict(X, lengths), vit)
    logprob, path = est.decode(X, lengths, algorithm="map")
    np.testing.assert_array_equal(path, mp)
    # the MAP path's log-probability, term by term
    with np.errstate(divide="ignore"):
        log_start, log_trans = np.log(params.startprob), np.log(params.transmat)
    logb, _ = model.log_emission(params, X)
    inner = np.setdiff1d(np.arange(X.shape[0]), offsets[:-1])
    direct = (logb[np.arange(X.shape[0]), mp].sum() + log_start[mp[offsets[:-1]]].sum()
              + log_trans[mp[inner - 1], mp[inner]].sum())
    assert logprob == pytest.approx(direct, rel=1e-12)


def test_inference_prepares_the_emissions_once(monkeypatch) -> None:
    lengths = np.array([30] * 12)
    X = sequences(2, lengths)
    est = fitted(X, lengths)
    model, params = est._engine_model(), est._get_fitted_params()
    data = SequenceData.of(X, lengths)
    calls = []
    original = Gaussian.prepare

    def counting(self, p):
        if isinstance(p, GaussianParams):
            calls.append(1)
        return original(self, p)

    monkeypatch.setattr(Gaussian, "prepare", counting)
    map_sequence_batches(model, params, data, decoders, EMConfig(n_jobs=2, max_rows=40))
    assert len(calls) == 1  # 12 batches, 4 decoders each, one prepare
    for method in ("filter_proba", "predict_proba", "score_sequences", "predict"):
        calls.clear()
        getattr(est, method)(X, lengths)
        assert len(calls) == 1, method
    calls.clear()
    est.decode(X, lengths, algorithm="map")
    assert len(calls) == 1


def test_one_memory_budget_sizes_batches_and_the_family_passes() -> None:
    lengths = np.array([500])
    X = sequences(3, lengths)
    est = fitted(X, lengths)
    params = est._get_fitted_params()
    model = est._engine_model()
    K, D = model.n_states, model.n_features
    assert model.row_bytes(params) == 8 * (2 * K + 1 + D) + D + 1 + model.emission.row_bytes(K, D)
    budget = 100 * model.row_bytes(params)
    assert chunk_rows(model, params, EMConfig(memory_budget=budget)) == 100
    small = HMMModel(model.emission, K, n_features=D, memory_budget=budget)
    assert small._chunk() == 100  # the family's passes over a long sequence: batch-sized
    data = SequenceData.of(X, lengths)  # one sequence: one batch, family code in 5 passes
    whole = expected_stats(model, params, data, 10**9)
    parts = expected_stats(small, params, data, 10**9)
    assert parts.allclose(whole, rtol=1e-12)
    offsets = data.offsets
    np.testing.assert_allclose(small.filter(params, X, offsets)[1],
                               model.filter(params, X, offsets)[1], rtol=1e-12, atol=1e-15)


def test_posteriors_stay_distributions_around_an_impossible_row() -> None:
    """A row no state can emit makes the sequence −inf but leaves every posterior row a
    distribution (b̃ of that row is 1, so the rows before it are smoothed as usual)."""
    from emkit.models._hmm_kernels import forward_backward

    rng = np.random.default_rng(5)
    K, n = 3, 12
    logb = np.log(rng.uniform(0.1, 1.0, size=(n, K)))
    logb[6] = -np.inf  # impossible
    trans = np.full((K, K), 0.1) + 0.7 * np.eye(K)
    gamma, loglik = np.empty((n, K)), np.empty(1)
    xi, start, occ = np.zeros((K, K)), np.zeros(K), np.zeros(K)
    forward_backward(logb, np.array([0, n]), np.full(K, 1 / K), trans, np.ones(1), gamma,
                     loglik, xi, start, occ, False)
    assert loglik[0] == -np.inf
    assert np.all(np.isfinite(gamma)) and np.allclose(gamma.sum(axis=1), 1.0)
