"""Inference shared by every fitted mixture estimator: densities, labels, criteria, sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from emkit._validation import InputError, check_finite, check_sample_weight, real_number
from emkit.criteria import mixture_criteria
from emkit.engine import EMConfig
from emkit.engine.backend import LocalThreads, map_row_chunks
from emkit.engine.loop import chunk_rows
from emkit.engine.sketch import sketch_quantiles
from emkit.estimators._base import fitted_array
from emkit.models.learn import MixtureLearn

QUANTILE_LEVELS = 1001  # probabilities 0, 0.001, …, 1 of the training log-density table


class MixtureInference:
    """``predict``, ``predict_proba``, ``score_samples``, ``score``, ``bic``, ``aic``, ``icl``,
    and anomaly detection (``outlier_scores``, ``outlier_threshold``, ``detect_outliers``).

    Subclasses provide ``_check_predict_X(X)``, ``_fitted_model()`` (a
    :class:`~emkit.models.mixture.FamilyMixture`), ``_get_fitted_params()``,
    ``n_parameters()`` and ``_sample_component(rng, k, n)``.  After every fit
    (``_set_final_stats``) the weighted quantiles of the training rows' log-densities, read from
    the last E-step's sketch (:mod:`emkit.engine.sketch`: within ``(1 + |ℓ|)/255`` of the exact
    ones), are kept in ``log_density_quantiles_`` (``QUANTILE_LEVELS`` values, so model files
    stay small).
    """

    # --- held parameters (``learn``) ------------------------------------------------------------
    def _learn(self) -> MixtureLearn:
        """``learn`` checked: None (estimate everything) or a :class:`MixtureLearn`."""
        learn = self.learn
        if learn is None:
            return MixtureLearn()
        if not isinstance(learn, MixtureLearn):
            raise InputError(
                "learn must be None or an emkit.MixtureLearn(weights=..., components=...), "
                f"got {learn!r}"
            )
        return learn

    def _params_to_json(self, params: dict[str, Any]) -> dict[str, Any]:
        out = dict(params)
        if isinstance(out.get("learn"), MixtureLearn):
            out["learn"] = out["learn"].to_json()
        return out

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        out = dict(params)
        if out.get("learn") is not None:
            out["learn"] = MixtureLearn.from_json(out["learn"])
        return out

    def n_parameters(self) -> int:
        """Free parameters EM estimates: ``K − 1`` weights and the components', less those
        ``learn`` holds (BIC's count)."""
        self._check_fitted()
        return self._fitted_model().n_free_parameters(self._get_fitted_params())

    def _set_final_stats(self, stats: Any) -> None:
        levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
        # the last E-step's sketch: log-densities under the returned parameters, no extra pass
        # (after online EM: the running average of the batches' sketches)
        self.log_density_quantiles_ = sketch_quantiles(stats.log_densities, levels)

    def _map_chunks(self, X: np.ndarray, fn: Callable[[Any, Any, np.ndarray], Any]) -> list:
        """``fn(model, prepared, rows)`` of every chunk of validated (encoded) rows, in order:
        the fitted model prepared once, the chunks sized by the engine's memory budget and run
        on its backend (the E-step's fused, threaded kernels)."""
        model = self._fitted_model()
        params = self._get_fitted_params()
        prepared = model.prepare(params)
        rows = chunk_rows(model, params, EMConfig())
        return map_row_chunks(lambda part: fn(model, prepared, part), X, rows, LocalThreads())

    def _rows(self, X: Any, fn: Callable[[np.ndarray, np.ndarray], Any]) -> list:
        """``fn(log_resp, row_ll)`` of every chunk of the rows of user input ``X``."""
        self._check_fitted()

        def chunk(model: Any, prepared: Any, rows: np.ndarray) -> Any:
            return fn(*model.log_resp(prepared, rows))

        return self._map_chunks(self._check_predict_X(X), chunk)

    def _log_resp_chunks(self, X: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        return self._rows(X, lambda lr, ll: (lr, ll))

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density ``log p(x_n)`` of every row."""
        parts = self._rows(X, lambda lr, ll: ll)
        return np.concatenate(parts) if parts else np.empty(0)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean (weighted) log-density per row."""
        ll = self.score_samples(X)
        if sample_weight is None:
            return float(ll.mean())
        return float(np.average(ll, weights=check_sample_weight(sample_weight, ll[:, None])))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior responsibilities ``p(k | x_n)``, shape ``(n, K)``."""
        parts = self._rows(X, lambda lr, ll: np.exp(lr, out=lr))
        return np.concatenate(parts) if parts else np.empty((0, len(self.weights_)))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of every row."""
        self._check_fitted()
        parts = self._map_chunks(
            self._check_predict_X(X), lambda model, prepared, rows: model.labels(prepared, rows)
        )
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """Fit, then label every row with its most probable component."""
        return self.fit(X, y, sample_weight=sample_weight).predict(X)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` rows and their component labels from the fitted mixture."""
        self._check_fitted()
        if not (isinstance(n_samples, (int, np.integer)) and n_samples >= 1):
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        counts = rng.multinomial(n_samples, self.weights_)
        X = np.vstack([self._sample_component(rng, k, int(c)) for k, c in enumerate(counts)])
        return X, np.repeat(np.arange(counts.size), counts)

    # --- criteria (scikit-learn's sign: lower is better; emkit.criteria) ---------------------
    def bic(self, X: Any, sample_weight: Any = None) -> float:
        """Bayesian information criterion ``−2ℓ + p·ln n`` (lower is better, scikit-learn's sign;
        mclust reports ``2ℓ − p·ln n``, higher better); frequency weights: ``n = Σ w``."""
        return mixture_criteria(self, X, self._criteria_weights(X, sample_weight))["bic"]

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion ``−2ℓ + 2p`` (lower is better)."""
        return mixture_criteria(self, X, self._criteria_weights(X, sample_weight))["aic"]

    def icl(self, X: Any, sample_weight: Any = None) -> float:
        """Integrated completed likelihood ``BIC − 2 Σ_n w_n log r_n,ẑ_n`` (Biernacki et al.
        2000): BIC plus twice the entropy of the hard classification (lower is better)."""
        return mixture_criteria(self, X, self._criteria_weights(X, sample_weight))["icl"]

    @staticmethod
    def _criteria_weights(X: Any, sample_weight: Any) -> np.ndarray | None:
        """Frequency weights as given (not rescaled: ``n = Σ w`` counts rows), checked."""
        if sample_weight is None:
            return None
        check_sample_weight(sample_weight, X)  # its errors; the mean-one copy is not used
        return np.asarray(sample_weight, dtype=np.float64)

    # --- anomaly detection --------------------------------------------------------------------
    def _check_quantile_table(self) -> None:
        """A fitted (or loaded) ``log_density_quantiles_``, if any: finite and non-decreasing."""
        if self.__dict__.get("log_density_quantiles_") is None:
            return  # an older model: outlier_threshold says so
        table = fitted_array(self, "log_density_quantiles_", 1)
        check_finite(table, "log_density_quantiles_")
        if table.size < 2 or np.any(np.diff(table) < 0):
            raise InputError("log_density_quantiles_ must be at least 2 non-decreasing values")

    def outlier_scores(self, X: Any) -> np.ndarray:
        """Anomaly score of every row: ``−log p(x_n)`` (higher is more anomalous)."""
        return -self.score_samples(X)

    def outlier_threshold(self, contamination: float = 0.01) -> float:
        """The log-density below which a fraction ``contamination`` of the (weighted) training
        rows fall: rows with ``log p(x) <`` this are flagged by :meth:`detect_outliers`."""
        self._check_fitted()
        contamination = check_contamination(contamination)
        table = getattr(self, "log_density_quantiles_", None)
        if table is None:
            raise ValueError(
                "this model has no table of training log-densities (fitted by an older emkit?); "
                "refit it, or pass threshold= (a log-density) to detect_outliers"
            )
        table = np.asarray(table, dtype=np.float64)
        levels = np.linspace(0.0, 1.0, table.size)
        return float(np.interp(contamination, levels, table))

    def detect_outliers(
        self, X: Any, contamination: float = 0.01, threshold: float | None = None
    ) -> np.ndarray:
        """Boolean mask of the rows whose log-density is below ``threshold`` (a log-density),
        by default :meth:`outlier_threshold` ``(contamination)`` from the training data."""
        if threshold is None:
            cut = self.outlier_threshold(contamination)
        else:
            cut = real_number(threshold, "threshold (a log-density)")
        return self.score_samples(X) < cut


def check_contamination(contamination: Any) -> float:
    """``contamination`` as a float in (0, 0.5], else an :class:`InputError`."""
    value = real_number(contamination, "contamination")
    if not 0.0 < value <= 0.5:
        raise InputError(f"contamination must be in (0, 0.5], got {contamination!r}")
    return value
