"""GaussianMixture on bad, degenerate and unusual input: clear errors, no crashes, right dtypes,
sample weights, sampling and information criteria."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from emkit import GaussianMixture
from emkit._validation import InputError, NonNumericError
from emkit.models.mixture import ComponentCollapseWarning

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def raises_cleanly(excinfo: pytest.ExceptionInfo) -> None:
    """The error was raised by emkit or scikit-learn's validation, not deep inside numpy/scipy."""
    origin = str(excinfo.traceback[-1].path)
    assert "/numpy/" not in origin and "/scipy/" not in origin, origin


def quiet_fit(model: GaussianMixture, X, **kwargs) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kwargs)


@pytest.fixture(scope="module")
def fitted(blobs: np.ndarray) -> GaussianMixture:
    return quiet_fit(GaussianMixture(3, random_state=0), blobs)


# --------------------------------------------------------------------------------------------------
# NaN and infinity
# --------------------------------------------------------------------------------------------------


def test_inf_names_rows_and_columns(blobs: np.ndarray) -> None:
    X = blobs.copy()
    X[3, 1] = np.nan  # a missing cell: allowed
    X[7, 0] = np.inf
    with pytest.raises(InputError) as excinfo:
        GaussianMixture(2).fit(X)
    message = str(excinfo.value)
    assert "inf" in message and "rows 7" in message and "index 0" in message
    assert "NaN marks a missing value" in message
    raises_cleanly(excinfo)


def test_missing_cells_are_marginalised(blobs: np.ndarray) -> None:
    """Rows with NaN fit and predict; an incomplete row's density is the marginal density."""
    X = blobs.copy()
    X[::7, 1] = np.nan
    for covariance_type in COVARIANCE_TYPES:
        model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), X)
        assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.score_samples(X)))
        proba = model.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        from scipy.stats import norm

        cov = model.covariances_
        if covariance_type == "full":
            variance = cov[:, 0, 0]
        elif covariance_type == "tied":
            variance = np.full(3, cov[0, 0])
        elif covariance_type == "diag":
            variance = cov[:, 0]
        else:
            variance = cov
        sd = np.sqrt(variance)
        marginal = np.log(model.weights_ @ norm.pdf(X[0, 0], model.means_[:, 0], sd))
        assert model.score_samples(X[:1])[0] == pytest.approx(marginal, rel=1e-10)


def test_many_bad_rows_are_summarised(blobs: np.ndarray) -> None:
    X = blobs.copy()
    X[10:40, 0] = -np.inf
    with pytest.raises(
        InputError, match=r"30 row\(s\) \(rows 10, 11, 12, 13, 14, … \(30 in all\)\)"
    ):
        GaussianMixture(2).fit(X)


def test_dataframe_column_names_in_messages(blobs: np.ndarray) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs, columns=["height", "weight"])
    frame.iloc[4, 1] = np.inf
    with pytest.raises(InputError, match=r"'weight' \(index 1\)") as excinfo:
        GaussianMixture(2).fit(frame)
    assert "rows 4" in str(excinfo.value)

    model = quiet_fit(GaussianMixture(2, random_state=0), frame.iloc[5:])
    np.testing.assert_array_equal(model.feature_names_in_, ["height", "weight"])
    # a plain array at predict time: scikit-learn warns about the names; emkit still names the
    # fitted columns when the array holds NaN
    plain = blobs[:10].copy()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        assert model.predict(plain).shape == (10,)
        plain[2, 0] = -np.inf
        with pytest.raises(InputError, match=r"'height' \(index 0\)"):
            model.predict(plain)

    colour = ["1.5"] * blobs.shape[0]  # numbers given as text are fine ...
    colour[7] = "red"  # ... words are not
    text = pd.DataFrame({"height": blobs[:, 0], "colour": colour})
    with pytest.raises(NonNumericError, match=r"column 'colour' .*row 7 holds 'red'"):
        GaussianMixture(2).fit(text)


# --------------------------------------------------------------------------------------------------
# shapes, sizes, types
# --------------------------------------------------------------------------------------------------


def test_fewer_samples_than_components(blobs: np.ndarray) -> None:
    with pytest.raises(
        ValueError, match=r"Found 3 sample\(s\), but n_components=5 needs a minimum of 5"
    ):
        GaussianMixture(5).fit(blobs[:3])
    with pytest.raises(ValueError, match="sample"):
        GaussianMixture(2).fit(blobs[:1])


def test_wrong_number_of_features_at_predict(fitted: GaussianMixture, blobs: np.ndarray) -> None:
    for method in ("predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match="expecting 2 features") as excinfo:
            getattr(fitted, method)(np.c_[blobs, blobs[:, :1]])
        raises_cleanly(excinfo)


def test_one_dimensional_input(blobs: np.ndarray) -> None:
    with pytest.raises(ValueError, match="Expected 2D array") as excinfo:
        GaussianMixture(2).fit(blobs[:, 0])
    assert "reshape(-1, 1)" in str(excinfo.value)
    raises_cleanly(excinfo)


def test_non_numeric_values_name_column_and_row(blobs: np.ndarray) -> None:
    X = blobs[:20].astype(object)
    X[4, 1] = "abc"
    with pytest.raises(NonNumericError, match=r"column 1 .*row 4 holds 'abc'") as excinfo:
        GaussianMixture(2).fit(X)
    assert isinstance(excinfo.value, TypeError) and isinstance(excinfo.value, InputError)
    raises_cleanly(excinfo)
    with pytest.raises(NonNumericError, match=r"column 0 .*row 2 holds None"):
        GaussianMixture(2).fit([[1.0, 2.0], [3.0, 4.0], [None, 5.0], [6.0, 7.0]])


def test_non_numeric_at_predict(fitted: GaussianMixture) -> None:
    with pytest.raises(NonNumericError, match=r"column 1 .*row 1"):
        fitted.predict(np.array([[0.0, 1.0], [2.0, "x"]], dtype=object))


def test_numbers_given_as_strings_are_accepted(blobs: np.ndarray) -> None:
    as_text = np.array([[format(v, ".17g") for v in row] for row in blobs[:60]], dtype=object)
    a = quiet_fit(GaussianMixture(2, random_state=0), as_text)
    b = quiet_fit(GaussianMixture(2, random_state=0), blobs[:60])
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)


def test_predict_before_fit() -> None:
    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(np.zeros((3, 2)))


@pytest.mark.parametrize(
    "change",
    [{"n_components": 3}, {"covariance_type": "spherical"}, {"covariance_type": "tied"}],
    ids=["n_components", "spherical", "tied"],
)
def test_warm_start_with_changed_structure(blobs: np.ndarray, change: dict) -> None:
    model = quiet_fit(GaussianMixture(2, warm_start=True, random_state=0, max_iter=5), blobs)
    model.set_params(**change)
    with pytest.raises(ValueError, match="warm_start=False to start over") as excinfo:
        model.fit(blobs)
    raises_cleanly(excinfo)
    model.set_params(warm_start=False)
    refit = quiet_fit(model, blobs)
    assert refit.weights_.shape == (refit.n_components,)


# --------------------------------------------------------------------------------------------------
# sample weights: errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (-np.ones(300), "Negative"),
        (np.r_[np.ones(299), -0.5], "Negative"),
        (np.r_[np.ones(2), np.nan, np.ones(297)], r"NaN or inf at rows 2"),
        (np.r_[np.inf, np.ones(299)], r"NaN or inf at rows 0"),
        (np.zeros(300), "zero"),
        (np.ones(3), "shape"),
        (np.r_[np.ones(2), np.zeros(298)], "only 2 rows have positive sample_weight"),
    ],
    ids=["negative", "one-negative", "nan", "inf", "all-zero", "wrong-length", "too-few"],
)
def test_bad_sample_weights(blobs: np.ndarray, weights: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match) as excinfo:
        GaussianMixture(3).fit(blobs, sample_weight=weights)
    raises_cleanly(excinfo)


# --------------------------------------------------------------------------------------------------
# hyperparameters
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"covariance_type": "banded"}, "covariance_type must be one of"),
        ({"init_params": "magic"}, "init_params must be one of"),
        ({"n_components": 0}, "n_components must be a positive integer"),
        ({"n_components": 2.5}, "n_components must be a positive integer"),
        ({"tol": -1e-3}, "tol must be"),
        ({"tol": "tight"}, "tol must be"),
        ({"tol": np.nan}, "tol must be"),
        ({"reg_covar": -1.0}, "reg_covar must be"),
        ({"max_iter": -1}, "max_iter must be"),
        ({"max_iter": 1.5}, "max_iter must be"),
        ({"n_init": 0}, "n_init must be"),
        ({"stopping": "absolute"}, "stopping rule must be"),
        ({"accelerate": "anderson"}, "accelerate must be"),
        ({"weights_init": [0.3, 0.3, 0.3]}, "weights_init must be non-negative and sum to 1"),
        ({"weights_init": [-0.5, 1.0, 0.5]}, "weights_init must be non-negative"),
        ({"weights_init": [0.5, 0.5]}, r"weights_init must have shape \(3,\)"),
        ({"means_init": np.zeros((2, 2))}, r"means_init must have shape \(3, 2\), got \(2, 2\)"),
        ({"means_init": np.zeros((3, 3))}, r"means_init must have shape \(3, 2\)"),
        ({"means_init": [[0, 0], [1, 1], [np.nan, 0]]}, "means_init contains NaN"),
        ({"precisions_init": np.ones(3)}, r"precisions_init must have shape \(3, 2, 2\)"),
        (
            {"precisions_init": np.stack([np.eye(2), -np.eye(2), np.eye(2)])},
            r"precisions_init must be positive definite \(component 1\)",
        ),
        (
            {"precisions_init": np.stack([np.eye(2), np.eye(2), [[1, 0.5], [0, 1]]])},
            r"precisions_init must be symmetric \(component 2\)",
        ),
    ],
)
def test_bad_hyperparameters(blobs: np.ndarray, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as excinfo:
        GaussianMixture(**{"n_components": 3, **params}).fit(blobs)
    raises_cleanly(excinfo)


@pytest.mark.parametrize(
    ("covariance_type", "precisions", "match"),
    [
        ("tied", [[1.0, 2.0], [2.0, 1.0]], "precisions_init must be positive definite"),
        ("diag", [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], r"positive \(component 1\)"),
        ("spherical", [1.0, 1.0, -2.0], r"positive \(component 2\)"),
    ],
)
def test_bad_precisions_for_each_structure(blobs, covariance_type, precisions, match) -> None:
    model = GaussianMixture(3, covariance_type=covariance_type, precisions_init=precisions)
    with pytest.raises(InputError, match=match):
        model.fit(blobs)


# --------------------------------------------------------------------------------------------------
# degenerate data fits without crashing
# --------------------------------------------------------------------------------------------------


def assert_valid_fit(model: GaussianMixture, X: np.ndarray) -> None:
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert model.weights_.sum() == pytest.approx(1.0)
    cov = model.covariances_
    if model.covariance_type == "full":
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    elif model.covariance_type == "tied":
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    else:
        assert np.all(cov > 0)
    assert np.all(np.isfinite(model.score_samples(X)))
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_all_duplicate_points(covariance_type: str) -> None:
    X = np.tile([[1.0, -2.0]], (20, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComponentCollapseWarning)
        model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), X)
    assert_valid_fit(model, X)
    np.testing.assert_allclose(model.means_, np.tile([[1.0, -2.0]], (3, 1)), atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constant_column(blobs: np.ndarray, covariance_type: str) -> None:
    X = np.c_[blobs, np.full(blobs.shape[0], 3.0)]
    model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), X)
    assert_valid_fit(model, X)
    np.testing.assert_allclose(model.means_[:, 2], 3.0, atol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_as_many_components_as_distinct_points(covariance_type: str) -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(3, 2)) * 5
    X = np.repeat(points, 5, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComponentCollapseWarning)
        model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), X)
    assert_valid_fit(model, X)
    # every point gets its own component
    assert len(set(model.predict(points).tolist())) == 3
    np.testing.assert_allclose(np.sort(model.weights_), [1 / 3] * 3, atol=1e-6)


def test_a_single_component_is_the_sample_mean_and_covariance(blobs: np.ndarray) -> None:
    model = GaussianMixture(1, reg_covar=0.0).fit(blobs)
    np.testing.assert_allclose(model.means_[0], blobs.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.covariances_[0], np.cov(blobs.T, bias=True), rtol=1e-10)
    assert model.converged_


# --------------------------------------------------------------------------------------------------
# float32
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_stays_float32(blobs: np.ndarray, covariance_type: str) -> None:
    X32 = blobs.astype(np.float32)
    model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), X32)
    assert model.score_samples(X32).dtype == np.float32
    assert model.predict_proba(X32).dtype == np.float32
    assert np.all(np.isfinite(model.score_samples(X32)))
    # the fit agrees with the float64 one to float32 accuracy
    ref = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), blobs)
    assert model.score(blobs) == pytest.approx(ref.score(blobs), rel=1e-4)
    # float64 input to a float32-fitted model is scored in float64
    assert model.score_samples(blobs).dtype == np.float64


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full"])
def test_float32_isolated_outlier_component(covariance_type: str) -> None:
    """A component owning one far row: its variance is reg_covar, not float32 rounding of
    E[x²] − μ² (which once came out negative: CovarianceError on float32 data only)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(100, 1)), [[33.3]]])
    for dtype in (np.float64, np.float32):
        model = GaussianMixture(
            2, covariance_type=covariance_type, means_init=[[0.0], [33.3]], max_iter=5
        )
        model = quiet_fit(model, X.astype(dtype))
        assert model.covariances_.ravel()[-1] == pytest.approx(1e-6, rel=1e-3)


# --------------------------------------------------------------------------------------------------
# sample weights: meaning
# --------------------------------------------------------------------------------------------------


def fitted_arrays(model: GaussianMixture) -> dict[str, np.ndarray]:
    return {n: getattr(model, n) for n in ("weights_", "means_", "covariances_")}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(blobs: np.ndarray, covariance_type: str) -> None:
    rng = np.random.default_rng(5)
    X = blobs[:120]
    counts = rng.integers(0, 4, size=X.shape[0])
    start = {"means_init": X[[0, 50, 100]] + 0.1}  # the same start for both fits
    weighted = quiet_fit(
        GaussianMixture(3, covariance_type=covariance_type, max_iter=30, tol=0.0, **start),
        X,
        sample_weight=counts,
    )
    repeated = quiet_fit(
        GaussianMixture(3, covariance_type=covariance_type, max_iter=30, tol=0.0, **start),
        np.repeat(X, counts, axis=0),
    )
    for name, value in fitted_arrays(weighted).items():
        np.testing.assert_allclose(
            value, getattr(repeated, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
    np.testing.assert_allclose(weighted.history_, repeated.history_, rtol=1e-11)


def test_zero_weight_equals_dropping_the_row(blobs: np.ndarray) -> None:
    X = blobs[:150]
    weights = np.ones(X.shape[0])
    weights[[3, 40, 41, 99]] = 0.0
    keep = weights > 0
    start = {"means_init": X[[0, 60, 120]], "weights_init": [0.2, 0.3, 0.5]}
    a = quiet_fit(GaussianMixture(3, max_iter=25, tol=0.0, **start), X, sample_weight=weights)
    b = quiet_fit(GaussianMixture(3, max_iter=25, tol=0.0, **start), X[keep])
    for name, value in fitted_arrays(a).items():
        np.testing.assert_allclose(value, getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)


def test_weighted_score_is_the_weighted_mean(fitted: GaussianMixture, blobs: np.ndarray) -> None:
    weights = np.linspace(0.0, 2.0, blobs.shape[0])
    expected = np.average(fitted.score_samples(blobs), weights=weights)
    assert fitted.score(blobs, sample_weight=weights) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weights", [np.ones(3), -np.ones(300)], ids=["wrong-length", "negative"])
def test_bad_score_weights(fitted: GaussianMixture, blobs: np.ndarray, weights) -> None:
    with pytest.raises(ValueError, match="sample_weight|Negative") as excinfo:
        fitted.score(blobs, sample_weight=weights)
    raises_cleanly(excinfo)


# --------------------------------------------------------------------------------------------------
# sample, bic, aic
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_shapes_and_labels(blobs: np.ndarray, covariance_type: str) -> None:
    model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), blobs)
    X, y = model.sample(4000)
    assert X.shape == (4000, 2) and y.shape == (4000,)
    assert set(np.unique(y)) <= {0, 1, 2}
    assert np.all(np.diff(y) >= 0)  # grouped by component
    # the draws follow the fitted mixture: component shares and means
    shares = np.bincount(y, minlength=3) / 4000
    np.testing.assert_allclose(shares, model.weights_, atol=0.03)
    full = {  # each component's covariance as a D×D matrix
        "full": lambda c, k: c[k],
        "tied": lambda c, k: c,
        "diag": lambda c, k: np.diag(c[k]),
        "spherical": lambda c, k: c[k] * np.eye(2),
    }[covariance_type]
    for k in range(3):
        n_k = np.count_nonzero(y == k)
        if n_k > 200:
            cov = full(model.covariances_, k)
            # sample mean and covariance within 5 standard errors
            se = np.sqrt(np.diag(cov) / n_k)
            np.testing.assert_array_less(np.abs(X[y == k].mean(axis=0) - model.means_[k]), 5 * se)
            np.testing.assert_allclose(np.cov(X[y == k].T), cov, rtol=0.25, atol=0.05)
    X1, y1 = model.sample(1)
    assert X1.shape == (1, 2) and y1.shape == (1,)
    # reproducible given random_state
    np.testing.assert_array_equal(model.sample(50)[0], model.sample(50)[0])
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


@pytest.mark.parametrize(
    ("covariance_type", "n_parameters"),
    # K = 3 components, D = 2 features: (K − 1) weights + K·D means + covariance parameters
    [
        ("full", 2 + 6 + 3 * 3),  # 3 symmetric 2×2 matrices: 3 each
        ("tied", 2 + 6 + 3),  # one symmetric 2×2 matrix
        ("diag", 2 + 6 + 3 * 2),  # 2 variances per component
        ("spherical", 2 + 6 + 3),  # one variance per component
    ],
)
def test_bic_and_aic(blobs: np.ndarray, covariance_type: str, n_parameters: int) -> None:
    model = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0), blobs)
    n = blobs.shape[0]
    loglik = model.score(blobs) * n
    assert model.n_parameters() == n_parameters
    assert model.bic(blobs) == pytest.approx(-2.0 * loglik + n_parameters * np.log(n), rel=1e-12)
    assert model.aic(blobs) == pytest.approx(-2.0 * loglik + 2.0 * n_parameters, rel=1e-12)
