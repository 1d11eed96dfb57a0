"""Hidden Markov models: emkit against hmmlearn in one process (run by ``make bench``).

The two cases of issue 6: a 50-state diagonal Gaussian HMM on 200 sequences × 50 steps × 10
dimensions, and a 4-state (univariate) Gaussian HMM on one sequence of 1,000,000 observations.
Both libraries start from the same parameters and run the same Baum-Welch iterations; one
hmmlearn iteration is ``fit(n_iter=1)`` with ``init_params=""`` (its E-step and M-step), one
emkit iteration is the engine's E-step (chunked over sequences, threads over chunks) and M-step.
The log-likelihoods of every iteration are compared (relative difference printed) and the times
are medians over ``--repeats`` iterations after one untimed warm-up iteration.

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
from emkit.models.hmm import HMMModel, HMMParams

CASES = [
    # label, states, features, lengths
    ("50 states diag, 200 seq x 50 x 10", 50, 10, [50] * 200),
    ("4 states diag, 1 seq x 1e6 x 1", 4, 1, [1_000_000]),
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
    model = HMMModel(family, K, n_features=D)
    data = SequenceData.of(X, lengths)
    params = HMMParams(start, transmat, GaussianParams(means, 1.0 / np.sqrt(covars)))
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
        diff = np.max(np.abs(np.subtract(our_ll, ref_ll)) / np.abs(ref_ll))
        ref_s, our_s = statistics.median(ref_t[1:]), statistics.median(our_t[1:])
        print(f"{label:<36}{ref_s:>14.3f}{our_s:>12.4f}{ref_s / our_s:>7.1f}x{diff:>21.1e}",
              flush=True)


if __name__ == "__main__":
    main()
