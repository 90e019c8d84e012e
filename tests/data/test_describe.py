"""describe: counts, time span, per-column statistics, on a hand-built dataset."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.describe import describe, render
from argusrec.data.schema import DatasetSchema
from argusrec.data.store import SequenceStore


@pytest.fixture
def store(tmp_path: Path) -> SequenceStore:
    schema = DatasetSchema.of(
        context=["surface"], feedback={"like": "binary", "ratio": "continuous"}, request=True, truth=["p"]
    )

    def read():
        yield (
            "x",
            pa.record_batch(
                {
                    "user_id": [1, 1, 1, 2],
                    "item_id": [7, 8, 7, 7],
                    "timestamp": [86400, 2 * 86400, 3 * 86400, 4 * 86400],
                    "surface": ["feed", "feed", "search", "feed"],
                    "like": [1.0, 0.0, float("nan"), 1.0],
                    "ratio": [0.5, 1.0, 0.0, 0.5],
                    "request_id": [3, 3, -1, 4],
                    "p": [0.1, 0.2, 0.3, 0.4],
                }
            ),
        )

    build_store(EventSource(name="tiny", schema=schema, read=read), tmp_path / "ds", progress=False)
    return SequenceStore.open(tmp_path / "ds")


def test_describe_counts_and_columns(store: SequenceStore) -> None:
    s = describe(store)
    assert (s["users"], s["items"], s["events"]) == (2, 2, 4)
    assert s["time"]["min_utc"] == "1970-01-02 00:00:00" and s["time"]["days"] == 3.0
    assert s["events_per_user"]["max"] == 3 and s["events_per_user"]["min"] == 1
    assert s["events_per_item"]["max"] == 3
    assert s["columns"]["surface"]["share"] == {"feed": 0.75, "search": 0.25}
    like = s["columns"]["like"]
    assert like["kind"] == "binary" and like["observed"] == 0.75 and like["mean"] == pytest.approx(2 / 3)
    assert s["columns"]["ratio"]["max"] == 1.0
    assert s["columns"]["request_id"]["requests"] == 2
    assert s["columns"]["request_id"]["mean_request_size"] == 1.5
    assert s["columns"]["p"]["role"] == "truth"


def test_render_mentions_every_column(store: SequenceStore) -> None:
    text = render(describe(store))
    for word in ("users        2", "events       4", "surface", "like", "ratio", "request_id", "rejected     none"):
        assert word in text
