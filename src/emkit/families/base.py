"""Component families of finite mixtures: K parameter sets, log-densities, additive sums.

A family is immutable configuration.  Its parameters are immutable values holding all K
components (arrays with a leading K axis).  The mixture model (``emkit.models.mixture``) owns
the weights and responsibilities; a family only answers:

- ``log_prob(params, X)``: ``log f(x_n | θ_k)`` as an ``(n, K)`` array;
- ``accumulate(params, X, R)``: additive sums (a tuple of float64 arrays) given weighted
  responsibilities ``R`` (``R[n, k] = w_n r_nk``); ``params`` is ``None`` at initialisation;
- ``m_step(sums, nk, params)``: the maximiser of ``Σ_n R_nk log f(x_n | θ_k)`` (plus prior).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from emkit._validation import InputError

EPS = 10.0 * np.finfo(np.float64).eps


class Family(ABC):
    """A parametric family for mixture components."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- configuration and input checks -------------------------------------------------------
    def configure(self, X: np.ndarray) -> Family:
        """A copy sized for ``X`` (e.g. categories per column); the default needs nothing."""
        return self

    def check(self, X: np.ndarray, names: list[str] | None = None) -> None:  # noqa: B027
        """Raise :class:`InputError` naming the column and value the family cannot model."""

    def init_features(self, X: np.ndarray) -> np.ndarray:
        """A float matrix on which k-means++ seeds the initial partition."""
        return np.asarray(X, dtype=np.float64)

    # --- the E- and M-step --------------------------------------------------------------------
    @abstractmethod
    def log_prob(self, params: Any, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def accumulate(self, params: Any, X: np.ndarray, R: np.ndarray) -> tuple: ...

    @abstractmethod
    def m_step(self, sums: tuple, nk: np.ndarray, params: Any) -> Any: ...

    def log_prior(self, params: Any) -> float:
        return 0.0

    # --- bookkeeping --------------------------------------------------------------------------
    @abstractmethod
    def n_parameters(self, params: Any) -> int:
        """Free parameters of all K components."""

    @abstractmethod
    def take(self, params: Any, index: np.ndarray) -> Any:
        """Parameters of components ``index`` (reorder, select or copy components)."""

    @abstractmethod
    def sample(self, params: Any, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws (rows) from component ``k``."""

    @abstractmethod
    def flatten(self, params: Any) -> np.ndarray:
        """Unconstrained vector (logs of positive, logits of probabilities) for SQUAREM."""

    @abstractmethod
    def unflatten(self, vector: np.ndarray, like: Any) -> Any: ...

    def describe(self, params: Any) -> dict[str, np.ndarray]:
        """Named arrays for summaries and model files (leading axis: components)."""
        return {}

    def row_bytes(self, K: int, D: int) -> int:
        return 8 * K * (D + 2)


# --- helpers shared by the families ---------------------------------------------------------------
def column_label(j: int, names: list[str] | None) -> str:
    return f"{names[j]!r}" if names else f"{j}"


def reject_values(X: np.ndarray, bad: np.ndarray, names: list[str] | None, what: str) -> None:
    """Raise naming the first row, column and value where ``bad`` holds."""
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"column {column_label(j, names)} holds {X[i, j]!r} at row {i}: {what} "
            f"({int(bad.sum())} such value(s) in all)"
        )


def safe_divide(num: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """``num / nk`` along the component axis, with empty components kept finite."""
    nk = np.maximum(nk, EPS)
    return num / nk.reshape((-1,) + (1,) * (num.ndim - 1))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    return np.log(p) - np.log1p(-p)


def expit(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))
