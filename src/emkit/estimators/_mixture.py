"""Inference shared by every fitted mixture estimator: densities, labels, criteria, sampling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from emkit.models.gaussian_mixture import log_softmax_rows

PREDICT_ROWS = 65536


class MixtureInference:
    """``predict``, ``predict_proba``, ``score_samples``, ``score``, ``bic``, ``aic``, ``icl``.

    Subclasses provide ``_check_predict_X(X)``, ``_fitted_model()`` (an engine model with
    ``component_log_prob``), ``_get_fitted_params()``, ``n_parameters()`` and
    ``_sample_component(rng, k, n)``.
    """

    def _log_resp_chunks(self, X: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self._check_fitted()
        X = self._check_predict_X(X)
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
        return float(np.average(ll, weights=np.asarray(sample_weight, dtype=np.float64)))

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

    # --- criteria (scikit-learn's sign: lower is better) --------------------------------------
    def bic(self, X: Any) -> float:
        """Bayesian information criterion ``−2ℓ + p·ln n`` (lower is better, scikit-learn's sign;
        mclust reports ``2ℓ − p·ln n``, higher better)."""
        n = np.shape(X)[0]
        return float(-2.0 * self.score(X) * n + self.n_parameters() * np.log(n))

    def aic(self, X: Any) -> float:
        """Akaike information criterion ``−2ℓ + 2p`` (lower is better)."""
        n = np.shape(X)[0]
        return float(-2.0 * self.score(X) * n + 2.0 * self.n_parameters())

    def icl(self, X: Any) -> float:
        """Integrated completed likelihood ``BIC − 2 Σ_n log r_n,ẑ_n`` (Biernacki et al. 2000):
        BIC plus twice the entropy of the hard classification (lower is better)."""
        penalty = 0.0
        for log_resp, _ in self._log_resp_chunks(X):
            penalty -= float(log_resp.max(axis=1).sum())
        return self.bic(X) + 2.0 * penalty
