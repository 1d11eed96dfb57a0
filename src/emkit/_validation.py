"""Input checks that name what is wrong and where, before numpy sees the data."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from sklearn.utils.validation import _check_sample_weight, validate_data


class InputError(ValueError):
    """Bad input, with a message naming the rows, columns or values at fault."""


class NonNumericError(InputError, TypeError):
    """A column holds values that are not numbers."""


def _non_numeric(column: str, where: str, value: Any) -> NonNumericError:
    return NonNumericError(
        f"column {column} is not numeric ({where} holds {value!r}): the argument must be a "
        "number or a string holding a number; select numeric columns only"
    )


def _column_names(X: Any) -> list[str] | None:
    columns = getattr(X, "columns", None)
    return [str(c) for c in columns] if columns is not None else None


def _list(items: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in items[:limit])
    return shown + (f", … ({items.size} in all)" if items.size > limit else "")


def describe_nonfinite(X: np.ndarray, names: list[str] | None, what: str = "X") -> str | None:
    """A message naming the rows and columns holding NaN or infinity, or None if all finite."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return None
    rows = np.flatnonzero(bad.any(axis=1))
    cols = np.flatnonzero(bad.any(axis=0))
    kinds = []
    if np.isnan(X[bad]).any():
        kinds.append("NaN")
    if np.isinf(X[bad]).any():
        kinds.append("infinity (inf)")
    col_text = ", ".join(
        f"{names[c]!r} (index {c})" if names else f"index {c}" for c in cols[:5]
    ) + (f", … ({cols.size} in all)" if cols.size > 5 else "")
    return (
        f"{what} contains {' and '.join(kinds)} in {rows.size} row(s) (rows {_list(rows)}) "
        f"and {cols.size} column(s) ({col_text}). Drop or impute those rows first; "
        "a Gaussian mixture here needs complete, finite rows."
    )


def _dates(what: str, dtype: Any) -> NonNumericError:
    return NonNumericError(
        f"{what} holds dates or durations ({dtype}), not numbers: leave it out, or "
        "convert it to numbers first (e.g. days since the first date)"
    )


def _reject_non_numeric(X: Any, names: list[str] | None) -> None:
    arr = np.asarray(X) if not hasattr(X, "dtypes") else None
    if arr is not None and arr.dtype.kind in "iufb":
        return
    if arr is not None and arr.dtype.kind in "mM":
        raise _dates("X", arr.dtype)
    if arr is not None and arr.dtype.kind not in "OUS":
        return
    if arr is None:  # a DataFrame: find the first non-numeric column, and its first bad row
        for name in X.columns:
            col = X[name]
            if col.dtype.kind in "mM":
                raise _dates(f"column {str(name)!r}", col.dtype)
            if col.dtype.kind not in "iufb":
                try:
                    np.asarray(col, dtype=np.float64)
                except (TypeError, ValueError):
                    i, value = next((i, v) for i, v in enumerate(col) if not _is_number(v))
                    raise _non_numeric(repr(str(name)), f"row {i}", value) from None
        return
    if arr.ndim != 2:
        return
    for j in range(arr.shape[1]):
        for i in range(arr.shape[0]):
            if not _is_number(arr[i, j]):
                label = f"{names[j]!r}" if names else f"{j}"
                raise _non_numeric(label, f"row {i}", arr[i, j])


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_X(
    estimator: Any,
    X: Any,
    *,
    reset: bool,
    min_samples: int = 1,
    allow_nan: bool = False,
) -> np.ndarray:
    """Validated 2-D float array (float32 kept, anything else float64) with named errors."""
    if type(X).__module__.startswith(("emkit.engine.", "dask")):  # rows on disk or on Dask
        raise InputError(
            f"{type(X).__name__} holds its rows out of memory: fit() reads it piece by piece "
            "and fit_stream() takes a step per piece, but this method needs the rows in memory "
            "(an array or DataFrame)"
        )
    names = _column_names(X)
    _reject_non_numeric(X, names)
    arr = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        ensure_all_finite=False,
        ensure_min_samples=min_samples,
    )
    if names is None:  # name the columns after the fitted ones (a plain array at predict)
        fitted = getattr(estimator, "feature_names_in_", None)
        names = None if fitted is None else [str(c) for c in fitted]
    top, inf = _scan(arr) if arr.size else (0.0, False)
    if not inf:  # infinity is named below
        _reject_overflowing(arr, names, top)
    if allow_nan:  # NaN marks a missing cell; infinity is still an error
        if inf:
            message = describe_nonfinite(np.where(np.isnan(arr), 0.0, arr), names)
            raise InputError(
                str(message).split(". Drop")[0] + ". NaN marks a missing value here, but "
                "infinite values cannot be modelled: replace them by NaN or drop those rows."
            )
        return arr
    # a sum that is not finite: NaN or infinity somewhere (or an overflow: then no message)
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = inf or (arr.size > 0 and not np.isfinite(np.add.reduce(arr, axis=None)))
    message = describe_nonfinite(arr, names) if suspect else None
    if message:
        raise InputError(
            message + " (emkit.EMImputer fills missing values; emkit.MissingNormal estimates "
            "a normal distribution from incomplete rows.)"
        )
    return arr


def real_array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as an array of real numbers (bool, integer and float kept; numbers held as text
    or objects become float64) of ``shape`` when given, else an :class:`InputError` naming
    ``name`` (text, ragged nesting, complex entries) instead of numpy's message without a name."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nesting: numpy names no argument
        raise InputError(
            f"{name} must be a rectangular array of numbers; its rows have different lengths"
        ) from None
    if arr.dtype.kind == "c":
        raise InputError(f"{name} must hold real numbers, got complex values ({arr.dtype})")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            flat = arr.ravel()
            i = next(i for i, v in enumerate(flat) if not _is_number(v))
            value = flat[i].item() if isinstance(flat[i], np.generic) else flat[i]
            index = ", ".join(str(int(j)) for j in np.unravel_index(i, arr.shape))
            where = f" at {name}[{index}]" if arr.ndim else ""
            raise InputError(f"{name} must hold numbers, got {value!r}{where}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise InputError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr


def _scan(X: np.ndarray) -> tuple[float, bool]:
    """(largest finite magnitude, any infinity) of a non-empty array in two reductions that
    skip NaN and allocate nothing (numba would cost its start-up, ~0.4 s, to callers that
    never use it otherwise)."""
    hi, lo = float(np.fmax.reduce(X, axis=None)), float(np.fmin.reduce(X, axis=None))
    if hi == np.inf or lo == -np.inf:
        return 0.0, True
    return max(abs(hi), abs(lo)), False  # NaN when every cell is NaN


def _reject_overflowing(X: np.ndarray, names: list[str] | None, top: float) -> None:
    """Refuse magnitudes whose squares (second moments, squared distances) overflow the dtype:
    the fit would end in a NaN log-likelihood that names nothing.  ``top`` is the largest
    finite magnitude in ``X``."""
    limit = 1e-4 * np.sqrt(np.finfo(X.dtype).max)  # room for sums over many rows
    if not top > limit:
        return
    with np.errstate(invalid="ignore"):
        i, j = np.argwhere(np.abs(X) > limit)[0]
    label = f"{names[j]!r}" if names else f"index {j}"
    raise InputError(
        f"X holds values too large to model in {X.dtype} (row {i}, column {label} holds "
        f"{X[i, j]:.3g}; the largest usable magnitude is about {limit:.1g}): their squares "
        "overflow; rescale the data first (e.g. divide the columns by a power of ten)"
    )


def real_number(value: Any, name: str) -> float:
    """``value`` as a float, or an :class:`InputError` naming ``name`` (NaN refused)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if np.isnan(number):
        raise InputError(f"{name} must be a number, got NaN")
    return number


def scaled_weights(w: np.ndarray, what: str = "sample_weight") -> np.ndarray:
    """Finite non-negative weights divided by their mean, ``w / mean(w)`` (via the maximum, so
    1e308 does not overflow): a fit is the same for weights multiplied by any constant, and
    thresholds meet counts of the size of the row count whatever the user's scale."""
    top = float(np.max(w)) if w.size else 0.0
    if not top > 0.0:
        raise InputError(f"{what} sums to zero: at least one needs a positive weight")
    w = w / top
    return w / w.mean()


def check_sample_weight(sample_weight: Any, X: np.ndarray) -> np.ndarray:
    """Non-negative finite weights of length n_samples, not all zero, scaled to mean one
    (:func:`scaled_weights`; float64).  No weights: ones, already of mean one (one pass, not
    five: an out-of-core fit checks every piece it reads)."""
    if sample_weight is None:
        return np.ones(X.shape[0])
    sw = sample_weight = real_array(sample_weight, "sample_weight")
    if sw.ndim == 1 and sw.shape[0] == X.shape[0] and not np.all(np.isfinite(sw)):
        bad = np.flatnonzero(~np.isfinite(sw))
        raise InputError(f"sample_weight contains NaN or inf at rows {_list(bad)}")
    w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    return scaled_weights(np.asarray(w, dtype=np.float64))


def weighted_column_mean(X: np.ndarray, w: np.ndarray, rows: int = 65536) -> np.ndarray:
    """``Σ_n w_n x_n / Σ_n w_n`` in float64, a chunk at a time (no float64 copy of ``X``).

    einsum, not BLAS: as fast here, and it leaves no OpenBLAS threads spinning into the fit's
    first E-steps (see :func:`emkit.engine.backend.blas_on_one_thread`)."""
    total = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], rows):
        chunk = X[start : start + rows].astype(np.float64, copy=False)
        total += np.einsum("n,nd->d", w[start : start + rows], chunk)
    return total / w.sum()


def check_settings(estimator: Any, bounds: tuple[tuple[str, float, bool], ...]) -> None:
    """Each ``(name, low, integral)``: the attribute is a real number ``>= low`` (and whole if
    ``integral``), else a ``ValueError`` naming it."""
    for name, low, integral in bounds:
        value = getattr(estimator, name)
        valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
        valid = valid and math.isfinite(value) and value >= low
        valid = valid and (not integral or float(value).is_integer())
        if not valid:
            kind = "an integer" if integral else "a finite number"
            raise InputError(f"{name} must be {kind} >= {low}, got {value!r}")


# --- parameters: user starts and loaded model files share these checks -------------------------
def check_finite(arr: np.ndarray, what: str) -> None:
    """``InputError`` naming ``what`` and the first entry that is NaN or infinite."""
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{what} contains NaN or inf (at index {where}, {int(bad.sum())} entries in all)"
        )


def check_positive(arr: np.ndarray, what: str) -> None:
    """``InputError`` unless every entry is finite and > 0."""
    check_finite(arr, what)
    bad = ~(arr > 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{what} must be positive (component {where[0]}), got {arr[where].item()!r} at "
            f"index {where}" if where else f"{what} must be positive, got {arr.item()!r}"
        )


def check_weights(weights: Any, n_components: int, what: str, atol: float = 1e-6) -> np.ndarray:
    """Mixture weights: ``n_components`` positive numbers summing to one (float64)."""
    K = int(n_components)
    w = real_array(weights, what)
    if w.shape != (K,):
        raise InputError(f"{what} must have shape ({K},), {K} finite numbers, got {w.shape}")
    w = np.asarray(w, dtype=np.float64)
    check_finite(w, what)
    if np.any(w <= 0) or not abs(w.sum() - 1.0) <= atol:
        raise InputError(
            f"{what} must be non-negative and sum to 1, every component with a positive "
            f"weight; got {w} (sum {float(w.sum()):.10g})"
        )
    return w


def check_spd(matrices: np.ndarray, what: str, shared: bool = False) -> None:
    """Symmetric positive definite ``(D, D)`` matrices (``shared``: one, else a stack)."""
    check_finite(matrices, what)
    stack = matrices[None] if shared else matrices
    for k, matrix in enumerate(stack):
        where = "" if shared else f" (component {k})"
        if not np.allclose(matrix, matrix.T):
            raise InputError(f"{what} must be symmetric{where}")
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            raise InputError(f"{what} must be positive definite{where}") from None
