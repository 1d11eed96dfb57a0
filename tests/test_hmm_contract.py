"""Hidden Markov models through the contract suite (DESIGN.md): Gaussian (four structures) and
Poisson emissions.

The HMM's units are sequences: ``split`` partitions the sequences, and ``reweight`` turns the
suite's per-row weights into per-sequence weights (the mean of the rows' weights over each
sequence), so the statistics' ``weight`` ``Σ_s w_s T_s`` is still the sum of the row weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import reject
from hypothesis import strategies as st

from contract import ContractCase, EMContract, Problem
from emkit import GaussianHMM, PoissonHMM
from emkit.engine.data import SequenceData
from emkit.families.covariance import CovarianceError
from emkit.families.gaussian import Gaussian
from emkit.families.poisson import Poisson
from emkit.models.hmm import HMMModel, HMMParams


def hmm_sequences(
    seed: int,
    n_states: int = 3,
    lengths: tuple[int, ...] = (30, 45, 12, 60, 33, 27, 8, 25),
    n_features: int = 2,
    separation: float = 3.0,
    stickiness: float = 0.8,
    poisson: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of a random sticky HMM with Gaussian (or Poisson) emissions."""
    rng = np.random.default_rng(seed)
    K, D = n_states, n_features
    trans = rng.dirichlet(np.ones(K), size=K) * (1 - stickiness) + np.eye(K) * stickiness
    states = []
    for T in lengths:
        z = [int(rng.integers(K))]
        for _ in range(T - 1):
            z.append(int(rng.choice(K, p=trans[z[-1]])))
        states.extend(z)
    states = np.array(states)
    if poisson:
        rates = rng.uniform(0.5, 4.0 + 3.0 * separation, size=(K, D))
        X = rng.poisson(rates[states]).astype(np.float64)
    else:
        means = rng.normal(size=(K, D)) * separation + 5.0
        X = means[states] + rng.standard_normal((states.size, D)) * rng.uniform(0.5, 1.5, D)
    return X, np.asarray(lengths)


def _family(kind: str, reg_covar: float = 1e-6):
    return Poisson() if kind == "poisson" else Gaussian(kind, reg_covar=reg_covar)


def hmm_problem(kind: str, seed: int, *, n_states: int = 3, **sequence_options) -> Problem:
    X, lengths = hmm_sequences(seed, n_states, poisson=kind == "poisson", **sequence_options)
    data = SequenceData.of(X, lengths)
    model = HMMModel(_family(kind).configure(X), n_states)
    params = model.init(data, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)  # a non-uniform chain with a structural zero
    trans = rng.dirichlet(np.ones(n_states), size=n_states)
    if n_states > 1:
        trans[0, -1] = 0.0
        trans /= trans.sum(axis=1, keepdims=True)
    params = HMMParams(rng.dirichlet(np.ones(n_states)), trans, params.emission)
    return Problem(model, data, params)


def hmm_problems(kind: str) -> st.SearchStrategy:
    """Random HMMs: 1-4 true states fitted with 1-4 states, 1-3 features, 1-6 sequences of 1-40
    rows, any overlap, any cheap initialisation; no regularisation (exact EM)."""

    @st.composite
    def build(draw: st.DrawFn) -> Problem:
        true_states = draw(st.integers(1, 4), label="true_states")
        n_states = draw(st.integers(1, 4), label="n_states")
        lengths = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=6), label="lengths"))
        if sum(lengths) < max(n_states, 2) * 4:
            reject()
        seed = draw(st.integers(0, 2**32 - 1), label="seed")
        X, lengths = hmm_sequences(
            seed,
            true_states,
            lengths,
            draw(st.integers(1, 3), label="n_features"),
            draw(st.floats(0.0, 6.0), label="separation"),
            draw(st.floats(0.0, 0.95), label="stickiness"),
            poisson=kind == "poisson",
        )
        init = draw(st.sampled_from(["k-means++", "random", "random_from_data"]), label="init")
        model = HMMModel(_family(kind, reg_covar=0.0).configure(X), n_states, init_method=init)
        data = SequenceData.of(X, lengths)
        try:
            return Problem(model, data, model.init(data, np.random.default_rng(seed)))
        except CovarianceError:  # a start state owning fewer than D + 1 rows
            reject()

    return build()


def degenerate_hmm(model: HMMModel, params: HMMParams) -> bool:
    """A Gaussian state whose covariance is (numerically) singular: the likelihood is unbounded
    there (λ_min(Σ) = 1/σ_max(L)² below 1e-6 for data of unit-order spread)."""
    if isinstance(model.emission, Poisson):
        return False
    L = np.asarray(params.emission.precisions_cholesky)
    if L.ndim == 3:
        largest = np.linalg.norm(L, ord=2, axis=(1, 2))
    elif L.ndim == 2 and L.shape[0] == L.shape[1] and model.emission._shared(L.shape[1]):
        largest = np.linalg.norm(L, ord=2)
    else:
        largest = L
    return bool(np.max(largest) > 1e3)


def split_sequences(
    data: SequenceData, rng: np.random.Generator
) -> tuple[SequenceData, SequenceData]:
    """A random partition of the sequences (not contiguous: their order must not matter)."""
    order = rng.permutation(data.n_sequences)
    cut = int(rng.integers(1, data.n_sequences))
    return data.subset(np.sort(order[:cut])), data.subset(np.sort(order[cut:]))


def reweight(data: SequenceData, row_weights: np.ndarray) -> SequenceData:
    """Per-sequence weights: the mean of the suite's row weights over each sequence."""
    sums = np.add.reduceat(np.asarray(row_weights, dtype=np.float64), data.offsets[:-1])
    return SequenceData(data.X, data.lengths, sums / data.lengths)


def overlapping_problem() -> Problem:
    """Two heavily overlapping states (1000 rows): plain EM needs hundreds of iterations."""
    rng = np.random.default_rng(0)
    trans = np.array([[0.8, 0.2], [0.2, 0.8]])
    z = [0]
    for _ in range(999):
        z.append(int(rng.choice(2, p=trans[z[-1]])))
    X = np.array([[0.0, 0.0], [1.0, 0.5]])[z] + rng.standard_normal((1000, 2))
    data = SequenceData.of(X, [250] * 4)
    model = HMMModel(Gaussian("full").configure(X), 2)
    return Problem(model, data, model.init(data, np.random.default_rng(1)))


def hmm_fitted_params(estimator) -> dict[str, np.ndarray]:
    out = {"startprob_": estimator.startprob_, "transmat_": estimator.transmat_}
    for name in ("means_", "covariances_", "rates_"):
        if hasattr(estimator, name):
            out[name] = getattr(estimator, name)
    return out


def hmm_case(kind: str) -> ContractCase:
    def estimator(**overrides):
        base = {"n_states": 3, "random_state": 0}
        if kind == "poisson":
            return PoissonHMM(**{**base, **overrides})
        return GaussianHMM(**{**base, "covariance_type": kind, **overrides})

    def estimator_data(seed: int) -> np.ndarray:
        return hmm_sequences(seed, 3, (200,), poisson=kind == "poisson")[0]

    return ContractCase(
        id=f"hmm-{kind}",
        problem=lambda seed: hmm_problem(kind, seed),
        problems=hmm_problems(kind),
        split=split_sequences,
        reweight=reweight,
        degenerate=degenerate_hmm,
        degenerate_errors=(CovarianceError,),
        acceleration_problem=overlapping_problem,
        estimator=estimator,
        estimator_data=estimator_data,
        fitted_params=hmm_fitted_params,
        predict_methods=("predict", "predict_proba", "score_sequences"),
        # forward-backward rounding accumulates along a sequence: a little above the GMM's
        stats_rtol=1e-9,
        stats_atol=1e-8,
        monotone_slack=1e-9,
        # fit(X, lengths): scikit-learn's checks would pass their labels y as lengths
        sklearn_checks=False,
    )


CASES = [hmm_case(kind) for kind in ("full", "tied", "diag", "spherical", "poisson")]


@pytest.fixture(params=CASES, ids=lambda c: c.id, scope="module")
def case(request: pytest.FixtureRequest) -> ContractCase:
    return request.param


class TestHMMContract(EMContract):
    pass


def test_every_case_splits_whole_sequences() -> None:
    problem = hmm_problem("diag", 0)
    a, b = split_sequences(problem.data, np.random.default_rng(0))
    assert a.n_sequences + b.n_sequences == problem.data.n_sequences
    assert sorted(np.concatenate([a.lengths, b.lengths]).tolist()) == sorted(
        problem.data.lengths.tolist()
    )
