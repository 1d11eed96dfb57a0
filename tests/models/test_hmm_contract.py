"""Hidden Markov models through the contract suite (DESIGN.md): every emission family the HMM
estimators take — Gaussian (four structures, ``GaussianHMM``), Poisson (``PoissonHMM``), a
Gaussian mixture per state (``GMMHMM``), multinomial counts (``MultinomialHMM``), categorical
symbols (``CategoricalHMM``) and, through ``HMM(emission=...)``, every other family of
``emkit.families.FAMILIES``.  The cases (``CASES``) join the one registry
(``contract_registry.py``), whose ``TestContract`` runs every item over them.

The HMM's units are sequences: ``split`` partitions the sequences, and ``reweight`` turns the
suite's per-row weights into per-sequence weights (the mean of the rows' weights over each
sequence), so the statistics' ``weight`` ``Σ_s w_s T_s`` is still the sum of the row weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from contract import ContractCase, Problem
from emkit import GMMHMM, HMM, CategoricalHMM, GaussianHMM, MultinomialHMM, PoissonHMM
from emkit.engine.data import SequenceData
from emkit.families import FAMILIES, Family, GaussianMixtureEmission, StudentT
from emkit.families.covariance import CovarianceError, Full
from emkit.families.gamma import GammaParams
from emkit.families.gaussian import Gaussian
from emkit.families.gaussian_mixture_emission import GaussianMixtureEmissionParams
from emkit.families.poisson import Poisson
from emkit.families.student_t import StudentTParams
from emkit.models.hmm import HMMModel, HMMParams
from test_contract_families import TRUTHS, Truth


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
    states = state_path(rng, K, lengths, stickiness)
    if poisson:
        rates = rng.uniform(0.5, 4.0 + 3.0 * separation, size=(K, D))
        X = rng.poisson(rates[states]).astype(np.float64)
    else:
        means = rng.normal(size=(K, D)) * separation + 5.0
        X = means[states] + rng.standard_normal((states.size, D)) * rng.uniform(0.5, 1.5, D)
    return X, np.asarray(lengths)


def state_path(
    rng: np.random.Generator, K: int, lengths: tuple[int, ...], stickiness: float
) -> np.ndarray:
    """The hidden states of the rows of every sequence under a random sticky chain."""
    trans = rng.dirichlet(np.ones(K), size=K) * (1 - stickiness) + np.eye(K) * stickiness
    states = []
    for T in lengths:
        z = [int(rng.integers(K))]
        for _ in range(T - 1):
            z.append(int(rng.choice(K, p=trans[z[-1]])))
        states.extend(z)
    return np.array(states)


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
        sequence_lengths=lambda seed: SOURCE_LENGTHS,
        lacks={"sklearn_checks": NO_SKLEARN_CHECKS},
    )


# fit(X, lengths): scikit-learn's checks would pass their labels y as the sequence lengths
NO_SKLEARN_CHECKS = (
    "fit(X, lengths) takes the sequence lengths where scikit-learn's checks pass labels y"
)
GAUSSIAN_KINDS = ("full", "tied", "diag", "spherical")
# the 200 rows of estimator_data as sequences that cross the row groups and part files of
# the out-of-core items (sequence ids in a column) and fit three Dask partitions
SOURCE_LENGTHS = np.array([45, 30, 8, 62, 55])


# --------------------------------------------------------------------------------------------------
# every other emission family: sequences of a random HMM of the family (Family.sample per state)
# --------------------------------------------------------------------------------------------------


def _student_t_params(rng: np.random.Generator, K: int, D: int) -> StudentTParams:
    means = rng.normal(size=(K, D)) * 4.0
    covs = np.empty((K, D, D))
    for k in range(K):
        A = rng.normal(size=(D, D)) * 0.6
        covs[k] = A @ A.T + 0.3 * np.eye(D)
    return StudentTParams(means, Full().precisions_cholesky(covs), rng.uniform(3.0, 10.0, K))


def _gmm_emission_params(rng: np.random.Generator, K: int, D: int):
    family = GaussianMixtureEmission(2, "diag")
    weights = rng.dirichlet(np.full(2, 3.0), size=K)
    means = rng.normal(size=(K, 2, D)) * 3.0
    return family.params_from_covariances(weights, means, rng.uniform(0.3, 1.5, (K, 2, D)))


@dataclass(frozen=True)
class Emission:
    """An emission family as the HMM estimators take it: how to sample it, its estimator (with
    3 states), and the family without regularisation (exact EM, for the monotonicity property)."""

    truth: Truth
    estimator: Callable[..., HMM]
    exact: Callable[[int], Family] | None = None
    fixed_width: bool = False


def _generic(name: str) -> Callable[..., HMM]:
    spec = TRUTHS[name].spec
    return lambda **kw: HMM(**{"emission": spec, "n_states": 3, "random_state": 0, **kw})


EMISSIONS: dict[str, Emission] = {
    **{
        name: Emission(TRUTHS[name], _generic(name), fixed_width=name == "product")
        for name in ("bernoulli", "exponential", "gamma", "lognormal", "normal", "product")
    },
    "categorical": Emission(
        TRUTHS["categorical"],
        lambda **kw: CategoricalHMM(**{"n_states": 3, "random_state": 0, **kw}),
    ),
    "multinomial": Emission(
        TRUTHS["multinomial"],
        lambda **kw: MultinomialHMM(**{"n_states": 3, "random_state": 0, **kw}),
    ),
    "student_t": Emission(
        Truth(lambda D: StudentT(), _student_t_params, "student_t"),
        lambda **kw: HMM(**{"emission": "student_t", "n_states": 3, "random_state": 0, **kw}),
        exact=lambda D: StudentT(reg_covar=0.0),
    ),
    "gaussian_mixture": Emission(
        Truth(lambda D: GaussianMixtureEmission(2, "diag"), _gmm_emission_params, None),
        lambda **kw: GMMHMM(
            **{"n_states": 3, "n_mix": 2, "covariance_type": "diag", "random_state": 0, **kw}
        ),
        exact=lambda D: GaussianMixtureEmission(2, "diag", reg_covar=0.0),
    ),
}
LENGTHS = (30, 45, 12, 60, 33, 27, 8, 25)


def emission_sequences(
    name: str,
    seed: int,
    n_states: int = 3,
    lengths: tuple[int, ...] = LENGTHS,
    n_features: int | None = None,
    stickiness: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw rows (as a user passes them: labels for categories) of a random sticky HMM whose
    states emit from random parameters of the family, and the sequence lengths."""
    truth = EMISSIONS[name].truth
    D = truth.n_features if n_features is None else n_features
    rng = np.random.default_rng(seed)
    family = truth.family(D)
    params = truth.params(rng, n_states, D)
    states = state_path(rng, n_states, lengths, stickiness)
    order = np.argsort(states, kind="stable")
    counts = np.bincount(states, minlength=n_states)
    blocks = [family.sample(params, k, int(c), rng) for k, c in enumerate(counts) if c]
    drawn = np.concatenate(blocks)
    X = np.empty_like(drawn)
    X[order] = drawn
    return X, np.asarray(lengths)


def _encoded(family: Family, raw: np.ndarray) -> tuple[Family, np.ndarray]:
    family = family.configure(raw)
    Xf = np.asarray(family.encode(raw), dtype=np.float64)
    family.check(Xf)
    return family, Xf


def _random_chain(params: HMMParams, n_states: int, seed: int) -> HMMParams:
    """A non-uniform start and transition matrix with a structural zero (as ``hmm_problem``)."""
    rng = np.random.default_rng(seed + 1)
    trans = rng.dirichlet(np.ones(n_states), size=n_states)
    if n_states > 1:
        trans[0, -1] = 0.0
        trans /= trans.sum(axis=1, keepdims=True)
    return HMMParams(rng.dirichlet(np.ones(n_states)), trans, params.emission)


def emission_problem(name: str, seed: int, *, n_states: int = 3) -> Problem:
    raw, lengths = emission_sequences(name, seed, n_states)
    emission = EMISSIONS[name]
    family, Xf = _encoded(emission.truth.family(emission.truth.n_features), raw)
    data = SequenceData.of(Xf, lengths)
    model = HMMModel(family, n_states, n_features=Xf.shape[1])
    return Problem(model, data, _random_chain(model.init(data, np.random.default_rng(seed)),
                                              n_states, seed))


def emission_problems(name: str) -> st.SearchStrategy:
    """Random HMMs of the family: 1-4 true states fitted with 1-4 states, 1-3 features (where the
    family allows), 1-6 sequences of 1-40 rows, any stickiness and cheap initialisation; the
    family without regularisation (exact EM)."""
    emission = EMISSIONS[name]

    @st.composite
    def build(draw: st.DrawFn) -> Problem:
        true_states = draw(st.integers(1, 4), label="true_states")
        n_states = draw(st.integers(1, 4), label="n_states")
        lengths = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=6), label="lengths"))
        if sum(lengths) < max(n_states, 2) * 4:
            reject()
        D = emission.truth.n_features if emission.fixed_width else draw(
            st.integers(1, 3), label="n_features"
        )
        seed = draw(st.integers(0, 2**32 - 1), label="seed")
        raw, lengths = emission_sequences(
            name,
            seed,
            true_states,
            lengths,
            D,
            draw(st.floats(0.0, 0.95), label="stickiness"),
        )
        family = (emission.exact or emission.truth.family)(D)
        init = draw(st.sampled_from(["k-means++", "random", "random_from_data"]), label="init")
        family, Xf = _encoded(family, raw)
        model = HMMModel(family, n_states, init_method=init, n_features=Xf.shape[1])
        data = SequenceData.of(Xf, lengths)
        try:
            return Problem(model, data, model.init(data, np.random.default_rng(seed)))
        except CovarianceError:  # a start state owning fewer than D + 1 rows
            reject()

    return build()


def emission_acceleration_problem(name: str, rows: int = 150) -> Problem:
    """Two overlapping states (4 sequences of ``rows`` rows): plain EM needs many iterations."""
    from test_contract_families import ACCELERATION

    rng = np.random.default_rng(0)
    if name in ACCELERATION:
        family, a, b = ACCELERATION[name]
    else:
        truth = EMISSIONS[name].truth
        family = truth.family(truth.n_features)
        a = truth.params(rng, 1, truth.n_features)
        v = family.flatten(a)
        b = family.unflatten(v + 0.6 * rng.standard_normal(v.size), a)
    n = 4 * rows
    states = state_path(rng, 2, (rows,) * 4, 0.8)
    raw = np.concatenate([family.sample(a, 0, n, rng), family.sample(b, 0, n, rng)])
    raw = raw[np.where(states == 0, np.arange(n), n + np.arange(n))]
    family, Xf = _encoded(family, raw)
    data = SequenceData.of(Xf, [rows] * 4)
    model = HMMModel(family, 2, n_features=Xf.shape[1])
    return Problem(model, data, model.init(data, np.random.default_rng(1)))


def degenerate_emission(model: HMMModel, params: HMMParams) -> bool:
    """A state where the likelihood is unbounded: a gamma shape at its cap (a state squeezed
    onto one value), or a Student-t / inner Gaussian scale whose smallest eigenvalue is below
    1e-6 (data of unit-order spread)."""
    p = params.emission
    for leaf in p if isinstance(p, tuple) else (p,):
        if isinstance(leaf, GammaParams) and np.max(leaf.shapes) > 1e6:
            return True
        if isinstance(leaf, StudentTParams):
            if np.max(np.linalg.norm(leaf.precisions_cholesky, ord=2, axis=(1, 2))) > 1e3:
                return True
        if isinstance(leaf, GaussianMixtureEmissionParams):  # diag factors: 1/σ
            if np.max(leaf.gaussian.precisions_cholesky) > 1e3:
                return True
    return False


def emission_fitted_params(estimator: HMM) -> dict[str, np.ndarray]:
    out = {"startprob_": estimator.startprob_, "transmat_": estimator.transmat_}
    for name in estimator.emission_.describe(estimator.emission_params_):
        out[f"{name}_"] = getattr(estimator, f"{name}_")
    return out


def emission_case(name: str) -> ContractCase:
    emission = EMISSIONS[name]
    return ContractCase(
        id=f"hmm-{name}",
        problem=lambda seed: emission_problem(name, seed),
        problems=emission_problems(name),
        split=split_sequences,
        reweight=reweight,
        degenerate=degenerate_emission,
        degenerate_errors=(CovarianceError,),
        # a Gaussian mixture per state: twice the parameters, half the rows (time)
        acceleration_problem=lambda: emission_acceleration_problem(
            name, 75 if name == "gaussian_mixture" else 150
        ),
        estimator=emission.estimator,
        estimator_data=lambda seed: emission_sequences(name, seed, 3, (200,))[0],
        fitted_params=emission_fitted_params,
        predict_methods=("predict", "predict_proba", "score_sequences"),
        stats_rtol=1e-9,
        stats_atol=1e-8,
        monotone_slack=1e-9,
        sequence_lengths=lambda seed: SOURCE_LENGTHS,
        lacks={"sklearn_checks": NO_SKLEARN_CHECKS},
    )




CASES = [hmm_case(kind) for kind in (*GAUSSIAN_KINDS, "poisson")]
CASES += [emission_case(name) for name in EMISSIONS]


def test_every_emission_family_and_hmm_estimator_has_a_case() -> None:
    """The HMM takes any family of FAMILIES as its emission: each one has a case, and so does
    every HMM estimator class."""
    emissions = {type(case.problem(0).model.emission) for case in CASES}
    assert emissions == set(FAMILIES.values())
    estimators = {type(case.estimator()) for case in CASES}
    assert estimators == {HMM, GaussianHMM, PoissonHMM, GMMHMM, MultinomialHMM, CategoricalHMM}


def test_every_case_splits_whole_sequences() -> None:
    problem = hmm_problem("diag", 0)
    a, b = split_sequences(problem.data, np.random.default_rng(0))
    assert a.n_sequences + b.n_sequences == problem.data.n_sequences
    assert sorted(np.concatenate([a.lengths, b.lengths]).tolist()) == sorted(
        problem.data.lengths.tolist()
    )
