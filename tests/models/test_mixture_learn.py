"""Held parameters for mixtures (``MixtureLearn``): what is held stays, the rest is the
conditional maximiser, and the fit is EM (monotone, a fixed point)."""

from __future__ import annotations

import numpy as np
import pytest

import emkit
from emkit import MixtureLearn
from emkit._validation import InputError


def two_blobs(n: int = 600, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n // 2, 3)) @ np.diag([1.0, 0.5, 2.0])
    b = rng.normal(size=(n // 2, 3)) @ np.array([[3, 1, 0], [0, 0.2, 0], [0, 1, 1.0]])
    return np.vstack([a, b])  # two zero-mean components of different shape


def test_zero_mean_components_hold_their_means() -> None:
    X = two_blobs()
    gm = emkit.GaussianMixture(
        2,
        means_init=np.zeros((2, 3)),
        learn=MixtureLearn(components=("covariances",)),
        tol=1e-10,
        max_iter=500,
        random_state=0,
    ).fit(X)
    assert np.all(gm.means_ == 0.0)
    assert np.all(np.diff(gm.history_) >= -1e-12)  # EM: monotone
    # the fixed point: Σ_k = Σ_n r_nk x xᵀ / n_k + reg·I about the held zero means
    R = gm.predict_proba(X)
    for k in range(2):
        cov = (R[:, k, None] * X).T @ X / R[:, k].sum() + gm.reg_covar * np.eye(3)
        np.testing.assert_allclose(gm.covariances_[k], cov, rtol=1e-5)
    np.testing.assert_allclose(gm.weights_, R.mean(axis=0), rtol=1e-6)
    free = emkit.GaussianMixture(2, random_state=0).fit(X)
    assert gm.n_parameters() == free.n_parameters() - 2 * 3
    assert not np.allclose(free.means_, 0.0)  # free means do move


def test_single_component_with_held_zero_mean_is_the_second_moment() -> None:
    X = two_blobs() + 1.0
    w = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    gm = emkit.GaussianMixture(
        1, means_init=np.zeros((1, 3)), learn=MixtureLearn(components=("covariances",))
    ).fit(X, sample_weight=w)
    second = (w[:, None] * X).T @ X / w.sum() + gm.reg_covar * np.eye(3)
    np.testing.assert_allclose(gm.covariances_[0], second, rtol=1e-10)
    np.testing.assert_array_equal(gm.means_, 0.0)


@pytest.mark.parametrize("accelerate", ["none", "squarem"])
def test_held_weights_and_components(accelerate: str) -> None:
    X = two_blobs()
    start = np.array([0.3, 0.7])
    gm = emkit.GaussianMixture(
        2, weights_init=start, learn=MixtureLearn(weights=False), accelerate=accelerate,
        random_state=0, max_iter=300,
    ).fit(X)
    np.testing.assert_array_equal(gm.weights_, start)
    # components held, only the weights learned: the weights are the mean responsibilities
    fixed = emkit.GaussianMixture(
        2,
        means_init=gm.means_,
        precisions_init=gm.precisions_,
        learn=MixtureLearn(components=False),
        accelerate=accelerate,
        tol=1e-12,
        max_iter=2000,
    ).fit(X)
    np.testing.assert_array_equal(fixed.means_, gm.means_)
    np.testing.assert_allclose(fixed.precisions_cholesky_, gm.precisions_cholesky_, rtol=1e-12)
    np.testing.assert_allclose(fixed.weights_, fixed.predict_proba(X).mean(axis=0), rtol=1e-6)
    assert fixed.n_parameters() == 1


def test_family_mixture_holds_groups_and_saves_learn(tmp_path) -> None:
    X = two_blobs()
    learn = MixtureLearn(components=("covariances",))
    mm = emkit.MixtureModel(
        "gaussian", 2, components_init={"means": np.zeros((2, 3))}, learn=learn, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(mm.components_.means, 0.0)
    path = tmp_path / "m.emkit"
    emkit.save(mm, path)
    back = emkit.load(path)
    assert back.learn == learn
    np.testing.assert_array_equal(back.score_samples(X), mm.score_samples(X))


def test_learn_errors_name_the_groups() -> None:
    X = two_blobs()
    with pytest.raises(InputError, match="learn must be None or an emkit.MixtureLearn"):
        emkit.GaussianMixture(2, learn={"weights": False}).fit(X)
    with pytest.raises(ValueError, match=r"names \['nope'\].*\['means', 'covariances'\]"):
        emkit.GaussianMixture(2, learn=MixtureLearn(components=("nope",))).fit(X)
    with pytest.raises(ValueError, match="estimates its parameters as one group"):
        emkit.MixtureModel("poisson", 2, learn=MixtureLearn(components=("rates",))).fit(
            np.random.default_rng(0).poisson(3.0, size=(50, 1))
        )
    with pytest.raises(TypeError, match="MixtureLearn.weights must be True or False"):
        MixtureLearn(weights="no")
