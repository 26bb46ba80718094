# Declarations of pyx/gradients.pyx, for the fused training loop (pyx/loop.pyx).
cdef void embed_block(const double* W1, int h1, int V, const int* x, int D,
                      double* y1, int cols, int ld) noexcept nogil
cdef void softmax_grad_block(const double* y3, const int* target, double* dz3,
                             int V, int cols, int ld) noexcept nogil
cdef void sum_columns_rows(const double* dz, double* db, int first, int last,
                           int N) noexcept nogil
cdef void sigmoid_grad_block(const double* dy2, const double* y2, double* dz2,
                             int rows, int cols, int ld) noexcept nogil
cdef void embed_grad_rows(const double* dy1, const int* x, int N, int D, double* dW1,
                          double* part, int V, int h1, int first, int last) noexcept nogil
