"""``emkit.MixtureModel``: a finite mixture of any component family, fitted by EM."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import DensityMixin

from emkit._validation import InputError, check_sample_weight, check_weights, check_X
from emkit.engine import ArrayData, ProgressCallback
from emkit.estimators._base import (
    EMEstimator,
    check_family_fitted,
    check_fitted_common,
    fitted_array,
    fitted_family,
    fitted_family_params,
)
from emkit.estimators._mixture import MixtureInference
from emkit.estimators.missing import check_incomplete
from emkit.families import Family, make_family
from emkit.models.learn import MixtureLearn
from emkit.models.mixture import MIXTURE_INITS, FamilyMixture, MixtureParams


class MixtureModel(MixtureInference, DensityMixin, EMEstimator):
    """Mixture ``p(x) = Σ_k π_k f(x | θ_k)`` of a component ``family`` fitted by EM.

    ``family`` is a name (``"poisson"``, …) or a family object; the settings mean what they mean
    for :class:`emkit.GaussianMixture`.  Fitted: ``weights_``, ``family_`` (the configured
    family), ``components_`` (its parameters), and the family's named arrays as attributes
    (e.g. ``rates_`` for Poisson).  ``weights_init`` / ``components_init`` give a start (the
    family's parameter object, or a dict of its fields such as ``{"rates": [[1.0], [2.5]]}``);
    ``short_runs`` > 0 starts every run from the best of that many short EM runs of at most
    ``short_iter`` iterations (emEM); ``learn`` (an :class:`emkit.MixtureLearn`) holds
    parameters at their start.

    Missing cells (NaN, or None in categorical input) are marginalised by every family but
    multinomial (``family.handles_missing``): a row's density is that of its observed cells,
    and the M-step counts each missing cell at its expected statistics (rows with nothing
    observed are left out).
    ``backend``: ``"local"`` or ``"dask"``, as for :class:`emkit.GaussianMixture`.
    """

    _start_arguments = ("weights_init", "components_init")

    def __init__(
        self,
        family: str | Family = "poisson",
        n_components: int = 1,
        *,
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means++",
        short_runs: int = 0,
        short_iter: int = 5,
        weights_init: Any = None,
        components_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        learn: MixtureLearn | None = None,
        verbose: int = 0,
        backend: str = "local",
    ):
        self.family = family
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.short_runs = short_runs
        self.short_iter = short_iter
        self.weights_init = weights_init
        self.components_init = components_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.stopping = stopping
        self.accelerate = accelerate
        self.learn = learn
        self.verbose = verbose
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        family = make_family(self.family)
        tags.input_tags.positive_only = family.positive_only
        tags.input_tags.string = not family.numeric_input
        tags.input_tags.allow_nan = family.handles_missing
        return tags

    def _reads_labels(self) -> bool:
        return not make_family(self.family).numeric_input

    # --- fitting ---------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        callback: ProgressCallback | None = None,
    ) -> MixtureModel:
        """Fit by EM; ``sample_weight`` multiplies each row's contribution to the statistics."""
        self._run_engine(*self._fit_data(X, sample_weight=sample_weight), callback)
        return self

    def _fit_inputs(
        self, X: Any, *, reset: bool, model: Any = None, sample_weight: Any = None
    ) -> tuple[FamilyMixture, ArrayData]:
        if model is None:
            self._check_settings()
            family = make_family(self.family) if reset else self.family_
            _check_mixture_component(family)
        else:
            family = model.family
        raw = self._validate(family, X, reset=reset)
        if reset and model is None:
            family = family.configure(raw)
        Xf = self._encode(family, raw)
        w = check_sample_weight(sample_weight, Xf)
        if np.isnan(Xf).any():  # rows with nothing observed are left out (EmptyRowsWarning)
            keep = check_incomplete(Xf, w, self._names(), min_observed=1, whole=model is None)
            Xf, w = Xf[keep], w[keep]
        if model is None:
            if Xf.shape[0] < self.n_components:
                raise InputError(
                    f"n_components={self.n_components} needs at least as many samples, "
                    f"got {Xf.shape[0]}"
                )
            self._family, self.family_config_ = family, family.config()
            model = self._engine_model()
        return model, ArrayData(Xf, w)

    def _check_settings(self) -> None:
        if not (isinstance(self.n_components, (int, np.integer)) and self.n_components >= 1):
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if self.init_params not in MIXTURE_INITS:
            raise ValueError(
                f"init_params must be one of {MIXTURE_INITS}, got {self.init_params!r}"
            )
        self._learn()

    def check_fitted_state(self) -> None:
        """Settings and family as ``fit`` checks them; ``weights_`` a simplex; the family's
        arrays by the family's ``check_params`` (as ``components_init`` is checked)."""
        self._check_settings()
        _check_mixture_component(make_family(self.family))
        family = self.family_
        _check_mixture_component(family)
        weights = fitted_array(self, "weights_", 1)
        K = int(self.n_components)
        check_weights(weights, K, "weights_")
        D = check_fitted_common(self)
        components = check_family_fitted(self, family, "_components", K, D)
        self._check_quantile_table()
        self._set_fitted(MixtureParams(weights, components))

    def _encode(self, family: Family, raw: np.ndarray) -> np.ndarray:
        """The family's float codes; missing cells (NaN, None) become NaN when the family
        marginalises them and are an error otherwise."""
        names = self._names()
        Xf = family.encode(raw, names, allow_missing=family.handles_missing)
        family.check(Xf, names)
        return Xf

    def _validate(self, family: Family, X: Any, reset: bool) -> np.ndarray:
        if family.numeric_input:
            return check_X(self, X, reset=reset, allow_nan=family.handles_missing)
        from sklearn.utils.validation import validate_data

        arr = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
        return np.asarray(arr, dtype=object)

    def _names(self) -> list[str] | None:
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    def _engine_model(self) -> FamilyMixture:
        return FamilyMixture(
            self.family_,
            int(self.n_components),
            self.init_params,
            n_features=int(getattr(self, "n_features_in_", 1)),
            learn=self._learn(),
        )

    def _start_params(
        self, model: FamilyMixture, data: ArrayData, rng: np.random.Generator
    ) -> MixtureParams | None:
        """The user's start (``weights_init`` and/or ``components_init``), else None (use init).

        ``components_init`` is the family's parameter object, or a dict of some of its fields
        (e.g. ``{"rates": [[1.0], [2.5]]}`` for Poisson); fields not given come from the init.
        """
        if self.weights_init is None and self.components_init is None:
            return None
        base = model.init(data, rng)
        K = model.n_components
        weights = base.weights
        if self.weights_init is not None:
            weights = check_weights(self.weights_init, K, "weights_init")
        components = base.components
        if isinstance(self.components_init, dict):
            components = _replace_fields(base.components, self.components_init)
        elif self.components_init is not None:
            components = self.components_init
        label = "components_init[{!r}]".format
        model.family.check_params(components, K, data.width, label)
        return MixtureParams(weights, components)

    def _set_fitted(self, params: MixtureParams) -> None:
        self.weights_ = params.weights
        self._components = params.components
        for name, value in self.family_.describe(params.components).items():
            setattr(self, f"{name}_", value)

    # The fitted family and its parameters live in memory after fit; a loaded model file holds
    # only JSON and arrays, so there they are rebuilt from ``family_config_`` (the configured
    # family's config) and the family's named arrays (``describe`` / ``restore``).
    @property
    def family_(self) -> Family:
        """The configured component family."""
        return fitted_family(self, "_family", "family_config_")

    @property
    def components_(self) -> Any:
        """The family's parameters of the K components."""
        return fitted_family_params(self, "_components", self.family_)

    def _get_fitted_params(self) -> MixtureParams:
        return MixtureParams(self.weights_, self.components_)

    # --- inference (shared: MixtureInference) ----------------------------------------------------
    def _fitted_model(self) -> FamilyMixture:
        return self._engine_model()

    def _check_predict_X(self, X: Any) -> np.ndarray:
        return self._encode(self.family_, self._validate(self.family_, X, reset=False))

    def _sample_component(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        return self.family_.sample(self.components_, k, n, rng)



def _check_mixture_component(family: Family) -> None:
    if not family.mixture_component:
        raise ValueError(
            f"the {family.name!r} family is an HMM emission (a mixture per state); a mixture "
            "of such mixtures is a Gaussian mixture with K·M components: use GaussianMixture"
        )


def _replace_fields(params: Any, given: dict[str, Any]) -> Any:
    """``params`` (a dataclass) with the arrays in ``given`` put in, each checked for size."""
    if not dataclasses.is_dataclass(params):
        raise InputError(
            f"components_init as a dict needs dataclass parameters; give a "
            f"{type(params).__name__} instead"
        )
    names = [f.name for f in dataclasses.fields(params)]
    values = {}
    for key, value in given.items():
        if key not in names:
            raise InputError(f"components_init has no field {key!r}; the fields are {names}")
        like = np.asarray(getattr(params, key))
        arr = np.asarray(value, dtype=like.dtype)
        if arr.size != like.size or not np.all(np.isfinite(arr)):
            raise InputError(
                f"components_init[{key!r}] must hold {like.size} finite numbers (shape "
                f"{like.shape}), got {np.shape(value)}"
            )
        values[key] = arr.reshape(like.shape)
    return dataclasses.replace(params, **values)
