"""Categorical components for survey-style data (latent class analysis).

Each of the D columns holds one of ``C_j`` categories (strings or numbers); columns are
independent given the component: ``f(x | P) = Π_j P_j[x_j]``.  ``configure`` learns the
categories of each column from the training data (sorted, as scikit-learn's OrdinalEncoder
does) unless they are given; ``encode`` maps values to codes ``0 … C_j − 1`` and names any value
not seen in fit.  The engine works on the codes; the probability tables of all columns sit side
by side in one ``(K, Σ_j C_j)`` array, so the sums are one product ``Rᵀ·onehot(x)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit._validation import InputError
from emkit.families.base import Family, check_probability_rows, column_label, expect_params
from emkit.families.missing_cells import is_missing, missing_weights, split_missing

TINY = 1e-300  # unflatten's floor: every vector maps to finite log-probabilities


@dataclass(frozen=True, eq=False)
class CategoricalParams:
    probabilities: np.ndarray  # (K, Σ_j C_j): column j's table in offsets[j]:offsets[j+1]


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value (JSON-safe, readable in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _category(value: Any, where: str) -> Any:
    value = plain(value)
    if isinstance(value, (str, bool, int, float)) and not is_missing(value):
        return value
    raise InputError(f"{where}: categories must be strings or numbers, got {value!r}")


def _columns_of(categories: Any) -> list[Sequence[Any]]:
    """``categories`` as a list of per-column category lists, or an InputError showing the form."""
    form = "a list with one list of categories per column, e.g. [['no', 'yes']] or [[0, 1, 2]]"
    if isinstance(categories, (str, bytes, Mapping)) or not isinstance(categories, Iterable):
        raise InputError(f"categories must be {form}, got {categories!r}")
    columns = list(categories)
    for j, column in enumerate(columns):
        if isinstance(column, (str, bytes, Mapping)) or not isinstance(column, Iterable):
            raise InputError(
                f"categories must be {form}; entry {j} is {column!r}, not a list of categories"
            )
    return columns


def _shown(categories: Sequence[Any], limit: int = 10) -> str:
    text = ", ".join(repr(c) for c in categories[:limit])
    return text + (f", … ({len(categories)} in all)" if len(categories) > limit else "")


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``exp(v) / Σ exp(v)``, kept ≥ ``TINY`` (any vector maps to finite logs)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.maximum(e / e.sum(axis=1, keepdims=True), TINY)


def project_simplex_floor(counts: np.ndarray, floor: float) -> np.ndarray:
    """Row-wise maximiser of ``Σ_c counts_c log p_c`` over ``{p ≥ floor, Σ p = 1}``.

    KKT: ``p_c = max(floor, counts_c / λ)``; the clamped set only grows, so a few passes find it.
    Rows without counts (an empty component) get the uniform table.
    """
    counts = np.asarray(counts, dtype=np.float64)
    C = counts.shape[1]
    total = counts.sum(axis=1, keepdims=True)
    if C * floor >= 1.0:
        raise InputError(f"min_probability={floor} is too large for {C} categories")
    uniform = np.full_like(counts, 1.0 / C)
    clamped = np.zeros(counts.shape, dtype=bool)
    p = uniform
    for _ in range(C):
        free = np.where(clamped, 0.0, counts).sum(axis=1, keepdims=True)
        mass = 1.0 - floor * clamped.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(clamped, floor, counts * (mass / free))
        grown = clamped | (p < floor)
        if np.array_equal(grown, clamped):
            break
        clamped = grown
    return np.where(total > 0, p, uniform)


class Categorical(Family):
    """Independent categorical columns, ``f(x|P) = Π_j P_j[x_j]``; M-step: weighted category
    frequencies ``P_kj[c] = Σ_n R_nk [x_nj = c] / n_k`` (kept ≥ ``min_probability``)."""

    name = "categorical"
    discrete = True
    numeric_input = False
    handles_missing = True  # on codes: a NaN code is a missing cell

    def __init__(self, categories: Sequence[Sequence[Any]] | None = None,
                 min_probability: float = 1e-10):
        self.min_probability = float(min_probability)
        if not 0.0 < self.min_probability < 0.5:
            raise InputError(f"min_probability must lie in (0, 0.5), got {min_probability!r}")
        self.categories: list[list[Any]] | None = None
        if categories is not None:
            self.categories = []
            for j, column in enumerate(_columns_of(categories)):
                values = [_category(v, f"categories of column {j}") for v in column]
                if not values:
                    raise InputError(f"column {j} has no categories")
                if len(set(values)) != len(values):
                    raise InputError(f"the categories of column {j} repeat a value: {values!r}")
                self.categories.append(values)
            if not self.categories:
                raise InputError("categories must name at least one column")
            self._lookups = [{v: c for c, v in enumerate(col)} for col in self.categories]
            sizes = np.array([len(col) for col in self.categories])
            self.offsets = np.concatenate([[0], np.cumsum(sizes)])

    @property
    def _known(self) -> list[list[Any]]:
        """The categories of every column (configured), else an error saying how to get them."""
        if self.categories is None:
            raise InputError(
                "the categorical family has no categories yet: give categories=, or fit it"
            )
        return self.categories

    def __repr__(self) -> str:
        if self.categories is None:
            return f"Categorical(min_probability={self.min_probability!r})"
        return f"Categorical(categories={self.categories!r})"

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categories": self.categories,
            "min_probability": self.min_probability,
        }

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self._configured().offsets)

    def _configured(self) -> Categorical:
        if self.categories is None:
            raise RuntimeError("Categorical has no categories yet: call configure(X) first")
        return self

    # --- configuration and input ------------------------------------------------------------
    def configure(self, X: Any) -> Categorical:
        """This family with the sorted categories of each column of ``X`` (unless given).

        Missing values are skipped here; ``encode`` names them.
        """
        X = np.asarray(X, dtype=object)
        if X.ndim != 2:
            raise InputError(f"categorical data must be 2-D, got shape {X.shape}")
        if self.categories is not None:
            self._check_width(X)
            return self
        categories = []
        for j in range(X.shape[1]):
            values = {plain(v) for v in X[:, j]}
            values = {v for v in values if not is_missing(v)}
            where = f"column {j}"
            values = {_category(v, where) for v in values}
            if not values:
                raise InputError(f"column {j} has no values (only missing ones)")
            try:
                categories.append(sorted(values))
            except TypeError:
                raise InputError(
                    f"column {j} mixes strings and numbers ({_shown(sorted(map(repr, values)))}); "
                    "convert the column to one type"
                ) from None
        return Categorical(categories, self.min_probability)

    def _check_width(self, X: np.ndarray) -> None:
        if X.shape[1] != len(self._known):
            raise InputError(
                f"X has {X.shape[1]} columns; the categorical family was configured for "
                f"{len(self._known)}"
            )

    def encode(
        self, X: Any, names: list[str] | None = None, *, allow_missing: bool = False
    ) -> np.ndarray:
        """Codes ``0 … C_j − 1`` of every value (float); unseen values are named, and missing
        ones too unless ``allow_missing`` (then their code is NaN)."""
        self._configured()
        X = np.asarray(X, dtype=object)
        if X.ndim != 2:
            raise InputError(f"categorical data must be 2-D, got shape {X.shape}")
        self._check_width(X)
        codes = np.empty(X.shape, dtype=np.float64)
        for j, lookup in enumerate(self._lookups):
            column = X[:, j]
            index = np.fromiter((_get(lookup, v) for v in column), dtype=np.intp,
                                count=column.size)
            codes[:, j] = index
            if allow_missing:
                gap = np.fromiter((is_missing(plain(v)) for v in column), dtype=bool,
                                  count=column.size)
                codes[gap, j] = np.nan
                index = np.where(gap, 0, index)
            bad = np.flatnonzero(index < 0)
            if bad.size:
                i = int(bad[0])
                value = plain(column[i])
                label = column_label(j, names)
                if is_missing(value):
                    raise InputError(
                        f"column {label} has a missing value at row {i} ({bad.size} unusable "
                        "value(s) in all): drop or impute those rows first"
                    )
                raise InputError(
                    f"column {label} has the value {value!r} at row {i}, not seen in fit "
                    f"(categories: {_shown(self._known[j])}; {bad.size} such value(s) in all)"
                )
        return codes

    def init_features(self, X: np.ndarray) -> np.ndarray:
        return self._one_hot(X)

    def _one_hot(self, X: np.ndarray) -> np.ndarray:
        offsets = self._configured().offsets
        n = X.shape[0]
        onehot = np.zeros((n, offsets[-1]))
        onehot[np.arange(n)[:, None], offsets[:-1] + X.astype(np.intp)] = 1.0
        return onehot

    def row_bytes(self, K: int, D: int) -> int:
        return 8 * (int(self._configured().offsets[-1]) + 2 * K + D)

    # --- the E- and M-step --------------------------------------------------------------------
    def log_prob(self, params: CategoricalParams, X: np.ndarray) -> np.ndarray:
        offsets = self._configured().offsets
        X, missing = split_missing(X)
        log_p = np.log(params.probabilities)
        index = X.astype(np.intp) + offsets[:-1]
        out = np.zeros((X.shape[0], log_p.shape[0]))
        for j in range(index.shape[1]):  # gathers: no 0·(−∞) as a one-hot product would risk
            term = log_p[:, index[:, j]].T
            out += term if missing is None else term * (1.0 - missing[:, j : j + 1])
        return out

    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple:
        X, missing = split_missing(X)
        onehot = self._one_hot(X)
        if missing is None:
            return (R.T @ onehot,)
        onehot[:, self.offsets[:-1]] -= missing  # a missing cell's code 0 is no observation
        weights = missing_weights(R, missing, params)  # E_k[onehot(x_j)] = P_kj
        return (R.T @ onehot + np.repeat(weights, self.sizes, axis=1) * params.probabilities,)

    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> CategoricalParams:
        offsets = self._configured().offsets
        counts = sums[0]
        tables = [
            project_simplex_floor(counts[:, a:b], self.min_probability)
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
        return CategoricalParams(np.concatenate(tables, axis=1))

    # --- bookkeeping --------------------------------------------------------------------------
    def n_parameters(self, params: CategoricalParams) -> int:
        K = params.probabilities.shape[0]
        return int(K * (self.sizes - 1).sum())

    def take(self, params: CategoricalParams, index: np.ndarray) -> CategoricalParams:
        return CategoricalParams(params.probabilities[index])

    def sample(
        self, params: CategoricalParams, k: int, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``n`` rows of category values (float when every category is a number, else object)."""
        offsets = self._configured().offsets
        columns = []
        for j, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
            cdf = np.cumsum(params.probabilities[k, a:b])
            codes = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"),
                               b - a - 1)
            values = np.empty(b - a, dtype=object)
            values[:] = self._known[j]
            columns.append(values[codes])
        out = np.empty((n, len(columns)), dtype=object)
        for j, column in enumerate(columns):
            out[:, j] = column
        numeric = all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for col in self._known
            for v in col
        )
        return out.astype(np.float64) if numeric else out

    def flatten(self, params: CategoricalParams) -> np.ndarray:
        return np.log(params.probabilities).ravel()

    def unflatten(self, vector: np.ndarray, like: CategoricalParams) -> CategoricalParams:
        offsets = self._configured().offsets
        logits = np.asarray(vector, dtype=np.float64).reshape(like.probabilities.shape)
        tables = [softmax_rows(logits[:, a:b]) for a, b in zip(offsets[:-1], offsets[1:],
                                                                strict=True)]
        return CategoricalParams(np.concatenate(tables, axis=1))

    def check_configuration(self, n_features: int) -> None:
        if self.categories is None or len(self.categories) != n_features:
            given = None if self.categories is None else len(self.categories)
            raise InputError(
                f"the categorical family has categories for {given} columns, the model "
                f"{n_features}"
            )

    def check_params(self, params, n_components, n_features, label=str):
        expect_params(params, CategoricalParams, self)
        self.check_configuration(n_features)
        shape = (n_components, int(self.offsets[-1]))
        check_probability_rows(params.probabilities, label("probabilities"), shape, self.offsets)

    def describe(self, params: CategoricalParams) -> dict[str, np.ndarray]:
        """``probabilities``: ``(K, D, max_j C_j)``, zero beyond column j's ``C_j`` categories."""
        offsets = self._configured().offsets
        K = params.probabilities.shape[0]
        sizes = self.sizes
        table = np.zeros((K, sizes.size, int(sizes.max())))
        for j, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
            table[:, j, : b - a] = params.probabilities[:, a:b]
        return {"probabilities": table}

    def restore(self, arrays: Mapping[str, np.ndarray]) -> CategoricalParams:
        table = np.asarray(arrays["probabilities"], dtype=np.float64)
        return CategoricalParams(
            np.concatenate([table[:, j, :c] for j, c in enumerate(self.sizes)], axis=1)
        )


def _get(lookup: dict[Any, int], value: Any) -> int:
    try:
        return lookup.get(value, -1)
    except TypeError:  # unhashable
        return -1
