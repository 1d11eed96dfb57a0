"""``emkit fit gmm`` out of core (a folder of Parquet files, ``--out-of-core``) and online
(``--online --batch-size``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import emkit
from emkit.cli import main
from emkit.cli._streamed import row_batches
from emkit.datasets import load_faithful
from test_cli import assert_user_error


@pytest.fixture
def faithful_files(tmp_path: Path) -> tuple[Path, Path]:
    """Old Faithful as a folder of three Parquet part files and as one CSV file."""
    ds = load_faithful()
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(ds.data, 3)):
        columns = {name: part[:, j] for j, name in enumerate(ds.feature_names)}
        pq.write_table(pa.table(columns), folder / f"part-{i}.parquet", row_group_size=40)
    csv = tmp_path / "faithful.csv"
    np.savetxt(csv, ds.data, delimiter=",", header=",".join(ds.feature_names), comments="",
               fmt="%.17g")
    return folder, csv


def test_a_parquet_folder_is_fitted_out_of_core(faithful_files, tmp_path: Path) -> None:
    folder, csv = faithful_files
    runner = CliRunner()
    out = tmp_path / "m.emk"
    result = runner.invoke(main, ["fit", "gmm", str(folder), "-k", "2", "--seed", "0",
                                  "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "read out of core" in result.output and "272" in result.output
    from_disk = emkit.load(out)
    in_memory = emkit.GaussianMixture(2, random_state=0).fit(load_faithful().data)
    np.testing.assert_allclose(from_disk.means_, in_memory.means_, rtol=1e-10)
    loglik = in_memory.score(load_faithful().data) * 272
    assert f"{loglik:.4f}"[:-1] in result.output  # the last E-step's log-likelihood
    csv_run = runner.invoke(main, ["fit", "gmm", str(csv), "-k", "2", "--seed", "0",
                                   "--out-of-core", "-o", str(tmp_path / "c.emk")])
    assert csv_run.exit_code == 0, csv_run.output
    np.testing.assert_allclose(emkit.load(tmp_path / "c.emk").means_, in_memory.means_,
                               rtol=1e-10)


def test_online_one_pass(faithful_files, tmp_path: Path) -> None:
    folder, csv = faithful_files
    out = tmp_path / "m.emk"
    result = CliRunner().invoke(main, ["fit", "gmm", str(csv), "-k", "2", "--seed", "0",
                                       "--online", "--batch-size", "30", "-o", str(out)])
    assert result.exit_code == 0, result.output
    model = emkit.load(out)
    assert model.n_iter_ == 10  # ceil(272 / 30) steps
    X = load_faithful().data
    library = emkit.GaussianMixture(2, random_state=0).fit_stream(
        [X[i : i + 30] for i in range(0, 272, 30)], n_rows=272
    )
    np.testing.assert_allclose(model.means_, library.means_, rtol=1e-12)
    folder_run = CliRunner().invoke(main, ["fit", "gmm", str(folder), "-k", "2", "--online",
                                           "--batch-size", "100", "-q"])
    assert folder_run.exit_code == 0, folder_run.output


def test_out_of_core_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0]}), folder / "p0.parquet")
    pq.write_table(pa.table({"a": ["x", "y"]}), folder / "p1.parquet")
    result = CliRunner().invoke(main, ["fit", "gmm", str(folder), "-k", "2"])
    assert_user_error(result, "p1.parquet", "same schema")
    missing = CliRunner().invoke(main, ["fit", "gmm", str(tmp_path / "nothing"), "-k", "2",
                                        "--out-of-core"])
    assert_user_error(missing, "nothing")


def test_row_batches_cut_across_pieces(tmp_path: Path) -> None:
    X = np.arange(100.0).reshape(50, 2)
    folder = tmp_path / "p"
    folder.mkdir()
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), folder / "x.parquet",
                   row_group_size=7)
    batches = list(row_batches(emkit.ParquetData(folder), 12))
    assert [b.shape[0] for b in batches] == [12, 12, 12, 12, 2]
    np.testing.assert_array_equal(np.vstack(batches), X)
    assert [b.shape[0] for b in row_batches(X, 50)] == [50]


def test_a_poisson_mixture_out_of_core_equals_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    counts = np.concatenate([rng.poisson(2.0, 300), rng.poisson(9.0, 200)])[rng.permutation(500)]
    folder = tmp_path / "counts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(counts, 2)):
        pq.write_table(pa.table({"n": part}), folder / f"p{i}.parquet", row_group_size=64)
    out = tmp_path / "m.emk"
    result = CliRunner().invoke(main, ["fit", "mixture", str(folder), "--family", "poisson",
                                       "-k", "2", "--seed", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "poisson mixture fitted by EM" in result.output
    in_memory = emkit.MixtureModel("poisson", 2, random_state=1).fit(counts[:, None])
    np.testing.assert_allclose(emkit.load(out).rates_, in_memory.rates_, rtol=1e-10)
    weighted = CliRunner().invoke(main, ["fit", "mixture", str(folder), "--family", "poisson",
                                         "-k", "2", "--weights", "n"])
    assert_user_error(weighted, "--weights needs DATA in memory")


@pytest.mark.slow
def test_dask_local_fits_on_a_cluster(faithful_files, tmp_path: Path) -> None:
    folder, csv = faithful_files
    out = tmp_path / "m.emk"
    result = CliRunner().invoke(main, ["fit", "gmm", str(folder), "-k", "2", "--seed", "0",
                                       "--dask", "local", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "fitted on Dask" in result.output
    in_memory = emkit.GaussianMixture(2, random_state=0).fit(load_faithful().data)
    np.testing.assert_allclose(emkit.load(out).means_, in_memory.means_, rtol=1e-10)
    unreachable = CliRunner().invoke(main, ["fit", "gmm", str(csv), "-k", "2", "--dask",
                                            "tcp://127.0.0.1:1"])
    assert_user_error(unreachable, "no Dask scheduler answered")


def test_an_hmm_on_a_parquet_folder_of_sequences_equals_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    lengths = np.array([70, 45, 120, 15, 50])
    X = np.concatenate([np.repeat(rng.normal(0, 3, size=(n // 5 + 1, 1)), 5)[:n, None]
                        + rng.normal(size=(n, 1)) for n in lengths])
    ids = np.repeat([f"day-{i}" for i in range(lengths.size)], lengths)
    folder = tmp_path / "days"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), 2)):
        pq.write_table(pa.table({"day": ids[rows], "x": X[rows, 0]}), folder / f"p{i}.parquet",
                       row_group_size=33)
    out = tmp_path / "h.emk"
    runner = CliRunner()
    result = runner.invoke(main, ["fit", "hmm", str(folder), "--states", "2", "--sequence",
                                  "day", "--seed", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "read out of core" in result.output and "5 (lengths 15–120)" in result.output
    in_memory = emkit.GaussianHMM(2, random_state=0).fit(X, lengths)
    np.testing.assert_allclose(emkit.load(out).means_, in_memory.means_, rtol=1e-9)
    np.testing.assert_allclose(emkit.load(out).transmat_, in_memory.transmat_, rtol=1e-9,
                               atol=1e-12)
    no_ids = runner.invoke(main, ["fit", "hmm", str(folder), "--states", "2"])
    assert_user_error(no_ids, "--sequence COLUMN")
    # labels are read out of core too: a categorical HMM equals its fit in memory
    symbols = np.where(X[:, 0] > 0, "up", "down").astype(object)
    folder2 = tmp_path / "symbols"
    folder2.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), 2)):
        pq.write_table(pa.table({"day": ids[rows], "s": symbols[rows]}),
                       folder2 / f"p{i}.parquet", row_group_size=33)
    categorical = runner.invoke(main, ["fit", "hmm", str(folder2), "--states", "2",
                                       "--sequence", "day", "--emission", "categorical",
                                       "--seed", "0", "-o", str(tmp_path / "c.emk")])
    assert categorical.exit_code == 0, categorical.output
    in_memory_c = emkit.HMM("categorical", 2, random_state=0).fit(symbols[:, None], lengths)
    np.testing.assert_allclose(emkit.load(tmp_path / "c.emk").transmat_,
                               in_memory_c.transmat_, rtol=1e-9, atol=1e-12)


def test_a_categorical_mixture_out_of_core_equals_in_memory(tmp_path: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"c": rng.choice(["a", "b", "c"], size=400),
                          "e": rng.choice(["x", "y"], size=400)})
    folder = tmp_path / "labels"
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                   folder / "p.parquet", row_group_size=90)
    csv = tmp_path / "labels.csv"
    frame.to_csv(csv, index=False)
    runner = CliRunner()
    args = ["--family", "categorical", "-k", "2", "--seed", "0"]
    disk = runner.invoke(main, ["fit", "mixture", str(folder), *args, "-o",
                                str(tmp_path / "d.emk")])
    memory = runner.invoke(main, ["fit", "mixture", str(csv), *args, "-o",
                                  str(tmp_path / "m.emk")])
    assert disk.exit_code == 0 and memory.exit_code == 0, disk.output + memory.output
    assert "read out of core" in disk.output
    np.testing.assert_allclose(emkit.load(tmp_path / "d.emk").weights_,
                               emkit.load(tmp_path / "m.emk").weights_, rtol=1e-9)
    online = runner.invoke(main, ["fit", "mixture", str(folder), *args, "--online"])
    assert_user_error(online, "--online batches do not")


def test_progress_lines_without_a_terminal(faithful_files, monkeypatch) -> None:
    """stderr to a file or a pipe (a batch job): plain progress lines with rows/s, the first
    step always, then at most every LOG_EVERY_S seconds; none with --quiet."""
    import emkit.cli._streamed as streamed

    folder, _ = faithful_files
    runner = CliRunner()
    logged = runner.invoke(main, ["fit", "gmm", str(folder), "-k", "2", "--seed", "0"])
    assert logged.exit_code == 0, logged.output
    lines = logged.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("EM 1/100  mean log-lik -")
    assert lines[0].endswith(" rows/s")
    monkeypatch.setattr(streamed, "LOG_EVERY_S", 0.0)  # a line every step
    every = runner.invoke(main, ["fit", "gmm", str(folder), "-k", "2", "--seed", "0",
                                 "--max-iter", "4", "--tol", "0"])
    steps = [line.split()[1] for line in every.stderr.splitlines() if line.startswith("EM ")]
    assert steps == ["1/4", "2/4", "3/4", "4/4"]  # (then the warning that it did not converge)
    quiet = runner.invoke(main, ["fit", "gmm", str(folder), "-k", "2", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
