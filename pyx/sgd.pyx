"""word2vec's optimiser for skip-gram with negative sampling: per-pair SGD, sparse.

For each (centre c, context o) pair in order, with the input vectors as rows
(E = W1ᵀ, V x d: a word's vector is contiguous) and the output vectors W2 (V x d),
K words n_1..n_K drawn from the alias table (pyx/sampling.pyx), and the rate α of
this pair:

    for w, label in (o, 1), (n_1, 0), ..., (n_K, 0):
        f = u_w · v_c                      loss += -log σ(f) (label 1), -log σ(-f) (label 0)
        g = α (label - σ(f))
        e += g u_w ;  u_w += g v_c         (u_w read before its update)
    v_c += e

which is one SGD step on the pair's term of the loss of pyx/objectives.pyx,
output vectors first (word2vec's order, and gensim's).  Only the K + 2 rows a pair
touches are read or written: no dense gradient, no momentum.  The rate falls
linearly with the pair's place in the run: α = lr · max(floor, 1 - p / total).
A pair's loss is taken before its own update.

With T > 1 threads each takes the next two minibatches free (a dynamic schedule: a
thread the machine slows down takes fewer, as gensim's workers take fewer jobs) and
updates the shared rows without locks (Hogwild, as word2vec and gensim do): the
result then depends on the threads' timing.  One thread is reproducible bit for bit.
Dot products keep 8 (float64) or 16 (float32) partial sums in vector registers, an
order of their own as BLAS's is; on the exact backend (``ordered``) one sum in
ascending order, as everywhere else.  float32 takes expf and logf.
``floating`` is float64 or float32.
"""
import numpy as np
from cython cimport floating
from cython.parallel cimport prange
from cython.parallel cimport threadid
from libc.math cimport exp, expf, log, logf
from libc.stdint cimport uint64_t

from wordnet._sampling cimport alias_draw, splitmix64


cdef extern from *:
    """
    #include <string.h>
    typedef double wordnet_v4d __attribute__((vector_size(32)));
    typedef float wordnet_v8f __attribute__((vector_size(32)));
    /* a . b in two vectors of partial sums (lane q of each adds the k = q mod 8, or
       q mod 16, in ascending order), added lane-wise, then the tail */
    static inline double wordnet_dot64(const double* a, const double* b, int d) {
        wordnet_v4d s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0}, a0, a1, b0, b1;
        int k = 0;
        for (; k + 8 <= d; k += 8) {
            memcpy(&a0, a + k, 32); memcpy(&a1, a + k + 4, 32);
            memcpy(&b0, b + k, 32); memcpy(&b1, b + k + 4, 32);
            s0 += a0 * b0; s1 += a1 * b1;
        }
        s0 += s1;
        double r = (s0[0] + s0[2]) + (s0[1] + s0[3]);
        for (; k < d; k++) r += a[k] * b[k];
        return r;
    }
    static inline double wordnet_dot32(const float* a, const float* b, int d) {
        wordnet_v8f s0 = {0}, s1 = {0}, a0, a1, b0, b1;
        int k = 0;
        for (; k + 16 <= d; k += 16) {
            memcpy(&a0, a + k, 32); memcpy(&a1, a + k + 8, 32);
            memcpy(&b0, b + k, 32); memcpy(&b1, b + k + 8, 32);
            s0 += a0 * b0; s1 += a1 * b1;
        }
        s0 += s1;
        float r = ((s0[0] + s0[4]) + (s0[2] + s0[6])) + ((s0[1] + s0[5]) + (s0[3] + s0[7]));
        for (; k < d; k++) r += a[k] * b[k];
        return r;
    }
    """
    double dot64 "wordnet_dot64"(const double* a, const double* b, int d) noexcept nogil
    double dot32 "wordnet_dot32"(const float* a, const float* b, int d) noexcept nogil


cdef inline double dot(const floating* a, const floating* b, int d,
                       bint ordered) noexcept nogil:
    """a · b: partial sums in vector registers; ``ordered``: one sum in ascending k."""
    cdef int k
    cdef double s = 0.0
    if ordered:
        for k in range(d):
            s = s + a[k] * b[k]
        return s
    if floating is double:
        return dot64(a, b, d)
    else:
        return dot32(a, b, d)


cdef double pair_sgd(floating* E, floating* W2, int d, int c, int o, int K,
                     const double* prob, const int* alias, int V, uint64_t* state,
                     double alpha, floating* e, bint ordered) noexcept nogil:
    """One pair's SGD step (the module's docstring); its loss before the step."""
    cdef floating* v = E + <Py_ssize_t> c * d
    cdef floating* u
    cdef floating g
    cdef double f, t, sig, softplus, loss = 0.0
    cdef int j, k, w
    for k in range(d):
        e[k] = 0
    for j in range(K + 1):
        w = o if j == 0 else alias_draw(prob, alias, V, splitmix64(state))
        u = W2 + <Py_ssize_t> w * d
        f = dot(v, u, d, ordered)
        if floating is double:                        # t = e^-|f|: never overflows
            t = exp(-f if f >= 0 else f)
        else:
            t = expf(<float> (-f if f >= 0 else f))
        sig = 1.0 / (1.0 + t) if f >= 0 else t / (1.0 + t)
        # log(1 + t), within 1.1e-16 (float32: 6e-8) of log1p(t), at a third of its cost
        softplus = log(1.0 + t) if floating is double else logf(<float> (1.0 + t))
        if j == 0:
            loss = loss + (softplus if f >= 0 else softplus - f)
            g = <floating> (alpha * (1.0 - sig))
        else:
            loss = loss + (softplus + f if f >= 0 else softplus)
            g = <floating> (-alpha * sig)
        for k in range(d):
            e[k] = e[k] + g * u[k]
            u[k] = u[k] + g * v[k]
    for k in range(d):
        v[k] = v[k] + e[k]
    return loss


cdef void sgd_block(floating* E, floating* W2, int d, int V, const int* pairs, int N, int K,
                    int first, int last, const double* prob, const int* alias,
                    uint64_t* state, double lr, double floor, double done, double total,
                    double* losses, floating* e, bint ordered) noexcept nogil:
    """Minibatches first..last-1 (N pairs each) of ``pairs``; each one's summed loss
    into losses[b].  ``done``: pairs of the run before pairs[0]; ``total``: the run's."""
    cdef int b, i
    cdef Py_ssize_t p
    cdef double alpha, left, loss
    for b in range(first, last):
        loss = 0.0
        for i in range(N):
            p = <Py_ssize_t> b * N + i
            left = 1.0 - (done + p) / total
            alpha = lr * (left if left > floor else floor)
            loss = loss + pair_sgd(E, W2, d, pairs[2 * p], pairs[2 * p + 1], K, prob, alias,
                                   V, state, alpha, e, ordered)
        losses[b] = loss


# -- Python wrapper -------------------------------------------------------------------

def sgd_negative_sampling(floating[:, ::1] E, floating[:, ::1] W2, const int[:, ::1] pairs,
                          int batch_size, int negatives, const double[::1] prob,
                          const int[::1] alias, uint64_t[::1] states, double learning_rate,
                          double floor, double done, double total, double[::1] losses,
                          int threads=1, bint ordered=False):
    """Per-pair SGD (the module's docstring) over the whole minibatches of ``pairs``
    (P x 2: centre, context), in place on E (V x d, the input vectors as rows) and W2
    (V x d); each minibatch's summed loss into ``losses``.  Thread t draws with the
    splitmix64 state states[t], which it advances.  ``ordered`` (the exact backend):
    each dot product one sum in ascending order, as pyx/objectives.pyx adds them."""
    cdef int V = E.shape[0], d = E.shape[1], N = batch_size, K = negatives
    cdef int nb = pairs.shape[0] // N if N > 0 else 0, T, t, b
    cdef Py_ssize_t p
    cdef bint bad = False
    if W2.shape[0] != V or W2.shape[1] != d or pairs.shape[1] != 2:
        raise ValueError("sgd_negative_sampling: E and W2 must both be V x d, pairs P x 2")
    if N < 1 or K < 0 or prob.shape[0] != V or alias.shape[0] != V:
        raise ValueError("sgd_negative_sampling: batch_size >= 1, negatives >= 0, and a "
                         "table of V words")
    if losses.shape[0] < nb or not total > 0:
        raise ValueError("sgd_negative_sampling: a loss per minibatch, total > 0")
    T = max(1, min(threads, nb))
    if states.shape[0] < T:
        raise ValueError(f"sgd_negative_sampling: {T} threads need {T} random states")
    if nb == 0 or d == 0:
        return
    with nogil:
        for p in range(<Py_ssize_t> nb * N):
            if not (0 <= pairs[p, 0] < V and 0 <= pairs[p, 1] < V):
                bad = True
        for p in range(V):
            if not 0 <= alias[p] < V:
                bad = True
    if bad:
        raise ValueError(f"sgd_negative_sampling: a word index outside 0..{V - 1}")
    cdef floating[:, ::1] scratch = np.empty((T, d + 16), dtype=np.float64 if floating is double
                                             else np.float32)
    for b in prange(nb, nogil=True, num_threads=T, schedule="dynamic", chunksize=2):
        t = threadid()
        sgd_block(&E[0, 0], &W2[0, 0], d, V, &pairs[0, 0], N, K, b, b + 1, &prob[0],
                  &alias[0], &states[t], learning_rate, floor, done, total, &losses[0],
                  &scratch[t, 0], ordered)
