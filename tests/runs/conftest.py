"""A small phantom cache and a two-fold run trained on it (with out-of-fold validation), shared by the run tests."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import SMALL_PATCHES
from transunet3d.cli.main import cli
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.data.splits import write_splits

# Validation without TTA: 8x fewer forward passes; the default (flip) is validated by the miniature demo.
SHORT = ["--set", "loop.epochs=2", "--set", "loop.iterations_per_epoch=2", "--set", "loop.val_batches=1",
         "--set", "infer.validation_tta=none", *SMALL_PATCHES]


@pytest.fixture(scope="session")
def raw_and_cache(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    write_phantoms(root / "raw", cases=4, seed=5, spec=PhantomSpec(shape=(80, 96, 72), lesions=(2, 4),
                                                                      diameter_mm=(6.0, 25.0)), progress=False)
    preprocess_dataset(root / "raw", root / "pre", progress=False)
    write_splits(root / "pre", folds=2, seed=0)
    return root / "raw", root / "pre"


@pytest.fixture(scope="session")
def trained_run(raw_and_cache, tmp_path_factory) -> Path:
    """`train --fold all` of tiny-unet on the two-fold cache: both folds trained, validated (without TTA, two
    cases scored at a time) and pooled."""
    _, cache = raw_and_cache
    run = tmp_path_factory.mktemp("trained") / "run"
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny-unet", "--fold", "all", "--out",
                                      str(run), "--device", "cpu", "--workers", "2", *SHORT])
    assert result.exit_code == 0, result.output
    return run
