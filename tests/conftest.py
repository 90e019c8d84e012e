"""Shared fixtures. Real datasets live in ../shared/data (never in this repo); tests that need them skip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real datasets, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def need_shared(*parts: str) -> Path:
    """Path to a file under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset file not found: {path}")
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test: CI cores are shared, and oversubscribed threads are many times slower.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
