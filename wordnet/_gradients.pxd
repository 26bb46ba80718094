# Declarations of pyx/gradients.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef void embed_block(const floating* W1, int h1, int V, const int* x, int D,
                      floating* y1, int cols, int ld) noexcept nogil
cdef void softmax_grad_block(const floating* y3, const int* target, floating* dz3,
                             int V, int cols, int ld) noexcept nogil
cdef void sum_columns_rows(const floating* dz, floating* db, int first, int last,
                           int N, int ld, bint exact) noexcept nogil
cdef void sigmoid_grad_block(const floating* dy2, const floating* y2, floating* dz2,
                             int rows, int cols, int ld) noexcept nogil
cdef void tanh_grad_block(const floating* dy2, const floating* y2, floating* dz2,
                          int rows, int cols, int ld) noexcept nogil
cdef void embed_grad_rows(const floating* dy1, int ld, const int* x, int N, int D,
                          floating* dW1, floating* part, int V, int h1, int first,
                          int last, bint exact, floating scale=*, bint add=*) noexcept nogil
