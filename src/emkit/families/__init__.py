"""Component distributions: Gaussian covariance structures and the families of finite mixtures."""

from __future__ import annotations

from typing import Any

from emkit.families.base import Family
from emkit.families.bernoulli import Bernoulli
from emkit.families.categorical import Categorical
from emkit.families.exponential import Exponential
from emkit.families.gamma import Gamma
from emkit.families.gaussian import Gaussian
from emkit.families.gaussian_mixture_emission import GaussianMixtureEmission
from emkit.families.multinomial import Multinomial
from emkit.families.normal import LogNormal, Normal
from emkit.families.poisson import Poisson
from emkit.families.product import Product
from emkit.families.student_t import StudentT

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        Gaussian, Poisson, StudentT, Bernoulli, Categorical, Exponential, Gamma, LogNormal, Normal,
        Product, GaussianMixtureEmission, Multinomial,
    )
}


def make_family(spec: str | dict[str, Any] | Family) -> Family:
    """A family from its name (``"poisson"``), its ``config()`` dict, or the object itself."""
    if isinstance(spec, Family):
        return spec
    if isinstance(spec, dict):
        options = dict(spec)
        name = options.pop("name", None)
        return _family_class(name).from_config(options)
    return _family_class(spec)()


def _family_class(name: Any) -> type[Family]:
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {name!r}") from None


__all__ = [
    "FAMILIES",
    "Bernoulli",
    "Categorical",
    "Exponential",
    "Family",
    "Gamma",
    "Gaussian",
    "GaussianMixtureEmission",
    "LogNormal",
    "Multinomial",
    "Normal",
    "Poisson",
    "Product",
    "StudentT",
    "make_family",
]
