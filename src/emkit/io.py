"""Save and load fitted estimators: a zip of ``model.json`` (header) and ``.npy`` arrays.

No pickle is written or read (``allow_pickle=False``); files are written to a temporary file in
the target folder and moved into place, so a crash never leaves a half-written model (see
:func:`atomic_write_bytes` for links, devices, pipes and ``-``).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from emkit._files import write_bytes

FORMAT = "emkit-model"
FORMAT_VERSION = 1


MAX_BYTES = 256 * 2**20  # all members uncompressed together (the suite's largest: 12 kB)
MAX_HEADER_BYTES = 8 * 2**20  # model.json (the suite's largest: 2.5 kB)
MAX_MEMBERS = 256  # a model file has one member per fitted array (the suite's most: 10)
MAX_DIRECTORY_BYTES = 2**20  # the zip directory of MAX_MEMBERS members with long names
MAX_RATIO = 1000.0  # deflate of zeros reaches ~1030:1; a (K, D, D) diagonal covars_ ~D/2:1
RATIO_GRACE = 2**20  # members up to this size may compress any amount (small zero arrays)
READ_CHUNK = 2**20


class ModelFileError(ValueError):
    """The file is not an emkit model, was written by an incompatible version, exceeds a size
    cap, or holds a model that fails validation; the message names the file and the member."""


def _registry() -> dict[str, type]:
    from emkit.estimators import GaussianMixture, MixtureModel
    from emkit.estimators.hmm import HMM
    from emkit.estimators.hmm_emissions import (
        GMMHMM,
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
    params = estimator._params_to_json(estimator.get_params(deep=False))  # e.g. an HMM's Learn
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


def read_header(
    path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO
) -> dict[str, Any]:
    """The JSON header of a model file (what ``emkit info`` prints); the caps are
    :func:`load`'s."""
    with _ModelArchive(path, max_bytes, max_ratio) as archive:
        return _header(archive, path)


def load(
    path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO
) -> Any:
    """Load an estimator saved by :func:`save`; predictions are identical to the saved one's.

    The file is untrusted input: its size is capped before anything is read (``max_bytes``,
    default ``MAX_BYTES`` = 256 MiB for all members uncompressed together, ``MAX_HEADER_BYTES``
    = 8 MiB for ``model.json``, at most ``MAX_MEMBERS`` = 256 members, and members over 1 MiB
    may not inflate more than ``max_ratio`` times, default ``MAX_RATIO`` = 1000); every
    ``.npy`` header is checked against the member's size before an array is allocated, and the
    loaded estimator's parameters are validated like a user start (``check_fitted_state``).
    Raise ``max_bytes`` / ``max_ratio`` for unusually large models.  Every problem is a
    :class:`ModelFileError` (a ``ValueError``) naming the file and the member or attribute.
    """
    with _ModelArchive(path, max_bytes, max_ratio) as archive:
        header = _header(archive, path)
        cls = _registry().get(header["estimator"])
        if cls is None:
            raise ModelFileError(f"{path}: unknown estimator {header['estimator']!r}")
        params = {k: v for k, v in header["params"].items() if k in cls().get_params()}
        try:
            estimator = cls(**cls._params_from_json(params))  # JSON forms back to objects
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelFileError(f"{path}: model.json holds invalid parameters: {exc}") from None
        for key, value in header["attributes"].items():
            if key == "feature_names_in_" and isinstance(value, list):
                value = np.asarray(value, dtype=object)
            _set_fitted_attribute(estimator, key, value, path)
        for key in header["arrays"]:
            _set_fitted_attribute(estimator, key, archive.read_array(key), path)
    try:
        estimator.check_fitted_state()
    except (ValueError, TypeError) as exc:  # the checks name the attribute and the problem
        raise ModelFileError(f"{path}: {exc}") from None
    return estimator


def _set_fitted_attribute(estimator: Any, key: str, value: Any, path: Any) -> None:
    if any(key in vars(klass) for klass in type(estimator).__mro__):  # a property or method
        raise ModelFileError(f"{path}: model.json sets {key!r}, which is not fitted state")
    setattr(estimator, key, value)


# what zipfile, zlib and the .npy header parser raise on damaged members
_READ_ERRORS = (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile, zlib.error)


class _ModelArchive:
    """A model file opened as a zip whose directory and members were checked against the caps
    (declared sizes, compression ratios, member count) before any member is read; members are
    then read with a bound, never trusting the declared sizes."""

    def __init__(self, path: str | os.PathLike, max_bytes: int, max_ratio: float):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no model file at {path}")
        self.path, self.max_bytes = path, int(max_bytes)
        self.fh = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self._check_directory()
            try:
                self.zf = zipfile.ZipFile(self.fh, "r")
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
                raise ModelFileError(
                    f"{path} is not an emkit model file (not a zip archive)"
                ) from None
            self._check_members(float(max_ratio))
        except BaseException:
            self.fh.close()
            raise

    def __enter__(self) -> _ModelArchive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zf.close()
        self.fh.close()

    def _error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def _check_directory(self) -> None:
        """The file's size and its zip directory (read from the end record) are bounded before
        ``zipfile`` parses the directory into memory."""
        size = os.fstat(self.fh.fileno()).st_size
        if size > self.max_bytes + MAX_DIRECTORY_BYTES:
            raise self._error(
                f"the file holds {size} bytes, over the limit of {self.max_bytes} bytes "
                "(load(..., max_bytes=...) or the CLI's --max-model-mb raises it)"
            )
        tail_size = min(size, 22 + 65535)
        self.fh.seek(size - tail_size)
        tail = self.fh.read(tail_size)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or tail_size - at < 22:
            return  # not a zip: zipfile says so
        entries, directory = struct.unpack_from("<HL", tail, at + 10)
        locator = at - 20
        if (entries == 0xFFFF or directory == 0xFFFFFFFF) and locator >= 0 and tail[
            locator : locator + 4
        ] == b"PK\x06\x07":  # zip64: the counts are in the zip64 end record
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            self.fh.seek(min(offset, size))
            record = self.fh.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack_from("<QQ", record, 32)
        if entries > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
            raise self._error(
                f"the zip directory lists {entries} members in {directory} bytes; a model file "
                f"has at most {MAX_MEMBERS} members in {MAX_DIRECTORY_BYTES} bytes"
            )
        self.fh.seek(0)

    def _check_members(self, max_ratio: float) -> None:
        infos = self.zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._error(f"{len(infos)} members; a model file has at most {MAX_MEMBERS}")
        total = 0
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                raise self._error(f"member {name!r} is encrypted; model files are not")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._error(
                    f"member {name!r} uses compression method {info.compress_type}; model "
                    "files are stored or deflated"
                )
            if info.file_size > RATIO_GRACE and info.file_size > max_ratio * max(
                info.compress_size, 1
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise self._error(
                    f"member {name!r} declares {info.file_size} bytes from {info.compress_size} "
                    f"compressed ({ratio:.0f}:1), over the compression ratio limit of "
                    f"{max_ratio:g}:1 "
                    "(load(..., max_ratio=...) raises it)"
                )
            total += info.file_size
            if total > self.max_bytes:
                raise self._error(
                    f"member {name!r} brings the declared size to {total} bytes, over the limit "
                    f"of {self.max_bytes} bytes (load(..., max_bytes=...) or the CLI's "
                    "--max-model-mb raises it)"
                )

    def _info(self, name: str, what: str) -> zipfile.ZipInfo:
        try:
            return self.zf.getinfo(name)
        except KeyError:
            raise self._error(f"{what} is missing (no member {name!r})") from None

    def read_bytes(self, name: str, limit: int, what: str) -> bytes:
        """The member's bytes, at most ``limit`` (and never more than it declares)."""
        info = self._info(name, what)
        if info.file_size > limit:
            raise self._error(
                f"member {name!r} declares {info.file_size} bytes, over the limit of {limit}"
            )
        try:
            with self.zf.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except _READ_ERRORS as exc:
            raise self._error(f"member {name!r} is unreadable ({exc})") from None
        if len(data) != info.file_size:
            raise self._error(
                f"member {name!r} does not hold the {info.file_size} bytes it declares"
            )
        return data

    def read_array(self, key: str) -> np.ndarray:
        """The array of ``{key}.npy``; its header is checked against the member's size (and the
        dtype against the real kinds) before the array is allocated."""
        name = f"{key}.npy"
        info = self._info(name, f"the array {key!r} listed in model.json")
        try:
            with self.zf.open(info) as fh:
                shape, fortran, dtype = _npy_header(fh)
                self._check_npy(name, shape, dtype, info.file_size - fh.tell())
                buffer = bytearray(math.prod(shape) * dtype.itemsize)
                view, done = memoryview(buffer), 0
                while done < len(buffer):
                    got = fh.readinto(view[done : done + READ_CHUNK])
                    if not got:
                        raise EOFError("the data end early")
                    done += got
                if fh.read(1):
                    raise ValueError("data beyond the declared shape")
        except ModelFileError:
            raise  # a cap or a header check: it names the member already
        except _READ_ERRORS as exc:  # ValueError: not .npy, a malformed header
            raise self._error(f"the array {key!r} is unreadable ({exc})") from None
        array = np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))

    def _check_npy(self, name: str, shape: tuple, dtype: np.dtype, data_bytes: int) -> None:
        if dtype.hasobject:
            raise self._error(f"member {name!r} holds Python objects (they would need pickle)")
        if dtype.kind not in "biuf" or dtype.fields is not None:
            raise self._error(
                f"member {name!r} holds {dtype} values; model arrays hold real numbers"
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared != data_bytes:
            raise self._error(
                f"member {name!r} declares an array of shape {shape} and dtype {dtype} "
                f"({declared} bytes), but holds {data_bytes} bytes of data"
            )


def _npy_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a ``.npy`` stream; ``ValueError`` if malformed."""
    version = np.lib.format.read_magic(fh)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy format version {version} is not used by model files")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
        np.lib.format.read_array_header_2_0
    )
    try:
        return read(fh)
    except _READ_ERRORS:
        raise
    except Exception as exc:  # numpy parses the header dict with ast/tokenize: any error
        raise ValueError(f"malformed .npy header ({type(exc).__name__}: {exc})") from None


def _header(archive: _ModelArchive, path: Any) -> dict[str, Any]:
    payload = archive.read_bytes("model.json", MAX_HEADER_BYTES, "the model.json header")
    try:
        header = json.loads(payload)
    except (ValueError, RecursionError):  # JSON, UTF-8, nesting
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
