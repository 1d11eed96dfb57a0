"""Hostile numerics: large offsets (exact sums about per-component centres), the normal
family's variance floor, and sample weights of any scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import emkit
from emkit.families.normal import Normal
from emkit.models.mixture import ComponentCollapseWarning

REG = 1e-6
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _two_clusters(offset: float, n: int = 400, d: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 1.0, (n, d)), rng.normal(offset, 1.0, (n, d))])


def _cluster_truth(X: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mean and (ddof 0) covariance of each half, computed about its own mean."""
    out = []
    for part in (X[:n], X[n:]):
        mean = part.mean(axis=0)
        out.append((mean, np.cov(part - mean, rowvar=False, ddof=0)))
    return out


def _by_first_mean(means: np.ndarray) -> np.ndarray:
    return np.argsort(means[:, 0])


# --- item 7: exact at any offset ------------------------------------------------------------------
@pytest.mark.parametrize("offset", [1e7, 1e8])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_mixture_is_exact_for_far_apart_clusters(covariance_type, offset) -> None:
    n = 400
    X = _two_clusters(offset, n)
    gm = emkit.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    order = _by_first_mean(gm.means_)
    truth = _cluster_truth(X, n)
    for k, (mean, _) in zip(order, truth, strict=True):
        np.testing.assert_allclose(gm.means_[k], mean, rtol=1e-14, atol=1e-9)
    covs = gm.covariances_
    if covariance_type == "full":
        expected = [cov + REG * np.eye(2) for _, cov in truth]
        np.testing.assert_allclose(covs[order], expected, rtol=1e-9, atol=1e-12)
    elif covariance_type == "diag":
        expected = [np.diag(cov) + REG for _, cov in truth]
        np.testing.assert_allclose(covs[order], expected, rtol=1e-9)
    elif covariance_type == "spherical":
        expected = [np.diag(cov).mean() + REG for _, cov in truth]
        np.testing.assert_allclose(covs[order], expected, rtol=1e-9)
    else:
        pooled = (truth[0][1] + truth[1][1]) / 2 + REG * np.eye(2)
        np.testing.assert_allclose(covs, pooled, rtol=1e-9, atol=1e-12)
    # scikit-learn's full covariances (computed about each mean) agree
    sk = SkGaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    sk_order = _by_first_mean(sk.means_)
    np.testing.assert_allclose(gm.means_[order], sk.means_[sk_order], rtol=1e-14, atol=1e-8)
    if covariance_type == "full":
        np.testing.assert_allclose(covs[order], sk.covariances_[sk_order], rtol=1e-6)


def test_gaussian_mixture_resolves_a_cluster_near_zero_beside_one_at_2_to_62() -> None:
    X = [[2.0**62], [2.0**62 + 1], [1.0], [2.0]]
    ours = emkit.GaussianMixture(2).fit(X)
    ref = SkGaussianMixture(2, random_state=0).fit(X)
    order, ref_order = _by_first_mean(ours.means_), _by_first_mean(ref.means_)
    np.testing.assert_array_equal(ours.means_[order].ravel(), [1.5, 2.0**62])
    np.testing.assert_allclose(ours.means_[order], ref.means_[ref_order], rtol=1e-14)
    np.testing.assert_allclose(ours.covariances_[order[0]], [[0.25 + REG]], rtol=1e-12)


@pytest.mark.parametrize("make", ["gaussian", "normal", "hmm", "gmmhmm"])
def test_families_and_hmms_are_exact_for_far_apart_clusters(make) -> None:
    n = 400
    X = _two_clusters(1e8, n)
    truth = _cluster_truth(X, n)
    if make == "gaussian":
        est = emkit.MixtureModel("gaussian", 2, random_state=0).fit(X)
        variances = np.diagonal(est.covariances_, axis1=1, axis2=2)
        reg = REG
    elif make == "normal":
        est = emkit.MixtureModel("normal", 2, random_state=0).fit(X)
        variances, reg = est.variances_, 0.0
    elif make == "hmm":
        est = emkit.GaussianHMM(2, random_state=0).fit(X)
        variances, reg = np.diagonal(est.covars_, axis1=1, axis2=2), REG
    else:
        est = emkit.GMMHMM(2, n_mix=1, covariance_type="diag", random_state=0).fit(X)
        variances, reg = est.covars_.reshape(2, -1), REG
    means = np.asarray(est.means_).reshape(2, -1)
    order = _by_first_mean(means)
    for k, (mean, cov) in zip(order, truth, strict=True):
        np.testing.assert_allclose(means[k], mean, rtol=1e-14, atol=1e-9)
        np.testing.assert_allclose(variances[k], np.diag(cov) + reg, rtol=1e-9)


@pytest.mark.parametrize("offset", [1e7, 1e8])
def test_student_t_mixture_is_exact_for_far_apart_clusters(offset) -> None:
    """The same two t clusters 1e4 apart (no shared responsibility, no rounding to speak of)
    and 1e7 or 1e8 apart give the same fit, up to the input's rounding at the offset (the
    statistics sum about 1e8 lost 2 % of the scale at 1e7 and failed at 1e8)."""
    n = 300

    def fit(offset: float):
        rng = np.random.default_rng(5)
        X = np.concatenate([rng.standard_t(4.0, (n, 2)), offset + rng.standard_t(4.0, (n, 2))])
        model = emkit.MixtureModel("student_t", 2, tol=1e-10, random_state=0).fit(X)
        order = _by_first_mean(model.means_)
        shift = np.array([[0.0], [offset]])
        return model.means_[order] - shift, model.covariances_[order], model.dof_[order]

    near, far = fit(1e4), fit(offset)
    np.testing.assert_allclose(far[0], near[0], atol=2e-8)
    np.testing.assert_allclose(far[1], near[1], rtol=1e-8)
    np.testing.assert_allclose(far[2], near[2], rtol=1e-9)


def test_missing_cells_far_away_give_the_fit_of_the_same_cluster_near_by() -> None:
    """Separated clusters fit independently: moving one by 1e8 moves its mean and keeps its
    covariance (up to the input's rounding at 1e8)."""
    rng = np.random.default_rng(3)
    near = np.concatenate([rng.normal(0.0, 1.0, (300, 3)), rng.normal(100.0, 1.0, (300, 3))])
    holes = rng.random(near.shape) < 0.1
    holes[:, 0] = False  # every row keeps a cell
    far = near.copy()
    far[300:] += 1e8 - 100.0
    fits = []
    for X in (near, far):
        X = np.where(holes, np.nan, X)
        fits.append(emkit.GaussianMixture(2, random_state=0, tol=1e-12, max_iter=500).fit(X))
    a, b = fits
    oa, ob = _by_first_mean(a.means_), _by_first_mean(b.means_)
    np.testing.assert_allclose(a.covariances_[oa], b.covariances_[ob], rtol=1e-6)
    np.testing.assert_allclose(b.means_[ob[1]] - (1e8 - 100.0), a.means_[oa[1]], atol=1e-6)


# --- item 8: the normal family's floor is absolute ------------------------------------------------
def _fine_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 0.001, 500), rng.normal(10.0, 0.001, 500)
    return np.concatenate([a, b])[:, None], a, b


@pytest.mark.parametrize("model", ["mixture", "hmm"])
def test_normal_components_keep_a_small_sd_beside_a_far_cluster(model) -> None:
    X, a, b = _fine_clusters()
    if model == "mixture":
        est = emkit.MixtureModel("normal", 2, random_state=0).fit(X)
    else:
        est = emkit.HMM("normal", 2, random_state=0).fit(X)
    order = _by_first_mean(est.means_)
    np.testing.assert_allclose(
        np.sqrt(est.variances_[order, 0]), [a.std(), b.std()], rtol=1e-9
    )


@pytest.mark.parametrize("values", [[3.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
def test_normal_floor_stops_a_component_on_equal_values_from_collapsing(values) -> None:
    rest = np.random.default_rng(6).normal(0.0, 10.0, 95)
    X = np.concatenate([values, rest])[:, None]
    family = Normal(min_variance=1e-4).configure(X)
    R = np.zeros((X.shape[0], 2))
    R[: len(values), 0], R[len(values) :, 1] = 1.0, 1.0
    params = family.m_step(family.accumulate(None, X, R), R.sum(axis=0), None)
    assert params.variances[0, 0] == 1e-4
    assert params.variances[1, 0] == pytest.approx(rest.var(), rel=1e-12)
    assert np.all(np.isfinite(family.log_prob(params, X)))
    default = Normal().configure(X)
    params = default.m_step(default.accumulate(None, X, R), R.sum(axis=0), None)
    assert params.variances[0, 0] == default.min_variance > 0.0


# --- item 9: weights of any scale -----------------------------------------------------------------
SCALES = (1e-30, 1e-16, 1.0, 1e10, 1e300)
_X9 = _two_clusters(6.0, 60, seed=9)
_SEQ = np.random.default_rng(9).normal(0.0, 1.0, (90, 1)) + np.repeat([0.0, 5.0, 0.0], 30)[:, None]


def _fitted(est) -> list[np.ndarray]:
    names = ("weights_", "means_", "covariances_", "variances_", "rates_", "transmat_")
    return [np.asarray(getattr(est, n)) for n in names if hasattr(est, n)]


def _same_fit_for_every_scale(fit, w: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComponentCollapseWarning)
        reference = _fitted(fit(w))
        for c in SCALES:
            for got, want in zip(_fitted(fit(c * w)), reference, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


_weights = st.lists(st.floats(0.2, 5.0), min_size=120, max_size=120).map(np.array)
_slow = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_slow
@given(w=_weights)
def test_gaussian_mixture_does_not_depend_on_the_scale_of_the_weights(w) -> None:
    for covariance_type in COVARIANCE_TYPES:
        gm = emkit.GaussianMixture(2, covariance_type=covariance_type, random_state=0, tol=1e-10)
        _same_fit_for_every_scale(lambda v, gm=gm: gm.fit(_X9, sample_weight=v), w)


@_slow
@given(w=_weights)
def test_mixture_families_do_not_depend_on_the_scale_of_the_weights(w) -> None:
    for family, X in (("normal", _X9), ("poisson", np.round(np.abs(_X9)))):
        mm = emkit.MixtureModel(family, 2, random_state=0, tol=1e-10)
        _same_fit_for_every_scale(lambda v, mm=mm, X=X: mm.fit(X, sample_weight=v), w)


@_slow
@given(w=st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3).map(np.array))
def test_gaussian_hmm_does_not_depend_on_the_scale_of_sequence_weights(w) -> None:
    hmm = emkit.GaussianHMM(2, random_state=0, tol=1e-10)
    _same_fit_for_every_scale(lambda v: hmm.fit(_SEQ, [30, 30, 30], sample_weight=v), w)


def test_tiny_uniform_weights_give_the_unweighted_fit() -> None:
    plain = emkit.GaussianMixture(2, random_state=0).fit(_X9)
    tiny = emkit.GaussianMixture(2, random_state=0).fit(_X9, sample_weight=np.full(120, 1e-30))
    np.testing.assert_allclose(tiny.means_, plain.means_, rtol=1e-12)
    assert tiny.score(_X9) == pytest.approx(plain.score(_X9), rel=1e-12)
    assert tiny.bic(_X9) == pytest.approx(plain.bic(_X9), rel=1e-12)


def test_weights_of_1e308_work() -> None:
    plain = emkit.GaussianMixture(2, random_state=0).fit(_X9)
    huge = emkit.GaussianMixture(2, random_state=0).fit(_X9, sample_weight=np.full(120, 1e308))
    np.testing.assert_allclose(huge.means_, plain.means_, rtol=1e-12)
    assert huge.score(_X9, sample_weight=np.full(120, 1e308)) == pytest.approx(plain.score(_X9))
    hmm = emkit.GaussianHMM(2, random_state=0).fit(_SEQ, [30, 30, 30], sample_weight=[1e308] * 3)
    ref = emkit.GaussianHMM(2, random_state=0).fit(_SEQ, [30, 30, 30])
    np.testing.assert_allclose(hmm.means_, ref.means_, rtol=1e-12)
