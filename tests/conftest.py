"""Shared fixtures of emkit's test suite.

Data generators that more than one test module needs live in ``contract.py`` (importable as a
plain module, because ``tests/`` has no ``__init__.py``); fixtures wrap them here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from contract import mixture_sample

# CI replays the same examples every run (a red build is reproducible); local runs explore anew
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")



@pytest.fixture(autouse=True)
def _replayable_global_rng() -> None:
    """In CI, estimators left at ``random_state=None`` draw from a seeded global RNG, so a red
    build replays exactly; local runs keep drawing anew (as hypothesis does)."""
    if os.environ.get("CI"):
        np.random.seed(20240611)  # noqa: NPY002 (the RNG random_state=None means)


FAITHFUL_CSV = Path(__file__).resolve().parents[1] / "src/emkit/datasets/data/faithful.csv"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def blobs() -> np.ndarray:
    """300 rows, 2 features, three overlapping Gaussian clusters (float64)."""
    return mixture_sample(seed=7, n_components=3, n_samples=300, n_features=2)


@pytest.fixture(scope="session")
def faithful_waiting() -> np.ndarray:
    """Old Faithful waiting times (R ``datasets::faithful$waiting``), shape ``(272, 1)``.

    Read with numpy directly so these tests do not depend on ``emkit.datasets`` loaders.
    """
    table = np.genfromtxt(FAITHFUL_CSV, delimiter=",", names=True)
    return np.asarray(table["waiting"], dtype=np.float64)[:, None]
