"""What every emkit estimator shares: running the engine, restarts, warm start, history."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from emkit._validation import InputError
from emkit.engine import EMConfig, FitResult, ProgressCallback, fit


class EMEstimator(BaseEstimator):
    """Base of the scikit-learn shells: subclasses build a model and convert parameters.

    Subclasses implement ``_build_model(X, w)``, ``_start_params(model, data, rng)`` (a user start
    or None), ``_set_fitted(params)`` and ``_get_fitted_params()``.  Estimators that take
    ``short_runs`` / ``short_iter`` (emEM starts) pass them to the engine; ``restart_objectives_``
    holds the objective reached from every start and ``best_restart_`` the index of the winner.
    """

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
        random_state = check_random_state(self.random_state)
        rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        if warm:
            start, n_init = self._get_fitted_params(), 1
        else:
            start, n_init = self._start_params(model, data, rng), self.n_init
        if callback is not None and not callable(callback):
            raise InputError(
                f"callback must be a function f(iteration, mean_loglik), got {callback!r}"
            )
        if callback is None and self.verbose:
            callback = self._print_progress
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
        self._set_fitted(result.params)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.n_estep_ = int(result.n_estep)
        self.lower_bound_ = float(result.mean_objective)
        self.history_ = np.asarray(result.history)
        self.restart_objectives_ = np.asarray(result.restart_objectives)
        self.best_restart_ = int(result.best_restart)
        if not result.converged and config.max_iter > 0 and config.monitor.stops_early:
            warnings.warn(
                f"EM did not converge in max_iter={config.max_iter} iterations (last change of "
                f"the mean log-likelihood: {np.diff(result.history[-2:]).tolist() or [0.0]}); "
                "increase max_iter or tol, or set accelerate='squarem'",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result

    def _print_progress(self, iteration: int, mean_loglik: float) -> None:
        print(f"iteration {iteration:4d}  mean log-likelihood {mean_loglik:.10g}")

    def _check_fitted(self) -> None:
        check_is_fitted(self, "converged_")


# --- families of fitted estimators: in memory after fit, rebuilt from a model file's JSON and
# arrays after load (the family's ``config()`` and its ``describe`` arrays, by ``restore``)
def fitted_family(estimator: Any, cached: str, config: str) -> Any:
    """The configured family kept in ``cached`` by fit, or rebuilt from ``config``."""
    from emkit.families import make_family

    family = estimator.__dict__.get(cached)
    return family if family is not None else make_family(getattr(estimator, config))


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
        params = family.restore(arrays)
    return params
