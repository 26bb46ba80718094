"""The 4-gram model's training step for a large vocabulary, fused (fast backend): what
train_minibatches (pyx/loop.pyx) does, but with the output layer's rows shared among
the threads in blocks that stay in cache, as skip-gram's full softmax does it
(pyx/softmax_step.pyx).

With V in the thousands, W3 (V x h2), its velocity and the scores z3 (V x N) are
megabytes each, and the step is passes over them.  train_minibatches splits the
examples (columns) among the threads, so each thread reads all of W3 twice, and the
softmax, its gradient and the update pass over every array again.  Here, per
minibatch:

    columns c0:c1, each thread its own:   y1, z2, y2 = f(z2 + b2)
    -- barrier --
    blocks of BLOCK rows r0:r1, each thread its own:
        z3_b = W3[r0:r1] y2 + b3;  m_b = max_k z3_b;  e_b = exp(z3_b - m_b);  s_b = Σ_k e_b
    -- barrier --
    columns, each thread its own: the blocks' factors exp(m_b - M) / S (pyx/activations.pyx),
        and log y3[target_i, i]
    -- barrier --
    every thread: the batch CE (C order), its running mean; stop before the update if
        it is not finite
    blocks, each thread its own:  y3_b = e_b times its factor;  dz3_b = y3_b - onehot;
        db3 and b3's update
    each thread, on its rows:  dy2_t = W3ᵀ dz3        one product (per block, its short
                                                      reductions cost more than they saved)
    blocks, each thread its own:  v_b (ahead, as train_minibatches) += dz3_b y2ᵀ / N;
        W3's step, the block's W3 and v_b in cache
    -- barrier --
    columns, each thread its own: dy2 = Σ_t dy2_t, dz2 = f'(dy2), dy1 = W2ᵀ dz2
    -- barrier --
    rows of h2, rows of h1: W2, b2 and W1 as train_minibatches updates them
    -- barrier --

The updates are train_minibatches' (the velocity ahead, BLAS adding the gradient's
share to it), in blocks; the softmax is the same function in another order of
rounding.  Fast backend only; ``floating`` is float64 or float32.
"""
from cython cimport floating, view
from cython.parallel cimport parallel, threadid
from libc.math cimport exp, isfinite, log

import numpy as np

from wordnet._loop import check_minibatches

from wordnet._activations cimport (bias_sigmoid_block, bias_tanh_block, column_split,
                                   cross_entropy_ordered, exp_shifted_block, line_columns,
                                   softmax_factors)
from wordnet._gradients cimport (embed_block, embed_grad_rows, sigmoid_grad_block,
                                 sum_columns_rows, tanh_grad_block)
from wordnet._products cimport gemm_blas, gemm_blas_accumulate, load_blas
from wordnet._updates cimport (momentum_update_range, step_ahead_range, velocity_ahead_range,
                               velocity_behind_range)

cdef extern from *:
    """
    static void wordnet_wide_barrier(void) {
        #pragma omp barrier
    }
    """
    void barrier "wordnet_wide_barrier"() noexcept nogil

cdef enum:
    BLOCK = 256          # rows of W3 a block: its z3 (N wide), W3 and velocity rows in cache


def train_minibatches_wide(model, velocity, grads, buffers, floating[:, ::1] part,
                           const int[:, :, ::1] x, const int[:, ::1] t,
                           const int[:, ::1] order, int first, int last, double ce,
                           double[::1] trace, double learning_rate, double momentum,
                           double inv_n, bint exact, int threads, bint use_tanh=False,
                           double weight_decay=0.0):
    """train_minibatches (pyx/loop.pyx), same arguments and results, for a large V:
    (minibatches reported, running CE, diverged).  Fast backend only."""
    cdef floating[:, ::1] W1 = model.W1, W2 = model.W2, W3 = model.W3
    cdef floating[::1] b2 = model.b2, b3 = model.b3
    cdef floating[:, ::1] vW1 = velocity["W1"], vW2 = velocity["W2"], vW3 = velocity["W3"]
    cdef floating[::1] vb2 = velocity["b2"], vb3 = velocity["b3"]
    cdef floating[::1] gb2 = grads["b2"], gb3 = grads["b3"]
    cdef floating[:, ::view.contiguous] y1 = buffers.y1, y2 = buffers.y2, dz3 = buffers.dz3
    cdef floating[:, ::view.contiguous] dz2 = buffers.dz2, dy1 = buffers.dy1
    cdef double[::1] logp = buffers.logp
    cdef floating mu = momentum, lr = learning_rate, scale = inv_n, wd = weight_decay, nil = 0
    cdef int H1 = W1.shape[0], V = W1.shape[1], H2 = W2.shape[0], DH1 = W2.shape[1]
    cdef int N = x.shape[1], D = x.shape[2], ld = y1.strides[0] // sizeof(floating)
    if exact:
        raise ValueError("train_minibatches_wide: the fast backend's")
    check_minibatches("train_minibatches_wide", buffers, trace.shape[0], first, last,
                      x.shape[0], x.shape[1], t.shape[1], order, D * H1 == DH1)
    cdef int nb = (V + BLOCK - 1) // BLOCK
    cdef int T = max(1, min(threads, N, H1, nb))
    dtype = np.float32 if floating is float else np.float64
    stats_array = np.empty((2, nb, N), dtype)             # the blocks' m_b and s_b
    partial_array = np.empty((T, H2, N), dtype)           # each thread's share of dy2
    cdef floating[:, :, ::1] stats = stats_array, partial = partial_array
    cdef floating* m = &stats[0, 0, 0]
    cdef floating* s = &stats[1, 0, 0]
    cdef int align = line_columns(&y1[0, 0], y1.strides[0], sizeof(floating))
    cdef double shared[1]                  # the final running CE
    shared[0] = ce
    cdef int done[1]                       # minibatches reported, set by thread 0
    cdef int tid, c0, nc, q0, q1, h0, h1, j0, j1, b, k, i, o, r0, r1, blk
    cdef double running, batch_ce, eps = exp(-30.0)
    cdef floating total
    cdef floating* zk
    cdef floating* mine
    cdef const int* xb
    cdef const int* tb
    cdef bint ahead = momentum != 0
    if last == first:
        return 0, ce, False
    load_blas()
    with nogil, parallel(num_threads=T):
        tid = threadid()
        c0 = column_split(tid, T, N, align)
        nc = column_split(tid + 1, T, N, align) - c0
        q0, q1 = tid * nb // T, (tid + 1) * nb // T         # this thread's blocks of W3
        h0, h1 = tid * H2 // T, (tid + 1) * H2 // T
        j0, j1 = tid * H1 // T, (tid + 1) * H1 // T
        mine = &partial[tid, 0, 0]
        running = ce
        b = first
        while b < last:
            xb, tb = &x[b, 0, 0], &t[b, 0]
            embed_block(&W1[0, 0], H1, V, xb + c0 * D, D, &y1[0, c0], nc, ld)
            if nc > 0:
                gemm_blas(False, False, H2, nc, DH1, &W2[0, 0], DH1, &y1[0, c0], ld,
                          &y2[0, c0], ld, 1)                                 # z2 = W2 y1
            if use_tanh:                                                    # y2 = f(z2 + b2)
                bias_tanh_block(&y2[0, c0], &b2[0], &y2[0, c0], H2, nc, ld, False)
            else:
                bias_sigmoid_block(&y2[0, c0], &b2[0], &y2[0, c0], H2, nc, ld, False)
            barrier()
            for blk in range(q0, q1):                       # z3_b + b3, exp-shifted
                r0, r1 = blk * BLOCK, min(V, (blk + 1) * BLOCK)
                gemm_blas(False, False, r1 - r0, N, H2, &W3[r0, 0], H2, &y2[0, 0], ld,
                          &dz3[r0, 0], ld, 1)
                for k in range(r0, r1):
                    zk = &dz3[k, 0]
                    for i in range(N):
                        zk[i] = zk[i] + b3[k]
                exp_shifted_block(&dz3[r0, 0], m + blk * N, s + blk * N, r1 - r0, N, ld)
            barrier()
            softmax_factors(m, s, nb, N, c0, c0 + nc)       # m_b: exp(m_b - M) / S
            for i in range(c0, c0 + nc):                    # log(y3[target_i, i] + e^-30)
                o = tb[i]
                logp[i] = log(<double> (dz3[o, i] * m[(o // BLOCK) * N + i]) + eps)
            barrier()
            batch_ce = cross_entropy_ordered(&logp[0], &order[b, 0], N)
            running = running + (batch_ce - running) / (b + 1)
            if tid == 0:
                trace[b - first] = running
            if not isfinite(running):
                break
            for blk in range(q0, q1):
                r0, r1 = blk * BLOCK, min(V, (blk + 1) * BLOCK)
                for k in range(r0, r1):                     # y3_b, then dz3_b = y3_b - onehot
                    zk = &dz3[k, 0]
                    for i in range(N):
                        zk[i] = zk[i] * m[blk * N + i]
                for i in range(N):
                    if r0 <= tb[i] < r1:
                        dz3[tb[i], i] = dz3[tb[i], i] - 1
                sum_columns_rows(&dz3[0, 0], &gb3[0], r0, r1, N, ld, False)
                momentum_update_range(&b3[0], &vb3[0], &gb3[0], r0, r1, mu, lr, scale, nil)
            r0, r1 = q0 * BLOCK, min(V, q1 * BLOCK)         # dy2_t = W3ᵀ dz3 on my rows
            if r1 > r0:
                gemm_blas(True, False, H2, N, r1 - r0, &W3[r0, 0], H2, &dz3[r0, 0], ld,
                          mine, N, 1)
            else:
                for k in range(H2 * N):
                    mine[k] = 0
            for blk in range(q0, q1):
                r0, r1 = blk * BLOCK, min(V, (blk + 1) * BLOCK)
                if b == first or not ahead:
                    velocity_ahead_range(&vW3[0, 0], &W3[0, 0], r0 * H2, r1 * H2, mu, wd)
                gemm_blas_accumulate(False, True, r1 - r0, H2, N, scale, &dz3[r0, 0], ld,
                                     &y2[0, 0], ld, &vW3[r0, 0], H2)
                step_ahead_range(&W3[0, 0], &vW3[0, 0], r0 * H2, r1 * H2, lr, mu, wd,
                                 ahead and b + 1 < last)
            barrier()
            for k in range(H2):                             # dy2 = Σ_t dy2_t, on my columns
                for i in range(c0, c0 + nc):
                    total = 0
                    for o in range(T):
                        total = total + partial[o, k, i]
                    dz2[k, i] = total
            if use_tanh:
                tanh_grad_block(&dz2[0, c0], &y2[0, c0], &dz2[0, c0], H2, nc, ld)
            else:
                sigmoid_grad_block(&dz2[0, c0], &y2[0, c0], &dz2[0, c0], H2, nc, ld)
            if nc > 0:
                gemm_blas(True, False, DH1, nc, H2, &W2[0, 0], DH1, &dz2[0, c0], ld,
                          &dy1[0, c0], ld, 1)                               # dy1 = W2ᵀ dz2
            barrier()
            if b == first or not ahead:
                velocity_ahead_range(&vW2[0, 0], &W2[0, 0], h0 * DH1, h1 * DH1, mu, wd)
                velocity_ahead_range(&vW1[0, 0], &W1[0, 0], j0 * V, j1 * V, mu, wd)
            gemm_blas_accumulate(False, True, h1 - h0, DH1, N, scale, &dz2[h0, 0], ld,
                                 &y1[0, 0], ld, &vW2[h0, 0], DH1)
            step_ahead_range(&W2[0, 0], &vW2[0, 0], h0 * DH1, h1 * DH1, lr, mu, wd,
                             ahead and b + 1 < last)
            sum_columns_rows(&dz2[0, 0], &gb2[0], h0, h1, N, ld, False)
            momentum_update_range(&b2[0], &vb2[0], &gb2[0], h0, h1, mu, lr, scale, nil)
            embed_grad_rows(&dy1[0, 0], ld, xb, N, D, &vW1[0, 0], &part[0, 0], V, H1, j0,
                            j1, False, scale, True)
            step_ahead_range(&W1[0, 0], &vW1[0, 0], j0 * V, j1 * V, lr, mu, wd,
                             ahead and b + 1 < last)
            barrier()
            b = b + 1
        if ahead and first < b < last:     # stopped with the velocity ahead: back
            for blk in range(q0, q1):
                r0, r1 = blk * BLOCK, min(V, (blk + 1) * BLOCK)
                velocity_behind_range(&vW3[0, 0], &W3[0, 0], r0 * H2, r1 * H2, mu, wd)
            velocity_behind_range(&vW2[0, 0], &W2[0, 0], h0 * DH1, h1 * DH1, mu, wd)
            velocity_behind_range(&vW1[0, 0], &W1[0, 0], j0 * V, j1 * V, mu, wd)
        if tid == 0:
            done[0] = b - first + (1 if b < last else 0)
            shared[0] = running
    return done[0], shared[0], not isfinite(shared[0])
