"""Activations and the loss, on batches stored one example per column.

A batch of N examples is a (units x N) row-major matrix, as in the C
reference, so every loop below runs along a row: across examples, never
across a sum.  The kernels work on a block of ``cols`` columns of a matrix
whose rows are ``ld`` apart, so that threads can share a batch.  With
``exact``, exp and log are the platform C library's, which the exact backend
must reproduce bit for bit; otherwise exp is ``exp_fast``, a branch-free
version the compiler vectorises.  ``floating`` is float64 or, for the fast
backend only, float32.
"""
from cython cimport floating, view
from cython.parallel cimport prange
from libc.math cimport exp, log, tanh
import numpy as np

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline double wordnet_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
    static inline uint64_t wordnet_to_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
    static inline float wordnet_from_bits32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    static inline uint32_t wordnet_to_bits32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
    /* a * b + c in one rounding where the CPU has FMA (x86-64-v3), else in two:
       -ffp-contract=off forbids the compiler to fuse on its own, not when asked. */
    #ifdef __FMA__
    static inline double wordnet_fma(double a, double b, double c) { return __builtin_fma(a, b, c); }
    static inline float wordnet_fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
    #else
    static inline double wordnet_fma(double a, double b, double c) { return a * b + c; }
    static inline float wordnet_fmaf(float a, float b, float c) { return a * b + c; }
    #endif
    """
    ctypedef unsigned long long uint64_t
    ctypedef unsigned int uint32_t
    double from_bits "wordnet_from_bits"(uint64_t u) noexcept nogil
    uint64_t to_bits "wordnet_to_bits"(double d) noexcept nogil
    float from_bits32 "wordnet_from_bits32"(uint32_t u) noexcept nogil
    uint32_t to_bits32 "wordnet_to_bits32"(float f) noexcept nogil
    double fma "wordnet_fma"(double a, double b, double c) noexcept nogil
    float fmaf "wordnet_fmaf"(float a, float b, float c) noexcept nogil


cdef inline floating exp_fast(floating x) noexcept nogil:
    if floating is double:
        return _exp64(x)
    else:
        return _exp32(x)


cdef inline double _exp64(double x) noexcept nogil:
    # exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2, exp(r) by its
    # Taylor series to r^13 (error below one ulp), evaluated by Estrin's scheme
    # (short dependency chains, so vector lanes and pipelines stay busy) in fused
    # multiply-adds where the CPU has them; 2^n is built in the exponent bits.
    # Adding 1.5 * 2^52 rounds x / ln 2 to an integer held in the low mantissa
    # bits, without a branch or a conversion.  Outside [-708, 709] those bits
    # overflow: the result is then replaced by exp(-708) or exp(709), two
    # selects after the fact, where clamping x first cost a third of the time
    # (GCC's blends for a clamp that keeps NaN).  A NaN stays NaN.
    cdef double shifter = 6755399441055744.0
    cdef double t, n, r, r2, r4, r8, p
    t = fma(x, 1.4426950408889634, shifter)
    n = t - shifter
    r = fma(n, -1.9082149292705877e-10, fma(n, -0.6931471803691238, x))
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p = fma(fma(fma(r, 1.0 / 5040, 1.0 / 720), r2, fma(r, 1.0 / 120, 1.0 / 24)), r4,
            fma(fma(r, 1.0 / 6, 0.5), r2, r + 1.0))
    p = fma(fma(fma(r, 1.0 / 6227020800.0, 1.0 / 479001600.0), r4,
                fma(fma(r, 1.0 / 39916800, 1.0 / 3628800), r2, fma(r, 1.0 / 362880, 1.0 / 40320))),
            r8, p)
    p = p * from_bits((to_bits(t) - to_bits(shifter) + 1023) << 52)
    p = 3.307553003638408e-308 if x < -708.0 else p      # exp(-708)
    return 8.218407461554972e+307 if x > 709.0 else p    # exp(709)


cdef inline float _exp32(float x) noexcept nogil:
    # As _exp64 in single precision: the shifter is 1.5 * 2^23, ln 2 is split
    # in a part exact in float32 and the rest, the Taylor series stops at r^7
    # (truncation error 5e-9, below the float32 ulp), and the range is [-87, 88].
    # Every constant is a float: one double in the expression would widen the
    # whole of it.
    cdef float shifter = 12582912.0, log2e = 1.44269504, ln2_hi = -0.693145751953125
    cdef float ln2_lo = -1.4286068203094173e-06, c2 = 0.5, c3 = 1.0 / 6, c4 = 1.0 / 24
    cdef float c5 = 1.0 / 120, c6 = 1.0 / 720, c7 = 1.0 / 5040, one = 1.0
    cdef float lo = -87.0, hi = 88.0, exp_lo = 1.6458115e-38, exp_hi = 1.6516363e+38
    cdef float t, n, r, r2, r4, p
    t = fmaf(x, log2e, shifter)
    n = t - shifter
    r = fmaf(n, ln2_lo, fmaf(n, ln2_hi, x))
    r2 = r * r
    r4 = r2 * r2
    p = fmaf(fmaf(fmaf(r, c7, c6), r2, fmaf(r, c5, c4)), r4, fmaf(fmaf(r, c3, c2), r2, r + one))
    p = p * from_bits32((to_bits32(t) - to_bits32(shifter) + 127) << 23)
    p = exp_lo if x < lo else p
    return exp_hi if x > hi else p


cdef void bias_sigmoid_block(const floating* z, const floating* b, floating* y, int rows,
                             int cols, int ld, bint exact) noexcept nogil:
    """y = sigmoid(z + b) on a rows x cols block; sigmoid(x) = 1 / (1 + exp(-x))."""
    cdef int h, i
    cdef floating one = 1.0, bh
    cdef const floating* zh
    cdef floating* yh
    for h in range(rows):
        zh, yh, bh = z + <Py_ssize_t> h * ld, y + <Py_ssize_t> h * ld, b[h]
        if exact:
            for i in range(cols):
                yh[i] = one / (one + exp(-(zh[i] + bh)))
        else:
            for i in range(cols):
                yh[i] = one / (one + exp_fast(-(zh[i] + bh)))


cdef void bias_tanh_block(const floating* z, const floating* b, floating* y, int rows,
                          int cols, int ld, bint exact) noexcept nogil:
    """y = tanh(z + b) on a rows x cols block: the C library's tanh with ``exact``,
    else 1 - 2 / (1 + exp(2x)) with exp_fast (within a few ulps of 1; tanh's sign and
    its saturation at +-1 kept)."""
    cdef int h, i
    cdef floating one = 1.0, two = 2.0, bh
    cdef const floating* zh
    cdef floating* yh
    for h in range(rows):
        zh, yh, bh = z + <Py_ssize_t> h * ld, y + <Py_ssize_t> h * ld, b[h]
        if exact:
            for i in range(cols):
                yh[i] = tanh(zh[i] + bh)
        else:
            for i in range(cols):
                yh[i] = one - two / (one + exp_fast(two * (zh[i] + bh)))


cdef void bias_softmax_block(const floating* z, const floating* b, floating* y, floating* s,
                             int V, int cols, int ld, bint exact) noexcept nogil:
    """y[:, i] = softmax(z[:, i] + b) for the ``cols`` columns of a V-row block.

    Per column: m = max, e_k = exp(z_k - m), s = sum of e_k in ascending k,
    y_k = e_k / s.  ``s`` is scratch for ``cols`` values.  y may be z (in place).
    """
    # Rows are addressed through pointers (zk[i], not z[k * ld + i]): with the
    # index arithmetic inline, GCC's vectorised loops fell back to scalar code.
    cdef int k, i, c0, n
    cdef floating x, bk
    cdef const floating* zk
    cdef floating* yk
    if not exact:                           # fast: in blocks, the exp and the sum in one pass
        c0 = 0
        while c0 < cols:
            n = min(cols - c0, SOFTMAX_BLOCK)
            _softmax_fast(z + c0, b, y + c0, s + c0, V, n, ld)
            c0 = c0 + n
        return
    for i in range(cols):                   # s = max_k (z_k + b_k)
        s[i] = z[i] + b[0]
    for k in range(1, V):
        zk, bk = z + <Py_ssize_t> k * ld, b[k]
        for i in range(cols):
            x = zk[i] + bk
            s[i] = x if x > s[i] else s[i]  # a store every time: the loop vectorises
    for k in range(V):                      # e_k = exp(z_k + b_k - max)
        zk, yk, bk = z + <Py_ssize_t> k * ld, y + <Py_ssize_t> k * ld, b[k]
        for i in range(cols):
            yk[i] = exp((zk[i] + bk) - s[i])
    for i in range(cols):                   # s = sum of e_k in ascending k
        s[i] = 0.0
    for k in range(V):
        yk = y + <Py_ssize_t> k * ld
        for i in range(cols):
            s[i] += yk[i]
    for k in range(V):                      # y_k = e_k / s
        yk = y + <Py_ssize_t> k * ld
        for i in range(cols):
            yk[i] = yk[i] / s[i]


cdef enum:
    SOFTMAX_BLOCK = 128                     # columns of _softmax_fast's stack arrays


cdef inline void _softmax_fast(const floating* z, const floating* b, floating* y, floating* s,
                               int V, int cols, int ld) noexcept nogil:
    """bias_softmax_block's fast order, cols <= SOFTMAX_BLOCK: the max; e_k and the sum
    of e_k in ascending k in one pass; y_k = e_k * (1 / s), one division per column."""
    cdef floating m[SOFTMAX_BLOCK]
    cdef int k, i
    cdef floating x, bk
    cdef const floating* zk
    cdef floating* yk
    for i in range(cols):                   # m = max_k (z_k + b_k)
        m[i] = z[i] + b[0]
    for k in range(1, V):
        zk, bk = z + <Py_ssize_t> k * ld, b[k]
        for i in range(cols):
            x = zk[i] + bk
            m[i] = x if x > m[i] else m[i]
    for i in range(cols):
        s[i] = 0.0
    for k in range(V):                      # e_k = exp(z_k + b_k - m); s += e_k
        zk, yk, bk = z + <Py_ssize_t> k * ld, y + <Py_ssize_t> k * ld, b[k]
        for i in range(cols):
            x = exp_fast((zk[i] + bk) - m[i])
            yk[i] = x
            s[i] += x
    for i in range(cols):
        s[i] = 1 / s[i]
    for k in range(V):
        yk = y + <Py_ssize_t> k * ld
        for i in range(cols):
            yk[i] = yk[i] * s[i]


cdef void exp_shifted_block(floating* z, floating* m, floating* s, int rows, int cols,
                            int ld) noexcept nogil:
    """A softmax's unnormalised part, over a block of ``rows`` rows of a larger one, in
    place: per column i, m[i] = max_k z[k, i], z[k, i] = exp_fast(z[k, i] - m[i]) and
    s[i] = the sum of those, in ascending k.  The blocks' (m, s) combine into the whole
    column's softmax: M = max m_b, S = sum s_b exp(m_b - M), y = z exp(m_b - M) / S
    (see pyx/softmax_step.pyx)."""
    cdef int k, i
    cdef floating x
    cdef floating* zk
    for i in range(cols):
        m[i] = z[i]
        s[i] = 0
    for k in range(1, rows):
        zk = z + <Py_ssize_t> k * ld
        for i in range(cols):
            m[i] = zk[i] if zk[i] > m[i] else m[i]
    for k in range(rows):
        zk = z + <Py_ssize_t> k * ld
        for i in range(cols):
            x = exp_fast(zk[i] - m[i])
            zk[i] = x
            s[i] += x


cdef void softmax_factors(floating* m, const floating* s, int blocks, int N, int first,
                          int last) noexcept nogil:
    """The blocks' (m_b, s_b) of exp_shifted_block, ``blocks`` rows of N columns each,
    made their factors, columns first..last-1: per column, M = max_b m_b, S = the sum
    of s_b exp(m_b - M) in block order, and m_b = exp(m_b - M) / S, which turns a
    block's exp(z - m_b) into the column's softmax."""
    cdef int b, i
    cdef floating big, total
    for i in range(first, last):
        big = m[i]
        for b in range(1, blocks):
            big = m[b * N + i] if m[b * N + i] > big else big
        total = 0
        for b in range(blocks):
            m[b * N + i] = exp(m[b * N + i] - big)
            total = total + s[b * N + i] * m[b * N + i]
        for b in range(blocks):
            m[b * N + i] = m[b * N + i] / total


cdef double cross_entropy_batch(const floating* y3, const int* target, int V, int N,
                               int ld) noexcept nogil:
    """-(sum_i log(y3[target_i, i] + exp(-30))) / N, in the C reference's order (in float64)."""
    # The C sums the whole (V x N) product of the one-hot targets and log(y3)
    # row by row: the non-zero terms come ordered by the target's vocabulary
    # index, then by example.  Keep that order.
    cdef int k, i
    cdef double eps = exp(-30.0)
    cdef double total = 0.0
    for k in range(V):
        for i in range(N):
            if target[i] == k:
                total += log(<double> y3[k * ld + i] + eps)
    return -total / N


cdef void log_likelihood_block(const floating* y3, const int* target, double* logp, int cols,
                               int ld) noexcept nogil:
    """logp[i] = log(y3[target_i, i] + exp(-30)), the CE's terms, for a block of columns."""
    cdef int i
    cdef double eps = exp(-30.0)
    for i in range(cols):
        logp[i] = log(<double> y3[target[i] * ld + i] + eps)


cdef double cross_entropy_ordered(const double* logp, const int* order, int N) noexcept nogil:
    """-(sum of logp[order[0]], logp[order[1]], ...) / N.  With ``order`` the examples
    sorted by target, ties in example order, this is cross_entropy_batch's sum."""
    cdef int j
    cdef double total = 0.0
    for j in range(N):
        total += logp[order[j]]
    return -total / N


# -- Python wrappers: whole batches, split among ``threads`` ------------------------------

def _check_same(name, a, b):
    if a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1]:
        raise ValueError(f"{name}: shapes {tuple(a.shape)[:2]} and {tuple(b.shape)[:2]} differ")


def bias_sigmoid(const floating[:, ::view.contiguous] z, const floating[::1] b,
                 floating[:, ::view.contiguous] y, bint exact=True, int threads=1):
    """y = sigmoid(z + b[:, None]), sigmoid(x) = 1 / (1 + exp(-x)); rows split."""
    _check_same("bias_sigmoid", z, y)
    if b.shape[0] != z.shape[0]:
        raise ValueError("bias_sigmoid: bias length does not match")
    cdef int H = z.shape[0], N = z.shape[1], h
    if H == 0 or N == 0:
        return
    for h in prange(H, nogil=True, num_threads=threads, schedule="static"):
        bias_sigmoid_block(&z[h, 0], &b[h], &y[h, 0], 1, N, N, exact)


def bias_tanh(const floating[:, ::view.contiguous] z, const floating[::1] b,
              floating[:, ::view.contiguous] y, bint exact=True, int threads=1):
    """y = tanh(z + b[:, None]); rows split."""
    _check_same("bias_tanh", z, y)
    if b.shape[0] != z.shape[0]:
        raise ValueError("bias_tanh: bias length does not match")
    cdef int H = z.shape[0], N = z.shape[1], h
    if H == 0 or N == 0:
        return
    for h in prange(H, nogil=True, num_threads=threads, schedule="static"):
        bias_tanh_block(&z[h, 0], &b[h], &y[h, 0], 1, N, N, exact)


def bias_softmax(const floating[:, ::view.contiguous] z, const floating[::1] b,
                 floating[:, ::view.contiguous] y, floating[::1] scratch, bint exact=True,
                 int threads=1):
    """y[:, i] = softmax(z[:, i] + b) for every column i; columns split.

    ``scratch`` has room for N values.
    """
    _check_same("bias_softmax", z, y)
    if z.strides[0] != y.strides[0]:
        raise ValueError("bias_softmax: z and y must have the same row stride")
    if b.shape[0] != z.shape[0] or z.shape[0] == 0:
        raise ValueError("bias_softmax: bias length does not match, or no rows")
    if scratch.shape[0] < z.shape[1]:
        raise ValueError("bias_softmax: scratch is shorter than the batch")
    cdef int V = z.shape[0], N = z.shape[1], t, c0, T = max(1, min(threads, N)), align
    cdef int ld = z.strides[0] // sizeof(floating)
    if N == 0:
        return
    align = line_columns(&y[0, 0], y.strides[0], sizeof(floating))
    for t in prange(T, nogil=True, num_threads=T, schedule="static"):
        c0 = column_split(t, T, N, align)
        bias_softmax_block(&z[0, c0], &b[0], &y[0, c0], &scratch[c0], V,
                           column_split(t + 1, T, N, align) - c0, ld, exact)


def cross_entropy(const floating[:, ::view.contiguous] y3, const int[::1] target):
    """Batch CE: -(sum_i log(y3[target_i, i] + exp(-30))) / N, in the C order."""
    if target.shape[0] != y3.shape[1]:
        raise ValueError("cross_entropy: one target per column is needed")
    if y3.shape[1] == 0 or y3.shape[0] == 0:
        raise ValueError("cross_entropy: empty batch")
    for i in range(target.shape[0]):
        if not 0 <= target[i] < y3.shape[0]:
            raise ValueError(f"cross_entropy: target {target[i]} out of range")
    return cross_entropy_batch(&y3[0, 0], &target[0], y3.shape[0], y3.shape[1],
                               y3.strides[0] // sizeof(floating))


def cross_entropy_in_order(const floating[:, ::view.contiguous] y3, const int[::1] target,
                           const int[::1] order):
    """Batch CE from its terms summed in ``order`` (the fused loop's way; a test hook)."""
    cdef int N = y3.shape[1]
    if target.shape[0] != N or order.shape[0] != N or N == 0:
        raise ValueError("cross_entropy_in_order: one target and one order entry per column")
    for i in range(N):
        if not (0 <= target[i] < y3.shape[0] and 0 <= order[i] < N):
            raise ValueError("cross_entropy_in_order: target or order out of range")
    logp = np.empty(N)
    cdef double[::1] lp = logp
    log_likelihood_block(&y3[0, 0], &target[0], &lp[0], N, y3.strides[0] // sizeof(floating))
    return cross_entropy_ordered(&lp[0], &order[0], N)


def exp_shifted(floating[:, ::view.contiguous] z, floating[::1] m, floating[::1] s):
    """exp_shifted_block on the whole of ``z`` (in place), m and s of its columns (a
    test hook)."""
    cdef int rows = z.shape[0], cols = z.shape[1]
    if m.shape[0] < cols or s.shape[0] < cols or rows == 0 or cols == 0:
        raise ValueError("exp_shifted: m and s need a value per column of a non-empty z")
    with nogil:
        exp_shifted_block(&z[0, 0], &m[0], &s[0], rows, cols, z.strides[0] // sizeof(floating))


def exp_fast_py(const floating[::1] x, floating[::1] out):
    """out = exp_fast(x), the fast backend's exp (a test hook)."""
    cdef Py_ssize_t k
    if out.shape[0] != x.shape[0]:
        raise ValueError("exp_fast: x and out differ in length")
    with nogil:
        for k in range(x.shape[0]):
            out[k] = exp_fast(x[k])
