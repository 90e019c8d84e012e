"""The synthetic streaming service: determinism, calendar, statistics, and agreement with the oracle."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from argusrec.data.schema import NO_REQUEST, Role
from argusrec.data.simulator import (
    RECOMMENDATION,
    SECONDS_PER_DAY,
    CounterRNG,
    GroupedAlias,
    SimulationConfig,
    alias_table,
    build_world,
    event_day,
    feedback_probabilities,
    load_latent,
    organic_distribution,
    policy_distribution,
    replay_pool,
    sampling,
    simulate_source,
    taste,
    taste_at,
    write_latent,
)
from argusrec.data.simulator.policy import policy_tables
from argusrec.data.simulator.sampling import _draw_slates, _organic
from argusrec.data.simulator.tastes import _GenreDots

N = 60_000


def _table(config: SimulationConfig) -> pa.Table:
    return pa.Table.from_batches([b for _, b in simulate_source(config).read()])


@pytest.fixture(scope="module")
def config() -> SimulationConfig:
    return SimulationConfig(n_events=N, seed=7)


@pytest.fixture(scope="module")
def events(config: SimulationConfig) -> dict[str, np.ndarray]:
    table = _table(config)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


@pytest.fixture(scope="module")
def world(config: SimulationConfig):
    return build_world(config)


# ------------------------------------------------------------------------------------------------ config
def test_defaults_are_derived_from_n_events() -> None:
    cfg = SimulationConfig(n_events=1_500_000)
    assert cfg.n_users == 10_000
    assert cfg.n_items == 15_000
    assert cfg.n_genres == 32
    assert cfg.n_artists == 15_000 // 8
    small = SimulationConfig(n_events=1_000)
    assert small.n_users == 50 and small.n_items == 300  # floors
    assert SimulationConfig(n_events=10**9).n_items == 200_000  # ceiling


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_events": 0}, "n_events"),
        ({"n_events": 100, "days": 0}, "days"),
        ({"n_events": 100, "dim": 1}, "dim"),
        ({"n_events": 100, "seed": -1}, "seed"),
        ({"n_events": 100, "surprise": 1}, "surprise"),
        ({"n_events": 100, "feedback": {"skip_play_max": 0.9}}, "skip_play_max"),
        ({"n_events": 100, "surfaces": {"feed": {"kind": "tv", "share": 1.0}}}, "kind"),
        ({"n_events": 100, "surfaces": {"feed": {"kind": "search", "share": -1.0}}}, "share"),
        ({"n_events": 100, "n_users": 200}, "n_users"),
        ({"n_events": 100, "n_genres": 50, "n_artists": 10}, "n_genres"),
        ({"n_events": 10_000_000, "n_users": 50, "days": 1}, "n_events"),
        ({"n_events": 100, "taste": {"organic_beta": 8.0, "item_strength": 1.0}}, "organic_beta"),
        ({"n_events": 100, "devices": {"tv": {"share": 1.0, "surface_boost": {"podcast": 2.0}}}}, "surface_boost"),
    ],
)
def test_bad_config_raises_validation_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        SimulationConfig(**kwargs)
    assert field in str(err.value)


# ------------------------------------------------------------------------------------------------ output
def test_schema_columns_and_items(config: SimulationConfig) -> None:
    source = simulate_source(config)
    assert source.name == "simulator"
    assert source.schema.context == ["surface", "device"]
    assert source.schema.feedback == ["played_ratio", "skip", "like", "dislike"]
    assert source.schema.feedback_kind("played_ratio").value == "continuous"
    assert source.schema.item_features == ["artist_id", "track_length_s"]
    assert source.schema.has_request
    assert source.schema.names(Role.TRUTH) == ["true_affinity", "like_prob", "dislike_prob", "skip_prob", "propensity"]
    _, batch = next(iter(source.read()))
    assert set(source.schema.event_columns()) <= set(batch.schema.names)
    types = dict(zip(batch.schema.names, batch.schema.types, strict=True))
    assert types["user_id"] == types["item_id"] == types["timestamp"] == types["request_id"] == pa.int64()
    assert types["surface"] == types["device"] == pa.string()
    for name in ("played_ratio", "skip", "like", "dislike", "true_affinity", "like_prob", "propensity"):
        assert types[name] == pa.float32(), name
    items = source.items
    assert items is not None and items.num_rows == config.n_items
    assert items.column("item_id").to_pylist() == list(range(1, config.n_items + 1))
    assert items.schema.field("artist_id").type == pa.int64()
    lengths = items.column("track_length_s").to_numpy()
    assert lengths.min() >= 30 and lengths.max() <= 900 and 150 < np.median(lengths) < 260


def test_exact_count_and_determinism(config: SimulationConfig, events: dict[str, np.ndarray]) -> None:
    assert len(events["user_id"]) == N
    again = _table(config)  # read() regenerates from scratch
    for name, values in events.items():
        np.testing.assert_array_equal(again.column(name).to_numpy(zero_copy_only=False), values, err_msg=name)
    other = _table(SimulationConfig(n_events=N, seed=8))
    assert other.num_rows == N
    assert not np.array_equal(other.column("item_id").to_numpy(), events["item_id"])


def test_output_does_not_depend_on_chunking(config: SimulationConfig, events: dict[str, np.ndarray]) -> None:
    small = config.model_copy(update={"chunk_users": 7})
    batches = [b for _, b in simulate_source(small).read()]
    assert len(batches) == -(-config.n_users // 7)
    table = pa.Table.from_batches(batches)
    assert table.column_names == list(events)
    for name, values in events.items():  # bit for bit, floats included
        np.testing.assert_array_equal(table.column(name).to_numpy(zero_copy_only=False), values, err_msg=name)


def test_every_user_appears_with_increasing_timestamps(config: SimulationConfig, events: dict[str, np.ndarray]) -> None:
    user, ts = events["user_id"], events["timestamp"]
    assert np.all(np.diff(user) >= 0)  # users are contiguous, in id order
    assert set(np.unique(user)) == set(range(1, config.n_users + 1))
    same = user[1:] == user[:-1]
    assert np.all(np.diff(ts)[same] > 0)  # strictly increasing within a user: no duplicate events
    end = config.start_timestamp + config.days * SECONDS_PER_DAY
    assert ts.min() >= config.start_timestamp and ts.max() < end


def test_feedback_values_and_rates(events: dict[str, np.ndarray]) -> None:
    skip, like, dislike, ratio = events["skip"], events["like"], events["dislike"], events["played_ratio"]
    for col in (skip, like, dislike):
        assert set(np.unique(col)) <= {0.0, 1.0}
    assert 0.0 <= ratio.min() and ratio.max() <= 1.0
    assert np.all(ratio[skip == 1] < 0.3) and np.all(ratio[skip == 0] >= 0.7)
    assert not np.any((like == 1) & (skip == 1)) and not np.any((dislike == 1) & (skip == 0))
    assert 0.20 <= skip.mean() <= 0.40
    assert 0.02 <= like.mean() <= 0.08
    assert 0.005 <= dislike.mean() <= 0.03
    # the recorded probabilities are the ones that generated the data (law of large numbers)
    for signal in ("skip", "like", "dislike"):
        p = events[f"{signal}_prob"].astype(np.float64)
        assert abs(events[signal].mean() - p.mean()) < 4 * np.sqrt(p.mean() / N) + 1e-3, signal


def test_like_rate_increases_with_true_affinity(events: dict[str, np.ndarray]) -> None:
    order = np.argsort(events["true_affinity"])
    like = np.array([b.mean() for b in np.array_split(events["like"][order], 5)])
    skip = np.array([b.mean() for b in np.array_split(events["skip"][order], 5)])
    assert np.all(np.diff(like) > 0), like
    assert np.all(np.diff(skip) < 0), skip
    assert like[-1] > 5 * like[0]


def test_popularity_is_zipf_like(config: SimulationConfig, events: dict[str, np.ndarray]) -> None:
    counts = np.sort(np.bincount(events["item_id"], minlength=config.n_items + 1)[1:])[::-1]
    top = counts[: config.n_items // 100].sum() / N
    assert top > 0.25  # the top 1% of tracks take a large share of plays
    assert (counts > 0).mean() > 0.5  # and the long tail still gets played


def test_organic_picks_match_taste_better_than_recommendations(events: dict[str, np.ndarray]) -> None:
    aff, surface = events["true_affinity"], events["surface"]
    search = aff[surface == "search"].mean()
    recommended = aff[np.isin(surface, ["feed", "radio", "carousel"])].mean()
    assert search > recommended + 0.2


def test_requests_and_propensities(config: SimulationConfig, events: dict[str, np.ndarray]) -> None:
    rid, surface, prop = events["request_id"], events["surface"], events["propensity"]
    rec = np.isin(surface, ["feed", "radio", "carousel"])
    assert np.all(rid[~rec] == NO_REQUEST) and np.all(np.isnan(prop[~rec]))
    assert np.all(rid[rec] >= 0) and np.all((prop[rec] > 0) & (prop[rec] <= 1))
    # a request is one run of consecutive events of one user, surface and day, at most a slate long
    starts = np.flatnonzero(rec & np.r_[True, rid[1:] != rid[:-1]])
    assert len(starts) == len(np.unique(rid[rec]))  # no request id reappears later
    for s in starts[:500]:
        members = np.flatnonzero(rid == rid[s])
        assert np.all(np.diff(members) == 1)
        assert len(np.unique(events["user_id"][members])) == 1 and len(np.unique(surface[members])) == 1
        assert len(members) <= config.surfaces[str(surface[s])].slate_size
        assert len(np.unique(events["item_id"][members])) == len(members)  # no duplicates in a slate
    assert np.mean([np.sum(rid == rid[s]) > 1 for s in starts[:500]]) > 0.5  # most slates hold several items


def test_propensities_agree_with_the_policy_oracle(world, events: dict[str, np.ndarray]) -> None:
    rid = events["request_id"]
    starts = np.flatnonzero((rid >= 0) & np.r_[True, rid[1:] != rid[:-1]])
    rng = np.random.default_rng(0)
    for s in rng.choice(starts, 40, replace=False):
        members = np.flatnonzero(rid == rid[s])
        pi = policy_distribution(
            world, int(events["user_id"][s]), int(events["timestamp"][s]), str(events["surface"][s])
        )
        assert pi.sum() == pytest.approx(1.0, abs=1e-9)
        shown = events["item_id"][members] - 1
        expected = pi[shown] / (1 - np.concatenate([[0.0], np.cumsum(pi[shown])[:-1]]))
        np.testing.assert_allclose(events["propensity"][members], expected, rtol=2e-5)


def test_feedback_probabilities_agree_with_the_oracle(world, events: dict[str, np.ndarray]) -> None:
    pick = np.random.default_rng(1).choice(N, 3000, replace=False)
    got = feedback_probabilities(
        world,
        events["user_id"][pick],
        events["timestamp"][pick],
        events["item_id"][pick],
        events["surface"][pick],
        events["device"][pick],
    )
    for name in ("like_prob", "dislike_prob", "skip_prob"):
        np.testing.assert_allclose(got[name], events[name][pick], rtol=1e-4, atol=1e-6, err_msg=name)


def test_latent_round_trip_gives_the_same_oracle(config: SimulationConfig, world, events, tmp_path) -> None:
    path = write_latent(config, tmp_path / "latent")
    meta = json.loads((path / "latent.json").read_text())
    assert meta["config"]["n_events"] == N and meta["surfaces"]["radio"] == "recommendation"
    for name in ("item_vectors", "item_popularity", "artist_genre", "centroids", "user_core", "user_omega"):
        assert (path / f"{name}.npy").is_file(), name
    assert np.load(path / "user_core.npy").shape == (config.n_users, config.dim)
    loaded = load_latent(path)
    i = int(np.flatnonzero(events["surface"] == "radio")[0])
    u, t, s = int(events["user_id"][i]), int(events["timestamp"][i]), "radio"
    np.testing.assert_allclose(policy_distribution(loaded, u, t, s), policy_distribution(world, u, t, s), rtol=1e-6)
    np.testing.assert_allclose(organic_distribution(loaded, u, t), organic_distribution(world, u, t), rtol=1e-5)
    np.testing.assert_array_equal(taste(loaded, [u], [t]), taste(world, [u], [t]))
    assert [p.name for p in tmp_path.iterdir()] == ["latent"]  # the temporary directory was renamed


def test_taste_drifts_smoothly_and_the_oracle_uses_the_day(world, config: SimulationConfig) -> None:
    user = np.full(4, 3)
    t0 = config.start_timestamp + 10 * SECONDS_PER_DAY
    ts = np.array([t0, t0 + 3_600, t0 + SECONDS_PER_DAY, t0 + 40 * SECONDS_PER_DAY])
    daily = taste(world, user, ts)
    np.testing.assert_array_equal(daily[0], daily[1])  # same day, same taste
    exact = taste(world, user, ts, continuous=True)
    assert np.linalg.norm(exact[1] - exact[0]) < 0.01  # an hour moves the taste a little
    assert np.linalg.norm(daily[3] - daily[0]) > np.linalg.norm(daily[2] - daily[0])  # drift grows with time
    np.testing.assert_array_equal(event_day(world, ts), [10, 10, 11, 50])


def test_library_replays_come_from_the_users_pool(world, events: dict[str, np.ndarray]) -> None:
    user = events["user_id"]
    bounds = np.flatnonzero(np.r_[True, user[1:] != user[:-1], True])
    replays = fallbacks = 0
    for a, b in zip(bounds[:-1][:400], bounds[1:][:400], strict=True):
        pool = replay_pool(world, events["surface"][a:b], events["played_ratio"][a:b], events["like"][a:b])
        items = events["item_id"][a:b]
        for j in np.flatnonzero(events["surface"][a:b] == "library"):
            earlier = items[:j][pool[:j]]
            if len(earlier):
                assert items[j] in earlier
                replays += 1
            else:
                fallbacks += 1
    assert replays > 50 and replays > fallbacks


# ------------------------------------------------------------------------------------------------ samplers
def _chi2_ok(samples: np.ndarray, p: np.ndarray) -> bool:
    """Pearson chi-square of samples against p, bins merged to an expected count >= 10; |z| < 4."""
    n = len(samples)
    order = np.argsort(p)[::-1]
    exp, obs = p[order] * n, np.bincount(samples, minlength=len(p))[order]
    bins = np.minimum(np.cumsum(exp) // 10, (exp.sum() // 10) - 1)
    bins = np.unique(bins, return_inverse=True)[1]  # consecutive bin ids, each with expected >= 10
    e, o = np.bincount(bins, exp), np.bincount(bins, obs)
    stat, df = ((o - e) ** 2 / e).sum(), len(e) - 1
    return abs(stat - df) / np.sqrt(2 * df) < 4


def test_alias_tables_are_exact() -> None:
    w = np.random.default_rng(2).pareto(1.0, 1_000) + 1e-3
    prob, alias = alias_table(w)
    n = len(w)
    mass = prob / n + np.bincount(alias, (1 - prob) / n, minlength=n)  # what each item receives
    np.testing.assert_allclose(mass, w / w.sum(), rtol=1e-9, atol=1e-15)
    table = GroupedAlias.build(w, np.arange(n) % 3, 3)
    u = CounterRNG(0).uniform(0, np.arange(300_000))
    draws = table.sample(np.ones(300_000, dtype=np.int64), u)
    assert np.all(draws % 3 == 1)
    p = np.where(np.arange(n) % 3 == 1, w, 0.0)
    assert _chi2_ok(draws, p / p.sum())


@pytest.mark.parametrize("fast_rounds", [10, 1, 0])  # rejection only, mixed, exact fallback only
def test_organic_sampler_matches_the_oracle(world, config: SimulationConfig, monkeypatch, fast_rounds: int) -> None:
    monkeypatch.setattr(sampling, "FAST_ROUNDS", fast_rounds)
    user, day = 5, 12
    params = world.user_params(np.array([user]))
    taste_c = taste_at(params, np.array([0]), np.array([float(day)]))
    genre_aff = world.genre_affinity(_GenreDots.of(params, world.centroids).at(params, np.array([0]), [day]))
    n = 100_000
    draws = _organic(world, np.arange(n, dtype=np.int64) + 10**12, np.zeros(n, np.int64), taste_c, genre_aff)
    p = organic_distribution(world, user + 1, config.start_timestamp + day * SECONDS_PER_DAY + 100)
    assert _chi2_ok(draws, p)
    proposal_only = world.organic_weight / world.organic_weight.sum()
    assert not _chi2_ok(draws, proposal_only)  # the test has the power to see a wrong distribution


@pytest.mark.parametrize("fast_rounds", [10, 0])
def test_policy_sampler_matches_the_oracle(world, config: SimulationConfig, monkeypatch, fast_rounds: int) -> None:
    monkeypatch.setattr(sampling, "FAST_ROUNDS", fast_rounds)
    user, day, surface = 9, 20, "feed"
    code = world.surfaces.index(surface)
    assert world.surface_kind[code] == RECOMMENDATION
    params = world.user_params(np.array([user]))
    dots = _GenreDots.of(params, world.centroids)
    policy = policy_tables(world, params, dots, np.array([0]), np.array([day]), np.array([code]))
    pi = policy_distribution(world, user + 1, config.start_timestamp + day * SECONDS_PER_DAY, surface)
    everything = np.arange(world.n_items)
    np.testing.assert_allclose(policy.pi(world, everything, np.zeros_like(everything)), pi, rtol=1e-5)
    # n two-item slates of one request: slot 0 drawn from pi, slot 1 from pi without slot 0's item
    n = 60_000
    item = np.full(2 * n, -1, dtype=np.int64)
    slot, req = np.tile([0, 1], n), np.zeros(2 * n, dtype=np.int64)
    _draw_slates(world, np.arange(2 * n, dtype=np.int64) + 10**12, slot, req, policy, item, np.arange(2 * n))
    first, second = item[0::2], item[1::2]
    assert np.all(first != second)
    assert _chi2_ok(first, pi)
    assert not _chi2_ok(first, world.item_popularity)
    top = int(np.argmax(pi))  # given the top item in slot 0, slot 1 follows pi without it
    rest = np.where(everything == top, 0.0, pi) / (1 - pi[top])
    assert _chi2_ok(second[first == top], rest)


def test_custom_surfaces_work_with_the_default_devices() -> None:
    cfg = SimulationConfig(n_events=3_000, surfaces={"home": {"kind": "recommendation", "share": 1.0, "slate_size": 4}})
    assert cfg.devices["speaker"].surface_boost == {}  # boosts for absent surfaces are dropped
    table = _table(cfg)
    assert set(table.column("surface").to_pylist()) == {"home"}
    assert table.column("request_id").to_numpy().min() >= 0


def _peak_growth(n_events: int) -> tuple[int, float, float]:
    """Run the simulator in a fresh process: (rows, peak RSS growth MB while reading, output MB)."""
    script = textwrap.dedent(
        f"""
        import resource
        from argusrec.data.simulator import SimulationConfig, simulate_source
        def rss():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        source = simulate_source(SimulationConfig(n_events={n_events}, seed=0, chunk_users=1_000))
        base, rows, size = rss(), 0, 0
        for _, batch in source.read():
            rows += batch.num_rows
            size += batch.nbytes
        print(rows, rss() - base, size / 2**20)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    rows, growth, size = out.stdout.split()
    return int(rows), float(growth), float(size)


def test_memory_stays_bounded_as_the_total_grows() -> None:
    rows1, growth1, _ = _peak_growth(500_000)
    rows2, growth2, size2 = _peak_growth(2_000_000)
    assert (rows1, rows2) == (500_000, 2_000_000)
    assert growth2 < 0.7 * size2, (growth2, size2)  # the output is never held whole
    assert growth2 < 1.3 * growth1 + 20, (growth1, growth2)  # 4x the events, about the same memory
