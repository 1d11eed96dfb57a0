"""``emkit fit hmm`` and HMM model files in ``emkit predict`` / ``emkit info``, through click's
test runner."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import emkit
from emkit.cli import main

LENGTHS = (120, 80, 100)
MEANS = np.array([[0.0, 0.0], [4.0, 2.0]])
TRANSMAT = np.array([[0.95, 0.05], [0.05, 0.95]])


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def two_regimes(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Three sequences of a 2-state chain with sticky regimes and well separated means."""
    rng = np.random.default_rng(seed)
    states = []
    for n in LENGTHS:
        z = [int(rng.integers(2))]
        for _ in range(n - 1):
            z.append(int(rng.choice(2, p=TRANSMAT[z[-1]])))
        states.extend(z)
    z = np.asarray(states)
    X = MEANS[z] + rng.normal(size=(z.size, 2))
    return np.round(X, 6), z  # what the CSV holds, exactly


def write_csv(path: Path, X: np.ndarray, names: list[str], ids: list[str] | None = None) -> Path:
    """Missing cells empty; a row missing every cell as NA (or a line of empty cells)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow((["id"] if ids is not None else []) + names)
        for i, row in enumerate(X):
            gap = "NA" if np.isnan(row).all() else ""
            cells = [gap if np.isnan(v) else f"{v:.10g}" for v in row]
            writer.writerow(([ids[i]] if ids is not None else []) + cells)
    return path


def sequence_ids() -> list[str]:
    return [name for name, n in zip("abc", LENGTHS, strict=True) for _ in range(n)]


@pytest.fixture
def regimes_csv(tmp_path) -> Path:
    X, _ = two_regimes()
    return write_csv(tmp_path / "regimes.csv", X, ["x", "y"], sequence_ids())


def read_states(text: str) -> tuple[list[str], np.ndarray]:
    header, _, body = text.partition("\n")
    return header.split(","), np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2)


def agreement(states: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows decoded to the true regime, up to swapping the two labels."""
    same = float(np.mean(states == truth))
    return max(same, 1.0 - same)


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- fit → predict → info -------------------------------------------------------------------------
def test_fit_recovers_regimes_and_round_trips(runner, regimes_csv, tmp_path):
    model = tmp_path / "m.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--columns",
                               "x,y", "--seed", "0", "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert fit.stderr == ""
    for text in ("hidden Markov model", "rows", "300", "sequences", "log-likelihood", "BIC",
                 "converged", "iterations", "stationary", "duration", "transitions",
                 "model saved to"):
        assert text in fit.stdout, text
    assert model.is_file()

    _, truth = two_regimes()
    pred = runner.invoke(main, ["predict", str(model), str(regimes_csv)])
    assert pred.exit_code == 0, pred.output
    header, values = read_states(pred.stdout)
    assert header == ["state"]
    assert values.shape == (300, 1)
    assert agreement(values[:, 0].astype(int), truth) > 0.9

    loaded = emkit.load(model)
    assert isinstance(loaded, emkit.GaussianHMM)
    assert list(loaded.feature_names_in_) == ["x", "y"]
    X, _ = two_regimes()
    del loaded.feature_names_in_
    np.testing.assert_array_equal(values[:, 0].astype(int), loaded.predict(X))

    proba = runner.invoke(main, ["predict", str(model), str(regimes_csv), "--proba"])
    assert proba.exit_code == 0, proba.output
    header, values = read_states(proba.stdout)
    assert header == ["state", "p0", "p1"]
    np.testing.assert_allclose(values[:, 1:], loaded.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(values[:, 1:].sum(axis=1), 1.0)

    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0, info.output
    for text in ("GaussianHMM", "x, y", "stationary", "duration", "transitions",
                 f"{loaded.transmat_[0, 0]:.4f}"):
        assert text in info.stdout, text


def test_sequence_column_gives_the_python_api_fit(runner, regimes_csv, tmp_path):
    model = tmp_path / "m.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--sequence",
                               "id", "--covariance", "diag", "--seed", "0", "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert "3 (lengths 80–120)" in fit.stdout
    assert "x, y" in fit.stdout  # the sequence column is not a feature

    X, _ = two_regimes()
    api = emkit.GaussianHMM(2, "diag", random_state=0).fit(X, LENGTHS)
    assert f"{api.score(X, LENGTHS):.6f}" in fit.stdout
    assert f"{api.bic(X, LENGTHS):.4f}" in fit.stdout
    loaded = emkit.load(model)
    np.testing.assert_allclose(loaded.transmat_, api.transmat_, rtol=1e-10)
    np.testing.assert_allclose(loaded.means_, api.means_, rtol=1e-10)

    pred = runner.invoke(main, ["predict", str(model), str(regimes_csv), "--sequence", "id"])
    assert pred.exit_code == 0, pred.output
    _, values = read_states(pred.stdout)
    np.testing.assert_array_equal(values[:, 0].astype(int), api.predict(X, LENGTHS))
    # one sequence instead of three: a different decoding problem
    whole = runner.invoke(main, ["predict", str(model), str(regimes_csv), "--proba"])
    _, values = read_states(whole.stdout)
    np.testing.assert_allclose(values[:, 1:], api.predict_proba(X), rtol=1e-8, atol=1e-12)


def test_sequence_runs_of_numbers_and_repeated_labels(runner, tmp_path):
    X, _ = two_regimes()
    ids = ["1"] * 100 + ["2"] * 100 + ["1"] * 100  # a label seen again starts a new sequence
    path = write_csv(tmp_path / "d.csv", X, ["x", "y"], ids)
    fit = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--sequence", "id",
                               "--seed", "1"])
    assert fit.exit_code == 0, fit.output
    assert "3 (lengths 100–100)" in fit.stdout


def test_empty_cells_are_kept_and_marginalised(runner, tmp_path):
    X, truth = two_regimes()
    X[5, 0] = X[17, 1] = X[40, 0] = np.nan
    X[60] = np.nan  # a whole missing row
    path = write_csv(tmp_path / "gaps.csv", X, ["x", "y"])
    model = tmp_path / "m.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--seed", "0",
                               "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert "missing cells" in fit.stdout and "5 in 4 row(s)" in fit.stdout
    api = emkit.GaussianHMM(2, "full", random_state=0).fit(X)
    assert f"{api.score(X):.6f}" in fit.stdout

    pred = runner.invoke(main, ["predict", str(model), str(path)])
    assert pred.exit_code == 0, pred.output
    _, values = read_states(pred.stdout)
    assert values.shape == (300, 1)
    assert agreement(values[:, 0].astype(int), truth) > 0.9


def test_left_right_keeps_structural_zeros(runner, regimes_csv, tmp_path):
    model = tmp_path / "lr.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "3", "--left-right",
                               "--sequence", "id", "--seed", "0", "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert "left-right" in fit.stdout
    loaded = emkit.load(model)
    np.testing.assert_array_equal(loaded.startprob_, [1.0, 0.0, 0.0])
    A = loaded.transmat_
    assert A[1, 0] == A[2, 0] == A[2, 1] == A[0, 2] == 0.0
    assert A[2, 2] == 1.0
    np.testing.assert_allclose(A.sum(axis=1), 1.0)


def test_poisson_and_categorical_emissions(runner, tmp_path):
    rng = np.random.default_rng(0)
    z = np.repeat([0, 1, 0, 1], 60)
    counts = rng.poisson(np.where(z == 0, 2.0, 12.0))
    path = tmp_path / "counts.csv"
    path.write_text("n\n" + "\n".join(map(str, counts)) + "\n")
    model = tmp_path / "p.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--emission",
                               "poisson", "--seed", "0", "-o", str(model)])
    assert fit.exit_code == 0, fit.output
    assert "poisson" in fit.stdout and "rates" in fit.stdout
    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0, info.output
    assert "HMM" in info.stdout and "rates" in info.stdout
    pred = runner.invoke(main, ["predict", str(model), str(path)])
    assert agreement(read_states(pred.stdout)[1][:, 0].astype(int), z) > 0.9

    symbols = np.where(rng.random(z.size) < 0.9, np.where(z == 0, "sun", "rain"), "fog")
    path = tmp_path / "weather.csv"
    path.write_text("sky\n" + "\n".join(symbols) + "\n")
    fit = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--emission",
                               "categorical", "--seed", "0"])
    assert fit.exit_code == 0, fit.output
    assert "rain" in fit.stdout and "sun" in fit.stdout


# --- errors ---------------------------------------------------------------------------------------
def test_covariance_needs_gaussian_emission(runner, regimes_csv):
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--columns",
                                  "x", "--emission", "normal", "--covariance", "diag"])
    assert_user_error(result, "--covariance", "gaussian", "normal")


def test_unknown_sequence_column(runner, regimes_csv, tmp_path):
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--sequence",
                                  "run"])
    assert_user_error(result, "--sequence", "'run'", "id, x, y")
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--columns",
                                  "x,y", "--sequence", "run"])
    assert_user_error(result, "--sequence", "'run'")


def test_sequence_column_listed_as_a_feature(runner, regimes_csv):
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--columns",
                                  "id,x", "--sequence", "id"])
    assert_user_error(result, "--sequence column 'id' is also in --columns")


def test_empty_sequence_label(runner, tmp_path):
    X, _ = two_regimes()
    ids = sequence_ids()
    ids[7] = ""
    path = write_csv(tmp_path / "d.csv", X, ["x", "y"], ids)
    result = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--sequence", "id"])
    assert_user_error(result, "'id'", "data row(s) 8")


def test_fewer_rows_than_states(runner, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("x\n1.0\n2.0\n\n3.5\n")
    result = runner.invoke(main, ["fit", "hmm", str(path), "--states", "4"])
    assert_user_error(result, "--states 4", "3")


def test_student_t_emission_marginalises_partial_rows(runner, tmp_path):
    X, _ = two_regimes()
    X[9, 1] = np.nan
    path = write_csv(tmp_path / "d.csv", X, ["x", "y"])
    result = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--emission",
                                  "student_t", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "1 in 1 row(s), marginalised" in result.stdout


def test_emission_checks_name_the_column(runner, tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("count\n1\n-2\n3\n4\n")
    result = runner.invoke(main, ["fit", "hmm", str(path), "--states", "2", "--emission",
                                  "poisson"])
    assert_user_error(result, "column 'count'")


def test_product_is_not_an_emission(runner, regimes_csv):
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--emission",
                                  "product"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_predict_sequence_needs_an_hmm(runner, regimes_csv, tmp_path):
    model = tmp_path / "g.emk"
    fit = runner.invoke(main, ["fit", "gmm", str(regimes_csv), "-k", "2", "--columns", "x,y",
                               "--seed", "0", "-o", str(model), "-q"])
    assert fit.exit_code == 0, fit.output
    result = runner.invoke(main, ["predict", str(model), str(regimes_csv), "--sequence", "id"])
    assert_user_error(result, "--sequence", "hidden Markov", "GaussianMixture")


def test_predict_with_unknown_sequence_column(runner, regimes_csv, tmp_path):
    model = tmp_path / "m.emk"
    fit = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--columns",
                               "x,y", "--seed", "0", "-o", str(model), "-q"])
    assert fit.exit_code == 0, fit.output
    assert fit.stdout == ""
    result = runner.invoke(main, ["predict", str(model), str(regimes_csv), "--sequence", "run"])
    assert_user_error(result, "--sequence", "'run'")


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_emission_with_mix(runner, tmp_path, regimes_csv, covariance):
    model = tmp_path / "gmmhmm.emk"
    result = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--emission",
                                  "gaussian_mixture", "--mix", "2", "--covariance", covariance,
                                  "--sequence", "id", "--seed", "0", "-o", str(model)])
    assert result.exit_code == 0, result.output
    assert "states: Gaussians m, weight, mean (sd)" in result.stdout
    loaded = emkit.load(model)
    assert isinstance(loaded, emkit.GMMHMM) and loaded.weights_.shape == (2, 2)
    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0 and "Gaussians m" in info.stdout
    wrong = runner.invoke(main, ["fit", "hmm", str(regimes_csv), "--states", "2", "--mix", "2"])
    assert_user_error(wrong, "--mix applies to --emission gaussian_mixture")
