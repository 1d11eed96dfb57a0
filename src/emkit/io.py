"""Save and load fitted estimators: a zip of ``model.json`` (header) and ``.npy`` arrays.

No pickle is written or read (``allow_pickle=False``); files are written to a temporary file in
the target folder and moved into place, so a crash never leaves a half-written model (see
:func:`atomic_write_bytes` for links, devices, pipes and ``-``).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from emkit._files import write_bytes

FORMAT = "emkit-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """The file is not an emkit model, or was written by an incompatible version."""


def _registry() -> dict[str, type]:
    from emkit.estimators import GaussianMixture, MixtureModel
    from emkit.estimators.hmm import (
        GMMHMM,
        HMM,
        CategoricalHMM,
        GaussianHMM,
        MultinomialHMM,
        PoissonHMM,
    )
    from emkit.estimators.imputer import EMImputer
    from emkit.estimators.missing import MissingNormal

    classes = (GaussianMixture, MixtureModel, HMM, GaussianHMM, PoissonHMM, CategoricalHMM)
    classes += (GMMHMM, MultinomialHMM, MissingNormal, EMImputer)
    return {cls.__name__: cls for cls in classes}


def _json_safe(value: Any) -> Any:
    from emkit.families.covariance import CovarianceStructure

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, CovarianceStructure):  # covariance_type given as an object
        return value.name
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):  # e.g. a component family's config
        return {str(k): _json_safe(v) for k, v in value.items()}
    if callable(getattr(value, "config", None)):  # a component family given as an object
        return _json_safe(value.config())
    return None  # objects that do not survive JSON (RandomState, arrays given as init)


def _split_state(estimator: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(estimator).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                scalars[name] = [str(v) for v in value]
            else:
                arrays[name] = value
        else:
            scalars[name] = _json_safe(value)
    return scalars, arrays


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` without a half-written state: atomically for a regular
    file (temporary file in its folder, fsync, rename), through a symbolic link to its target
    (the link is kept), directly to a device or a pipe, and ``-`` to standard output."""
    write_bytes(path, payload)


def save(estimator: Any, path: str | os.PathLike) -> Path:
    """Save a fitted emkit estimator to ``path`` (conventionally ``*.emk``)."""
    name = type(estimator).__name__
    if _registry().get(name) is not type(estimator):  # by class: sklearn has a GaussianMixture too
        raise TypeError(f"cannot save {type(estimator).__module__}.{name}: not an emkit estimator")
    if not hasattr(estimator, "converged_"):
        raise ValueError(f"this {name} is not fitted yet; call fit before save")
    import emkit

    scalars, arrays = _split_state(estimator)
    params = estimator.get_params(deep=False)
    if hasattr(estimator, "_params_to_json"):  # objects with a JSON form (e.g. an HMM's Learn)
        params = estimator._params_to_json(params)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "emkit_version": emkit.__version__,
        "estimator": name,
        "params": {k: _json_safe(v) for k, v in params.items()},
        "attributes": scalars,
        "arrays": sorted(arrays),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", json.dumps(header, indent=2, sort_keys=True))
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(f"{key}.npy", member.getvalue())
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file (what ``emkit info`` prints)."""
    with _open(path) as zf:
        return _header(zf, path)


def load(path: str | os.PathLike) -> Any:
    """Load an estimator saved by :func:`save`; predictions are identical to the saved one's."""
    with _open(path) as zf:
        header = _header(zf, path)
        cls = _registry().get(header["estimator"])
        if cls is None:
            raise ModelFileError(f"{path}: unknown estimator {header['estimator']!r}")
        params = {k: v for k, v in header["params"].items() if k in cls().get_params()}
        if hasattr(cls, "_params_from_json"):  # JSON forms back to objects (e.g. Learn)
            try:
                params = cls._params_from_json(params)
            except (TypeError, ValueError, KeyError) as exc:
                raise ModelFileError(
                    f"{path}: model.json holds invalid parameters: {exc}"
                ) from None
        estimator = cls(**params)
        for key, value in header["attributes"].items():
            if key == "feature_names_in_" and value is not None:
                value = np.asarray(value, dtype=object)
            setattr(estimator, key, value)
        for key in header["arrays"]:
            setattr(estimator, key, _read_array(zf, key, path))
    return estimator


def _read_array(zf: zipfile.ZipFile, key: str, path: Any) -> np.ndarray:
    try:
        with zf.open(f"{key}.npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except KeyError:
        raise ModelFileError(f"{path}: the array {key!r} listed in model.json is missing") from None
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
        # ValueError: not .npy, an unsupported version, or an object array (would need pickle)
        raise ModelFileError(f"{path}: the array {key!r} is unreadable ({exc})") from None


def _open(path: str | os.PathLike) -> zipfile.ZipFile:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path} is not an emkit model file (not a zip archive)") from None


def _header(zf: zipfile.ZipFile, path: Any) -> dict[str, Any]:
    try:
        header = json.loads(zf.read("model.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, zlib.error):  # JSON, UTF-8, CRC
        raise ModelFileError(f"{path} has no readable model.json header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an emkit model file")
    version = header.get("format_version", 0)
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: model.json has a malformed format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer emkit (format {version}); upgrade")
    expected = {"estimator": str, "params": dict, "attributes": dict, "arrays": list}
    for key, kind in expected.items():
        if not isinstance(header.get(key), kind):
            raise ModelFileError(f"{path}: the model.json header lacks a valid {key!r} entry")
    names = list(header["attributes"]) + list(header["arrays"])
    if not all(isinstance(n, str) and n.isidentifier() and _is_fitted_name(n) for n in names):
        raise ModelFileError(f"{path}: model.json names attributes that are not fitted state")
    return header


def _is_fitted_name(name: str) -> bool:
    """Fitted attributes are ``name_`` (scikit-learn's convention), never private or dunder."""
    return name.endswith("_") and not name.startswith("_")
