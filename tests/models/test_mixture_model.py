"""MixtureModel over every family: known mixtures recovered, bad input named, mixed data through a
Product, criteria and parameter counts, weights versus repeated rows."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import polygamma
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

import emkit
from emkit import MixtureModel
from emkit._validation import InputError
from emkit.engine import ArrayData, EMConfig, run_em
from emkit.families import (
    Bernoulli,
    Categorical,
    Exponential,
    Family,
    Gamma,
    LogNormal,
    Normal,
    Poisson,
    Product,
)
from emkit.families.bernoulli import BernoulliParams
from emkit.families.categorical import CategoricalParams
from emkit.families.exponential import ExponentialParams
from emkit.families.gamma import GammaParams
from emkit.families.normal import NormalParams
from emkit.families.poisson import PoissonParams
from emkit.models.mixture import FamilyMixture

Z = 5.0  # parameters must lie within Z standard errors of the truth


@dataclass(frozen=True)
class Known:
    """A known mixture: the sampling family, its parameters, weights, and what MixtureModel gets."""

    family: Family
    params: Any
    weights: tuple[float, ...]
    spec: Any
    n_samples: int
    min_ari: float  # the stated threshold on the adjusted Rand index with the true labels


def _normal(means: list, variances: list) -> NormalParams:
    m = np.asarray(means, dtype=float)
    return NormalParams(m, np.asarray(variances, dtype=float), np.zeros(m.shape[1]))


SURVEY = [["1_never", "2_sometimes", "3_often"], ["no", "yes"], ["a", "b", "c", "d"],
          ["low", "mid"], ["x", "y", "z"]]
SURVEY_TABLES = np.array([  # three classes of respondents, distinct answer profiles
    [0.8, 0.15, 0.05, 0.9, 0.1, 0.7, 0.1, 0.1, 0.1, 0.85, 0.15, 0.1, 0.1, 0.8],
    [0.05, 0.15, 0.8, 0.15, 0.85, 0.1, 0.1, 0.1, 0.7, 0.2, 0.8, 0.8, 0.1, 0.1],
    [0.15, 0.7, 0.15, 0.5, 0.5, 0.1, 0.7, 0.1, 0.1, 0.5, 0.5, 0.1, 0.8, 0.1],
])
BITS = np.array([[0.85] * 6 + [0.1] * 6, [0.1] * 6 + [0.85] * 6, [0.8, 0.15] * 6])

KNOWN: dict[str, Known] = {
    "poisson": Known(
        Poisson(), PoissonParams(np.array([[1.0, 2.0], [6.0, 4.0], [15.0, 12.0]])),
        (0.3, 0.4, 0.3), "poisson", 3000, 0.8,
    ),
    "bernoulli": Known(
        Bernoulli(), BernoulliParams(BITS), (0.4, 0.35, 0.25), "bernoulli", 3000, 0.9
    ),
    "categorical": Known(
        Categorical(SURVEY), CategoricalParams(SURVEY_TABLES), (0.45, 0.35, 0.2),
        "categorical", 3000, 0.75,
    ),
    "exponential": Known(
        Exponential(), ExponentialParams(np.array([[1.0, 0.5], [12.0, 8.0]])), (0.6, 0.4),
        "exponential", 3000, 0.75,
    ),
    "gamma": Known(
        Gamma(),
        GammaParams(np.array([[2.0, 3.0], [14.0, 10.0]]), np.array([[1.0, 1.5], [1.0, 0.8]])),
        (0.5, 0.5), "gamma", 3000, 0.95,
    ),
    "lognormal": Known(
        LogNormal(), _normal([[0.0, 0.0], [2.0, 1.5], [-1.5, 2.0]], [[0.2, 0.3]] * 3),
        (0.4, 0.3, 0.3), "lognormal", 3000, 0.95,
    ),
    "normal": Known(
        Normal(), _normal([[0.0, 0.0], [5.0, 1.0], [0.0, 6.0]], [[1.0, 0.5], [0.5, 1.0],
                                                               [2.0, 1.0]]),
        (0.3, 0.3, 0.4), "normal", 3000, 0.95,
    ),
    "product": Known(
        Product([("normal", [0, 1]), ("poisson", [2]), (Categorical(SURVEY[:2]), [3, 4])]),
        (
            _normal([[0.0, 0.0], [1.5, 1.5]], [[1.0, 1.0], [1.0, 1.0]]),
            PoissonParams(np.array([[2.0], [5.0]])),
            CategoricalParams(SURVEY_TABLES[:2, :5]),
        ),
        (0.5, 0.5),
        {"name": "product", "blocks": [["normal", [0, 1]], ["poisson", [2]],
                                       ["categorical", [3, 4]]]},
        2000, 0.85,
    ),
}


def sample_known(known: Known, seed: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n or known.n_samples, known.weights)
    X = np.concatenate(
        [known.family.sample(known.params, k, int(c), rng) for k, c in enumerate(counts)]
    )
    labels = np.repeat(np.arange(counts.size), counts)
    order = rng.permutation(labels.size)
    return X[order], labels[order]


def standard_errors(name: str, arrays: dict[str, np.ndarray], n: np.ndarray) -> dict:
    """Standard errors of the complete-data estimates, ``n`` rows per component."""
    if name == "product":
        out = {}
        for prefix in ("normal", "poisson", "categorical"):
            sub = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix)}
            out.update({f"{prefix}_{k}": v for k, v in standard_errors(prefix, sub, n).items()})
        return out
    n = n.reshape((-1,) + (1,) * (next(iter(arrays.values())).ndim - 1)).astype(float)
    if name == "poisson":
        return {"rates": np.sqrt(arrays["rates"] / n)}
    if name in ("bernoulli", "categorical"):
        p = arrays["probabilities"]
        return {"probabilities": np.sqrt(p * (1.0 - p) / n)}
    if name == "exponential":
        return {"rates": arrays["rates"] / np.sqrt(n)}
    if name == "gamma":  # inverse Fisher information of (α, β) per row
        a, b = arrays["shapes"], arrays["rates"]
        det = a * polygamma(1, a) - 1.0
        return {"shapes": np.sqrt(a / (n * det)), "rates": b * np.sqrt(polygamma(1, a) / (n * det))}
    keys = ("means", "variances") if name == "normal" else ("log_means", "log_variances")
    var = arrays[keys[1]]
    return {keys[0]: np.sqrt(var / n), keys[1]: var * np.sqrt(2.0 / n)}


def fit_quietly(estimator: MixtureModel, X: Any) -> MixtureModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


# --------------------------------------------------------------------------------------------------
# recovery of known mixtures
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_mixture_is_recovered(name: str) -> None:
    known = KNOWN[name]
    X, labels = sample_known(known, seed=1)
    K = len(known.weights)
    model = fit_quietly(
        MixtureModel(known.spec, n_components=K, n_init=3, max_iter=500, tol=1e-8,
                     random_state=0),
        X,
    )
    predicted = model.predict(X)
    # components matched to the true ones by the largest label overlap
    overlap = np.array([[np.sum((labels == i) & (predicted == j)) for j in range(K)]
                        for i in range(K)])
    _, match = linear_sum_assignment(-overlap)
    counts = np.bincount(labels, minlength=K)

    truth = known.family.describe(known.params)
    fitted = model.family_.describe(model.family_.take(model.components_, match))
    assert fitted.keys() == truth.keys()
    errors = standard_errors(name, truth, counts)
    for key, true in truth.items():
        bound = Z * errors[key] + 1e-12
        diff = np.abs(fitted[key] - true)
        assert np.all(diff <= bound), f"{key}: {np.max(diff / bound):.2f}× the bound"
    w_se = np.sqrt(np.asarray(known.weights) * (1 - np.asarray(known.weights)) / labels.size)
    assert np.all(np.abs(model.weights_[match] - known.weights) <= Z * w_se + 0.01)

    # label agreement: stated threshold, and as good as classifying with the true parameters
    ari = adjusted_rand_score(labels, predicted)
    oracle = MixtureModel(known.spec, n_components=K)
    oracle.__dict__.update(vars(model))
    oracle._components = known.params
    oracle.weights_ = np.asarray(known.weights)
    oracle_ari = adjusted_rand_score(labels, oracle.predict(X))
    assert ari >= known.min_ari
    assert ari >= oracle_ari - 0.02
    assert model.score(X) >= oracle.score(X) - 1e-9  # the MLE beats the truth in-sample


def test_categorical_learns_survey_categories_and_tables() -> None:
    known = KNOWN["categorical"]
    X, _ = sample_known(known, seed=2, n=1500)
    model = fit_quietly(MixtureModel("categorical", n_components=3, random_state=0), X)
    assert model.family_.categories == SURVEY  # sorted, as OrdinalEncoder sorts them
    assert model.probabilities_.shape == (3, 5, 4)
    np.testing.assert_allclose(model.probabilities_.sum(axis=2), 1.0, rtol=1e-12)
    assert model.family_config_["categories"] == SURVEY
    draws, _ = model.sample(50)
    assert draws.dtype == object and set(draws[:, 1]) <= {"no", "yes"}


# --------------------------------------------------------------------------------------------------
# bad input: named column, row and value
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "value", "message"),
    [
        ("poisson", -1.0, "Negative values in data cannot be Poisson"),
        ("exponential", -0.25, "Negative values in data cannot be exponential"),
        ("gamma", -2.0, "Negative values in data cannot be gamma"),
        ("gamma", 0.0, r"Gamma components need positive values \(x > 0\)"),
        ("lognormal", 0.0, r"Log-normal components need positive values \(x > 0\)"),
        ("lognormal", -1.5, "Negative values in data cannot be log-normal"),
        ("bernoulli", 0.5, r"Bernoulli components need binary values \(0 or 1\)"),
        ("bernoulli", 2.0, r"Bernoulli components need binary values \(0 or 1\)"),
    ],
)
def test_bad_values_name_column_row_and_value(family: str, value: float, message: str) -> None:
    pd = pytest.importorskip("pandas")
    X = np.ones((6, 2))
    X[4, 1] = value
    frame = pd.DataFrame(X, columns=["height", "visits"])
    pattern = f"{message}.*: column 'visits' holds {value!r} at row 4"
    with pytest.raises(InputError, match=pattern):
        MixtureModel(family).fit(frame)
    with pytest.raises(InputError, match=f"{message}.*: column 1 holds {value!r} at row 4"):
        MixtureModel(family).fit(X)
    # at predict time too, named after the fitted columns
    model = MixtureModel(family).fit(np.ones((6, 2)))
    with pytest.raises(InputError, match=f"column 1 holds {value!r} at row 4"):
        model.predict(X)


def test_unseen_category_at_predict_time_is_named() -> None:
    pd = pytest.importorskip("pandas")
    train = pd.DataFrame({"smoke": ["Never", "Daily", "Never", "Daily"],
                          "sport": ["yes", "no", "no", "yes"]})
    model = MixtureModel("categorical", n_components=2, random_state=0).fit(train)
    new = pd.DataFrame({"smoke": ["Never", "Daily", "Never", "Often"],
                        "sport": ["yes", "no", "no", "yes"]})
    with pytest.raises(
        InputError,
        match=r"column 'smoke' has the value 'Often' at row 3, not seen in fit "
        r"\(categories: 'Daily', 'Never'",
    ):
        model.predict(new)
    # a missing answer is marginalised: the posterior rests on the answered question alone
    proba = model.predict_proba(pd.DataFrame({"smoke": ["Never"], "sport": [None]}))[0]
    never = model.family_.categories[0].index("Never")
    joint = model.weights_ * model.probabilities_[:, 0, never]
    np.testing.assert_allclose(proba, joint / joint.sum(), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# mixed data through a Product
# --------------------------------------------------------------------------------------------------


def test_mixed_data_frame_fits_predicts_and_names_its_columns(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    known = KNOWN["product"]
    X, labels = sample_known(known, seed=3, n=1200)
    columns = ["x", "y", "visits", "smoke", "sport"]
    frame = pd.DataFrame(X, columns=columns).astype(
        {"x": float, "y": float, "visits": float}
    )
    family = Product([("normal", [0, 1]), ("poisson", [2]), ("categorical", [3, 4])])
    model = fit_quietly(MixtureModel(family, n_components=2, n_init=2, random_state=0), frame)
    assert adjusted_rand_score(labels, model.predict(frame)) >= 0.8
    assert sorted(model.family_.describe(model.components_)) == [
        "categorical_probabilities", "normal_means", "normal_variances", "poisson_rates"
    ]
    assert model.normal_means_.shape == (2, 2) and model.poisson_rates_.shape == (2, 1)
    proba = model.predict_proba(frame.iloc[:10])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    draws, _ = model.sample(20)
    assert draws.shape == (20, 5) and set(draws[:, 3]) <= set(SURVEY[0])

    bad = frame.iloc[:5].copy()
    bad.loc[bad.index[2], "visits"] = -3.0
    with pytest.raises(InputError, match="column 'visits' holds -3.0 at row 2"):
        model.predict(bad)
    unseen = frame.iloc[:5].copy()
    unseen.loc[unseen.index[1], "smoke"] = "4_always"
    with pytest.raises(InputError, match="column 'smoke' has the value '4_always' at row 1"):
        model.predict(unseen)
    bad = frame.iloc[:5].copy().astype({"x": object})
    bad.loc[bad.index[0], "x"] = "tall"
    with pytest.raises(InputError, match="column 'x' holds 'tall' at row 0"):
        model.predict(bad)

    # the model file rebuilds the family (categories included) and keeps the column names
    loaded = emkit.load(emkit.save(model, tmp_path / "mixed.emk"))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    with pytest.raises(InputError, match="column 'smoke' has the value '4_always'"):
        loaded.predict(unseen)


def test_product_blocks_must_cover_the_columns() -> None:
    X = np.ones((10, 3))
    with pytest.raises(InputError, match=r"columns \[2\] belong to no block"):
        MixtureModel(Product([("normal", [0, 1])])).fit(X)


# --------------------------------------------------------------------------------------------------
# criteria and parameter counts
# --------------------------------------------------------------------------------------------------

HAND_COUNTS = {  # K = 2 components: K − 1 weights plus the family's free parameters
    "poisson": 1 + 2 * 2,
    "bernoulli": 1 + 2 * 12,
    "categorical": 1 + 2 * (2 + 1 + 3 + 1 + 2),
    "exponential": 1 + 2 * 2,
    "gamma": 1 + 2 * 2 * 2,
    "lognormal": 1 + 2 * 2 * 2,
    "normal": 1 + 2 * 2 * 2,
    "product": 1 + 2 * 2 * 2 + 2 * 1 + 2 * (2 + 1),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_criteria_finite_and_parameters_counted_by_hand(name: str) -> None:
    known = KNOWN[name]
    X, _ = sample_known(known, seed=4, n=300)
    model = fit_quietly(MixtureModel(known.spec, n_components=2, random_state=0), X)
    n, p = X.shape[0], HAND_COUNTS[name]
    assert model.n_parameters() == p
    ll = model.score(X) * n
    assert np.isfinite(ll)
    assert model.bic(X) == pytest.approx(-2.0 * ll + p * np.log(n), rel=1e-12)
    assert model.aic(X) == pytest.approx(-2.0 * ll + 2.0 * p, rel=1e-12)
    icl = model.icl(X)
    assert np.isfinite(icl) and icl >= model.bic(X)


# --------------------------------------------------------------------------------------------------
# sample weights: from one start, weights equal repeated rows
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["poisson", "gamma", "categorical", "product"])
def test_sample_weights_equal_repeated_rows(name: str) -> None:
    known = KNOWN[name]
    X, _ = sample_known(known, seed=5, n=200)
    family = known.family.configure(X)
    Xf = family.encode(X)
    w = np.random.default_rng(6).integers(0, 4, size=Xf.shape[0])
    model = FamilyMixture(family, len(known.weights))
    start = model.init(ArrayData.of(Xf), np.random.default_rng(7))
    config = EMConfig(max_iter=15, tol=0.0)
    weighted = run_em(model, ArrayData(Xf, w.astype(float)), start, config)
    repeated = run_em(model, ArrayData.of(np.repeat(Xf, w, axis=0)), start, config)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-10)
    np.testing.assert_allclose(weighted.params.weights, repeated.params.weights, rtol=1e-9)
    for a, b in itertools.zip_longest(
        model.family.flatten(weighted.params.components),
        model.family.flatten(repeated.params.components),
    ):
        assert a == pytest.approx(b, rel=1e-8, abs=1e-10)


def test_mixture_of_multinomials_clusters_documents_of_any_length() -> None:
    """Word counts of two topics, 10–60 words per document: the tables are recovered, the
    row totals do not decide the clusters, and a missing count is refused (unknown total)."""
    rng = np.random.default_rng(3)
    topics = np.array([[0.5, 0.3, 0.1, 0.05, 0.05], [0.05, 0.1, 0.15, 0.3, 0.4]])
    labels = rng.integers(0, 2, 400)
    X = np.array([rng.multinomial(rng.integers(10, 61), topics[z]) for z in labels], float)
    est = MixtureModel("multinomial", 2, random_state=0, n_init=3).fit(X)
    order = np.argsort(est.probabilities_[:, 0])[::-1]
    np.testing.assert_allclose(est.probabilities_[order], topics, atol=0.03)
    agreement = np.mean(est.predict(X) == order[labels])
    assert agreement > 0.95
    assert est.family_.n_trials is None  # totals differ: sampling needs n_trials
    with pytest.raises(ValueError, match="sampling needs n_trials"):
        est.sample(5)
    X[4, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        MixtureModel("multinomial", 2).fit(X)
