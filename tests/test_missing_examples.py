"""The documented minimal EM model (examples/genetic_linkage.py) runs and hits DLR's θ̂."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "genetic_linkage.py"


def test_genetic_linkage_example(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = runpy.run_path(str(EXAMPLE))
    theta = namespace["main"]()
    assert theta == pytest.approx(0.6268214979, abs=5e-11)
    assert "theta = 0.6268214979" in capsys.readouterr().out
    assert len(EXAMPLE.read_text().splitlines()) < 60
