"""A synthetic music-streaming service: the embedded default dataset and the test bed for ARGUS.

No public dataset has rich context and several feedback signals with known ground truth, so this
package generates one: deterministic by seed, vectorised numpy, in chunks of users (memory bounded by
the chunk, whatever ``n_events``). Modules, one concept each (the public API is re-exported here):

- ``config``: :class:`SimulationConfig` and its sections, the model's constants, the daily cap.
- ``rng``: :class:`CounterRNG`, counter-based randomness, and the stream of every random quantity.
- ``world``: the latent :class:`World` (catalog, users' activity and parameters) and building it.
- ``latent``: writing the latent ground truth to disk and loading it back.
- ``tastes``: a user's taste over time and its projections on genres and items.
- ``sampling``: the exact samplers (alias tables, categorical draws, rejection with exact fallback).
- ``layout``: a chunk's calendar, sessions, surfaces and devices, and its timestamps.
- ``policy``: the logging policy, its slates and propensities.
- ``events``: one chunk of events (:func:`simulate_chunk`), with feedback and library replays.
- ``oracle``: the exact oracle (taste, affinity, feedback, organic and policy distributions).
- ``source``: the simulator as an :class:`~argusrec.data.adapters.base.EventSource`.

Generative model
----------------
**Catalog.** G genres with unit centroids ``c_g`` (dimension d). Artists belong to genres (skewed
genre shares), items to artists (lognormal artist sizes). Item vector ``v_i = c_g + e_i`` with
``e_i`` = artist offset + item noise. Popularity ``pop_i ∝ rank^-alpha`` (Zipf, alpha = 1.1) over a
random permutation; quality ``q_i`` correlated 0.5 with log-popularity; track length lognormal around
200 s, whole seconds in [30, 900].

**Users.** Taste ``u(t) = core + cos(w t + phi) drift_cos + sin(w t + phi) drift_sin`` (t in days):
the core mixes two genre centroids plus noise; the drift swings toward two other genres with a period
of 20-120 days. Per user: logit biases for skip / like / dislike, a session-length habit, surface and
device preferences (logistic-normal around the global mix), an active window (some users join late
or churn) and an activity level (lognormal). Tastes are evaluated once per UTC day, at ``t = day
index`` of the event; the oracle floors timestamps the same way.

**True affinity** (bounded): ``a(u,t,i) = A_g tanh(<u,c_g>/s_g) + A_e tanh(<u,e_i>/s_e) + q_i``.
The split into a genre part and an item part is what makes exact sampling cheap (below).

**Calendar.** A user listens on a random subset of the days of their window (about
``events_per_day`` events per active day); events are spread over those days by systematic sampling
of random day weights (weekday rhythm, lognormal noise), capped so that no day holds more events than
fit in it with every track played in full. Within a day, events form sessions (a new session with
probability 1/mean_length per event); a session has one surface and one device (devices tilt the
surface mix: speakers favour radio). Sessions start by an hour-of-day rhythm; inside a session,
timestamps advance by the played seconds of each track; sessions are pushed apart (at least
``min_session_gap_s``) and kept inside their day, so within a user timestamps strictly increase.

**Organic surfaces.** ``search``: ``P(i) ∝ pop_i^gamma exp(beta a(u,t,i))``, sampled exactly by
rejection: the proposal picks genre g ∝ ``W_g exp(beta A_g tanh(<u,c_g>/s_g))`` (``W_g`` = the genre's
sum of ``pop^gamma exp(beta q)``), then an item of g ∝ ``pop^gamma exp(beta q)`` (alias tables), and
accepts with ``exp(beta A_e (tanh(<u,e_i>/s_e) - 1)) <= 1``. ``library``: replays an item drawn
uniformly from the user's earlier *pool* events — positive events (liked or played >= 80%) from other
surfaces, plus the user's first positive event; with an empty pool it falls back to a search pick.

**Recommendation surfaces** (``feed``, ``radio``, ``carousel``): the logging policy knows a stale,
noisy taste ``û = u(t - lag) + eta_u``, and only at genre level:
``pi(i) = eps pop_i + (1 - eps) pop_i exp(beta_s <û, c_g(i)>) / Z`` with Z a sum over genres, so pi is
exact in O(G). A request shows a slate of ``slate_size`` items drawn from pi without replacement
(truncated where the session ends); ``propensity`` of the k-th item is
``pi(i) / (1 - sum of pi over the slate's earlier items)``; ``request_id`` is shared by the slate.

**Feedback.** ``skip ~ Bern(sigmoid(b_skip - k a + surface + device + user))``; a played track is
liked with ``sigmoid(b_like + k a + surface + device + user)``, a skipped one disliked with
``sigmoid(b_dislike - k a + user)``; played ratio: skipped in [0, 0.3), else 1.0 with
``sigmoid(b_full + k a)`` or uniform in [0.7, 1). Truth columns hold the marginals: ``skip_prob``,
``like_prob = (1 - skip) like|play``, ``dislike_prob = skip dislike|skip``. Default rates: skip
~27%, like ~5%, dislike ~1.2%.

"Exact" means exact in real arithmetic; the simulator computes in float32 with 24-bit uniforms for
Bernoulli and genre draws, so recorded probabilities and the oracle agree to about 1e-6 relative.
Randomness is addressed by what it belongs to (see :class:`~argusrec.data.simulator.rng.CounterRNG`),
so the output is bit-identical for any ``chunk_users``. Default sizes when only ``n_events`` is given:
``n_users = max(50, n_events / 150)``, ``n_items = clip(n_events / 100, 300, 200_000)``,
``n_genres = clip(n_items / 25, 2, 32)``, ``n_artists = max(n_genres, n_items / 8)``, chunks of about
400k events.
"""

from argusrec.data.simulator.config import (
    KINDS,
    LIBRARY,
    POSITIVE_PLAY_RATIO,
    RECOMMENDATION,
    SEARCH,
    SECONDS_PER_DAY,
    ActivityConfig,
    CatalogConfig,
    DeviceConfig,
    FeedbackConfig,
    PolicyConfig,
    SimulationConfig,
    SurfaceConfig,
    TasteConfig,
    daily_capacity,
)
from argusrec.data.simulator.events import simulate_chunk
from argusrec.data.simulator.latent import load_latent, write_latent
from argusrec.data.simulator.oracle import (
    affinity,
    event_day,
    feedback_probabilities,
    organic_distribution,
    policy_distribution,
    replay_pool,
    taste,
)
from argusrec.data.simulator.rng import CounterRNG
from argusrec.data.simulator.sampling import GroupedAlias, alias_table
from argusrec.data.simulator.source import SOURCE_NAME, simulate_schema, simulate_source
from argusrec.data.simulator.tastes import policy_view, taste_at
from argusrec.data.simulator.world import UserParams, World, build_world

__all__ = [
    "KINDS",
    "LIBRARY",
    "POSITIVE_PLAY_RATIO",
    "RECOMMENDATION",
    "SEARCH",
    "SECONDS_PER_DAY",
    "SOURCE_NAME",
    "ActivityConfig",
    "CatalogConfig",
    "CounterRNG",
    "DeviceConfig",
    "FeedbackConfig",
    "GroupedAlias",
    "PolicyConfig",
    "SimulationConfig",
    "SurfaceConfig",
    "TasteConfig",
    "UserParams",
    "World",
    "affinity",
    "alias_table",
    "build_world",
    "daily_capacity",
    "event_day",
    "feedback_probabilities",
    "load_latent",
    "organic_distribution",
    "policy_distribution",
    "policy_view",
    "replay_pool",
    "simulate_chunk",
    "simulate_schema",
    "simulate_source",
    "taste",
    "taste_at",
    "write_latent",
]
