"""A user's taste over time and its projections: the closed-form taste, the logging policy's view
of it, and the fixed-order dot products that keep results independent of ``chunk_users``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from argusrec.data.simulator.world import UserParams


def taste_at(params: UserParams, rows: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Taste u(t) = core + cos(w t + phi) drift_cos + sin(w t + phi) drift_sin: (n, d) float32.

    ``rows`` (n,) index ``params``; ``t_days`` (n,) days since the start (any real number).
    """
    angle = params.omega[rows] * np.asarray(t_days, dtype=np.float64) + params.phase[rows]
    c = np.cos(angle).astype(np.float32)[:, None]
    s = np.sin(angle).astype(np.float32)[:, None]
    core = np.take(params.core, rows, axis=0)
    return core + c * np.take(params.drift_cos, rows, axis=0) + s * np.take(params.drift_sin, rows, axis=0)


def policy_view(params: UserParams, rows: np.ndarray, day: np.ndarray, lag_days: float) -> np.ndarray:
    """The logging policy's model of the user on ``day``: the taste ``lag_days`` earlier plus a fixed error.

    (n,) rows, (n,) day -> (n, d) float32.
    """
    stale = taste_at(params, rows, np.asarray(day, dtype=np.float64) - lag_days)
    return stale + np.take(params.policy_noise, rows, axis=0)


def project(u: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, d) tastes, (G, d) centroids -> (G, n) float32 dot products ``<c_g, u_k>``.

    A fixed-order loop over d instead of BLAS: BLAS picks kernels (and threads) by matrix shape, so
    the last bits of a user's result would depend on how many users share the chunk; this keeps the
    output independent of ``chunk_users``.
    """
    ut = np.ascontiguousarray(u.T, dtype=np.float32)  # (d, n)
    c = np.asarray(centroids, dtype=np.float32)
    out = c[:, :1] * ut[0]
    for k in range(1, len(ut)):  # d is small (the latent dimension)
        out += c[:, k : k + 1] * ut[k]
    return out


def rowdot(a: np.ndarray, ai: np.ndarray, b: np.ndarray, bi: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """(n,) float32 with ``out[k] = <a[ai[k]], b[bi[k]]>``; blocked so the gathered rows stay small."""
    out = np.empty(len(ai), dtype=np.float32)
    for s in range(0, len(ai), block):  # bounded number of blocks; np.take is ~10x faster than a[idx]
        x = np.take(a, ai[s : s + block], axis=0)
        y = np.take(b, bi[s : s + block], axis=0)
        out[s : s + block] = np.einsum("ij,ij->i", x, y)
    return out


@dataclass
class _GenreDots:
    """Each user's taste parts projected on the genre centroids: (G, n) float32 each.

    ``<u(t), c_g> = core_g + cos(w t + phi) cos_g + sin(w t + phi) sin_g`` costs 3 passes per
    (genre, row) instead of d, and the projections are computed once per user and chunk.
    """

    core: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    noise: np.ndarray

    @classmethod
    def of(cls, params: UserParams, centroids: np.ndarray) -> _GenreDots:
        return cls(
            *(project(getattr(params, f), centroids) for f in ("core", "drift_cos", "drift_sin", "policy_noise"))
        )

    def at(self, params: UserParams, rows: np.ndarray, t_days: np.ndarray, *, noise: bool = False) -> np.ndarray:
        """(n,) rows of ``params``, (n,) times in days -> (G, n) float32 ``<u(t), c_g>`` (+ the policy error)."""
        angle = params.omega[rows] * np.asarray(t_days, dtype=np.float64) + params.phase[rows]
        out = np.take(self.core, rows, axis=1)
        out += np.cos(angle).astype(np.float32) * np.take(self.cos, rows, axis=1)
        out += np.sin(angle).astype(np.float32) * np.take(self.sin, rows, axis=1)
        if noise:
            out += np.take(self.noise, rows, axis=1)
        return out
