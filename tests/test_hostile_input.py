"""Hostile or careless input through the Python API: a clear ValueError naming the argument,
never a traceback from inside numpy, scikit-learn or numba."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import emkit
from emkit._validation import InputError, NonNumericError
from emkit.families.poisson import NonIntegerCountsWarning

X = np.random.default_rng(0).normal(size=(60, 2))


def test_datetime_columns_are_named() -> None:
    frame = pd.DataFrame({"a": X[:, 0], "t": pd.date_range("2020-01-01", periods=60)})
    with pytest.raises(NonNumericError, match="column 't' holds dates"):
        emkit.GaussianMixture(2).fit(frame)
    with pytest.raises(NonNumericError, match="X holds dates"):
        emkit.GaussianMixture(2).fit(np.array(["2020-01-01"] * 10, dtype="datetime64[D]")[:, None])


@pytest.mark.parametrize("weights", [["a"], ["a"] * 60, [[1.0, 2.0], [3.0]], [1j] * 60])
def test_sample_weight_that_is_not_numbers_is_named(weights) -> None:
    with pytest.raises(InputError, match="sample_weight"):
        emkit.GaussianMixture(2).fit(X, sample_weight=weights)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([["a", "b"], ["c", "d"]], r"means_init must hold numbers, got 'a' at means_init\[0, 0\]"),
        ([[1.0, 2.0], [3.0]], "means_init must be a rectangular array"),
        ([[1j, 0], [0, 1]], "means_init must hold real numbers"),
    ],
)
def test_means_init_of_strings_ragged_or_complex(value, message) -> None:
    with pytest.raises(InputError, match=message):
        emkit.GaussianMixture(2, means_init=value).fit(X)


def test_weights_init_and_chain_starts_of_strings() -> None:
    with pytest.raises(InputError, match="weights_init must hold numbers"):
        emkit.MixtureModel("normal", 2, weights_init=["a", "b"]).fit(X)
    with pytest.raises(ValueError, match="transmat must hold numbers"):
        emkit.GaussianHMM(2, transmat=[["a", "b"], ["c", "d"]]).fit(X)


def test_threshold_and_callback_are_checked() -> None:
    model = emkit.GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(InputError, match="threshold .* must be a number, got 'abc'"):
        model.detect_outliers(X, threshold="abc")
    with pytest.raises(InputError, match="callback must be a function"):
        emkit.GaussianMixture(2).fit(X, callback=5)
    with pytest.raises(InputError, match="callback must be a function"):
        emkit.GaussianHMM(2).fit(X, callback=5)


@pytest.mark.parametrize("value", [np.inf, -1.0, np.nan, "1e-6"])
def test_reg_covar_must_be_finite(value) -> None:
    with pytest.raises(ValueError, match="reg_covar must be a finite number >= 0"):
        emkit.GaussianMixture(2, reg_covar=value).fit(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: emkit.GaussianMixture(2),
        lambda: emkit.GaussianMixture(2, covariance_type="diag"),
        lambda: emkit.GaussianHMM(2),
        lambda: emkit.MixtureModel("normal", 2),
    ],
)
def test_values_whose_squares_overflow_are_refused(make) -> None:
    with pytest.raises(InputError, match=r"too large to model in float64 \(row 0"):
        make().fit(X * 1e160)
    fitted = make().set_params(random_state=0).fit(X)
    with pytest.raises(InputError, match="too large"):
        fitted.predict(X * 1e160)
    with pytest.raises(InputError, match="too large to model in float32"):
        make().fit((X * 1e30).astype(np.float32))


def test_large_but_representable_values_still_fit() -> None:
    model = emkit.GaussianMixture(1, random_state=0).fit(X * 1e100)
    np.testing.assert_allclose(model.means_[0], X.mean(axis=0) * 1e100, rtol=1e-10)


@pytest.mark.parametrize("categories", [5, "abc", ["yes", "no"], [[0, 1], 3]])
def test_categories_in_the_wrong_form(categories) -> None:
    codes = np.random.default_rng(0).integers(0, 2, size=(40, 1))
    with pytest.raises(ValueError, match="one list of categories per column"):
        emkit.CategoricalHMM(2, categories=categories).fit(codes)


def test_poisson_warns_on_non_integer_counts() -> None:
    counts = np.array([[1.0], [2.5], [3.0], [4.0]])
    with pytest.warns(NonIntegerCountsWarning, match=r"column 0 holds 2.5 at row 1"):
        emkit.MixtureModel("poisson", 2, random_state=0).fit(counts)
    with pytest.warns(NonIntegerCountsWarning):
        emkit.PoissonHMM(2, random_state=0).fit(counts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonIntegerCountsWarning)
        emkit.MixtureModel("poisson", 2, random_state=0).fit(np.round(counts))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow evaluating the bad start
def test_a_start_with_no_density_names_the_start_arguments() -> None:
    start = {"means": [[0.0, 0.0], [0.0, 0.0]], "precisions_cholesky": np.full((2, 2), 1e200)}
    with pytest.raises(InputError, match="the start given by emission_init gives the data a "
                       "log-likelihood of -inf before any iteration"):
        emkit.GaussianHMM(2, emission_init=start, random_state=0).fit(X)
    counts = np.random.default_rng(0).poisson(3.0, size=(50, 1))
    with pytest.raises(InputError, match="components_init.* must be positive"):
        emkit.MixtureModel("poisson", 2, components_init={"rates": [[-1.0], [2.0]]}).fit(counts)
    with pytest.raises(InputError, match="parameters are a PoissonParams, got int"):
        emkit.MixtureModel("poisson", 2, components_init=5).fit(counts)


def test_emission_init_takes_covariances_and_names_what_is_wrong() -> None:
    Y = np.random.default_rng(0).normal(size=(60, 1)) + np.repeat([[0.0], [8.0]], 30, axis=0)
    start = {"means": [[0.0], [8.0]], "covariances": [[1.0], [2.0]]}
    hmm = emkit.GaussianHMM(2, emission_init=start, max_iter=1, tol=0.0).fit(Y)
    ref = emkit.GaussianHMM(2, emission_init={
        "means": [[0.0], [8.0]], "precisions_cholesky": 1.0 / np.sqrt([[1.0], [2.0]])
    }, max_iter=1, tol=0.0).fit(Y)
    np.testing.assert_allclose(hmm.means_, ref.means_, rtol=1e-12)
    bad = [
        ({"means": [[0.0], [8.0]], "covariances": [[1.0], [-1.0]]},
         r"covariances\[1\] must be positive definite"),
        ({"means": [[0.0], [8.0]], "covariances": np.ones((2, 1, 1))},
         r"covariances must have shape \(2, 1\) for covariance 'diag', got \(2, 1, 1\)"),
        ({"means": [[0.0], [8.0]]},
         r"emission_init lacks the array 'precisions_cholesky'.*means, covariances"),
    ]
    for init, match in bad:
        with pytest.raises(InputError, match=match):
            emkit.GaussianHMM(2, emission_init=init).fit(Y)
