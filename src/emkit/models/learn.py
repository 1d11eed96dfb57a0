"""Which parameters EM estimates: the others stay at their starting values (held).

A family's parameters may be split into groups (``Family.parameter_groups``, e.g. a Gaussian's
``("means", "covariances")``); a held group is kept in the M-step, which then maximises over the
free groups with the held ones fixed (``Family.m_step_holding``), and in SQUAREM's extrapolation
(``Family.hold``).  :class:`Learn` says it for HMMs, :class:`MixtureLearn` for mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emkit.families.base import Family


def learned_groups(value: Any, name: str) -> bool | frozenset[str]:
    """``value`` as True, False or a frozenset of group names, else a ``TypeError`` naming
    ``name``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            f"{name} must be True, False or a collection of parameter group names such as "
            f"('means', 'covariances'), got {value!r}"
        )
    return frozenset(value)


def held_groups(
    learned: bool | frozenset[str], family: Family, name: str, role: str = "family"
) -> frozenset[str]:
    """The family's groups held fixed when ``learned`` are estimated (empty when all or none
    are learned); names the family does not have are an error listing those it has."""
    if isinstance(learned, bool):
        return frozenset()
    groups = tuple(family.parameter_groups)
    if not groups:
        raise ValueError(
            f"the {family.name!r} {role} estimates its parameters as one group: "
            f"use {name}=True or {name}=False"
        )
    unknown = sorted(learned - set(groups))
    if unknown or not learned:
        raise ValueError(
            f"{name} names {unknown or 'no group'}; the {family.name!r} {role} has the "
            f"groups {list(groups)}"
        )
    return frozenset(groups) - learned


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class Learn:
    """Which HMM parameters EM estimates; the others stay at their starting values.

    ``emissions`` is True (all), False (none) or the names of the emission family's parameter
    groups to estimate (``family.parameter_groups``, e.g. ``("covariances",)`` for Gaussian
    states with fixed means): the M-step then maximises over those groups with the others held.
    """

    start: bool = True
    transitions: bool = True
    emissions: bool | frozenset[str] = True

    def __post_init__(self) -> None:
        for name in ("start", "transitions"):
            object.__setattr__(self, name, check_flag(getattr(self, name), f"Learn.{name}"))
        object.__setattr__(self, "emissions", learned_groups(self.emissions, "Learn.emissions"))

    def held_groups(self, family: Family) -> frozenset[str]:
        """The emission groups held fixed (empty when all are learned or none)."""
        return held_groups(self.emissions, family, "Learn.emissions", "emission")


@dataclass(frozen=True)
class MixtureLearn:
    """Which mixture parameters EM estimates; the others stay at their starting values.

    ``weights``: the mixing weights; ``components``: True (all), False (none) or the names of
    the family's parameter groups to estimate, e.g. ``("covariances",)`` for zero-mean Gaussian
    components whose means are held (a patch prior for EPLL denoising).
    """

    weights: bool = True
    components: bool | frozenset[str] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_flag(self.weights, "MixtureLearn.weights"))
        groups = learned_groups(self.components, "MixtureLearn.components")
        object.__setattr__(self, "components", groups)

    @property
    def everything(self) -> bool:
        return self.weights and self.components is True

    def held_groups(self, family: Family) -> frozenset[str]:
        return held_groups(self.components, family, "MixtureLearn.components")

    def to_json(self) -> dict[str, Any]:
        comps = self.components
        groups = comps if isinstance(comps, bool) else sorted(comps)
        return {"weights": self.weights, "components": groups}

    @classmethod
    def from_json(cls, value: Any) -> MixtureLearn:
        """The inverse of :meth:`to_json` (a model file's ``learn``), checked."""
        if not isinstance(value, dict) or set(value) - {"weights", "components"}:
            raise ValueError(
                f"learn must map 'weights' and 'components' to true/false (components: or a "
                f"list of group names), got {value!r}"
            )
        return cls(**value)
