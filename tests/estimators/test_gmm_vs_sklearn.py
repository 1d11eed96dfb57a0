"""emkit's GaussianMixture against scikit-learn's, iteration by iteration, from the same start.

scikit-learn's ``fit`` runs E-step, M-step, ... and, with ``warm_start=True`` and ``max_iter=1``,
each call to ``fit`` takes exactly one more M-step from where the last one stopped; ``score(X)``
after the i-th call is the mean log-likelihood of the parameters after i M-steps.  emkit's
``history_[i]`` is the mean log-likelihood *of the parameters after i M-steps* (``history_[0]``
is the start's), so ``history_[1:]`` of one emkit fit with ``tol=0`` must equal scikit-learn's
sequence of scores (checked below, together with ``history_[0]`` against a direct evaluation).
Both add ``reg_covar`` to the covariance diagonal and ``10·eps`` to the component weights.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from contract import mixture_sample
from emkit import GaussianMixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_ITER = 20
K = 3


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    # overlapping clusters: the parameters keep moving for all 20 iterations
    return mixture_sample(seed=3, n_components=K, n_samples=400, n_features=3, separation=1.5)


def start(X: np.ndarray, covariance_type: str) -> dict[str, np.ndarray]:
    """A deliberately poor start: unequal weights, three data rows as means, wrong scales."""
    rng = np.random.default_rng(0)
    D = X.shape[1]
    cov = np.cov(X.T)
    precision = np.linalg.inv(cov)
    scales = np.array([0.5, 1.0, 3.0])
    if covariance_type == "full":
        A = rng.normal(size=(K, D, D)) * 0.2
        precisions = np.stack([s * precision + a @ a.T for s, a in zip(scales, A, strict=True)])
    elif covariance_type == "tied":
        precisions = 2.0 * precision
    elif covariance_type == "diag":
        precisions = scales[:, None] / np.diag(cov)[None, :]
    else:
        precisions = scales / np.diag(cov).mean()
    return {
        "weights_init": np.array([0.2, 0.3, 0.5]),
        "means_init": X[rng.choice(X.shape[0], K, replace=False)],
        "precisions_init": precisions,
    }


def sklearn_scores(X: np.ndarray, covariance_type: str) -> tuple[list[float], object]:
    model = SklearnGaussianMixture(
        K,
        covariance_type=covariance_type,
        max_iter=1,
        warm_start=True,
        tol=0.0,
        reg_covar=1e-6,
        **start(X, covariance_type),
    )
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(N_ITER):
            model.fit(X)
            scores.append(model.score(X))
    return scores, model


def emkit_fit(X: np.ndarray, covariance_type: str, **kwargs) -> GaussianMixture:
    params = {"max_iter": N_ITER, "tol": 0.0, "reg_covar": 1e-6, **kwargs}
    model = GaussianMixture(
        K, covariance_type=covariance_type, **start(X, covariance_type), **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def start_loglik(X: np.ndarray, covariance_type: str) -> float:
    """Mean log-likelihood of the start, evaluated directly with scipy."""
    s = start(X, covariance_type)
    D = X.shape[1]
    prec = s["precisions_init"]
    if covariance_type == "full":
        covs = np.linalg.inv(prec)
    elif covariance_type == "tied":
        covs = np.repeat(np.linalg.inv(prec)[None], K, axis=0)
    elif covariance_type == "diag":
        covs = np.stack([np.diag(1.0 / p) for p in prec])
    else:
        covs = np.stack([np.eye(D) / p for p in prec])
    logp = np.column_stack(
        [
            np.log(s["weights_init"][k])
            + multivariate_normal(s["means_init"][k], covs[k]).logpdf(X)
            for k in range(K)
        ]
    )
    return float(logsumexp(logp, axis=1).mean())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_loglik_after_every_iteration(X: np.ndarray, covariance_type: str) -> None:
    reference, _ = sklearn_scores(X, covariance_type)
    ours = emkit_fit(X, covariance_type)
    assert ours.n_iter_ == N_ITER and not ours.converged_
    assert ours.history_.shape == (N_ITER + 1,)
    np.testing.assert_allclose(ours.history_[1:], reference, rtol=1e-8, atol=0)
    assert ours.history_[0] == pytest.approx(start_loglik(X, covariance_type), rel=1e-10)
    assert ours.lower_bound_ == pytest.approx(reference[-1], rel=1e-8)
    # the run made progress all along: a strict test, not a comparison of fixed points
    assert reference[-1] - reference[0] > 1e-3
    assert np.all(np.diff(reference) > 0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_loglik_with_warm_start_one_iteration_at_a_time(
    X: np.ndarray, covariance_type: str
) -> None:
    reference, _ = sklearn_scores(X, covariance_type)
    model = GaussianMixture(
        K,
        covariance_type=covariance_type,
        max_iter=1,
        warm_start=True,
        tol=0.0,
        reg_covar=1e-6,
        **start(X, covariance_type),
    )
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(N_ITER):
            model.fit(X)
            scores.append(model.score(X))
    np.testing.assert_allclose(scores, reference, rtol=1e-8, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_parameters_after_twenty_iterations(X: np.ndarray, covariance_type: str) -> None:
    _, reference = sklearn_scores(X, covariance_type)
    ours = emkit_fit(X, covariance_type)
    np.testing.assert_allclose(ours.weights_, reference.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.precisions_, reference.precisions_, rtol=1e-7, atol=1e-10)
    # the Cholesky factors may differ (emkit: upper triangular), the precisions they give may not
    L = ours.precisions_cholesky_
    if covariance_type == "full":
        product = L @ L.transpose(0, 2, 1)
    elif covariance_type == "tied":
        product = L @ L.T
    else:
        product = L**2
    np.testing.assert_allclose(product, reference.precisions_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), reference.score_samples(X), rtol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))
    assert ours.bic(X) == pytest.approx(reference.bic(X), rel=1e-8)
    assert ours.aic(X) == pytest.approx(reference.aic(X), rel=1e-8)
    assert ours.n_parameters() == reference._n_parameters()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_fixed_point_at_convergence(X: np.ndarray, covariance_type: str) -> None:
    # one data set, both run to a tight convergence from the same start: the same optimum
    s = start(X, covariance_type)
    reference = SklearnGaussianMixture(
        K, covariance_type=covariance_type, tol=1e-12, max_iter=5000, **s
    ).fit(X)
    ours = GaussianMixture(
        K, covariance_type=covariance_type, tol=1e-13, max_iter=5000, accelerate="squarem", **s
    ).fit(X)
    assert reference.converged_ and ours.converged_
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-9)
    np.testing.assert_allclose(ours.means_, reference.means_, atol=1e-4)
