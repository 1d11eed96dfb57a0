"""Covariance structures of Gaussian components, as objects (no string branches elsewhere).

Every structure stores the Cholesky factor ``L`` of the precision (``Λ = L Lᵀ``), in the shapes
scikit-learn uses: full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``;
:class:`GroupTied` ties the covariance within groups of consecutive components (the inner
Gaussians of one HMM state, hmmlearn's GMMHMM ``"tied"``), ``(K / group_size, D, D)``.
The squared Mahalanobis distance is ``‖(x − μ_k) L_k‖²``.  Coordinates passed in (``Xc``,
``means_c``) are relative to an origin ``o``; the expanded quadratic forms (``x² λ − 2xμλ +
μ²λ``) then lose ``ε·(|μ_k − o| / σ_k)²`` of the distance and of the variance estimate.

Exact statistics at any offset: :func:`shared_origins` gives every component an origin (its
"centre" ``c_k``) within ``GROUP_RADIUS`` of its own sd, components with nearby means sharing
one, so ordinary data keep one origin and one BLAS-3 product per chunk while a component far
from the others gets its own; :func:`moments_about` sums ``Σ R (x − c_k)`` and the second
moment about ``c_k``; :func:`parameters_from_moments` is the M-step
``μ_k = c_k + s_k/n_k``, ``Σ_k = S_k/n_k − (s_k/n_k)(s_k/n_k)ᵀ``, whose cancellation is
bounded by ``ε·(GROUP_RADIUS + |μ_new − μ_old|/σ_k)²`` whatever the offset of the data.
"""

from __future__ import annotations

__all__ = [
    "GROUP_RADIUS",
    "STRUCTURES",
    "ChunkStats",
    "CovarianceError",
    "CovarianceStructure",
    "Diag",
    "Full",
    "GroupTied",
    "Spherical",
    "Tied",
    "check_factor_matrices",
    "covariance_structure",
    "mahalanobis_about",
    "moments_about",
    "parameters_from_moments",
    "shared_origins",
    "start_centres",
]

from emkit.families.covariance.diagonal import Diag, Spherical
from emkit.families.covariance.general import Full, GroupTied, Tied
from emkit.families.covariance.origins import (
    GROUP_RADIUS,
    mahalanobis_about,
    moments_about,
    parameters_from_moments,
    shared_origins,
    start_centres,
)
from emkit.families.covariance.structure import (
    ChunkStats,
    CovarianceError,
    CovarianceStructure,
    check_factor_matrices,
)

STRUCTURES: dict[str, type[CovarianceStructure]] = {
    s.name: s for s in (Full, Tied, Diag, Spherical)
}


def covariance_structure(spec: str | CovarianceStructure) -> CovarianceStructure:
    """The structure object for ``"full" | "tied" | "diag" | "spherical"`` (or pass one through)."""
    if isinstance(spec, CovarianceStructure):
        return spec
    try:
        return STRUCTURES[spec]()
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(STRUCTURES)}, got {spec!r}"
        ) from None
