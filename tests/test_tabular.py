"""read_table: CSV fast path and row-by-row errors, Parquet, and what each error names."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from emkit._tabular import read_table
from emkit._validation import InputError, NonNumericError


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_numeric_csv_reads_all_columns_in_order(tmp_path):
    X, names = read_table(write(tmp_path, "a,b,c\n1,2,3\n4.5,-5e-1,6\n"))
    assert names == ["a", "b", "c"]
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1, 2, 3], [4.5, -0.5, 6]])


def test_columns_select_and_reorder(tmp_path):
    X, names = read_table(write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n"), columns=["c", "a"])
    assert names == ["c", "a"]
    np.testing.assert_array_equal(X, [[3, 1], [6, 4]])
    assert X.flags.c_contiguous


def test_text_column_can_be_left_out_with_columns(tmp_path):
    path = write(tmp_path, "species,x,y\nsetosa,1,2\nvirginica,3,4\n")
    X, names = read_table(path, columns=["x", "y"])
    assert names == ["x", "y"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_single_column_and_single_row_stay_two_dimensional(tmp_path):
    X, _ = read_table(write(tmp_path, "x\n1\n2\n3\n"))
    assert X.shape == (3, 1)
    X, _ = read_table(write(tmp_path, "x,y\n1,2\n", "one.csv"))
    assert X.shape == (1, 2)


def test_empty_cells_and_na_tokens_become_nan(tmp_path):
    X, _ = read_table(write(tmp_path, 'a,b\n1,\nNA,"2.5"\n3,4\n'))
    assert np.isnan(X[0, 1]) and np.isnan(X[1, 0])
    assert X[1, 1] == 2.5 and X[2, 0] == 3.0


def test_crlf_bom_and_blank_lines(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r\n\r\n3,4\r\n")
    X, names = read_table(path)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_a_line_of_empty_cells_is_a_row_of_missing_values(tmp_path):
    """Rows keep their place (an HMM's time steps): ``,`` is a row of gaps, not a blank line."""
    path = write(tmp_path, "a,b\n1,2\n,\n3,4\n\n5,6\n")
    for text in (False, True):
        X, _ = read_table(path, text=text)
        assert X.shape == (4, 2)
        assert all(v != v for v in X[1])  # NaN
        np.testing.assert_array_equal(np.asarray(X[[0, 2, 3]], dtype=float), [[1, 2], [3, 4],
                                                                             [5, 6]])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data file"):
        read_table(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="is empty"):
        read_table(write(tmp_path, ""))


def test_header_only(tmp_path):
    with pytest.raises(InputError, match=r"header \(a, b\) but no data rows"):
        read_table(write(tmp_path, "a,b\n"))


def test_unknown_column_lists_available(tmp_path):
    with pytest.raises(InputError, match=r"no column 'z'; available columns: a, b"):
        read_table(write(tmp_path, "a,b\n1,2\n"), columns=["a", "z"])


def test_non_numeric_column_names_column_line_value_and_fix(tmp_path):
    path = write(tmp_path, "x,label,y\n1,2,3\n4,oops,6\n")
    with pytest.raises(NonNumericError) as info:
        read_table(path)
    message = str(info.value)
    assert "'label'" in message
    assert "line 3" in message  # the line as in the file (header is line 1)
    assert "'oops'" in message
    assert "--columns x,y" in message
    assert isinstance(info.value, InputError)


def test_non_numeric_outside_selected_columns_is_fine_but_inside_is_not(tmp_path):
    path = write(tmp_path, "x,label\n1,a\n2,b\n")
    X, _ = read_table(path, columns=["x"])
    np.testing.assert_array_equal(X, [[1], [2]])
    with pytest.raises(NonNumericError, match="'label'"):
        read_table(path, columns=["label"])


@pytest.mark.parametrize("row", ["4,5", "4,5,6,7"])
def test_ragged_rows_are_reported_with_their_line(tmp_path, row):
    path = write(tmp_path, f"a,b,c\n1,2,3\n{row}\n")
    with pytest.raises(InputError, match=r"line 3: \d field\(s\) where the header has 3"):
        read_table(path)
    # even when the selected columns are present on the short or long line
    with pytest.raises(InputError, match="line 3"):
        read_table(path, columns=["a"])


def test_semicolon_file_gets_a_hint(tmp_path):
    with pytest.raises(NonNumericError, match="semicolons"):
        read_table(write(tmp_path, "a;b\n1;2\n"))


def test_headerless_numeric_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="header row"):
        read_table(write(tmp_path, "1,2\n3,4\n"))


def test_duplicate_selection_is_refused(tmp_path):
    with pytest.raises(InputError, match="selected twice"):
        read_table(write(tmp_path, "a,b\n1,2\n"), columns=["a", "a"])


def test_large_file_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 4))
    path = tmp_path / "big.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c,d", comments="", fmt="%.17g")
    got, names = read_table(path)
    assert names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(got, X)


# --- Parquet --------------------------------------------------------------------------------------
def test_parquet_numeric_with_nulls(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"i": pa.array([1, 2, None], pa.int64()), "f": [0.5, 1.5, 2.5],
                      "s": ["a", "b", "c"]})
    path = tmp_path / "d.parquet"
    pq.write_table(table, path)
    X, names = read_table(path, columns=["f", "i"])
    assert names == ["f", "i"]
    np.testing.assert_array_equal(X[:, 0], [0.5, 1.5, 2.5])
    assert X[0, 1] == 1 and X[1, 1] == 2 and np.isnan(X[2, 1])
    with pytest.raises(NonNumericError, match=r"column 's' is not numeric \(row 0 holds 'a'"):
        read_table(path)
    with pytest.raises(InputError, match="available columns: i, f, s"):
        read_table(path, columns=["nope"])


def test_parquet_detected_by_magic_bytes(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.bin"
    pq.write_table(pa.table({"x": [1.0, 2.0]}), path)
    X, names = read_table(path)
    assert names == ["x"] and X.shape == (2, 1)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1 not really")
    for mod in ("pyarrow", "pyarrow.parquet", "pyarrow.compute"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(InputError, match=r"install emkit\[parquet\]"):
        read_table(path)
