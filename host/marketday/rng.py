"""Deterministic random numbers for the market-day generator, usable in numba.

Two kinds are needed:

* sequential streams (xoshiro256**) for the order flow, where every draw
  follows the previous one: the state is a ``uint64[4]`` array that numba
  kernels mutate in place, so a day is the same bytes on every run and does
  not depend on NumPy's own generators;
* counter-based draws (a SplitMix64 hash of seed and a key) for the feed
  layer, where the jitter and the faults of packet *k* must not depend on
  how the day was cut into chunks or in which order packets are visited.

Each purpose gets its own stream, seeded from (seed, stream id), so adding
draws to one part of the generator never shifts the numbers of another.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# The generator's kernels never allocate, so they are compiled without
# numba's reference counting: with it, every call that passes a dozen arrays
# pays a hundred nanoseconds of atomic increments and decrements, which is
# most of the cost of generating one message.
kernel = njit(cache=True, _nrt=False)
inline_kernel = njit(cache=True, _nrt=False, inline="always")

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_INV_2_53 = 1.0 / 9007199254740992.0

# Stream ids: one per independent purpose.
STREAM_UNIVERSE = 1
STREAM_PROFILE = 2
STREAM_SCHEDULE = 3
STREAM_FLOW = 4


def _splitmix64_py(x: int) -> int:
    x = (x + _GOLDEN) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_state(seed: int, stream: int) -> np.ndarray:
    """A fresh xoshiro256** state for (seed, stream)."""
    x = (int(seed) * 0x100000001B3 + int(stream) * _GOLDEN) & _MASK64
    words = []
    for _ in range(4):
        x = (x + _GOLDEN) & _MASK64
        words.append(_splitmix64_py(x))
    if not any(words):  # the all-zero state is a fixed point
        words[0] = 1
    return np.array(words, dtype=np.uint64)


def feed_key(seed: int) -> np.uint64:
    """The key of the counter-based draws of one day."""
    return np.uint64(_splitmix64_py((int(seed) ^ 0x5EED_FEED_0000) & _MASK64))


@inline_kernel
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@kernel
def uniform(s):
    """Uniform in [0, 1): the next xoshiro256** output of state s."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return np.float64(result >> np.uint64(11)) * _INV_2_53


@inline_kernel
def randint(s, n):
    """Uniform integer in [0, n) for n >= 1."""
    return np.int64(uniform(s) * n)


@kernel
def exponential(s):
    return -math.log(1.0 - uniform(s))


@kernel
def normal(s):
    u1 = 1.0 - uniform(s)
    u2 = uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


@kernel
def geometric(s, mean):
    """Integer >= 0 with the given mean (geometric distribution)."""
    if mean <= 0.0:
        return np.int64(0)
    q = mean / (1.0 + mean)
    return np.int64(math.log(1.0 - uniform(s)) / math.log(q))


@inline_kernel
def keyed_uniform(key, a, b, c):
    """Uniform in [0, 1) determined by (key, a, b, c) alone."""
    z = (np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)
         + np.uint64(b) * np.uint64(0xD6E8FEB86659FD93)
         + np.uint64(c) * np.uint64(0xA0761D6478BD642F) + key)
    for _ in range(2):  # two SplitMix64 finalizer rounds, the key mixed in between
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = (z ^ (z >> np.uint64(31))) ^ key
    return np.float64(z >> np.uint64(11)) * _INV_2_53


@kernel
def fill_uniform(s, out):
    for i in range(out.shape[0]):
        out[i] = uniform(s)


@kernel
def fill_normal(s, out):
    for i in range(out.shape[0]):
        out[i] = normal(s)
