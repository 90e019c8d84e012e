"""Counter-based randomness: :class:`CounterRNG` and the stream id of every random quantity.

Everything per user, per day and per event is a stateless hash of ``(seed, stream, index)``, so a
user's data does not depend on which chunk of users it is generated with.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array; a bijection with full avalanche."""
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCD
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53
    x ^= x >> 33
    return x


def _fmix64_int(x: int) -> int:
    x &= _MASK64
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK64
    return x ^ (x >> 33)


class CounterRNG:
    """Stateless random numbers: ``bits(stream, i) = fmix64(i * golden + key(seed, stream))``.

    Each (stream, index) pair gets its own value, so a random quantity is addressed by what it belongs
    to (user, event, rejection round) instead of by how many numbers were drawn before it. This is what
    makes the output independent of the chunking and lets the oracle regenerate any user on demand.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _key(self, stream: int) -> int:
        return _fmix64_int(_fmix64_int(self.seed * _GOLDEN + 1) ^ (stream * 0xD1B54A32D192ED03))

    def bits(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
        """(n,) non-negative int -> (n,) uint64 random bits; ``sub`` (n,) adds a second address
        (e.g. the attempt number of a rejection sampler)."""
        x = np.asarray(index).astype(np.uint64)
        x *= _GOLDEN
        if sub is not None:
            x += np.asarray(sub).astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        x += np.uint64(self._key(stream))
        return _fmix64(x)

    def uniform(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
        """(n,) -> (n,) float64 uniform on [0, 1) with 53 random bits."""
        return (self.bits(stream, index, sub) >> 11).astype(np.float64) * 2.0**-53

    def uniform24(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n,) -> two independent (n,) float32 uniforms on [0, 1), 24 bits each (exact in float32)."""
        b = self.bits(stream, index, sub)
        hi = (b >> 40).astype(np.float32) * np.float32(2.0**-24)
        lo = (b & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)
        return hi, lo

    def normal(self, stream: int, index: np.ndarray) -> np.ndarray:
        """(n,) -> (n,) float64 standard normal (Box-Muller on the two 32-bit halves of one hash)."""
        b = self.bits(stream, index)
        u1 = ((b >> 32).astype(np.float64) + 1.0) * 2.0**-32  # (0, 1]: log is finite
        u2 = (b & 0xFFFFFFFF).astype(np.float64) * 2.0**-32
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def normals(self, stream: int, rows: np.ndarray, k: int) -> np.ndarray:
        """(n,) row ids -> (n, k) float64 standard normals, element (r, j) addressed by ``r * k + j``."""
        index = np.asarray(rows, dtype=np.int64)[:, None] * k + np.arange(k)
        return self.normal(stream, index.ravel()).reshape(len(rows), k)


# Streams: one per random quantity; rejection samplers address attempts with ``sub``.
S_ACTIVITY, S_JOIN, S_JOIN_DAY, S_CHURN, S_CHURN_DAY = 1, 2, 3, 4, 5
S_CORE, S_GENRES, S_DRIFT, S_POLICY_NOISE, S_BIASES, S_PREFS = 10, 11, 12, 13, 14, 15
S_DAY_WEIGHT, S_SYSTEMATIC, S_SESSION, S_DEVICE, S_SURFACE, S_OFFSET, S_DAY_PICK = 20, 21, 22, 23, 24, 25, 26
S_FEEDBACK, S_PLAY, S_REPLAY = 30, 31, 32
S_ORGANIC, S_POLICY = 40, 50  # each uses base, base + 1, base + 2; addressed by (event, attempt)
