"""WordNet: Hinton's 4-gram neural language model, bit-exact with the C reference."""
import os

__version__ = "0.1.0"

# The kernels split every minibatch between OpenMP threads that meet at two
# barriers per step.  Threads that spin without limit while they wait starve
# each other the moment another process wants a core (training ran 17 times
# slower on a busy 2-core machine); threads that sleep at once pay a wake-up per
# barrier (30 % slower on an idle one).  A short spin, then sleep, keeps most of
# both.  Set before the first extension loads libgomp; the user's settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from wordnet._cpu import check as _check_cpu  # before any kernel: they may need AVX2

_check_cpu()
