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
MODULUS = 2**31 - 1          # Park-Miller: s <- 16807 s mod (2^31 - 1), from s = 1
MULTIPLIER = 16807
CHUNK = 1 << 20              # the most uniforms drawn at a time (even: pairs never split)


def c_reference_gaussians(count: int) -> np.ndarray:
    """The first ``count`` values of the C program's stream of Gaussians (SPEC section 4),
    bit for bit, a chunk of uniforms at a time: one value at a time in Python, the
    weights of a 10,000-word model took 2.7 s and those of a 50,000-word one 14 s.

    Uniforms: the Park-Miller states s_k = 16807^k mod (2^31 - 1) (from s_0 = 1), a
    chunk as the last state times the powers 16807^1..16807^CHUNK mod (2^31 - 1): the
    products stay below 2^62, exact in uint64; u = s / 2147483647.0.  Gaussians:
    Marsaglia's polar method on the uniforms in pairs (U1, U2), every pair drawn being
    one attempt; a pair with 0 < S < 1 gives V1 f then V2 f (the cached second value),
    f = sqrt(-2 ln S / S).  numpy rounds each +, -, *, / and sqrt as C does; ln is
    math.log, the C library's log (numpy's own may differ in the last bit)."""
    # about 4/pi uniforms a value (a pair is kept with probability pi/4), and a margin
    chunk = min(CHUNK, 2 * (count * 2 // 3 + 64))
    powers = np.array([MULTIPLIER], dtype=np.uint64)
    while len(powers) < chunk:                       # a^1..a^n, then a^(n+1)..a^(2n)
        powers = np.concatenate([powers, powers * powers[-1] % MODULUS])
    powers = powers[:chunk]
    out, filled, state = np.empty(count), 0, 1
    while filled < count:
        states = np.uint64(state) * powers % MODULUS
        state = int(states[-1])
        v = 2.0 * (states / 2147483647.0) - 1.0
        v1, v2 = v[0::2], v[1::2]
        S = v1 * v1 + v2 * v2
        kept = (S > 0.0) & (S < 1.0)
        v1, v2, S = v1[kept], v2[kept], S[kept]
        f = np.sqrt(-2.0 * np.fromiter(map(math.log, S.tolist()), np.float64, len(S)) / S)
        take = min(2 * len(S), count - filled)
        pairs = np.column_stack([v1 * f, v2 * f]).ravel()      # V1 f, V2 f, V1' f', ...
        out[filled:filled + take] = pairs[:take]
        filled += take
    return out


def initial_weights(shapes: dict[str, tuple[int, ...]], scheme: str = "c-reference",
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The weights W1, W2, W3 (those of them in ``shapes``) drawn per ``scheme``, the
    biases b2, b3 zero.  ``shapes`` as Header.shapes()."""
    names = [name for name in ("W1", "W2", "W3") if name in shapes]
    sizes = [math.prod(shapes[name]) for name in names]
    if scheme == "c-reference":                 # one continuous stream, in this order
        stream = c_reference_gaussians(sum(sizes)) * STD + 0.0
        drawn = np.split(stream, np.cumsum(sizes)[:-1])
    elif scheme == "gaussian":
        rng = np.random.default_rng(seed)
        drawn = [rng.normal(0.0, STD, size=size) for size in sizes]
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    params = {name: values.reshape(shapes[name]) for name, values in zip(names, drawn)}
    for name in ("b2", "b3"):
        if name in shapes:
            params[name] = np.zeros(shapes[name])
    return {name: params[name] for name in shapes}
