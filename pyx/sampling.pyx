"""Drawing random words from a fixed distribution p over V words, by table.

Two samplers, their tables built once per run (wordnet/models/sampler.py) instead of
at every draw:

  * the cumulative table: cdf = cumsum(p) / cumsum(p)[-1]; a uniform u in [0, 1)
    gives the first index i with u < cdf[i] (a binary search).  This is what numpy's
    ``Generator.choice(V, size, p=p)`` computes after checking p (cumsum, normalise
    by the last element, ``random(size)``, ``searchsorted(cdf, u, side="right")``):
    the same uniforms give the same words, so it replaces ``choice`` with the same
    results, without choice's checks of p at every call.
  * the alias table (Walker, Vose's construction): one 64-bit random gives a column
    i (its high 32 bits times V, shifted) and a coin (its low 32 bits) that keeps i
    with probability prob[i], else takes alias[i].  O(1) a draw, for the per-pair
    SGD (pyx/sgd.pyx), with the generator below.

The generator is splitmix64 (Steele, Lea and Flood 2014): a 64-bit state advanced by
a constant and mixed; one state per thread.
"""
import numpy as np
from libc.stdint cimport uint64_t


cdef void cdf_draw_block(const double* cdf, int n, const double* u, int* out,
                         Py_ssize_t count) noexcept nogil:
    """out[i] = the word of u[i]; a u of 1 or more (none from random()) gives n - 1."""
    cdef Py_ssize_t i
    cdef int w
    for i in range(count):
        w = cdf_index(cdf, n, u[i])
        out[i] = w if w < n else n - 1


# -- Python wrappers ------------------------------------------------------------------

def cdf_draw(const double[::1] cdf, const double[::1] u, int[::1] out):
    """out[i] = the word of uniform u[i] under the cumulative table ``cdf``
    (numpy's ``searchsorted(cdf, u, side="right")``, clipped to V - 1 for safety)."""
    cdef Py_ssize_t count = u.shape[0], i
    cdef int n = cdf.shape[0]
    if out.shape[0] != count or n == 0:
        raise ValueError("cdf_draw: out must have as many entries as u, cdf at least one")
    if count == 0:
        return
    with nogil:
        cdf_draw_block(&cdf[0], n, &u[0], &out[0], count)


def alias_draw_many(const double[::1] prob, const int[::1] alias, uint64_t seed,
                    int[::1] out):
    """out filled with words drawn from the alias table, splitmix64 seeded by ``seed``."""
    cdef int n = prob.shape[0]
    cdef Py_ssize_t i
    cdef uint64_t state = seed
    if alias.shape[0] != n or n == 0:
        raise ValueError("alias_draw_many: prob and alias must have the same length, > 0")
    with nogil:
        for i in range(out.shape[0]):
            out[i] = alias_draw(&prob[0], &alias[0], n, splitmix64(&state))


def splitmix64_next(uint64_t state, int count):
    """The next ``count`` outputs of splitmix64 from ``state`` (for the tests)."""
    out = []
    for _ in range(count):
        out.append(splitmix64(&state))
    return out
