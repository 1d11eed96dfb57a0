"""The ``emkit`` command through click's test runner: round trips, summaries, errors, demos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import emkit
from emkit import GaussianMixture
from emkit.cli import main
from emkit.datasets import load_faithful

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def faithful_csv(tmp_path) -> Path:
    ds = load_faithful()
    path = tmp_path / "faithful.csv"
    np.savetxt(path, ds.data, delimiter=",", header=",".join(ds.feature_names), comments="",
               fmt="%.10g")
    return path


def read_labels(text: str) -> tuple[list[str], np.ndarray]:
    header, _, body = text.partition("\n")
    return header.split(","), np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- fit → info → predict -------------------------------------------------------------------------
def test_fit_info_predict_round_trip_matches_python_api(runner, faithful_csv, tmp_path):
    model = tmp_path / "m.emk"
    fit = runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "--seed", "0",
                               "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert model.is_file()
    assert "log-likelihood" in fit.stdout and "BIC" in fit.stdout and "AIC" in fit.stdout
    assert "-1130.26" in fit.stdout  # Old Faithful, 2 full-covariance components
    assert fit.stderr == ""  # no progress bar off a terminal, no warnings

    X = load_faithful().data
    api = GaussianMixture(n_components=2, random_state=0).fit(X)
    assert f"{api.bic(X):.4f}" in fit.stdout

    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0, info.output
    for text in ("GaussianMixture", "eruptions", "waiting", "converged", "full",
                 f"{api.weights_[0]:.4f}"):
        assert text in info.stdout

    out = tmp_path / "labels.csv"
    pred = runner.invoke(main, ["predict", str(model), str(faithful_csv), "-o", str(out)])
    assert pred.exit_code == 0, pred.output
    header, values = read_labels(out.read_text())
    assert header == ["component"]
    np.testing.assert_array_equal(values[:, 0].astype(int), api.predict(X))

    proba = runner.invoke(main, ["predict", str(model), str(faithful_csv), "--proba"])
    assert proba.exit_code == 0, proba.output
    header, values = read_labels(proba.stdout)
    assert header == ["component", "p0", "p1"]
    np.testing.assert_array_equal(values[:, 0].astype(int), api.predict(X))
    np.testing.assert_allclose(values[:, 1:], api.predict_proba(X), atol=1e-9)


def test_predict_selects_the_models_columns_by_name(runner, faithful_csv, tmp_path):
    model = tmp_path / "m.emk"
    runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "--seed", "1", "-q",
                         "-o", str(model)])
    X = load_faithful().data
    shuffled = tmp_path / "other.csv"
    lines = ["id,waiting,note,eruptions"]
    lines += [f"{i},{w:g},row{i},{e:g}" for i, (e, w) in enumerate(X)]
    shuffled.write_text("\n".join(lines) + "\n")
    direct = runner.invoke(main, ["predict", str(model), str(faithful_csv)])
    reordered = runner.invoke(main, ["predict", str(model), str(shuffled)])
    assert reordered.exit_code == 0, reordered.output
    assert reordered.stdout == direct.stdout


def test_fit_columns_plot_and_quiet(runner, tmp_path):
    data = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 150), rng.normal(5, 1, 150)])
    data.write_text("name,x\n" + "".join(f"r{i},{v}\n" for i, v in enumerate(x)))
    plot = tmp_path / "fit.png"
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "2", "--columns", "x",
                                  "--covariance", "spherical", "--seed", "0", "--squarem",
                                  "--plot", str(plot), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert plot.read_bytes().startswith(PNG)


def test_options_reach_the_estimator(runner, faithful_csv, tmp_path):
    model = tmp_path / "m.emk"
    result = runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "3", "--covariance",
                                  "diag", "--n-init", "2", "--max-iter", "7", "--tol", "1e-3",
                                  "--init", "random_from_data", "--seed", "5", "-o", str(model)])
    assert result.exit_code == 0, result.output
    est = emkit.load(model)
    params = est.get_params()
    assert (params["n_components"], params["covariance_type"], params["n_init"]) == (3, "diag", 2)
    assert (params["max_iter"], params["tol"]) == (7, 1e-3)
    assert params["init_params"] == "random_from_data"
    assert params["random_state"] == 5
    assert "restarts" in result.stdout


def test_non_convergence_is_a_one_line_warning(runner, faithful_csv):
    result = runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "--max-iter", "1",
                                  "--tol", "0", "--seed", "0", "-q"])
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: EM did not converge")
    assert "Traceback" not in result.output and "ConvergenceWarning" not in result.stderr


# --- errors ---------------------------------------------------------------------------------------
def test_empty_file(runner, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(main, ["fit", "gmm", str(empty), "-k", "2"])
    assert_user_error(result, "empty")


def test_non_numeric_column_is_named_with_its_value(runner, tmp_path):
    data = tmp_path / "iris.csv"
    data.write_text("length,width,species\n1.0,2.0,setosa\n1.5,2.5,setosa\n")
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "1"])
    assert_user_error(result, "'species'", "'setosa'", "line 2", "--columns length,width")


def test_unknown_column(runner, faithful_csv):
    result = runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "--columns",
                                  "waiting,height"])
    assert_user_error(result, "'height'", "available columns: eruptions, waiting")


def test_rows_with_missing_values_are_named(runner, tmp_path):
    data = tmp_path / "holes.csv"
    data.write_text("a,b\n1,2\n3,\n5,6\nNA,8\n9,10\n")
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "1"])
    assert_user_error(result, "2 row(s)", "rows 2, 4", "'a'", "'b'")


def test_missing_model_file(runner, faithful_csv, tmp_path):
    result = runner.invoke(main, ["predict", str(tmp_path / "nope.emk"), str(faithful_csv)])
    assert_user_error(result, "nope.emk")
    result = runner.invoke(main, ["info", str(tmp_path / "nope.emk")])
    assert_user_error(result, "nope.emk")


def test_missing_data_file_and_corrupt_model(runner, tmp_path):
    result = runner.invoke(main, ["fit", "gmm", str(tmp_path / "none.csv"), "-k", "2"])
    assert_user_error(result, "none.csv")
    bad = tmp_path / "bad.emk"
    bad.write_text("not a zip")
    result = runner.invoke(main, ["info", str(bad)])
    assert_user_error(result, "not an emkit model file")


def test_too_many_components_is_a_user_error(runner, tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text("a\n1\n2\n")
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "5"])
    assert_user_error(result, "2 sample(s)", "minimum of 5")


def test_predict_checks_the_feature_count_of_unnamed_models(runner, tmp_path):
    X = load_faithful().data  # a model saved from numpy: no column names in the file
    model = tmp_path / "plain.emk"
    emkit.save(GaussianMixture(2, random_state=0).fit(X), model)
    data = tmp_path / "three.csv"
    data.write_text("a,b,c\n1,2,3\n4,5,6\n")
    assert_user_error(runner.invoke(main, ["predict", str(model), str(data)]),
                      "3 column(s)", "2 feature(s)")
    two = tmp_path / "two.csv"
    two.write_text("p,q\n1,2\n4,5\n")
    result = runner.invoke(main, ["predict", str(model), str(two)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "component"


def test_predict_names_the_columns_the_model_needs(runner, faithful_csv, tmp_path):
    model = tmp_path / "m.emk"
    runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "-q", "-o", str(model)])
    data = tmp_path / "w.csv"
    data.write_text("waiting\n50\n80\n")
    assert_user_error(runner.invoke(main, ["predict", str(model), str(data)]),
                      "fitted on columns eruptions, waiting", "'eruptions'")


# --- demos ----------------------------------------------------------------------------------------
def test_demo_denoise_writes_figure_and_reports_psnr(runner, tmp_path):
    result = runner.invoke(main, ["demo", "denoise", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "denoise.png").read_bytes().startswith(PNG)
    for text in ("25.99", "17.09", "quantizes", "patch-based GMM prior"):
        assert text in result.stdout


def test_demo_faithful_writes_figure(runner, tmp_path):
    result = runner.invoke(main, ["demo", "faithful", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "faithful.png").read_bytes().startswith(PNG)
    assert "-1130.26" in result.stdout and "eruptions" in result.stdout


def test_version_and_help(runner):
    assert emkit.__version__ in runner.invoke(main, ["--version"]).output
    help_text = runner.invoke(main, ["fit", "gmm", "--help"]).output
    for option in ("--covariance", "--columns", "--n-init", "--squarem", "--plot", "--quiet"):
        assert option in help_text
