"""The training step, fused: minibatches first..last-1 with no Python between kernels;
and the evaluation's forward passes, fused alike (``evaluate_minibatches``).

One OpenMP parallel region runs them all.  Each of the T threads takes a
share of the examples (columns) for the forward pass and the input-side
gradients, then a share of the rows for the weight gradients and the update:

    columns c0:c1   y1, z2, y2, z3, y3, the CE's terms log y3[target],
                    dz3, dy2 = W3ᵀ dz3, dz2, dy1 = W2ᵀ dz2
    -- barrier --
    all             the batch CE, its running mean, stop if not finite
    rows of V       dW3 = dz3 y2ᵀ, db3, then update W3, b3
    rows of h2      dW2 = dz2 y1ᵀ, db2, then update W2, b2
    rows of h1      dW1 (per position), then update W1
    -- barrier --

The fast backend computes no weight gradient: v = m v + dW/N + λθ is built in
the velocity itself.  The update of each minibatch, θ -= lr v, leaves in v,
in the same pass, the next minibatch's velocity but for its gradient, m v + λθ
(the first minibatch of a call computes it in a pass of its own), and the
products, dgemm with beta = 1, add dW3/N and dW2/N to it; the dW1 scatter adds
its terms times 1/N.  Against the gradient arrays this saves a pass that
zeroes them, one that reads them back and one that writes v (50-70 µs of a
1,500 µs update, float64, one core); the rounding differs from
Momentum.step's.  A call ends with v the velocity, as it began; one that stops
at a diverged minibatch undoes its velocity ahead, to within rounding.

Each thread updates only the rows whose gradient it computed, after every
thread has finished reading the weights, so two barriers suffice.  Every
thread sums the CE's terms itself, in the C reference's order: each gets the
same value and takes the same decision, with no barrier to share it.  With
``exact`` every product keeps the C reference's order: the split changes no
bit.  When the buffers' rows are padded to whole 64-byte lines, as Buffers
pads them, the columns split on a line: two threads writing one line would
move it between the cores at every write.  A non-finite running CE stops the
loop before that minibatch's update.
``floating`` is float64 or, for the fast backend only, float32.
"""
from cython cimport floating, view
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport isfinite

import numpy as np

from wordnet._activations cimport (bias_sigmoid_block, bias_softmax_block, bias_tanh_block,
                                   column_split, cross_entropy_ordered, line_columns,
                                   log_likelihood_block)
from wordnet._gradients cimport (embed_block, embed_grad_rows, sigmoid_grad_block,
                                 softmax_grad_block, sum_columns_rows, tanh_grad_block)
from wordnet._products cimport gemm_blas, gemm_blas_accumulate, gemm_exact, load_blas
from wordnet._updates cimport (momentum_update_range, step_ahead_range, velocity_ahead_range,
                               velocity_behind_range)

cdef extern from *:
    """
    static void wordnet_barrier(void) {
        #pragma omp barrier
    }
    """
    void barrier "wordnet_barrier"() noexcept nogil


def check_minibatches(str name, buffers, Py_ssize_t traced, Py_ssize_t first, Py_ssize_t last,
                      Py_ssize_t minibatches, Py_ssize_t examples, Py_ssize_t targets, order,
                      bint embedding_fits):
    """ValueError, named after the loop ``name``, unless the minibatches ``first`` to
    ``last`` of ``minibatches`` (of ``examples`` each), their trace, targets and ``order``
    fit the batch ``buffers`` and the weights: checked before a loop, which trusts them."""
    if traced < last - first or not (0 <= first <= last <= minibatches):
        raise ValueError(f"{name}: trace too short or minibatch range out of bounds")
    if (buffers.y1.shape[1] != examples or targets != examples or not embedding_fits
            or order.shape[1] != examples or order.shape[0] != minibatches):
        raise ValueError(f"{name}: buffers do not fit the minibatches")
    for field in ("y2", "dz3", "dz2", "dy1"):
        if getattr(buffers, field).strides[0] != buffers.y1.strides[0]:
            raise ValueError(f"{name}: the buffers' rows differ in length")


cdef inline int product(bint exact, bint trans_a, bint trans_b, int M, int N, int K,
                        const floating* A, int lda, const floating* B, int ldb,
                        floating* C, int ldc) noexcept nogil:
    """C = op(A) · op(B) on this thread alone; -1 when out of memory."""
    if M <= 0 or N <= 0:
        return 0
    if floating is double:
        if exact:
            return gemm_exact(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, 1)
    gemm_blas(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, 1)
    return 0


cdef inline void update_rows(floating* theta, floating* vel, const floating* g, int first,
                             int last, int width, floating momentum, floating learning_rate,
                             floating inv_n, floating decay) noexcept nogil:
    momentum_update_range(theta, vel, g, first * width, last * width,
                          momentum, learning_rate, inv_n, decay)


def train_minibatches(model, velocity, grads, buffers, floating[:, ::1] part,
                      const int[:, :, ::1] x, const int[:, ::1] t, const int[:, ::1] order,
                      int first, int last, double ce, double[::1] trace,
                      double learning_rate, double momentum, double inv_n, bint exact,
                      int threads, bint use_tanh=False, double weight_decay=0.0):
    """Train on minibatches first <= b < last of (x, t) in place.

    ``order[b]`` lists minibatch b's examples sorted by target, ties in example
    order (the C reference's order of the CE's terms).  ``ce`` is the epoch's
    running mean before minibatch ``first``; ``trace[b - first]`` receives it
    after each minibatch's CE.  Returns
    (minibatches reported, running CE, diverged): on divergence the last one
    reported was not applied.  Every array has the dtype of ``part``.  ``use_tanh``: the
    hidden layer is tanh, not the sigmoid; ``weight_decay``: λ of an L2 penalty on W1,
    W2 and W3 (see updates.pyx).
    """
    cdef floating[:, ::1] W1 = model.W1, W2 = model.W2, W3 = model.W3
    cdef floating[::1] b2 = model.b2, b3 = model.b3
    cdef floating[:, ::1] vW1 = velocity["W1"], vW2 = velocity["W2"], vW3 = velocity["W3"]
    cdef floating[::1] vb2 = velocity["b2"], vb3 = velocity["b3"]
    cdef floating[:, ::1] gW1 = grads["W1"], gW2 = grads["W2"], gW3 = grads["W3"]
    cdef floating[::1] gb2 = grads["b2"], gb3 = grads["b3"]
    # the batch buffers: rows may be padded (see Buffers), columns are contiguous.  Each
    # activation is computed in place of the one it comes from: z2 in y2's rows, z3 and
    # y3 in dz3's, dy2 in dz2's.  A step then touches 5 arrays instead of 9: less to
    # keep in cache, and no copy of y3 into dz3.
    cdef floating[:, ::view.contiguous] y1 = buffers.y1, y2 = buffers.y2, dz3 = buffers.dz3
    cdef floating[:, ::view.contiguous] dz2 = buffers.dz2, dy1 = buffers.dy1
    cdef floating[::1] s = buffers.scratch
    cdef double[::1] logp = buffers.logp
    cdef floating mu = momentum, lr = learning_rate, scale = inv_n, wd = weight_decay, nil = 0
    cdef int H1 = W1.shape[0], V = W1.shape[1], H2 = W2.shape[0], DH1 = W2.shape[1]
    cdef int N = x.shape[1], D = x.shape[2], ld = y1.strides[0] // sizeof(floating)
    check_minibatches("train_minibatches", buffers, trace.shape[0], first, last,
                      x.shape[0], x.shape[1], t.shape[1], order, D * H1 == DH1)
    cdef int align = line_columns(&y1[0, 0], y1.strides[0], sizeof(floating))
    if exact and floating is float:
        raise ValueError("train_minibatches: the exact backend is float64 only")
    cdef double shared[2]                  # the final running CE, an out-of-memory flag
    shared[0], shared[1] = ce, 0.0
    cdef int T = max(1, min(threads, N, H1))
    cdef int done[1]                       # minibatches reported, set by thread 0
    cdef int tid, c0, nc, v0, v1, h0, h1, j0, j1, b, status
    cdef double running, batch_ce
    cdef const int* xb
    cdef const int* tb
    # fast: each minibatch's update leaves the weights' velocity ahead for the next one,
    # m v + λθ, in the pass that updates θ; undone, to within rounding, when the loop stops
    # early (divergence).  Not with momentum 0: there the velocity is no hint of the next.
    cdef bint ahead = not exact and momentum != 0
    if last == first:
        return 0, ce, False
    if not exact:
        load_blas()
    with nogil, parallel(num_threads=T):
        tid = threadid()
        c0 = column_split(tid, T, N, align)
        nc = column_split(tid + 1, T, N, align) - c0
        v0, v1 = tid * V // T, (tid + 1) * V // T
        h0, h1 = tid * H2 // T, (tid + 1) * H2 // T
        j0, j1 = tid * H1 // T, (tid + 1) * H1 // T
        running = ce                       # each thread's copy, the same value in all
        status = 0                         # this thread's failed products, ever
        b = first
        while b < last:
            xb, tb = &x[b, 0, 0], &t[b, 0]
            # forward and input-side gradients, on columns c0:c0+nc
            embed_block(&W1[0, 0], H1, V, xb + c0 * D, D, &y1[0, c0], nc, ld)
            status = status + product(exact, False, False, H2, nc, DH1, &W2[0, 0], DH1,
                              &y1[0, c0], ld, &y2[0, c0], ld)               # z2 = W2 y1
            if use_tanh:                                                    # y2 = f(z2 + b2)
                bias_tanh_block(&y2[0, c0], &b2[0], &y2[0, c0], H2, nc, ld, exact)
            else:
                bias_sigmoid_block(&y2[0, c0], &b2[0], &y2[0, c0], H2, nc, ld, exact)
            status = status + product(exact, False, False, V, nc, H2, &W3[0, 0], H2,
                              &y2[0, c0], ld, &dz3[0, c0], ld)              # z3 = W3 y2
            bias_softmax_block(&dz3[0, c0], &b3[0], &dz3[0, c0], &s[c0], V, nc, ld,
                               exact)                                       # y3
            log_likelihood_block(&dz3[0, c0], tb + c0, &logp[c0], nc, ld)   # log y3[target]
            softmax_grad_block(&dz3[0, c0], tb + c0, &dz3[0, c0], V, nc, ld)  # y3 - onehot
            status = status + product(exact, True, False, H2, nc, V, &W3[0, 0], H2,
                              &dz3[0, c0], ld, &dz2[0, c0], ld)             # dy2 = W3ᵀ dz3
            if use_tanh:
                tanh_grad_block(&dz2[0, c0], &y2[0, c0], &dz2[0, c0], H2, nc, ld)
            else:
                sigmoid_grad_block(&dz2[0, c0], &y2[0, c0], &dz2[0, c0], H2, nc, ld)
            status = status + product(exact, True, False, DH1, nc, H2, &W2[0, 0], DH1,
                              &dz2[0, c0], ld, &dy1[0, c0], ld)             # dy1 = W2ᵀ dz2
            if status != 0:                # written before the barrier, read only after it
                shared[1] = 1.0
            barrier()
            batch_ce = cross_entropy_ordered(&logp[0], &order[b, 0], N)
            running = running + (batch_ce - running) / (b + 1)
            if tid == 0:
                trace[b - first] = running
            if not isfinite(running) or shared[1] != 0.0:
                break
            # weight gradients and the update, on this thread's rows
            if exact:
                status = status + product(exact, False, True, v1 - v0, H2, N, &dz3[v0, 0], ld,
                                  &y2[0, 0], ld, &gW3[v0, 0], H2)
                sum_columns_rows(&dz3[0, 0], &gb3[0], v0, v1, N, ld, exact)
                update_rows(&W3[0, 0], &vW3[0, 0], &gW3[0, 0], v0, v1, H2, mu, lr, scale, wd)
                update_rows(&b3[0], &vb3[0], &gb3[0], v0, v1, 1, mu, lr, scale, nil)
                status = status + product(exact, False, True, h1 - h0, DH1, N, &dz2[h0, 0], ld,
                                  &y1[0, 0], ld, &gW2[h0, 0], DH1)
                sum_columns_rows(&dz2[0, 0], &gb2[0], h0, h1, N, ld, exact)
                update_rows(&W2[0, 0], &vW2[0, 0], &gW2[0, 0], h0, h1, DH1, mu, lr, scale, wd)
                update_rows(&b2[0], &vb2[0], &gb2[0], h0, h1, 1, mu, lr, scale, nil)
                embed_grad_rows(&dy1[0, 0], ld, xb, N, D, &gW1[0, 0], &part[0, 0], V, H1, j0,
                                j1, exact)
                update_rows(&W1[0, 0], &vW1[0, 0], &gW1[0, 0], j0, j1, V, mu, lr, scale, wd)
            else:
                # v = (m v + λθ) + dW/N: BLAS adds dz y_inᵀ/N to the velocity ahead, which
                # the previous minibatch's update left (see ``ahead``); the scatter, dW1/N
                if b == first or not ahead:
                    velocity_ahead_range(&vW3[0, 0], &W3[0, 0], v0 * H2, v1 * H2, mu, wd)
                    velocity_ahead_range(&vW2[0, 0], &W2[0, 0], h0 * DH1, h1 * DH1, mu, wd)
                    velocity_ahead_range(&vW1[0, 0], &W1[0, 0], j0 * V, j1 * V, mu, wd)
                # each layer's update right after its product, while BLAS's output, the
                # thread's rows of the velocity, is still in this core's cache
                gemm_blas_accumulate(False, True, v1 - v0, H2, N, scale, &dz3[v0, 0], ld,
                                     &y2[0, 0], ld, &vW3[v0, 0], H2)
                step_ahead_range(&W3[0, 0], &vW3[0, 0], v0 * H2, v1 * H2, lr, mu, wd,
                                 ahead and b + 1 < last)
                gemm_blas_accumulate(False, True, h1 - h0, DH1, N, scale, &dz2[h0, 0], ld,
                                     &y1[0, 0], ld, &vW2[h0, 0], DH1)
                step_ahead_range(&W2[0, 0], &vW2[0, 0], h0 * DH1, h1 * DH1, lr, mu, wd,
                                 ahead and b + 1 < last)
                sum_columns_rows(&dz3[0, 0], &gb3[0], v0, v1, N, ld, exact)
                update_rows(&b3[0], &vb3[0], &gb3[0], v0, v1, 1, mu, lr, scale, nil)
                sum_columns_rows(&dz2[0, 0], &gb2[0], h0, h1, N, ld, exact)
                update_rows(&b2[0], &vb2[0], &gb2[0], h0, h1, 1, mu, lr, scale, nil)
                embed_grad_rows(&dy1[0, 0], ld, xb, N, D, &vW1[0, 0], &part[0, 0], V, H1, j0,
                                j1, exact, scale, True)
                step_ahead_range(&W1[0, 0], &vW1[0, 0], j0 * V, j1 * V, lr, mu, wd,
                                 ahead and b + 1 < last)
            barrier()
            b = b + 1
        if ahead and first < b < last:     # stopped with the velocity ahead: back
            velocity_behind_range(&vW3[0, 0], &W3[0, 0], v0 * H2, v1 * H2, mu, wd)
            velocity_behind_range(&vW2[0, 0], &W2[0, 0], h0 * DH1, h1 * DH1, mu, wd)
            velocity_behind_range(&vW1[0, 0], &W1[0, 0], j0 * V, j1 * V, mu, wd)
        if status != 0:
            shared[1] = 1.0
        if tid == 0:
            done[0] = b - first + (1 if b < last else 0)
            shared[0] = running
    if shared[1] != 0.0:
        raise MemoryError("train_minibatches: out of memory")
    return done[0], shared[0], not isfinite(shared[0])


cdef void rank_block(const floating* y3, const int* target, int* rank, Py_ssize_t* best,
                     int V, int cols, int ld) noexcept nogil:
    """For each column i of a block of probabilities: rank[i], its target's place in a
    stable sort by falling probability (the words more probable, and the equally
    probable ones listed before it), and best[i], the likeliest word (numpy's argmax:
    the first of the largest, or the first NaN)."""
    cdef int i, v, r, b
    cdef floating p, q, top
    for i in range(cols):
        p = y3[<Py_ssize_t> target[i] * ld + i]
        top = y3[i]
        r, b = 0, 0
        for v in range(V):
            q = y3[<Py_ssize_t> v * ld + i]
            if q > p or (q == p and v < target[i]):
                r = r + 1
            if q > top or (q != q and top == top):
                b, top = v, q
        rank[i], best[i] = r, b


def evaluate_minibatches(model, buffers, floating[::1] s, const int[:, :, ::1] x,
                         const int[:, ::1] t, const int[:, ::1] order, int[::1] rank,
                         Py_ssize_t[::1] best, bint accuracy, bint exact, int threads,
                         bint use_tanh=False):
    """The forward pass of every minibatch of (x, t), with no Python between them and
    without the GIL: the running mean of their CEs, as the C reports it (the terms of
    minibatch b summed in ``order[b]``, as train_minibatches sums them), and with
    ``accuracy`` each example's target rank and likeliest word into ``rank`` and
    ``best`` (rank_block).

    One parallel region; its threads take whole minibatches as they come, each into
    its own columns of ``buffers`` (``threads`` blocks of ``stride`` columns, stride =
    buffers.N // threads), and never wait for one another: a thread slowed by another
    process leaves more minibatches to the others.  An example's forward pass is its
    column's alone, so neither the thread nor the columns change a bit.  ``s`` is
    buffers.scratch; every array has its dtype.
    """
    cdef floating[:, ::1] W1 = model.W1, W2 = model.W2, W3 = model.W3
    cdef floating[::1] b2 = model.b2, b3 = model.b3
    cdef floating[:, ::view.contiguous] y1 = buffers.y1, z2 = buffers.z2, y2 = buffers.y2
    cdef floating[:, ::view.contiguous] z3 = buffers.z3, y3 = buffers.y3
    cdef int H1 = W1.shape[0], V = W1.shape[1], H2 = W2.shape[0], DH1 = W2.shape[1]
    cdef int M = x.shape[0], N = x.shape[1], D = x.shape[2], ld = y1.strides[0] // sizeof(floating)
    cdef int T = max(1, threads), stride = y1.shape[1] // T
    if M == 0 or N == 0 or stride < N or D * H1 != DH1 or s.shape[0] < y1.shape[1]:
        raise ValueError("evaluate_minibatches: no minibatch, or buffers that do not fit")
    if (t.shape[0] != M or t.shape[1] != N or order.shape[0] != M or order.shape[1] != N
            or (accuracy and (rank.shape[0] < M * N or best.shape[0] < M * N))):
        raise ValueError("evaluate_minibatches: targets, order or outputs do not fit")
    for name in ("z2", "y2", "z3", "y3"):
        if getattr(buffers, name).strides[0] != y1.strides[0]:
            raise ValueError("evaluate_minibatches: the buffers' rows differ in length")
    if exact and floating is float:
        raise ValueError("evaluate_minibatches: the exact backend is float64 only")
    logp_array = np.empty(M * N)
    cdef double[::1] logp = logp_array
    cdef int failed = 0, b, c0, status
    cdef double running = 0.0
    if not exact:
        load_blas()
    for b in prange(M, nogil=True, num_threads=T, schedule="dynamic"):
        c0 = threadid() * stride
        embed_block(&W1[0, 0], H1, V, &x[b, 0, 0], D, &y1[0, c0], N, ld)
        status = product(exact, False, False, H2, N, DH1, &W2[0, 0], DH1, &y1[0, c0], ld,
                         &z2[0, c0], ld)
        if use_tanh:
            bias_tanh_block(&z2[0, c0], &b2[0], &y2[0, c0], H2, N, ld, exact)
        else:
            bias_sigmoid_block(&z2[0, c0], &b2[0], &y2[0, c0], H2, N, ld, exact)
        status = status + product(exact, False, False, V, N, H2, &W3[0, 0], H2, &y2[0, c0],
                                  ld, &z3[0, c0], ld)
        bias_softmax_block(&z3[0, c0], &b3[0], &y3[0, c0], &s[c0], V, N, ld, exact)
        log_likelihood_block(&y3[0, c0], &t[b, 0], &logp[b * N], N, ld)
        if accuracy:
            rank_block(&y3[0, c0], &t[b, 0], &rank[b * N], &best[b * N], V, N, ld)
        if status != 0:
            failed += 1
    if failed:
        raise MemoryError("evaluate_minibatches: out of memory")
    for b in range(M):
        running = running + (cross_entropy_ordered(&logp[b * N], &order[b, 0], N)
                             - running) / (b + 1)
    return running
