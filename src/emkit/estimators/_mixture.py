"""Inference shared by every fitted mixture estimator: densities, labels, criteria, sampling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from emkit._validation import InputError, check_finite, check_sample_weight, real_number
from emkit.criteria import mixture_criteria
from emkit.estimators._base import fitted_array
from emkit.models.gaussian_mixture import log_softmax_rows

PREDICT_ROWS = 65536
QUANTILE_LEVELS = 1001  # probabilities 0, 0.001, …, 1 of the training log-density table


class MixtureInference:
    """``predict``, ``predict_proba``, ``score_samples``, ``score``, ``bic``, ``aic``, ``icl``,
    and anomaly detection (``outlier_scores``, ``outlier_threshold``, ``detect_outliers``).

    Subclasses provide ``_check_predict_X(X)``, ``_fitted_model()`` (an engine model with
    ``component_log_prob``), ``_get_fitted_params()``, ``n_parameters()`` and
    ``_sample_component(rng, k, n)``.  After every fit (this class wraps ``_run_engine``) the
    weighted quantiles of the training rows' log-densities are kept in
    ``log_density_quantiles_`` (``QUANTILE_LEVELS`` values, so model files stay small).
    """

    def _run_engine(self, model: Any, data: Any, callback: Any = None) -> Any:
        result = super()._run_engine(model, data, callback)  # type: ignore[misc]
        self._store_log_density_quantiles(data.X, data.weights)
        return result

    def _log_resp_chunks(self, X: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self._check_fitted()
        yield from self._log_resp_chunks_of(self._check_predict_X(X))

    def _log_resp_chunks_of(self, X: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Log-responsibilities and row log-densities of validated (encoded) rows, by chunks."""
        model, params = self._fitted_model(), self._get_fitted_params()
        for start in range(0, X.shape[0], PREDICT_ROWS):
            logp = model.component_log_prob(params, X[start : start + PREDICT_ROWS])
            yield log_softmax_rows(logp)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density ``log p(x_n)`` of every row."""
        parts = [row_ll for _, row_ll in self._log_resp_chunks(X)]
        return np.concatenate(parts) if parts else np.empty(0)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean (weighted) log-density per row."""
        ll = self.score_samples(X)
        if sample_weight is None:
            return float(ll.mean())
        return float(np.average(ll, weights=check_sample_weight(sample_weight, ll[:, None])))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior responsibilities ``p(k | x_n)``, shape ``(n, K)``."""
        parts = [np.exp(lr) for lr, _ in self._log_resp_chunks(X)]
        return np.concatenate(parts) if parts else np.empty((0, len(self.weights_)))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of every row."""
        parts = [lr.argmax(axis=1) for lr, _ in self._log_resp_chunks(X)]
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
    def _store_log_density_quantiles(self, X: np.ndarray, weights: np.ndarray) -> None:
        """Weighted quantiles of the training log-densities at ``QUANTILE_LEVELS`` levels."""
        parts = [row_ll for _, row_ll in self._log_resp_chunks_of(X)]
        ll = np.concatenate(parts).astype(np.float64, copy=False)
        self.log_density_quantiles_ = weighted_quantiles(
            ll, np.asarray(weights, dtype=np.float64), np.linspace(0.0, 1.0, QUANTILE_LEVELS)
        )

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


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of ``values`` with ``weights`` at probabilities ``levels``.

    The sorted values sit at the midpoints of their cumulative weights (Hazen's plotting
    positions, the weighted form of numpy's ``method="hazen"``), linearly interpolated between;
    levels below the first or above the last midpoint give the minimum or maximum.  Rows with
    zero weight are left out.
    """
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        raise ValueError("no rows with positive weight")
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    positions = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(levels, positions, v)
