"""What every emkit estimator shares: running the engine, restarts, warm start, history."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from emkit._validation import InputError, check_finite, real_array
from emkit.engine import EMConfig, FitResult, NumericalError, Progress, ProgressCallback, fit
from emkit.engine.dask_source import DaskData, is_dask_collection, scattered
from emkit.engine.data import SequenceData
from emkit.engine.protocol import INIT_SAMPLE_ROWS, ArrayData
from emkit.engine.sources import CheckedSource, is_table_source
from emkit.estimators._online import OnlineFitting
from emkit.families.missing_cells import is_missing

# where the E-steps of an in-memory fit run: here (threads), or on the workers of the active
# distributed.Client (the rows are sent there once)
BACKENDS = ("local", "dask")


class SavedEstimator:
    """What :func:`emkit.save` and :func:`emkit.load` ask of an estimator class (declared here,
    never guessed): JSON forms of constructor arguments that are objects, and the check of a
    fitted state read back from a file."""

    def check_fitted_state(self) -> None:
        """Raise a ``ValueError`` naming the attribute unless the fitted attributes form a valid
        model, by the checks a user start gets (shapes, real finite values, simplexes, positive
        definiteness, the family's parameter domain); attributes derived from the parameters
        (covariances from precision factors, …) are rebuilt from them."""
        raise NotImplementedError(f"{type(self).__name__} cannot check a loaded fitted state")

    def _params_to_json(self, params: dict[str, Any]) -> dict[str, Any]:
        """JSON forms of ``get_params()`` values that are objects (default: as they are)."""
        return params

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`_params_to_json`."""
        return params


def fitted_name(field: str) -> str:
    """The attribute that holds a family's parameter ``field`` (``rates`` → ``rates_``)."""
    return f"{field}_"


def fitted_array(estimator: Any, name: str, ndim: int) -> np.ndarray:
    """The fitted float32/float64 array ``name`` with ``ndim`` axes, else ``InputError``."""
    value = estimator.__dict__.get(name)
    if not isinstance(value, np.ndarray):
        raise InputError(f"the fitted array {name} is missing (got {type(value).__name__})")
    if value.dtype not in (np.float32, np.float64):
        raise InputError(f"{name} must be a float32 or float64 array, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise InputError(f"{name} must have {ndim} axes, got shape {value.shape}")
    return value


def fitted_scalar(estimator: Any, name: str, kind: type, low: float | None = None) -> Any:
    """The fitted ``bool``, ``int`` or ``float`` attribute ``name`` (``>= low``)."""
    value = estimator.__dict__.get(name)
    ok = isinstance(value, bool) if kind is bool else (
        isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    )
    if ok and kind is not bool and (value != value or (low is not None and value < low)):
        ok = False  # NaN, or below the bound
    if not ok:
        bound = "" if low is None else f" >= {low}"
        raise InputError(f"{name} must be {kind.__name__}{bound}, got {value!r}")
    return value


def check_fitted_common(estimator: Any, n_features: int | None = None) -> int:
    """``converged_``, ``n_iter_``, ``n_features_in_`` (equal to ``n_features`` when given) and
    ``feature_names_in_`` (if any); returns ``n_features_in_``."""
    fitted_scalar(estimator, "converged_", bool)
    fitted_scalar(estimator, "n_iter_", int, 0)
    D = fitted_scalar(estimator, "n_features_in_", int, 1)
    if n_features is not None and D != n_features:
        raise InputError(f"n_features_in_ is {D}, but the parameters describe {n_features}")
    _check_fit_record(estimator)
    names = estimator.__dict__.get("feature_names_in_")
    if names is not None:
        ok = isinstance(names, np.ndarray) and names.shape == (D,)
        if not (ok and all(isinstance(n, str) for n in names)):
            raise InputError(f"feature_names_in_ must be {D} column names, got {names!r}")
    return D


def _check_fit_record(estimator: Any) -> None:
    """The record of the fit, where present: ``lower_bound_`` a finite float, ``history_`` and
    ``restart_objectives_`` 1-D finite arrays, ``best_restart_`` an index of the latter."""
    state = estimator.__dict__
    if "lower_bound_" in state:
        fitted_scalar(estimator, "lower_bound_", float)
        if not np.isfinite(state["lower_bound_"]):
            raise InputError(f"lower_bound_ must be finite, got {state['lower_bound_']!r}")
    for name in ("history_", "restart_objectives_"):
        if name in state:
            values = real_array(state[name], name)
            if values.ndim != 1:
                raise InputError(f"{name} must have 1 axis, got shape {values.shape}")
            check_finite(values, name)
    if "best_restart_" in state:
        best = fitted_scalar(estimator, "best_restart_", int, 0)
        runs = state.get("restart_objectives_")
        if runs is not None and best >= len(runs):
            raise InputError(f"best_restart_ is {best}, but there are {len(runs)} restarts")


class EMEstimator(OnlineFitting, SavedEstimator, BaseEstimator):
    """Base of the scikit-learn shells: subclasses build a model and convert parameters.

    Subclasses implement ``_build_model(X, w)``, ``_start_params(model, data, rng)`` (a user start
    or None), ``_set_fitted(params)`` and ``_get_fitted_params()``.  Estimators that take
    ``short_runs`` / ``short_iter`` (emEM starts) pass them to the engine; ``restart_objectives_``
    holds the mean objective (per unit weight, as ``lower_bound_``) reached from every start and
    ``best_restart_`` the index of the winner.
    ``_start_arguments`` names the parameters that give a user start (named in its errors).
    """

    _start_arguments: tuple[str, ...] = ()
    backend: str  # "local" or "dask" (BACKENDS), a constructor parameter of every estimator

    def _config(self) -> EMConfig:
        return EMConfig(
            max_iter=self.max_iter,
            tol=self.tol,
            stopping=self.stopping,
            accelerate=self.accelerate,
        )

    def _run_engine(
        self, model: Any, data: Any, callback: ProgressCallback | None = None
    ) -> FitResult:
        config = self._config()
        rng = self._rng()
        warm = self._continues()
        if warm:
            start, n_init = self._get_fitted_params(), 1
        else:
            start, n_init = self._start_params(model, data, rng), self.n_init
        if callback is not None and not callable(callback):
            raise InputError(
                "callback must be a function f(progress) of an emkit.engine.Progress "
                f"(restart, n_restarts, iteration, mean_objective), got {callback!r}"
            )
        if callback is None and self.verbose:
            callback = self._print_progress
        try:
            result = fit(
                model,
                data,
                config,
                rng=rng,
                n_init=n_init,
                init_params=start,
                callback=callback,
                short_runs=getattr(self, "short_runs", 0),
                short_iter=getattr(self, "short_iter", 5),
            )
        except NumericalError as exc:
            if warm or not exc.from_start:
                raise
            given = [n for n in self._start_arguments if getattr(self, n) is not None]
            raise InputError(
                f"the start given by {', '.join(given)} gives the data a log-likelihood of "
                f"{exc.value} before any iteration (rows with no density under any component, "
                "or parameters too extreme to evaluate): give starting values that cover the "
                "data, or leave them out"
            ) from None
        self._set_fitted(result.params)
        if isinstance(data, CheckedSource) and data.source.named:  # the table's column names
            self.feature_names_in_ = np.asarray(data.source.columns, dtype=object)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.n_estep_ = int(result.n_estep)
        self.lower_bound_ = float(result.mean_objective)
        self.history_ = np.asarray(result.history)
        # per unit weight, as lower_bound_ and history_ (every start sees the same data)
        self.restart_objectives_ = np.asarray(result.restart_objectives) / result.stats.weight
        self.best_restart_ = int(result.best_restart)
        self._set_final_stats(result.stats)
        self.__dict__.pop("_online_fit", None)  # a new fit: partial_fit starts a new average
        if not result.converged and config.max_iter > 0 and config.monitor.stops_early:
            warnings.warn(
                f"EM did not converge in max_iter={config.max_iter} iterations (last change of "
                f"the mean log-likelihood: {np.diff(result.history[-2:]).tolist() or [0.0]}); "
                "increase max_iter or tol, or set accelerate='squarem'",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result

    def _fit_inputs(self, X: Any, *, reset: bool, model: Any = None, **arguments: Any) -> Any:
        """``(model, data)`` for a fit on ``X`` (``arguments``: ``sample_weight``, ``lengths``,
        …), by the checks ``fit`` makes: ``reset`` forgets the fitted columns (a new fit) and
        keeps them otherwise (a warm start, an online step); with ``model`` given only the data
        are checked and encoded, for that model."""
        raise NotImplementedError

    def _continues(self) -> bool:
        """A fit continues the fitted model (``warm_start`` and fitted) instead of starting anew."""
        return bool(self.warm_start) and hasattr(self, "converged_")

    def _fit_data(self, X: Any, *, reset: bool | None = None, **arguments: Any) -> Any:
        """:meth:`_fit_inputs` of an array; for an out-of-core source (:class:`emkit.ParquetData`,
        :class:`emkit.CSVData`, a Dask array or DataFrame) the model is built from its first
        ``INIT_SAMPLE_ROWS`` rows and every piece is checked as ``fit`` checks an array each
        time an E-step reads it (on the Dask workers, for a Dask collection)."""
        if reset is None:
            reset = not self._continues()
        backend = self._backend()
        if is_dask_collection(X):
            X = DaskData(X)
        elif is_table_source(X) and backend == "dask":
            X = DaskData.read(X)
        elif not is_table_source(X):
            if backend == "local":
                return self._fit_inputs(X, reset=reset, **arguments)
            X = scattered(X, arguments.pop("lengths", None))
        given = sorted(name for name, value in arguments.items() if value is not None)
        if given:
            raise InputError(
                f"{', '.join(given)} cannot be given with an out-of-core source or "
                "backend='dask': the rows are read where they are; fit an array (in memory, "
                "backend='local') to weigh rows"
            )
        if X.text_columns and not self._reads_labels():
            labels = [X.columns[j] for j in X.text_columns]
            raise InputError(
                f"{type(self).__name__} reads numbers, but column(s) {labels} of {X.path} hold "
                "labels (strings): choose numeric columns with columns=[...]"
            )
        head = with_every_label(X, X.head(INIT_SAMPLE_ROWS))
        piece_arguments = self._piece_arguments
        head_arguments = piece_arguments(head)  # (refuses a source of the wrong kind)
        try:
            model, _ = self._fit_inputs(head.X, reset=reset, **head_arguments)
        except ValueError as exc:
            raise type(exc)(f"the first {head.n_rows} rows of {X.path}: {exc}") from None

        def check(piece: Any) -> Any:
            return self._fit_inputs(piece.X, reset=False, model=model, **piece_arguments(piece))[1]

        return model, CheckedSource(X, check)

    def _backend(self) -> str:
        backend = self.backend
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        return str(backend)

    def _reads_labels(self) -> bool:
        """Whether the estimator's data may hold labels (strings), not numbers only."""
        return False

    def _piece_arguments(self, piece: Any) -> dict[str, Any]:
        """The ``fit`` arguments besides ``X`` of an in-memory piece of a source: none for rows
        (a model of sequences overrides this)."""
        if isinstance(piece, SequenceData):
            raise InputError(
                f"{type(self).__name__} fits rows, but the source cuts its rows into sequences "
                "(sequence= or lengths=): open the source without them"
            )
        return {}

    def _set_final_stats(self, stats: Any) -> None:
        """Attributes read from the statistics of the returned parameters (default: none)."""

    def _left_out(self, given: int, data: Any, first: bool) -> None:
        """An online batch of ``given`` rows was checked into ``data`` (``first``: the batch
        that starts the fit); estimators that drop rows count them here (default: nothing)."""

    def _rng(self) -> np.random.Generator:
        random_state = check_random_state(self.random_state)
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))

    def _start(self, model: Any, data: Any, rng: np.random.Generator) -> Any:
        """The user start, else the model's init on ``data`` (an online fit's first batch)."""
        start = self._start_params(model, data, rng)
        return model.init(data, rng) if start is None else start

    def _print_progress(self, progress: Progress) -> None:
        runs = progress.n_restarts
        run = f"run {progress.restart + 1}/{runs}  " if runs > 1 else ""
        print(
            f"{run}iteration {progress.iteration:4d}  "
            f"mean log-likelihood {progress.mean_objective:.10g}"
        )

    def _check_fitted(self) -> None:
        check_is_fitted(self, "converged_")


def with_every_label(source: Any, head: Any) -> Any:
    """The rows that build the model from a ``source`` with label columns: its first rows,
    plus a copy of the first row for every label of the whole data they lack (with that label
    in its column; an extra sequence of them, for sources of sequences), so that a family
    configured on them knows the categories an in-memory fit would (one pass over the
    source's label columns).  ``head`` itself when the source has no labels, or lacks none."""
    if not source.text_columns:
        return head
    extra = []
    for j, labels in source.distinct_labels().items():
        known = {v for v in head.X[:, j].tolist() if not is_missing(v)}
        for label in sorted(labels - known, key=repr):  # (the family sorts its categories)
            row = head.X[0].copy()
            row[j] = label
            extra.append(row)
    if not extra:
        return head
    X = np.concatenate([head.X, np.array(extra, dtype=object)])
    if isinstance(head, SequenceData):
        lengths = np.append(head.lengths, len(extra))
        return SequenceData(X, lengths, np.ones(lengths.size))
    return ArrayData.of(X)


# --- families of fitted estimators: in memory after fit, rebuilt from a model file's JSON and
# arrays after load (the family's ``config()`` and its ``describe`` arrays, by ``restore``)
def fitted_family(estimator: Any, cached: str, config: str) -> Any:
    """The configured family kept in ``cached`` by fit, or rebuilt from ``config``."""
    from emkit.families import make_family

    family = estimator.__dict__.get(cached)
    if family is not None:
        return family
    spec = estimator.__dict__.get(config)
    if spec is None:
        raise InputError(f"the fitted family's configuration {config} is missing")
    return make_family(spec)


def fitted_family_params(estimator: Any, cached: str, family: Any) -> Any:
    """The family's parameters kept in ``cached`` by fit, or restored from the estimator's
    fitted arrays (``<name>_`` attributes named after the family's ``describe`` keys)."""
    params = estimator.__dict__.get(cached)
    if params is None:
        arrays = {
            name[:-1]: value
            for name, value in vars(estimator).items()
            if name.endswith("_") and isinstance(value, np.ndarray)
        }
        try:
            params = family.restore(arrays)
        except KeyError as exc:
            raise InputError(
                f"the fitted array {exc.args[0]}_ of the {family.name!r} family is missing"
            ) from None
        except (ValueError, IndexError, TypeError) as exc:
            raise InputError(
                f"the fitted arrays of the {family.name!r} family do not fit together ({exc})"
            ) from None
    return params


def check_family_fitted(estimator: Any, family: Any, cached: str, K: int, D: int) -> Any:
    """The family's fitted parameters (restored from the arrays), checked by the family."""
    family.check_configuration(D)
    params = fitted_family_params(estimator, cached, family)
    family.check_params(params, K, D, fitted_name)
    return params
