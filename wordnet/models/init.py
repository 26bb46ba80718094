"""Weight initialisation: the C reference's stream, or numpy's.

``c-reference`` (SPEC section 4) reproduces the C program's initial weights
bit for bit: the Park-Miller "minimal standard" generator of the BSD libc
``rand()``, turned into Gaussians by Marsaglia's polar method, one stream
filling W1, then W2, then W3 (row-major), each weight N(0, 0.01²).
``gaussian`` draws the same distribution from a seeded numpy Generator.
"""
from __future__ import annotations

import math

import numpy as np

SCHEMES = ("c-reference", "gaussian")
STD = 0.01


class ParkMiller:
    """s <- 16807 s mod (2^31 - 1), from s = 1; uniform() = s / (2^31 - 1)."""

    MODULUS = 2**31 - 1

    def __init__(self, seed: int = 1):
        self.state = seed

    def uniform(self) -> float:
        self.state = 16807 * self.state % self.MODULUS
        return self.state / 2147483647.0


class PolarGaussian:
    """Marsaglia's polar method; each accepted pair yields two values."""

    def __init__(self, uniform):
        self.uniform = uniform
        self.cached = None

    def __call__(self) -> float:
        if self.cached is not None:
            value, self.cached = self.cached, None
            return value
        while True:
            v1 = 2.0 * self.uniform() - 1.0
            v2 = 2.0 * self.uniform() - 1.0
            s = v1 * v1 + v2 * v2
            if 0.0 < s < 1.0:
                break
        self.cached = v2 * math.sqrt(-2.0 * math.log(s) / s)
        return v1 * math.sqrt(-2.0 * math.log(s) / s)


def initial_weights(shapes: dict[str, tuple[int, ...]], scheme: str = "c-reference",
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The weights W1, W2, W3 (those of them in ``shapes``) drawn per ``scheme``, the
    biases b2, b3 zero.  ``shapes`` as Header.shapes()."""
    if scheme == "c-reference":
        gauss = PolarGaussian(ParkMiller().uniform)
        # fromiter: no list of Python floats, four times the array's size, on the way
        draw = lambda shape: np.fromiter((gauss() * STD + 0.0 for _ in range(math.prod(shape))),
                                         dtype=np.float64, count=math.prod(shape)).reshape(shape)
    elif scheme == "gaussian":
        rng = np.random.default_rng(seed)
        draw = lambda shape: rng.normal(0.0, STD, size=shape)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    params = {}
    for name in ("W1", "W2", "W3"):            # one continuous stream, in this order
        if name in shapes:
            params[name] = draw(shapes[name])
    for name in ("b2", "b3"):
        if name in shapes:
            params[name] = np.zeros(shapes[name])
    return {name: params[name] for name in shapes}
