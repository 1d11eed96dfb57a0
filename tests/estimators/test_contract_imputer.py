"""EMImputer through the contract suite (DESIGN.md): a transformer over two engine models.

``EMImputer("normal")`` fits :class:`emkit.MissingNormal` (engine model ``MissingNormalModel``)
and ``EMImputer("gmm")`` a :class:`emkit.GaussianMixture` with missing cells marginalised
(``FamilyMixture(Gaussian)``); the engine-level items run on those engine models as the imputer
configures them (its ``reg_covar=1e-6``, ``n_components=2``, ``"full"``), on data of their own.
The estimator-level items that assume an ``EMEstimator`` (restart records, warm start) do not
apply to a transformer: the cases declare those lacks.  The cases (``CASES``) join the one
registry (``contract_registry.py``); ``test_imputer.py`` runs scikit-learn's checks.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from contract import ContractCase, Problem, mixture_sample
from emkit import EMImputer
from emkit.engine import ArrayData, NumericalError
from emkit.families.covariance import CovarianceError
from emkit.families.gaussian import Gaussian
from emkit.models.missing import MissingNormalModel
from emkit.models.mixture import FamilyMixture
from test_contract_gmm import blank_cells, degenerate_gmm, reweight, split_rows
from test_missing_normal import incomplete_normal

REG_COVAR = EMImputer().reg_covar  # the imputer's default, which its engine models get

LACKS = {
    "monotone": (
        "the imputer's default reg_covar=1e-6 is added after each M-step, which then no longer "
        "maximises the likelihood it tracks (no log_prior term); plain EM on the same engine "
        "models without it is checked by the missing-normal and gmm-*-missing cases"
    ),
    "estimator_restarts": (
        "EMImputer hands n_init to the MissingNormal / GaussianMixture it fits and keeps only "
        "their parameters: it reports no restart_objectives_, best_restart_ or lower_bound_ "
        "(the missing-normal and gmm cases check those estimators' restarts)"
    ),
    "warm_start": (
        "EMImputer has no warm_start parameter: every fit starts afresh (a transformer, like "
        "scikit-learn's IterativeImputer)"
    ),
    "sklearn_checks": (
        "test_imputer.py gives EMImputer() and EMImputer('gmm', n_components=1) to "
        "check_estimator"
    ),
}


def _nan_mean(X: np.ndarray) -> np.ndarray:
    return np.nanmean(X, axis=0)


# --- model="normal": MissingNormalModel ----------------------------------------------------------
def normal_problem(seed: int) -> Problem:
    X = incomplete_normal(seed, n=120, d=4, rate=0.3)
    model = MissingNormalModel(4, origin=_nan_mean(X), reg_covar=REG_COVAR)
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(seed)))


def normal_slow_problem() -> Problem:
    """Three strongly correlated columns, most of two of them missing: plain EM crawls."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    X = np.column_stack([x, x + 0.1 * rng.normal(size=300), x - 0.2 * rng.normal(size=300)])
    X[:150, 1] = np.nan
    X[100:250, 2] = np.nan
    model = MissingNormalModel(3, origin=_nan_mean(X), reg_covar=REG_COVAR)
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(1)))


# --- model="gmm": FamilyMixture(Gaussian("full")) with missing cells ------------------------------
def gmm_problem(seed: int, n_samples: int = 150) -> Problem:
    X = blank_cells(mixture_sample(seed, 2, n_samples, 3), seed, rate=0.2)
    family = Gaussian("full", REG_COVAR, _nan_mean(X))
    model = FamilyMixture(family, 2, n_features=3)
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(seed)))


def gmm_slow_problem() -> Problem:
    """Two heavily overlapping clusters in 3-D, a fifth of the cells missing (240 rows)."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(140, 3)), rng.normal(size=(100, 3)) * 1.2 + [1.5, 0.5, 0.0]])
    X = blank_cells(X, 3, rate=0.2)
    model = FamilyMixture(Gaussian("full", REG_COVAR, _nan_mean(X)), 2, n_features=3)
    data = ArrayData.of(X)
    return Problem(model, data, model.init(data, np.random.default_rng(1)))


def imputer_case(kind: str) -> ContractCase:
    # plain EM steps for "normal" (MissingNormal's default is SQUAREM), so that the batch fit's
    # max_iter=3 is three EM steps, as online EM's three full-batch steps are (item 6)
    plain = {"accelerate": "none"} if kind == "normal" else {}

    def estimator(**overrides) -> EMImputer:
        return EMImputer(**{"model": kind, "n_components": 2, "random_state": 0, **plain,
                            **overrides})

    if kind == "normal":
        engine = {
            "problem": normal_problem,
            "acceleration_problem": normal_slow_problem,
            "estimator_data": lambda seed: incomplete_normal(seed, n=150, d=3),
        }
        names = ("mean_", "covariance_", "weights_", "means_", "covariances_")
    else:
        engine = {
            "problem": gmm_problem,
            "acceleration_problem": gmm_slow_problem,
            "estimator_data": lambda seed: blank_cells(mixture_sample(seed, 2, 200, 2), seed),
            "degenerate": degenerate_gmm,
            "degenerate_errors": (CovarianceError, NumericalError),
        }
        names = ("weights_", "means_", "covariances_", "precisions_cholesky_", "mean_")
    return ContractCase(
        id=f"imputer-{kind}",
        problems=st.nothing(),  # monotone is a declared lack
        split=split_rows,
        reweight=reweight,
        estimator=estimator,
        fitted_params=lambda e: {name: getattr(e, name) for name in names},
        predict_methods=("transform",),
        score_method=None,  # a transformer: no score
        stats_rtol=1e-9,
        stats_atol=1e-8,
        squarem_tol=1e-12,
        squarem_rtol=1e-7,
        lacks=LACKS,
        **engine,
    )


CASES = [imputer_case("normal"), imputer_case("gmm")]


def test_the_cases_use_the_imputers_engine_models() -> None:
    """The engine problems are the models the imputer fits (with its regularisation)."""
    X = CASES[0].estimator_data(0)
    fitted = CASES[0].estimator(max_iter=50).fit(X)
    assert fitted.reg_covar == REG_COVAR == CASES[0].problem(0).model.reg_covar
    gmm, imputer = CASES[1].problem(0).model, CASES[1].estimator()
    assert gmm.family.reg_covar == REG_COVAR and gmm.n_components == imputer.n_components
    assert gmm.family.covariance.covariance_type == imputer.covariance_type
