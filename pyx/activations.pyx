"""Activations and the loss, on batches stored one example per column.

A batch of N examples is a (units x N) row-major matrix, as in the C
reference, so every loop below runs along a row: across examples, never
across a sum.  exp and log are the platform C library's, whose results the
exact backend must reproduce bit for bit.
"""
from libc.math cimport exp, log
import numpy as np


cdef void _bias_sigmoid(const double[:, ::1] z, const double[::1] b,
                        double[:, ::1] y) noexcept nogil:
    cdef Py_ssize_t h, i
    for h in range(z.shape[0]):
        for i in range(z.shape[1]):
            y[h, i] = 1.0 / (1.0 + exp(-(z[h, i] + b[h])))


cdef void _bias_softmax(const double[:, ::1] z, const double[::1] b,
                        double[:, ::1] y, double[::1] s) noexcept nogil:
    cdef Py_ssize_t V = z.shape[0], N = z.shape[1], k, i
    cdef double x
    for i in range(N):                      # s = max_k (z_k + b_k)
        s[i] = z[0, i] + b[0]
    for k in range(1, V):
        for i in range(N):
            x = z[k, i] + b[k]
            if x > s[i]:
                s[i] = x
    for k in range(V):                      # e_k = exp(z_k + b_k - max)
        for i in range(N):
            y[k, i] = exp((z[k, i] + b[k]) - s[i])
    for i in range(N):                      # s = sum of e_k in ascending k
        s[i] = 0.0
    for k in range(V):
        for i in range(N):
            s[i] += y[k, i]
    for k in range(V):
        for i in range(N):
            y[k, i] = y[k, i] / s[i]


cdef double _cross_entropy(const double[:, ::1] y3, const int[::1] target) noexcept nogil:
    # The C reference sums the whole (V x N) product of the one-hot targets
    # and log(y3) row by row: the non-zero terms come ordered by the target's
    # vocabulary index, then by example.  Keep that order.
    cdef Py_ssize_t V = y3.shape[0], N = y3.shape[1], k, i
    cdef double eps = exp(-30.0)
    cdef double total = 0.0
    for k in range(V):
        for i in range(N):
            if target[i] == k:
                total += log(y3[k, i] + eps)
    return -total / N


def _check_same(name, a, b):
    if a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1]:
        raise ValueError(f"{name}: shapes {tuple(a.shape)[:2]} and {tuple(b.shape)[:2]} differ")


def bias_sigmoid(const double[:, ::1] z, const double[::1] b, double[:, ::1] y):
    """y = sigmoid(z + b[:, None]), sigmoid(x) = 1 / (1 + exp(-x))."""
    _check_same("bias_sigmoid", z, y)
    if b.shape[0] != z.shape[0]:
        raise ValueError("bias_sigmoid: bias length does not match")
    with nogil:
        _bias_sigmoid(z, b, y)


def bias_softmax(const double[:, ::1] z, const double[::1] b, double[:, ::1] y,
                 double[::1] scratch=None):
    """y[:, i] = softmax(z[:, i] + b) for every column i.

    Per column: m = max, e_k = exp(z_k - m), s = sum of e_k in ascending k,
    y_k = e_k / s.  ``scratch`` (length N) avoids an allocation per call.
    """
    _check_same("bias_softmax", z, y)
    if b.shape[0] != z.shape[0] or z.shape[0] == 0:
        raise ValueError("bias_softmax: bias length does not match, or no rows")
    if scratch is None:
        scratch = np.empty(z.shape[1])
    elif scratch.shape[0] < z.shape[1]:
        raise ValueError("bias_softmax: scratch is shorter than the batch")
    with nogil:
        _bias_softmax(z, b, y, scratch)


def cross_entropy(const double[:, ::1] y3, const int[::1] target):
    """Batch CE: -(sum_i log(y3[target_i, i] + exp(-30))) / N, in the C order."""
    if target.shape[0] != y3.shape[1]:
        raise ValueError("cross_entropy: one target per column is needed")
    if y3.shape[1] == 0:
        raise ValueError("cross_entropy: empty batch")
    for i in range(target.shape[0]):
        if not 0 <= target[i] < y3.shape[0]:
            raise ValueError(f"cross_entropy: target {target[i]} out of range")
    cdef double ce
    with nogil:
        ce = _cross_entropy(y3, target)
    return ce
