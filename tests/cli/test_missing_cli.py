"""``emkit impute``: pattern table, atomic CSV output, multiple imputations."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from emkit.cli import main

DATA = "a,b,c\n1,2,3\n2,,5\n3,4,\n,5,6\n4,6,8\n5,7,9\n2.5,4.1,\n"


def test_impute_writes_a_complete_csv(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text(DATA)
    out = tmp_path / "filled.csv"
    result = CliRunner().invoke(main, ["impute", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "missingness patterns" in result.output and "rows" in result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["a", "b", "c"] and len(rows) == 8
    assert all(cell not in ("", "nan") for row in rows[1:] for cell in row)
    assert rows[1] == ["1.0", "2.0", "3.0"]


def test_impute_multiple_gmm(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text(DATA)
    out = tmp_path / "m.csv"
    args = ["impute", str(src), "-o", str(out), "--model", "gmm", "-k", "1", "--multiple", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("m_*.csv")) == ["m_1.csv", "m_2.csv", "m_3.csv"]


def test_saved_imputer_fills_a_new_file_by_column_name(tmp_path: Path) -> None:
    import numpy as np

    import emkit

    src, model = tmp_path / "d.csv", tmp_path / "imputer.emk"
    src.write_text(DATA)
    result = CliRunner().invoke(main, ["impute", str(src), "-o", str(tmp_path / "f.csv"),
                                       "--save", str(model)])
    assert result.exit_code == 0, result.output
    imputer = emkit.load(model)
    new = tmp_path / "new.csv"
    new.write_text("c,a,b\n,1,2\n5,,3\n")  # the same columns in another order
    out = tmp_path / "new-filled.csv"
    result = CliRunner().invoke(main, ["impute", str(new), "-o", str(out), "--imputer",
                                       str(model)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["a", "b", "c"]
    del imputer.feature_names_in_
    want = imputer.transform(np.array([[1.0, 2.0, np.nan], [np.nan, 3.0, 5.0]]))
    np.testing.assert_allclose(np.array(rows[1:], dtype=float), want, rtol=1e-12)
    wrong = CliRunner().invoke(main, ["impute", str(new), "-o", str(out), "--imputer",
                                      str(model), "--multiple", "3"])
    assert wrong.exit_code == 2 and "--imputer fills with a saved model" in wrong.stderr
