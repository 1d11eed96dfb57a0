"""Hidden Markov models: emkit against hmmlearn in one process (run by ``make bench``).

The two cases of issue 6: a 50-state diagonal Gaussian HMM on 200 sequences × 50 steps × 10
dimensions, and a 4-state (univariate) Gaussian HMM on one sequence of 1,000,000 observations;
and a GMM-emission HMM (emkit's ``GaussianMixtureEmission``, hmmlearn's ``GMMHMM``): 5 states ×
3 diagonal Gaussians per state on 20 sequences × 1,000 steps × 4 dimensions.
Both libraries start from the same parameters and run the same Baum-Welch iterations; one
hmmlearn iteration is ``fit(n_iter=1)`` with ``init_params=""`` (its E-step and M-step), one
emkit iteration is the engine's E-step (chunked over sequences, threads over chunks) and M-step.
The log-likelihoods of every iteration are compared (relative difference printed) and the times
are medians over ``--repeats`` iterations after one untimed warm-up iteration.

GMM-HMM: hmmlearn's ``GMMHMM`` takes the covariance statistics about the means *before* the
M-step (``Σ γ (x − μ_old)²``, tests/test_gmmhmm.py), so from the second iteration on its run
differs slightly from exact Baum-Welch; only the log-likelihood of the first E-step, from the
common start, is compared for that row.  The timed iterations are the same work either way.

    python benchmarks/bench_hmm.py
    python benchmarks/bench_hmm.py --repeats 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

from emkit.engine import EMConfig, expected_stats
from emkit.engine.data import SequenceData
from emkit.engine.loop import chunk_rows
from emkit.families.gaussian import Gaussian, GaussianParams
from emkit.families.gaussian_mixture_emission import GaussianMixtureEmission
from emkit.models.hmm import HMMModel, HMMParams

CASES = [
    # label, states, features, lengths
    ("50 states diag, 200 seq x 50 x 10", 50, 10, [50] * 200),
    ("4 states diag, 1 seq x 1e6 x 1", 4, 1, [1_000_000]),
]

GMM_CASES = [
    # label, states, Gaussians per state, features, lengths
    ("5x3 GMM diag, 20 seq x 1000 x 4 *", 5, 3, 4, [1000] * 20),
]


def make_case(K: int, D: int, lengths: list[int], seed: int = 0):
    """Sequences from a random sticky Gaussian HMM, and a shared (different) starting point."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.ones(K), size=K) * 0.2 + np.eye(K) * 0.8
    truth = HMMParams(
        np.full(K, 1.0 / K),
        trans,
        GaussianParams(rng.normal(size=(K, D)) * 2.0, rng.uniform(0.7, 1.5, size=(K, D))),
    )
    model = HMMModel(Gaussian("diag"), K)
    X, _ = model.sample(truth, np.asarray(lengths), rng)
    start = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K) * 0.5 + np.eye(K) * 0.5
    means = X[rng.choice(X.shape[0], K, replace=False)]
    covars = np.tile(X.var(axis=0), (K, 1))
    return X, np.asarray(lengths), start, transmat, means, covars


def hmmlearn_iterations(X, lengths, start, transmat, means, covars, n_iter):
    from hmmlearn import hmm

    K = start.size
    ref = hmm.GaussianHMM(
        K, "diag", init_params="", means_weight=0, covars_prior=0.0, n_iter=1, tol=-np.inf
    )
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, transmat, means, covars
    times, logliks = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_iter):
            t = time.perf_counter()
            ref.fit(X, lengths)
            times.append(time.perf_counter() - t)
            logliks.append(ref.monitor_.history[0])
    return times, logliks


def emkit_iterations(X, lengths, start, transmat, means, covars, n_iter):
    K, D = means.shape
    family = Gaussian("diag", reg_covar=0.0).configure(X)
    emission = GaussianParams(means, 1.0 / np.sqrt(covars))
    return timed_baum_welch(family, X, lengths, HMMParams(start, transmat, emission), n_iter)


def timed_baum_welch(family, X, lengths, params, n_iter):
    """Times and log-likelihoods of ``n_iter`` Baum-Welch iterations (E-step + M-step)."""
    model = HMMModel(family, params.n_states, n_features=X.shape[1])
    data = SequenceData.of(X, lengths)
    config = EMConfig()
    rows = chunk_rows(model, params, config)
    times, logliks = [], []
    for _ in range(n_iter):
        t = time.perf_counter()
        stats = expected_stats(model, params, data, rows, config.threads)
        params = model.m_step(stats, params)
        times.append(time.perf_counter() - t)
        logliks.append(stats.loglik)
    return times, logliks


def make_gmm_case(K: int, M: int, D: int, lengths: list[int], seed: int = 0):
    """Sequences from a random sticky GMM-HMM, and a shared (different) starting point."""
    rng = np.random.default_rng(seed)
    family = GaussianMixtureEmission(M, "diag", reg_covar=0.0)
    trans = rng.dirichlet(np.ones(K), size=K) * 0.2 + np.eye(K) * 0.8
    centres = rng.normal(size=(K, 1, D)) * 3.0 + rng.normal(size=(K, M, D)) * 1.5
    truth = HMMParams(
        np.full(K, 1.0 / K),
        trans,
        family.params_from_covariances(
            rng.dirichlet(np.full(M, 5.0), size=K), centres, rng.uniform(0.5, 1.2, (K, M, D))
        ),
    )
    X, _ = HMMModel(family, K).sample(truth, np.asarray(lengths), rng)
    start = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K) * 0.5 + np.eye(K) * 0.5
    weights = rng.dirichlet(np.full(M, 5.0), size=K)
    means = X[rng.choice(X.shape[0], K * M, replace=False)].reshape(K, M, D)
    covars = np.tile(X.var(axis=0), (K, M, 1))
    return X, np.asarray(lengths), start, transmat, weights, means, covars


def hmmlearn_gmm_iterations(X, lengths, start, transmat, weights, means, covars, n_iter):
    """hmmlearn's GMMHMM; its default priors for ``diag`` are flat (``covars_prior=-1.5``,
    ``covars_weight=0``, Dirichlet 1 for start, transitions and weights, ``means_weight=0``)."""
    from hmmlearn import hmm

    K, M = weights.shape
    ref = hmm.GMMHMM(
        K, M, covariance_type="diag", init_params="", params="stmcw", n_iter=1, tol=-np.inf
    )
    ref.startprob_, ref.transmat_, ref.weights_ = start, transmat, weights
    ref.means_, ref.covars_ = means, covars
    times, logliks = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_iter):
            t = time.perf_counter()
            ref.fit(X, lengths)
            times.append(time.perf_counter() - t)
            logliks.append(ref.monitor_.history[0])
    return times, logliks


def emkit_gmm_iterations(X, lengths, start, transmat, weights, means, covars, n_iter):
    M = means.shape[1]
    family = GaussianMixtureEmission(M, "diag", reg_covar=0.0).configure(X)
    emission = family.params_from_covariances(weights, means, covars)
    return timed_baum_welch(family, X, lengths, HMMParams(start, transmat, emission), n_iter)


def report(label, ref_t, ref_ll, our_t, our_ll) -> None:
    diff = np.max(np.abs(np.subtract(our_ll, ref_ll)) / np.abs(ref_ll))
    ref_s, our_s = statistics.median(ref_t[1:]), statistics.median(our_t[1:])
    print(f"{label:<36}{ref_s:>14.3f}{our_s:>12.4f}{ref_s / our_s:>7.1f}x{diff:>21.1e}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per library")
    args = parser.parse_args()
    n_iter = args.repeats + 1
    threads = EMConfig().threads
    print(
        f"Baum-Welch per-iteration time, same start; emkit on {threads} thread(s), "
        f"{os.cpu_count()} CPU(s); median of {args.repeats} iterations after one warm-up"
    )
    head = (
        f"{'case':<36}{'hmmlearn s/it':>14}{'emkit s/it':>12}{'ratio':>8}"
        f"{'max rel diff loglik':>21}"
    )
    print(head)
    print("-" * len(head))
    for label, K, D, lengths in CASES:
        case = make_case(K, D, lengths)
        ref_t, ref_ll = hmmlearn_iterations(*case, n_iter)
        our_t, our_ll = emkit_iterations(*case, n_iter)
        report(label, ref_t, ref_ll, our_t, our_ll)
    for label, K, M, D, lengths in GMM_CASES:
        case = make_gmm_case(K, M, D, lengths)
        ref_t, ref_ll = hmmlearn_gmm_iterations(*case, n_iter)
        our_t, our_ll = emkit_gmm_iterations(*case, n_iter)
        report(label, ref_t, ref_ll[:1], our_t, our_ll[:1])
    print(
        "* log-likelihood of the first E-step only (same start): hmmlearn's GMMHMM takes the\n"
        "  covariances about the means before the M-step, so later iterations differ by design"
    )


if __name__ == "__main__":
    main()
