# Declarations of pyx/updates.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef void momentum_update_range(floating* theta, floating* vel, const floating* g, int first,
                                int last, floating momentum, floating learning_rate,
                                floating inv_n, floating decay) noexcept nogil
