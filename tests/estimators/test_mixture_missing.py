"""MixtureModel with missing cells (NaN, or None in categorical input), marginalised.

References: with one component the MLE is known in closed form (each column's statistics over
its observed cells); with several, GaussianMixture's own missing-data E-step (a separate code
path: per-pattern responsibilities and conditional moments in ``mixture_missing_stats``) must
give the same log-likelihood after every iteration from the same start.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emkit import GaussianMixture, MixtureModel
from emkit._validation import InputError
from emkit.datasets import load_survey
from emkit.estimators.missing import EmptyRowsWarning


def _holes(X: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    X = np.array(X, dtype=np.float64)
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


@pytest.mark.filterwarnings("ignore::emkit.estimators.missing.EmptyRowsWarning")
@pytest.mark.parametrize("family", ["poisson", "bernoulli", "normal", "exponential"])
def test_one_component_mle_uses_each_columns_observed_cells(family: str) -> None:
    rng = np.random.default_rng(0)
    data = rng.poisson([1.0, 4.0, 9.0], size=(400, 3)).astype(float)
    if family == "bernoulli":
        data = (data > [1, 4, 9]).astype(float)
    if family == "exponential":
        data = data + 0.5
    X = _holes(data, 0.3, 1)
    est = MixtureModel(family, 1, tol=0.0, max_iter=200).fit(X)
    mean = np.nanmean(X, axis=0)
    fitted = {
        "poisson": lambda: est.rates_[0],
        "bernoulli": lambda: est.probabilities_[0],
        "normal": lambda: est.means_[0],
        "exponential": lambda: 1.0 / est.rates_[0],
    }[family]()
    np.testing.assert_allclose(fitted, mean, rtol=1e-6)  # the log-likelihood stalls at ~ε
    if family == "normal":
        np.testing.assert_allclose(est.variances_[0], np.nanvar(X, axis=0), rtol=1e-6)


@pytest.mark.filterwarnings("ignore::emkit.estimators.missing.EmptyRowsWarning")
def test_one_component_categorical_tables_are_observed_frequencies() -> None:
    rng = np.random.default_rng(2)
    X = rng.choice(np.array(["a", "b", "c"], dtype=object), size=(300, 2), p=[0.5, 0.3, 0.2])
    X[rng.random(X.shape) < 0.25] = None
    est = MixtureModel("categorical", 1, tol=0.0, max_iter=200).fit(X)
    for j in range(2):
        seen = [v for v in X[:, j] if v is not None]
        want = [seen.count(c) / len(seen) for c in ("a", "b", "c")]
        np.testing.assert_allclose(est.probabilities_[0, j], want, rtol=1e-6)


@pytest.mark.parametrize(
    ("family", "covariance_type"),
    [("normal", "diag"), ({"name": "gaussian", "covariance": "full", "reg_covar": 0.0}, "full"),
     ({"name": "gaussian", "covariance": "tied", "reg_covar": 0.0}, "tied")],
)
def test_same_iterations_as_gaussian_mixture_with_missing_values(family, covariance_type) -> None:
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 1.5, -0.4], [0.2, -0.4, 0.8]])
    X = np.vstack([rng.multivariate_normal(m, cov, 150) for m in ([0, 0, 0], [3, 1, -2])])
    X = _holes(X, 0.25, 4)
    weights, means = np.array([0.4, 0.6]), np.array([[0.5, 0.5, 0.0], [2.0, 0.0, -1.0]])
    variances = np.array([[1.0, 1.2, 0.9], [1.1, 1.0, 1.3]])
    settings = dict(tol=0.0, max_iter=15)
    if covariance_type == "diag":
        start = {"means": means, "variances": variances}
        gmm = GaussianMixture(2, covariance_type="diag", reg_covar=0.0, weights_init=weights,
                              means_init=means, precisions_init=1.0 / variances, **settings)
    else:
        covs = np.stack([np.diag(v) for v in variances])
        if covariance_type == "tied":
            covs = covs[0]
        gmm = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                              weights_init=weights, means_init=means,
                              precisions_init=np.linalg.inv(covs), **settings)
        pc = np.linalg.cholesky(np.linalg.inv(covs))
        start = {"means": means, "precisions_cholesky": pc}
    ours = MixtureModel(family, 2, weights_init=weights, components_init=start, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 15 iterations: not converged, on purpose
        ours.fit(X)
        gmm.fit(X)
    np.testing.assert_allclose(ours.history_, gmm.history_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), gmm.score_samples(X), rtol=1e-9, atol=1e-12)


def test_latent_classes_keep_the_students_with_an_unanswered_question() -> None:
    ds = load_survey(dropna=False)
    X = np.where(ds.data == "NA", None, ds.data)
    unanswered = np.flatnonzero([any(v is None for v in row) for row in X])
    assert unanswered.size == 4
    est = MixtureModel("categorical", 2, n_init=5, random_state=0).fit(X)
    assert np.all(np.diff(est.history_) >= -1e-12)
    proba = est.predict_proba(X[unanswered])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    complete = MixtureModel("categorical", 2, n_init=5, random_state=0).fit(load_survey().data)
    # the 4 extra students barely move the classes: same tables up to label order
    order = np.argsort(est.probabilities_[:, 0, 0])
    other = np.argsort(complete.probabilities_[:, 0, 0])
    np.testing.assert_allclose(
        est.probabilities_[order], complete.probabilities_[other], atol=0.03
    )


def test_rows_with_nothing_observed_are_left_out_and_predicted_by_the_weights() -> None:
    rng = np.random.default_rng(5)
    X = rng.poisson([[2.0, 3.0]], size=(100, 2)).astype(float)
    X[:50] += 10
    X[7] = np.nan
    with pytest.warns(EmptyRowsWarning, match="1 row"):
        est = MixtureModel("poisson", 2, random_state=0).fit(X)
    np.testing.assert_allclose(est.predict_proba(X[7:8])[0], est.weights_, rtol=1e-12)
    with pytest.raises(InputError, match="column 1 .*entirely missing"):
        Y = X.copy()
        Y[:, 1] = np.nan
        MixtureModel("poisson", 2).fit(Y)


def test_student_t_with_missing_cells_keeps_its_robustness() -> None:
    """Heavy-tailed clusters with 20 % of the cells missing: the t mixture still finds the
    centres (a Gaussian mixture's are pulled by the outliers) and EM stays monotone."""
    rng = np.random.default_rng(6)
    centres = np.array([[0.0, 0.0], [6.0, 6.0]])
    X = np.vstack([c + rng.standard_t(2.0, size=(300, 2)) for c in centres])
    holed = _holes(X, 0.2, 7)
    est = MixtureModel("student_t", 2, random_state=0, n_init=3).fit(holed)
    assert np.all(np.diff(est.history_) >= -1e-9)
    found = est.means_[np.argsort(est.means_[:, 0])]
    np.testing.assert_allclose(found, centres, atol=0.3)
    assert np.all(est.dof_ < 5.0)
