"""Products of independent column blocks, each with its own family: mixed data in one model.

``Product([("normal", [0, 1]), ("poisson", [2]), ("categorical", [3, 4])])`` models columns 0–1
as normals, 2 as counts and 3–4 as categories, independent given the component:
``f(x | θ) = Π_b f_b(x_[b] | θ_b)``.  Parameters and sums are tuples over the blocks.  Every
family's ``encode`` keeps one column per input column, so the encoded matrix holds the blocks'
columns side by side in block order; errors name the original columns (by name when the input
had names, else by index).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from emkit._validation import InputError
from emkit.families.base import Family, reject_values


class _Prefixed(Mapping):
    """The arrays ``{prefix}_{name}`` of a product's description, seen as ``name``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str):
        self.arrays, self.prefix = arrays, f"{prefix}_"

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[self.prefix + key]

    def __iter__(self) -> Iterator[str]:
        return (k[len(self.prefix) :] for k in self.arrays if k.startswith(self.prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _to_float(
    X: np.ndarray, labels: list[Any] | None, allow_missing: bool = False
) -> np.ndarray:
    """Columns as float64; with ``labels`` a value that is not a number is named (else NaN);
    None is NaN when ``allow_missing``."""
    try:
        return np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    out = np.empty(X.shape, dtype=np.float64)
    for (i, j), value in np.ndenumerate(X):
        try:
            out[i, j] = float(value)
        except (TypeError, ValueError):
            if labels is None or (allow_missing and value is None):
                out[i, j] = np.nan
                continue
            raise InputError(
                f"column {labels[j]!r} holds {value!r} at row {i}: a numeric block needs numbers"
            ) from None
    return out


class Product(Family):
    """Independent blocks of columns, ``f(x|θ) = Π_b f_b(x_[b] | θ_b)``; M-step: each block's own
    M-step on its sums (the blocks share only the responsibilities)."""

    name = "product"

    def __init__(self, blocks: Sequence[tuple[str | dict | Family, Sequence[int]]]):
        from emkit.families import make_family

        parsed = []
        for item in blocks:
            try:
                family, columns = item
            except (TypeError, ValueError):
                raise ValueError(
                    f"each block is a (family, columns) pair, got {item!r}"
                ) from None
            given: Any = columns  # validated below: non-negative integers, not bools
            listed: list[Any] = [given] if isinstance(given, (int, np.integer)) else list(given)
            columns = listed
            if not columns or not all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0
                for c in columns
            ):
                raise ValueError(
                    f"the columns of a block are non-negative integer positions, got {columns!r}"
                )
            parsed.append((make_family(family), tuple(int(c) for c in columns)))
        if not parsed:
            raise ValueError("a product family needs at least one block")
        order = [c for _, columns in parsed for c in columns]
        if len(set(order)) != len(order):
            repeated = sorted({c for c in order if order.count(c) > 1})
            raise ValueError(f"columns {repeated} belong to more than one block")
        self.blocks: tuple[tuple[Family, tuple[int, ...]], ...] = tuple(parsed)
        self.order = np.asarray(order, dtype=np.intp)
        bounds = np.cumsum([0] + [len(columns) for _, columns in parsed])
        self.slices = tuple(slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        self.numeric_input = all(f.numeric_input for f, _ in parsed)
        self.handles_missing = all(f.handles_missing for f, _ in parsed)
        self.positive_only = any(f.positive_only for f, _ in parsed)
        self.discrete = all(f.discrete for f, _ in parsed)
        names = [f.name for f, _ in parsed]
        self.prefixes = tuple(
            n if names.count(n) == 1 else f"{n}{b}" for b, n in enumerate(names)
        )

    def __repr__(self) -> str:
        inner = ", ".join(f"({f!r}, {list(c)})" for f, c in self.blocks)
        return f"Product([{inner}])"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "blocks": [[f.config(), list(c)] for f, c in self.blocks]}

    def _parts(self) -> Iterator[tuple[int, Family, tuple[int, ...], slice]]:
        for b, ((family, columns), part) in enumerate(zip(self.blocks, self.slices, strict=True)):
            yield b, family, columns, part

    @staticmethod
    def _labels(columns: tuple[int, ...], names: list[str] | None) -> list[Any]:
        """Original column labels of a block: names where known, else the integer positions."""
        return [names[c] for c in columns] if names else list(columns)

    def _encoded_labels(self, part: slice, names: list[str] | None) -> list[Any]:
        return self._labels(tuple(int(c) for c in self.order[part]), names)

    # --- configuration and input ----------------------------------------------------------------
    def configure(self, X: Any) -> Product:
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputError(f"data must be 2-D, got shape {X.shape}")
        D = X.shape[1]
        missing = sorted(set(range(D)) - {int(c) for c in self.order})
        beyond = sorted(int(c) for c in self.order if c >= D)
        if missing or beyond:
            problems = []
            if missing:
                problems.append(f"columns {missing} belong to no block")
            if beyond:
                problems.append(f"blocks name columns {beyond} beyond the last")
            raise InputError(
                f"the product family's blocks must cover the {D} columns exactly once: "
                + "; ".join(problems)
            )
        blocks = []
        for _, family, columns, _ in self._parts():
            Xb = X[:, list(columns)]
            if family.numeric_input:
                Xb = _to_float(Xb, None)  # encode names non-numbers; here they are skipped
            blocks.append((family.configure(Xb), list(columns)))
        return Product(blocks)

    def encode(
        self, X: Any, names: list[str] | None = None, *, allow_missing: bool = False
    ) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.order.size:
            raise InputError(
                f"X has shape {X.shape}; the product family models {self.order.size} columns"
            )
        parts = []
        for _, family, columns, _ in self._parts():
            labels = self._labels(columns, names)
            Xb = X[:, list(columns)]
            if family.numeric_input:
                Xb = _to_float(Xb, labels, allow_missing)
                reject_values(Xb, np.isinf(Xb), labels, "Infinite values in a numeric block")
                if not allow_missing and np.isnan(Xb).any():
                    i, j = np.argwhere(np.isnan(Xb))[0]
                    raise InputError(
                        f"column {labels[j]!r} has a missing value at row {i} (a numeric "
                        "block); drop or impute those rows first"
                    )
            encoded = family.encode(Xb, labels, allow_missing=allow_missing)
            if encoded.shape != Xb.shape:
                raise TypeError(f"{family!r}.encode must keep one column per input column")
            parts.append(encoded)
        return np.hstack(parts).astype(np.float64, copy=False)

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:
        for _, family, _, part in self._parts():
            family.check(X[:, part], self._encoded_labels(part, names))

    def init_features(self, X: np.ndarray) -> np.ndarray:
        """The blocks' features side by side; numeric blocks' columns scaled to unit variance so
        that no block's units dominate the k-means++ distances (one-hot codes kept 0/1)."""
        features = []
        for _, family, _, part in self._parts():
            F = np.asarray(family.init_features(X[:, part]), dtype=np.float64)
            if family.numeric_input:
                sd = F.std(axis=0)
                F = (F - F.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            features.append(F)
        return np.hstack(features)

    def row_bytes(self, K: int, D: int) -> int:
        return sum(family.row_bytes(K, len(columns)) for _, family, columns, _ in self._parts())

    # --- the E- and M-step ------------------------------------------------------------------------
    def log_prob(self, params: tuple, X: np.ndarray) -> np.ndarray:
        """``Σ_blocks log f_b(x_b | θ_kb)``: the blocks are independent given the component."""
        parts = list(self._parts())
        b, family, _, part = parts[0]
        out = family.log_prob(params[b], X[:, part])
        for b, family, _, part in parts[1:]:
            out = out + family.log_prob(params[b], X[:, part])
        return out

    def accumulate(self, params: tuple | None, X: np.ndarray, R: np.ndarray) -> tuple:
        return tuple(
            family.accumulate(None if params is None else params[b], X[:, part], R)
            for b, family, _, part in self._parts()
        )

    def m_step(self, sums: tuple, nk: np.ndarray, params: tuple | None) -> tuple:
        return tuple(
            family.m_step(sums[b], nk, None if params is None else params[b])
            for b, family, _, _ in self._parts()
        )

    def log_prior(self, params: tuple) -> float:
        return float(sum(family.log_prior(params[b]) for b, family, _, _ in self._parts()))

    # --- bookkeeping ------------------------------------------------------------------------------
    def n_parameters(self, params: tuple) -> int:
        return int(sum(family.n_parameters(params[b]) for b, family, _, _ in self._parts()))

    def take(self, params: tuple, index: np.ndarray) -> tuple:
        return tuple(family.take(params[b], index) for b, family, _, _ in self._parts())

    def sample(self, params: tuple, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Rows in the original column order (float, or object when a block gives categories)."""
        draws = [family.sample(params[b], k, n, rng) for b, family, _, _ in self._parts()]
        numeric = all(d.dtype != object for d in draws)
        out = np.empty((n, self.order.size), dtype=np.float64 if numeric else object)
        for (_, _, columns, _), draw in zip(self._parts(), draws, strict=True):
            out[:, list(columns)] = draw
        return out

    def flatten(self, params: tuple) -> np.ndarray:
        return np.concatenate(
            [family.flatten(params[b]) for b, family, _, _ in self._parts()]
        )

    def unflatten(self, vector: np.ndarray, like: tuple) -> tuple:
        out, start = [], 0
        for b, family, _, _ in self._parts():
            size = family.flatten(like[b]).size
            out.append(family.unflatten(vector[start : start + size], like[b]))
            start += size
        return tuple(out)

    def check_configuration(self, n_features: int) -> None:
        if n_features != self.order.size:
            raise InputError(
                f"the product family models {self.order.size} columns, not {n_features}"
            )
        for _, family, columns, _ in self._parts():
            family.check_configuration(len(columns))

    def check_params(self, params, n_components, n_features, label=str):
        """Each block's parameters by its family, named ``{prefix}_{field}``."""
        if not isinstance(params, tuple) or len(params) != len(self.blocks):
            raise InputError(f"a product family's parameters are a tuple of {len(self.blocks)}")
        self.check_configuration(n_features)
        for b, family, columns, _ in self._parts():
            prefix = self.prefixes[b]
            family.check_params(
                params[b], n_components, len(columns), lambda f, p=prefix: label(f"{p}_{f}")
            )

    def describe(self, params: tuple) -> dict[str, np.ndarray]:
        """Each block's arrays, named ``{family}_{name}`` (``{family}{b}_{name}`` when a family
        appears in several blocks)."""
        return {
            f"{self.prefixes[b]}_{key}": value
            for b, family, _, _ in self._parts()
            for key, value in family.describe(params[b]).items()
        }

    def restore(self, arrays: Mapping[str, np.ndarray]) -> tuple:
        return tuple(
            family.restore(_Prefixed(arrays, self.prefixes[b]))
            for b, family, _, _ in self._parts()
        )
