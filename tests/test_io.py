"""Model files: atomic writes, the JSON header, feature names, round trips (emkit.io)."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import emkit
from emkit import GaussianMixture
from emkit.families.covariance import Tied
from emkit.io import FORMAT, FORMAT_VERSION, ModelFileError, atomic_write_bytes, read_header


def fit(model: GaussianMixture, X) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


@pytest.fixture(scope="module")
def model(blobs: np.ndarray) -> GaussianMixture:
    return fit(GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=20), blobs)


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------


def fail(*args, **kwargs):
    raise OSError("disk full (simulated)")


def test_failed_replace_leaves_no_file_and_no_temp_file(model, tmp_path, monkeypatch) -> None:
    target = tmp_path / "model.emk"
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        emkit.save(model, target)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file(model, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="simulated"):
        emkit.save(model, tmp_path / "model.emk")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_file(model, blobs, tmp_path, monkeypatch) -> None:
    target = emkit.save(model, tmp_path / "model.emk")
    before = target.read_bytes()
    other = fit(GaussianMixture(2, random_state=1, max_iter=5), blobs)
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        emkit.save(other, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.emk"]
    monkeypatch.undo()
    np.testing.assert_array_equal(emkit.load(target).predict(blobs), model.predict(blobs))


def test_interrupt_during_write_is_cleaned_up_too(tmp_path, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "file.bin", b"payload")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_creates_folders_and_replaces(tmp_path) -> None:
    target = tmp_path / "a" / "b" / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_nothing_is_written_for_an_unfitted_or_foreign_estimator(tmp_path) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        emkit.save(GaussianMixture(2), tmp_path / "m.emk")
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_estimator_of_the_same_name_is_refused(blobs, tmp_path) -> None:
    # scikit-learn's GaussianMixture has emkit's class name and attribute names: it must not be
    # written as an emkit model
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    foreign = SklearnGaussianMixture(2, random_state=0).fit(blobs)
    with pytest.raises(TypeError, match="sklearn.*not an emkit estimator"):
        emkit.save(foreign, tmp_path / "m.emk")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# the header
# --------------------------------------------------------------------------------------------------


def test_header_contents(model: GaussianMixture, tmp_path: Path) -> None:
    path = emkit.save(model, tmp_path / "model.emk")
    assert isinstance(path, Path) and path == tmp_path / "model.emk"
    header = read_header(path)
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("model.json")) == header
        members = set(zf.namelist())
    assert header["format"] == FORMAT == "emkit-model"
    assert header["format_version"] == FORMAT_VERSION
    assert header["emkit_version"] == emkit.__version__
    assert header["estimator"] == "GaussianMixture"
    assert header["params"] == model.get_params(deep=False)
    attributes = header["attributes"]
    assert attributes["converged_"] == model.converged_
    assert attributes["n_iter_"] == model.n_iter_ > 0
    assert attributes["n_features_in_"] == 2
    assert attributes["lower_bound_"] == model.lower_bound_
    assert header["arrays"] == sorted(header["arrays"])
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
        "history_",
    ):
        assert name in header["arrays"]
    assert members == {"model.json"} | {f"{a}.npy" for a in header["arrays"]}
    # the header is the readable part: no private state and no arrays inline
    assert all(not k.startswith("_") and k.endswith("_") for k in attributes)
    assert not any(isinstance(v, list) and len(v) > 50 for v in attributes.values())


def test_read_header_rejects_non_model_files(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="not a zip"):
        read_header(path)
    with pytest.raises(FileNotFoundError):
        read_header(tmp_path / "missing.emk")
    with pytest.raises(FileNotFoundError):
        emkit.load(tmp_path)  # a folder is not a model file


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------


def test_feature_names_survive_save_and_load(blobs: np.ndarray, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(blobs, columns=["length", "width"])
    model = fit(GaussianMixture(2, random_state=0), frame)
    loaded = emkit.load(emkit.save(model, tmp_path / "named.emk"))
    np.testing.assert_array_equal(loaded.feature_names_in_, ["length", "width"])
    assert loaded.feature_names_in_.dtype == object
    assert read_header(tmp_path / "named.emk")["attributes"]["feature_names_in_"] == [
        "length",
        "width",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same names: no feature-name warning
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    renamed = frame.rename(columns={"width": "height"})
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(renamed)


def test_model_without_feature_names_has_none_after_load(model, tmp_path) -> None:
    loaded = emkit.load(emkit.save(model, tmp_path / "plain.emk"))
    assert not hasattr(model, "feature_names_in_")
    assert not hasattr(loaded, "feature_names_in_")


def test_float32_model_round_trip(blobs: np.ndarray, tmp_path: Path) -> None:
    X = blobs.astype(np.float32)
    model = fit(GaussianMixture(3, random_state=0, max_iter=10), X)
    loaded = emkit.load(emkit.save(model, tmp_path / "f32.emk"))
    for name in ("weights_", "means_", "precisions_cholesky_", "covariances_"):
        value = getattr(loaded, name)
        assert value.dtype == getattr(model, name).dtype
        np.testing.assert_array_equal(value, getattr(model, name))
    out = loaded.score_samples(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model.score_samples(X))


def test_covariance_structure_object_is_saved_by_name(blobs, tmp_path) -> None:
    model = fit(GaussianMixture(2, covariance_type=Tied(), random_state=0, max_iter=10), blobs)
    path = emkit.save(model, tmp_path / "tied.emk")
    assert read_header(path)["params"]["covariance_type"] == "tied"
    loaded = emkit.load(path)
    assert loaded.covariance_type == "tied"
    np.testing.assert_array_equal(loaded.predict_proba(blobs), model.predict_proba(blobs))


def test_loaded_model_can_be_refitted_and_warm_started(model, blobs, tmp_path) -> None:
    loaded = emkit.load(emkit.save(model, tmp_path / "m.emk"))
    loaded.set_params(warm_start=True, max_iter=1, tol=0.0)
    original = GaussianMixture(
        **{**model.get_params(), "warm_start": True, "max_iter": 1, "tol": 0.0}
    )
    for name in ("weights_", "means_", "precisions_cholesky_", "converged_"):
        setattr(original, name, getattr(model, name))
    original.n_features_in_ = model.n_features_in_
    fit(loaded, blobs)
    fit(original, blobs)
    np.testing.assert_allclose(loaded.means_, original.means_, rtol=1e-13)
    assert loaded.n_iter_ == 1


def test_a_newer_format_is_refused_with_advice(model, tmp_path) -> None:
    path = emkit.save(model, tmp_path / "m.emk")
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["model.json"])
    header["format_version"] = FORMAT_VERSION + 1
    members["model.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    with pytest.raises(ModelFileError, match="newer emkit .* upgrade"):
        emkit.load(path)


def test_written_files_get_the_usual_permissions(tmp_path) -> None:
    import os
    import stat

    from emkit.io import atomic_write_bytes

    umask = os.umask(0o022)
    try:
        target = tmp_path / "out.bin"
        atomic_write_bytes(target, b"payload")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        assert target.read_bytes() == b"payload"
    finally:
        os.umask(umask)
