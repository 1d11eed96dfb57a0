"""Component families of finite mixtures: K parameter sets, log-densities, additive sums.

A family is immutable configuration.  Its parameters are immutable values holding all K
components (arrays with a leading K axis).  The mixture model (``emkit.models.mixture``) owns
the weights and responsibilities; a family only answers:

- ``log_prob(params, X)``: ``log f(x_n | θ_k)`` as an ``(n, K)`` array;
- ``accumulate(params, X, R)``: additive sums (a tuple of float64 arrays) given weighted
  responsibilities ``R`` (``R[n, k] = w_n r_nk``); ``params`` is ``None`` at initialisation;
- ``m_step(sums, nk, params)``: the maximiser of ``Σ_n R_nk log f(x_n | θ_k)`` (plus prior).

Families with ``handles_missing = True`` accept NaN cells in ``log_prob`` (the density of the
observed cells) and ``accumulate`` (missing cells add their expected statistics under the
current parameters); see :mod:`emkit.families.missing_cells`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from emkit._validation import InputError, check_finite, check_positive, real_array
from emkit.families._mixture_kernels import normalize_rows

EPS = 10.0 * np.finfo(np.float64).eps


class Family(ABC):
    """A parametric family for mixture components."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def config(self) -> dict[str, Any]:
        """JSON-safe description from which :func:`emkit.families.make_family` rebuilds it."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> Family:
        return cls(**options)

    # --- configuration and input checks -------------------------------------------------------
    def configure(self, X: Any) -> Family:
        """A copy fitted to the training input's layout (e.g. the categories of each column)."""
        return self

    def encode(
        self, X: Any, names: list[str] | None = None, *, allow_missing: bool = False
    ) -> np.ndarray:
        """The float matrix the family computes on, from validated 2-D input (default: as is).

        Families of non-numeric data (categories) map values to codes here and name unseen
        values, with their column, in the error; missing values (None, NaN) raise unless
        ``allow_missing``, which codes them as NaN.
        """
        return np.asarray(X, dtype=np.float64)

    numeric_input: bool = True  # False: strings allowed (encode maps them)
    handles_missing: bool = False  # True: NaN cells are marginalised (module doc)
    mixture_component: ClassVar[bool] = True  # False: an HMM emission only (see MixtureModel)
    positive_only: bool = False  # True: the data must be non-negative (counts, …)
    discrete: bool = False  # True: a probability mass function (counts, categories)

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

    # --- one E-step: what a batch needs from the parameters, and a mixture's fused chunk -------
    def prepare(self, params: Any) -> Any:
        """What :meth:`log_prob` and :meth:`accumulate` need from ``params``, computed once per
        E-step and passed to them in place of ``params`` (default: ``params`` itself)."""
        return params

    def mixture_chunk(
        self, prepared: Any, log_weights: np.ndarray, X: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, tuple]:
        """A mixture's E-step on one chunk: ``(row log-likelihoods, n_k, sums)``.

        ``log p_nk = log π_k + log f(x_n | θ_k)``, ``R = w·softmax_k(log p)``, ``n_k = Σ_n R_nk``
        and ``accumulate(R)``; families with fused kernels do all three in one pass.
        """
        logp = np.ascontiguousarray(self.log_prob(prepared, X), dtype=np.float64)
        logp += log_weights
        row_ll = np.empty(X.shape[0])
        normalize_rows(logp, w, row_ll)  # logp becomes R = w·r
        return row_ll, logp.sum(axis=0), self.accumulate(prepared, X, logp)

    def mixture_log_joint(
        self, prepared: Any, log_weights: np.ndarray, X: np.ndarray
    ) -> np.ndarray:
        """``log π_k + log f(x_n | θ_k)``, ``(n, K)`` (inference; families with fused kernels
        override it)."""
        logp = np.ascontiguousarray(self.log_prob(prepared, X), dtype=np.float64)
        logp += log_weights
        return logp

    def reseed(
        self, params: Any, weights: np.ndarray, dead: np.ndarray
    ) -> tuple[np.ndarray, Any, str]:
        """Components ``dead`` lost all their weight: finite parameters for them, the new
        weights, and what was done (for the warning).  Default: a copy of the heaviest
        component with the floor weight (its expected log-likelihood term is zero, so EM
        stays monotone)."""
        index = np.arange(weights.size)
        index[dead] = int(np.argmax(weights))
        return weights, self.take(params, index), "kept as copies of the heaviest component"

    # --- parameter groups held fixed (an HMM's Learn(emissions=(...))) -------------------------
    parameter_groups: ClassVar[tuple[str, ...]] = ()  # groups that can be estimated separately

    def m_step_holding(self, sums: tuple, nk: np.ndarray, params: Any, held: frozenset) -> Any:
        """The maximiser over the groups not in ``held``, those in ``held`` kept at ``params``."""
        raise NotImplementedError(f"{type(self).__name__} has no separate parameter groups")

    def hold(self, new: Any, old: Any, held: frozenset) -> Any:
        """``new`` with the groups in ``held`` taken from ``old``."""
        raise NotImplementedError(f"{type(self).__name__} has no separate parameter groups")

    def n_held_parameters(self, params: Any, held: frozenset) -> int:
        """Free parameters in the groups ``held`` (not estimated, so not counted by BIC)."""
        return 0

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

    def restore(self, arrays: Mapping[str, np.ndarray]) -> Any:
        """The parameters whose :meth:`describe` gave ``arrays`` (exactly: model files rebuild a
        fitted mixture from its config and these arrays); ``arrays`` may hold other names too."""
        raise NotImplementedError(f"{type(self).__name__} cannot rebuild parameters from arrays")

    def row_bytes(self, K: int, D: int) -> int:
        return 8 * K * (D + 2)

    # --- the domain of the parameters: user starts and loaded model files ---------------------
    def check_configuration(self, n_features: int) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`InputError` unless the family is configured for ``n_features`` input
        columns (checked before :meth:`restore` reads arrays by that layout)."""

    @abstractmethod
    def check_params(
        self, params: Any, n_components: int, n_features: int, label: Label = str
    ) -> None:
        """Raise :class:`InputError` (a ``ValueError``) unless ``params`` are parameters of
        ``n_components`` components on ``n_features`` input columns, in the family's domain
        (shapes, real finite values, positivity, probabilities); ``label(field)`` names a field
        in the message (``"rates_"`` for a model file, ``"components_init['rates']"``)."""


Label = Callable[[str], str]


def expect_params(params: Any, kind: type, family: Family) -> None:
    """``InputError`` unless ``params`` is the family's parameter type ``kind``."""
    if not isinstance(params, kind):
        raise InputError(
            f"the {family.name!r} family's parameters are a {kind.__name__}, "
            f"got {type(params).__name__}"
        )


def check_parameter(
    value: Any, what: str, shape: tuple[int, ...], *, positive: bool = False
) -> np.ndarray:
    """A parameter array of ``shape``: real, finite, and ``> 0`` when ``positive``."""
    arr = real_array(value, what, shape)
    (check_positive if positive else check_finite)(arr, what)
    return arr


def check_probability_rows(
    value: Any, what: str, shape: tuple[int, ...], bounds: np.ndarray | None = None,
    atol: float = 1e-6,
) -> None:
    """Positive probabilities of ``shape`` whose rows (or the column blocks ``bounds`` of each
    row) sum to one."""
    arr = check_parameter(value, what, shape, positive=True)
    bounds = np.array([0, arr.shape[-1]]) if bounds is None else bounds
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        sums = arr[..., a:b].sum(axis=-1)
        if np.any(np.abs(sums - 1.0) > atol):
            row = tuple(int(i) for i in np.argwhere(np.abs(sums - 1.0) > atol)[0])
            raise InputError(
                f"{what} must sum to 1 over each distribution; row {row} sums to "
                f"{float(sums[row])!r}"
            )


# --- helpers shared by the families ---------------------------------------------------------------
def column_label(j: int, names: list[str] | None) -> str:
    return f"{names[j]!r}" if names else f"{j}"


def reject_values(X: np.ndarray, bad: np.ndarray, names: list[str] | None, what: str) -> None:
    """Raise ``what`` naming the first row, column and value where ``bad`` holds; NaN cells are
    missing values, which the caller validates (families that marginalise them accept them)."""
    if X.dtype.kind == "f":
        bad = bad & ~np.isnan(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        value = X[i, j].item() if isinstance(X[i, j], np.generic) else X[i, j]  # -1.0, not np.…
        raise InputError(
            f"{what}: column {column_label(j, names)} holds {value!r} at row {i} "
            f"({int(bad.sum())} such value(s) in all)"
        )


def floored_counts(nk: np.ndarray) -> np.ndarray:
    """``max(n_k, 10ε·Σ n)`` (1 where every count is zero): a floor relative to the total, so
    weights scaled by any constant give the same fit."""
    n = np.maximum(nk, EPS * np.sum(nk))
    return np.where(n > 0.0, n, 1.0)


def safe_divide(num: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """``num / nk`` along the component axis, with empty components kept finite (the floor of
    :func:`floored_counts`, relative to the total weight)."""
    return num / floored_counts(nk).reshape((-1,) + (1,) * (num.ndim - 1))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    return np.log(p) - np.log1p(-p)


def expit(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def check_origin(origin: Any, n_features: int, family: Family) -> None:
    """The family's fixed origin (set by ``configure``), if any: ``n_features`` finite values."""
    if origin is None:
        return
    arr = real_array(origin, f"the {family.name!r} family's origin")
    if arr.shape != (n_features,):
        raise InputError(
            f"the {family.name!r} family was configured for {arr.size} features, "
            f"the model has {n_features}"
        )
    check_finite(arr, f"the {family.name!r} family's origin")
