"""What every model shares: parameters of one dtype on a backend (``exact``: the C
reference's summation order, bit for bit; ``fast``: BLAS), the OpenMP threads of the
kernels, momentum SGD with an optional weight decay, and the checks made before
training (types of a configuration, memory).
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import numpy as np
from threadpoolctl import threadpool_limits

from wordnet._products import gemm, prepare_blas
from wordnet._updates import momentum_update
from wordnet.errors import ConfigError

BACKENDS = ("exact", "fast")
DTYPES = ("float64", "float32")
INT_MAX = 2**31 - 1
MAX_THREADS = 4                 # the default: a minibatch of 100 has work for a few threads
# The most threads a model may be given: THREADS_PER_CPU times the CPUs this process may
# run on, and never more than THREADS_CEILING.  More threads than cores only wait at
# the kernels' barriers (4× still lets one oversubscribe, e.g. to test), and each
# OpenMP thread reserves a stack: libgomp fails to create 40,000 and segfaults on
# 100,000.  256 is far beyond any gain and far below those failures.
THREADS_PER_CPU = 4
THREADS_CEILING = 256
# The momentum update of an array this small runs on one thread: skip-gram's 12,500
# weights a matrix take about 5 us, an OpenMP region's start and barrier as much and,
# on a core another process wants, far more.
PARALLEL_UPDATE = 1 << 17


def available_memory() -> int:
    """Bytes of memory the system can give without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: int) -> None:
    """Fail before training, not a minute into it, when the machine has less than
    ``needed`` bytes of memory available."""
    available = available_memory()
    if needed > available:
        raise ConfigError(f"training these sizes needs about {needed / 1e9:,.1f} GB of memory, "
                          f"and {available / 1e9:,.1f} GB are available; choose a smaller "
                          "hidden_size, embedding_size or batch_size")


class Layers:
    """What every model here shares: its parameters (``PARAMS``, of one dtype), the
    backend that computes its products, and the OpenMP threads of its kernels."""
    PARAMS: tuple[str, ...] = ()
    WEIGHTS: tuple[str, ...] = ()             # what a weight decay shrinks
    UPDATE_ORDER: tuple[str, ...] = ()        # the optimiser's (default: PARAMS reversed)

    def __init__(self, params: dict[str, np.ndarray], backend: str = "exact",
                 threads: int | None = None, dtype: str = "float64"):
        check_backend(backend, dtype)
        self.dtype = np.dtype(dtype)
        for name in self.PARAMS:
            setattr(self, name, np.array(params[name], dtype=self.dtype, order="C"))
        self.backend = backend
        self._exact = backend == "exact"
        # Every kernel splits its work among ``workers`` OpenMP threads; BLAS then runs
        # single-threaded inside each (see single_threaded_blas).  A minibatch of 100
        # leaves too little work for more than a few threads.
        self.threads = default_threads() if threads is None else check_threads(threads)
        # Threads nobody fixed (no ``threads``, no $WORDNET_THREADS) follow the load:
        # training runs on 1 to ``threads`` of them, as many as pay (training.threads).
        self.adaptive = threads is None and not threads_fixed()
        self._workers = None
        self._buffers = {}

    @property
    def workers(self) -> int:
        """The threads the kernels run on now: ``threads``, or fewer while a trainer
        finds fewer faster (the machine is busy).  The exact backend's results never
        depend on them; the fast backend's, in their last bits (BLAS's sums)."""
        return self.threads if self._workers is None else min(self._workers, self.threads)

    @workers.setter
    def workers(self, value: int | None) -> None:
        self._workers = value

    @classmethod
    def saved_shapes(cls, found: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The shapes the parameters of a checkpoint must have, given those ``found`` in
        it (read from its headers, before any data): consistent with each other;
        ValueError says why when they cannot be.  Here: as found."""
        return dict(found)

    def params(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.PARAMS}

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised array, the same one for the same name and shape: a step's
        activations without a new allocation (and its page faults) at every step."""
        key = (name, shape)
        if key not in self._buffers:
            self._buffers[key] = np.empty(shape, self.dtype)
        return self._buffers[key]

    def update_order(self) -> tuple[str, ...]:
        return self.UPDATE_ORDER or self.PARAMS[::-1]

    def single_threaded_blas(self):
        """A context in which BLAS does not start threads of its own: the model's
        ``threads`` are all it runs on (one of them alone too: BLAS's own threads on a
        minibatch's small products collapse when another process holds a core)."""
        if not self._exact:
            prepare_blas()                     # threadpoolctl only sees loaded libraries
            return threadpool_limits(1, user_api="blas")
        return nullcontext()

    def fused_step(self, batch: np.ndarray, optimizer: Momentum, config) -> float | None:
        """The minibatch's gradients and ``optimizer``'s step (its rate set) in one kernel,
        where this model has one under ``config``: the batch's summed loss before the
        step.  None: it has none, and the trainer takes train_loss, then optimizer.step."""
        return None

    def sgd_per_example(self, config) -> bool:
        """Whether ``sgd`` (word2vec's per-example SGD, for ``lr_schedule = "linear"``)
        trains this model under ``config``; if not, the minibatch step does."""
        return False

    def _gemm(self, A, B, C, trans_a=False, trans_b=False):
        gemm(A, B, C, trans_a, trans_b, self._exact, self.workers)



def check_backend(backend: str, dtype: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "float64" and backend == "exact":
        raise ConfigError(f"dtype {dtype} needs backend = fast: the exact backend is float64")


THREADS_ENV = "WORDNET_THREADS"


class ThreadsError(ConfigError):
    """A number of threads that is not a whole number within the limit: a usage error."""
    exit_code = 2


def max_threads() -> int:
    """The most threads a model may have here: THREADS_PER_CPU × the usable CPUs, at
    most THREADS_CEILING."""
    return min(THREADS_PER_CPU * _usable_cpus(), THREADS_CEILING)


def check_threads(value, what: str = "threads", limit: int | None = None,
                  text: bool = False) -> int:
    """``value`` (an int; with ``text``, a string of ASCII digits: ``"²".isdigit()`` is
    True) as a number of threads from 1 to ``limit`` (default: :func:`max_threads`);
    else :class:`ThreadsError`, naming ``what`` and the limit."""
    why = (f"{THREADS_PER_CPU} per usable CPU, at most {THREADS_CEILING}" if limit is None
           else f"at most {limit}")
    limit = max_threads() if limit is None else limit
    if isinstance(value, str) and text:
        given = value.strip()
        number = int(given) if given.isascii() and given.isdigit() and len(given) <= 9 else None
    elif isinstance(value, int) and not isinstance(value, bool):
        number, given = value, str(value)
    else:
        number, given = None, repr(value)
    if number is None or not 1 <= number <= limit:
        shown = given if len(given) <= 20 else given[:20] + "..."
        raise ThreadsError(f"{what} must be a whole number of threads from 1 to {limit} "
                           f"({why}), not {shown!r}")
    return number


def default_threads() -> int:
    """The OpenMP threads a model uses unless told otherwise: $WORDNET_THREADS (a sweep's
    parallel trials get their share of the cores through it), checked against
    :func:`max_threads`, else the CPUs this process may run on, at most MAX_THREADS."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        return check_threads(value, f"${THREADS_ENV}", text=True)
    return min(_usable_cpus(), MAX_THREADS)


def threads_fixed() -> bool:
    """Whether $WORDNET_THREADS fixes the threads of models not told their number."""
    return bool(os.environ.get(THREADS_ENV, "").strip())


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))      # the CPUs this process may run on
    except AttributeError:                       # not on every platform
        return os.cpu_count() or 1


class Momentum:
    """Momentum SGD, as the C does it: vel = m·vel + g·(1/N); θ = θ − lr·vel; with a
    weight decay λ, vel = m·vel + (g·(1/N) + λ·θ) for the model's WEIGHTS.  (The 4-gram
    trainer's fused loop, fast backend, sums the weights' terms in another order: BLAS
    adds the product dz yᵀ·(1/N) to m·vel + λ·θ; see pyx/loop.pyx.)"""

    def __init__(self, model: Layers, learning_rate: float, momentum: float, batch_size: int,
                 velocity: dict[str, np.ndarray] | None = None, weight_decay: float = 0.0):
        self.model, self.learning_rate, self.momentum = model, learning_rate, momentum
        self.weight_decay = weight_decay
        self.inv_n = 1.0 / batch_size                    # the rounded reciprocal, as in C
        self.velocity = {name: np.zeros_like(p) for name, p in model.params().items()}
        if velocity is not None:
            for name in model.PARAMS:
                self.velocity[name][...] = velocity[name]

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for name in self.model.update_order():
            theta = getattr(self.model, name)
            # each entry on its own: the threads change no bit, only the time, and
            # below PARALLEL_UPDATE entries starting them costs more than they save
            threads = self.model.workers if theta.size >= PARALLEL_UPDATE else 1
            momentum_update(theta.reshape(-1), self.velocity[name].reshape(-1),
                            grads[name].reshape(-1), self.momentum, self.learning_rate,
                            self.inv_n, threads,
                            self.weight_decay if name in self.model.WEIGHTS else 0.0)
