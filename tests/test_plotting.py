"""Figures: every covariance type draws, ellipses have the right size, files are written whole."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import Ellipse

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
