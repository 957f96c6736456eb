"""Shared fixtures."""

from pathlib import Path

import pytest

from tests.factories import write_case, write_phantom_variants


@pytest.fixture
def case_root(tmp_path: Path) -> Path:
    """A raw folder holding one valid case."""
    root = tmp_path / "raw"
    write_case(root)
    return root


@pytest.fixture(scope="session")
def phantom_variants(tmp_path_factory) -> dict[str, Path]:
    """One phantom stored in RAS at 2 mm, in the axis orders LPS and PSR, and at 1x1x2 and 2x2x6 mm."""
    return write_phantom_variants(tmp_path_factory.mktemp("variants"))
