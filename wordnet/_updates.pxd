# Declarations of pyx/updates.pyx, for the fused training loop (pyx/loop.pyx).
cdef void momentum_update_range(double* theta, double* vel, const double* g, int first,
                                int last, double momentum, double learning_rate,
                                double inv_n) noexcept nogil
