"""Bundled data sets: shapes, names and values match their published source."""

from __future__ import annotations

import dataclasses
from importlib import resources

import numpy as np
import pytest

from emkit._tabular import read_table
from emkit.datasets import (
    Dataset,
    load_faithful,
    load_galaxies,
    load_hasselblad,
    load_iris,
    load_survey,
)

DATA = resources.files("emkit.datasets").joinpath("data")


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
    readme = DATA.joinpath("README.md").read_text("utf-8")
    assert "faithful.csv" in readme and "Azzalini" in readme
    csvs = sorted(p.name for p in DATA.iterdir() if p.name.endswith(".csv"))
    assert csvs == ["faithful.csv", "galaxies.csv", "hasselblad.csv", "iris.csv", "sp500.csv",
                    "survey.csv"]
    for name in csvs:
        assert f"`{name}`" in readme
    for source in ("MASS::galaxies", "Roeder", "datasets::iris", "Fisher", "MASS::survey",
                   "Hasselblad", "1969", "MASS::SP500"):
        assert source in readme


def test_galaxies_values_match_mass():
    # R: length(galaxies) 82; range(galaxies) 9172 34279; galaxies[1:3] 9172 9350 9483
    ds = load_galaxies()
    assert ds.shape == (82, 1) and ds.feature_names == ["velocity"]
    assert ds.data[:3, 0].tolist() == [9172.0, 9350.0, 9483.0]
    assert ds.data.min() == 9172.0 and ds.data.max() == 34279.0
    assert np.all(ds.data == np.round(ds.data))
    assert "MASS::galaxies" in ds.description and "km/s" in ds.description


def test_iris_values_match_r():
    # R: colMeans(iris[, 1:4]) 5.843333 3.057333 3.758000 1.199333; table(iris$Species) 50 each
    ds = load_iris()
    assert ds.shape == (150, 4)
    assert ds.feature_names == ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]
    np.testing.assert_allclose(ds.data.mean(axis=0), [5.843333, 3.057333, 3.758, 1.199333],
                               atol=5e-7)
    assert ds.target_names == ["setosa", "versicolor", "virginica"]
    assert np.bincount(ds.target).tolist() == [50, 50, 50]
    np.testing.assert_array_equal(ds.data[0], [5.1, 3.5, 1.4, 0.2])


def test_survey_answers_match_mass():
    # R: summary(MASS::survey[, c("Sex", "W.Hnd", "Fold", "Clap", "Exer", "Smoke")])
    full = load_survey(dropna=False)
    assert full.shape == (237, 6) and full.data.dtype == object
    assert full.feature_names == ["Sex", "W.Hnd", "Fold", "Clap", "Exer", "Smoke"]

    def counts(column: str) -> dict[str, int]:
        values, n = np.unique(full.data[:, full.feature_names.index(column)].astype(str),
                              return_counts=True)
        return dict(zip(values.tolist(), n.tolist(), strict=True))

    assert counts("Sex") == {"Female": 118, "Male": 118, "NA": 1}
    assert counts("Fold") == {"L on R": 99, "Neither": 18, "R on L": 120}
    assert counts("Exer") == {"Freq": 115, "None": 24, "Some": 98}  # "None" is a level
    assert counts("Smoke") == {"Heavy": 11, "NA": 1, "Never": 189, "Occas": 19, "Regul": 17}
    dropped = load_survey()
    assert dropped.shape == (233, 6)
    assert "NA" not in set(dropped.data.ravel().tolist())


def test_survey_csv_reads_as_text_with_missing_cells():
    X, names = read_table(DATA.joinpath("survey.csv"), text=True)
    assert names == load_survey().feature_names and X.shape == (237, 6)
    missing = np.array([[isinstance(v, float) and np.isnan(v) for v in row] for row in X])
    assert np.flatnonzero(missing.any(axis=1)).tolist() == [42, 44, 69, 136]
    complete = X[~missing.any(axis=1)]
    np.testing.assert_array_equal(complete, load_survey().data)
    assert X[1, 4] == "None"  # not a missing value in a text column


def test_iris_reads_as_text_with_typed_columns():
    X, names = read_table(DATA.joinpath("iris.csv"), text=True)
    assert names[-1] == "Species" and X.dtype == object
    assert isinstance(X[0, 0], float) and X[0, 4] == "setosa"
    np.testing.assert_array_equal(X[:, :4].astype(float), load_iris().data)


def test_hasselblad_counts():
    ds = load_hasselblad()
    assert ds.shape == (10, 1) and ds.feature_names == ["deaths"]
    assert ds.data[:, 0].tolist() == list(range(10))
    assert ds.sample_weight.tolist() == [162, 267, 271, 185, 111, 61, 27, 8, 3, 1]
    assert "Hasselblad" in ds.description


@pytest.mark.parametrize("loader", [load_galaxies, load_iris, load_survey, load_hasselblad])
def test_loaders_return_fresh_frozen_datasets(loader):
    a, b = loader(), loader()
    assert isinstance(a, Dataset) and a.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.data = None  # type: ignore[misc]
    a.data[0, 0] = -1
    assert b.data[0, 0] != -1
