"""The component families on their own: M-steps against scipy's fits and weighted frequencies,
log-densities against scipy.stats, flat coordinates, sampling, descriptions and configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import digamma

from emkit._validation import InputError
from emkit.families import (
    FAMILIES,
    Bernoulli,
    Categorical,
    Exponential,
    Gamma,
    LogNormal,
    Normal,
    Poisson,
    Product,
    make_family,
)
from emkit.families.bernoulli import BernoulliParams
from emkit.families.categorical import CategoricalParams, project_simplex_floor
from emkit.families.exponential import ExponentialParams
from emkit.families.gamma import GammaParams, gamma_shape
from emkit.families.multinomial import Multinomial, MultinomialParams
from emkit.families.normal import NormalParams
from emkit.families.poisson import PoissonParams

EPS = 10.0 * np.finfo(np.float64).eps


def one_component_m_step(family, X: np.ndarray, w: np.ndarray):
    """The M-step of one component with weights ``w`` (as the mixture calls it)."""
    R = w[:, None].astype(np.float64)
    return family.m_step(family.accumulate(None, X, R), R.sum(axis=0) + EPS, None)


def integer_weights(n: int, seed: int = 0) -> np.ndarray:
    """Weights 0–3: a weighted fit must equal the fit to rows repeated that many times."""
    return np.random.default_rng(seed).integers(0, 4, size=n)


# --------------------------------------------------------------------------------------------------
# M-steps: weighted maximum likelihood, checked against scipy on repeated rows
# --------------------------------------------------------------------------------------------------


def test_gamma_m_step_matches_scipy_fit_on_weighted_data() -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.gamma(2.5, 1.0 / 1.7, 400), rng.gamma(0.7, 3.0, 400)])
    w = integer_weights(400)
    params = one_component_m_step(Gamma(), X, w)
    for d in range(2):
        shape, _, scale = stats.gamma.fit(np.repeat(X[:, d], w), floc=0)
        assert params.shapes[0, d] == pytest.approx(shape, rel=1e-6)
        assert params.rates[0, d] == pytest.approx(1.0 / scale, rel=1e-6)


@pytest.mark.parametrize("s", [1e-3, 0.05, 0.5, 2.0, 10.0, 50.0])
def test_gamma_shape_solves_log_shape_minus_digamma(s: float) -> None:
    root = brentq(lambda a: np.log(a) - digamma(a) - s, 1e-9, 1e9, xtol=1e-300, rtol=1e-15)
    assert gamma_shape(np.array([s]))[0] == pytest.approx(root, rel=1e-11)


def test_gamma_shape_keeps_its_digits_for_large_shapes() -> None:
    """``log α − ψ(α) ≈ 1/(2α)`` is a difference of two ~15-sized numbers there: the series
    gives ``α = 1/(2s) + 1/6 − s/18 + O(s²)``, which the direct difference misses by ~1e-8."""
    s = np.array([1e-7, 1e-5])
    np.testing.assert_allclose(gamma_shape(s), 1.0 / (2.0 * s) + 1.0 / 6.0 - s / 18.0,
                               rtol=1e-13)


def test_gamma_shape_is_capped_where_the_data_have_no_spread() -> None:
    assert gamma_shape(np.array([0.0]), max_shape=1e8)[0] == 1e8
    params = one_component_m_step(Gamma(max_shape=1e4), np.full((5, 1), 2.0), np.ones(5))
    assert params.shapes[0, 0] == 1e4 and params.rates[0, 0] == pytest.approx(1e4 / 2.0)


def test_exponential_m_step_matches_scipy_fit_on_weighted_data() -> None:
    X = np.random.default_rng(2).exponential(2.0, size=(300, 2))
    w = integer_weights(300, 1)
    params = one_component_m_step(Exponential(), X, w)
    for d in range(2):
        _, scale = stats.expon.fit(np.repeat(X[:, d], w), floc=0)
        assert params.rates[0, d] == pytest.approx(1.0 / scale, rel=1e-12)


def test_lognormal_m_step_matches_scipy_fit_on_weighted_data() -> None:
    X = np.random.default_rng(3).lognormal(1.0, 0.6, size=(300, 2))
    w = integer_weights(300, 2)
    family = LogNormal().configure(X)
    params = one_component_m_step(family, X, w)
    for d in range(2):
        sigma, _, scale = stats.lognorm.fit(np.repeat(X[:, d], w), floc=0)
        assert params.means[0, d] == pytest.approx(np.log(scale), rel=1e-6)
        assert np.sqrt(params.variances[0, d]) == pytest.approx(sigma, rel=1e-6)


def test_normal_m_step_is_the_weighted_mean_and_variance() -> None:
    X = np.random.default_rng(4).normal([1e6, -3.0], [2.0, 0.1], size=(500, 2))
    w = np.random.default_rng(5).uniform(0.0, 2.0, 500)
    family = Normal().configure(X)  # sums about the data mean: no digits lost to 1e6
    params = one_component_m_step(family, X, w)
    mean = np.average(X, axis=0, weights=w)
    np.testing.assert_allclose(params.means[0], mean, rtol=1e-13)
    np.testing.assert_allclose(
        params.variances[0], np.average((X - mean) ** 2, axis=0, weights=w), rtol=1e-9
    )


def test_normal_variance_floor_is_absolute() -> None:
    X = np.concatenate([np.full(5, 3.0), np.random.default_rng(6).normal(0.0, 10.0, 95)])[:, None]
    family = Normal(min_variance=1e-4).configure(X)
    R = np.zeros((100, 2))
    R[:5, 0], R[5:, 1] = 1.0, 1.0  # component 0 owns five equal values: zero variance
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    assert params.variances[0, 0] == 1e-4  # the floor, whatever the spread of the other data
    assert params.variances[1, 0] == pytest.approx(X[5:].var(), rel=1e-9)
    assert np.all(np.isfinite(family.log_prob(params, X)))


def test_poisson_and_bernoulli_m_steps_are_weighted_means() -> None:
    rng = np.random.default_rng(7)
    counts = rng.poisson(4.0, size=(200, 3)).astype(float)
    bits = (rng.random((200, 3)) < [0.1, 0.5, 0.0]).astype(float)
    w = rng.uniform(0.0, 3.0, 200)
    np.testing.assert_allclose(
        one_component_m_step(Poisson(), counts, w).rates[0],
        np.average(counts, axis=0, weights=w),
        rtol=1e-13,
    )
    p = one_component_m_step(Bernoulli(), bits, w).probabilities[0]
    np.testing.assert_allclose(p[:2], np.average(bits[:, :2], axis=0, weights=w), rtol=1e-13)
    assert p[2] == 1e-10  # an all-zero column is clipped: log_prob stays finite
    assert np.all(np.isfinite(Bernoulli().log_prob(BernoulliParams(p[None]), bits)))


def test_categorical_m_step_is_the_weighted_frequencies() -> None:
    rng = np.random.default_rng(8)
    family = Categorical([["a", "b", "c"], [10, 20]])
    X = np.column_stack([rng.integers(0, 3, 300), rng.integers(0, 2, 300)]).astype(float)
    R = rng.dirichlet([1.0, 1.0], size=300) * rng.uniform(0.5, 2.0, (300, 1))
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    tables = family.describe(params)["probabilities"]
    for k in range(2):
        for j, size in enumerate([3, 2]):
            freq = np.bincount(X[:, j].astype(int), weights=R[:, k], minlength=size)
            np.testing.assert_allclose(tables[k, j, :size], freq / R[:, k].sum(), rtol=1e-12)
    assert tables[0, 1, 2] == 0.0  # padding beyond column 1's two categories


def test_categorical_floor_is_the_constrained_maximiser() -> None:
    counts = np.array([[50.0, 0.0, 1e-12, 30.0], [0.0, 0.0, 0.0, 0.0]])
    p = project_simplex_floor(counts, 1e-3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    assert p[0, 1] == p[0, 2] == 1e-3
    assert p[0, 0] / p[0, 3] == pytest.approx(50.0 / 30.0)  # the free ones stay proportional
    np.testing.assert_allclose(p[1], 0.25)  # an empty component: uniform
    # no feasible perturbation improves Σ c log p
    rng = np.random.default_rng(9)
    best = counts[0] @ np.log(p[0])
    for _ in range(200):
        q = np.maximum(p[0] + rng.normal(0.0, 1e-3, 4), 1e-3)
        q /= q.sum()
        if q.min() >= 1e-3:
            assert counts[0] @ np.log(q) <= best + 1e-12


# --------------------------------------------------------------------------------------------------
# log-densities against scipy.stats
# --------------------------------------------------------------------------------------------------


def test_log_prob_matches_scipy() -> None:
    rng = np.random.default_rng(10)
    K, n = 3, 40
    counts = rng.poisson(3.0, (n, 2)).astype(float)
    rates = rng.uniform(0.5, 5.0, (K, 2))
    expected = stats.poisson.logpmf(counts[:, None, :], rates[None]).sum(-1)
    np.testing.assert_allclose(Poisson().log_prob(PoissonParams(rates), counts), expected,
                               rtol=1e-12)

    bits = (rng.random((n, 4)) < 0.4).astype(float)
    p = rng.uniform(0.05, 0.95, (K, 4))
    expected = stats.bernoulli.logpmf(bits[:, None, :], p[None]).sum(-1)
    np.testing.assert_allclose(Bernoulli().log_prob(BernoulliParams(p), bits), expected,
                               rtol=1e-12)

    x = rng.exponential(2.0, (n, 2))
    lam = rng.uniform(0.2, 3.0, (K, 2))
    expected = stats.expon.logpdf(x[:, None, :], scale=1.0 / lam[None]).sum(-1)
    np.testing.assert_allclose(Exponential().log_prob(ExponentialParams(lam), x), expected,
                               rtol=1e-12)

    a, b = rng.uniform(0.5, 8.0, (K, 2)), rng.uniform(0.2, 3.0, (K, 2))
    expected = stats.gamma.logpdf(x[:, None, :], a[None], scale=1.0 / b[None]).sum(-1)
    np.testing.assert_allclose(Gamma().log_prob(GammaParams(a, b), x), expected, rtol=1e-10)

    mu, var = rng.normal(size=(K, 2)), rng.uniform(0.2, 2.0, (K, 2))
    normal = NormalParams(mu, var, np.zeros(2))
    y = rng.normal(size=(n, 2)) * 2.0
    expected = stats.norm.logpdf(y[:, None, :], mu[None], np.sqrt(var)[None]).sum(-1)
    np.testing.assert_allclose(Normal().configure(y).log_prob(normal, y), expected, rtol=1e-12)
    expected = stats.lognorm.logpdf(x[:, None, :], np.sqrt(var)[None], scale=np.exp(mu)[None])
    np.testing.assert_allclose(
        LogNormal().configure(x).log_prob(normal, x), expected.sum(-1), rtol=1e-12
    )


def test_categorical_and_product_log_prob() -> None:
    rng = np.random.default_rng(11)
    cat = Categorical([["a", "b", "c"], ["x", "y"]])
    P = np.concatenate([rng.dirichlet(np.ones(3), 2), rng.dirichlet(np.ones(2), 2)], axis=1)
    codes = np.array([[0, 1], [2, 0], [1, 1]], dtype=float)
    expected = np.log(P[:, codes[:, 0].astype(int)] * P[:, 3 + codes[:, 1].astype(int)]).T
    np.testing.assert_allclose(cat.log_prob(CategoricalParams(P), codes), expected, rtol=1e-13)

    product = Product([("poisson", [2]), (cat, [0, 1])])
    raw = np.array([["a", "y", 3], ["c", "x", 0], ["b", "y", 7]], dtype=object)
    product = product.configure(raw)
    Xf = product.encode(raw)
    np.testing.assert_array_equal(Xf, [[3, 0, 1], [0, 2, 0], [7, 1, 1]])  # blocks side by side
    rates = np.array([[2.0], [5.0]])
    params = (PoissonParams(rates), CategoricalParams(P))
    pois = stats.poisson.logpmf(Xf[:, [0]], rates.T)
    got = product.log_prob(params, Xf)
    np.testing.assert_allclose(got, pois + cat.log_prob(CategoricalParams(P), Xf[:, 1:]),
                               rtol=1e-13)


# --------------------------------------------------------------------------------------------------
# the same operations for every family: flat coordinates, sampling, describe/restore, config
# --------------------------------------------------------------------------------------------------

CATS = [["no", "sometimes", "yes"], [1, 2, 3, 4]]


def examples() -> dict[str, tuple]:
    """Each family (configured) with parameters of K = 3 components and encoded data."""
    rng = np.random.default_rng(12)
    K = 3
    pos = rng.gamma(2.0, 1.0, (30, 2)) + 0.1
    cat = Categorical(CATS)
    tables = np.concatenate([rng.dirichlet(np.ones(len(c)), K) for c in CATS], axis=1)
    cat_codes = np.column_stack([rng.integers(0, 3, 30), rng.integers(0, 4, 30)]).astype(float)
    normal = NormalParams(rng.normal(size=(K, 2)), rng.uniform(0.5, 2.0, (K, 2)), np.full(2, 1e-6))
    product = Product([("normal", [0, 1]), ("poisson", [4]), (cat, [2, 3])]).configure(
        np.column_stack([pos, cat_codes, np.ones(30)]).astype(object)
    )
    product_X = np.column_stack([pos, rng.poisson(2.0, 30), cat_codes])
    return {
        "poisson": (Poisson(), PoissonParams(rng.uniform(1, 5, (K, 2))), rng.poisson(2.0, (30, 2))),
        "bernoulli": (
            Bernoulli(), BernoulliParams(rng.uniform(0.1, 0.9, (K, 4))),
            (rng.random((30, 4)) < 0.5).astype(float),
        ),
        "categorical": (cat, CategoricalParams(tables), cat_codes),
        "exponential": (Exponential(), ExponentialParams(rng.uniform(0.5, 2, (K, 2))), pos),
        "gamma": (Gamma(), GammaParams(rng.uniform(1, 5, (K, 2)), rng.uniform(0.5, 2, (K, 2))),
                  pos),
        "lognormal": (LogNormal().configure(pos), normal, pos),
        "normal": (Normal().configure(pos), normal, pos),
        "product": (
            product,
            (normal, PoissonParams(rng.uniform(1, 5, (K, 1))), CategoricalParams(tables)),
            product_X.astype(float),
        ),
        "multinomial": (
            Multinomial(n_trials=10), MultinomialParams(rng.dirichlet(np.ones(4), K)),
            rng.multinomial(10, [0.4, 0.3, 0.2, 0.1], size=30).astype(float),
        ),
    }


EXAMPLES = examples()


def leaves(params) -> list[np.ndarray]:
    if isinstance(params, tuple):
        return [leaf for p in params for leaf in leaves(p)]
    return [np.asarray(v) for v in vars(params).values()]


def test_every_registered_family_has_an_example() -> None:
    # gaussian_mixture: covered by tests/estimators/test_gmmhmm.py (nested parameters)
    assert set(EXAMPLES) | {"gaussian", "student_t", "gaussian_mixture"} >= set(FAMILIES)
    assert set(EXAMPLES) <= set(FAMILIES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_flatten_unflatten_round_trip(name: str) -> None:
    family, params, X = EXAMPLES[name]
    vector = family.flatten(params)
    assert vector.ndim == 1 and np.all(np.isfinite(vector))
    back = family.unflatten(vector, params)
    for a, b in zip(leaves(back), leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(family.log_prob(back, X), family.log_prob(params, X), rtol=1e-10)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_any_vector_maps_to_feasible_parameters(name: str) -> None:
    family, params, X = EXAMPLES[name]
    size = family.flatten(params).size
    rng = np.random.default_rng(13)
    for scale in (1.0, 30.0, 1e4):
        other = family.unflatten(rng.normal(0.0, scale, size), params)
        logp = family.log_prob(other, X)
        assert logp.shape == (X.shape[0], 3)
        assert not np.isnan(logp).any() and not np.isposinf(logp).any()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_describe_restore_is_exact(name: str) -> None:
    family, params, X = EXAMPLES[name]
    arrays = family.describe(params)
    assert arrays and all(a.shape[0] == 3 for a in arrays.values())
    restored = family.restore({**arrays, "unrelated": np.zeros(3)})
    np.testing.assert_array_equal(family.log_prob(restored, X), family.log_prob(params, X))
    for key, value in family.describe(restored).items():
        np.testing.assert_array_equal(value, arrays[key])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_config_survives_json(name: str) -> None:
    family, params, X = EXAMPLES[name]
    rebuilt = make_family(json.loads(json.dumps(family.config())))
    assert type(rebuilt) is type(family)
    assert rebuilt.config() == family.config()
    np.testing.assert_array_equal(rebuilt.log_prob(params, X), family.log_prob(params, X))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sample_shapes_and_dtypes(name: str) -> None:
    family, params, X = EXAMPLES[name]
    rng = np.random.default_rng(14)
    draw = family.sample(params, 1, 25, rng)
    empty = family.sample(params, 0, 0, rng)
    assert draw.shape == (25, X.shape[1]) and empty.shape == (0, X.shape[1])
    assert draw.dtype == empty.dtype
    if name in ("categorical", "product"):  # category values, in the original column order
        assert draw.dtype == object
        cats = draw[:, :2] if name == "categorical" else draw[:, 2:4]
        assert set(cats[:, 0]) <= set(CATS[0]) and set(cats[:, 1]) <= set(CATS[1])
        encoded = family.encode(draw)
        family.check(encoded)
        assert np.all(np.isfinite(family.log_prob(params, encoded)))
    else:
        assert draw.dtype == np.float64
        family.check(draw)  # draws are valid input of their own family
        assert np.all(np.isfinite(family.log_prob(params, draw)))


def test_numeric_categories_sample_as_floats() -> None:
    family = Categorical([[1, 2, 3]])
    draw = family.sample(CategoricalParams(np.array([[0.2, 0.3, 0.5]])), 0, 500,
                         np.random.default_rng(15))
    assert draw.dtype == np.float64 and set(np.unique(draw)) == {1.0, 2.0, 3.0}
    np.testing.assert_allclose(np.bincount(draw[:, 0].astype(int))[1:] / 500, [0.2, 0.3, 0.5],
                               atol=0.07)


def test_n_parameters_by_hand() -> None:
    K = 3
    counts = {
        "poisson": K * 2,
        "bernoulli": K * 4,
        "categorical": K * ((3 - 1) + (4 - 1)),
        "exponential": K * 2,
        "gamma": 2 * K * 2,
        "lognormal": 2 * K * 2,
        "normal": 2 * K * 2,
        "product": 2 * K * 2 + K * 1 + K * 5,
    }
    for name, expected in counts.items():
        family, params, _ = EXAMPLES[name]
        assert family.n_parameters(params) == expected, name


def test_take_reorders_components() -> None:
    for name, (family, params, X) in EXAMPLES.items():
        taken = family.take(params, np.array([2, 0, 0]))
        logp, full = family.log_prob(taken, X), family.log_prob(params, X)
        np.testing.assert_array_equal(logp, full[:, [2, 0, 0]], err_msg=name)


# --------------------------------------------------------------------------------------------------
# categories: learned, encoded, named in errors
# --------------------------------------------------------------------------------------------------


def test_categorical_learns_sorted_categories_and_codes() -> None:
    X = np.array([["b", 3.0], ["a", 1.0], ["c", 3.0], ["a", 2.5]], dtype=object)
    family = Categorical().configure(X)
    assert family.categories == [["a", "b", "c"], [1.0, 2.5, 3.0]]
    np.testing.assert_array_equal(family.encode(X), [[1, 2], [0, 0], [2, 2], [0, 1]])
    assert json.loads(json.dumps(family.config()))["categories"] == family.categories
    # numpy scalars and ints match the learned values
    np.testing.assert_array_equal(
        family.encode(np.array([[np.str_("c"), np.int64(3)]], dtype=object)), [[2, 2]]
    )


def test_categorical_names_unseen_and_missing_values() -> None:
    family = Categorical().configure(np.array([["Never"], ["Daily"]], dtype=object))
    with pytest.raises(
        InputError,
        match=r"column 'smoke' has the value 'Often' at row 1, not seen in fit "
        r"\(categories: 'Daily', 'Never'",
    ):
        family.encode(np.array([["Daily"], ["Often"]], dtype=object), ["smoke"])
    with pytest.raises(InputError, match="column 0 has a missing value at row 0"):
        family.encode(np.array([[None]], dtype=object))
    with pytest.raises(InputError, match="mixes strings and numbers"):
        Categorical().configure(np.array([["a"], [1]], dtype=object))
    with pytest.raises(InputError, match="X has 2 columns"):
        family.encode(np.array([["Daily", "Daily"]], dtype=object))


def test_product_errors_name_the_original_columns() -> None:
    product = Product([("poisson", [2]), ("normal", [0, 1])])
    X = np.array([[0.5, 1.0, 3.0], [0.1, 2.0, -1.0]])
    product = product.configure(X)
    with pytest.raises(InputError, match="column 'visits' holds -1.0 at row 1"):
        product.check(product.encode(X, ["a", "b", "visits"]), ["a", "b", "visits"])
    with pytest.raises(InputError, match="column 2 holds -1.0 at row 1"):
        product.check(product.encode(X))
    mixed = np.array([[0.5, "x", 3.0]], dtype=object)
    with pytest.raises(InputError, match="column 1 holds 'x' at row 0"):
        product.encode(mixed)
    with pytest.raises(InputError, match=r"columns \[3\] belong to no block"):
        Product([("normal", [0, 1, 2])]).configure(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"columns \[1\] belong to more than one block"):
        Product([("normal", [0, 1]), ("poisson", [1])])


@pytest.mark.parametrize(
    ("family", "value", "message"),
    [
        (Poisson(), -1.0, "Negative values in data cannot be Poisson"),
        (Exponential(), -0.5, "Negative values in data cannot be exponential"),
        (Gamma(), -2.0, "Negative values in data cannot be gamma"),
        (Gamma(), 0.0, "Gamma components need positive values"),
        (LogNormal(), 0.0, "Log-normal components need positive values"),
        (LogNormal(), -3.0, "Negative values in data cannot be log-normal"),
        (Bernoulli(), 0.5, "Bernoulli components need binary values"),
    ],
)
def test_check_names_column_row_and_value(family, value: float, message: str) -> None:
    X = np.ones((4, 3))
    X[2, 1] = value
    with pytest.raises(InputError, match=f"{message}.*column 'b' holds {value!r} at row 2"):
        family.check(X, ["a", "b", "c"])


def test_product_names_repeated_families_by_block() -> None:
    rng = np.random.default_rng(16)
    X = rng.normal(size=(20, 3))
    product = Product([("normal", [0]), ("poisson", [1]), ("normal", [2])]).configure(X)
    a, b = (NormalParams(rng.normal(size=(2, 1)), np.ones((2, 1)), np.zeros(1)) for _ in "ab")
    params = (a, PoissonParams(np.ones((2, 1))), b)
    arrays = product.describe(params)
    assert sorted(arrays) == ["normal0_means", "normal0_variances", "normal2_means",
                              "normal2_variances", "poisson_rates"]
    restored = product.restore(arrays)
    np.testing.assert_array_equal(restored[2].means, b.means)
    np.testing.assert_array_equal(restored[0].means, a.means)
