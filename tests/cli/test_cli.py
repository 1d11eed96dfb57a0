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


def test_missing_cells_are_marginalised_by_fit_and_predict(runner, tmp_path):
    data = tmp_path / "holes.csv"
    data.write_text("a,b\n1,2\n3,\n5,6\nNA,8\n9,10\n")
    model = tmp_path / "holes.emk"
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "1", "-o", str(model)])
    assert result.exit_code == 0, result.output
    assert "2 missing cell(s) in 2 row(s), marginalised" in result.stderr
    X = np.array([[1, 2], [3, np.nan], [5, 6], [np.nan, 8], [9, 10]])
    want = emkit.GaussianMixture(1).fit(X)
    np.testing.assert_allclose(emkit.load(model).means_, want.means_, rtol=1e-6)
    result = runner.invoke(main, ["predict", str(model), str(data), "--proba"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 6
    result = runner.invoke(main, ["detect", str(model), str(data)])  # densities of fewer cells
    assert_user_error(result, "2 row(s)", "rows 2, 4", "'a'", "'b'")  # are not comparable


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
    assert_user_error(result, "-k 5 asks for 5 components", "2 data row(s)", "at most 2")


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


# --- fit mixture ----------------------------------------------------------------------------------
DATA = Path(emkit.__file__).parent / "datasets" / "data"


def has_families(*names: str) -> bool:
    from emkit.families import FAMILIES

    return set(names) <= set(FAMILIES)


def needs_families(*names: str) -> pytest.MarkDecorator:
    """Families built in parallel with this suite: their tests run once they are registered."""
    return pytest.mark.skipif(not has_families(*names), reason=f"needs families {names}")


def mixture_model_files() -> bool:
    """Whether emkit's model files hold a MixtureModel yet (built alongside this suite)."""
    from emkit.io import _registry

    return "MixtureModel" in _registry()


def test_fit_mixture_poisson_with_weights_reaches_hasselblads_fit(runner, tmp_path):
    model, plot = tmp_path / "h.emk", tmp_path / "h.png"
    result = runner.invoke(main, ["fit", "mixture", str(DATA / "hasselblad.csv"), "--family",
                                  "poisson", "-k", "2", "--weights", "days", "--squarem",
                                  "--tol", "0", "--max-iter", "500", "--seed", "0",
                                  "-o", str(model), "--plot", str(plot)])
    saved = mixture_model_files()
    if saved:
        assert result.exit_code == 0, result.output
    else:  # a clear error, after the summary and the plot, until model files know MixtureModel
        assert_user_error(result, "cannot save")
    out = result.stdout
    assert "-1989.945860" in out and "total weight 1096" in out
    assert "1.2561" in out and "2.6634" in out  # the rates (ORACLES.md: 1.25610, 2.66340)
    assert plot.read_bytes().startswith(PNG)
    if not saved:
        return
    est = emkit.load(model)
    assert est.get_params()["family"] == "poisson" and est.n_components == 2
    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert "MixtureModel" in info.stdout and "rates" in info.stdout


@needs_families("categorical")
def test_fit_mixture_categorical_reads_text_columns(runner, tmp_path):
    data = DATA / "survey.csv"
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "categorical", "-k",
                                  "2", "--seed", "0"])
    assert result.exit_code == 0, result.output  # unanswered questions are marginalised
    assert "4 missing cell(s) in 4 row(s), marginalised" in result.stderr
    assert "237" in result.stdout
    model = tmp_path / "s.emk"
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "categorical", "-k",
                                  "2", "--seed", "0", "--drop-missing", "-o", str(model)])
    assert result.exit_code == 0, result.output
    assert "dropped 4 row(s)" in result.stderr
    assert "Female" in result.stdout and "Regul" in result.stdout and "233" in result.stdout
    predicted = runner.invoke(main, ["predict", str(model), str(data), "--proba"])
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.strip().splitlines()) == 1 + 237


def test_fit_mixture_student_t_marginalises_or_drops_missing_cells(runner, tmp_path):
    data = tmp_path / "holes.csv"
    data.write_text("a,b\n1,2\n3,\n5,6\n2,8\n9,10\n4,4\n")
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "student_t", "-k",
                                  "1"])
    assert result.exit_code == 0, result.output
    assert "1 missing cell(s) in 1 row(s), marginalised" in result.stderr
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "student_t", "-k",
                                  "1", "--drop-missing"])
    assert result.exit_code == 0, result.output
    assert "dropped 1 row(s)" in result.stderr


@needs_families("categorical")
def test_fit_mixture_one_categorical_column_plot(runner, tmp_path):
    plot = tmp_path / "smoke.png"
    result = runner.invoke(main, ["fit", "mixture", str(DATA / "survey.csv"), "--family",
                                  "categorical", "-k", "2", "--columns", "Smoke",
                                  "--drop-missing", "--seed", "0", "-q", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(PNG)
    refused = runner.invoke(main, ["fit", "mixture", str(DATA / "survey.csv"), "--family",
                                   "categorical", "-k", "2", "--drop-missing", "--plot",
                                   str(tmp_path / "all.png")])
    assert_user_error(refused, "--plot draws one categorical column")
    assert not (tmp_path / "all.png").exists()


def test_fit_mixture_plots_a_gaussian_family_too(runner, faithful_csv, tmp_path):
    plot = tmp_path / "w.png"
    result = runner.invoke(main, ["fit", "mixture", str(faithful_csv), "--family", "poisson",
                                  "-k", "2", "--columns", "waiting", "--seed", "0", "--plot",
                                  str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("family", "shown"),
    [("gaussian", "covariances [waiting]"), ("normal", "variances [waiting]"),
     ("student_t", "dof")],
)
def test_fit_mixture_summary_of_gaussian_like_families(runner, faithful_csv, family, shown,
                                                       tmp_path):
    model = tmp_path / "m.emk"
    wide = {"COLUMNS": "200"}  # one line per column header
    result = runner.invoke(main, ["fit", "mixture", str(faithful_csv), "--family", family, "-k",
                                  "2", "--seed", "0", "-o", str(model)], env=wide)
    assert result.exit_code == 0, result.output
    assert "means [eruptions]" in result.stdout and shown in result.stdout
    assert "precisions_cholesky" not in result.stdout
    info = runner.invoke(main, ["info", str(model)], env=wide)
    assert info.exit_code == 0, info.output
    assert shown in info.stdout


def test_info_and_predict_on_a_missing_normal_file(runner, faithful_csv, tmp_path):
    model = tmp_path / "n.emk"
    estimator = emkit.MissingNormal().fit(load_faithful().data)
    estimator.feature_names_in_ = np.asarray(["eruptions", "waiting"], dtype=object)
    emkit.save(estimator, model)
    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert "MissingNormal" in info.stdout and f"{estimator.mean_[1]:#.5g}" in info.stdout
    predict = runner.invoke(main, ["predict", str(model), str(faithful_csv)])
    assert_user_error(predict, "MissingNormal", "does not label rows")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--weights", "hours"], ["no column 'hours'"]),
        (["--weights", "days", "--columns", "deaths,days"], ["also in --columns"]),
        pytest.param(["--columns", "days,deaths", "--family", "bernoulli"], ["binary", "'days'"],
                     marks=needs_families("bernoulli")),
    ],
)
def test_fit_mixture_errors(runner, args, fragments):
    base = ["fit", "mixture", str(DATA / "hasselblad.csv"), "-k", "2"]
    if "--family" not in args:
        base += ["--family", "poisson"]
    assert_user_error(runner.invoke(main, base + args), *fragments)


def test_fit_mixture_negative_weights(runner, tmp_path):
    data = tmp_path / "w.csv"
    data.write_text("x,w\n1,1\n2,-1\n3,1\n")
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "poisson", "-k", "1",
                                  "--weights", "w"])
    assert_user_error(result, "'w'", "non-negative", "data row 2")


def test_fit_mixture_lists_the_families(runner):
    from emkit.cli._common import _family_choices

    help_text = runner.invoke(main, ["fit", "mixture", "--help"]).output
    assert "poisson" in _family_choices()
    for name in (*_family_choices(), "--weights", "--plot", "--short-runs", "--drop-missing"):
        assert name in help_text
    result = runner.invoke(main, ["fit", "mixture", "x.csv", "--family", "nope", "-k", "2"])
    assert result.exit_code == 2 and "nope" in result.output


# --- select ---------------------------------------------------------------------------------------
def test_select_prints_the_table_and_saves_plot_and_model(runner, faithful_csv, tmp_path):
    plot, model = tmp_path / "sel.png", tmp_path / "best.emk"
    result = runner.invoke(main, ["select", str(faithful_csv), "--k", "1-4", "--covariance",
                                  "full,tied", "--seed", "0", "--plot", str(plot), "-o",
                                  str(model)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "mclust BIC" in out and "ICL" in out and "best start" in out
    starred = [line for line in out.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and "tied" in starred[0] and " 3 " in starred[0]
    assert "best by BIC: GaussianMixture tied, K=3" in out
    assert "lower is better" in out
    assert plot.read_bytes().startswith(PNG)
    best = emkit.load(model)
    assert (best.n_components, best.covariance_type) == (3, "tied")
    assert list(best.feature_names_in_) == ["eruptions", "waiting"]


def test_select_criterion_and_quiet(runner, faithful_csv):
    result = runner.invoke(main, ["select", str(faithful_csv), "--k", "2,3", "--covariance",
                                  "diag", "--criterion", "aic", "--seed", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("GaussianMixture diag, K=") and "AIC" in result.stdout


def test_select_families_with_weights(runner):
    result = runner.invoke(main, ["select", str(DATA / "hasselblad.csv"), "--family", "poisson",
                                  "--weights", "days", "--k", "1-3", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "MixtureModel" in result.stdout and "GaussianMixture" not in result.stdout
    assert "on 1096 rows" in result.stdout or "poisson, K=" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--k", "0-3"], "positive"),
        (["--k", "a"], "--k must look like"),
        (["--k", "5-2"], "--k must look like"),
        (["--covariance", "round"], "--covariance takes"),
        pytest.param(["--family", "categorical", "--covariance", "full"],
                     "leave out --covariance", marks=needs_families("categorical")),
    ],
)
def test_select_errors(runner, faithful_csv, args, fragment):
    assert_user_error(runner.invoke(main, ["select", str(faithful_csv), *args]), fragment)


# --- detect ---------------------------------------------------------------------------------------
@pytest.fixture
def faithful_model(runner, faithful_csv, tmp_path) -> Path:
    model = tmp_path / "f.emk"
    result = runner.invoke(main, ["fit", "gmm", str(faithful_csv), "-k", "2", "--seed", "0",
                                  "-q", "-o", str(model)])
    assert result.exit_code == 0, result.output
    return model


def test_detect_writes_the_flagged_rows_with_scores(runner, faithful_csv, faithful_model,
                                                    tmp_path):
    out = tmp_path / "flagged.csv"
    result = runner.invoke(main, ["detect", str(faithful_model), str(faithful_csv),
                                  "--contamination", "0.02", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "rows flagged" in result.stderr
    header, body = read_labels(out.read_text())
    assert header == ["row", "eruptions", "waiting", "log_density", "score"]
    X = load_faithful().data
    est = emkit.load(faithful_model)
    del est.feature_names_in_  # score a plain array
    ll = est.score_samples(X)
    expected = np.flatnonzero(ll < est.outlier_threshold(0.02)) + 1
    np.testing.assert_array_equal(body[:, 0], expected)
    assert 3 <= len(expected) <= 8  # 2 % of 272 rows
    np.testing.assert_allclose(body[:, 1:3], X[expected - 1])
    np.testing.assert_allclose(body[:, 4], -ll[expected - 1], rtol=1e-9)
    np.testing.assert_allclose(body[:, 3], -body[:, 4])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_detect_threshold_and_stdout(runner, faithful_csv, faithful_model):
    result = runner.invoke(main, ["detect", str(faithful_model), str(faithful_csv),
                                  "--threshold", "-1e9"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "row,eruptions,waiting,log_density,score\n"
    assert "0 of 272 rows flagged" in result.stderr


@pytest.mark.parametrize("value", ["0", "0.7", "-0.1"])
def test_detect_contamination_is_checked(runner, faithful_csv, faithful_model, value, tmp_path):
    out = tmp_path / "never.csv"
    result = runner.invoke(main, ["detect", str(faithful_model), str(faithful_csv),
                                  "--contamination", value, "-o", str(out)])
    assert_user_error(result, "contamination must be in (0, 0.5]")
    assert not out.exists()


@needs_families("categorical")
def test_detect_on_a_categorical_model(runner, tmp_path):
    if not mixture_model_files():
        pytest.skip("model files do not hold a MixtureModel yet")
    data = DATA / "survey.csv"
    model = tmp_path / "s.emk"
    fit = runner.invoke(main, ["fit", "mixture", str(data), "--family", "categorical", "-k", "2",
                               "--drop-missing", "--seed", "0", "-q", "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    result = runner.invoke(main, ["detect", str(model), str(data), "--drop-missing",
                                  "--contamination", "0.05"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "row,Sex,W.Hnd,Fold,Clap,Exer,Smoke,log_density,score"
    rows = [int(line.split(",")[0]) for line in lines[1:]]
    assert rows and not {43, 45, 70, 137} & set(rows)  # row numbers of the file, gaps kept
    assert all(line.split(",")[1] in ("Female", "Male") for line in lines[1:])


def test_estimator_errors_name_the_files_rows_and_columns(runner, tmp_path):
    """The estimator sees a plain array (and, with --drop-missing, fewer rows): its positions
    are written back as the file's column names and data row numbers."""
    data = tmp_path / "neg.csv"
    data.write_text("a,b\n1,2\n,3\n4,4\n-1,2\n5,5\n")
    result = runner.invoke(main, ["fit", "mixture", str(data), "--family", "poisson", "-k", "1",
                                  "--drop-missing"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: Negative values in data cannot be Poisson counts: column 'a' holds -1.0 at " \
           "data row 4" in result.stderr  # after the note on the dropped row 2
    result = runner.invoke(main, ["fit", "hmm", str(data), "--states", "1", "--emission",
                                  "poisson"])
    assert_user_error(result, "column 'a' holds -1.0 at data row 4")


@pytest.mark.parametrize("model", ["normal", "gmm"])
def test_info_shows_a_saved_imputer(runner, tmp_path, model):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    X[:40] += 5.0
    X[3, 1] = np.nan
    path = emkit.save(emkit.EMImputer(model, random_state=0).fit(X), tmp_path / "imp.emk")
    result = runner.invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "EMImputer" in result.stdout and "log-likelihood" in result.stdout
    assert ("normal: mean (sd)" if model == "normal" else "components: mean (sd)") in result.stdout
