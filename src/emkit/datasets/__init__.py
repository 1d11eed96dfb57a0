"""Small real data sets bundled with emkit (CSV files under ``emkit/datasets/data``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = [
    "Dataset",
    "load_faithful",
    "load_galaxies",
    "load_hasselblad",
    "load_iris",
    "load_sp500",
    "load_survey",
]

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
    """A bundled data set: ``data`` (rows × features), names and a description.

    ``data`` is float64 for numeric sets and an object array of ``str`` for categorical ones.
    ``target`` / ``target_names`` hold known labels where the set has them (iris species);
    ``sample_weight`` holds frequencies where each row stands for several observations.
    """

    data: np.ndarray
    feature_names: list[str]
    description: str
    target: np.ndarray | None = None
    target_names: list[str] | None = None
    sample_weight: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_features)`` of :attr:`data`."""
        return self.data.shape  # type: ignore[return-value]


def _text(name: str) -> str:
    return resources.files(__name__).joinpath("data", name).read_text(encoding="utf-8")


def _read_csv(name: str) -> tuple[np.ndarray, list[str]]:
    header, _, body = _text(name).partition("\n")
    data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    return data, [h.strip() for h in header.split(",")]


def _read_text_csv(name: str) -> tuple[list[list[str]], list[str]]:
    rows = list(csv.reader(io.StringIO(_text(name))))
    return [r for r in rows[1:] if r], [h.strip() for h in rows[0]]


def load_faithful() -> Dataset:
    """Old Faithful eruptions: 272 rows of ``eruptions`` and ``waiting`` (minutes).

    >>> ds = load_faithful()
    >>> ds.data.shape, ds.feature_names
    ((272, 2), ['eruptions', 'waiting'])
    """
    data, names = _read_csv("faithful.csv")
    return Dataset(data=data, feature_names=names, description=_FAITHFUL_DESCRIPTION)


_GALAXIES_DESCRIPTION = """\
Velocities (km/s) of 82 galaxies of the Corona Borealis region, moving away from our galaxy.

Column:
  velocity  recession velocity (km/s)

Source: R's MASS::galaxies (Venables & Ripley), from K. Roeder (1990), Density estimation with
confidence sets exemplified by superclusters and voids in the galaxies, Journal of the American
Statistical Association 85, 617-624; data of Postman, Huchra and Geller (1986).  The classic
test of choosing the number of components of a univariate mixture (multimodal, with sparse
tails)."""

_IRIS_DESCRIPTION = """\
Edgar Anderson's iris data: 150 flowers, 50 of each of three species.

Columns (centimetres): Sepal.Length, Sepal.Width, Petal.Length, Petal.Width; target: Species
(setosa, versicolor, virginica).

Source: R's datasets::iris (R Core Team), from R. A. Fisher (1936), The use of multiple
measurements in taxonomic problems, Annals of Eugenics 7, 179-188; measurements by E. Anderson
(1935)."""

_SURVEY_DESCRIPTION = """\
Answers of 237 Statistics I students at the University of Adelaide: six categorical questions.

Columns:
  Sex    Female, Male
  W.Hnd  writing hand: Left, Right
  Fold   "Fold your arms! Which is on top?": L on R, Neither, R on L
  Clap   "Clap your hands! Which hand is on top?": Left, Neither, Right
  Exer   how often the student exercises: Freq, None, Some
  Smoke  how much the student smokes: Heavy, Never, Occas, Regul

Source: R's MASS::survey (Venables & Ripley 2002, Modern Applied Statistics with S, 4th ed.,
Springer), its six factor columns.  Four students left one of these questions unanswered; by
default their rows are dropped (233 rows remain).  A latent class analysis example: a mixture
of independent categorical answers."""

_HASSELBLAD_DESCRIPTION = """\
Deaths per day of women aged 80 and over, London, 1910-1912 (1,096 days), as counted from
The Times: the number of days (sample_weight) on which 0, 1, ..., 9 deaths were reported.

Source: V. Hasselblad (1969), Estimation of finite mixtures of distributions from the
exponential family, Journal of the American Statistical Association 64, 1459-1471.  The
classic two-component Poisson mixture; its maximum-likelihood fit (weight 0.35989, rates 1.25610
and 2.66340, log-likelihood -1989.9459) is slow for plain EM and the standard test of SQUAREM
(Varadhan & Roland 2008)."""


def load_galaxies() -> Dataset:
    """Velocities of 82 galaxies (km/s), one column ``velocity`` (MASS ``galaxies``).

    >>> load_galaxies().data.shape
    (82, 1)
    """
    data, names = _read_csv("galaxies.csv")
    return Dataset(data=data, feature_names=names, description=_GALAXIES_DESCRIPTION)


def load_iris() -> Dataset:
    """Iris: 150 × 4 measurements (cm); ``target`` holds the species codes 0, 1, 2 and
    ``target_names`` their names.

    >>> ds = load_iris()
    >>> ds.data.shape, ds.target_names
    ((150, 4), ['setosa', 'versicolor', 'virginica'])
    """
    rows, names = _read_text_csv("iris.csv")
    data = np.asarray([[float(v) for v in r[:4]] for r in rows], dtype=np.float64)
    species = [r[4] for r in rows]
    target_names = sorted(set(species))
    target = np.asarray([target_names.index(s) for s in species], dtype=np.intp)
    return Dataset(data=data, feature_names=names[:4], description=_IRIS_DESCRIPTION,
                   target=target, target_names=target_names)


def load_survey(dropna: bool = True) -> Dataset:
    """Six categorical answers of 237 students (MASS ``survey``), as an object array of ``str``.

    Rows with an unanswered question are dropped (233 rows remain); with ``dropna=False`` all
    237 rows are kept and a missing answer is the string ``"NA"`` (a category of its own).

    >>> ds = load_survey()
    >>> ds.data.shape, ds.feature_names[:3]
    ((233, 6), ['Sex', 'W.Hnd', 'Fold'])
    """
    rows, names = _read_text_csv("survey.csv")
    if dropna:
        rows = [r for r in rows if all(cell.strip() for cell in r)]
    else:
        rows = [[cell.strip() or "NA" for cell in r] for r in rows]
    data = np.empty((len(rows), len(names)), dtype=object)
    data[:] = [[cell.strip() for cell in r] for r in rows]
    return Dataset(data=data, feature_names=names, description=_SURVEY_DESCRIPTION)


def load_hasselblad() -> Dataset:
    """Hasselblad's (1969) counts: ``data`` holds deaths per day 0..9 (one column ``deaths``)
    and ``sample_weight`` the number of days each count was observed.

    >>> ds = load_hasselblad()
    >>> ds.data[:, 0].tolist()[:4], ds.sample_weight.tolist()[:4]
    ([0.0, 1.0, 2.0, 3.0], [162.0, 267.0, 271.0, 185.0])
    """
    data, names = _read_csv("hasselblad.csv")
    return Dataset(data=data[:, :1].copy(), feature_names=names[:1],
                   description=_HASSELBLAD_DESCRIPTION, sample_weight=data[:, 1].copy())


_SP500_DESCRIPTION = """\
S&P 500 daily returns, 1990-1999: 2,780 trading days.

Columns:
  return  daily return of the Standard and Poor's 500 index (percent)

Source: R's MASS::SP500 (W. N. Venables and B. D. Ripley (2002), Modern Applied Statistics with
S, 4th ed., Springer): the returns of the S&P 500 for all trading days of 1990, 1991, ..., 1999,
in time order.  Calm and turbulent stretches (1990-91, 1997-98) alternate: the classic
volatility-regime example."""


def load_sp500() -> Dataset:
    """S&P 500 daily returns 1990-1999 in percent (MASS ``SP500``): 2,780 rows, one column
    ``return``, in time order.

    >>> ds = load_sp500()
    >>> ds.data.shape, ds.feature_names
    ((2780, 1), ['return'])
    """
    data, names = _read_csv("sp500.csv")
    return Dataset(data=data, feature_names=names, description=_SP500_DESCRIPTION)
