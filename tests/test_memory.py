"""glibc's heap setting is the command line's choice, logged once, never a side effect of building a model."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import write_run
from transunet3d.cli.main import cli
from transunet3d.config import InferConfig
from transunet3d.inference import Predictor, load_models
from transunet3d.memory import keep_freed_memory


def _calls() -> int:
    info = keep_freed_memory.cache_info()
    return info.hits + info.misses


def test_building_a_predictor_or_a_trainer_leaves_the_heap_alone(tmp_path: Path, cache_for_memory: Path):
    from transunet3d.config import build_config
    from transunet3d.runs.layout import ModelFolder
    from transunet3d.training.segmentation import SegmentationTask
    from transunet3d.training.trainer import Trainer

    before = _calls()
    Predictor(load_models([write_run(tmp_path / "run")]), InferConfig(tta="none"), "cpu")
    Trainer(SegmentationTask(build_config("tiny-unet"), cache_for_memory, 0), ModelFolder(tmp_path / "t"), "cpu")
    assert _calls() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting exists for glibc only")
def test_the_command_line_applies_it_says_so_and_can_be_told_not_to(tmp_path: Path):
    runner = CliRunner()
    applied = runner.invoke(cli, ["crossval", str(tmp_path)])
    assert applied.stdout.startswith("memory: freed blocks are kept for reuse")
    assert applied.stderr.startswith("error: ") and len(applied.stderr.splitlines()) == 1  # one line: the error
    released = runner.invoke(cli, ["--release-freed-memory", "crossval", str(tmp_path)])
    assert "memory:" not in released.output and released.exit_code == 2
    assert "memory:" not in runner.invoke(cli, ["config", "--preset", "tiny"]).output  # no networks, no setting
    assert "memory:" not in runner.invoke(cli, ["crossval", "--help"]).output  # help runs nothing


@pytest.fixture(scope="module")
def cache_for_memory(tmp_path_factory) -> Path:
    from transunet3d.data.phantom import PhantomSpec, write_phantoms
    from transunet3d.data.preprocess import preprocess_dataset
    from transunet3d.data.splits import write_splits

    root = tmp_path_factory.mktemp("memory")
    write_phantoms(root / "raw", cases=2, seed=1, spec=PhantomSpec(shape=(64, 64, 56)), progress=False)
    preprocess_dataset(root / "raw", root / "pre", progress=False)
    write_splits(root / "pre", folds=2, seed=0)
    return root / "pre"
