"""The momentum update of one parameter array, in the C reference's order."""
from cython.parallel cimport prange


cdef void _momentum_update(double[::1] theta, double[::1] vel, const double[::1] g,
                           double momentum, double learning_rate,
                           double inv_n, int threads) noexcept nogil:
    # vel = momentum * vel + g * (1/N);  theta = theta - learning_rate * vel.
    # g is scaled by the rounded reciprocal of N, as the C does, not divided.
    cdef Py_ssize_t k
    for k in prange(theta.shape[0], num_threads=threads, schedule="static"):
        vel[k] = momentum * vel[k] + g[k] * inv_n
        theta[k] = theta[k] - learning_rate * vel[k]


def momentum_update(double[::1] theta, double[::1] vel, const double[::1] g,
                    double momentum, double learning_rate, double inv_n, int threads=1):
    """One step of momentum SGD on a flat parameter array, in place."""
    if not theta.shape[0] == vel.shape[0] == g.shape[0]:
        raise ValueError("momentum_update: theta, vel and g differ in length")
    with nogil:
        _momentum_update(theta, vel, g, momentum, learning_rate, inv_n, threads)
