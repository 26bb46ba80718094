"""The losses of the notes' other models, with their gradients at the scores.

    hinge (the window scorer):  L_i = max(0, 1 - s_i + s'_i)     s' scores the corrupted window
        dL_i/ds_i = -1, dL_i/ds'_i = +1 where 1 - s_i + s'_i > 0, else 0

    negative sampling (skip-gram): for a centre word's vector v = W1[:, c] and the
    output vectors u_w = W2[w, :] of its context word o and K sampled words n_1..n_K,
        L = -log σ(u_o·v) - Σ_k log σ(-u_{n_k}·v)
        g_o = σ(u_o·v) - 1,   g_k = σ(u_{n_k}·v)            (dL/d(u·v))
        dW2[w, :] += g_w v    dW1[:, c] += Σ_w g_w u_w

Scores are summed over the batch; the update divides by N (pyx/updates.pyx).  Dot
products add in ascending order from 0.0, whatever the backend: there is no BLAS
call here, the gathers and scatters are the work.  ``floating`` is float64 or, for
the fast backend only, float32; the losses are summed in float64.
"""
import numpy as np
from cython cimport floating
from libc.math cimport exp, log1p


cdef inline double log_sigmoid(double u) noexcept nogil:
    """log σ(u) without overflow: -log(1 + e^-u) for u ≥ 0, u - log(1 + e^u) below."""
    if u >= 0:
        return -log1p(exp(-u))
    return u - log1p(exp(u))


cdef inline void log_sigmoids(double u, double* pos, double* neg) noexcept nogil:
    """pos = log σ(u), neg = log σ(-u), each the very value log_sigmoid gives, from one
    exp and one log1p: both branches of log_sigmoid(u) and log_sigmoid(-u) take the
    same log1p(e^-|u|)."""
    cdef double L
    if u >= 0:
        L = log1p(exp(-u))
        pos[0], neg[0] = -L, -u - L
    else:
        L = log1p(exp(u))
        pos[0], neg[0] = u - L, -L


cdef double hinge_grad_block(const floating* s, floating* ds, int N) noexcept nogil:
    """Σ_i max(0, 1 - s[i] + s[N + i]) for the N true scores s[:N] and their corrupted
    ones s[N:2N]; the gradient of that sum into ds (2N)."""
    cdef int i
    cdef double margin, total = 0.0
    for i in range(N):
        margin = 1.0 - s[i] + s[N + i]
        if margin > 0:
            total = total + margin
            ds[i], ds[N + i] = -1.0, 1.0
        else:
            ds[i], ds[N + i] = 0.0, 0.0
    return total


cdef double negative_sampling_block(const floating* W1, const floating* W2, int d, int V,
                                    const int* centre, const int* words, int K1, int N,
                                    floating* dW1, floating* dW2, floating* v, floating* dv,
                                    double* u, bint grad) noexcept nogil:
    """The negative-sampling loss summed over N examples (words[i, 0] the context word,
    words[i, 1:K1] the samples); with ``grad``, its gradients added into dW1 (d x V)
    and dW2 (V x d), which the caller zeroes.  ``v``, ``dv``: d floats of scratch each
    (the centre's vector is a column of W1, d cache lines apart: copied once); ``u``:
    K1 doubles, the example's scores.  The scores of up to 8 words are computed side by
    side, each its own sum in ascending k: the same bits as one after the other, with
    8 chains of additions in flight instead of one."""
    cdef int i, j, j0, q, nq, k, c, w
    cdef double g, pos, neg, total = 0.0
    cdef double acc[8]
    cdef const floating* rows[8]
    cdef const floating* out
    cdef floating* dout
    for i in range(N):
        c = centre[i]
        for k in range(d):
            v[k] = W1[<Py_ssize_t> k * V + c]
            dv[k] = 0.0
        for j0 in range(0, K1, 8):                    # u_w = u_w · v, 8 words at a time
            nq = K1 - j0 if K1 - j0 < 8 else 8
            for q in range(nq):
                acc[q] = 0.0
                rows[q] = W2 + <Py_ssize_t> words[i * K1 + j0 + q] * d
            for q in range(nq, 8):
                acc[q] = 0.0
                rows[q] = rows[0]
            for k in range(d):
                for q in range(8):
                    acc[q] = acc[q] + rows[q][k] * v[k]
            for q in range(nq):
                u[j0 + q] = acc[q]
        for j in range(K1):
            w = words[i * K1 + j]
            out = W2 + <Py_ssize_t> w * d
            log_sigmoids(u[j], &pos, &neg)
            if j == 0:
                total = total - pos
                g = exp(pos) - 1.0                    # σ(u) - 1
            else:
                total = total - neg
                g = exp(pos)                          # σ(u)
            if grad:
                dout = dW2 + <Py_ssize_t> w * d
                for k in range(d):
                    dv[k] = dv[k] + g * out[k]
                    dout[k] = dout[k] + g * v[k]
        if grad:
            for k in range(d):
                dW1[<Py_ssize_t> k * V + c] += dv[k]
    return total


# -- Python wrappers ------------------------------------------------------------------

def hinge_grad(const floating[::1] s, floating[::1] ds):
    """Σ_i max(0, 1 - s[i] + s[N + i]) over the N pairs of true and corrupted scores
    in s (2N); its gradient with respect to s into ds."""
    if s.shape[0] % 2 or ds.shape[0] != s.shape[0]:
        raise ValueError("hinge_grad: s and ds must both hold 2N scores")
    cdef double total = 0.0
    if s.shape[0] == 0:
        return total
    with nogil:
        total = hinge_grad_block(&s[0], &ds[0], s.shape[0] // 2)
    return total


def negative_sampling(const floating[:, ::1] W1, const floating[:, ::1] W2,
                      const int[::1] centre, const int[:, ::1] words,
                      floating[:, ::1] dW1=None, floating[:, ::1] dW2=None):
    """The negative-sampling loss summed over the examples: centre words ``centre`` (N),
    their context word and K samples ``words`` (N x (K+1)); with dW1 and dW2 given,
    those are set to the loss's gradients with respect to W1 (d x V) and W2 (V x d)."""
    cdef int d = W1.shape[0], V = W1.shape[1], N = centre.shape[0], K1 = words.shape[1]
    cdef bint grad = dW1 is not None, bad = False
    cdef Py_ssize_t i, j
    if W2.shape[0] != V or W2.shape[1] != d or words.shape[0] != N or K1 < 1:
        raise ValueError("negative_sampling: shapes do not match")
    if grad != (dW2 is not None):
        raise ValueError("negative_sampling: give both dW1 and dW2, or neither")
    if grad and (dW1.shape[0] != d or dW1.shape[1] != V or dW2.shape[0] != V
                 or dW2.shape[1] != d):
        raise ValueError("negative_sampling: dW1 must be d x V and dW2 V x d")
    with nogil:                                   # typed: no Python object per word
        for i in range(N):
            bad = bad or not 0 <= centre[i] < V
            for j in range(K1):
                bad = bad or not 0 <= words[i, j] < V
    if bad:
        every = np.concatenate([np.asarray(centre), np.asarray(words).ravel()])
        found = every[(every < 0) | (every >= V)]
        raise ValueError(f"word index {found[0]} outside 0..{V - 1}")
    if grad:
        dW1[:, :] = 0.0
        dW2[:, :] = 0.0
    if N == 0 or d == 0:
        return 0.0
    cdef floating[:, ::1] scratch = np.empty((2, d), dtype=np.float64 if floating is double
                                             else np.float32)
    cdef double[::1] scores = np.empty(K1)
    cdef double total
    with nogil:
        total = negative_sampling_block(&W1[0, 0], &W2[0, 0], d, V, &centre[0], &words[0, 0],
                                       K1, N, &dW1[0, 0] if grad else NULL,
                                       &dW2[0, 0] if grad else NULL, &scratch[0, 0],
                                       &scratch[1, 0], &scores[0], grad)
    return total
