"""The backward pass's non-product steps, and the embedding gather.

Batches are (units x N) row-major, one example per column.  Contexts ``x``
are (N x D) int32, 0-based word indices.  Products with a one-hot matrix are
gathers and scatters here: adding the ±0.0 terms of a dense product would
change nothing.  ``threads`` splits rows among OpenMP threads, which changes
no result.
"""
from cython.parallel cimport prange



cdef void _embed(const double[:, ::1] W1, const int[:, ::1] x,
                 double[:, ::1] y1) noexcept nogil:
    cdef Py_ssize_t h1 = W1.shape[0], N = x.shape[0], D = x.shape[1], d, j, i
    for d in range(D):
        for j in range(h1):
            for i in range(N):
                y1[d * h1 + j, i] = W1[j, x[i, d]]


cdef void _softmax_grad(const double[:, ::1] y3, const int[::1] target,
                        double[:, ::1] dz3) noexcept nogil:
    cdef Py_ssize_t k, i
    for k in range(y3.shape[0]):
        for i in range(y3.shape[1]):
            dz3[k, i] = y3[k, i]
    for i in range(y3.shape[1]):
        dz3[target[i], i] = y3[target[i], i] - 1.0


cdef void _sum_columns(const double[:, ::1] dz, double[::1] db, int threads) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef double total
    for r in prange(dz.shape[0], num_threads=threads, schedule="static"):
        total = 0.0
        for i in range(dz.shape[1]):
            total = total + dz[r, i]
        db[r] = total


cdef void _sigmoid_grad(const double[:, ::1] dy2, const double[:, ::1] y2,
                        double[:, ::1] dz2, int threads) noexcept nogil:
    cdef Py_ssize_t h, i
    for h in prange(dy2.shape[0], num_threads=threads, schedule="static"):
        for i in range(dy2.shape[1]):
            dz2[h, i] = (dy2[h, i] * y2[h, i]) * (1.0 - y2[h, i])


cdef void _embed_grad(const double[:, ::1] dy1, const int[:, ::1] x,
                      double[:, ::1] dW1, double[:, ::1] part) noexcept nogil:
    # The C order: for each position d, part = the sum over examples i
    # (ascending, from 0.0) of dy1's rows for d, scattered to the columns
    # x[i, d]; then dW1 += part.
    cdef Py_ssize_t h1 = dW1.shape[0], V = dW1.shape[1]
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], d, j, i, v
    for j in range(h1):
        for v in range(V):
            dW1[j, v] = 0.0
    for d in range(D):
        for j in range(h1):
            for v in range(V):
                part[j, v] = 0.0
        for i in range(N):
            v = x[i, d]
            for j in range(h1):
                part[j, v] += dy1[d * h1 + j, i]
        for j in range(h1):
            for v in range(V):
                dW1[j, v] += part[j, v]


def _check_contexts(const int[:, ::1] x, Py_ssize_t V):
    for i in range(x.shape[0]):
        for d in range(x.shape[1]):
            if not 0 <= x[i, d] < V:
                raise ValueError(f"word index {x[i, d]} outside 0..{V - 1}")


def embed(const double[:, ::1] W1, const int[:, ::1] x, double[:, ::1] y1):
    """y1 = [W1[:, x_1]; W1[:, x_2]; ...; W1[:, x_D]] for every example (column)."""
    if y1.shape[0] != x.shape[1] * W1.shape[0] or y1.shape[1] != x.shape[0]:
        raise ValueError("embed: y1 must be (D*h1) x N")
    _check_contexts(x, W1.shape[1])
    with nogil:
        _embed(W1, x, y1)


def softmax_grad(const double[:, ::1] y3, const int[::1] target, double[:, ::1] dz3):
    """dz3 = y3 - onehot(target): the gradient of CE at the softmax's input."""
    if dz3.shape[0] != y3.shape[0] or dz3.shape[1] != y3.shape[1] or target.shape[0] != y3.shape[1]:
        raise ValueError("softmax_grad: shapes do not match")
    for i in range(target.shape[0]):
        if not 0 <= target[i] < y3.shape[0]:
            raise ValueError(f"softmax_grad: target {target[i]} out of range")
    with nogil:
        _softmax_grad(y3, target, dz3)


def sum_columns(const double[:, ::1] dz, double[::1] db, int threads=1):
    """db = sum over columns of dz (the bias gradient), ascending from 0.0."""
    if db.shape[0] != dz.shape[0]:
        raise ValueError("sum_columns: db must have one entry per row")
    with nogil:
        _sum_columns(dz, db, threads)


def sigmoid_grad(const double[:, ::1] dy2, const double[:, ::1] y2, double[:, ::1] dz2,
                 int threads=1):
    """dz2 = (dy2 * y2) * (1 - y2), evaluated left to right."""
    if not (dy2.shape[0] == y2.shape[0] == dz2.shape[0]
            and dy2.shape[1] == y2.shape[1] == dz2.shape[1]):
        raise ValueError("sigmoid_grad: shapes do not match")
    with nogil:
        _sigmoid_grad(dy2, y2, dz2, threads)


def embed_grad(const double[:, ::1] dy1, const int[:, ::1] x, double[:, ::1] dW1,
               double[:, ::1] part):
    """dW1[:, v] = sum_d sum_{i : x[i, d] = v} dy1[d*h1:(d+1)*h1, i], per position.

    ``part`` is (h1 x V) scratch.
    """
    if (dy1.shape[0] != x.shape[1] * dW1.shape[0] or dy1.shape[1] != x.shape[0]
            or part.shape[0] != dW1.shape[0] or part.shape[1] != dW1.shape[1]):
        raise ValueError("embed_grad: shapes do not match")
    _check_contexts(x, dW1.shape[1])
    with nogil:
        _embed_grad(dy1, x, dW1, part)
