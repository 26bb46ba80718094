# Declarations of pyx/activations.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef void bias_sigmoid_block(const floating* z, const floating* b, floating* y, int rows, int cols,
                             int ld, bint exact) noexcept nogil
cdef void bias_tanh_block(const floating* z, const floating* b, floating* y, int rows, int cols,
                          int ld, bint exact) noexcept nogil
cdef void bias_softmax_block(const floating* z, const floating* b, floating* y, floating* s,
                             int V, int cols, int ld, bint exact) noexcept nogil
cdef void exp_shifted_block(floating* z, floating* m, floating* s, int rows, int cols,
                            int ld) noexcept nogil
cdef void softmax_factors(floating* m, const floating* s, int blocks, int N, int first,
                          int last) noexcept nogil
cdef void log_likelihood_block(const floating* y3, const int* target, double* logp, int cols,
                               int ld) noexcept nogil
cdef double cross_entropy_ordered(const double* logp, const int* order, int N) noexcept nogil


cdef inline int line_columns(const void* first, Py_ssize_t row_bytes,
                             Py_ssize_t itemsize) noexcept nogil:
    """Columns in a 64-byte cache line when every row starts on one, else 1."""
    if row_bytes % 64 or (<size_t> first) % 64:
        return 1
    return 64 // itemsize


cdef inline int column_split(int t, int T, int N, int align) noexcept nogil:
    """First of thread t's columns when T threads share N (t = T gives N): an even
    split, each boundary moved down to a multiple of ``align`` (from line_columns), so
    that no two threads write one cache line."""
    if t >= T:
        return N
    return (t * N // T) // align * align
