"""Forward-backward, forward filter and Viterbi recursions of HMMs (numba; arrays only).

One code path for every emission family: the kernels see only the ``(n, K)`` matrix of log
emission densities ``log b_t(k)`` of a batch of concatenated sequences (``offsets`` mark where
each starts).  They are serial and release the GIL; the engine runs batches of sequences on
parallel threads.

Forward-backward uses per-step scaling (Rabiner 1989): ``b̃_t = exp(log b_t − m_t)`` with
``m_t = max_k log b_t(k)``; ``α̂_t ∝ (α̂_{t−1} A) ⊙ b̃_t`` normalised by ``c_t``, so
``log P = Σ_t (log c_t + m_t)`` (one forward pass, :func:`_forward`, serves the filter and
forward-backward).  Should ``c_t`` come near underflow (the states reachable at
``t`` all explain ``x_t`` far worse than an unreachable one), the step is redone with the exact
log-space shift ``max_k (log p_k + log b_t(k))`` over the reachable states.  A zero in the
transition matrix gives zero expected transitions, so left-right topologies stay as they are.
"""

from __future__ import annotations

import numba
import numpy as np

_OPTS = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
# a scaling constant below this is recomputed with the exact log-space shift
TINY_SCALE = 1e-250


@numba.njit(**_OPTS)
def _carry_prediction(
    gamma: np.ndarray, logb: np.ndarray, scale: np.ndarray, pred: np.ndarray, t: int
) -> None:
    """Step ``t`` that no reachable state can emit: ``α̂_t`` is the prediction, ``b̃_t = 1``
    (the sequence's log-likelihood is −inf; the posteriors stay finite)."""
    for k in range(pred.shape[0]):
        gamma[t, k] = pred[k]
        logb[t, k] = 1.0  # b̃_t (logb holds b̃ once the forward pass has passed t)
    scale[t] = 1.0


@numba.njit(**_OPTS)
def _forward(
    logb: np.ndarray,
    a: int,
    e: int,
    startprob: np.ndarray,
    transmat: np.ndarray,
    alpha: np.ndarray,
    scale: np.ndarray,
    pred: np.ndarray,
    bvec: np.ndarray,
) -> float:
    """Scaled forward pass over rows ``[a, e)``: ``α̂_t ∝ (α̂_{t−1} A) ⊙ b̃_t`` into ``alpha``,
    ``b̃_t`` over ``logb``, ``c_t`` into ``scale``; returns ``log P(x_{a:e})``.  A row no
    reachable state can emit carries the prediction ``α̂_{t−1} A`` (and makes it −inf)."""
    K = logb.shape[1]
    ll = 0.0
    for t in range(a, e):
        if t == a:
            for k in range(K):
                pred[k] = startprob[k]
        else:
            for k in range(K):
                pred[k] = 0.0
            for i in range(K):
                ai = alpha[t - 1, i]
                if ai != 0.0:
                    for k in range(K):
                        pred[k] += ai * transmat[i, k]
        m = logb[t, 0]
        for k in range(1, K):
            if logb[t, k] > m:
                m = logb[t, k]
        if not m > -np.inf:  # no state can emit x_t (or NaN)
            ll = -np.inf
            _carry_prediction(alpha, logb, scale, pred, t)
            continue
        c = 0.0
        for k in range(K):
            bt = np.exp(logb[t, k] - m)
            v = pred[k] * bt
            alpha[t, k] = v
            c += v
            bvec[k] = bt
        if c < TINY_SCALE:  # exact shift: max_k log p_k + log b_t(k)
            m2 = -np.inf
            for k in range(K):
                if pred[k] > 0.0:
                    u = np.log(pred[k]) + logb[t, k]
                    if u > m2:
                        m2 = u
            if not m2 > -np.inf:  # only unreachable states can emit x_t
                ll = -np.inf
                _carry_prediction(alpha, logb, scale, pred, t)
                continue
            c = 0.0
            for k in range(K):
                if pred[k] > 0.0:
                    v = np.exp(np.log(pred[k]) + logb[t, k] - m2)
                    bvec[k] = np.exp(logb[t, k] - m2)
                else:
                    v = 0.0
                    bvec[k] = 0.0
                alpha[t, k] = v
                c += v
            m = m2
        inv = 1.0 / c
        for k in range(K):
            alpha[t, k] *= inv
            logb[t, k] = bvec[k]
        scale[t] = c
        ll += np.log(c) + m
    return ll


@numba.njit(**_OPTS)
def forward_backward(
    logb: np.ndarray,
    offsets: np.ndarray,
    startprob: np.ndarray,
    transmat: np.ndarray,
    seq_weights: np.ndarray,
    gamma: np.ndarray,
    loglik: np.ndarray,
    xi: np.ndarray,
    start: np.ndarray,
    occupancy: np.ndarray,
    weighted: bool,
) -> None:
    """Posteriors and expected counts of sequences ``s``: ``[offsets[s], offsets[s+1])``.

    In: ``logb`` (n, K) log emission densities (overwritten: used as scratch), ``startprob``
    (K,), ``transmat`` (K, K), ``seq_weights`` (S,).  Out: ``gamma`` (n, K) posteriors
    ``P(z_t = k | x)``, times the sequence's weight when ``weighted``; ``loglik`` (S,)
    ``log P(x_s)``; and, added to what they hold, ``xi += Σ_s w_s Σ_t ξ_t`` with
    ``ξ_t(i, j) = P(z_t = i, z_{t+1} = j | x)``, ``start += Σ_s w_s γ_{s,0}`` and
    ``occupancy += Σ_s w_s Σ_t γ_t``.  A sequence that no state can emit gets
    ``loglik = −inf``.
    """
    n, K = logb.shape
    S = offsets.shape[0] - 1
    scale = np.empty(n)
    pred = np.empty(K)
    beta = np.empty(K)
    bvec = np.empty(K)
    acc = np.zeros((K, K))
    for s in range(S):
        a = offsets[s]
        e = offsets[s + 1]
        w = seq_weights[s]
        # ---- forward: gamma holds α̂_t, logb becomes b̃_t, scale holds c_t
        ll = _forward(logb, a, e, startprob, transmat, gamma, scale, pred, bvec)
        loglik[s] = ll
        # ---- backward: β̂_t, ξ and γ_t = α̂_t ⊙ β̂_t (over α̂_t in place)
        for k in range(K):
            beta[k] = 1.0
        for t in range(e - 1, a - 1, -1):
            if t < e - 1:
                # bvec = b̃_{t+1} ⊙ β̂_{t+1} / c_{t+1}
                for i in range(K):
                    ai = gamma[t, i] * w
                    if ai != 0.0:
                        for j in range(K):
                            acc[i, j] += ai * bvec[j]
                for i in range(K):
                    total = 0.0
                    for j in range(K):
                        total += transmat[i, j] * bvec[j]
                    beta[i] = total
            norm = 0.0
            for k in range(K):
                g = gamma[t, k] * beta[k]
                gamma[t, k] = g
                norm += g
            scale_g = 1.0 / norm if norm > 0.0 else 1.0
            for k in range(K):
                g = gamma[t, k] * scale_g
                occupancy[k] += w * g
                gamma[t, k] = g * w if weighted else g
            if t > a:
                for k in range(K):
                    bvec[k] = logb[t, k] * beta[k] / scale[t]
        for k in range(K):
            start[k] += gamma[a, k] if weighted else w * gamma[a, k]
    for i in range(K):
        for j in range(K):
            xi[i, j] += transmat[i, j] * acc[i, j]


@numba.njit(**_OPTS)
def forward_filter(
    logb: np.ndarray,
    offsets: np.ndarray,
    startprob: np.ndarray,
    transmat: np.ndarray,
    alpha: np.ndarray,
    loglik: np.ndarray,
) -> None:
    """Filtered probabilities ``α̂_t(k) = P(z_t = k | x_1, …, x_t)`` of sequences ``s``.

    In: ``logb`` (n, K) log emission densities (overwritten: scratch), ``startprob`` (K,),
    ``transmat`` (K, K).  Out: ``alpha`` (n, K) and ``loglik`` (S,) ``log P(x_s)`` (the
    forward pass of :func:`forward_backward`, the same arithmetic).  A row that no reachable
    state can emit (or a missing row, ``log b_t = 0``: ``α̂_t ∝ α̂_{t−1} A``) carries the
    prediction forward.
    """
    n, K = logb.shape
    scale = np.empty(n)
    pred = np.empty(K)
    bvec = np.empty(K)
    for s in range(offsets.shape[0] - 1):
        loglik[s] = _forward(
            logb, offsets[s], offsets[s + 1], startprob, transmat, alpha, scale, pred, bvec
        )


@numba.njit(**_OPTS)
def viterbi(
    logb: np.ndarray,
    offsets: np.ndarray,
    log_start: np.ndarray,
    log_trans_t: np.ndarray,
    logprob: np.ndarray,
    states: np.ndarray,
) -> None:
    """Most probable state paths: ``δ_t(j) = max_i (δ_{t−1}(i) + log A_ij) + log b_t(j)``.

    ``log_trans_t`` is ``log A`` transposed (``[j, i]``, contiguous over ``i``).  Out:
    ``logprob`` (S,) ``max_z log P(x_s, z)`` and ``states`` (n,) the maximising paths (ties go
    to the lowest state index).
    """
    n, K = logb.shape
    S = offsets.shape[0] - 1
    back = np.empty((n, K), dtype=np.int32)
    delta = np.empty(K)
    new = np.empty(K)
    for s in range(S):
        a = offsets[s]
        e = offsets[s + 1]
        for k in range(K):
            delta[k] = log_start[k] + logb[a, k]
        for t in range(a + 1, e):
            for j in range(K):
                best = -np.inf
                arg = 0
                for i in range(K):
                    v = delta[i] + log_trans_t[j, i]
                    if v > best:
                        best = v
                        arg = i
                new[j] = best + logb[t, j]
                back[t, j] = arg
            for k in range(K):
                delta[k] = new[k]
        best = -np.inf
        arg = 0
        for k in range(K):
            if delta[k] > best:
                best = delta[k]
                arg = k
        logprob[s] = best
        states[e - 1] = arg
        for t in range(e - 1, a, -1):
            arg = back[t, arg]
            states[t - 1] = arg


@numba.njit(**_OPTS)
def sample_states(
    cum_start: np.ndarray, cum_trans: np.ndarray, offsets: np.ndarray, u: np.ndarray,
    states: np.ndarray,
) -> None:
    """Markov chains by inversion: ``z_t = min{k : F(k) > u_t}`` with ``F`` the cumulative
    start vector (first step of each sequence) or row ``z_{t−1}`` of the cumulative transitions."""
    K = cum_start.shape[0]
    for s in range(offsets.shape[0] - 1):
        prev = -1
        for t in range(offsets[s], offsets[s + 1]):
            k = 0
            if prev < 0:
                while k < K - 1 and cum_start[k] <= u[t]:
                    k += 1
            else:
                while k < K - 1 and cum_trans[prev, k] <= u[t]:
                    k += 1
            states[t] = k
            prev = k
