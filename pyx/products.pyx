"""Matrix products C = op(A) · op(B) on row-major float64 matrices.

Two ways to compute the same product:

* ``gemm_exact`` keeps the C reference's summation order: every entry of C is
  an accumulator that starts at 0.0 and adds ``op(A)[m, k] * op(B)[k, n]`` for
  k = 0, 1, 2, ... in turn.  It is vectorised across entries of C, never
  across a sum: a block of MR x NR entries stays in registers while k runs.
* ``gemm_blas`` hands the product to BLAS ``dgemm`` (through scipy), which
  sums in an order of its own choosing and is much faster.

Both overwrite C.  Rows of C can be split between threads without changing a
single bit of the exact result, since each entry's sum stays where it is.
"""
from libc.stdlib cimport calloc, free
from scipy.linalg.cython_blas cimport dgemm

# Register block of the exact kernel: MR rows x NR columns of C.
cdef enum:
    MR = 4
    NR = 8


cdef inline void _pack(bint trans, int rows, int cols, const double* X, int ldx,
                       double* P, int ldp) noexcept nogil:
    """P[i, j] = X[j, i] if ``trans`` else X[i, j], for i < rows, j < cols."""
    cdef int i, j
    if trans:
        for i in range(rows):
            for j in range(cols):
                P[i * ldp + j] = X[j * ldx + i]
    else:
        for i in range(rows):
            for j in range(cols):
                P[i * ldp + j] = X[i * ldx + j]


cdef inline void _block(int K, const double* a, int lda, const double* b, int ldb,
                        double* c, int ldc, int mr, int nr) noexcept nogil:
    """c[r, s] = sum_k a[k, r] * b[k, s] in ascending k, for a MR x NR block."""
    cdef double acc[MR][NR]
    cdef int k, r, s
    for r in range(MR):
        for s in range(NR):
            acc[r][s] = 0.0
    for k in range(K):
        for r in range(MR):
            for s in range(NR):
                acc[r][s] += a[k * lda + r] * b[k * ldb + s]
    for r in range(mr):
        for s in range(nr):
            c[r * ldc + s] = acc[r][s]


cdef int gemm_exact(bint trans_a, bint trans_b, int M, int N, int K,
                    const double* A, int lda, const double* B, int ldb,
                    double* C, int ldc, int row_start, int row_stop) noexcept nogil:
    """C[m, :] = op(A)[m, :] · op(B) for rows row_start <= m < row_stop.

    op(A) is M x K and op(B) is K x N.  Both are packed k-major (op(A)ᵀ and
    op(B)) into buffers padded with zeros to whole register blocks; the
    padding only ever produces entries that are thrown away.
    Returns -1 when out of memory, else 0.
    """
    cdef int Mb = row_stop - row_start
    if Mb <= 0 or N <= 0:
        return 0
    cdef int Mp = (Mb + MR - 1) // MR * MR
    cdef int Np = (N + NR - 1) // NR * NR
    cdef double* Ap = <double*> calloc(<size_t> K * Mp + 1, sizeof(double))
    cdef double* Bp = <double*> calloc(<size_t> K * Np + 1, sizeof(double))
    cdef int m, n
    if Ap == NULL or Bp == NULL:
        free(Ap)
        free(Bp)
        return -1
    # Ap[k, m] = op(A)[row_start + m, k]
    if trans_a:
        _pack(False, K, Mb, A + row_start, lda, Ap, Mp)
    else:
        _pack(True, K, Mb, A + <size_t> row_start * lda, lda, Ap, Mp)
    # Bp[k, n] = op(B)[k, n]
    _pack(trans_b, K, N, B, ldb, Bp, Np)
    m = 0
    while m < Mb:
        n = 0
        while n < N:
            _block(K, Ap + m, Mp, Bp + n, Np,
                   C + <size_t> (row_start + m) * ldc + n, ldc,
                   min(MR, Mb - m), min(NR, N - n))
            n += NR
        m += MR
    free(Ap)
    free(Bp)
    return 0


cdef void gemm_blas(bint trans_a, bint trans_b, int M, int N, int K,
                    const double* A, int lda, const double* B, int ldb,
                    double* C, int ldc) noexcept nogil:
    """C = op(A) · op(B) through BLAS.

    BLAS is column-major: a row-major matrix is its column-major transpose,
    so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ · op(A)ᵀ.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef double one = 1.0, zero = 0.0
    dgemm(&tb, &ta, &N, &M, &K, &one, <double*> B, &ldb, <double*> A, &lda,
          &zero, C, &ldc)


def gemm(const double[:, ::1] A, const double[:, ::1] B, double[:, ::1] C,
         bint trans_a=False, bint trans_b=False, bint exact=True):
    """C = op(A) · op(B), exact order or BLAS; a thin wrapper for tests."""
    cdef int M = A.shape[1] if trans_a else A.shape[0]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    cdef int Kb = B.shape[1] if trans_b else B.shape[0]
    cdef int N = B.shape[0] if trans_b else B.shape[1]
    cdef int status = 0
    if K != Kb or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm shapes do not match: op(A) {M}x{K}, op(B) {Kb}x{N}, "
            f"C {C.shape[0]}x{C.shape[1]}")
    if M == 0 or N == 0:
        return
    if K == 0:
        C[:, :] = 0.0
        return
    with nogil:
        if exact:
            status = gemm_exact(trans_a, trans_b, M, N, K, &A[0, 0], A.shape[1],
                                &B[0, 0], B.shape[1], &C[0, 0], C.shape[1], 0, M)
        else:
            gemm_blas(trans_a, trans_b, M, N, K, &A[0, 0], A.shape[1],
                      &B[0, 0], B.shape[1], &C[0, 0], C.shape[1])
    if status:
        raise MemoryError("gemm: out of memory")
