"""The original pixel-GMM example: reproduces the article's method and the ORACLES numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emkit.apps.denoise import (
    DenoiseResult,
    pixel_gmm_denoise,
    plot_denoise,
    psnr,
    synthetic_image,
)
from emkit.plotting import save_figure


@pytest.fixture(scope="module")
def result() -> DenoiseResult:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the intended non-convergence warning is silenced inside
        return pixel_gmm_denoise()


def test_noise_is_the_articles_global_seed_draw():
    # The article's own calls, on the global generator (state restored afterwards).
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(42)  # noqa: NPY002
        reference = np.random.normal(0, 0.1, (100, 100))  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    true, noisy = synthetic_image()
    np.testing.assert_array_equal(noisy, true + reference)
    x, y = np.meshgrid(np.linspace(0, 1, 100), np.linspace(0, 1, 100))
    np.testing.assert_array_equal(true, np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y))


def test_psnr_definition():
    ref = np.zeros((4, 4))
    assert psnr(ref, ref + 0.1) == pytest.approx(10 * np.log10(4 / 0.01))
    assert psnr(ref, ref) == float("inf")


def test_psnr_values_match_oracles(result):
    # ORACLES.md, "The original pixel-GMM example": noisy 25.99 dB, pixel-GMM result 17.09 dB.
    assert result.psnr_noisy == pytest.approx(25.99, abs=0.02)
    assert result.psnr_result == pytest.approx(17.09, abs=0.1)
    assert result.psnr_change < -8.0  # it makes the image worse


def test_runs_exactly_fifty_iterations_from_the_articles_start(result):
    est = result.estimator
    assert est.n_iter_ == 50 and not est.converged_
    assert result.result.shape == result.noisy.shape == (100, 100)
    np.testing.assert_allclose(est.weights_.sum(), 1.0)


def _article_loop(noisy: np.ndarray, K: int = 2, n_iter: int = 50) -> np.ndarray:
    """The article's EM written out, with the variance update fixed as ORACLES.md describes."""
    flat = noisy.ravel()
    mean, var, w = np.linspace(flat.min(), flat.max(), K), np.ones(K), np.full(K, 1.0 / K)
    for _ in range(n_iter + 1):  # one extra E-step: posteriors of the final parameters
        dens = w[:, None] * np.exp(-((flat - mean[:, None]) ** 2) / (2 * var[:, None]))
        post = dens / np.sqrt(2 * np.pi * var[:, None])
        post /= post.sum(axis=0)
        if _ == n_iter:
            break
        nk = post.sum(axis=1)
        mean = post @ flat / nk
        var = np.einsum("kn,kn->k", post, (flat - mean[:, None]) ** 2) / nk
        w = nk / flat.size
    return (post.T @ mean).reshape(noisy.shape)


def test_same_image_as_the_articles_loop(result):
    expected = _article_loop(result.noisy)
    np.testing.assert_allclose(result.result, expected, rtol=0, atol=1e-10)


def test_result_is_pulled_towards_k_levels(result):
    means = np.sort(result.estimator.means_.ravel())
    assert result.result.min() >= means[0] - 1e-9
    assert result.result.max() <= means[-1] + 1e-9
    assert np.ptp(result.result) < 0.5 * np.ptp(result.true)  # range compressed: quantized


def test_three_panel_figure(result, tmp_path):
    fig = plot_denoise(result)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3
    titles = " ".join(ax.get_title() for ax in images)
    assert "25.99" in titles and "17.09" in titles
    assert all(ax.images[0].get_cmap().name == "viridis" for ax in images)
    path = save_figure(fig, tmp_path / "denoise.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
