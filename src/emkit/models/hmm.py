"""Hidden Markov model with any emission family, as an engine model (Baum-Welch).

``p(x_{1:T}) = Σ_z π_{z_1} b_{z_1}(x_1) Π_t A_{z_{t−1} z_t} b_{z_t}(x_t)`` with emission densities
``b_k(x) = f(x | θ_k)`` of a :class:`~emkit.families.base.Family`.  The E-step (forward-backward,
:mod:`emkit.models._hmm_kernels`) returns additive statistics of whole sequences: expected start
counts ``Σ_s w_s γ_{s,1}``, expected transition counts ``Σ_s w_s Σ_t ξ_t`` and the family's sums
``family.accumulate(θ, X, γ·w)`` — the same code as a mixture's M-step statistics.  The M-step
normalises the counts (zeros stay zeros: left-right topologies) and calls ``family.m_step``.

Missing observations: a row of NaN is marginalised (``b_k(x_t) = 1`` for every state: the
chain moves on, the row adds nothing to the emission statistics).  A row with some NaN cells
goes to the family, which marginalises them (``b_k(x_t)`` is the density of the observed cells;
the cells add their expected statistics, :mod:`emkit.families.missing_cells`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emkit._validation import real_array
from emkit.engine.data import SequenceBatch, SequenceData
from emkit.engine.loop import EMConfig, chunk_rows
from emkit.engine.protocol import INIT_SAMPLE_ROWS
from emkit.engine.stats import Stats, add_leaves
from emkit.families.base import Family, floored_counts
from emkit.families.missing_cells import fill_missing_cells
from emkit.models._hmm_kernels import forward_backward, forward_filter, sample_states, viterbi
from emkit.models.learn import Learn
from emkit.models.mixture import ComponentCollapseWarning
from emkit.models.partitions import PARTITIONS, StartingPartition, starting_partition

HMM_INITS = ("k-means++", "random", "random_from_data")
EPS = 10.0 * np.finfo(np.float64).eps
INIT_SPREAD = 0.3  # share of each row's weight spread over all states at initialisation


@dataclass(frozen=True, eq=False)
class HMMParams:
    """Start probabilities ``(K,)``, transition matrix ``(K, K)`` (rows sum to one) and the
    emission family's parameters of the K states."""

    startprob: np.ndarray
    transmat: np.ndarray
    emission: Any

    @property
    def n_states(self) -> int:
        return self.startprob.shape[0]


@dataclass(frozen=True, eq=False)
class PreparedHMM:
    """The parameters, the emission family's ``prepare`` of them and the chain's logarithms
    (``log π``, ``log Aᵀ`` for Viterbi), once per E-step or inference call."""

    params: HMMParams
    emission: Any
    log_start: np.ndarray
    log_trans_t: np.ndarray


@dataclass(frozen=True)
class HMMStats(Stats):
    """Expected start counts ``(K,)``, transition counts ``(K, K)``, state occupancies ``n_k``
    (observed rows only) and the emission family's sums."""

    start: np.ndarray
    trans: np.ndarray
    nk: np.ndarray
    sums: tuple


class ProbabilityError(ValueError):
    """A start vector or transition matrix that is not a probability distribution."""


def check_probabilities(p: Any, shape: tuple[int, ...], what: str, atol: float = 1e-6):
    """``p`` as float64 of ``shape``, finite, non-negative, rows summing to one (renormalised)."""
    p = real_array(p, what).astype(np.float64)
    if p.shape != shape:
        raise ProbabilityError(f"{what} must have shape {shape}, got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ProbabilityError(f"{what} must hold finite, non-negative probabilities")
    sums = p.sum(axis=-1)
    if p.ndim == 2 and np.any(sums == 0):
        i = int(np.flatnonzero(sums == 0)[0])
        raise ProbabilityError(
            f"row {i} of {what} is all zeros: every state needs at least one successor "
            "(a final state of a left-right model transitions to itself)"
        )
    if np.any(np.abs(sums - 1.0) > atol):
        bad = np.atleast_1d(sums)
        i = int(np.argmax(np.abs(bad - 1.0)))
        where = f"row {i} of {what}" if p.ndim == 2 else what
        raise ProbabilityError(f"{where} sums to {float(bad[i])!r}, not 1")
    return p / sums[..., None] if p.ndim == 2 else p / sums


def _squares_free(roots: np.ndarray, free: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Rows ``p = s² / Σ s²`` over the entries where ``free`` holds (the others exactly zero);
    a row whose free roots all vanish keeps ``like``'s row."""
    sq = np.where(free, np.square(roots), 0.0)
    total = sq.sum(axis=-1, keepdims=True)
    ok = np.isfinite(total) & (total > 0)
    return np.where(ok, sq / np.where(ok, total, 1.0), like)


def _log_probabilities(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


@dataclass(frozen=True, eq=False)
class HMMModel:
    """The engine model of a ``n_states``-state HMM with ``emission`` densities.

    ``startprob`` / ``transmat`` are the starting values ``init`` uses (None: uniform); zeros in
    ``transmat`` stay zero.  ``learn`` freezes parts of the parameters.  ``n_features`` and
    ``memory_budget`` (the engine's :attr:`EMConfig.memory_budget`) only size the passes of the
    family's code over a sequence longer than a batch.
    """

    emission: Family
    n_states: int
    learn: Learn = field(default_factory=Learn)
    startprob: np.ndarray | None = None
    transmat: np.ndarray | None = None
    init_method: StartingPartition = PARTITIONS["k-means++"]  # or its name (HMM_INITS)
    n_features: int = 1
    collapse_fraction: float = 1e-10
    memory_budget: int = EMConfig.memory_budget

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_method", starting_partition(self.init_method, HMM_INITS))
        object.__setattr__(self, "_held", self.learn.held_groups(self.emission))

    # --- emission densities -------------------------------------------------------------------
    def _chunk(self) -> int:
        """Rows per pass of the family's code: the engine's batch size for this budget
        (``chunk_rows``), so a sequence longer than a batch is evaluated in batch-sized parts."""
        return chunk_rows(self, None, EMConfig(memory_budget=self.memory_budget))

    def _prepared(self, params: HMMParams | PreparedHMM) -> PreparedHMM:
        return params if isinstance(params, PreparedHMM) else self.prepare(params)

    def log_emission(
        self, params: HMMParams | PreparedHMM, X: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``log b_k(x_t)`` as a C-contiguous float64 ``(n, K)`` (0 on missing rows) and the
        mask of missing rows; the family is evaluated over budget-sized row chunks."""
        return self._log_emission(self._prepared(params).emission, X)

    def _log_emission(self, emission: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, K = X.shape[0], self.n_states
        missing = _missing_rows(X)
        logb = np.empty((n, K))
        step = self._chunk()
        for a in range(0, n, step):
            rows = slice(a, min(n, a + step))
            gap = missing[rows]
            if gap.any():
                block = np.zeros((gap.size, K))
                if not gap.all():
                    block[~gap] = self.emission.log_prob(emission, X[rows][~gap])
                logb[rows] = block
            else:
                logb[rows] = self.emission.log_prob(emission, X[rows])
        return logb, missing

    def _accumulate(
        self, emission: Any, X: np.ndarray, R: np.ndarray, missing: np.ndarray
    ) -> tuple:
        """``family.accumulate`` over row chunks (sums add); missing rows carry ``R = 0`` (and
        zeros in place of NaN for a family that does not take NaN)."""
        total = None
        step = self._chunk()
        for a in range(0, X.shape[0], step):
            rows = slice(a, min(X.shape[0], a + step))
            Xc = X[rows]
            if not self.emission.handles_missing and missing[rows].any():
                Xc = np.where(missing[rows, None], 0.0, Xc).astype(X.dtype, copy=False)
            part = self.emission.accumulate(emission, Xc, R[rows])
            total = part if total is None else add_leaves(total, part)
        return total

    def _forward_backward(
        self, params: HMMParams, logb: np.ndarray, offsets: np.ndarray, weights: np.ndarray,
        weighted: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        K = self.n_states
        gamma = np.empty_like(logb)
        loglik = np.empty(offsets.size - 1)
        xi, start, occupancy = np.zeros((K, K)), np.zeros(K), np.zeros(K)
        forward_backward(
            logb,
            offsets,
            params.startprob,
            params.transmat,
            np.ascontiguousarray(weights, dtype=np.float64),
            gamma,
            loglik,
            xi,
            start,
            occupancy,
            weighted,
        )
        return loglik, gamma, xi, start, occupancy

    # --- inference (``params`` or, prepared once for many batches, ``prepare(params)``) -------
    def posteriors(
        self, params: HMMParams | PreparedHMM, X: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(log P(x_s) per sequence, γ (n, K))`` for sequences at ``offsets``."""
        prepared = self._prepared(params)
        logb, _ = self.log_emission(prepared, X)
        loglik, gamma, *_ = self._forward_backward(
            prepared.params, logb, offsets, np.ones(offsets.size - 1), False
        )
        return loglik, gamma

    def filter(
        self, params: HMMParams | PreparedHMM, X: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(log P(x_s) per sequence, α̂ (n, K))``: ``α̂_t(k) = P(z_t = k | x_1, …, x_t)``,
        the forward pass only (the log-likelihoods are those of :meth:`posteriors`)."""
        prepared = self._prepared(params)
        logb, _ = self.log_emission(prepared, X)
        alpha = np.empty_like(logb)
        loglik = np.empty(offsets.size - 1)
        chain = prepared.params
        forward_filter(logb, offsets, chain.startprob, chain.transmat, alpha, loglik)
        return loglik, alpha

    def viterbi(
        self, params: HMMParams | PreparedHMM, X: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(max_z log P(x_s, z) per sequence, the maximising states (n,))``."""
        prepared = self._prepared(params)
        logb, _ = self.log_emission(prepared, X)
        logprob = np.empty(offsets.size - 1)
        states = np.empty(X.shape[0], dtype=np.intp)
        viterbi(logb, offsets, prepared.log_start, prepared.log_trans_t, logprob, states)
        return logprob, states

    def map_path(
        self, params: HMMParams | PreparedHMM, X: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(log P(x_s, ẑ_s) per sequence, ẑ (n,))`` of the per-step most probable states
        ``ẑ_t = argmax_k γ_t(k)`` (−inf where ẑ takes a forbidden transition)."""
        prepared = self._prepared(params)
        logb, _ = self.log_emission(prepared, X)
        terms = logb.copy()  # forward-backward overwrites logb
        _, gamma, *_ = self._forward_backward(
            prepared.params, logb, offsets, np.ones(offsets.size - 1), False
        )
        states = gamma.argmax(axis=1)
        rows = np.arange(X.shape[0])
        step = terms[rows, states]
        first = offsets[:-1]
        inner = np.ones(X.shape[0], dtype=bool)
        inner[first] = False
        step[first] += prepared.log_start[states[first]]
        step[inner] += prepared.log_trans_t[states[inner], states[rows[inner] - 1]]
        return np.add.reduceat(step, first), states

    # --- engine protocol ----------------------------------------------------------------------
    def prepare(self, params: HMMParams) -> PreparedHMM:
        return PreparedHMM(
            params,
            self.emission.prepare(params.emission),
            _log_probabilities(params.startprob),
            np.ascontiguousarray(_log_probabilities(params.transmat).T),
        )

    def e_step(self, prepared: PreparedHMM, batch: SequenceBatch) -> HMMStats:
        params = prepared.params
        logb, missing = self._log_emission(prepared.emission, batch.X)
        w_seq = batch.sequence_weights
        loglik, R, xi, start, nk = self._forward_backward(
            params, logb, batch.offsets, w_seq, True
        )  # R = w·γ
        if missing.any():
            nk = nk - R[missing].sum(axis=0)
            R[missing] = 0.0
        positive = w_seq > 0  # a zero-weight sequence adds nothing, even when impossible
        return HMMStats(
            loglik=float(w_seq[positive] @ loglik[positive]),
            weight=float(w_seq @ batch.lengths),
            start=start,
            trans=xi,
            nk=nk,
            sums=self._accumulate(prepared.emission, batch.X, R, missing),
        )

    def m_step(self, stats: HMMStats, params: HMMParams) -> HMMParams:
        """``π ∝ start counts``, ``A_ij ∝ Σ ξ(i, j)``, emissions by ``family.m_step``; frozen
        parts, and rows without any expected count, keep their current values."""
        startprob, transmat, emission = params.startprob, params.transmat, params.emission
        if self.learn.start:
            total = stats.start.sum()
            if total > 0:
                startprob = stats.start / total
        if self.learn.transitions:
            rows = stats.trans.sum(axis=1)
            seen = rows > EPS * rows.sum()  # relative: weights of any scale
            transmat = transmat.copy()
            transmat[seen] = stats.trans[seen] / rows[seen, None]
        if self.learn.emissions:
            emission = self._emission_m_step(stats.sums, stats.nk, params.emission)
        return HMMParams(startprob, transmat, emission)

    def _emission_m_step(self, sums: tuple, nk: np.ndarray, current: Any) -> Any:
        if self._held and current is not None:
            return self.emission.m_step_holding(sums, floored_counts(nk), current, self._held)
        emission = self.emission.m_step(sums, floored_counts(nk), current)
        dead = np.flatnonzero(nk <= self.collapse_fraction * nk.sum())
        if dead.size and dead.size < nk.size:
            # a state without observations keeps finite emission parameters (a copy of the
            # busiest state's); its expected log-likelihood term is zero, so EM stays monotone
            index = np.arange(nk.size)
            index[dead] = int(np.argmax(nk))
            emission = self.emission.take(emission, index)
            warnings.warn(
                f"state(s) {dead.tolist()} of the HMM explain no observation; their "
                f"{self.emission.name} emission parameters were copied from the busiest state. "
                "Consider fewer states",
                ComponentCollapseWarning,
                stacklevel=3,
            )
        return emission

    def log_prior(self, params: HMMParams) -> float:
        return float(self.emission.log_prior(params.emission))

    def row_bytes(self, params: HMMParams | None) -> int:
        """Bytes of temporaries per row of a batch: ``log b`` and ``γ`` (K float64 each), the
        scale ``c_t``, a copy of the row for the family (D float64), the missing-row test
        (D + 1 bools), and the family's own ``row_bytes``."""
        K, D = self.n_states, self.n_features
        return 8 * (2 * K + 1 + D) + D + 1 + self.emission.row_bytes(K, D)

    # --- SQUAREM coordinates ------------------------------------------------------------------
    def flatten(self, params: HMMParams) -> np.ndarray:
        """``√π``, ``√A`` and the family's vector.

        Square roots, not logs: a probability that EM drives to zero moves its log linearly
        towards −∞ without converging, which inflates SQUAREM's step length for every other
        coordinate; its square root converges to zero geometrically like the rest.
        """
        return np.concatenate(
            [
                np.sqrt(params.startprob),
                np.sqrt(params.transmat).ravel(),
                self.emission.flatten(params.emission),
            ]
        )

    def unflatten(self, vector: np.ndarray, like: HMMParams) -> HMMParams:
        """Rows ``p = s² / Σ s²`` over the entries that are positive in ``like`` (zeros stay
        zero); frozen parts are ``like``'s."""
        K = like.n_states
        startprob, transmat, emission = like.startprob, like.transmat, like.emission
        if self.learn.start:
            startprob = _squares_free(vector[:K], like.startprob > 0, like.startprob)
        if self.learn.transitions:
            roots = vector[K : K + K * K].reshape(K, K)
            transmat = _squares_free(roots, like.transmat > 0, like.transmat)
        if self.learn.emissions:
            emission = self.emission.unflatten(vector[K + K * K :], like.emission)
            if self._held:
                emission = self.emission.hold(emission, like.emission, self._held)
        return HMMParams(startprob, transmat, emission)

    # --- initialisation -----------------------------------------------------------------------
    def initial_chain(self) -> tuple[np.ndarray, np.ndarray]:
        """The user's start vector and transition matrix, or uniform ones."""
        K = self.n_states
        startprob = np.full(K, 1.0 / K) if self.startprob is None else self.startprob
        transmat = np.full((K, K), 1.0 / K) if self.transmat is None else self.transmat
        return np.asarray(startprob, dtype=np.float64), np.asarray(transmat, dtype=np.float64)

    def init(self, data: SequenceData, rng: np.random.Generator) -> HMMParams:
        """Emissions from one M-step on a soft partition of the observed rows: each row gives
        ``1 − INIT_SPREAD`` of its weight to its nearest seed (k-means++ seeds on the family's
        ``init_features``, or random rows) and spreads the rest evenly, so that no state starts
        unable to emit a value it will need (a hard partition leaves categorical states with
        zero probabilities, where EM stays stuck); or random responsibilities.  Start and
        transitions uniform unless given.  Reads whole sequences of at most about
        ``INIT_SAMPLE_ROWS`` rows (``data.sample``)."""
        data = data.sample(INIT_SAMPLE_ROWS, rng)
        observed = ~_missing_rows(data.X)
        X, w, K = fill_missing_cells(data.X[observed]), data.weights[observed], self.n_states
        if X.shape[0] < K:
            raise ValueError(
                f"n_states={K} needs at least as many observed rows, got {X.shape[0]}"
            )
        method = self.init_method
        features = self.emission.init_features(X) if method.uses_features else None
        R = method.responsibilities(features, w, K, rng, X.shape[0], spread=INIT_SPREAD)
        R *= w[:, None]
        nk = R.sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ComponentCollapseWarning)
            emission = self._emission_m_step(self.emission.accumulate(None, X, R), nk, None)
        startprob, transmat = self.initial_chain()
        return HMMParams(startprob, transmat, emission)

    # --- bookkeeping --------------------------------------------------------------------------
    def n_parameters(self, params: HMMParams) -> int:
        """Free parameters that EM estimates: positive start and transition entries less one per
        row, plus the family's (frozen parts are not counted)."""
        count = 0
        if self.learn.start:
            count += int((params.startprob > 0).sum()) - 1
        if self.learn.transitions:
            count += int((params.transmat > 0).sum()) - self.n_states
        if self.learn.emissions:
            count += int(self.emission.n_parameters(params.emission))
            count -= int(self.emission.n_held_parameters(params.emission, self._held))
        return count

    def sample(
        self, params: HMMParams, lengths: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sequences of ``lengths``: states by the Markov chain, then each state's emissions."""
        K = self.n_states
        n = int(np.sum(lengths))
        states = np.empty(n, dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        sample_states(
            np.cumsum(params.startprob),
            np.cumsum(params.transmat, axis=1),
            offsets,
            rng.random(n),
            states,
        )
        X = None
        for k in range(K):
            where = np.flatnonzero(states == k)
            if where.size == 0:
                continue
            draws = self.emission.sample(params.emission, k, where.size, rng)
            if X is None:
                X = np.empty((n, draws.shape[1]), dtype=draws.dtype)
            X[where] = draws
        assert X is not None
        return X, states


def _missing_rows(X: np.ndarray) -> np.ndarray:
    """Rows with every cell NaN (marginalised as a whole; the family sees the others)."""
    if X.dtype.kind != "f":
        return np.zeros(X.shape[0], dtype=bool)
    return np.isnan(X).all(axis=1)

