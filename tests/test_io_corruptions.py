"""Property: a corrupted model file either gives a ModelFileError naming the file, or loads a
model that passes validation and predicts finite values (never another exception)."""

from __future__ import annotations

import io
import json
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import emkit
from emkit import EMImputer, GaussianMixture, MissingNormal, MixtureModel
from emkit.estimators.hmm_emissions import CategoricalHMM, GaussianHMM
from emkit.io import ModelFileError


@dataclass(frozen=True)
class Case:
    build: Callable[[], Any]  # the estimator to fit
    X: Callable[[np.random.Generator], np.ndarray]  # training rows
    evaluate: Callable[[Any, np.ndarray], list[np.ndarray]]  # numeric outputs on a few rows


def gaussian_rows(rng: np.random.Generator) -> np.ndarray:
    return np.vstack([rng.normal(0, 1, (40, 2)), rng.normal(4, 1, (40, 2))])


def counts(rng: np.random.Generator) -> np.ndarray:
    return np.vstack([rng.poisson(2, (40, 2)), rng.poisson(8, (40, 2))]).astype(float)


def symbols(rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array(["a", "b", "c"], dtype=object), size=(80, 2))


def with_holes(rng: np.random.Generator) -> np.ndarray:
    X = gaussian_rows(rng)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    return X


def mixture_outputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    return [model.score_samples(X), model.predict_proba(X), model.predict(X).astype(float)]


def hmm_outputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    return [model.predict_proba(X), model.predict(X).astype(float), np.array(model.score(X))]


CASES = {
    **{
        f"gmm-{cov}": Case(
            lambda cov=cov: GaussianMixture(2, covariance_type=cov, random_state=0, max_iter=5),
            gaussian_rows,
            mixture_outputs,
        )
        for cov in ("full", "tied", "diag", "spherical")
    },
    "mixture-poisson": Case(
        lambda: MixtureModel("poisson", 2, random_state=0, max_iter=5), counts, mixture_outputs
    ),
    "mixture-categorical": Case(
        lambda: MixtureModel("categorical", 2, random_state=0, max_iter=5),
        symbols,
        mixture_outputs,
    ),
    "gaussian-hmm": Case(
        lambda: GaussianHMM(2, "full", random_state=0, max_iter=5), gaussian_rows, hmm_outputs
    ),
    "categorical-hmm": Case(
        lambda: CategoricalHMM(2, random_state=0, max_iter=5), symbols, hmm_outputs
    ),
    "missing-normal": Case(
        lambda: MissingNormal(max_iter=20),
        with_holes,
        lambda m, X: [m.score_samples(X), m.impute(X)],
    ),
    "imputer-gmm": Case(
        lambda: EMImputer("gmm", n_components=2, max_iter=20, random_state=0),
        with_holes,
        lambda m, X: [m.transform(X)],
    ),
    "imputer-normal": Case(
        lambda: EMImputer("normal", max_iter=20, random_state=0),
        with_holes,
        lambda m, X: [m.transform(X)],
    ),
}

_SAVED: dict[str, tuple[dict[str, bytes], np.ndarray]] = {}


def saved_members(case_id: str) -> tuple[dict[str, bytes], np.ndarray]:
    """The members of a valid model file of the case (fitted once) and rows to predict."""
    if case_id not in _SAVED:
        case = CASES[case_id]
        X = case.X(np.random.default_rng(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = case.build().fit(X)
        with tempfile.TemporaryDirectory() as folder:
            path = emkit.save(model, Path(folder) / "model.emk")
            with zipfile.ZipFile(path) as zf:
                members = {name: zf.read(name) for name in zf.namelist()}
            case.evaluate(emkit.load(path), X[:6])  # compile the kernels outside the examples
        _SAVED[case_id] = (members, X[:6])
    return _SAVED[case_id]


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


# --- corruptions ----------------------------------------------------------------------------------
BAD_VALUES = st.sampled_from([float("nan"), float("inf"), -1, -0.5, 0, "x", "", [], [1, 2], {},
                              {"a": 1}, None, True, False])


@st.composite
def header_edit(draw: st.DrawFn, members: dict[str, bytes]) -> dict[str, bytes]:
    header = json.loads(members["model.json"])
    section = draw(st.sampled_from(["params", "attributes", "arrays", "top"]))
    if section == "arrays":
        if header["arrays"]:
            header["arrays"].pop(draw(st.integers(0, len(header["arrays"]) - 1)))
    else:
        target = header if section == "top" else header[section]
        key = draw(st.sampled_from(sorted(target)))
        inner = target[key]
        if isinstance(inner, dict) and inner and draw(st.booleans()):  # e.g. a family config
            target, key = inner, draw(st.sampled_from(sorted(inner)))
        if draw(st.booleans()):
            target.pop(key)
        else:
            target[key] = draw(BAD_VALUES)
    return {**members, "model.json": json.dumps(header).encode()}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)
    return buffer.getvalue()


ARRAY_CHANGES: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "nan": lambda a, r: _put(a, r, np.nan),
    "inf": lambda a, r: _put(a, r, np.inf),
    "-inf": lambda a, r: _put(a, r, -np.inf),
    "negative-entry": lambda a, r: _put(a, r, -abs(a.flat[r.integers(a.size)]) - 1.0),
    "zero-entry": lambda a, r: _put(a, r, 0.0),
    "negated": lambda a, r: -a,
    "doubled": lambda a, r: 2.0 * a,
    "drop-last": lambda a, r: a[:-1] if a.ndim else a,
    "drop-last-column": lambda a, r: a[..., :-1] if a.ndim else a,
    "extra-axis": lambda a, r: a[None],
    "ravel": lambda a, r: a.ravel(),
    "transpose": lambda a, r: a.T,
    "scalar": lambda a, r: np.array(1.0),
    "empty": lambda a, r: np.empty((0,) + a.shape[1:]),
    "complex": lambda a, r: a.astype(complex),
    "int": lambda a, r: a.astype(np.int64),
    "float16": lambda a, r: a.astype(np.float16),
    "float32": lambda a, r: a.astype(np.float32),
    "bool": lambda a, r: a.astype(bool),
    "object": lambda a, r: a.astype(object),
    "strings": lambda a, r: a.astype(str),
    "fortran": lambda a, r: np.asfortranarray(a),
}


def _put(a: np.ndarray, rng: np.random.Generator, value: float) -> np.ndarray:
    a = np.array(a, dtype=np.result_type(a.dtype, np.float64))
    if a.size:
        a.flat[rng.integers(a.size)] = value
    return a


@st.composite
def array_edit(draw: st.DrawFn, members: dict[str, bytes]) -> dict[str, bytes]:
    name = draw(st.sampled_from(sorted(n for n in members if n.endswith(".npy"))))
    change = draw(st.sampled_from(sorted(ARRAY_CHANGES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    array = np.load(io.BytesIO(members[name]))
    return {**members, name: _npy(ARRAY_CHANGES[change](array, rng))}


@st.composite
def corrupted(draw: st.DrawFn, members: dict[str, bytes]) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "header", "array", "array+header"]))
    if kind in ("header", "array", "array+header"):
        if kind != "header":
            members = draw(array_edit(members))
        if kind != "array":
            members = draw(header_edit(members))
        return zipped(members)
    payload = bytearray(zipped(members))
    if kind == "truncate":
        return bytes(payload[: draw(st.integers(0, len(payload) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(payload) - 1))
        payload[at] ^= draw(st.integers(1, 255))
    return bytes(payload)


# --- the property ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case_id", sorted(CASES))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_corrupted_model_file_is_refused_or_predicts_finite_values(case_id, data) -> None:
    members, X = saved_members(case_id)
    payload = data.draw(corrupted(members), label="file")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corrupted.emk"
        path.write_bytes(payload)
        try:
            model = emkit.load(path)
        except ModelFileError as exc:
            event("refused")
            assert isinstance(exc, ValueError)
            assert str(path) in str(exc)
            return
    event("loaded")
    model.check_fitted_state()  # the loaded model is valid ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        outputs = CASES[case_id].evaluate(model, X)
    for out in outputs:  # ... and predicts finite values
        assert np.all(np.isfinite(np.asarray(out, dtype=np.float64)))
