"""Model selection: fit mixtures over K × covariance structure (× family) and compare criteria.

Sign convention (stated once, used everywhere in emkit):

- ``bic = −2ℓ + p·ln n``, ``aic = −2ℓ + 2p`` and ``icl = bic + 2·H`` are reported in
  scikit-learn's sign: **lower is better**.  ``H = −Σ_n w_n log r_{n,ẑ_n}`` is the entropy term of
  the MAP classification (Biernacki, Celeux & Govaert 2000), so ``icl ≥ bic``.
- ``mclust_bic = 2ℓ − p·ln n = −bic`` is the same number in mclust's sign (higher is better), as
  R's ``mclustBIC`` prints it.

``ℓ`` is the (weighted) log-likelihood of the data, ``p`` the number of free parameters and
``n`` the number of rows (the sum of ``sample_weight`` when given: frequency weights).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from emkit._validation import InputError
from emkit.criteria import CRITERIA, check_criterion, mixture_criteria
from emkit.engine.loop import NumericalError
from emkit.estimators.gaussian_mixture import GaussianMixture
from emkit.estimators.mixture import MixtureModel
from emkit.families import make_family
from emkit.families.covariance import covariance_structure

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

__all__ = [
    "CRITERIA",
    "DegenerateSelectionError",
    "SelectionResult",
    "SelectionRow",
    "information_criteria",
    "select",
]


class DegenerateSelectionError(InputError):
    """Every fitted candidate is degenerate, so there is no model to choose; the fitted table
    is in :attr:`result` (its rows and estimators, to inspect)."""

    def __init__(self, message: str, result: SelectionResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class SelectionRow:
    """One fitted candidate.  Criteria in scikit-learn's sign (lower is better) except
    ``mclust_bic`` (higher is better); NaN where the fit failed (``note`` says why)."""

    model: str  # "GaussianMixture" or "MixtureModel"
    n_components: int
    structure: str  # covariance type, or family name
    loglik: float
    n_parameters: int
    bic: float
    aic: float
    icl: float
    mclust_bic: float
    converged: bool
    n_iter: int
    best_restart: int  # which of the n_init runs won (0-based)
    n_estep: int
    note: str = ""
    degenerate: bool = False  # a component collapsed onto ≤ D rows: left out of the choice

    @property
    def ok(self) -> bool:
        return math.isfinite(self.bic)

    @property
    def label(self) -> str:
        return f"{self.structure}, K={self.n_components}"


_HEADERS = {
    "model": "model",
    "n_components": "K",
    "structure": "structure",
    "loglik": "log-lik",
    "n_parameters": "params",
    "bic": "BIC",
    "aic": "AIC",
    "icl": "ICL",
    "mclust_bic": "mclust BIC",
    "converged": "converged",
    "n_iter": "iter",
    "best_restart": "best start",
}


@dataclass(frozen=True, eq=False)
class SelectionResult:
    """Every candidate's criteria (``rows``), its fitted estimator (``estimators``, None where
    the fit failed) and the best one by ``criterion`` (lowest value)."""

    rows: tuple[SelectionRow, ...]
    estimators: tuple[Any, ...]
    criterion: str
    n_samples: float

    @property
    def best_index(self) -> int:
        """Index of the winning row; :class:`DegenerateSelectionError` if every fitted
        candidate is degenerate (a degenerate fit is never the best)."""
        chosen = self._chosen()
        if chosen is None:
            raise DegenerateSelectionError(
                "every candidate model is degenerate: each fit has a component whose covariance "
                "collapsed to the reg_covar floor (its likelihood is unbounded), so none can be "
                "chosen; the data look constant or have fewer distinct rows than K needs: check "
                "for constant columns and duplicated rows (or fit a family without covariances)",
                self,
            )
        return chosen

    def _chosen(self) -> int | None:
        ranked = self.ranking(self.criterion)
        return ranked[0] if ranked and not self.rows[ranked[0]].degenerate else None

    @property
    def best(self) -> SelectionRow:
        """The winning row."""
        return self.rows[self.best_index]

    @property
    def best_estimator(self) -> Any:
        """The fitted estimator of the winning row."""
        return self.estimators[self.best_index]

    def ranking(self, criterion: str | None = None) -> list[int]:
        """Indices of the successful rows, best (lowest criterion) first; ties keep fit order.
        Degenerate fits come last (and are never :attr:`best`)."""
        key = check_criterion(criterion or self.criterion)
        ok = [i for i, row in enumerate(self.rows) if row.ok]
        return sorted(ok, key=lambda i: (self.rows[i].degenerate, getattr(self.rows[i], key)))

    def to_records(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (one per row, keys as in :class:`SelectionRow`)."""
        return [asdict(row) for row in self.rows]

    def to_frame(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.to_records())

    def _cells(self, row: SelectionRow) -> list[str]:
        def number(value: float, digits: int) -> str:
            return f"{value:.{digits}f}" if math.isfinite(value) else "—"

        return [
            row.model,
            str(row.n_components),
            row.structure,
            number(row.loglik, 3),
            str(row.n_parameters) if row.ok else "—",
            number(row.bic, 3),
            number(row.aic, 3),
            number(row.icl, 3),
            number(row.mclust_bic, 3),
            ("yes" if row.converged else "no") if row.ok else "—",
            str(row.n_iter) if row.ok else "—",
            str(row.best_restart + 1) if row.ok else "—",
        ]

    def _caption(self) -> str:
        chosen = self._chosen()
        if chosen is None:
            head = "no model chosen: every fitted candidate is degenerate. "
        else:
            best = self.rows[chosen]
            head = (f"best by {self.criterion.upper()}: {best.model} {best.label} "
                    f"({self.criterion.upper()} {getattr(best, self.criterion):.3f}). ")
        return (
            head
            + "BIC = −2ℓ + p·ln n, AIC = −2ℓ + 2p, ICL = BIC + 2·entropy: lower is better; "
            "mclust BIC = 2ℓ − p·ln n: higher is better."
        )

    def to_text(self) -> str:
        """A plain-text table (the best row marked ``*``, degenerate fits ``!``), notes, then
        the winner and the sign convention."""
        headers = list(_HEADERS.values())
        body = [self._cells(row) for row in self.rows]
        best = self._chosen()
        widths = [max(len(h), *(len(r[j]) for r in body)) for j, h in enumerate(headers)]
        left = {0, 2}

        def line(cells: Sequence[str], mark: str) -> str:
            parts = [c.ljust(w) if j in left else c.rjust(w)
                     for j, (c, w) in enumerate(zip(cells, widths, strict=True))]
            return f"{mark} " + "  ".join(parts)

        out = [line(headers, " ")]
        out.append("  " + "  ".join("-" * w for w in widths))
        marks = ["*" if i == best else "!" if row.degenerate else " "
                 for i, row in enumerate(self.rows)]
        out += [line(cells, mark) for mark, cells in zip(marks, body, strict=True)]
        notes = [f"  {r.label}: {r.note}" for r in self.rows if r.note]
        if notes:
            out.append("notes:")
            out += notes
        out.append(self._caption())
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=f"model selection on {self.n_samples:g} rows", title_justify="left",
                      caption=self._caption(), caption_justify="left")
        for j, header in enumerate(_HEADERS.values()):
            table.add_column(header, justify="left" if j in (0, 2) else "right")
        best = self._chosen()
        for i, row in enumerate(self.rows):
            style = "bold green" if i == best else "dim" if row.degenerate or not row.ok else None
            table.add_row(*self._cells(row), style=style)
        return table

    def plot(self, criterion: str | None = None, ax: Any = None) -> Any:
        """Criterion against K, one line per structure / family (see
        :func:`emkit.plotting.plot_selection`); returns the axes."""
        from emkit.plotting import plot_selection

        return plot_selection(self, criterion=criterion, ax=ax)


def select(
    X: Any,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] = COVARIANCE_TYPES,
    families: Iterable[Any] | None = None,
    *,
    criterion: str = "bic",
    n_init: int = 3,
    short_runs: int = 0,
    short_iter: int = 5,
    init_params: str = "k-means++",
    max_iter: int = 200,
    tol: float = 1e-5,
    random_state: Any = None,
    sample_weight: Any = None,
    progress: Callable[[int, int, SelectionRow], None] | None = None,
) -> SelectionResult:
    """Fit ``GaussianMixture`` for every K × covariance type, and ``MixtureModel`` for every
    K × family in ``families``; return the criteria of all and the best by ``criterion``.

    Every fit uses ``n_init`` restarts, each started from the best of ``short_runs`` short EM
    runs when ``short_runs > 0`` (emEM); the table reports which restart won.  A fit that fails
    (e.g. K larger than the number of distinct rows, a degenerate likelihood) becomes a row of
    NaN criteria with a note, and warnings (non-convergence, collapsed components) are noted in
    the row instead of being raised.  Pass ``covariance_types=()`` to fit families only.  With
    one feature, full, diag and spherical are the same model (mclust's "V") and only the first
    of them given is fitted; tied is mclust's "E".  A Gaussian fit with a component collapsed
    onto too few rows (covariance at the ``reg_covar`` floor: unbounded likelihood) is marked
    ``degenerate`` and not chosen; if every fitted candidate is degenerate (constant data, too
    few distinct rows) :class:`DegenerateSelectionError` is raised, with the table as its
    ``result``.  ``progress(i, total, row)`` is called after each fit.
    Criteria of a density (continuous data) and of a probability mass (counts, categories)
    are not comparable with each other: compare families of the same kind.

    >>> from emkit.datasets import load_faithful
    >>> result = select(load_faithful().data, n_components=range(1, 5), random_state=0)
    >>> result.best.structure, result.best.n_components
    ('tied', 3)
    """
    criterion = check_criterion(criterion)
    ks = _check_ks(n_components, _n_rows(X))
    structures = _distinct_structures(
        [covariance_structure(c).name for c in covariance_types], _n_features(X)
    )
    family_specs = list(families) if families is not None else []
    for spec in family_specs:
        make_family(spec)  # unknown names fail here, before any fit
    if not structures and not family_specs:
        raise ValueError("nothing to select from: give covariance_types and/or families")
    seeds = _seeds(random_state)
    common = dict(n_init=n_init, short_runs=short_runs, short_iter=short_iter,
                  init_params=init_params, max_iter=max_iter, tol=tol)
    candidates: list[tuple[str, Any]] = []
    for name in structures:
        for k in ks:
            candidates.append(
                (name, GaussianMixture(k, covariance_type=name, random_state=seeds(), **common))
            )
    for spec in family_specs:
        name = make_family(spec).name
        for k in ks:
            candidates.append((name, MixtureModel(spec, k, random_state=seeds(), **common)))

    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    rows, fitted = [], []
    n_total = float(np.sum(weights)) if weights is not None else float(np.shape(X)[0])
    for i, (structure, estimator) in enumerate(candidates):
        row, est = _evaluate(estimator, structure, X, weights)
        rows.append(row)
        fitted.append(est)
        if progress is not None:
            progress(i + 1, len(candidates), row)
    result = SelectionResult(tuple(rows), tuple(fitted), criterion, n_total)
    if not any(row.ok for row in rows):
        notes = "; ".join(f"{r.label}: {r.note}" for r in rows[:3])
        raise InputError(f"every candidate model failed to fit ({notes})")
    _ = result.best_index  # DegenerateSelectionError: a degenerate best is never returned
    return result


def _evaluate(
    estimator: Any, structure: str, X: Any, weights: np.ndarray | None
) -> tuple[SelectionRow, Any]:
    K = int(estimator.n_components)
    name = type(estimator).__name__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(X, sample_weight=weights)
            crit = information_criteria(estimator, X, weights)
        except (InputError, NumericalError, np.linalg.LinAlgError) as exc:
            nan = math.nan
            row = SelectionRow(name, K, structure, nan, 0, nan, nan, nan, nan, False, 0, 0, 0,
                               note=f"failed: {exc}")
            return row, None
    notes = sorted({_short(str(w.message)) for w in caught})
    floor = _covariance_floor(estimator)
    if floor is not None:
        notes.insert(0, f"degenerate: component {floor} has a covariance at the reg_covar floor "
                        "(fitted to too few rows; its likelihood is unbounded), not chosen")
    row = SelectionRow(
        model=name,
        n_components=K,
        structure=structure,
        loglik=crit["loglik"],
        n_parameters=int(crit["n_parameters"]),
        bic=crit["bic"],
        aic=crit["aic"],
        icl=crit["icl"],
        mclust_bic=crit["mclust_bic"],
        converged=bool(estimator.converged_),
        n_iter=int(estimator.n_iter_),
        best_restart=int(estimator.best_restart_),
        n_estep=int(estimator.n_estep_),
        note="; ".join(notes),
        degenerate=floor is not None,
    )
    return row, estimator


def _covariance_floor(estimator: Any) -> int | None:
    """The first Gaussian component whose covariance has collapsed to the ``reg_covar`` floor
    (smallest eigenvalue ≤ 2·reg_covar: a singular covariance kept finite only by the
    regularisation), or None.  Models without covariances are never flagged."""
    reg = float(getattr(estimator, "reg_covar", 0.0) or 0.0)
    if reg <= 0.0 or not hasattr(estimator, "covariances_"):
        return None
    from emkit.plotting import marginal_covariances

    D = np.asarray(estimator.means_).shape[1]
    covs = marginal_covariances(estimator, range(D))
    smallest = np.linalg.eigvalsh(covs)[:, 0]
    bad = np.flatnonzero(smallest <= 2.0 * reg)
    return int(bad[0]) if bad.size else None


def information_criteria(estimator: Any, X: Any, sample_weight: Any = None) -> dict[str, float]:
    """``loglik``, ``n``, ``n_parameters``, ``entropy``, ``bic``, ``aic``, ``icl`` (lower is
    better) and ``mclust_bic`` (higher is better) of a fitted mixture on ``X``, in one pass
    (:func:`emkit.criteria.mixture_criteria`); without ``sample_weight`` the values equal the
    estimator's ``bic(X)``, ``aic(X)`` and ``icl(X)``."""
    return mixture_criteria(estimator, X, sample_weight)


def _n_features(X: Any) -> int | None:
    shape = np.shape(X) if hasattr(X, "shape") else np.shape(np.asarray(X, dtype=object))
    return int(shape[1]) if len(shape) == 2 else None


def _distinct_structures(names: list[str], n_features: int | None) -> list[str]:
    """Drop repeated names, and in one dimension the structures equal to an earlier one."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        key = "V" if n_features == 1 and name in ("full", "diag", "spherical") else name
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def _short(message: str, limit: int = 90) -> str:
    first = message.split(";")[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _n_rows(X: Any) -> int | None:
    shape = np.shape(X) if hasattr(X, "shape") else (len(X),) if hasattr(X, "__len__") else ()
    return int(shape[0]) if shape else None


def _check_ks(n_components: Iterable[int], n_rows: int | None = None) -> list[int]:
    """The distinct K values, each a positive integer and at most ``n_rows`` (checked before a
    large ``range`` is expanded)."""
    if isinstance(n_components, range) and len(n_components):
        _check_k_bound(max(n_components[0], n_components[-1]), n_rows)
    ks = list(n_components) if not isinstance(n_components, (int, np.integer)) else [
        int(n_components)]
    bad = [k for k in ks if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1]
    if not ks or bad:
        raise ValueError(f"n_components must be positive integers, got {ks!r}")
    _check_k_bound(max(ks), n_rows)
    return sorted({int(k) for k in ks})


def _check_k_bound(k: int, n_rows: int | None) -> None:
    if n_rows is not None and k > n_rows:
        raise InputError(
            f"n_components goes up to {k} but X has {n_rows} row(s): a mixture needs at least "
            f"one row per component, so K can be at most {n_rows}"
        )


def _seeds(random_state: Any):
    """Each candidate's ``random_state``: the same int (or None) for all, as one would pass to
    each estimator by hand; a RandomState / Generator draws one int per candidate."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return lambda: random_state
    rs = check_random_state(
        random_state if not isinstance(random_state, np.random.Generator)
        else int(random_state.integers(2**31 - 1))
    )
    return lambda: int(rs.randint(np.iinfo(np.int32).max))

