"""Shared fixtures of emkit's test suite.

tests/ mirrors src/emkit (engine/, families/, models/, estimators/, cli/, apps/, datasets/;
tests of top-level modules at the root).  Data generators that more than one test module needs
live in ``contract.py``; modules import each other by name (pyproject's pytest ``pythonpath``
lists every folder, and ``tests/`` has no ``__init__.py``); fixtures wrap them here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from contract import mixture_sample

# Every run replays the same examples, in CI and on a newcomer's machine alike (a red run is
# reproducible, and no result depends on the tests that ran before); EMKIT_EXPLORE=1 draws anew.
settings.register_profile("replay", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("explore" if os.environ.get("EMKIT_EXPLORE") else "replay")


@pytest.fixture(autouse=True)
def _replayable_global_rng() -> None:
    """Estimators left at ``random_state=None`` draw from the global RNG: seeded before every
    test, so each test draws the same numbers whichever tests ran before it."""
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


@pytest.fixture(scope="session")
def dask_client():
    """A Dask LocalCluster of two single-threaded worker processes, started once per session
    for the tests that ask for it (every Dask collection then computes on it)."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        yield client
