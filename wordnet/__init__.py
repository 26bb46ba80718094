"""WordNet: Hinton's 4-gram neural language model, bit-exact with the C reference."""
import os

__version__ = "0.1.0"

# The kernels split every minibatch between OpenMP threads that meet at a few
# barriers per step.  Threads that spin while they wait starve each other the
# moment another process wants a core (evaluation ran 17 times slower on a busy
# 2-core machine); sleeping costs a few microseconds per barrier.  Set before
# the first extension loads libgomp; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
