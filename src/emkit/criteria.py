"""Likelihood criteria for choosing among fitted models, in one place (lower is better,
scikit-learn's sign; mclust reports ``−BIC``).

``BIC = −2ℓ + p·ln n``, ``AIC = −2ℓ + 2p``, ``ICL = BIC + 2E`` with the entropy of the hard
classification ``E = −Σ_n w_n log r_{n,ẑ_n}`` (Biernacki, Celeux & Govaert 2000).  With
frequency weights ``ℓ = Σ w log p(x)`` and ``n = Σ w``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from emkit._validation import InputError

CRITERIA = ("bic", "aic", "icl")

__all__ = ["CRITERIA", "check_criterion", "criteria", "mixture_criteria"]


def check_criterion(criterion: Any) -> str:
    """``criterion`` as one of :data:`CRITERIA` (any case), else an :class:`InputError`."""
    key = str(criterion).lower()
    if key not in CRITERIA:
        raise InputError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    return key


def criteria(
    loglik: float, n: float, n_parameters: float, entropy: float | None = None
) -> dict[str, float]:
    """``bic``, ``aic``, ``mclust_bic`` and, given the classification ``entropy``, ``icl``."""
    p = float(n_parameters)
    bic = -2.0 * float(loglik) + p * math.log(float(n))
    out = {"bic": bic, "aic": -2.0 * float(loglik) + 2.0 * p, "mclust_bic": -bic}
    if entropy is not None:
        out["icl"] = bic + 2.0 * float(entropy)
    return out


def mixture_criteria(estimator: Any, X: Any, sample_weight: Any = None) -> dict[str, float]:
    """``loglik``, ``n``, ``n_parameters``, ``entropy`` and the :func:`criteria` of a fitted
    mixture on ``X`` (one pass over the rows), with optional frequency weights."""
    lls, tops = [], []
    for log_resp, row_ll in estimator._log_resp_chunks(X):
        lls.append(np.asarray(row_ll, dtype=np.float64))
        tops.append(np.asarray(log_resp.max(axis=1), dtype=np.float64))
    ll, top = np.concatenate(lls), np.concatenate(tops)
    if sample_weight is None:
        loglik, entropy, n = float(ll.sum()), float(-top.sum()), float(ll.size)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        loglik, entropy, n = float(w @ ll), float(-(w @ top)), float(w.sum())
    p = float(estimator.n_parameters())
    values = {"loglik": loglik, "n": n, "n_parameters": p, "entropy": entropy}
    return {**values, **criteria(loglik, n, p, entropy)}
