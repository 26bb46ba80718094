# The samplers of pyx/sampling.pyx, inline here so that a kernel cimporting them
# (pyx/sgd.pyx) draws without a call through a module's function table.
from libc.stdint cimport uint32_t, uint64_t

cdef void cdf_draw_block(const double* cdf, int n, const double* u, int* out,
                         Py_ssize_t count) noexcept nogil


cdef inline int cdf_index(const double* cdf, int n, double u) noexcept nogil:
    """The first i in 0..n-1 with u < cdf[i], or n when none: searchsorted(side="right")."""
    cdef int first = 0, count = n, half
    cdef bint right
    while count > 0:                 # conditional moves, not branches: u is random
        half = count >> 1
        right = cdf[first + half] <= u
        first = first + half + 1 if right else first
        count = count - half - 1 if right else half
    return first


cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    """The next 64 random bits of ``state``, which it advances."""
    state[0] += <uint64_t> 0x9E3779B97F4A7C15
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline int alias_draw(const double* prob, const int* alias, int n,
                           uint64_t bits) noexcept nogil:
    """A word drawn from the alias table with the random ``bits``."""
    cdef int i = <int> (((bits >> 32) * <uint64_t> n) >> 32)
    cdef double coin = <double> (<uint32_t> bits) * (1.0 / 4294967296.0)
    return i if coin < prob[i] else alias[i]
