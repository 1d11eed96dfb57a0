"""The contract suite that every emkit model runs through (DESIGN.md, "The contract suite").

A model joins the suite by describing itself as one or more :class:`ContractCase` objects (how to
build an engine problem, how to split its data, how to build its estimator, and which
capabilities it has) in its own test module, and by adding them to the one registry,
``contract_registry.REGISTRY``.  One test class (``test_contract_registry.py::TestContract``)
runs every item of :class:`EMContract` over every registered case::

    CASES = [ContractCase(id="poisson", problem=..., problems=..., ...,
                          lacks={"warm_start": "why this model cannot warm-start"})]

Capabilities (:data:`CAPABILITIES`) are declared, never guessed: a case has every capability
that is not in :data:`NOT_YET` (features the engine lacks, so no model can have them) unless it
lists it in ``lacks`` with the reason.  An item that needs a capability a case lacks is
skipped by the runner with that reason (visible in ``pytest -rs``); the items themselves never
skip, and a meta-test checks that every case accounts for every capability.  scikit-learn's
checks (item 9) stay in the model's module (``estimators_for_checks``): their expected failures
are the module's business.

Engine-level items take a :class:`Problem` (a model, a data set with ``batches(max_rows)`` and
``n_rows``, and parameters); estimator-level items take the case's estimator factory, which must
follow :class:`emkit.estimators._base.EMEstimator` (``warm_start``, ``n_init``, ``max_iter``,
``tol``, ``random_state``; fitted ``history_``, ``lower_bound_``, ``restart_objectives_``) as far
as the case declares the capabilities.

Item 5 runs as two capabilities, ``out_of_core`` (Parquet and CSV sources) and ``dask`` (a Dask
array on a LocalCluster of two workers), item 6 as ``online``.
"""

from __future__ import annotations

import io
import json
import math
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import emkit
from emkit.engine import EMConfig, Stats, expected_stats, fit, run_em
from emkit.engine.online import OnlineState, StepSizes, run_online
from emkit.families.missing_cells import is_missing
from emkit.io import ModelFileError

# --------------------------------------------------------------------------------------------------
# data helpers shared by the cases of several models
# --------------------------------------------------------------------------------------------------


def mixture_sample(
    seed: int,
    n_components: int = 3,
    n_samples: int = 300,
    n_features: int = 2,
    separation: float = 3.0,
) -> np.ndarray:
    """Rows from a random Gaussian mixture with correlated, unequal-size clusters (float64).

    Every component gets at least ``n_samples // (2 * n_components)`` rows and principal standard
    deviations in [0.5, 1.5] (bounded conditioning); ``separation`` is the spread of the means in
    units of those standard deviations.
    """
    rng = np.random.default_rng(seed)
    K, D = n_components, n_features
    floor = max(1, n_samples // (2 * K))
    counts = floor + rng.multinomial(n_samples - floor * K, rng.dirichlet(np.full(K, 2.0)))
    blocks = []
    for k in range(K):
        Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        A = rng.uniform(0.5, 1.5, size=D)[:, None] * Q.T  # covariance Q diag(s²) Qᵀ
        mean = rng.normal(size=D) * separation
        blocks.append(rng.standard_normal((counts[k], D)) @ A + mean)
    X = np.vstack(blocks)
    return X[rng.permutation(X.shape[0])]


# --------------------------------------------------------------------------------------------------
# how a model describes itself to the suite
# --------------------------------------------------------------------------------------------------


# What a model can be asked (DESIGN.md, "Capabilities are declared"): every contract item names
# the capabilities it needs (``requires``); a case has all of them but those it ``lacks``.
CAPABILITIES: dict[str, str] = {
    "additive_rows": "E-step statistics add over any partition of the units (rows, sequences) "
    "and over any chunking of them",
    "sample_weights": "each unit takes a weight that multiplies its statistics",
    "threaded": "the E-step on n_jobs threads equals the serial one to rounding, and is "
    "deterministic for a given n_jobs",
    "monotone": "plain EM never decreases the log-likelihood (exact M-steps)",
    "restarts": "the engine's fit(n_init) runs every restart and keeps the best",
    "squarem": "the model is Flattenable: SQUAREM reaches plain EM's fixed point in fewer E-steps",
    "estimator_restarts": "the estimator reports restart_objectives_, best_restart_ and "
    "lower_bound_ of its n_init restarts",
    "warm_start": "warm_start=True continues from the previous fit",
    "save_load": "emkit.save / emkit.load round-trip the fitted estimator; corrupt files are "
    "refused with ModelFileError",
    "sklearn_checks": "the module gives the case's estimator to scikit-learn's check_estimator "
    "(estimators_for_checks)",
    "online": "online (stepwise) EM with the full batch and step 1 equals batch EM (item 6)",
    "out_of_core": "a fit from a Parquet dataset or a CSV file read a piece at a time equals "
    "the fit of the same rows in memory (item 5)",
    "dask": "the Dask backend equals the in-memory fit (item 5)",
}
# capabilities the engine does not offer yet: no case may have them, every case lacks them
NOT_YET: dict[str, str] = {}
DEFAULT_CAPABILITIES = frozenset(CAPABILITIES) - frozenset(NOT_YET)


def requires(*capabilities: str) -> Callable[[Callable], Callable]:
    """Mark a contract item as needing ``capabilities`` (the registry skips, with the case's
    reason, the cases that lack one)."""
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")

    def mark(item: Callable) -> Callable:
        item.contract_requires = frozenset(capabilities)
        return item

    return mark


def item_requirements(item: Callable) -> frozenset[str]:
    return getattr(item, "contract_requires", frozenset())


@dataclass(frozen=True)
class Problem:
    """What the engine needs for one run: a model, a data set, and (starting) parameters."""

    model: Any
    data: Any
    params: Any

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them short
        X = getattr(self.data, "X", None)
        shape = f"X {X.shape} {X.dtype}" if X is not None else f"{self.data.n_rows} rows"
        return f"Problem({self.model!r}, {shape})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' pretty-printer
        printer.text(repr(self))


@dataclass(frozen=True)
class ContractCase:
    """One model configuration (structure, dtype, ...) as the contract suite sees it.

    problem:        seed -> a Problem with non-trivial data and non-optimal parameters.
    problems:       hypothesis strategy of Problems (random data sets, sizes, seeds, structures)
                    for the monotonicity property: the model must do exact EM there (no
                    regularisation that the objective does not include).
    degenerate:     (model, params) -> True where the likelihood is unbounded near params (a
                    component shrinking onto too few points); such runs, and runs that raise one
                    of ``degenerate_errors``, are not evidence about monotonicity.
    split:          (data, rng) -> (a, b), a partition of the data's units (rows, sequences, ...).
    reweight:       (data, weights) -> the same data with these unit weights (one per unit,
                    ``data.n_rows`` of them), or None when the model takes no weights.
    acceleration_problem: () -> a Problem on which plain EM crawls (SQUAREM must win there).
    estimator:      (**overrides) -> an unfitted estimator; estimator_data: seed -> its X.
    sequence_lengths: for models of sequences, seed -> lengths that cut estimator_data(seed)
                    into sequences (item 5 fits them in memory with these lengths and from
                    sources with a column of sequence ids); None for models of rows.
    fitted_params:  fitted estimator -> {name: array} of its parameters.
    lacks:          {capability: reason} for every capability (CAPABILITIES) the case does not
                    have; the items needing one are skipped for this case with that reason.
    """

    id: str
    problem: Callable[[int], Problem]
    problems: st.SearchStrategy
    split: Callable[[Any, np.random.Generator], tuple[Any, Any]]
    estimator: Callable[..., Any]
    estimator_data: Callable[[int], Any]
    fitted_params: Callable[[Any], dict[str, np.ndarray]]
    reweight: Callable[[Any, np.ndarray], Any] | None = None
    degenerate: Callable[[Any, Any], bool] = lambda model, params: False
    degenerate_errors: tuple[type[BaseException], ...] = ()
    acceleration_problem: Callable[[], Problem] | None = None
    sequence_lengths: Callable[[int], np.ndarray] | None = None
    predict_methods: tuple[str, ...] = ("predict", "predict_proba", "score_samples")
    max_rows: tuple[int, ...] = (1, 7, 64, 10**9)
    # statistics of split data vs whole data: Stats.allclose(rtol, atol)
    stats_rtol: float = 1e-10
    stats_atol: float = 1e-9
    # allowed decrease of the mean log-likelihood per plain EM step, relative to 1 + |ll|
    monotone_slack: float = 1e-10
    monotone_iter: int = 30
    # warm start 1+1 vs 2 iterations; fitted parameters compared with this rtol (and atol)
    warm_rtol: float = 1e-12
    warm_atol: float = 1e-12
    # SQUAREM vs plain EM: convergence tolerance and agreement of the mean log-likelihood
    squarem_tol: float = 1e-12
    squarem_rtol: float = 1e-8
    # the estimator's method returning one number for X (None: it has none, e.g. a transformer)
    score_method: str | None = "score"
    # scikit-learn checks this case's estimator is known to fail, {check name: reason}; they run
    # as strict xfails (a check that starts passing fails the suite, so the entry gets removed)
    expected_failed_checks: dict[str, str] = field(default_factory=dict)
    # capabilities this case does not have, {capability: why not}; every other capability
    # outside NOT_YET it has (``capabilities``, filled in from ``lacks`` when not given)
    lacks: Mapping[str, str] = field(default_factory=dict)
    capabilities: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.lacks) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"{self.id}: lacks unknown capabilities {unknown}")
        if self.capabilities is None:
            object.__setattr__(self, "capabilities", DEFAULT_CAPABILITIES - set(self.lacks))
        else:
            object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def why_not(self, capability: str) -> str | None:
        """The declared reason this case lacks ``capability`` (None: no reason declared)."""
        reason = self.lacks.get(capability) or NOT_YET.get(capability)
        return None if reason is None else f"{capability}: {reason}"

    @property
    def sklearn_checks(self) -> bool:
        return self.has("sklearn_checks")

    def __repr__(self) -> str:
        return f"ContractCase({self.id})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def estimators_for_checks(
    cases: Sequence[ContractCase],
) -> tuple[list[Any], Callable[[Any], dict[str, str]]]:
    """Arguments for ``parametrize_with_checks``: one estimator per case that asks for the checks,
    and the ``expected_failed_checks`` callable (matched by the estimator's repr)."""
    chosen = [case for case in cases if case.sklearn_checks]
    estimators = [case.estimator() for case in chosen]
    reasons = {
        repr(e): case.expected_failed_checks for e, case in zip(estimators, chosen, strict=True)
    }
    return estimators, lambda estimator: reasons.get(repr(estimator), {})


def assert_stats_allclose(a: Stats, b: Stats, rtol: float, atol: float) -> None:
    """``a.allclose(b)``, with a message listing the worst difference of every field."""
    if a.allclose(b, rtol=rtol, atol=atol):
        return
    lines = [f"statistics differ (rtol={rtol}, atol={atol}):"]
    for f in fields(a):
        for i, (x, y) in enumerate(
            zip(_leaves(getattr(a, f.name)), _leaves(getattr(b, f.name)), strict=False)
        ):
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            diff = float(np.max(np.abs(x - y), initial=0.0)) if x.shape == y.shape else math.nan
            top = float(np.max(np.abs(y), initial=0.0))
            lines.append(f"  {f.name}[{i}]: max |diff| = {diff:.3g}, max |value| = {top:.3g}")
    pytest.fail("\n".join(lines))


def _leaves(value: Any) -> list:
    """Arrays and floats inside a statistic field (fields may nest tuples)."""
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def assert_params_close(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def _quiet(func: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return func()


def _fit(estimator: Any, X: Any) -> Any:
    return _quiet(lambda: estimator.fit(X))


def table_frame(X: Any, lengths: np.ndarray | None = None) -> Any:
    """``X`` as a DataFrame of columns ``x0``, ``x1``, …: floats (NaN where missing) where every
    value is a number, else labels (None where missing); with ``lengths``, a first column
    ``seq`` of sequence ids."""
    import pandas as pd

    X = np.asarray(X, dtype=object)
    columns = {} if lengths is None else {"seq": np.repeat(np.arange(lengths.size) * 3 + 1,
                                                           lengths)}
    for j in range(X.shape[1]):
        values = X[:, j]
        missing = np.array([is_missing(v) for v in values], dtype=bool)
        if all(isinstance(v, (int, float, np.number)) for v in values[~missing]):
            columns[f"x{j}"] = np.where(missing, np.nan, values).astype(np.float64)
        else:
            columns[f"x{j}"] = np.where(missing, None, values.astype(str)).astype(object)
    return pd.DataFrame(columns)


def _as_written(X: Any) -> Any:
    """The rows as a table file holds them: numbers as float64 (labels as they are)."""
    return X if np.asarray(X).dtype == object else np.asarray(X, dtype=np.float64)


def write_parquet_parts(frame: Any, folder: Path, n_files: int, row_group_rows: int) -> Path:
    """The DataFrame ``frame`` as ``n_files`` Parquet part files of small row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    for i, index in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        table = pa.Table.from_pandas(frame.iloc[index], preserve_index=False)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=row_group_rows)
    return folder


def _fit_sequences(case: ContractCase, data: Any, lengths: np.ndarray | None = None) -> Any:
    """The case's estimator (8 iterations, no tolerance) fitted to ``data`` (with ``lengths``:
    sequences in memory)."""
    estimator = case.estimator(max_iter=8, tol=0.0, random_state=5)
    arguments = () if lengths is None else (lengths,)
    return _quiet(lambda: estimator.fit(data, *arguments))


def _n_rows(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def _row_parts(X: Any, parts: Sequence[np.ndarray]) -> list[Any]:
    """The rows of ``X`` (an array or a DataFrame) in consecutive parts."""
    if hasattr(X, "iloc"):
        return [X.iloc[p] for p in parts]
    return [X[p] for p in parts]


def _n_units(data: Any) -> int:
    return int(data.n_rows)


def _random_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """Non-negative weights with about a fifth of them zero and a few large ones."""
    weights = rng.gamma(0.8, 1.5, size=n)
    weights[rng.random(n) < 0.2] = 0.0
    return weights


_SMALL_FITS: dict[str, Any] = {}


# corruptions of a valid model file: each must give ModelFileError on load
def _rewrite(path: Path, edit: Callable[[dict[str, bytes]], dict[str, bytes]]) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members = edit(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)


def _edit_header(change: Callable[[dict], Any]) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    def edit(members: dict[str, bytes]) -> dict[str, bytes]:
        header = json.loads(members["model.json"])
        new = change(header)
        members["model.json"] = json.dumps(header if new is None else new).encode()
        return members

    return edit


def _first_array(members: dict[str, bytes]) -> str:
    return sorted(name for name in members if name.endswith(".npy"))[0]


def _pickled_array(members: dict[str, bytes]) -> dict[str, bytes]:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"not": "an array"}], dtype=object), allow_pickle=True)
    members[_first_array(members)] = buffer.getvalue()
    return members


def _garbage_array(members: dict[str, bytes]) -> dict[str, bytes]:
    members[_first_array(members)] = b"\x93NUMPY garbage"
    return members


def _missing_array(members: dict[str, bytes]) -> dict[str, bytes]:
    del members[_first_array(members)]
    return members


def _corrupt_plain_text(path: Path) -> None:
    path.write_text("weights,means\n0.5,1.0\n")


def _corrupt_truncate(path: Path) -> None:
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


def _corrupt_flip_bytes(path: Path) -> None:
    """Flip bytes inside every member's compressed data (CRC or inflate errors on reading)."""
    payload = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
            payload[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(payload))


def _corrupt_npz(path: Path) -> None:
    with path.open("wb") as fh:
        np.savez(fh, weights_=np.ones(3))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "plain-text": _corrupt_plain_text,
    "truncated": _corrupt_truncate,
    "flipped-bytes": _corrupt_flip_bytes,
    "numpy-npz": _corrupt_npz,
    "header-not-json": lambda p: _rewrite(p, lambda m: {**m, "model.json": b"{not json"}),
    "header-not-utf8": lambda p: _rewrite(p, lambda m: {**m, "model.json": b"\xff\xfe\x00"}),
    "header-not-object": lambda p: _rewrite(p, lambda m: {**m, "model.json": b"[1, 2]"}),
    "foreign-format": lambda p: _rewrite(p, _edit_header(lambda h: h.update(format="other"))),
    "newer-format": lambda p: _rewrite(p, _edit_header(lambda h: h.update(format_version=99))),
    "no-estimator": lambda p: _rewrite(p, _edit_header(lambda h: h.pop("estimator"))),
    "unknown-estimator": lambda p: _rewrite(p, _edit_header(lambda h: h.update(estimator="X"))),
    "params-not-object": lambda p: _rewrite(p, _edit_header(lambda h: h.update(params=[1]))),
    "private-attribute": lambda p: _rewrite(
        p, _edit_header(lambda h: h["attributes"].update(__class__="str"))
    ),
    "missing-array": lambda p: _rewrite(p, _missing_array),
    "pickled-array": lambda p: _rewrite(p, _pickled_array),
    "garbage-array": lambda p: _rewrite(p, _garbage_array),
}


# --------------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------------


class EMContract:
    """The contract items.  ``test_contract_registry.py::TestContract`` runs them over every
    registered case (its ``case`` argument); an item needing a capability says so (``requires``)
    and never skips by itself: a case that cannot do an item declares the lack."""

    # (1) split statistics equal whole statistics ----------------------------------------------
    @requires("additive_rows")
    @pytest.mark.parametrize("seed", [0, 1])
    def test_split_stats_equal_whole(self, case: ContractCase, seed: int) -> None:
        problem = case.problem(seed)
        model, data, params = problem.model, problem.data, problem.params
        whole = expected_stats(model, params, data, max_rows=10**9)
        a, b = case.split(data, np.random.default_rng(seed))
        assert 0 < _n_units(a) < _n_units(data) and _n_units(a) + _n_units(b) == _n_units(data)
        parts = [expected_stats(model, params, part, max_rows=10**9) for part in (a, b)]
        assert np.isfinite(whole.loglik)
        assert whole.weight == pytest.approx(_n_units(data))
        assert_stats_allclose(parts[0] + parts[1], whole, case.stats_rtol, case.stats_atol)
        # sum() starts from 0; adding the additive zero changes nothing
        assert_stats_allclose(sum(parts), whole, case.stats_rtol, case.stats_atol)
        assert_stats_allclose(whole + whole.zeros_like(), whole, 0.0, 0.0)

    @requires("additive_rows", "sample_weights")
    def test_split_stats_with_sample_weights(self, case: ContractCase) -> None:
        if case.reweight is None:
            pytest.fail("the case has sample_weights but no reweight to set them")
        problem = case.problem(3)
        rng = np.random.default_rng(3)
        weights = _random_weights(problem.data.n_rows, rng)
        data = case.reweight(problem.data, weights)
        whole = expected_stats(problem.model, problem.params, data, max_rows=10**9)
        a, b = case.split(data, rng)
        parts = [expected_stats(problem.model, problem.params, p, max_rows=10**9) for p in (a, b)]
        assert_stats_allclose(parts[0] + parts[1], whole, case.stats_rtol, case.stats_atol)
        assert whole.weight == pytest.approx(float(weights.sum()))
        # weights multiply the statistics: doubling every weight doubles every field
        doubled = case.reweight(problem.data, 2.0 * weights)
        twice = expected_stats(problem.model, problem.params, doubled, max_rows=10**9)
        assert_stats_allclose(twice, 2.0 * whole, case.stats_rtol, case.stats_atol)

    @requires("additive_rows")
    def test_chunked_stats_equal_whole(self, case: ContractCase) -> None:
        problem = case.problem(4)
        model, params = problem.model, problem.params
        whole = expected_stats(model, params, problem.data, max_rows=10**9)
        for max_rows in case.max_rows:
            chunked = expected_stats(model, params, problem.data, max_rows=max_rows)
            assert_stats_allclose(chunked, whole, case.stats_rtol, case.stats_atol)
        if case.has("sample_weights"):
            weights = _random_weights(problem.data.n_rows, np.random.default_rng(4))
            data = case.reweight(problem.data, weights)
            whole = expected_stats(model, params, data, max_rows=10**9)
            for max_rows in case.max_rows:
                chunked = expected_stats(model, params, data, max_rows=max_rows)
                assert_stats_allclose(chunked, whole, case.stats_rtol, case.stats_atol)

    @requires("threaded")
    def test_threaded_e_step_equals_serial(self, case: ContractCase) -> None:
        # the local stand-in for item 5 (another backend equals the local one to rounding)
        problem = case.problem(4)
        model, params, data = problem.model, problem.params, problem.data
        serial = expected_stats(model, params, data, max_rows=3, n_jobs=1)
        for n_jobs in (2, 3, 8):
            threaded = expected_stats(model, params, data, max_rows=3, n_jobs=n_jobs)
            assert_stats_allclose(threaded, serial, case.stats_rtol, case.stats_atol)
            again = expected_stats(model, params, data, max_rows=3, n_jobs=n_jobs)
            assert_stats_allclose(again, threaded, 0.0, 0.0)  # deterministic per n_jobs

    @requires("additive_rows")
    def test_engine_chunk_size_does_not_change_the_fit(self, case: ContractCase) -> None:
        problem = case.problem(5)
        runs = [
            run_em(
                problem.model,
                problem.data,
                problem.params,
                EMConfig(max_iter=5, tol=0.0, max_rows=rows),
            )
            for rows in (13, 10**9)
        ]
        assert runs[0].n_iter == runs[1].n_iter == 5
        np.testing.assert_allclose(runs[0].history, runs[1].history, rtol=case.stats_rtol * 100)

    # (2) the log-likelihood never decreases under plain EM -------------------------------------
    @requires("monotone")
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test_loglik_never_decreases(self, case: ContractCase, data: st.DataObject) -> None:
        problem = data.draw(case.problems, label="problem")
        config = EMConfig(max_iter=case.monotone_iter, tol=0.0)
        try:
            result = run_em(problem.model, problem.data, problem.params, config)
        except case.degenerate_errors:
            assume(False)
        assume(not case.degenerate(problem.model, result.params))
        history = np.asarray(result.history)
        assert history.size == result.n_iter + 1 and np.all(np.isfinite(history))
        steps = np.diff(history)
        slack = case.monotone_slack * (1.0 + np.abs(history[1:]))
        worst = int(np.argmin(steps + slack)) if steps.size else 0
        assert np.all(steps >= -slack), (
            f"the mean log-likelihood decreased at iteration {worst + 1}: "
            f"{history[worst]!r} -> {history[worst + 1]!r}"
        )

    # (3) the best of n_init restarts is at least as good as each single run --------------------
    @requires("restarts")
    def test_best_of_restarts_engine(self, case: ContractCase) -> None:
        problem = case.problem(6)
        model, data = problem.model, problem.data
        config = EMConfig(max_iter=40, tol=1e-6)
        best = fit(model, data, config, rng=np.random.default_rng(11), n_init=4)
        rng = np.random.default_rng(11)  # the same seeds, one run at a time
        singles = [run_em(model, data, model.init(data, rng), config) for _ in range(4)]
        assert best.restart_objectives == tuple(r.objective for r in singles)
        assert all(best.objective >= r.objective for r in singles)
        assert best.objective == max(r.objective for r in singles)
        assert best.objective == singles[best.best_restart].objective

    @requires("estimator_restarts")
    def test_best_of_restarts_estimator(self, case: ContractCase) -> None:
        X = case.estimator_data(6)
        single = _fit(case.estimator(n_init=1, random_state=5, max_iter=30), X)
        several = _fit(case.estimator(n_init=4, random_state=5, max_iter=30), X)
        assert several.restart_objectives_.shape == (4,)
        # the first restart starts where the single run started (the same random stream)
        assert several.restart_objectives_[0] == single.restart_objectives_[0]
        assert several.lower_bound_ >= single.lower_bound_
        best = several.best_restart_
        assert several.restart_objectives_[best] == np.max(several.restart_objectives_)
        # the kept model is the best restart's: its mean objective is that restart's
        assert several.restart_objectives_[best] == pytest.approx(several.lower_bound_, rel=1e-12)
        assert single.restart_objectives_[0] == pytest.approx(single.lower_bound_, rel=1e-12)

    # (4) warm-started 1+1 iterations equal 2 iterations -----------------------------------------
    @requires("warm_start")
    def test_warm_start_one_plus_one_equals_two(self, case: ContractCase) -> None:
        X = case.estimator_data(8)
        warm = case.estimator(warm_start=True, max_iter=1, tol=0.0, random_state=3)
        _fit(warm, X)
        assert warm.n_iter_ == 1
        _fit(warm, X)
        assert warm.n_iter_ == 1
        cold = _fit(case.estimator(max_iter=2, tol=0.0, random_state=3), X)
        assert cold.n_iter_ == 2
        assert_params_close(
            case.fitted_params(warm), case.fitted_params(cold), case.warm_rtol, case.warm_atol
        )
        assert warm.lower_bound_ == pytest.approx(cold.lower_bound_, rel=case.warm_rtol, abs=0)

    def test_fit_is_deterministic_given_random_state(self, case: ContractCase) -> None:
        X = case.estimator_data(9)
        a = _fit(case.estimator(random_state=17, max_iter=20), X)
        b = _fit(case.estimator(random_state=17, max_iter=20), X)
        assert_params_close(case.fitted_params(a), case.fitted_params(b), 0.0, 0.0)

    def test_returned_params_own_the_returned_loglik(self, case: ContractCase) -> None:
        problem = case.problem(10)
        for accelerate in ("none", "squarem") if case.has("squarem") else ("none",):
            config = EMConfig(max_iter=7, tol=0.0, accelerate=accelerate)
            result = run_em(problem.model, problem.data, problem.params, config)
            again = expected_stats(problem.model, result.params, problem.data, max_rows=10**9)
            assert again.loglik == pytest.approx(result.loglik, rel=case.stats_rtol * 100)
            assert result.history[-1] == pytest.approx(result.mean_objective, rel=1e-15)

    # (5) out of core: a Parquet dataset (or a CSV file) read piece by piece equals memory ----
    @requires("out_of_core")
    def test_out_of_core_parquet_and_csv_equal_in_memory(
        self, case: ContractCase, tmp_path: Path
    ) -> None:
        X = _as_written(case.estimator_data(14))
        lengths = None if case.sequence_lengths is None else case.sequence_lengths(14)
        frame = table_frame(X, lengths)
        folder = write_parquet_parts(frame, tmp_path / "parts", n_files=2, row_group_rows=37)
        csv = tmp_path / "rows.csv"
        frame.to_csv(csv, index=False, float_format="%.17g")  # an empty cell is missing
        sequence = None if lengths is None else "seq"

        in_memory = _fit_sequences(case, X, lengths)
        sources = (emkit.ParquetData(folder, sequence=sequence),
                   emkit.CSVData(csv, sequence=sequence))
        for source in sources:
            from_disk = _fit_sequences(case, source)  # (n_iter_ may differ where it converges)
            assert_params_close(
                case.fitted_params(from_disk), case.fitted_params(in_memory), 1e-9, 1e-11
            )
            assert list(from_disk.feature_names_in_) == [f"x{j}" for j in range(X.shape[1])]

    @pytest.mark.slow
    @requires("dask")
    def test_dask_on_a_local_cluster_equals_in_memory(
        self, case: ContractCase, dask_client: Any
    ) -> None:
        import dask.dataframe as dd

        X = _as_written(case.estimator_data(15))
        lengths = None if case.sequence_lengths is None else case.sequence_lengths(15)
        frame = table_frame(X, lengths)
        if lengths is None:  # 4 partitions or so
            ends = np.arange(0, len(frame), 61).tolist() + [len(frame)]
        else:  # partitions of whole sequences: two sequences each, or so
            ends = [0] + [int(part[-1]) for part in np.array_split(np.cumsum(lengths), 3)]
        parts = [dd.from_pandas(frame.iloc[a:b], npartitions=1)
                 for a, b in zip(ends[:-1], ends[1:], strict=True)]
        source = emkit.DaskData(dd.concat(parts), sequence=None if lengths is None else "seq")
        assert_params_close(
            case.fitted_params(_fit_sequences(case, source)),
            case.fitted_params(_fit_sequences(case, X, lengths)), 1e-9, 1e-11,
        )

    # (6) online EM: the whole data as the batch, step 1, equals batch EM ---------------------
    @requires("online")
    def test_online_full_batch_step_one_equals_batch_em_engine(self, case: ContractCase) -> None:
        problem = case.problem(11)
        config = EMConfig(max_iter=3, tol=0.0, stopping="none")
        batch = run_em(problem.model, problem.data, problem.params, config)
        state, _ = run_online(
            problem.model,
            OnlineState(problem.params),
            [problem.data] * 3,
            config,
            StepSizes(t0=0.0, kappa=0.0),
            scale=float(np.sum(problem.data.weights)),
        )
        assert state.steps == 3
        again = expected_stats(problem.model, state.params, problem.data, max_rows=10**9)
        assert_stats_allclose(again, batch.stats, case.stats_rtol, case.stats_atol)

    @requires("online")
    def test_online_full_batch_step_one_equals_batch_em(self, case: ContractCase) -> None:
        X = case.estimator_data(12)
        n = _n_rows(X)
        batch = _fit(case.estimator(max_iter=3, tol=0.0, random_state=5), X)
        assert batch.n_iter_ == 3
        stepwise = case.estimator(random_state=5)
        for _ in range(3):
            _quiet(lambda: stepwise.partial_fit(X, t0=0.0, kappa=0.0, n_rows=n))
        streamed = _quiet(
            lambda: case.estimator(random_state=5).fit_stream([X] * 3, t0=0.0, kappa=0.0, n_rows=n)
        )
        for online in (stepwise, streamed):
            assert online.n_iter_ == 3
            assert_params_close(
                case.fitted_params(online), case.fitted_params(batch), case.warm_rtol,
                case.warm_atol,
            )

    @requires("online")
    def test_online_stream_learns_from_every_batch(self, case: ContractCase) -> None:
        X = case.estimator_data(13)
        parts = np.array_split(np.arange(_n_rows(X)), 4)
        online = _quiet(lambda: case.estimator(random_state=5).fit_stream(
            _row_parts(X, parts)
        ))
        assert online.n_iter_ == 4
        assert all(np.all(np.isfinite(a)) for a in case.fitted_params(online).values())
        if hasattr(online, "history_"):  # the batches' mean log-likelihoods, one per step
            assert online.history_.shape == (4,) and np.all(np.isfinite(online.history_))

    # (7) SQUAREM: the same fixed point as plain EM in fewer E-steps ----------------------------
    @requires("squarem")
    def test_squarem_same_optimum_fewer_esteps(self, case: ContractCase) -> None:
        if case.acceleration_problem is None:
            pytest.fail("the case has squarem but no acceleration_problem to show it on")
        problem = case.acceleration_problem()
        runs = {
            accelerate: run_em(
                problem.model,
                problem.data,
                problem.params,
                EMConfig(max_iter=20_000, tol=case.squarem_tol, accelerate=accelerate),
            )
            for accelerate in ("none", "squarem")
        }
        plain, squarem = runs["none"], runs["squarem"]
        assert plain.converged and squarem.converged
        assert squarem.mean_objective == pytest.approx(
            plain.mean_objective, rel=case.squarem_rtol, abs=0
        )
        assert squarem.n_estep < plain.n_estep
        # and SQUAREM's history never goes down (its safeguard: where plain EM is monotone)
        h = np.asarray(squarem.history)
        if case.has("monotone"):
            assert np.all(np.diff(h) >= -case.monotone_slack * (1.0 + np.abs(h[1:])))

    # (8) save -> load gives identical predictions ---------------------------------------------
    @requires("save_load")
    def test_save_load_identical_predictions(self, case: ContractCase, tmp_path: Path) -> None:
        X = case.estimator_data(12)
        estimator = _fit(case.estimator(max_iter=15), X)
        path = emkit.save(estimator, tmp_path / "model.emk")
        loaded = emkit.load(path)
        assert type(loaded) is type(estimator)
        assert loaded.get_params() == estimator.get_params()
        for method in case.predict_methods:
            expected, got = getattr(estimator, method)(X), getattr(loaded, method)(X)
            assert got.dtype == expected.dtype, method
            np.testing.assert_array_equal(got, expected, err_msg=method)
        if case.score_method is not None:
            score = getattr(loaded, case.score_method)(X)
            assert score == getattr(estimator, case.score_method)(X)
        assert_params_close(case.fitted_params(loaded), case.fitted_params(estimator), 0.0, 0.0)

    @requires("save_load")
    def test_model_file_is_zip_with_json_header_and_no_pickle(
        self, case: ContractCase, tmp_path: Path
    ) -> None:
        X = case.estimator_data(13)
        estimator = _fit(case.estimator(max_iter=5), X)
        path = emkit.save(estimator, tmp_path / "model.emk")
        assert zipfile.is_zipfile(path)
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            header = json.loads(zf.read("model.json"))
        assert header["format"] == "emkit-model"
        assert header["estimator"] == type(estimator).__name__
        arrays = set(header["arrays"])
        assert names == {"model.json"} | {f"{name}.npy" for name in arrays}
        with np.load(path, allow_pickle=False) as archive:  # raises on any pickled member
            for name in arrays:
                value = archive[name]
                assert value.dtype != object
                np.testing.assert_array_equal(value, getattr(estimator, name))
        for name in case.fitted_params(estimator):
            assert name in arrays

    @requires("save_load")
    @pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
    def test_corrupt_model_file_gives_model_file_error(
        self, case: ContractCase, tmp_path: Path, corruption: str
    ) -> None:
        if case.id not in _SMALL_FITS:  # one fit per case serves every corruption
            _SMALL_FITS[case.id] = _fit(case.estimator(max_iter=3), case.estimator_data(14))
        path = emkit.save(_SMALL_FITS[case.id], tmp_path / "model.emk")
        CORRUPTIONS[corruption](path)
        with pytest.raises(ModelFileError, match="model"):
            emkit.load(path)
