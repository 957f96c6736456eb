"""Fixtures of the evaluation tests."""

from pathlib import Path

import pytest

LABELMAPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "labelmaps"


@pytest.fixture(scope="session")
def labelmaps() -> Path:
    """The real label maps in ../shared/data/labelmaps; a test that needs them fails, not skips, without them."""
    if not (LABELMAPS / "ref").is_dir():
        pytest.fail(f"{LABELMAPS} is missing: the shared data must sit beside the checkout")
    return LABELMAPS
