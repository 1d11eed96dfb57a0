"""Bundled data sets: shapes, names and values match their published source."""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np
import pytest

from emkit.datasets import Dataset, load_faithful


def test_faithful_shape_names_dtype():
    ds = load_faithful()
    assert isinstance(ds, Dataset)
    assert ds.data.shape == (272, 2) == ds.shape
    assert ds.data.dtype == np.float64
    assert ds.feature_names == ["eruptions", "waiting"]


def test_faithful_values_match_r():
    # R: head(faithful, 2) -> 3.600 79 / 1.800 54; colMeans(faithful) -> 3.487783 70.897059
    data = load_faithful().data
    np.testing.assert_array_equal(data[0], [3.6, 79.0])
    np.testing.assert_array_equal(data[1], [1.8, 54.0])
    np.testing.assert_allclose(data.mean(axis=0), [3.487783, 70.897059], atol=5e-7)
    assert np.all(data[:, 1] == np.round(data[:, 1]))  # waiting times are whole minutes


def test_faithful_description_names_source():
    text = load_faithful().description
    assert "datasets::faithful" in text
    assert "Härdle" in text and "Azzalini" in text


def test_dataset_is_frozen_and_fresh_per_call():
    a, b = load_faithful(), load_faithful()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.data = np.zeros(1)  # type: ignore[misc]
    a.data[0, 0] = -1.0
    assert b.data[0, 0] == 3.6


def test_data_folder_documents_its_files():
    readme = resources.files("emkit.datasets").joinpath("data", "README.md").read_text("utf-8")
    assert "faithful.csv" in readme and "Azzalini" in readme
