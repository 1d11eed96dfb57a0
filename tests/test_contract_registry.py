"""The contract suite over every registered model (DESIGN.md, "The contract suite").

``TestContract`` runs every item of :class:`contract.EMContract` over every case of
``contract_registry.REGISTRY``.  An item that needs a capability (``contract.requires``) a case
lacks is skipped with the reason the case declares (visible in ``pytest -rs``); the meta-tests below
check that no lack goes without a reason, that no item skips on its own, and that every model
emkit exports (estimators, families, engine models) has a case.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from sklearn.base import BaseEstimator

import emkit
import emkit.families
import emkit.models
from contract import (
    CAPABILITIES,
    NOT_YET,
    ContractCase,
    EMContract,
    item_requirements,
)
from contract_registry import REGISTRY
from emkit.families import Family, Product


@pytest.fixture(params=REGISTRY, ids=lambda case: case.id, scope="module")
def case(request: pytest.FixtureRequest) -> ContractCase:
    return request.param


class TestContract(EMContract):
    """Every contract item over every registered case (the items are EMContract's, none here).

    An item needing a capability the case lacks is skipped with the case's declared reason
    (the skip shows in ``pytest -rs``; a lack without a reason fails the meta-tests below)."""

    @pytest.fixture(autouse=True)
    def _declared_lacks(self, request: pytest.FixtureRequest, case: ContractCase) -> None:
        missing = sorted(item_requirements(request.function) - case.capabilities)
        if missing:
            reasons = "; ".join(case.why_not(c) or f"{c}: NO REASON DECLARED" for c in missing)
            pytest.skip(f"{case.id} lacks {reasons}")


ITEMS = {name: getattr(EMContract, name) for name in dir(EMContract) if name.startswith("test_")}


# --------------------------------------------------------------------------------------------------
# the registry itself
# --------------------------------------------------------------------------------------------------


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in REGISTRY]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def unaccounted_capabilities(case: ContractCase) -> list[str]:
    """What is wrong with a case's declaration: capabilities both had and lacked, unknown ones,
    and capabilities it goes without and gives no reason for."""
    problems = []
    lacked = set(case.lacks) | set(NOT_YET)
    if not case.capabilities.isdisjoint(lacked):
        problems.append(f"{case.id}: has and lacks {sorted(case.capabilities & lacked)}")
    if unknown := case.capabilities - set(CAPABILITIES):
        problems.append(f"{case.id}: unknown capabilities {sorted(unknown)}")
    for capability in sorted(set(CAPABILITIES) - case.capabilities):
        reason = case.why_not(capability)
        if not (isinstance(reason, str) and len(reason) > len(capability) + 20):
            problems.append(f"{case.id}: lacks {capability!r} without a reason")
    return problems


def test_every_case_has_or_lacks_every_capability_with_a_reason() -> None:
    """The only capabilities a case goes without are those it declares, with a reason (or that
    the engine does not offer yet, NOT_YET): an item is never left out silently."""
    problems = [problem for case in REGISTRY for problem in unaccounted_capabilities(case)]
    assert not problems, "\n".join(problems)


def test_a_lack_without_a_reason_is_caught() -> None:
    case = REGISTRY[0]
    silent = dataclasses.replace(case, capabilities=case.capabilities - {"threaded"})
    assert unaccounted_capabilities(silent) == [f"{case.id}: lacks 'threaded' without a reason"]
    declared = dataclasses.replace(case, capabilities=None, lacks={"threaded": "x" * 40})
    assert not declared.has("threaded") and unaccounted_capabilities(declared) == []
    with pytest.raises(ValueError, match="unknown capabilities"):
        dataclasses.replace(case, capabilities=None, lacks={"telepathy": "x" * 40})


def test_capabilities_the_engine_lacks_belong_to_no_case() -> None:
    assert set(NOT_YET) <= set(CAPABILITIES)
    assert all(case.capabilities.isdisjoint(NOT_YET) for case in REGISTRY)


def test_every_capability_is_asked_by_an_item() -> None:
    """Items ask for known capabilities, and every capability the engine offers is asked for
    by an item (``sklearn_checks``: by the models' modules, through estimators_for_checks)."""
    asked = frozenset().union(*(item_requirements(item) for item in ITEMS.values()))
    assert asked <= set(CAPABILITIES)
    assert set(CAPABILITIES) - set(NOT_YET) - {"sklearn_checks"} == asked


def test_items_never_skip_on_their_own() -> None:
    """A case that cannot do an item declares the lack; an item has no condition of its own
    under which it skips (the Student-t case once missed the threaded item that way: its module
    ran a hand-picked list of the items)."""
    assert not [name for name in vars(TestContract) if name.startswith("test_")]
    for name, item in ITEMS.items():
        source = inspect.getsource(inspect.unwrap(item))
        for word in ("pytest.skip", "pytest.xfail", "importorskip"):
            assert word not in source, f"{name} uses {word}"


# --------------------------------------------------------------------------------------------------
# every model has a case
# --------------------------------------------------------------------------------------------------


def _families_of(model: Any) -> set[type]:
    """The family classes an engine model evaluates (mixture components, HMM emissions, the
    blocks of a product)."""
    stack = [getattr(model, name) for name in ("family", "emission") if hasattr(model, name)]
    out: set[type] = set()
    while stack:
        family = stack.pop()
        out.add(type(family))
        if isinstance(family, Product):
            stack.extend(block for block, _ in family.blocks)
    return out


def _engine_model_classes() -> set[type]:
    """The classes in emkit.models that are engine models (they have an E- and an M-step)."""
    found = set()
    for info in pkgutil.iter_modules(emkit.models.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"emkit.models.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and all(
                callable(getattr(cls, name, None)) for name in ("init", "e_step", "m_step")
            ):
                found.add(cls)
    return found


@pytest.fixture(scope="module")
def engine_models() -> list[Any]:
    return [case.problem(0).model for case in REGISTRY]


def test_every_exported_estimator_has_a_case() -> None:
    exported = [getattr(emkit, name) for name in emkit.__all__]
    estimators = {
        obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseEstimator)
    }
    covered = {type(case.estimator()) for case in REGISTRY}
    assert estimators, "no estimator found in emkit.__all__"
    assert not estimators - covered, sorted(cls.__name__ for cls in estimators - covered)


def test_every_family_has_a_case(engine_models: list[Any]) -> None:
    exported = [getattr(emkit.families, name) for name in emkit.families.__all__]
    families = {
        obj for obj in exported if isinstance(obj, type) and issubclass(obj, Family)
    } - {Family}
    assert families == set(emkit.families.FAMILIES.values())
    used = set().union(*(_families_of(model) for model in engine_models))
    assert not families - used, sorted(cls.__name__ for cls in families - used)


def test_every_engine_model_has_a_case(engine_models: list[Any]) -> None:
    models = _engine_model_classes()
    assert len(models) >= 3
    used = {type(model) for model in engine_models}
    assert not models - used, sorted(cls.__name__ for cls in models - used)


def test_no_new_module_runs_contract_items_outside_the_registry() -> None:
    here = Path(__file__)
    found = set()
    for path in sorted(here.parent.rglob("test_*.py")):
        if path == here:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and "EMContract" in ast.unparse(node):
                found.add(str(path.relative_to(here.parent)))
    assert not found, (
        f"{sorted(found)} run contract items themselves: add the cases to "
        "contract_registry.REGISTRY instead"
    )
