"""Small real data sets bundled with emkit (CSV files under ``emkit/datasets/data``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["Dataset", "load_faithful"]

_FAITHFUL_DESCRIPTION = """\
Old Faithful geyser, Yellowstone National Park: 272 eruptions.

Columns:
  eruptions  eruption time (minutes)
  waiting    waiting time to this eruption (minutes)

Source: R's datasets::faithful (R Core Team), from W. Härdle (1991), Smoothing Techniques with
Implementation in S, Springer, New York; also A. Azzalini and A. W. Bowman (1990), A look at some
data on the Old Faithful geyser, Applied Statistics 39, 357-365.  The waiting times are bimodal:
the classic two-component mixture example."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A bundled data set: ``data`` (float64, rows × features), names and a description."""

    data: np.ndarray
    feature_names: list[str]
    description: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_features)`` of :attr:`data`."""
        return self.data.shape  # type: ignore[return-value]


def _read_csv(name: str) -> tuple[np.ndarray, list[str]]:
    text = resources.files(__name__).joinpath("data", name).read_text(encoding="utf-8")
    header, _, body = text.partition("\n")
    data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    return data, [h.strip() for h in header.split(",")]


def load_faithful() -> Dataset:
    """Old Faithful eruptions: 272 rows of ``eruptions`` and ``waiting`` (minutes).

    >>> ds = load_faithful()
    >>> ds.data.shape, ds.feature_names
    ((272, 2), ['eruptions', 'waiting'])
    """
    data, names = _read_csv("faithful.csv")
    return Dataset(data=data, feature_names=names, description=_FAITHFUL_DESCRIPTION)
