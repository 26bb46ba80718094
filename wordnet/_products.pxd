# Declarations of pyx/products.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef int gemm_exact(bint trans_a, bint trans_b, int M, int N, int K,
                    const double* A, int lda, const double* B, int ldb,
                    double* C, int ldc, int threads) noexcept nogil
cdef void gemm_blas(bint trans_a, bint trans_b, int M, int N, int K,
                    const floating* A, int lda, const floating* B, int ldb,
                    floating* C, int ldc, int threads) noexcept nogil
cdef void gemm_blas_accumulate(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                               const floating* A, int lda, const floating* B, int ldb,
                               floating* C, int ldc) noexcept nogil
cdef int load_blas() except -1
