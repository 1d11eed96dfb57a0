"""Published Gaussian-mixture fits that emkit must reproduce (ORACLES.md).

Old Faithful waiting times (R ``datasets::faithful$waiting``, n = 272), two components with one
shared variance (scikit-learn "tied", mclust "E"), started from weights (0.5, 0.5), means
(55, 80) and sd 5.  Source (ORACLES.md): mixtools' ``normalmixEM(waiting, lambda = .5,
mu = c(55, 80), sigma = 5)`` with one common sigma (``arbvar = FALSE``; mixtools vignette,
Benaglia, Chauveau, Hunter & Young 2009, J. Stat. Software 32(6)):
weights 0.36085 / 0.63915, means 54.61364 / 80.09031, shared sd 5.86909, ll −1034.002.

mixtools stops when the log-likelihood changes by less than ``epsilon = 1e-8`` (absolute),
slightly before the optimum: the exact MLE of the first mean is 54.613626 (scikit-learn at
tol 1e-14 and emkit agree, checked below), so the means are compared with an absolute tolerance
of 2e-5, the published figures' own accuracy; weights and sd to their 5 published decimals,
the log-likelihood to its 3.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from emkit import GaussianMixture

WEIGHTS = (0.36085, 0.63915)
MEANS = (54.61364, 80.09031)
SHARED_SD = 5.86909
LOGLIK = -1034.002
EXACT_FIRST_MEAN = 54.613626

START = {
    "weights_init": [0.5, 0.5],
    "means_init": [[55.0], [80.0]],
    "precisions_init": [[1.0 / 25.0]],  # sd 5
}


def test_the_data_are_old_faithful(faithful_waiting: np.ndarray) -> None:
    assert faithful_waiting.shape == (272, 1)
    assert faithful_waiting.min() == 43 and faithful_waiting.max() == 96
    assert faithful_waiting.mean() == pytest.approx(70.897058823529, abs=1e-9)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"accelerate": "squarem"},
        {"stopping": "aitken"},
        {"accelerate": "squarem", "stopping": "aitken"},
    ],
    ids=["plain", "squarem", "aitken", "squarem+aitken"],
)
def test_old_faithful_tied_two_components(faithful_waiting: np.ndarray, options: dict) -> None:
    X = faithful_waiting
    model = GaussianMixture(
        2,
        covariance_type="tied",
        tol=1e-12,
        max_iter=10_000,
        reg_covar=0.0,  # the published fit is unregularised
        **START,
        **options,
    ).fit(X)
    assert model.converged_
    np.testing.assert_allclose(model.weights_, WEIGHTS, atol=5e-6)
    np.testing.assert_allclose(model.means_.ravel(), MEANS, atol=2e-5)
    assert np.sqrt(model.covariances_[0, 0]) == pytest.approx(SHARED_SD, abs=5e-6)
    total_loglik = model.score(X) * X.shape[0]
    assert total_loglik == pytest.approx(LOGLIK, abs=5e-4)
    assert model.lower_bound_ * X.shape[0] == pytest.approx(total_loglik, rel=1e-12)
    # the ordering of the components follows the start
    assert model.means_[0, 0] < model.means_[1, 0]


def test_old_faithful_exact_optimum_agrees_with_sklearn(faithful_waiting: np.ndarray) -> None:
    """At a tolerance tighter than mixtools', both libraries land on the same exact MLE."""
    X = faithful_waiting
    reference = SklearnGaussianMixture(
        2, covariance_type="tied", tol=1e-14, max_iter=10_000, reg_covar=0.0, **START
    ).fit(X)
    ours = GaussianMixture(
        2,
        covariance_type="tied",
        tol=1e-15,
        max_iter=10_000,
        reg_covar=0.0,
        accelerate="squarem",
        **START,
    ).fit(X)
    assert reference.means_[0, 0] == pytest.approx(EXACT_FIRST_MEAN, abs=2e-6)
    assert ours.means_[0, 0] == pytest.approx(EXACT_FIRST_MEAN, abs=2e-6)
    np.testing.assert_allclose(ours.means_, reference.means_, atol=2e-6)
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-12)


def test_old_faithful_squarem_needs_fewer_esteps(faithful_waiting: np.ndarray) -> None:
    common = {"covariance_type": "tied", "tol": 1e-12, "max_iter": 10_000, "reg_covar": 0.0}
    plain = GaussianMixture(2, **common, **START).fit(faithful_waiting)
    squarem = GaussianMixture(2, accelerate="squarem", **common, **START).fit(faithful_waiting)
    assert squarem.n_estep_ <= plain.n_estep_
    assert squarem.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-10)
