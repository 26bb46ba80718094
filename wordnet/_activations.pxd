# Declarations of pyx/activations.pyx, for the fused training loop (pyx/loop.pyx).
cdef void bias_sigmoid_block(const double* z, const double* b, double* y, int rows, int cols,
                             int ld, bint exact) noexcept nogil
cdef void bias_softmax_block(const double* z, const double* b, double* y, double* s,
                             int V, int cols, int ld, bint exact) noexcept nogil
cdef double cross_entropy_batch(const double* y3, const int* target, int V, int N) noexcept nogil
