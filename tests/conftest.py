"""Shared fixtures."""

from pathlib import Path

import pytest

from tests.factories import write_case


@pytest.fixture
def case_root(tmp_path: Path) -> Path:
    """A raw folder holding one valid case."""
    root = tmp_path / "raw"
    write_case(root)
    return root
