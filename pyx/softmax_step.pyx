"""Skip-gram's training step with the full softmax, fused (fast backend): one minibatch's
forward pass, gradients and momentum update in one parallel region.

At a large vocabulary the step is passes over V x N and V x d arrays that do not fit in
cache.  Done an operation at a time (the product, the softmax's passes, its gradient,
two more products, the dense momentum update), each of them is read from memory again
and again.  Here the threads share the rows of W2 (the words) in blocks of BLOCK rows,
and a block's z, W2 and velocity are read twice from memory, not a dozen times:

    y1 = W1[:, c]                                        each thread its columns i
    -- barrier --
    each block b of rows r0:r1, by its thread:
        z_b = W2[r0:r1] y1;  m_b = max_k z_b;  e_b = exp(z_b - m_b);  s_b = Σ_k e_b
    -- barrier --
    per column, each thread its own: M = max_b m_b,  S = Σ_b s_b exp(m_b - M)  (in block
        order), and each block's factor exp(m_b - M) / S
    -- barrier --
    each block b, by its thread:
        y_b = e_b times its factor,  and log(y[o_i, i] + e^-30) for its targets o_i
        dz_b = y_b - onehot(o)
        dy1_t += W2[r0:r1]ᵀ dz_b                            the thread's partial sum
        v_b = m v_b + λ W2[r0:r1];  v_b += dz_b y1ᵀ / N;  W2[r0:r1] -= lr v_b
    -- barrier --
    rows j of W1, each thread its own: v = m v + λ W1 and W1 -= lr v in one pass; then
        for i in order, with g = Σ_t dy1_t[j, i] / N:  v[j, c_i] += g;  W1[j, c_i] -= lr g

which is SkipGram.gradients then Momentum.step (vel = m·vel + (g/N + λθ);
θ -= lr·vel), in another order of rounding: dy1 and dW2 use W2 before its update,
dW2 uses y1 of W1 before its own.  The loss is summed in example order.
``floating`` is float64 or float32.
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.math cimport exp, log

from wordnet._activations cimport exp_shifted_block, softmax_factors
from wordnet._products cimport gemm_blas, gemm_blas_accumulate, load_blas

cdef extern from *:
    """
    static void wordnet_step_barrier(void) {
        #pragma omp barrier
    }
    """
    void barrier "wordnet_step_barrier"() noexcept nogil

cdef enum:
    BLOCK = 128         # rows of W2 a block: its z (N wide), W2 and velocity rows in cache


def blocks_of(int V) -> int:
    """The number of row blocks of a V-word W2: the rows of ``stats`` that
    softmax_step needs."""
    return (V + BLOCK - 1) // BLOCK


def softmax_step(floating[:, ::1] W1, floating[:, ::1] W2, floating[:, ::1] vW1,
                 floating[:, ::1] vW2, const int[::1] centre, const int[::1] context,
                 floating[:, ::1] z, floating[:, ::1] y1, floating[:, :, ::1] dy1,
                 floating[:, :, ::1] stats, double[::1] logp, double learning_rate,
                 double momentum, double inv_n, double decay, int threads) -> float:
    """One momentum step of skip-gram on the (centre, context) pairs, full softmax, in
    place; the pairs' summed loss -Σ log(y[o_i, i] + e^-30) before it.  W1 is d x V, W2
    V x d, their velocities alike; scratch: z V x N, y1 d x N, dy1 T x d x N (T =
    ``threads``), stats 2 x blocks_of(V) x N, logp N."""
    cdef int d = W1.shape[0], V = W1.shape[1], N = centre.shape[0]
    cdef int nb = (V + BLOCK - 1) // BLOCK
    cdef int T = max(1, min(threads, nb, d))
    if (W2.shape[0] != V or W2.shape[1] != d or vW1.shape[0] != d or vW1.shape[1] != V
            or vW2.shape[0] != V or vW2.shape[1] != d):
        raise ValueError("softmax_step: W1 (d x V), W2 (V x d) and their velocities differ")
    if (N == 0 or context.shape[0] != N or z.shape[0] < V or z.shape[1] != N
            or y1.shape[0] != d or y1.shape[1] != N or dy1.shape[0] < T or dy1.shape[1] != d
            or dy1.shape[2] != N or stats.shape[0] != 2 or stats.shape[1] < nb
            or stats.shape[2] != N or logp.shape[0] < N):
        raise ValueError("softmax_step: the scratch arrays do not fit the minibatch")
    cdef int i
    for i in range(N):
        if not (0 <= centre[i] < V and 0 <= context[i] < V):
            raise ValueError(f"softmax_step: pair {i} has a word outside 0..{V - 1}")
    cdef floating mu = momentum, lr = learning_rate, scale = inv_n, wd = decay
    cdef floating* m = &stats[0, 0, 0]     # m_b, then its factor exp(m_b - M) / S
    cdef floating* s = &stats[1, 0, 0]
    cdef int tid, b, b0, b1, r0, r1, k, j, j0, j1, c, o, i0, i1
    cdef floating total
    cdef floating* zk
    cdef floating* part
    cdef double loss = 0
    load_blas()
    with nogil, parallel(num_threads=T):
        tid = threadid()
        b0, b1 = tid * nb // T, (tid + 1) * nb // T
        i0, i1 = tid * N // T, (tid + 1) * N // T
        for k in range(d):                                     # y1 = W1[:, c]
            for i in range(i0, i1):
                y1[k, i] = W1[k, centre[i]]
        barrier()
        for b in range(b0, b1):                                # z_b, m_b, e_b, s_b
            r0, r1 = b * BLOCK, min(V, (b + 1) * BLOCK)
            gemm_blas(False, False, r1 - r0, N, d, &W2[r0, 0], d, &y1[0, 0], N,
                      &z[r0, 0], N, 1)
            exp_shifted_block(&z[r0, 0], m + b * N, s + b * N, r1 - r0, N, N)
        barrier()
        softmax_factors(m, s, nb, N, i0, i1)                   # m_b: exp(m_b - M) / S
        barrier()
        part = &dy1[tid, 0, 0]
        for k in range(d * N):
            part[k] = 0
        for b in range(b0, b1):
            r0, r1 = b * BLOCK, min(V, (b + 1) * BLOCK)
            for k in range(r0, r1):                            # y_b, in place of e_b
                zk = &z[k, 0]
                for i in range(N):
                    zk[i] = zk[i] * m[b * N + i]
            for i in range(N):                                 # its targets: log y, dz
                o = context[i]
                if r0 <= o < r1:
                    logp[i] = log(z[o, i] + exp(-30.0))
                    z[o, i] = z[o, i] - 1
            gemm_blas_accumulate(True, False, d, N, r1 - r0, <floating> 1, &W2[r0, 0], d,
                                 &z[r0, 0], N, part, N)        # dy1_t += W2_bᵀ dz_b
            for k in range(r0 * d, r1 * d):                    # v_b = m v_b + λ W2_b
                (&vW2[0, 0])[k] = mu * (&vW2[0, 0])[k] + wd * (&W2[0, 0])[k]
            gemm_blas_accumulate(False, True, r1 - r0, d, N, scale, &z[r0, 0], N,
                                 &y1[0, 0], N, &vW2[r0, 0], d)  # v_b += dz_b y1ᵀ / N
            for k in range(r0 * d, r1 * d):
                (&W2[0, 0])[k] = (&W2[0, 0])[k] - lr * (&vW2[0, 0])[k]
        barrier()
        j0, j1 = tid * d // T, (tid + 1) * d // T
        for j in range(j0, j1):
            for c in range(V):                                 # v = m v + λ W1; W1 -= lr v
                vW1[j, c] = mu * vW1[j, c] + wd * W1[j, c]
                W1[j, c] = W1[j, c] - lr * vW1[j, c]
            for i in range(N):                                 # then the gradient's share,
                total = 0                                      # on the N columns it has
                for k in range(T):
                    total = total + dy1[k, j, i]
                total = total * scale
                vW1[j, centre[i]] = vW1[j, centre[i]] + total
                W1[j, centre[i]] = W1[j, centre[i]] - lr * total
    for i in range(N):
        loss = loss - logp[i]
    return loss
