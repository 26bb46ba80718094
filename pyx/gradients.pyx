"""The embedding gather and the backward pass's non-product steps.

Batches are (units x N) row-major, one example per column; the kernels work
on a block of ``cols`` columns of rows ``ld`` apart, or on a range of rows,
so that threads can share a batch without changing any result.  Contexts
``x`` are (N x D) int32, 0-based word indices.  Products with a one-hot
matrix are gathers and scatters here: adding the ±0.0 terms of a dense
product would change nothing.  ``floating`` is float64 or, for the fast
backend only, float32.
"""
from cython cimport floating, view
from cython.parallel cimport prange
from libc.string cimport memcpy


cdef void embed_block(const floating* W1, int h1, int V, const int* x, int D,
                      floating* y1, int cols, int ld) noexcept nogil:
    """y1[d*h1 + j, i] = W1[j, x[i, d]] for the ``cols`` examples of the block."""
    cdef int d, j, i
    cdef const floating* W1j
    cdef floating* y1row
    for d in range(D):
        for j in range(h1):
            W1j, y1row = W1 + <Py_ssize_t> j * V, y1 + <Py_ssize_t> (d * h1 + j) * ld
            for i in range(cols):
                y1row[i] = W1j[x[i * D + d]]


cdef void softmax_grad_block(const floating* y3, const int* target, floating* dz3,
                             int V, int cols, int ld) noexcept nogil:
    """dz3 = y3 - onehot(target) on a block of columns; dz3 may be y3 (in place)."""
    cdef int k, i
    cdef floating one = 1.0
    if dz3 != y3:
        for k in range(V):
            memcpy(dz3 + <Py_ssize_t> k * ld, y3 + <Py_ssize_t> k * ld, cols * sizeof(floating))
    for i in range(cols):
        dz3[target[i] * ld + i] = y3[target[i] * ld + i] - one


cdef extern from *:
    """
    #include <string.h>
    /* x[0] + ... + x[n-1] in eight interleaved partial sums, two vectors of four
       doubles or one of eight floats (GCC vector types: a reduction GCC would not
       vectorise itself without -ffast-math, which the exact kernels forbid). */
    typedef double wordnet_v4d_sum __attribute__((vector_size(32)));
    typedef float wordnet_v8f_sum __attribute__((vector_size(32)));
    static inline double wordnet_sum8(const double* x, int n) {
        wordnet_v4d_sum a = {0}, b = {0}, u, v;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&u, x + i, 32);
            memcpy(&v, x + i + 4, 32);
            a += u;
            b += v;
        }
        a += b;
        double total = (a[0] + a[2]) + (a[1] + a[3]);
        for (; i < n; i++)
            total += x[i];
        return total;
    }
    static inline float wordnet_sum8f(const float* x, int n) {
        wordnet_v8f_sum a = {0}, u;
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&u, x + i, 32);
            a += u;
        }
        float total = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        for (; i < n; i++)
            total += x[i];
        return total;
    }
    """
    double sum8 "wordnet_sum8"(const double* x, int n) noexcept nogil
    float sum8f "wordnet_sum8f"(const float* x, int n) noexcept nogil


cdef void sum_columns_rows(const floating* dz, floating* db, int first, int last,
                           int N, int ld, bint exact) noexcept nogil:
    """db[r] = sum over the N columns of row r (rows ld apart), for first <= r < last:
    ascending from 0.0 with ``exact``, else in eight interleaved partial sums."""
    cdef int r, i
    cdef floating total
    cdef const floating* row
    for r in range(first, last):
        row = dz + <Py_ssize_t> r * ld
        if not exact:
            if floating is double:
                db[r] = sum8(row, N)
            else:
                db[r] = sum8f(row, N)
            continue
        total = 0.0
        for i in range(N):
            total = total + row[i]
        db[r] = total


cdef void sigmoid_grad_block(const floating* dy2, const floating* y2, floating* dz2,
                             int rows, int cols, int ld) noexcept nogil:
    """dz2 = (dy2 * y2) * (1 - y2), evaluated left to right."""
    # Rows through pointers: GCC vectorises dz2h[i], not dz2[h * ld + i].
    cdef int h, i
    cdef floating one = 1.0
    cdef const floating* dy2h
    cdef const floating* y2h
    cdef floating* dz2h
    for h in range(rows):
        dy2h, y2h = dy2 + <Py_ssize_t> h * ld, y2 + <Py_ssize_t> h * ld
        dz2h = dz2 + <Py_ssize_t> h * ld
        for i in range(cols):
            dz2h[i] = (dy2h[i] * y2h[i]) * (one - y2h[i])


cdef void tanh_grad_block(const floating* dy2, const floating* y2, floating* dz2,
                          int rows, int cols, int ld) noexcept nogil:
    """dz2 = dy2 * (1 - y2 * y2): tanh' = 1 - tanh²."""
    cdef int h, i
    cdef floating one = 1.0
    cdef const floating* dy2h
    cdef const floating* y2h
    cdef floating* dz2h
    for h in range(rows):
        dy2h, y2h = dy2 + <Py_ssize_t> h * ld, y2 + <Py_ssize_t> h * ld
        dz2h = dz2 + <Py_ssize_t> h * ld
        for i in range(cols):
            dz2h[i] = dy2h[i] * (one - y2h[i] * y2h[i])


cdef void embed_grad_rows(const floating* dy1, int ld, const int* x, int N, int D,
                          floating* dW1, floating* part, int V, int h1, int first,
                          int last, bint exact, floating scale=1, bint add=False) noexcept nogil:
    """Rows first <= j < last of dW1.  With ``exact``, in the C order: for each
    position d, part = the sum over examples i (ascending, from 0.0) of dy1's rows
    for d, scattered to the columns x[i, d]; then dW1 += part.  Otherwise every
    scale * dy1[d*h1 + j, i] is added to dW1[j, x[i, d]] at once, position after
    position (``part`` unused), to dW1 as it is with ``add`` (the fused loop adds
    dW1 / N to the velocity so), else to zeros.  Row by row: a row of dW1 stays in
    cache while it is summed."""
    cdef int d, j, i, v
    cdef floating* dW1j
    cdef floating* partj
    cdef const floating* dy1row
    for j in range(first, last):
        dW1j, partj = dW1 + <Py_ssize_t> j * V, part + <Py_ssize_t> j * V
        if not (add and not exact):
            for v in range(V):
                dW1j[v] = 0.0
        for d in range(D):
            dy1row = dy1 + <Py_ssize_t> (d * h1 + j) * ld
            if not exact:
                if scale == 1:
                    for i in range(N):
                        dW1j[x[i * D + d]] += dy1row[i]
                else:
                    for i in range(N):
                        dW1j[x[i * D + d]] += scale * dy1row[i]
                continue
            for v in range(V):
                partj[v] = 0.0
            for i in range(N):
                partj[x[i * D + d]] += dy1row[i]
            for v in range(V):
                dW1j[v] += partj[v]


# -- Python wrappers: whole batches, split among ``threads`` ------------------------------

def _check_contexts(const int[:, ::1] x, Py_ssize_t V):
    for i in range(x.shape[0]):
        for d in range(x.shape[1]):
            if not 0 <= x[i, d] < V:
                raise ValueError(f"word index {x[i, d]} outside 0..{V - 1}")


def embed(const floating[:, ::1] W1, const int[:, ::1] x, floating[:, ::view.contiguous] y1):
    """y1 = [W1[:, x_1]; W1[:, x_2]; ...; W1[:, x_D]] for every example (column)."""
    if y1.shape[0] != x.shape[1] * W1.shape[0] or y1.shape[1] != x.shape[0]:
        raise ValueError("embed: y1 must be (D*h1) x N")
    _check_contexts(x, W1.shape[1])
    if y1.shape[0] == 0 or y1.shape[1] == 0:
        return
    with nogil:
        embed_block(&W1[0, 0], W1.shape[0], W1.shape[1], &x[0, 0], x.shape[1],
                    &y1[0, 0], x.shape[0], y1.strides[0] // sizeof(floating))


def softmax_grad(const floating[:, ::view.contiguous] y3, const int[::1] target,
                 floating[:, ::view.contiguous] dz3):
    """dz3 = y3 - onehot(target): the gradient of CE at the softmax's input."""
    if (dz3.shape[0] != y3.shape[0] or dz3.shape[1] != y3.shape[1]
            or target.shape[0] != y3.shape[1] or dz3.strides[0] != y3.strides[0]):
        raise ValueError("softmax_grad: shapes or row strides do not match")
    for i in range(target.shape[0]):
        if not 0 <= target[i] < y3.shape[0]:
            raise ValueError(f"softmax_grad: target {target[i]} out of range")
    if y3.shape[1] == 0:
        return
    with nogil:
        softmax_grad_block(&y3[0, 0], &target[0], &dz3[0, 0], y3.shape[0], y3.shape[1],
                           y3.strides[0] // sizeof(floating))


def sum_columns(const floating[:, ::view.contiguous] dz, floating[::1] db, bint exact=True,
                int threads=1):
    """db = sum over columns of dz (the bias gradient), ascending from 0.0 with ``exact``;
    rows split."""
    if db.shape[0] != dz.shape[0]:
        raise ValueError("sum_columns: db must have one entry per row")
    cdef int R = dz.shape[0], N = dz.shape[1], ld = dz.strides[0] // sizeof(floating), r
    if N == 0:
        db[:] = 0.0
        return
    for r in prange(R, nogil=True, num_threads=threads, schedule="static"):
        sum_columns_rows(&dz[0, 0], &db[0], r, r + 1, N, ld, exact)


def sigmoid_grad(const floating[:, ::view.contiguous] dy2, const floating[:, ::view.contiguous] y2,
                 floating[:, ::view.contiguous] dz2, int threads=1):
    """dz2 = (dy2 * y2) * (1 - y2), evaluated left to right; rows split."""
    if not (dy2.shape[0] == y2.shape[0] == dz2.shape[0]
            and dy2.shape[1] == y2.shape[1] == dz2.shape[1]):
        raise ValueError("sigmoid_grad: shapes do not match")
    cdef int H = dy2.shape[0], N = dy2.shape[1], h
    if N == 0:
        return
    for h in prange(H, nogil=True, num_threads=threads, schedule="static"):
        sigmoid_grad_block(&dy2[h, 0], &y2[h, 0], &dz2[h, 0], 1, N, N)


def tanh_grad(const floating[:, ::view.contiguous] dy2, const floating[:, ::view.contiguous] y2,
              floating[:, ::view.contiguous] dz2, int threads=1):
    """dz2 = dy2 * (1 - y2 * y2); rows split."""
    if not (dy2.shape[0] == y2.shape[0] == dz2.shape[0]
            and dy2.shape[1] == y2.shape[1] == dz2.shape[1]):
        raise ValueError("tanh_grad: shapes do not match")
    cdef int H = dy2.shape[0], N = dy2.shape[1], h
    if N == 0:
        return
    for h in prange(H, nogil=True, num_threads=threads, schedule="static"):
        tanh_grad_block(&dy2[h, 0], &y2[h, 0], &dz2[h, 0], 1, N, N)


def embed_grad(const floating[:, ::view.contiguous] dy1, const int[:, ::1] x, floating[:, ::1] dW1,
               floating[:, ::1] part, bint exact=True, double scale=1.0, bint add=False):
    """dW1[:, v] = sum_d sum_{i : x[i, d] = v} dy1[d*h1:(d+1)*h1, i], per position in
    the C order with ``exact``, else added in place as they come: then ``scale`` times
    that sum, added to dW1 as it is with ``add``.

    ``part`` is (h1 x V) scratch.
    """
    if (dy1.shape[0] != x.shape[1] * dW1.shape[0] or dy1.shape[1] != x.shape[0]
            or part.shape[0] != dW1.shape[0] or part.shape[1] != dW1.shape[1]):
        raise ValueError("embed_grad: shapes do not match")
    _check_contexts(x, dW1.shape[1])
    if dW1.shape[0] == 0 or dW1.shape[1] == 0:
        return
    if x.shape[0] == 0:
        if not (add and not exact):
            dW1[:, :] = 0.0
        return
    with nogil:
        embed_grad_rows(&dy1[0, 0], dy1.strides[0] // sizeof(floating), &x[0, 0], x.shape[0],
                        x.shape[1], &dW1[0, 0], &part[0, 0], dW1.shape[1], dW1.shape[0],
                        0, dW1.shape[0], exact, <floating> scale, add)
