"""Matrix products C = op(A) · op(B) on row-major matrices.

Two ways to compute the same product:

* ``gemm_exact`` keeps the C reference's summation order: every entry of C is
  an accumulator that starts at 0.0 and adds ``op(A)[m, k] * op(B)[k, n]`` for
  k = 0, 1, 2, ... in turn.  It is vectorised across entries of C, never
  across a sum: a block of MR x NR entries stays in registers while k runs
  (GCC vector types, one lane per entry: a multiply, then an add).  float64 only.
* ``gemm_blas`` hands the product to BLAS ``dgemm`` or ``sgemm`` (through
  scipy), which sums in an order of its own choosing and is much faster.

Both overwrite C.  Rows of C can be split between threads without changing a
single bit of the exact result, since each entry's sum stays where it is.
"""
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating, view
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

ctypedef void (*dgemm_t)(char* transa, char* transb, int* m, int* n, int* k, double* alpha,
                         double* a, int* lda, double* b, int* ldb, double* beta, double* c,
                         int* ldc) noexcept nogil
ctypedef void (*sgemm_t)(char* transa, char* transb, int* m, int* n, int* k, float* alpha,
                         float* a, int* lda, float* b, int* ldb, float* beta, float* c,
                         int* ldc) noexcept nogil

# scipy's BLAS dgemm and sgemm, fetched on first use: importing scipy.linalg takes
# a third of a second, which a cold `predict` (exact products only) need not pay.
cdef dgemm_t dgemm = NULL
cdef sgemm_t sgemm = NULL


cdef int load_blas() except -1:
    """Make gemm_blas usable: fetch dgemm and sgemm from scipy.linalg.cython_blas."""
    global dgemm, sgemm
    if dgemm == NULL:
        from scipy.linalg import cython_blas
        capsule = cython_blas.__pyx_capi__["sgemm"]
        sgemm = <sgemm_t> PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))
        capsule = cython_blas.__pyx_capi__["dgemm"]
        dgemm = <dgemm_t> PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))
    return 0

# Register block of the exact kernel: MR rows x NR columns of C (wordnet_block's 4 x 8).
cdef enum:
    MR = 4
    NR = 8


cdef void _pack_panels(bint trans, int rows, int cols, int width, const double* X, int ldx,
                       double* P) noexcept nogil:
    """Panels of ``width`` columns of op(X) (rows x cols), each stored k-major.

    P[(p * rows + k) * width + j] = op(X)[k, p * width + j], zero past ``cols``;
    op(X)[k, c] is X[c, k] if ``trans`` else X[k, c].  A copy: no value changes.
    """
    cdef int p, k, j, c0, w
    cdef double* panel
    cdef const double* x
    for p in range((cols + width - 1) // width):
        c0, w = p * width, min(width, cols - p * width)
        panel = P + <size_t> p * rows * width
        if trans:                       # column c of op(X) is row c of X: read it in a run
            for j in range(w):
                x = X + <size_t> (c0 + j) * ldx
                for k in range(rows):
                    panel[k * width + j] = x[k]
        else:
            for k in range(rows):
                x = X + <size_t> k * ldx + c0
                for j in range(w):
                    panel[k * width + j] = x[j]
        for j in range(w, width):
            for k in range(rows):
                panel[k * width + j] = 0.0


cdef extern from *:
    """
    #include <string.h>
    typedef double wordnet_v4d __attribute__((vector_size(32)));
    /* One 4 x 8 block of C: acc[r][s] += a[r*am + k*ak] * b[k*bk + s] for k = 0, 1, ...
       Each lane is one entry's own sum: a multiply, then an add, in ascending k. */
    static inline void wordnet_block(int K, const double* a, Py_ssize_t am, Py_ssize_t ak,
                                     const double* b, Py_ssize_t bk, double* c, int ldc,
                                     int mr, int nr) {
        wordnet_v4d acc[4][2] = {{{0}}};
        double out[4][8];
        for (int k = 0; k < K; k++) {
            wordnet_v4d b0, b1;
            memcpy(&b0, b + k * bk, 32);
            memcpy(&b1, b + k * bk + 4, 32);
            for (int r = 0; r < 4; r++) {
                double ar = a[r * am + k * ak];
                wordnet_v4d av = {ar, ar, ar, ar};
                acc[r][0] += av * b0;
                acc[r][1] += av * b1;
            }
        }
        memcpy(out, acc, sizeof out);
        for (int r = 0; r < mr; r++)
            for (int s = 0; s < nr; s++)
                c[r * ldc + s] = out[r][s];
    }
    """
    void _block "wordnet_block"(int K, const double* a, Py_ssize_t am, Py_ssize_t ak,
                                const double* b, Py_ssize_t bk, double* c, int ldc,
                                int mr, int nr) noexcept nogil


cdef struct Operands:
    # op(A)[m, k] = A[m*am + k*ak]; op(B)[k, n] = B[k*bk + n] when read in place,
    # bk = 0 when op(B) = Bᵀ, whose panels are all packed
    const double* A
    Py_ssize_t am, ak
    const double* B
    Py_ssize_t bk
    const double* Ap                    # the ragged last row block of op(A), packed (or NULL)
    const double* Bp                    # op(B)'s packed panels: all, or the ragged last one


cdef void _row_blocks(int first, int last, int M, int N, int K, const Operands* o,
                      double* C, int ldc) noexcept nogil:
    """Row blocks first <= i < last of C; each B panel stays in cache while they run."""
    cdef int i, j, panels = (N + NR - 1) // NR
    cdef const double* a
    cdef const double* b
    cdef Py_ssize_t am, ak, bk
    for j in range(panels):
        if o.Bp == NULL:
            b, bk = o.B + j * NR, o.bk
        elif o.bk == 0:                 # every panel packed
            b, bk = o.Bp + <size_t> j * K * NR, NR
        elif j == panels - 1:
            b, bk = o.Bp, NR
        else:
            b, bk = o.B + j * NR, o.bk
        for i in range(first, last):
            if o.Ap != NULL and i == (M - 1) // MR:
                a, am, ak = o.Ap, 1, MR
            else:
                a, am, ak = o.A + i * MR * o.am, o.am, o.ak
            _block(K, a, am, ak, b, bk, C + <size_t> i * MR * ldc + j * NR, ldc,
                   min(<int> MR, M - i * MR), min(<int> NR, N - j * NR))


cdef int gemm_exact(bint trans_a, bint trans_b, int M, int N, int K,
                    const double* A, int lda, const double* B, int ldb,
                    double* C, int ldc, int threads) noexcept nogil:
    """C = op(A) · op(B) in the C reference's order, rows split among ``threads``.

    op(A) is M x K and op(B) is K x N.  Rows of op(A) and, unless transposed,
    rows of B are read in place; op(Bᵀ) and the ragged last blocks are copied
    into panels padded with zeros to whole register blocks (the padding only
    produces entries that are never stored).  Returns -1 when out of memory.
    """
    cdef int blocks = (M + MR - 1) // MR, panels = (N + NR - 1) // NR, t
    cdef int m0 = (blocks - 1) * MR, n0 = (panels - 1) * NR
    cdef Operands o
    cdef double* Ap = NULL
    cdef double* Bp = NULL
    o.A, o.B = A, B
    o.am, o.ak = lda, 1
    if trans_a:
        o.am, o.ak = 1, lda
    o.bk = 0 if trans_b else ldb
    if M % MR:                          # op(A)ᵀ's last panel: rows m0.. of op(A)
        Ap = <double*> malloc(<size_t> MR * K * sizeof(double))
        if Ap != NULL:
            _pack_panels(not trans_a, K, M - m0, MR, A + (m0 if trans_a else <size_t> m0 * lda),
                         lda, Ap)
    if trans_b:
        Bp = <double*> malloc(<size_t> panels * NR * K * sizeof(double))
        if Bp != NULL:
            _pack_panels(True, K, N, NR, B, ldb, Bp)
    elif N % NR:
        Bp = <double*> malloc(<size_t> NR * K * sizeof(double))
        if Bp != NULL:
            _pack_panels(False, K, N - n0, NR, B + n0, ldb, Bp)
    if (M % MR and Ap == NULL) or ((trans_b or N % NR) and Bp == NULL):
        free(Ap)
        free(Bp)
        return -1
    o.Ap, o.Bp = Ap, Bp
    threads = max(1, min(threads, blocks))
    if threads == 1:
        _row_blocks(0, blocks, M, N, K, &o, C, ldc)
    else:
        for t in prange(threads, num_threads=threads, schedule="static"):
            _row_blocks(t * blocks // threads, (t + 1) * blocks // threads, M, N, K, &o, C, ldc)
    free(Ap)
    free(Bp)
    return 0


cdef inline void _blas_rows(bint trans_a, bint trans_b, int M, int N, int K,
                            const floating* A, int lda, const floating* B, int ldb,
                            floating* C, int ldc) noexcept nogil:
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef floating one = 1.0, zero = 0.0
    if floating is double:
        dgemm(&tb, &ta, &N, &M, &K, &one, <double*> B, &ldb, <double*> A, &lda,
              &zero, C, &ldc)
    else:
        sgemm(&tb, &ta, &N, &M, &K, &one, <float*> B, &ldb, <float*> A, &lda,
              &zero, C, &ldc)


cdef void gemm_blas_accumulate(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                               const floating* A, int lda, const floating* B, int ldb,
                               floating* C, int ldc) noexcept nogil:
    """C += alpha · op(A) · op(B) through BLAS (beta = 1), on this thread (after load_blas()).

    The fast backend's fused loop adds a weight gradient's share to the velocity so,
    without a gradient array: no pass that zeroes C first, none that reads it back.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef floating one = 1.0
    if M <= 0 or N <= 0 or K <= 0:
        return
    if floating is double:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &one, C, &ldc)
    else:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &one, C, &ldc)


cdef void gemm_blas(bint trans_a, bint trans_b, int M, int N, int K,
                    const floating* A, int lda, const floating* B, int ldb,
                    floating* C, int ldc, int threads) noexcept nogil:
    """C = op(A) · op(B) through BLAS, rows of C split among ``threads`` (after load_blas()).

    BLAS is column-major: a row-major matrix is its column-major transpose,
    so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ · op(A)ᵀ.  Each thread's
    call should run single-threaded (see threadpoolctl in wordnet.model).
    """
    cdef int t, first, rows
    threads = max(1, min(threads, M))
    if threads == 1:
        _blas_rows(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)
        return
    for t in prange(threads, num_threads=threads, schedule="static"):
        first = t * M // threads
        rows = (t + 1) * M // threads - first
        _blas_rows(trans_a, trans_b, rows, N, K,
                    A + (first if trans_a else <size_t> first * lda), lda, B, ldb,
                    C + <size_t> first * ldc, ldc)


def gemm(const floating[:, ::view.contiguous] A, const floating[:, ::view.contiguous] B,
         floating[:, ::view.contiguous] C, bint trans_a=False, bint trans_b=False,
         bint exact=True, int threads=1):
    """C = op(A) · op(B), exact order (float64 only) or BLAS; a thin wrapper for tests.
    Rows may lie further apart than their length (padded rows)."""
    cdef int M = A.shape[1] if trans_a else A.shape[0]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    cdef int Kb = B.shape[1] if trans_b else B.shape[0]
    cdef int N = B.shape[0] if trans_b else B.shape[1]
    cdef int status = 0
    if K != Kb or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm shapes do not match: op(A) {M}x{K}, op(B) {Kb}x{N}, "
            f"C {C.shape[0]}x{C.shape[1]}")
    if exact and floating is float:
        raise ValueError("gemm: the exact order is for float64 only")
    if M == 0 or N == 0:
        return
    if K == 0:
        C[:, :] = 0.0
        return
    if not exact:
        load_blas()
    cdef int lda = A.strides[0] // sizeof(floating), ldb = B.strides[0] // sizeof(floating)
    cdef int ldc = C.strides[0] // sizeof(floating)
    with nogil:
        if floating is double:
            if exact:
                status = gemm_exact(trans_a, trans_b, M, N, K, &A[0, 0], lda, &B[0, 0], ldb,
                                    &C[0, 0], ldc, threads)
        if not exact:
            gemm_blas(trans_a, trans_b, M, N, K, &A[0, 0], lda, &B[0, 0], ldb, &C[0, 0], ldc,
                      threads)
    if status:
        raise MemoryError("gemm: out of memory")


def gemm_accumulate(const floating[:, ::view.contiguous] A,
                    const floating[:, ::view.contiguous] B, floating[:, ::view.contiguous] C,
                    double alpha, bint trans_a=False, bint trans_b=False):
    """C += alpha · op(A) · op(B) through BLAS, on one thread; a thin wrapper for tests."""
    cdef int M = A.shape[1] if trans_a else A.shape[0]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    cdef int Kb = B.shape[1] if trans_b else B.shape[0]
    cdef int N = B.shape[0] if trans_b else B.shape[1]
    if K != Kb or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm_accumulate shapes do not match: op(A) {M}x{K}, op(B) {Kb}x{N}, "
            f"C {C.shape[0]}x{C.shape[1]}")
    if M == 0 or N == 0 or K == 0:
        return
    load_blas()
    cdef int lda = A.strides[0] // sizeof(floating), ldb = B.strides[0] // sizeof(floating)
    cdef int ldc = C.strides[0] // sizeof(floating)
    with nogil:
        gemm_blas_accumulate(trans_a, trans_b, M, N, K, <floating> alpha, &A[0, 0], lda,
                             &B[0, 0], ldb, &C[0, 0], ldc)


def prepare_blas():
    """Load BLAS now, e.g. so that threadpoolctl sees it before limiting its threads."""
    load_blas()
