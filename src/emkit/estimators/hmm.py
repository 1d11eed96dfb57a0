"""``emkit.HMM``: hidden Markov models with any emission family, fitted by Baum-Welch on the engine.

``HMM(emission=..., n_states=K)`` takes a family name (``"gaussian"``, ``"poisson"``, …) or a
family object; :class:`GaussianHMM` and :class:`PoissonHMM` are shorthands with hmmlearn's
attribute names.  Multiple sequences are rows of ``X`` cut by ``lengths`` (as in hmmlearn);
``sample_weight`` holds one weight per sequence.  NaN (or None) marks a missing observation: a
whole missing row is marginalised (the hidden chain moves on through it), and so are single
missing cells for every emission family with ``handles_missing`` (all of emkit's families but
multinomial, where a missing count leaves the row's total unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from emkit._validation import InputError, check_X, scaled_weights
from emkit.criteria import criteria
from emkit.engine import EMConfig, ProgressCallback
from emkit.engine.backend import LocalThreads
from emkit.engine.data import SequenceBatch, SequenceData, check_lengths
from emkit.engine.loop import chunk_rows
from emkit.engine.online import DEFAULT_KAPPA, DEFAULT_T0
from emkit.estimators._base import (
    EMEstimator,
    check_family_fitted,
    check_fitted_common,
    fitted_array,
    fitted_family,
    fitted_family_params,
)
from emkit.families import Family, make_family
from emkit.families.missing_cells import is_missing
from emkit.models.hmm import (
    HMM_INITS,
    HMMModel,
    HMMParams,
    Learn,
    PreparedHMM,
    check_probabilities,
)

_LEARN_FIELDS = tuple(f.name for f in fields(Learn))
ALGORITHMS = ("viterbi", "map")


class HMM(EMEstimator):
    """Hidden Markov model ``p(x) = Σ_z π_{z_1} Π_t A_{z_{t−1} z_t} f(x_t | θ_{z_t})``.

    Parameters: ``emission`` (family name or object), ``n_states``; ``startprob`` /
    ``transmat`` starting values (None: uniform; zeros in ``transmat`` stay zero, which fixes
    the topology, e.g. left-right models); ``emission_init`` starting emission parameters (the
    family's parameter object, or a dict of its named arrays as ``family.describe`` gives them;
    None: one M-step on a k-means++ partition, ``init_params``);
    ``learn`` (:class:`Learn`) freezes parts of the model; ``algorithm`` the default decoder.
    The loop settings (``tol`` on the relative change of the mean log-likelihood per
    observation, ``max_iter``, ``n_init``, ``warm_start``, ``accelerate="squarem"``, …) are
    those of every emkit estimator, and so is ``backend`` (``"dask"``: the E-steps on the
    workers of the active ``distributed.Client``, each partition whole sequences).

    Fitted: ``startprob_``, ``transmat_``, ``emission_`` (the configured family; its config in
    ``emission_config_``), ``emission_params_`` and the family's named arrays (``means_``,
    ``covariances_``, ``rates_``, …); ``history_`` holds the mean log-likelihood per
    observation after each iteration.
    """

    _start_arguments = ("startprob", "transmat", "emission_init")

    def __init__(
        self,
        emission: str | Family = "gaussian",
        n_states: int = 1,
        *,
        startprob: Any = None,
        transmat: Any = None,
        emission_init: Any = None,
        learn: Learn = Learn(),
        init_params: str = "k-means++",
        algorithm: str = "viterbi",
        tol: float = 1e-5,
        max_iter: int = 100,
        n_init: int = 1,
        random_state: Any = None,
        warm_start: bool = False,
        stopping: str = "relative",
        accelerate: str = "none",
        verbose: int = 0,
        backend: str = "local",
    ):
        self.emission = emission
        self.n_states = n_states
        self.startprob = startprob
        self.transmat = transmat
        self.emission_init = emission_init
        self.learn = learn
        self.init_params = init_params
        self.algorithm = algorithm
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.stopping = stopping
        self.accelerate = accelerate
        self.verbose = verbose
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing rows always; cells where the family can
        return tags

    def _reads_labels(self) -> bool:
        return not self._make_family().numeric_input

    def _make_family(self) -> Family:
        return make_family(self.emission)

    def _compat_attributes(self, params: HMMParams) -> dict[str, np.ndarray]:
        return {}

    # --- fitting ---------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        lengths: Any = None,
        *,
        sample_weight: Any = None,
        callback: ProgressCallback | None = None,
    ) -> HMM:
        """Fit by Baum-Welch; ``lengths`` cut the rows into sequences (None: one sequence),
        ``sample_weight`` weighs each sequence's contribution to the statistics.  ``X`` may be
        an out-of-core source of sequences (``emkit.ParquetData(path, sequence="id")``,
        ``CSVData``, ``DaskData``): each E-step reads it a piece of whole sequences at a
        time."""
        self._run_engine(*self._fit_data(X, lengths=lengths, sample_weight=sample_weight), callback)
        return self

    def partial_fit(  # type: ignore[override]
        self,
        X: Any,
        lengths: Any = None,
        *,
        sample_weight: Any = None,
        t0: float = DEFAULT_T0,
        kappa: float = DEFAULT_KAPPA,
        n_rows: float | None = None,
    ) -> HMM:
        """One online Baum-Welch step on the sequences of ``X`` (cut by ``lengths``), as
        :meth:`emkit.GaussianMixture.partial_fit`; ``n_rows`` counts observations."""
        arguments = {"X": X, "lengths": lengths, "sample_weight": sample_weight}
        return self._online(arguments, t0, kappa, n_rows)

    def _piece_arguments(self, piece: Any) -> dict[str, Any]:
        """A source's piece of whole sequences: their lengths."""
        if not isinstance(piece, SequenceData):
            raise InputError(
                "an HMM fits sequences: open the source with the column of sequence ids "
                "(e.g. emkit.ParquetData(path, sequence='id')) or with lengths=[...], so that "
                "its pieces hold whole sequences"
            )
        return {"lengths": piece.lengths}

    def _stream_arguments(self, item: Any) -> dict[str, Any]:
        """A batch of sequences: ``X`` (one sequence) or ``(X, lengths)``."""
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InputError(
                    "a batch of an HMM's fit_stream is an array (one sequence) or a pair "
                    f"(X, lengths), got a tuple of {len(item)}"
                )
            return {"X": item[0], "lengths": item[1]}
        return {"X": item}

    def _fit_inputs(
        self,
        X: Any,
        *,
        reset: bool,
        model: Any = None,
        lengths: Any = None,
        sample_weight: Any = None,
    ) -> tuple[HMMModel, SequenceData]:
        K = self._check_settings()
        if model is not None:
            family = model.emission
        else:
            family = self._make_family() if reset else self.emission_
        raw, cells = self._read(family, X, reset=reset)
        observed = ~cells.all(axis=1)
        if not observed.any():
            raise InputError("every row of X is missing (NaN): there is nothing to fit")
        if reset and model is None:
            family = family.configure(raw[observed])
        Xf = self._encode(family, raw, cells)
        lengths = check_lengths(lengths, Xf.shape[0])
        if model is None and int(observed.sum()) < K:
            raise InputError(
                f"n_states={K} needs at least as many observed rows, got {int(observed.sum())}"
            )
        try:
            data = SequenceData.of(Xf, lengths, sample_weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if sample_weight is not None:  # mean one: the fit does not depend on the weights' scale
            data = data.with_weights(scaled_weights(data.sequence_weights))
        if model is None:
            self._emission, self.emission_config_ = family, family.config()
            self._check_user_chain(K)
            model = self._engine_model()
        return model, data

    def _check_settings(self) -> int:
        K = self.n_states
        if not (isinstance(K, (int, np.integer)) and K >= 1):
            raise ValueError(f"n_states must be a positive integer, got {K!r}")
        if self.init_params not in HMM_INITS:
            raise ValueError(f"init_params must be one of {HMM_INITS}, got {self.init_params!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if not isinstance(self.learn, Learn):
            raise TypeError(
                f"learn must be an emkit.Learn(start=..., transitions=..., emissions=...), "
                f"got {self.learn!r}"
            )
        return int(K)

    def _check_user_chain(self, K: int) -> None:
        self._startprob = (
            None
            if self.startprob is None
            else check_probabilities(self.startprob, (K,), "startprob")
        )
        self._transmat = (
            None
            if self.transmat is None
            else check_probabilities(self.transmat, (K, K), "transmat")
        )

    def _names(self) -> list[str] | None:
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    def _engine_model(self) -> HMMModel:
        return HMMModel(
            emission=self.emission_,
            n_states=int(self.n_states),
            learn=self.learn,
            startprob=getattr(self, "_startprob", None),
            transmat=getattr(self, "_transmat", None),
            init_method=self.init_params,
            n_features=int(self.n_features_in_),
        )

    def _start_params(self, model: HMMModel, data: SequenceData, rng: np.random.Generator):
        if self.emission_init is None:
            return None
        startprob, transmat = model.initial_chain()
        init = self.emission_init
        try:
            if isinstance(init, Mapping):  # the family's named arrays (as a model file holds)
                init = model.emission.restore({k: np.asarray(v) for k, v in init.items()})
            shape = model.emission.log_prob(init, _first_row(data)).shape
        except KeyError as exc:
            raise InputError(
                f"emission_init lacks the array {exc}: give the arrays a fitted model of "
                f"{model.emission!r} describes ({_described_names(model, data)})"
            ) from None
        except (ValueError, IndexError, AttributeError, TypeError) as exc:
            raise InputError(
                f"emission_init does not fit this {model.emission!r} on {data.width} "
                f"feature(s): {exc}"
            ) from None
        if shape != (1, model.n_states):
            raise ValueError(
                f"emission_init describes {shape[1]} states, the model has {model.n_states}"
            )
        label = "emission_init[{!r}]".format
        model.emission.check_params(init, model.n_states, data.width, label)
        return HMMParams(startprob, transmat, init)

    def _set_fitted(self, params: HMMParams) -> None:
        self.startprob_ = params.startprob
        self.transmat_ = params.transmat
        self._emission_params = params.emission
        for name, value in self.emission_.describe(params.emission).items():
            setattr(self, f"{name}_", value)
        for name, value in self._compat_attributes(params).items():
            setattr(self, name, value)

    # The fitted family and emission parameters live in memory after fit; a model file holds
    # only JSON and arrays, from which they are rebuilt (``emission_config_``, the family's
    # ``describe`` arrays and ``restore``).
    @property
    def emission_(self) -> Family:
        """The configured emission family."""
        return fitted_family(self, "_emission", "emission_config_")

    @property
    def emission_params_(self) -> Any:
        """The emission family's parameters of the K states."""
        return fitted_family_params(self, "_emission_params", self.emission_)

    def _get_fitted_params(self) -> HMMParams:
        return HMMParams(self.startprob_, self.transmat_, self.emission_params_)

    def check_fitted_state(self) -> None:
        """Settings, the user's chain and ``learn`` as ``fit`` checks them; ``startprob_`` and
        ``transmat_`` probabilities of the fitted shapes (the kernels index them by state);
        the emission arrays by the family's ``check_params``.  The chain is kept as
        C-contiguous float64 (what the numba kernels read)."""
        K = self._check_settings()
        self._make_family()
        family = self.emission_
        self._check_user_chain(K)
        self.learn.held_groups(family)
        D = check_fitted_common(self)
        startprob = fitted_array(self, "startprob_", 1)
        transmat = fitted_array(self, "transmat_", 2)
        check_probabilities(startprob, (K,), "startprob_")
        check_probabilities(transmat, (K, K), "transmat_")
        emission = check_family_fitted(self, family, "_emission_params", K, D)
        chain = (np.ascontiguousarray(p, dtype=np.float64) for p in (startprob, transmat))
        self._set_fitted(HMMParams(*chain, emission))

    # --- model files (emkit.save / emkit.load) ---------------------------------------------------
    def _params_to_json(self, params: dict[str, Any]) -> dict[str, Any]:
        """JSON forms of the constructor arguments that are objects or arrays: ``learn`` as a
        dict of flags, ``startprob`` / ``transmat`` as nested lists, ``emission_init`` as the
        family's named arrays (``describe``) as lists."""
        out = dict(params)
        out["learn"] = {name: _learn_json(getattr(self.learn, name)) for name in _LEARN_FIELDS}
        for name in ("startprob", "transmat"):
            if out.get(name) is not None:
                out[name] = np.asarray(out[name], dtype=np.float64).tolist()
        init = out.get("emission_init")
        if init is not None and not isinstance(init, Mapping):
            out["emission_init"] = {
                key: np.asarray(value).tolist()
                for key, value in self.emission_.describe(init).items()
            }
        return out

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`_params_to_json` (``emission_init`` stays a dict of arrays,
        which ``fit`` restores through the family)."""
        out = dict(params)
        learn = out.get("learn")
        if isinstance(learn, Mapping):
            unknown = set(learn) - set(_LEARN_FIELDS)
            if unknown or not all(isinstance(v, (bool, list)) for v in learn.values()):
                raise ValueError(
                    f"learn must map {_LEARN_FIELDS} to true/false (emissions: or a list of "
                    f"group names), got {learn!r}"
                )
            try:
                out["learn"] = Learn(**learn)
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        elif "learn" in out:
            out["learn"] = Learn()  # an older file: the default
        for name in ("startprob", "transmat"):
            if out.get(name) is not None:
                out[name] = np.asarray(out[name], dtype=np.float64)
        init = out.get("emission_init")
        if isinstance(init, Mapping):
            out["emission_init"] = {k: np.asarray(v) for k, v in init.items()}
        elif init is not None:
            raise ValueError(f"emission_init must be a dict of arrays, got {type(init).__name__}")
        return out

    # --- inference -------------------------------------------------------------------------------
    def _read(self, family: Family, X: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validated 2-D input (object arrays for families of non-numeric data) and the mask
        of its missing cells."""
        if family.numeric_input:
            raw = check_X(self, X, reset=reset, allow_nan=True)
        else:
            from sklearn.utils.validation import validate_data

            arr = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
            raw = np.asarray(arr, dtype=object)
        return raw, _check_missing(raw, self._names(), family)

    def _encode(self, family: Family, raw: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """The family's float codes; missing cells become NaN."""
        names = self._names()
        Xf = np.asarray(family.encode(raw, names, allow_missing=bool(cells.any())))
        family.check(Xf, names)  # observed cells only
        return Xf

    def _prepare(self, X: Any, lengths: Any) -> SequenceData:
        self._check_fitted()
        raw, cells = self._read(self.emission_, X, reset=False)
        Xf = self._encode(self.emission_, raw, cells)
        return SequenceData.of(Xf, check_lengths(lengths, Xf.shape[0]))

    def _map(
        self, X: Any, lengths: Any, fn: Callable[[HMMModel, PreparedHMM, SequenceBatch], Any]
    ) -> list:
        """``fn(model, prepared, batch)`` of every batch of the sequences of user input ``X``,
        in order (:func:`map_sequence_batches`)."""
        data = self._prepare(X, lengths)
        return map_sequence_batches(self._engine_model(), self._get_fitted_params(), data, fn)

    def score_sequences(self, X: Any, lengths: Any = None) -> np.ndarray:
        """``log p(x_s)`` of every sequence, shape ``(n_sequences,)`` (the forward pass)."""
        parts = self._map(X, lengths, lambda m, p, b: m.filter(p, b.X, b.offsets)[0])
        return np.concatenate(parts)

    def score(self, X: Any, lengths: Any = None) -> float:
        """Total log-likelihood ``Σ_s log p(x_s)`` (hmmlearn's convention)."""
        return float(self.score_sequences(X, lengths).sum())

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """State posteriors ``P(z_t = k | x)`` (forward-backward), shape ``(n, K)``."""
        parts = self._map(X, lengths, lambda m, p, b: m.posteriors(p, b.X, b.offsets)[1])
        return np.concatenate(parts)

    def filter_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Filtered state probabilities ``P(z_t = k | x_1, …, x_t)`` (the forward pass only:
        what was knowable at time t), shape ``(n, K)``.  At the last row of a sequence they
        equal :meth:`predict_proba`'s.  Missing rows, and rows no reachable state can emit,
        carry the prediction forward."""
        parts = self._map(X, lengths, lambda m, p, b: m.filter(p, b.X, b.offsets)[1])
        return np.concatenate(parts)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """The most probable state path of every sequence (Viterbi), concatenated."""
        return self.decode(X, lengths, algorithm="viterbi")[1]

    def decode(
        self, X: Any, lengths: Any = None, algorithm: str | None = None
    ) -> tuple[float, np.ndarray]:
        """``(log p(x, ẑ), ẑ)``: the Viterbi path ``ẑ = argmax_z p(x, z)`` or, with
        ``algorithm="map"``, the per-step most probable states ``ẑ_t = argmax_k γ_t(k)``;
        the log-probability is that of the decoded path jointly with the data, summed over
        sequences (−inf when a MAP path takes a forbidden transition)."""
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        decoder = HMMModel.viterbi if algorithm == "viterbi" else HMMModel.map_path
        parts = self._map(X, lengths, lambda m, p, b: decoder(m, p, b.X, b.offsets))
        total = float(sum(float(logprob.sum()) for logprob, _ in parts))
        return total, np.concatenate([states for _, states in parts])

    def fit_predict(self, X: Any, lengths: Any = None, *, sample_weight: Any = None) -> np.ndarray:
        """Fit, then decode every sequence (Viterbi)."""
        return self.fit(X, lengths, sample_weight=sample_weight).predict(X, lengths)

    def sample(
        self, n_samples: int | None = None, lengths: Any = None, random_state: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(X, states)``: one sequence of ``n_samples`` rows, or sequences of ``lengths``."""
        self._check_fitted()
        if lengths is None:
            n = 1 if n_samples is None else n_samples
            if not (isinstance(n, (int, np.integer)) and n >= 1):
                raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
            lengths = np.array([int(n)])
        else:
            lengths = check_lengths(lengths, None)
            if n_samples is not None and int(n_samples) != int(lengths.sum()):
                raise ValueError(
                    f"n_samples={n_samples} but the lengths add up to {int(lengths.sum())}"
                )
        rs = check_random_state(self.random_state if random_state is None else random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        return self._engine_model().sample(self._get_fitted_params(), lengths, rng)

    # --- criteria (lower is better) --------------------------------------------------------------
    def n_parameters(self) -> int:
        """Free parameters EM estimates (structural zeros and frozen parts not counted)."""
        self._check_fitted()
        return self._engine_model().n_parameters(self._get_fitted_params())

    def bic(self, X: Any, lengths: Any = None) -> float:
        """Bayesian information criterion ``−2 log p(x) + p·ln n`` (n: rows; emkit.criteria)."""
        return criteria(self.score(X, lengths), np.shape(X)[0], self.n_parameters())["bic"]

    def aic(self, X: Any, lengths: Any = None) -> float:
        """Akaike information criterion ``−2 log p(x) + 2p``."""
        return criteria(self.score(X, lengths), np.shape(X)[0], self.n_parameters())["aic"]

def _first_row(data: Any) -> np.ndarray:
    """The first row of in-memory sequences, or of a source's first piece."""
    if isinstance(data, SequenceData):
        return data.X[:1]
    return next(iter(data.pieces())).X[:1]


def _learn_json(value: bool | frozenset[str]) -> bool | list[str]:
    return bool(value) if isinstance(value, bool) else sorted(value)


def _check_missing(X: np.ndarray, names: list[str] | None, family: Family) -> np.ndarray:
    """The mask of missing cells (NaN, or None in object input), marginalised: whole rows for
    every family, single cells for families that handle them (``check_X`` has refused
    infinities already)."""
    if X.dtype == object:
        nan = np.vectorize(is_missing, otypes=[bool])(X) if X.size else np.zeros(X.shape, bool)
    elif X.dtype.kind == "f":
        nan = np.isnan(X)
    else:
        return np.zeros(X.shape, dtype=bool)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    if partial.any() and not family.handles_missing:
        i = int(np.flatnonzero(partial)[0])
        j = int(np.flatnonzero(nan[i])[0])
        col = f"{names[j]!r}" if names else f"{j}"
        raise InputError(
            f"row {i} is missing column {col} but not every column ({int(partial.sum())} such "
            f"row(s)): the {family.name!r} emission marginalises whole missing rows (all NaN) "
            "only; impute the cell or set the whole row to NaN"
        )
    return nan


def map_sequence_batches(
    model: HMMModel,
    params: HMMParams,
    data: SequenceData,
    fn: Callable[[HMMModel, PreparedHMM, SequenceBatch], Any],
    config: EMConfig = EMConfig(),
) -> list:
    """``fn(model, prepared, batch)`` of every batch, in order, as the E-step runs them:
    ``model.prepare(params)`` once, batches of whole sequences of ``chunk_rows(model, params,
    config)`` rows, contiguous runs of them on ``LocalThreads(config.n_jobs)``."""
    prepared = model.prepare(params)
    batches = list(data.batches(chunk_rows(model, params, config)))

    def run(items: Sequence[SequenceBatch]) -> list:
        return [fn(model, prepared, batch) for batch in items]

    runs = LocalThreads(config.n_jobs).map_runs(run, batches)
    return [part for parts in runs for part in parts]


def _described_names(model: HMMModel, data: SequenceData) -> str:
    """The names of the arrays the emission family describes (those ``restore`` reads), from a
    start on ``data``."""
    try:
        start = model.init(data, np.random.default_rng(0))
    except ValueError:
        return "the arrays of its fitted attributes"
    return ", ".join(model.emission.describe(start.emission))
