"""Hostile model files: size caps (zip bombs, lying headers) and values validated on load."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.exceptions import ConvergenceWarning

import emkit
from emkit import GaussianMixture, MixtureModel
from emkit.estimators.hmm_emissions import GaussianHMM
from emkit.io import MAX_BYTES, MAX_MEMBERS, ModelFileError, read_header

MiB = 2**20


def fit(model, X, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, *args)


@pytest.fixture(scope="module")
def gmm(blobs):
    return fit(GaussianMixture(3, covariance_type="full", random_state=0, max_iter=20), blobs)


@pytest.fixture
def saved(gmm, tmp_path) -> Path:
    return emkit.save(gmm, tmp_path / "model.emk")


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def replace_array(path: Path, key: str, array: np.ndarray) -> None:
    members = members_of(path)
    members[f"{key}.npy"] = npy(array)
    write_members(path, members)


def edit_header(path: Path, change: Callable[[dict], None]) -> None:
    members = members_of(path)
    header = json.loads(members["model.json"])
    change(header)
    members["model.json"] = json.dumps(header).encode()
    write_members(path, members)


def peak_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def refused(path: Path, match: str, **caps) -> ModelFileError:
    """Load must raise ModelFileError naming the file and matching ``match``, within 8 MiB."""
    caught: list[ModelFileError] = []

    def attempt() -> None:
        with pytest.raises(ModelFileError, match=match) as info:
            emkit.load(path, **caps)
        caught.append(info.value)

    assert peak_bytes(attempt) < 8 * MiB
    assert str(path) in str(caught[0])
    return caught[0]


def deflated_zeros(zf: zipfile.ZipFile, name: str, size: int) -> None:
    """A member of ``size`` zero bytes, deflated chunk by chunk (a small zip bomb)."""
    chunk = bytes(MiB)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=size > 2**31) as fh:
        for start in range(0, size, MiB):
            fh.write(chunk[: min(MiB, size - start)])


# --------------------------------------------------------------------------------------------------
# item 2: size caps
# --------------------------------------------------------------------------------------------------


def test_a_header_bomb_is_refused_before_it_is_inflated(saved, tmp_path) -> None:
    members = members_of(saved)
    bomb = tmp_path / "bomb.emk"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        deflated_zeros(zf, "model.json", 64 * MiB)  # 64 kB on disk
        for name, payload in members.items():
            if name != "model.json":
                zf.writestr(name, payload)
    assert bomb.stat().st_size < 200_000
    refused(bomb, r"'model.json'.*(ratio|limit)")
    with pytest.raises(ModelFileError, match="model.json"):
        read_header(bomb)


def test_a_header_over_its_cap_is_refused_even_when_the_ratio_is_plausible(saved, tmp_path):
    members = members_of(saved)
    members["model.json"] = np.random.default_rng(0).bytes(9 * MiB)  # incompressible
    write_members(saved, members)
    refused(saved, r"'model.json' declares \d+ bytes, over the limit of 8388608")


def test_an_array_bomb_is_refused_by_the_total_cap(saved, tmp_path) -> None:
    members = members_of(saved)
    bomb = tmp_path / "bomb.emk"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
        deflated_zeros(zf, "extra_.npy", MAX_BYTES + MiB)
    error = refused(bomb, r"member 'extra_.npy'", max_ratio=1e9)  # the size cap, not the ratio
    assert f"limit of {MAX_BYTES} bytes" in str(error) and "max_bytes" in str(error)
    refused(bomb, r"'extra_.npy'.*compression ratio limit of 1000:1")  # the default ratio cap


def forge_declared_size(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size that the zip directory declares for ``name``."""
    payload = bytearray(path.read_bytes())
    at = 0
    while (at := payload.find(b"PK\x01\x02", at)) >= 0:
        length = struct.unpack_from("<H", payload, at + 28)[0]
        if payload[at + 46 : at + 46 + length].decode() == name:
            struct.pack_into("<L", payload, at + 24, size)
        at += 4
    path.write_bytes(bytes(payload))


def test_a_declared_size_over_the_cap_is_refused_before_reading(saved) -> None:
    forge_declared_size(saved, "means_.npy", 0xFFFFFFF0)  # 4 GB declared by a few bytes
    refused(saved, r"'means_.npy' declares 4294967280 bytes")


def test_a_declared_size_is_not_trusted(saved) -> None:
    # the member holds more than it declares: the read is bounded by the declared size
    forge_declared_size(saved, "means_.npy", 100)
    refused(saved, r"means_")


def test_raising_max_bytes_admits_a_large_model(saved, gmm, blobs) -> None:
    refused(saved, r"over the limit of 1000 bytes", max_bytes=1000)
    loaded = emkit.load(saved, max_bytes=10 * MiB)
    np.testing.assert_array_equal(loaded.predict(blobs), gmm.predict(blobs))


@pytest.mark.parametrize("command", ["info", "predict", "detect"])
def test_the_cli_caps_model_files_by_max_model_mb(saved, blobs, tmp_path, command) -> None:
    from emkit.cli import main

    data = tmp_path / "blobs.csv"
    np.savetxt(data, blobs, delimiter=",", header="a,b", comments="")
    args = [command, str(saved)] + ([] if command == "info" else [str(data)])
    runner = CliRunner()
    small = runner.invoke(main, [*args, "--max-model-mb", "0.001"])
    assert small.exit_code == 2
    assert "over the limit of 1048 bytes" in small.output
    assert "--max-model-mb raises it" in small.output
    assert runner.invoke(main, [*args, "--max-model-mb", "1"]).exit_code == 0


def test_an_npy_header_declaring_8_terabytes_is_refused_without_allocating(saved) -> None:
    members = members_of(saved)
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    members["means_.npy"] = buffer.getvalue() + bytes(64)
    write_members(saved, members)
    refused(saved, r"'means_.npy' declares an array of shape \(1000000000000,\).*holds 64 bytes")


def test_an_npy_member_with_trailing_or_missing_bytes_is_refused(saved) -> None:
    members = members_of(saved)
    members["weights_.npy"] = npy(np.ones(3) / 3) + b"tail"
    write_members(saved, members)
    refused(saved, r"'weights_.npy' declares an array of shape \(3,\)")
    members["weights_.npy"] = npy(np.ones(3) / 3)[:-4]
    write_members(saved, members)
    refused(saved, r"'weights_.npy'")


@pytest.mark.parametrize(
    "array, match",
    [
        (np.ones(3, dtype=complex) / 3, "complex128 values; model arrays hold real numbers"),
        (np.array(["a", "b", "c"]), "<U1 values"),
        (np.zeros(3, dtype=[("a", "f8")]), "real numbers"),
    ],
)
def test_arrays_that_are_not_real_numbers_are_refused(saved, array, match) -> None:
    replace_array(saved, "weights_", array)
    refused(saved, match)


def test_too_many_members_are_refused_before_the_directory_is_parsed(saved) -> None:
    members = members_of(saved)
    members.update({f"x{i}_.npy": b"" for i in range(MAX_MEMBERS + 1)})
    write_members(saved, members)
    refused(saved, f"at most {MAX_MEMBERS} members")


def test_other_compression_methods_are_refused(saved) -> None:
    members = members_of(saved)
    with zipfile.ZipFile(saved, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    refused(saved, "compression method 12")


def test_big_endian_arrays_load_as_native(saved, gmm, blobs) -> None:
    replace_array(saved, "means_", gmm.means_.astype(">f8"))
    loaded = emkit.load(saved)
    assert loaded.means_.dtype == np.float64 and loaded.means_.dtype.isnative
    np.testing.assert_array_equal(loaded.predict(blobs), gmm.predict(blobs))


def test_deeply_nested_json_is_a_model_file_error(saved) -> None:
    members = members_of(saved)
    members["model.json"] = b"[" * 100_000 + b"]" * 100_000
    write_members(saved, members)
    refused(saved, "no readable model.json")


# --------------------------------------------------------------------------------------------------
# item 6: loaded values are validated like a user start
# --------------------------------------------------------------------------------------------------


def scaled(path: Path, key: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    replace_array(path, key, change(np.load(io.BytesIO(members_of(path)[f"{key}.npy"]))))


def with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize(
    "key, change, match",
    [
        ("means_", with_nan, r"means_ contains NaN or inf"),
        ("weights_", with_nan, r"weights_ contains NaN"),
        ("weights_", lambda w: np.r_[0.0, w[1:] / w[1:].sum()], r"weights_ must be non-negative"),
        ("weights_", lambda w: -w, r"weights_ must be non-negative"),
        ("weights_", lambda w: 1.8 * w, r"weights_ .*sum 1.8"),
        ("weights_", lambda w: w[:2], r"weights_ must have shape \(3,\)"),
        ("precisions_cholesky_", lambda p: -p, r"precisions_cholesky_ must have a positive diag"),
        ("precisions_cholesky_", lambda p: p + np.inf, r"precisions_cholesky_ contains NaN or inf"),
        ("precisions_cholesky_", lambda p: p.transpose(0, 2, 1), r"upper triangular"),
        ("precisions_cholesky_", lambda p: p[:, :1], r"must have shape \(3, 2, 2\)"),
        ("log_density_quantiles_", with_nan, r"log_density_quantiles_ contains NaN"),
        ("log_density_quantiles_", lambda q: q[::-1], r"non-decreasing"),
        ("means_", lambda m: m.astype(np.int64), r"means_ must be a float32 or float64 array"),
        ("history_", with_nan, r"history_ contains NaN or inf"),
        ("history_", lambda h: h[:, None], r"history_ must have 1 axis"),
        ("restart_objectives_", lambda r: r + np.inf, r"restart_objectives_ contains NaN"),
    ],
)
def test_invalid_gaussian_mixture_values_are_refused(saved, key, change, match) -> None:
    scaled(saved, key, change)
    refused(saved, match)


def test_derived_arrays_are_rebuilt_from_the_factors(saved, gmm) -> None:
    scaled(saved, "covariances_", lambda c: c * np.nan)
    loaded = emkit.load(saved)
    np.testing.assert_array_equal(loaded.covariances_, gmm.covariances_)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda h: h["attributes"].update(n_features_in_=3), r"n_features_in_ is 3"),
        (lambda h: h["attributes"].update(n_features_in_="2"), r"n_features_in_ must be int"),
        (lambda h: h["attributes"].pop("converged_"), r"converged_ must be bool, got None"),
        (lambda h: h["attributes"].update(feature_names_in_=["a"]), r"feature_names_in_"),
        (lambda h: h["params"].update(covariance_type="bogus"), r"covariance_type must be one"),
        (lambda h: h["params"].update(reg_covar=-1), r"reg_covar must be a finite number >= 0"),
        (lambda h: h["params"].update(n_components=2), r"n_components is 2"),
        (lambda h: h["arrays"].remove("weights_") or h["attributes"].update(weights_=[1]),
         r"the fitted array weights_ is missing \(got list\)"),
        (lambda h: h["arrays"].remove("means_"), r"the fitted array means_ is missing"),
        (lambda h: h["attributes"].update(lower_bound_=float("nan")), r"lower_bound_ must be"),
        (lambda h: h["attributes"].update(lower_bound_="x"), r"lower_bound_ must be float"),
        (lambda h: h["attributes"].update(best_restart_=1), r"best_restart_ is 1, but there"),
        (lambda h: h["attributes"].update(best_restart_=-1), r"best_restart_ must be int >= 0"),
    ],
)
def test_invalid_header_values_are_refused(saved, change, match) -> None:
    edit_header(saved, change)
    refused(saved, match)


def test_a_property_name_in_the_header_is_refused(blobs, tmp_path) -> None:
    model = fit(MixtureModel("poisson", 2, random_state=0, max_iter=5), np.abs(blobs).round())
    path = emkit.save(model, tmp_path / "p.emk")
    edit_header(path, lambda h: h["attributes"].update(family_="gaussian"))
    refused(path, "'family_', which is not fitted state")


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.vstack([rng.poisson(2.0, (60, 2)), rng.poisson(9.0, (60, 2))]).astype(float)


@pytest.mark.parametrize(
    "key, change, match",
    [
        ("rates_", lambda r: -r, r"rates_ must be positive \(component 0\)"),
        ("rates_", with_nan, r"rates_ contains NaN"),
        ("rates_", lambda r: r[:, :1], r"rates_ must have shape \(2, 2\)"),
    ],
)
def test_invalid_poisson_rates_are_refused(counts, tmp_path, key, change, match) -> None:
    model = fit(MixtureModel("poisson", 2, random_state=0, max_iter=20), counts)
    path = emkit.save(model, tmp_path / "poisson.emk")
    scaled(path, key, change)
    refused(path, match)


@pytest.fixture(scope="module")
def hmm(blobs) -> GaussianHMM:
    return fit(GaussianHMM(3, covariance_type="diag", random_state=0, max_iter=10), blobs)


@pytest.mark.parametrize(
    "key, change, match",
    [
        ("transmat_", lambda t: t[:2, :2], r"transmat_ must have shape \(3, 3\)"),
        ("transmat_", lambda t: t[:, :2], r"transmat_ must have shape \(3, 3\)"),
        ("transmat_", lambda t: np.where(np.eye(3) > 0, -t, t), r"transmat_ must hold finite, non"),
        ("transmat_", lambda t: 0.5 * t, r"row 0 of transmat_ sums to 0.5"),
        ("startprob_", lambda s: np.r_[s, 0.0], r"startprob_ must have shape \(3,\)"),
        ("covariances_", lambda c: c, None),  # derived: rebuilt, any value loads
        ("precisions_cholesky_", lambda p: -p, r"precisions_cholesky_ must be positive"),
        ("means_", lambda m: m.astype(complex), r"complex128 values"),
    ],
)
def test_invalid_hmm_values_are_refused(hmm, blobs, tmp_path, key, change, match) -> None:
    path = emkit.save(hmm, tmp_path / "hmm.emk")
    scaled(path, key, change)
    if match is None:
        np.testing.assert_array_equal(emkit.load(path).predict(blobs), hmm.predict(blobs))
    else:
        refused(path, match)


def test_cli_predict_reports_an_invalid_model_instead_of_printing_nan(saved, tmp_path, blobs):
    from emkit.cli import main

    scaled(saved, "weights_", lambda w: 1.8 * w)
    data = tmp_path / "x.csv"
    np.savetxt(data, blobs[:5], delimiter=",", header="a,b", comments="")
    result = CliRunner().invoke(main, ["predict", str(saved), str(data), "--proba"])
    assert result.exit_code == 2
    assert "weights_" in result.output and str(saved) in result.output.replace("\n", "")
    assert "nan" not in result.output.lower()


def test_user_starts_get_the_family_check(counts) -> None:
    bad = MixtureModel("poisson", 2, components_init={"rates": [[1.0, -2.0], [3.0, 4.0]]})
    with pytest.raises(ValueError, match=r"components_init\['rates'\] must be positive"):
        bad.fit(counts)
    with pytest.raises(ValueError, match=r"weights_init must be non-negative"):
        MixtureModel("poisson", 2, weights_init=[0.0, 1.0]).fit(counts)
