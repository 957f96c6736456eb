"""A small phantom cache shared by the training tests."""

from pathlib import Path

import pytest

from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    write_phantoms(root / "raw", cases=4, seed=3, spec=PhantomSpec(shape=(80, 96, 72), lesions=(2, 4),
                                                                      diameter_mm=(8.0, 25.0)), progress=False)
    preprocess_dataset(root / "raw", root / "pre", progress=False)
    write_splits(root / "pre", folds=2, seed=0)
    return root / "pre"
