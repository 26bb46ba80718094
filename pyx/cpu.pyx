"""Can this CPU run the kernels?  Built without the kernels' -march (see setup.py).

The kernels may be compiled for x86-64-v3 (AVX2); loading them on an older
CPU would end the process with an illegal instruction.  ``check`` raises
ImportError first, saying how to rebuild.
"""

cdef extern from *:
    """
    #include <string.h>
    static int wordnet_cpu_runs(const char* march) {
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (strcmp(march, "x86-64-v3") == 0) {
            __builtin_cpu_init();
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                && __builtin_cpu_supports("bmi2");
        }
    #endif
        return 1;    /* the compiler's default, or a -march we cannot check: trust it */
    }
    """
    const char* MARCH "WORDNET_MARCH"
    bint cpu_runs "wordnet_cpu_runs"(const char* march) noexcept nogil


BUILT_FOR = MARCH.decode()


def check() -> None:
    """ImportError unless this CPU can run the instruction set the kernels were built for."""
    if not cpu_runs(MARCH):
        raise ImportError(
            f"wordnet's kernels were built for {BUILT_FOR} (AVX2), which this CPU lacks: "
            f"reinstall on this machine, or with WORDNET_MARCH=x86-64 for any x86-64 CPU")
