# Declarations of pyx/activations.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef void bias_sigmoid_block(const floating* z, const floating* b, floating* y, int rows, int cols,
                             int ld, bint exact) noexcept nogil
cdef void bias_softmax_block(const floating* z, const floating* b, floating* y, floating* s,
                             int V, int cols, int ld, bint exact) noexcept nogil
cdef void log_likelihood_block(const floating* y3, const int* target, double* logp, int cols,
                               int ld) noexcept nogil
cdef double cross_entropy_ordered(const double* logp, const int* order, int N) noexcept nogil
