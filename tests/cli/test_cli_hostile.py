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


# --- writing -------------------------------------------------------------------------------------
def test_write_through_a_symlink_keeps_the_link(tmp_path):
    target = tmp_path / "real.emk"
    target.write_bytes(b"old")
    link = tmp_path / "link.emk"
    link.symlink_to(target.name)  # relative, as `ln -s real.emk link.emk` makes it
    emkit.io.atomic_write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == "real.emk"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "m.emk"
    link.symlink_to(tmp_path / "sub" / "target.emk")
    emkit.save(GaussianMixture(1).fit(load_faithful().data), link)
    assert link.is_symlink() and (tmp_path / "sub" / "target.emk").is_file()
    emkit.load(link)


def test_regular_file_is_still_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_bytes(b"keep me")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        emkit.io.atomic_write_bytes(path, b"half")
    assert path.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"old")
    path.chmod(0o640)
    emkit.io.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640


@needs_fifo
def test_fifo_gets_the_bytes_and_stays_a_fifo(tmp_path):
    import stat

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = drain_fifo(fifo, got)
    emkit.io.atomic_write_bytes(fifo, b"x" * 200_000)  # more than a pipe buffer
    thread.join(5)
    assert got == [b"x" * 200_000]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@needs_fifo
def test_cli_writes_predictions_into_a_fifo(runner, model, data, tmp_path):
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = drain_fifo(fifo, got)
    result = runner.invoke(main, ["predict", str(model), str(data), "-o", str(fifo)])
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert got[0].startswith(b"component\n") and got[0].count(b"\n") == 273


def test_dev_null_stays_a_device(runner, data):
    import stat

    if not os.access("/dev/null", os.W_OK):
        pytest.skip("/dev/null is not writable here")
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "1", "-q",
                                  "-o", "/dev/null", "--plot", "/dev/null"])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


WRITE_TO_DEV_STDOUT = "from emkit._files import write_bytes; write_bytes('/dev/stdout', b'ok\\n')"


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout here")
def test_dev_stdout_into_a_pipe_prints(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WRITE_TO_DEV_STDOUT], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"ok\n"


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout here")
def test_dev_stdout_into_a_file_writes_the_file_the_shell_opened(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out.txt"
    with open(out, "wb") as fh:
        inode = os.fstat(fh.fileno()).st_ino
        subprocess.run([sys.executable, "-c", WRITE_TO_DEV_STDOUT], stdout=fh, check=True)
    assert out.read_bytes() == b"ok\n" and out.stat().st_ino == inode  # not replaced


def test_dash_writes_the_model_to_stdout_and_the_summary_to_stderr(runner, data, tmp_path):
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "2", "--seed", "0", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"PK\x03\x04")
    assert "log-likelihood" in result.stderr
    (tmp_path / "piped.emk").write_bytes(result.stdout_bytes)
    assert emkit.load(tmp_path / "piped.emk").n_components == 2
    assert not Path("-").exists()


def test_dash_writes_csv_and_png_outputs_to_stdout(runner, model, data):
    result = runner.invoke(main, ["predict", str(model), str(data), "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("component\n") and result.stdout.count("\n") == 273
    result = runner.invoke(main, ["fit", "gmm", str(data), "-k", "2", "-q", "--plot", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(PNG)


# --- outputs that are inputs ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_output_that_is_the_data_is_refused(runner, data, model, tmp_path, how):
    before = data.read_bytes()
    out = data
    if how == "symlink":
        out = tmp_path / "link.csv"
        out.symlink_to(data)
    elif how == "hardlink":
        out = tmp_path / "hard.csv"
        os.link(data, out)
    commands = [
        ["fit", "gmm", str(data), "-k", "1", "-o", str(out)],
        ["fit", "gmm", str(data), "-k", "1", "--plot", str(out)],
        ["fit", "mixture", str(data), "--family", "poisson", "-k", "1", "-o", str(out)],
        ["fit", "hmm", str(data), "--states", "1", "-o", str(out)],
        ["select", str(data), "--k", "1", "-o", str(out)],
        ["predict", str(model), str(data), "-o", str(out)],
        ["detect", str(model), str(data), "-o", str(out)],
        ["impute", str(data), "-o", str(out)],
        ["impute", str(data), "-o", str(tmp_path / "filled.csv"), "--save", str(out)],
        ["regimes", str(data), "--column", "waiting", "--plot", str(out)],
    ]
    for args in commands:
        result = runner.invoke(main, args)
        assert_user_error(result, f"is the same file as DATA {data}", str(out), "--force")
        assert data.read_bytes() == before, args


def test_output_that_is_the_model_is_refused(runner, model, data):
    before = model.read_bytes()
    assert_user_error(runner.invoke(main, ["predict", str(model), str(data), "-o", str(model)]),
                      f"-o/--output {model} is the same file as MODEL {model}")
    assert model.read_bytes() == before


def test_force_replaces_the_input_on_request(runner, model, data):
    result = runner.invoke(main, ["predict", str(model), str(data), "-o", str(data), "--force"])
    assert result.exit_code == 0, result.output
    assert data.read_text().startswith("component\n")


def test_two_outputs_in_one_file_are_refused(runner, data, tmp_path):
    out = tmp_path / "both"
    assert_user_error(runner.invoke(main, ["fit", "gmm", str(data), "-k", "1", "-o", str(out),
                                           "--plot", str(out)]),
                      "-o/--output and --plot are the same file")
    assert_user_error(runner.invoke(main, ["fit", "gmm", str(data), "-k", "1", "-o", "-",
                                           "--plot", "-"]), "are the same file (-)")
    assert not out.exists()


# --- K beyond the rows ---------------------------------------------------------------------------
def test_select_refuses_k_beyond_the_rows_before_fitting(runner, data):
    import time

    start = time.perf_counter()
    result = runner.invoke(main, ["select", str(data), "--k", "1-1000000000000"])
    assert time.perf_counter() - start < 30
    assert_user_error(result, "--k 1-1000000000000", "1000000000000 components",
                      "272 data row(s)", "K can be at most 272")


@pytest.mark.parametrize("args", [
    ["fit", "gmm", "{data}", "-k", "273"],
    ["fit", "mixture", "{data}", "--family", "poisson", "-k", "1000000"],
    ["impute", "{data}", "--model", "gmm", "-k", "1000000", "-o", "{out}"],
])
def test_fits_refuse_more_components_than_rows(runner, data, tmp_path, args):
    args = [a.format(data=data, out=tmp_path / "out.csv") for a in args]
    result = runner.invoke(main, args)
    assert_user_error(result, "-k ", "272 data row(s)", "K can be at most 272")
    assert result.stdout == ""  # refused before any summary


def test_fit_hmm_refuses_more_states_than_rows(runner, data):
    assert_user_error(runner.invoke(main, ["fit", "hmm", str(data), "--states", "1000000"]),
                      "--states 1000000", "272")


def test_library_select_bounds_k_by_the_rows():
    X = load_faithful().data
    with pytest.raises(InputError, match="n_components goes up to 10000000000 but X has 272"):
        emkit.select(X, n_components=range(1, 10**10 + 1))
    with pytest.raises(ValueError, match="K can be at most 272"):
        emkit.select(X, n_components=[2, 273])


# --- all candidates degenerate -------------------------------------------------------------------
def test_library_select_on_identical_rows_raises_with_the_table():
    from emkit.select import DegenerateSelectionError

    X = np.tile([1.0, 2.0], (30, 1))
    with pytest.raises(DegenerateSelectionError, match="every candidate model is degenerate") \
            as caught:
        emkit.select(X, n_components=[1, 2], covariance_types=["full", "spherical"],
                     random_state=0)
    assert isinstance(caught.value, ValueError)
    result = caught.value.result
    assert all(row.degenerate for row in result.rows)
    assert "no model chosen" in result.to_text() and "*" not in result.to_text()
    with pytest.raises(DegenerateSelectionError):
        result.best  # noqa: B018 - a degenerate best is never handed out


def test_cli_select_on_identical_rows_prints_the_table_and_exits_2(runner, tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("x,y\n" + "1,2\n" * 30)
    result = runner.invoke(main, ["select", str(path), "--k", "1-2", "--covariance", "full"])
    assert_user_error(result, "same.csv: every candidate model is degenerate")
    assert "no model chosen" in result.stdout
    result = runner.invoke(main, ["select", str(path), "--k", "1", "-q", "--covariance", "full",
                                  "-o", str(tmp_path / "m.emk")])
    assert_user_error(result, "degenerate")
    assert not (tmp_path / "m.emk").exists()
