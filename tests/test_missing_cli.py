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
