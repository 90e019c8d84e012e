"""Training pairs for ARGUS fine-tuning: impressions, feedback grades and weighted pairs (reference/ARGUS.md §5).

Fine-tuning teaches a two-tower model the final ranker's task, **pairwise ranking**: two items shown to a user
"next to each other" that got different feedback should be scored in the order of the feedback.

**Impressions.** An impression is an event of the history that happened in a recommendation context (an item the
service showed). In the store (``data/schema.py``) such events carry a ``request_id`` (role ``request``, -1 =
none): the simulator writes one per recommendation slate (surfaces ``feed`` / ``radio`` / ``carousel``) and -1
for organic events (``library``, ``search``). Data without a ``request_id`` column (Yambda: context
``is_organic``) names its recommendation contexts instead: ``impression_context={"is_organic": ["0"]}`` keeps the
events whose context value (by name in the store's vocabulary, or by code) is listed. Every event of the data is
an impression when neither is available (``group_by="window"`` and no filter). With a ``request_id`` the filter,
if given, also applies (both must hold).

**Groups.** Impressions are compared only inside a group of items shown together:

* ``group_by="request"`` — the same ``(user, request_id)``;
* ``group_by="window"`` — the same user and the same window ``floor(timestamp / window_s)`` **[our choice]**
  (fixed, epoch-aligned windows: deterministic and cheap; ARGUS.md §5 leaves the window open);
* ``group_by="auto"`` (default) — request when the schema has a ``request_id`` column, else window.

A group's **time** ``t_g`` is the timestamp of its first impression (the request's time) and its **first row**
``r_g`` is that impression's CSR row. Every impression of the group is scored with the same user state: the state
of the last event with ``timestamp <= t_g - lag`` **and** row ``< r_g`` (:mod:`argusrec.finetune.one_pass`), so
no impression ever sees the feedback of its own request, even with ``lag = 0``.

**Grades.** The feedback signals of an event become one categorical *grade* with a *level* (higher = better):
``rules`` are tried in order and the first whose test holds (``signal op value``; a NaN signal never holds) gives
the grade; an event no rule matches gets ``default_grade`` — unless none of the rules' signals is observed for it
(all NaN), or ``default_grade`` is None: it is then *ungraded* and forms no pair. The music default
(:meth:`PairConfig.music`, the simulator's signals) is ``like`` (3) > ``listen`` (2, the default) > ``skip`` (1) >
``dislike`` (0).

**Pairs and weights.** Within a group every two graded impressions with different levels form a pair
``(better, worse)``; its weight is ``weights["better>worse"]`` (e.g. ``like>skip`` 3 > ``listen>skip`` 1, the
article's example), ``default_weight`` for pairs the table does not name (``None``: the level difference). Pairs
of weight 0 are dropped. Impressions in no pair (equal feedback, ungraded, alone in their group) are dropped too.

Letters (docs/notation.md): U users, E events; here I impressions (in pairs), G groups, P pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from argusrec.config import GradeRule, PairConfig
from argusrec.data.batching import concat_aranges
from argusrec.data.schema import NO_REQUEST, REQUEST_ID, TIMESTAMP
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError

__all__ = ["GradeRule", "PairConfig", "Pairs", "build_pairs", "grade_events", "impression_rows"]

_OPS = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
}


@dataclass(frozen=True, eq=False)  # arrays have no single truth value for ==
class Pairs:
    """I impressions in G groups and the P pairs among them.

    Attributes:
        rows: (I,) int64 CSR rows of the impressions, sorted by (group, row).
        group: (I,) int64 group of each impression (0..G-1; groups sorted by their first row).
        grade: (I,) int64 grade index of each impression (into ``grade_names``).
        group_user: (G,) int64 user of each group.
        group_time: (G,) int64 ``t_g``, the timestamp of the group's first impression.
        group_first: (G,) int64 ``r_g``, the CSR row of the group's first impression.
        better, worse: (P,) int64 indices into the impressions of each pair's better and worse item.
        weight: (P,) float32 pair weights (> 0).
        grade_names: the grades, in index order.
        stats: counts for logs and reports (candidate rows, graded, groups, pairs per grade combination...).
    """

    rows: np.ndarray
    group: np.ndarray
    grade: np.ndarray
    group_user: np.ndarray
    group_time: np.ndarray
    group_first: np.ndarray
    better: np.ndarray
    worse: np.ndarray
    weight: np.ndarray
    grade_names: tuple[str, ...]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_impressions(self) -> int:
        return len(self.rows)

    @property
    def n_groups(self) -> int:
        return len(self.group_time)

    @property
    def n_pairs(self) -> int:
        return len(self.better)


# ---------------------------------------------------------------------------------------------- steps
def resolve_group_by(store: SequenceStore, config: PairConfig) -> Literal["request", "window"]:
    """``"request"`` or ``"window"`` for this store (``auto``: request when the schema has ``request_id``)."""
    if config.group_by == "auto":
        return "request" if store.schema.has_request else "window"
    if config.group_by == "request" and not store.schema.has_request:
        raise ArgusrecError(
            "pairs.group_by=request but the dataset has no request_id column; use group_by=window (impressions "
            "in the same time window) or prepare the data with a request column"
        )
    return config.group_by


def _row_users(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(R,) CSR rows -> (R,) int64 user of each row."""
    return np.searchsorted(offsets, rows, side="right").astype(np.int64) - 1


def impression_rows(
    store: SequenceStore,
    config: PairConfig,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """(R,) int64 sorted CSR rows of the events in recommendation contexts (module docstring), within the user
    ranges ``lo[u]:hi[u]`` ((U,) each; default every row)."""
    group_by = resolve_group_by(store, config)
    n = store.n_events
    if group_by == "request":
        rows = np.flatnonzero(np.asarray(store[REQUEST_ID]) != NO_REQUEST).astype(np.int64)
    else:
        rows = np.arange(n, dtype=np.int64)
    for column, values in config.impression_context.items():
        if column not in store.schema.context:
            raise ArgusrecError(
                f"pairs.impression_context names {column!r}, not a context column; context columns: "
                f"{store.schema.context}"
            )
        codes = _context_codes(store, column, values)
        rows = rows[np.isin(np.asarray(store[column])[rows], codes)]
    if lo is not None or hi is not None:
        offsets = store.offsets
        lo = offsets[:-1] if lo is None else np.asarray(lo, dtype=np.int64)
        hi = offsets[1:] if hi is None else np.asarray(hi, dtype=np.int64)
        user = _row_users(offsets, rows)
        rows = rows[(rows >= lo[user]) & (rows < hi[user])]
    return rows


def _context_codes(store: SequenceStore, column: str, values: Sequence[str | int]) -> np.ndarray:
    """Context values (names from the store's vocabulary, or int codes) -> (k,) int32 codes."""
    vocab = store.vocab(column)
    codes = []
    for v in values:
        if isinstance(v, str) and v in vocab:
            codes.append(vocab.index(v) + 1)  # code k stands for vocab[k - 1]
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 1 and (not vocab or v <= len(vocab)):
            codes.append(v)
        else:
            raise ArgusrecError(f"pairs.impression_context[{column!r}]: unknown value {v!r}; values: {vocab}")
    return np.asarray(codes, dtype=np.int32)


def grade_events(store: SequenceStore, rows: np.ndarray, config: PairConfig) -> np.ndarray:
    """(R,) CSR rows -> (R,) int64 grade index (into ``config.grade_names``), -1 = ungraded (module docstring)."""
    names = config.grade_names
    signals = list(dict.fromkeys(r.signal for r in config.rules))
    missing = [s for s in signals if s not in store.schema.feedback]
    if missing:
        raise ArgusrecError(
            f"pairs.rules read {missing}, which are not feedback columns of the dataset; feedback columns: "
            f"{store.schema.feedback}"
        )
    values = {s: np.asarray(store[s])[rows].astype(np.float64) for s in signals}  # s -> (R,)
    grade = np.full(len(rows), -1, dtype=np.int64)
    for rule in config.rules:
        hit = (grade < 0) & _OPS[rule.op](values[rule.signal], rule.value)  # NaN compares False
        grade[hit] = names.index(rule.grade)
    if config.default_grade is not None:
        observed = np.zeros(len(rows), dtype=bool)
        for v in values.values():
            observed |= ~np.isnan(v)
        grade[(grade < 0) & observed] = names.index(config.default_grade)
    return grade


def _groups(store: SequenceStore, rows: np.ndarray, group_by: str, window_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted rows (R,) -> (order (R,), group (R,)): ``rows[order]`` sorted by (group, row), and the group index
    of each of them, groups numbered by their first row."""
    user = _row_users(store.offsets, rows)
    if group_by == "request":
        key = np.asarray(store[REQUEST_ID])[rows].astype(np.int64)
    else:
        key = np.asarray(store[TIMESTAMP])[rows].astype(np.int64) // window_s
    order = np.lexsort((rows, key, user))  # (R,) by user, key, row
    u, k = user[order], key[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (k[1:] != k[:-1])
    raw = np.cumsum(new) - 1  # (R,) group index in (user, key) order
    # renumber groups by their first row (= by user, then time: CSR rows are time-ordered within a user)
    first = rows[order][new]  # (G,)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    group = rank[raw]
    final = np.lexsort((rows[order], group))
    return order[final], group[final]


def build_pairs(
    store: SequenceStore,
    config: PairConfig,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> Pairs:
    """Impressions, groups and weighted pairs of the rows ``lo[u]:hi[u]`` of every user (module docstring).

    Args:
        store: the sequence store.
        config: impressions, grades, groups and weights.
        lo, hi: (U,) int64 row range of each user whose impressions count (e.g. ``split.train_ranges()`` or
            ``split.target_range("test")``); default every row. The history before ``lo`` stays usable as context.

    Raises:
        ArgusrecError: no impressions, or no two impressions of a group with different grades (the message says
            what the data needs).
    """
    group_by = resolve_group_by(store, config)
    rows = impression_rows(store, config, lo, hi)
    stats: dict[str, int] = {"candidate_impressions": len(rows)}
    what = (
        "events with a request_id (recommendation slates; -1 marks organic events)"
        if group_by == "request"
        else "events in recommendation contexts (pairs.impression_context) grouped by time window"
    )
    if len(rows) == 0:
        raise ArgusrecError(
            f"no impressions to form ranking pairs from: fine-tuning needs {what}"
            + (" inside the selected period" if lo is not None or hi is not None else "")
            + "; the dataset has none. Data without a request_id column can name its recommendation contexts "
            "with pairs.impression_context (e.g. is_organic: ['0']) and pairs.group_by=window"
        )
    order, group = _groups(store, rows, group_by, config.window_s)
    rows = rows[order]  # (R,) by (group, row)
    ts = np.asarray(store[TIMESTAMP])
    new = np.ones(len(rows), dtype=bool)
    new[1:] = group[1:] != group[:-1]
    first_all = rows[new]  # (G0,) first row of every group, all its impressions counted (the request's time)

    grade = grade_events(store, rows, config)  # (R,)
    graded = grade >= 0
    stats["graded_impressions"] = int(graded.sum())
    stats["groups"] = len(first_all)
    rows, group, grade = rows[graded], group[graded], grade[graded]

    # every two graded impressions of a group: i < j in (group, row) order
    n = len(rows)
    start = np.ones(n, dtype=bool)
    start[1:] = group[1:] != group[:-1]
    group_end = np.flatnonzero(np.append(start[1:], True)) + 1  # (G',) exclusive end of each run
    run = np.cumsum(start) - 1  # (R',) run of each impression
    partners = group_end[run] - np.arange(n) - 1  # (R',) later impressions of the same group
    a = np.repeat(np.arange(n, dtype=np.int64), partners)
    b = concat_aranges(np.arange(n, dtype=np.int64) + 1, partners)
    level = np.array([config.grades[g] for g in config.grade_names], dtype=np.float64)[grade]  # (R',)
    a_up = level[a] > level[b]
    better = np.where(a_up, a, b)
    worse = np.where(a_up, b, a)
    differ = level[a] != level[b]
    weight = config.weight_matrix()[grade[better], grade[worse]]
    keep = differ & (weight > 0)
    better, worse, weight = better[keep], worse[keep], weight[keep]
    if len(better) == 0:
        counts = np.bincount(grade, minlength=len(config.grade_names))
        seen = ", ".join(f"{g}: {int(c)}" for g, c in zip(config.grade_names, counts, strict=True))
        raise ArgusrecError(
            f"no ranking pairs: {stats['graded_impressions']} graded impressions in {stats['groups']} "
            f"{'requests' if group_by == 'request' else 'time windows'} ({seen}), but no two in the same "
            f"{'request' if group_by == 'request' else 'window'} got grades of different levels with a positive "
            f"weight; fine-tuning needs {what} whose feedback differs within a group "
            f"(check pairs.rules / pairs.weights{'' if group_by == 'request' else ' or a longer pairs.window_s'})"
        )

    # keep the impressions and groups that are in a pair; renumber
    used = np.zeros(n, dtype=bool)
    used[better] = True
    used[worse] = True
    new_index = np.cumsum(used) - 1
    better, worse = new_index[better], new_index[worse]
    rows, group, grade = rows[used], group[used], grade[used]
    kept_groups, group = np.unique(group, return_inverse=True)
    group_first = first_all[kept_groups]
    k = len(config.grade_names)
    combo = np.bincount(grade[better] * k + grade[worse], minlength=k * k)
    for i, j in zip(*np.nonzero(combo.reshape(k, k)), strict=True):
        stats[f"pairs/{config.grade_names[i]}>{config.grade_names[j]}"] = int(combo[i * k + j])
    stats.update(impressions=len(rows), pair_groups=len(kept_groups), pairs=len(better))
    return Pairs(
        rows=rows,
        group=group.astype(np.int64),
        grade=grade,
        group_user=_row_users(store.offsets, group_first),
        group_time=ts[group_first].astype(np.int64),
        group_first=group_first.astype(np.int64),
        better=better.astype(np.int64),
        worse=worse.astype(np.int64),
        weight=weight.astype(np.float32),
        grade_names=tuple(config.grade_names),
        stats=stats,
    )


def pair_weights_table(config: PairConfig) -> Mapping[str, float]:
    """``'better>worse' -> weight`` for every pair of grades with a positive weight (for reports)."""
    names, w = config.grade_names, config.weight_matrix()
    return {f"{names[i]}>{names[j]}": float(w[i, j]) for i, j in zip(*np.nonzero(w > 0), strict=True)}
