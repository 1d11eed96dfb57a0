"""Figures: every covariance type draws, ellipses have the right size, files are written whole."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import Ellipse

import emkit
from emkit import GaussianMixture
from emkit.plotting import (
    marginal_covariances,
    new_figure,
    plot_history,
    plot_mixture,
    save_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"
COVARIANCES = ["full", "tied", "diag", "spherical"]


def three_blobs(n_features: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = [[0.0] * n_features, [5.0] * n_features, [0.0, 6.0] + [2.0] * (n_features - 2)]
    return np.vstack([np.asarray(c) + rng.normal(size=(80, n_features)) * (0.5 + k * 0.3)
                      for k, c in enumerate(centres)])


@pytest.fixture(scope="module")
def fits():
    X = three_blobs(3)
    return X, {c: GaussianMixture(3, covariance_type=c, random_state=0).fit(X)
               for c in COVARIANCES}


@pytest.mark.parametrize("cov", COVARIANCES)
def test_2d_plot_every_covariance_type(fits, cov, tmp_path):
    X, models = fits
    ax = plot_mixture(models[cov], X, feature_names=["a", "b", "c"])
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2 * 3  # 1σ and 2σ per component
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "b"
    path = save_figure(ax.figure, tmp_path / f"{cov}.png")
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


@pytest.mark.parametrize("cov", COVARIANCES)
def test_marginal_covariances_match_the_full_matrices(fits, cov):
    _, models = fits
    est = models[cov]
    K, D = est.means_.shape
    full = np.linalg.inv(est.precisions_) if cov == "full" else None
    got = marginal_covariances(est, [0, 2])
    assert got.shape == (K, 2, 2)
    if cov == "full":
        expected = full[:, [0, 2]][:, :, [0, 2]]
    elif cov == "tied":
        expected = np.repeat(est.covariances_[np.ix_([0, 2], [0, 2])][None], K, axis=0)
    elif cov == "diag":
        expected = np.stack([np.diag(v[[0, 2]]) for v in est.covariances_])
    else:
        expected = est.covariances_[:, None, None] * np.eye(2)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_ellipse_axes_are_one_and_two_standard_deviations():
    X = three_blobs(2)
    est = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    ax = plot_mixture(est, X)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    sd = np.sqrt(est.covariances_)
    for k in range(3):
        for r, ell in zip((1.0, 2.0), ellipses[2 * k: 2 * k + 2], strict=True):
            assert sorted([ell.width, ell.height]) == pytest.approx(sorted(2 * r * sd[k]))
            np.testing.assert_allclose(ell.center, est.means_[k])


def test_1d_plot_histogram_and_curves(tmp_path):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(6, 0.5, 200)])[:, None]
    est = GaussianMixture(2, random_state=0).fit(x)
    ax = plot_mixture(est, x, feature_names=["value"])
    assert len(ax.patches) >= 10  # histogram bars
    assert len(ax.lines) == 3  # two weighted components + the mixture
    grid, mixture = ax.lines[-1].get_data()
    assert np.trapezoid(mixture, grid) == pytest.approx(1.0, abs=1e-3)  # a density
    components = sum(line.get_ydata() for line in ax.lines[:2])
    np.testing.assert_allclose(components, mixture)
    data = save_figure(ax.figure, tmp_path / "one.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def test_history_plot(tmp_path):
    X = three_blobs(2)
    est = GaussianMixture(3, random_state=0).fit(X)
    fig, ax = new_figure()
    plot_history(est, ax=ax)
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(y, est.history_)
    assert x[0] == 0 and x[-1] == est.n_iter_
    assert save_figure(fig, tmp_path / "h.png").read_bytes().startswith(PNG)


def test_save_figure_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    target = tmp_path / "sub" / "fig.png"
    save_figure(fig, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["fig.png"]
    old = target.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("renderer died")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, target)
    assert target.read_bytes() == old  # the previous file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["fig.png"]


def test_dataframe_input_keeps_its_column_names(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(three_blobs(2), columns=["height", "weight"])
    est = GaussianMixture(3, random_state=0).fit(frame)
    ax = plot_mixture(est, frame)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")
    assert save_figure(ax.figure, tmp_path / "df.png").read_bytes().startswith(PNG)


# --- one-dimensional fits of any mixture -------------------------------------------------------
def needs_family(name: str) -> pytest.MarkDecorator:
    """Families built in parallel with this suite: their tests run once they are registered."""
    from emkit.families import FAMILIES

    return pytest.mark.skipif(name not in FAMILIES, reason=f"needs the {name} family")


def test_gmm_histogram_uses_sample_weight():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    w = np.array([1.0, 1.0, 1.0, 5.0])
    est = GaussianMixture(1).fit(x, sample_weight=w)
    ax = plot_mixture(est, x, sample_weight=w)
    heights = np.array([bar.get_height() for bar in ax.patches])
    widths = np.array([bar.get_width() for bar in ax.patches])
    assert np.sum(heights * widths) == pytest.approx(1.0)  # still a density
    assert heights[-1] == heights.max()  # the heavy row's bin is the tallest


def test_poisson_counts_are_a_bar_chart_of_frequencies(tmp_path):
    from emkit import MixtureModel
    from emkit.datasets import load_hasselblad

    ds = load_hasselblad()
    est = MixtureModel("poisson", 2, accelerate="squarem", tol=0.0, max_iter=500,
                       random_state=0).fit(ds.data, sample_weight=ds.sample_weight)
    ax = plot_mixture(est, ds.data, feature_names=ds.feature_names,
                      sample_weight=ds.sample_weight)
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, ds.sample_weight / ds.sample_weight.sum())
    assert len(ax.lines) == 3  # two weighted components + the mixture
    support, mixture = ax.lines[-1].get_data()
    np.testing.assert_array_equal(support, np.arange(10))
    np.testing.assert_allclose(sum(line.get_ydata() for line in ax.lines[:2]), mixture)
    expected = np.exp(est.score_samples(np.arange(10.0)[:, None]))
    np.testing.assert_allclose(mixture, expected, rtol=1e-10)
    assert ax.get_ylabel() == "probability" and ax.get_xlabel() == "deaths"
    assert "Poisson mixture" in ax.get_title()
    assert save_figure(ax.figure, tmp_path / "counts.png").read_bytes().startswith(PNG)


@needs_family("categorical")
def test_categorical_column_is_a_bar_chart_with_category_labels():
    from emkit import MixtureModel
    from emkit.datasets import load_survey

    smoke = load_survey().data[:, [5]]
    est = MixtureModel("categorical", 2, random_state=0).fit(smoke)
    ax = plot_mixture(est, smoke, feature_names=["Smoke"])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Heavy", "Never", "Occas", "Regul"]
    values, counts = np.unique(smoke[:, 0].astype(str), return_counts=True)
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], counts / counts.sum())
    _, mixture = ax.lines[-1].get_data()
    assert mixture.sum() == pytest.approx(1.0)  # every category drawn: a full distribution


@needs_family("exponential")
def test_continuous_family_draws_a_density():
    from emkit import MixtureModel

    rng = np.random.default_rng(0)
    x = np.r_[rng.exponential(1.0, 400), rng.exponential(8.0, 200)][:, None]
    est = MixtureModel("exponential", 2, random_state=0, max_iter=300).fit(x)
    ax = plot_mixture(est, x)
    grid, mixture = ax.lines[-1].get_data()
    assert grid.min() >= 0.0  # no density drawn below a positive family's support
    assert 0.9 < np.trapezoid(mixture, grid) <= 1.0 + 1e-6
    assert len(ax.patches) >= 10 and ax.get_ylabel() == "density"


def test_two_count_columns_scatter_without_ellipses():
    from emkit import MixtureModel

    rng = np.random.default_rng(1)
    X = np.r_[rng.poisson([2, 3], (100, 2)), rng.poisson([12, 9], (100, 2))].astype(float)
    est = MixtureModel("poisson", 2, random_state=0).fit(X)
    ax = plot_mixture(est, X, feature_names=["a", "b"])
    assert not [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ax.collections) == 2 and "Poisson mixture" in ax.get_title()


@needs_family("categorical")
def test_several_categorical_columns_are_refused():
    from emkit import MixtureModel
    from emkit.datasets import load_survey

    data = load_survey().data
    est = MixtureModel("categorical", 2, random_state=0).fit(data)
    with pytest.raises(ValueError, match="one categorical column"):
        plot_mixture(est, data)


def test_bars_for_the_families_that_declare_a_mass_function() -> None:
    """The family says whether it is discrete; whole-number data do not make a normal fit one."""
    from emkit.families import make_family
    from emkit.plotting import _is_discrete

    whole = np.random.default_rng(0).poisson(20.0, size=(200, 1)).astype(float)
    assert _is_discrete(emkit.MixtureModel("poisson", 2, random_state=0).fit(whole))
    assert not _is_discrete(emkit.MixtureModel("normal", 2, random_state=0).fit(whole))
    assert not _is_discrete(emkit.GaussianMixture(2, random_state=0).fit(whole))
    declared = {name: make_family(name).discrete for name in
                ("poisson", "bernoulli", "multinomial", "categorical", "normal", "gamma")}
    assert declared == {"poisson": True, "bernoulli": True, "multinomial": True,
                        "categorical": True, "normal": False, "gamma": False}
