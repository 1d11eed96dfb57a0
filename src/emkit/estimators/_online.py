"""Online EM for every estimator: ``partial_fit`` (one step per call) and ``fit_stream`` (one
pass over an iterable of batches), both through :func:`emkit.engine.online.run_online`.

An estimator provides ``_fit_inputs(X, reset=..., model=..., **arguments) -> (model, data)``
(the checks ``fit`` makes; with ``model`` given, only the data are checked and encoded for it),
``_start(model, data, rng)``, ``_set_fitted`` and ``_set_final_stats`` (:class:`EMEstimator`).
The running statistics between ``partial_fit`` calls are one immutable value,
``(model, OnlineState)``, replaced by each call; ``fit`` clears it, and a model file does not
hold it, so ``partial_fit`` after ``fit`` or ``load`` starts a new average at the fitted
parameters (its first step is a batch EM step on that batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import numpy as np
from sklearn.utils.validation import _num_samples

from emkit._validation import InputError
from emkit.engine.dask_source import is_dask_collection
from emkit.engine.loop import ProgressCallback
from emkit.engine.online import (
    DEFAULT_KAPPA,
    DEFAULT_T0,
    OnlineMonitor,
    OnlineState,
    StepSizes,
    run_online,
)
from emkit.engine.sources import is_table_source

ONLINE_WINDOW = 10  # batches per window of the convergence rule (OnlineMonitor)


def first_and_rest(batches: Iterable[Any]) -> tuple[Any, Iterator[Any]]:
    """The first batch of a stream and an iterator of the others (an error if there is none)."""
    items = iter(batches)
    first = next(items, None)
    if first is None:
        raise InputError("fit_stream got no batches: give an iterable of arrays")
    return first, items


class OnlineFitting:
    """``partial_fit`` / ``fit_stream`` over an estimator's ``_fit_inputs``."""

    def partial_fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        t0: float = DEFAULT_T0,
        kappa: float = DEFAULT_KAPPA,
        n_rows: float | None = None,
    ) -> Any:
        """One online EM step on the batch ``X``: its statistics at the current parameters
        join the running average with step ``ρ_t = (t + t0)^−κ`` (``ρ_0 = 1``), then one
        M-step (:mod:`emkit.engine.online`).  ``n_rows``: the weight of all the data, if known
        (the M-step's scale; default the weight seen so far).  The first call starts from
        the estimator's init on this batch (or its user start)."""
        return self._online({"X": X, "sample_weight": sample_weight}, t0, kappa, n_rows)

    def fit_stream(
        self,
        batches: Iterable[Any],
        *,
        t0: float = DEFAULT_T0,
        kappa: float = DEFAULT_KAPPA,
        n_rows: float | None = None,
        stop_early: bool = False,
        callback: ProgressCallback | None = None,
    ) -> Any:
        """One online pass over ``batches`` (arrays or DataFrames, or ``(X, sample_weight)``
        pairs; for HMMs ``(X, lengths)``; or an out-of-core source, a step per piece), one step
        per batch; the start comes from the first
        batch (its init or the user start; the fitted model with ``warm_start``).
        ``converged_`` says whether the batches' mean log-likelihoods have settled
        (:class:`~emkit.engine.online.OnlineMonitor` with ``tol``, windows of
        ``ONLINE_WINDOW`` batches); ``stop_early=True`` ends the pass there."""
        sizes = StepSizes(t0, kappa)
        warm = self._continues()
        if is_dask_collection(batches) or is_table_source(batches):  # the model as fit builds it
            model, checked = self._fit_data(batches, reset=not warm)
            stream = self._counted(checked.counted_pieces())  # then one step per piece
            data = next(stream)
        else:
            first, items = first_and_rest(self._stream_arguments(item) for item in batches)
            model, data = self._batch(first, reset=not warm, first=True)
            stream = (self._batch(item, reset=False, model=model)[1] for item in items)
        params = self._get_fitted_params() if warm else self._start(model, data, self._rng())
        return self._run_online(
            model, OnlineState(params), chain([data], stream), sizes, n_rows, callback,
            stop_early,
        )

    def _counted(self, pieces: Iterator[tuple[int, Any]]) -> Iterator[Any]:
        """The checked pieces of a source, their dropped rows counted (``_left_out``)."""
        for i, (given, data) in enumerate(pieces):
            self._left_out(given, data, i == 0)
            yield data

    # --- shared -------------------------------------------------------------------------------
    def _online(
        self, arguments: dict[str, Any], t0: float, kappa: float, n_rows: float | None
    ) -> Any:
        sizes = StepSizes(t0, kappa)
        fitted = hasattr(self, "converged_")
        running = self.__dict__.get("_online_fit") if fitted else None
        if running is not None:
            model, state = running
            data = self._batch(arguments, reset=False, model=model)[1]
        else:
            model, data = self._batch(arguments, reset=not fitted, first=True)
            params = self._get_fitted_params() if fitted else self._start(model, data, self._rng())
            state = OnlineState(params)
        return self._run_online(model, state, iter([data]), sizes, n_rows, None, False)

    def _run_online(
        self,
        model: Any,
        state: OnlineState,
        stream: Iterator[Any],
        sizes: StepSizes,
        n_rows: float | None,
        callback: ProgressCallback | None,
        stop_early: bool,
    ) -> Any:
        if n_rows is not None and not (np.isfinite(n_rows) and n_rows > 0):
            raise InputError(f"n_rows must be a positive number (the data's weight), got {n_rows}")
        config = self._config()
        monitor = OnlineMonitor(config.tol, ONLINE_WINDOW) if config.monitor.stops_early else None
        state, converged = run_online(
            model, state, stream, config, sizes,
            scale=n_rows, monitor=monitor, stop_early=stop_early, callback=callback,
        )
        assert state.average is not None  # at least one step was taken
        self._set_fitted(state.params)
        self.converged_ = bool(converged)
        self.n_iter_ = int(state.steps)
        self.n_estep_ = int(state.steps)
        # the running average of the batches' mean log-likelihoods (each at the parameters
        # before the step that learnt from it)
        self.lower_bound_ = float(state.average.loglik / state.average.weight)
        self.history_ = np.asarray(state.history)
        self.restart_objectives_ = np.array([self.lower_bound_])
        self.best_restart_ = 0
        self._set_final_stats(state.average * state.weight_seen)
        self._online_fit = (model, state)
        return self

    def _batch(
        self, arguments: dict[str, Any], *, reset: bool, model: Any = None, first: bool = False
    ) -> tuple[Any, Any]:
        """``(model, data)`` of one online batch (``_fit_inputs``), its dropped rows counted."""
        model, data = self._fit_inputs(reset=reset, model=model, **arguments)
        self._left_out(_num_samples(arguments["X"]), data, first)
        return model, data

    def _stream_arguments(self, item: Any) -> dict[str, Any]:
        """``fit`` arguments of one item of a stream: ``X``, or ``(X, sample_weight)``."""
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InputError(
                    f"a batch of fit_stream is an array or a pair (X, sample_weight), got a "
                    f"tuple of {len(item)}"
                )
            return {"X": item[0], "sample_weight": item[1]}
        return {"X": item}
