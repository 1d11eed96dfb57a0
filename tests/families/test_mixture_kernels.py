"""The mixture E-step's kernels against plain numpy/scipy: softmax, log-softmax, argmax, and
the sums over nonzero responsibilities against the dense products they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from emkit import GaussianMixture
from emkit.families._mixture_kernels import (
    FLOOR,
    NEGLIGIBLE,
    argmax_rows,
    log_softmax_rows,
    normalize_rows,
)
from emkit.families.covariance import diagonal, general


def hard_rows(seed: int = 0) -> np.ndarray:
    """Log-joint rows with every kind of spread: close terms, terms far below exp(FLOOR)
    (whose exp would underflow), an all −∞ row and a row with one finite term."""
    rng = np.random.default_rng(seed)
    logp = rng.normal(scale=40.0, size=(200, 7)) - 300.0
    logp[3] = -np.inf
    logp[4, 1:] = -np.inf
    logp[5] = [0.0, -800.0, -1e4, -745.0, -1.0, -70.0, -90.0]
    return logp


def test_normalize_rows_is_the_weighted_softmax() -> None:
    logp = hard_rows()
    w = np.random.default_rng(1).uniform(0.0, 2.0, size=logp.shape[0])
    R, row_ll = logp.copy(), np.empty(logp.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = normalize_rows(R, w, row_ll)
        expected = np.nan_to_num(softmax(logp, axis=1)) * w[:, None]
        np.testing.assert_allclose(row_ll, logsumexp(logp, axis=1), rtol=1e-14)
    expected[expected < NEGLIGIBLE * w[:, None]] = 0.0
    np.testing.assert_allclose(R, expected, rtol=1e-13, atol=0.0)
    assert np.all(R[3] == 0.0) and row_ll[3] == -np.inf  # an impossible row adds nothing
    assert share == pytest.approx(np.count_nonzero(R) / R.size)


def test_terms_below_the_floor_change_no_bit_of_the_row_total() -> None:
    row = np.array([[0.0, FLOOR - 1.0, FLOOR - 500.0, -1e5]])
    R, row_ll = row.copy(), np.empty(1)
    normalize_rows(R, np.ones(1), row_ll)
    assert row_ll[0] == 0.0 and R[0, 0] == 1.0 and np.all(R[0, 1:] == 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_rows_keeps_the_far_terms(dtype) -> None:
    logp = hard_rows(2).astype(dtype)
    with np.errstate(invalid="ignore"):
        log_resp, row_ll = log_softmax_rows(logp.copy())
        expected = logp.astype(np.float64) - logsumexp(logp.astype(np.float64), axis=1)[:, None]
    assert log_resp.dtype == row_ll.dtype == dtype
    finite = np.isfinite(expected)
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(log_resp[finite], expected[finite], rtol=rtol)
    # the terms raised to FLOOR for the sum keep their own value in the log-responsibilities
    assert log_resp[5, 2] == pytest.approx(-1e4 - np.log1p(np.exp(-1.0)), rel=1e-6)


def test_argmax_rows_is_numpys_argmax_first_of_ties() -> None:
    a = np.random.default_rng(3).integers(0, 4, size=(500, 6)).astype(np.float64)
    np.testing.assert_array_equal(argmax_rows(a), a.argmax(axis=1))
    hard = hard_rows(1)  # an all −∞ row (column 0, as numpy), rows of one finite term
    np.testing.assert_array_equal(argmax_rows(hard), hard.argmax(axis=1))
    single = hard.astype(np.float32)
    np.testing.assert_array_equal(argmax_rows(single), single.argmax(axis=1))


@pytest.mark.parametrize("cov", ["full", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_sums_equal_the_dense_products(monkeypatch, cov, dtype) -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=4.0, size=(6, 5))
    X = (centres[rng.integers(6, size=3000)] + rng.normal(size=(3000, 5))).astype(dtype)
    gmm = GaussianMixture(6, covariance_type=cov, max_iter=3, random_state=0).fit(X)
    model, params = gmm._fitted_model(), gmm._get_fitted_params()
    prepared = model.prepare(params)
    family = model.family
    w = rng.uniform(0.5, 1.5, size=X.shape[0])

    def chunk(share: float):
        for module in (diagonal, general):  # the structures that choose sparse or dense sums
            monkeypatch.setattr(module, "SPARSE_SHARE", share)
        fused = family._fused_arguments(prepared.components, prepared.log_weights, X)
        X_, origin, means_c, factors, log_const = fused
        return family.covariance.accumulate(X_, origin, w, means_c, factors, log_const)

    dense, sparse = chunk(-1.0), chunk(2.0)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(dense, sparse, strict=True):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
