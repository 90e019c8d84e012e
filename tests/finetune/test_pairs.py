"""Impressions, grades, groups and weighted pairs on hand-built histories (argusrec.finetune.pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from argusrec.data.schema import DatasetSchema
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.finetune.pairs import GradeRule, PairConfig, build_pairs, grade_events, impression_rows

NAN = float("nan")
FEEDBACK = {"like": "binary", "dislike": "binary", "skip": "binary"}


def _store(request: bool = True) -> SequenceStore:
    """Two users; request 10 appears for both (request ids are grouped per user).

    user 0: 0 organic | 1-3 request 10: like, skip, listen | 4 organic | 5-6 request 11: skip, skip
    user 1: 7-8 request 10: dislike, listen | 9-10 request 12: no feedback observed, like
    """
    rows = [
        # request, ts, surface, like, dislike, skip
        (-1, 0, 1, 0, 0, 0),
        (10, 100, 2, 1, 0, 0),
        (10, 110, 2, 0, 0, 1),
        (10, 120, 2, 0, 0, 0),
        (-1, 130, 1, 1, 0, 0),
        (11, 200, 2, 0, 0, 1),
        (11, 210, 2, 0, 0, 1),
        (10, 50, 2, 0, 1, 1),
        (10, 60, 2, 0, 0, 0),
        (12, 70, 2, NAN, NAN, NAN),
        (12, 80, 2, 1, 0, 0),
    ]
    arr = np.array(rows, dtype=np.float64)
    schema = DatasetSchema.of(context=["surface"], feedback=FEEDBACK, request=request)
    columns = {
        "item_id": np.arange(1, len(rows) + 1),
        "timestamp": arr[:, 1].astype(np.int64),
        "surface": arr[:, 2].astype(np.int32),
        "like": arr[:, 3],
        "dislike": arr[:, 4],
        "skip": arr[:, 5],
    }
    if request:
        columns["request_id"] = arr[:, 0].astype(np.int64)
    store = SequenceStore.from_arrays(lengths=np.array([7, 4]), columns=columns, schema=schema)
    store.manifest = {"vocab": {"surface": ["organic", "feed"]}}
    return store


def _pairs_set(p) -> set[tuple[int, int, float]]:
    return {(int(p.rows[b]), int(p.rows[w]), float(x)) for b, w, x in zip(p.better, p.worse, p.weight, strict=True)}


def test_grades_first_rule_wins_and_unobserved_stays_ungraded() -> None:
    store = _store()
    grades = grade_events(store, np.arange(11), PairConfig.music())
    names = PairConfig.music().grade_names  # like, listen, skip, dislike
    expected = ["listen", "like", "skip", "listen", "like", "skip", "skip", "dislike", "listen", None, "like"]
    assert [names[g] if g >= 0 else None for g in grades] == expected  # row 7: dislike wins over skip (rule order)


def test_request_pairs_and_weights() -> None:
    p = build_pairs(_store(), PairConfig.music())
    # user 0 request 10: like>skip 3, like>listen 1, listen>skip 1; user 1 request 10: listen>dislike 2.
    # Request 11 (skip, skip) has no differing feedback; request 12 has one graded impression.
    assert _pairs_set(p) == {(1, 2, 3.0), (1, 3, 1.0), (3, 2, 1.0), (8, 7, 2.0)}
    assert p.n_impressions == 5 and p.n_groups == 2 and p.n_pairs == 4
    assert p.rows.tolist() == [1, 2, 3, 7, 8]
    assert p.group.tolist() == [0, 0, 0, 1, 1]
    assert p.group_user.tolist() == [0, 1]
    assert p.group_time.tolist() == [100, 50]  # the request's first impression
    assert p.group_first.tolist() == [1, 7]
    assert p.stats["pairs/like>skip"] == 1 and p.stats["candidate_impressions"] == 9
    assert p.stats["graded_impressions"] == 8  # row 9 has no observed feedback


def test_weight_table_and_level_gap_default() -> None:
    # like>skip weighs more than listen>skip (the article's example) in the music default
    w = PairConfig.music().weight_matrix()
    names = PairConfig.music().grade_names
    assert w[names.index("like"), names.index("skip")] > w[names.index("listen"), names.index("skip")]
    assert w[names.index("skip"), names.index("like")] == 0  # never "worse > better"
    gap = PairConfig.music(weights={}, default_weight=None)
    p = build_pairs(_store(), gap)
    assert _pairs_set(p) == {(1, 2, 2.0), (1, 3, 1.0), (3, 2, 1.0), (8, 7, 2.0)}  # level differences
    zero = PairConfig.music(weights={"like>skip": 0.0})
    assert (1, 2, 3.0) not in _pairs_set(build_pairs(_store(), zero))  # weight 0 = no pair


def test_range_restriction_keeps_history_out_of_pairs() -> None:
    store = _store()
    lo = np.array([2, 7])
    hi = np.array([7, 9])
    rows = impression_rows(store, PairConfig.music(), lo, hi)
    assert rows.tolist() == [2, 3, 5, 6, 7, 8]
    p = build_pairs(store, PairConfig.music(), lo, hi)
    assert _pairs_set(p) == {(3, 2, 1.0), (8, 7, 2.0)}
    assert p.group_time.tolist() == [110, 50]  # the first impression inside the range


def test_window_grouping_and_context_filter() -> None:
    store = _store(request=False)
    by_name = PairConfig.music(group_by="window", window_s=150, impression_context={"surface": ("feed",)})
    by_code = PairConfig.music(group_by="window", window_s=150, impression_context={"surface": (2,)})
    p = build_pairs(store, by_name)
    assert _pairs_set(p) == _pairs_set(build_pairs(store, by_code))
    # user 0 windows [0, 150): rows 1-3; [150, 300): rows 5, 6; user 1 [0, 150): rows 7, 8, 10 (9 ungraded)
    assert _pairs_set(p) == {(1, 2, 3.0), (1, 3, 1.0), (3, 2, 1.0), (8, 7, 2.0), (10, 7, 4.0), (10, 8, 1.0)}
    everything = build_pairs(store, PairConfig.music(window_s=150))  # auto = window; no filter: every event
    assert (0, 2, 1.0) in _pairs_set(everything)  # the organic listen at t=0 pairs with the skip at t=110
    with pytest.raises(ArgusrecError, match="no request_id column"):
        build_pairs(store, PairConfig.music(group_by="request"))
    with pytest.raises(ArgusrecError, match="unknown value 'radio'"):
        build_pairs(store, PairConfig.music(impression_context={"surface": ("radio",)}))


def test_no_impressions_refused_with_what_the_data_needs() -> None:
    store = _store()
    store.columns["request_id"] = np.full(11, -1, dtype=np.int64)
    with pytest.raises(ArgusrecError, match=r"no impressions.*request_id.*impression_context"):
        build_pairs(store, PairConfig.music())


def test_no_pairs_refused_with_grade_counts() -> None:
    store = _store()
    for s in ("like", "dislike"):
        store.columns[s] = np.zeros(11, dtype=np.float32)
    store.columns["skip"] = np.ones(11, dtype=np.float32)  # every impression skipped: nothing to rank
    with pytest.raises(ArgusrecError, match=r"no ranking pairs: 9 graded impressions in 4 requests \(.*skip: 9"):
        build_pairs(store, PairConfig.music())


def test_binary_preset_and_config_validation() -> None:
    p = build_pairs(_store(), PairConfig.binary("like"))
    assert _pairs_set(p) == {(1, 2, 1.0), (1, 3, 1.0)}  # row 9 (no like observed) is ungraded: no pair with 10
    with pytest.raises(ValueError, match="must have a higher level"):
        PairConfig.music(weights={"skip>like": 1.0})
    with pytest.raises(ValueError, match="unknown grades"):
        PairConfig(grades={"a": 1, "b": 0}, rules=(GradeRule(grade="c", signal="like"),))
    with pytest.raises(ArgusrecError, match="not feedback columns"):
        build_pairs(_store(), PairConfig.binary("played_ratio"))
