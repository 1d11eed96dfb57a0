"""Hostile files and arguments: pipes and process substitution as input, non-UTF-8 text, model
files given as data, outputs through links and into devices or pipes, outputs that are an
input, and numbers of components beyond the rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import emkit
from emkit import GaussianMixture
from emkit._tabular import read_table
from emkit._validation import InputError
from emkit.cli import main
from emkit.datasets import load_faithful

FAITHFUL = Path(emkit.__file__).parent / "datasets" / "data" / "faithful.csv"
PNG = b"\x89PNG\r\n\x1a\n"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "faithful.csv"
    shutil.copyfile(FAITHFUL, path)
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "m.emk"
    estimator = GaussianMixture(2, random_state=0).fit(load_faithful().data)
    estimator.feature_names_in_ = np.asarray(load_faithful().feature_names, dtype=object)
    emkit.save(estimator, path)
    return path


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def feed_fifo(path: Path, payload: bytes) -> threading.Thread:
    """Write ``payload`` into the named pipe ``path`` from a thread (open blocks until read)."""

    def write() -> None:
        with open(path, "wb") as fh:
            fh.write(payload)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def drain_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as fh:
            into.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


# --- reading -------------------------------------------------------------------------------------
@needs_fifo
def test_named_pipe_is_read_once_and_parsed(tmp_path):
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    thread = feed_fifo(fifo, FAITHFUL.read_bytes())
    X, names = read_table(fifo)
    thread.join(5)
    assert names == ["eruptions", "waiting"]
    np.testing.assert_array_equal(X, read_table(FAITHFUL)[0])
    # the command reads DATA several times (columns, weights, sequences): later reads of the
    # same pipe get the same bytes instead of blocking or finding it empty
    np.testing.assert_array_equal(read_table(fifo, ["waiting"])[0], X[:, 1:])


@needs_fifo
def test_cli_fits_from_a_named_pipe(runner, tmp_path):
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    thread = feed_fifo(fifo, FAITHFUL.read_bytes())
    result = runner.invoke(main, ["fit", "mixture", str(fifo), "--family", "gaussian", "-k", "2",
                                  "--seed", "0", "--weights", "waiting"])
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert "272" in result.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_process_substitution_is_data_not_empty(tmp_path):
    script = (f'"{sys.executable}" -m emkit.cli fit gmm <(cat "{FAITHFUL}") -k 2 --seed 0 -q '
              f'-o "{tmp_path / "m.emk"}"')
    env = {**os.environ, "PYTHONPATH": str(Path(emkit.__file__).parents[1])}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "empty" not in done.stderr
    assert (tmp_path / "m.emk").is_file()


def test_latin1_csv_names_the_file_the_line_and_the_fix(runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("x,y\n1,2\n3,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv is not UTF-8 text \(byte offset 13, line 3"):
        read_table(path)
    with pytest.raises(InputError, match="re-save it as UTF-8"):
        read_table(path, text=True)
    assert_user_error(runner.invoke(main, ["fit", "gmm", str(path), "-k", "1"]),
                      "latin1.csv", "line 3", "UTF-8")


def test_latin1_header_is_named_too(runner, tmp_path):
    path = tmp_path / "header.csv"
    path.write_bytes("temp\xe9rature,y\n1,2\n3,4\n".encode("latin-1"))
    assert_user_error(runner.invoke(main, ["fit", "gmm", str(path), "-k", "1"]),
                      "header.csv is not UTF-8", "line 1")


def test_model_file_given_as_data_says_what_it_is(runner, model, tmp_path):
    with pytest.raises(InputError, match="is an emkit model file, not a data table"):
        read_table(model)
    assert_user_error(runner.invoke(main, ["fit", "gmm", str(model), "-k", "1"]),
                      "m.emk is an emkit model file", "emkit predict MODEL DATA")
    assert_user_error(runner.invoke(main, ["predict", str(model), str(model)]),
                      "emkit model file")


def test_other_zip_given_as_data(tmp_path):
    import zipfile

    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.csv", "x\n1\n")
    with pytest.raises(InputError, match="is a zip archive.*unzip it"):
        read_table(path)
