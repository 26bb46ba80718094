# Declarations of pyx/updates.pyx, for the fused training loop (pyx/loop.pyx).
from cython cimport floating

cdef void momentum_update_range(floating* theta, floating* vel, const floating* g, int first,
                                int last, floating momentum, floating learning_rate,
                                floating inv_n, floating decay) noexcept nogil
cdef void velocity_ahead_range(floating* vel, const floating* theta, int first, int last,
                               floating momentum, floating decay) noexcept nogil
cdef void step_ahead_range(floating* theta, floating* vel, int first, int last,
                           floating learning_rate, floating momentum, floating decay,
                           bint ahead) noexcept nogil
cdef void velocity_behind_range(floating* vel, const floating* theta, int first, int last,
                                floating momentum, floating decay) noexcept nogil
