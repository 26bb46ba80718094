"""The momentum update of a parameter array: in the C reference's order, and the fast
backend's fused loop's way, in which BLAS adds the gradient to the velocity."""
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


cdef void velocity_ahead_range(floating* vel, const floating* theta, int first, int last,
                               floating momentum, floating decay) noexcept nogil:
    """vel = momentum * vel + decay * theta: the next velocity but for the gradient's
    share g * (1/N), which the fast backend's fused loop then has BLAS add (loop.pyx)."""
    cdef int k
    if decay == 0:
        for k in range(first, last):
            vel[k] = momentum * vel[k]
    else:
        for k in range(first, last):
            vel[k] = momentum * vel[k] + decay * theta[k]


cdef void step_ahead_range(floating* theta, floating* vel, int first, int last,
                           floating learning_rate, floating momentum, floating decay,
                           bint ahead) noexcept nogil:
    """theta = theta - learning_rate * vel; with ``ahead``, then velocity_ahead_range
    from the new theta, in the same pass."""
    cdef int k
    if not ahead:
        for k in range(first, last):
            theta[k] = theta[k] - learning_rate * vel[k]
    elif decay == 0:
        for k in range(first, last):
            theta[k] = theta[k] - learning_rate * vel[k]
            vel[k] = momentum * vel[k]
    else:
        for k in range(first, last):
            theta[k] = theta[k] - learning_rate * vel[k]
            vel[k] = momentum * vel[k] + decay * theta[k]


cdef void velocity_behind_range(floating* vel, const floating* theta, int first, int last,
                                floating momentum, floating decay) noexcept nogil:
    """Undoes velocity_ahead_range (momentum != 0), to within rounding:
    vel = (vel - decay * theta) / momentum."""
    cdef int k
    if decay == 0:                          # theta may be infinite by now (divergence)
        for k in range(first, last):
            vel[k] = vel[k] / momentum
    else:
        for k in range(first, last):
            vel[k] = (vel[k] - decay * theta[k]) / momentum


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


def _check_lengths(name, theta, vel):
    if theta.shape[0] != vel.shape[0]:
        raise ValueError(f"{name}: theta and vel differ in length")


def velocity_ahead(floating[::1] vel, const floating[::1] theta, double momentum,
                   double decay=0.0):
    """vel = momentum * vel + decay * theta, in place (a test hook)."""
    _check_lengths("velocity_ahead", theta, vel)
    if vel.shape[0]:
        velocity_ahead_range(&vel[0], &theta[0], 0, vel.shape[0], momentum, decay)


def step_ahead(floating[::1] theta, floating[::1] vel, double learning_rate, double momentum,
               double decay=0.0, bint ahead=True):
    """theta -= learning_rate * vel, then (``ahead``) velocity_ahead, in place (a test hook)."""
    _check_lengths("step_ahead", theta, vel)
    if vel.shape[0]:
        step_ahead_range(&theta[0], &vel[0], 0, vel.shape[0], learning_rate, momentum, decay,
                         ahead)


def velocity_behind(floating[::1] vel, const floating[::1] theta, double momentum,
                    double decay=0.0):
    """velocity_ahead undone, to within rounding, in place (a test hook)."""
    _check_lengths("velocity_behind", theta, vel)
    if momentum == 0:
        raise ValueError("velocity_behind: momentum 0 leaves nothing to undo")
    if vel.shape[0]:
        velocity_behind_range(&vel[0], &theta[0], 0, vel.shape[0], momentum, decay)
