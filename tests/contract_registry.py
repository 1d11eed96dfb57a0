"""The one contract registry: every model's :class:`~contract.ContractCase` objects.

Each model's test module builds its cases (``CASES``, or ``CASE``) next to the helpers that make
its data; this module collects them, and ``test_contract_registry.py::TestContract`` runs every
contract item over every case here.  A new model adds its cases to ``REGISTRY`` (a meta-test
fails for an exported estimator or family without one).
"""

from __future__ import annotations

import test_contract_families
import test_contract_gmm
import test_contract_imputer
import test_hmm_contract
import test_missing_normal
import test_student_t
from contract import ContractCase

REGISTRY: tuple[ContractCase, ...] = (
    *test_contract_families.CASES,  # MixtureModel over every mixture family
    test_student_t.CASE,  # MixtureModel("student_t")
    *test_contract_gmm.CASES,  # GaussianMixture: four structures, float32, missing cells
    test_missing_normal.CASE,  # MissingNormal
    *test_contract_imputer.CASES,  # EMImputer("normal"), EMImputer("gmm")
    *test_hmm_contract.CASES,  # every HMM estimator and emission family
)
