"""The momentum update of a parameter array, in the C reference's order."""
from cython cimport floating
from cython.parallel cimport prange


cdef void momentum_update_range(floating* theta, floating* vel, const floating* g, int first,
                                int last, floating momentum, floating learning_rate,
                                floating inv_n, floating decay) noexcept nogil:
    """vel = momentum * vel + g * (1/N); theta = theta - learning_rate * vel.

    g is scaled by the rounded reciprocal of N, as the C does, not divided.  With a
    weight decay λ > 0 the step is that of the batch-mean loss plus (λ/2)·‖θ‖²:
    vel = momentum * vel + (g * (1/N) + λ * theta).  λ = 0 runs the C's loop as is.
    """
    cdef int k
    if decay == 0:
        for k in range(first, last):
            vel[k] = momentum * vel[k] + g[k] * inv_n
            theta[k] = theta[k] - learning_rate * vel[k]
    else:
        for k in range(first, last):
            vel[k] = momentum * vel[k] + (g[k] * inv_n + decay * theta[k])
            theta[k] = theta[k] - learning_rate * vel[k]


def momentum_update(floating[::1] theta, floating[::1] vel, const floating[::1] g,
                    double momentum, double learning_rate, double inv_n, int threads=1,
                    double decay=0.0):
    """One step of momentum SGD on a flat parameter array, in place; entries split."""
    if not theta.shape[0] == vel.shape[0] == g.shape[0]:
        raise ValueError("momentum_update: theta, vel and g differ in length")
    cdef int n = theta.shape[0], t, T = max(1, min(threads, n))
    if n == 0:
        return
    for t in prange(T, nogil=True, num_threads=T, schedule="static"):
        momentum_update_range(&theta[0], &vel[0], &g[0], t * n // T, (t + 1) * n // T,
                              momentum, learning_rate, inv_n, decay)
