"""Summary statistics of a prepared dataset, computed in chunks over the memory-mapped columns."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from argusrec.data.schema import REQUEST_ID, Role
from argusrec.data.store import SequenceStore

CHUNK = 8_000_000  # events per chunk: bounds memory at ~100 MB whatever the dataset size


def describe(store: SequenceStore) -> dict[str, Any]:
    """A JSON-able summary: counts, time span, history lengths, item popularity, per-column stats."""
    ts = store.timestamps
    lengths = store.lengths
    item_counts = np.zeros(store.n_items + 1, dtype=np.int64)
    t_min, t_max = None, None
    for lo in range(0, store.n_events, CHUNK):
        items = np.asarray(store.items[lo : lo + CHUNK])
        item_counts += np.bincount(items, minlength=store.n_items + 1)[: store.n_items + 1]
        t = np.asarray(ts[lo : lo + CHUNK])
        t_min = int(t.min()) if t_min is None else min(t_min, int(t.min()))
        t_max = int(t.max()) if t_max is None else max(t_max, int(t.max()))
    pop = np.sort(item_counts[1:])[::-1]
    top1 = max(1, len(pop) // 100)
    out: dict[str, Any] = {
        "name": store.manifest.get("name"),
        "path": str(store.path) if store.path else None,
        "users": store.n_users,
        "items": store.n_items,
        "events": store.n_events,
        "density": store.n_events / max(1, store.n_users * store.n_items),
        "time": {
            "min": t_min,
            "max": t_max,
            "min_utc": _utc(t_min),
            "max_utc": _utc(t_max),
            "days": round((t_max - t_min) / 86400, 2) if t_min is not None and t_max is not None else 0,
        },
        "events_per_user": _quantiles(lengths),
        "events_per_item": _quantiles(item_counts[1:]),
        "top_1pct_items_share": float(pop[:top1].sum() / max(1, pop.sum())),
        "columns": {},
        "rejected": store.manifest.get("rejected", {}),
        "input_rows": store.manifest.get("input_rows"),
    }
    for spec in store.schema.columns:
        if spec.name not in store.columns:
            continue  # item features live in the items table
        if spec.role is Role.CONTEXT:
            out["columns"][spec.name] = _context_stats(store, spec.name)
        elif spec.role in (Role.FEEDBACK, Role.TRUTH):
            stats = _float_stats(store[spec.name])
            stats["role"] = spec.role.value
            if spec.kind is not None:
                stats["kind"] = spec.kind.value
            out["columns"][spec.name] = stats
        elif spec.role is Role.REQUEST:
            out["columns"][REQUEST_ID] = _request_stats(store[REQUEST_ID])
    for name in store.schema.item_features:
        out["columns"][name] = {"role": Role.ITEM_FEATURE.value, "where": "items table"}
    return out


def _quantiles(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {}
    q = np.quantile(x, [0.5, 0.9, 0.99])
    return {
        "min": int(x.min()),
        "median": float(q[0]),
        "mean": float(x.mean()),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": int(x.max()),
    }


def _context_stats(store: SequenceStore, name: str) -> dict[str, Any]:
    vocab = store.vocab(name)
    counts = np.zeros(len(vocab) + 1, dtype=np.int64)
    col = store[name]
    for lo in range(0, len(col), CHUNK):
        counts += np.bincount(np.asarray(col[lo : lo + CHUNK]), minlength=len(vocab) + 1)[: len(vocab) + 1]
    total = max(1, int(counts.sum()))
    order = np.argsort(-counts[1:], kind="stable")
    top = {str(vocab[k]): round(float(counts[k + 1] / total), 4) for k in order[:10]}
    return {"role": Role.CONTEXT.value, "values": len(vocab), "share": top}


def _float_stats(col: np.ndarray) -> dict[str, Any]:
    n_obs, total = 0, 0.0
    lo_v, hi_v = np.inf, -np.inf
    for lo in range(0, len(col), CHUNK):
        x = np.asarray(col[lo : lo + CHUNK], dtype=np.float64)
        x = x[~np.isnan(x)]
        if len(x):
            n_obs += len(x)
            total += float(x.sum())
            lo_v, hi_v = min(lo_v, float(x.min())), max(hi_v, float(x.max()))
    return {
        "observed": round(n_obs / max(1, len(col)), 4),
        "mean": total / n_obs if n_obs else None,
        "min": lo_v if n_obs else None,
        "max": hi_v if n_obs else None,
    }


def _request_stats(col: np.ndarray) -> dict[str, Any]:
    # requests are contiguous within a user's time-ordered events, so counting runs counts requests
    runs, in_request, prev = 0, 0, None
    for lo in range(0, len(col), CHUNK):
        x = np.asarray(col[lo : lo + CHUNK])
        valid = x != -1
        in_request += int(valid.sum())
        starts = np.empty(len(x), dtype=bool)
        starts[0] = prev is None or x[0] != prev
        starts[1:] = x[1:] != x[:-1]
        runs += int((starts & valid).sum())
        if len(x):
            prev = x[-1]
    return {
        "role": Role.REQUEST.value,
        "events_in_requests": round(in_request / max(1, len(col)), 4),
        "requests": runs,
        "mean_request_size": in_request / runs if runs else None,
    }


def _utc(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`'s summary."""
    s = summary
    t = s["time"]
    lines = [
        f"dataset      {s['name']}  ({s['path']})",
        f"users        {s['users']:,}",
        f"items        {s['items']:,}",
        f"events       {s['events']:,}   (density {s['density']:.4%})",
        f"time span    {t['min_utc']} .. {t['max_utc']} UTC ({t['days']} days)",
    ]
    for key, label in (("events_per_user", "per user"), ("events_per_item", "per item")):
        q = s[key]
        if q:
            lines.append(
                f"{label:<12} min {q['min']}, median {q['median']:g}, mean {q['mean']:.1f}, "
                f"p90 {q['p90']:g}, p99 {q['p99']:g}, max {q['max']}"
            )
    lines.append(f"popularity   top 1% of items get {s['top_1pct_items_share']:.1%} of events")
    if s["columns"]:
        lines.append("columns")
    for name, c in s["columns"].items():
        role = c["role"]
        if role == "context":
            share = ", ".join(f"{k} {v:.1%}" for k, v in c["share"].items())
            lines.append(f"  {name:<18} context, {c['values']} values: {share}")
        elif role in ("feedback", "truth"):
            kind = f"{c.get('kind', '')} " if c.get("kind") else ""
            if c["mean"] is None:
                lines.append(f"  {name:<18} {kind}{role}, never observed")
            else:
                lines.append(
                    f"  {name:<18} {kind}{role}, observed {c['observed']:.1%}, mean {c['mean']:.4g}, "
                    f"range [{c['min']:.4g}, {c['max']:.4g}]"
                )
        elif role == "request":
            size = c["mean_request_size"]
            lines.append(
                f"  {name:<18} {c['requests']:,} requests, {c['events_in_requests']:.1%} of events, "
                f"mean size {size:.2f}"
                if size
                else f"  {name:<18} no requests"
            )
        else:
            lines.append(f"  {name:<18} item feature ({c['where']})")
    rejected = s.get("rejected") or {}
    if rejected:
        total = sum(rejected.values())
        detail = ", ".join(f"{k} {v:,}" for k, v in rejected.items())
        lines.append(f"rejected     {total:,} of {s['input_rows']:,} input rows: {detail}")
    else:
        lines.append("rejected     none")
    return "\n".join(lines)
