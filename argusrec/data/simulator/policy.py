"""The logging policy of recommendation surfaces: pi per request (genre level, exact in O(G)) and
the recommendation events' slates, request ids and propensities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from argusrec.data.simulator.config import RECOMMENDATION
from argusrec.data.simulator.sampling import _column_cdf, _draw_slates

if TYPE_CHECKING:
    from argusrec.data.simulator.layout import _Layout
    from argusrec.data.simulator.tastes import _GenreDots
    from argusrec.data.simulator.world import UserParams, World


def _recommend(
    world: World,
    params: UserParams,
    dots: _GenreDots,
    lay: _Layout,
    kind: np.ndarray,
    item: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """Fill items, request ids and propensities of recommendation events (slates drawn from pi)."""
    rec = np.flatnonzero(kind == RECOMMENDATION)
    if not rec.size:
        return
    slate = np.array([s.slate_size for s in world.config.surfaces.values()])
    slot = lay.pos[rec] % slate[lay.surface[rec]]
    first = rec[slot == 0]  # (R,) first event of every request
    req = np.cumsum(slot == 0) - 1  # (n_rec,) request of each rec event
    policy = policy_tables(world, params, dots, lay.user[first], lay.day[first], lay.surface[first])
    _draw_slates(world, lay.ev[rec], slot, req, policy, item, rec)
    pi = policy.pi(world, item[rec], req)
    before = np.cumsum(pi) - pi
    before -= before[slot == 0][req]  # sum of pi over the slate's earlier items
    out["propensity"][rec] = pi / (1.0 - before)
    out["request_id"][rec] = lay.ev[first][req]  # global event index of the slate's first item: unique


@dataclass
class _Policy:
    """The logging policy of R requests: ``pi(i) = pop_i (eps + (1 - eps) e[g(i)] / z)``.

    ``e`` (G, R) float32 is ``exp(l_g - max_g l_g)``, ``z`` (R,) float64 the matching normaliser
    ``sum_g P_g e_g``, ``eps`` (R,) float64, ``genre_cdf`` (G, R) float32 the genre draw.
    """

    e: np.ndarray
    z: np.ndarray
    eps: np.ndarray
    genre_cdf: np.ndarray

    def pi(self, world: World, items: np.ndarray, req: np.ndarray) -> np.ndarray:
        """(n,) items and their requests -> (n,) float64 pi(item).

        float64 with z summed from the same ``e``: a slate's remaining mass ``1 - sum pi(earlier)``
        then cancels exactly instead of going negative when a few items hold almost all of pi.
        """
        r = self.e.shape[1]
        e = self.e.ravel()[world.item_genre[items] * r + req].astype(np.float64)
        eps = self.eps[req]
        return world.item_popularity[items] * (eps + (1 - eps) * e / self.z[req])

    def pi_all(self, world: World, req: np.ndarray) -> np.ndarray:
        """(P,) requests -> (V, P) float64 pi over the whole catalog (for the rare exact fallback)."""
        e = np.take(self.e, req, axis=1)[world.item_genre].astype(np.float64)  # (V, P)
        eps = self.eps[req]
        return world.item_popularity[:, None] * (eps + (1 - eps) * e / self.z[req])


def policy_tables(
    world: World, params: UserParams, dots: _GenreDots, rows: np.ndarray, day: np.ndarray, surface: np.ndarray
) -> _Policy:
    """The logging policy for R requests (``rows`` of ``params``, ``day``, ``surface`` codes).

    With ``phi_g = eps + (1 - eps) exp(l_g) / Z`` and ``pi(i) = pop_i phi_g(i)``, the epsilon branch is
    a genre draw ∝ P_g too, so one genre draw ∝ P_g phi_g and one popularity draw inside the genre
    sample pi exactly.
    """
    cfg = world.config
    eps_s = np.array([s.policy_epsilon for s in cfg.surfaces.values()])
    beta_s = np.array([s.policy_beta for s in cfg.surfaces.values()], dtype=np.float32)
    # <û, c_g> with û = u(day - lag) + noise, the same quantity as policy_view(...) @ centroids.T
    stale = np.asarray(day, dtype=np.float64) - cfg.policy.lag_days
    logits = beta_s[surface] * dots.at(params, rows, stale, noise=True)  # (G, R) float32
    e = np.exp(logits - logits.max(axis=0))
    z = np.einsum("gr,g->r", e.astype(np.float64), world.genre_popularity)  # fixed order over g
    eps = eps_s[surface]
    pop_g = world.genre_popularity.astype(np.float32)[:, None]
    phi = eps.astype(np.float32) + (1 - eps.astype(np.float32)) * (e / z.astype(np.float32))  # (G, R)
    return _Policy(e=e, z=z, eps=eps, genre_cdf=_column_cdf(phi * pop_g))
