"""Hasselblad's (1969) Poisson mixture: the maximum-likelihood fit, by plain EM and by SQUAREM.

Reference (ORACLES.md): deaths per day of women over 80 (London, 1910-1912), 0..9 deaths on
162, 267, 271, 185, 111, 61, 27, 8, 3, 1 days.  Two-component Poisson mixture MLE: weight
0.35989, rates 1.25610 and 2.66340, log-likelihood -1989.9459.  Plain EM from (0.3, 1.0, 2.5)
needs about 3,600 iterations to reach 1e-10; SQUAREM's published figure is about 70 fixed-point
evaluations (Varadhan & Roland 2008).
"""

from __future__ import annotations

import numpy as np
import pytest

from emkit import MixtureModel
from emkit.datasets import load_hasselblad

WEIGHT, RATES, LOGLIK = 0.35989, (1.25610, 2.66340), -1989.9459
START = {"weights_init": [0.3, 0.7], "components_init": {"rates": [[1.0], [2.5]]}}


@pytest.fixture(scope="module")
def counts() -> tuple[np.ndarray, np.ndarray]:
    ds = load_hasselblad()
    return ds.data, ds.sample_weight


def summary(model: MixtureModel, days: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """(weight of the low-rate component, sorted rates, total log-likelihood): the components
    may come out in either order."""
    rates = model.rates_[:, 0]
    low = int(np.argmin(rates))
    return float(model.weights_[low]), tuple(np.sort(rates)), model.lower_bound_ * days.sum()


def five_digits(model: MixtureModel, days: np.ndarray) -> bool:
    """The oracle's digits: weight and rates to 5 decimals, log-likelihood to 4."""
    weight, rates, loglik = summary(model, days)
    return (
        round(weight, 5) == WEIGHT
        and tuple(round(r, 5) for r in rates) == RATES
        and round(loglik, 4) == LOGLIK
    )


def test_data_set_is_hasselblads_counts(counts):
    X, days = counts
    assert X[:, 0].tolist() == list(range(10))
    assert days.tolist() == [162, 267, 271, 185, 111, 61, 27, 8, 3, 1]
    assert days.sum() == 1096


def test_plain_em_reaches_the_mle_to_five_digits(counts):
    # stopping="none": exactly max_iter iterations (tol=0 would stop at the float64 plateau of
    # the log-likelihood, ~2,400 iterations, before the parameters have their 5th digit)
    X, days = counts
    model = MixtureModel("poisson", 2, stopping="none", max_iter=3600, **START)
    model.fit(X, sample_weight=days)
    assert model.n_iter_ == 3600
    assert five_digits(model, days), summary(model, days)
    weight, rates, loglik = summary(model, days)
    # ~3,600 iterations get within about 1e-8 of the fixed point (|Δθ| per step ≈ 1e-10)
    assert weight == pytest.approx(0.3598854, abs=1e-7)
    assert rates == pytest.approx((1.2560951, 2.6634044), abs=1e-7)


def test_squarem_reaches_the_same_fit_in_at_least_five_times_fewer_e_steps(counts):
    X, days = counts
    squarem = MixtureModel("poisson", 2, accelerate="squarem", tol=0.0, max_iter=1000, **START)
    squarem.fit(X, sample_weight=days)
    assert squarem.converged_
    assert five_digits(squarem, days), summary(squarem, days)

    # Plain EM, 100 iterations at a time (warm start), until it has the same five digits.
    plain = MixtureModel("poisson", 2, stopping="none", max_iter=100, warm_start=True, **START)
    iterations = 0
    while not (iterations and five_digits(plain, days)):
        plain.fit(X, sample_weight=days)
        iterations += plain.n_iter_
        assert iterations <= 5000, "plain EM never reached the oracle's five digits"
    # Each plain iteration is one E-step (plus one to evaluate the start).
    assert iterations >= 5 * squarem.n_estep_, (iterations, squarem.n_estep_)
    assert squarem.n_estep_ < 200  # published: about 70 fixed-point evaluations


def test_the_start_is_used(counts):
    X, days = counts
    model = MixtureModel("poisson", 2, max_iter=0, **START).fit(X, sample_weight=days)
    np.testing.assert_allclose(model.weights_, [0.3, 0.7])
    np.testing.assert_allclose(model.rates_[:, 0], [1.0, 2.5])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weights_init": [0.5, 0.6]}, "sum to 1"),
        ({"weights_init": [1.0]}, "2 finite numbers"),
        ({"components_init": {"means": [1.0, 2.0]}}, "no field 'means'"),
        ({"components_init": {"rates": [1.0, 2.0, 3.0]}}, "must hold 2 finite numbers"),
    ],
)
def test_bad_starts_are_named(counts, options, message):
    X, days = counts
    with pytest.raises(ValueError, match=message):
        MixtureModel("poisson", 2, **options).fit(X, sample_weight=days)
