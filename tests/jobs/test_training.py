"""A run records the target spacing and axis order of its cache; another target spacing is one error line."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.factories import add_cavities, write_case
from transunet3d.cli.main import cli
from transunet3d.config import build_config
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.errors import ConfigError
from transunet3d.jobs.training import cache_defaults, with_cache_grid


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    write_case(tmp_path / "raw")
    preprocess_dataset(tmp_path / "raw", tmp_path / "pre", target_spacing=(1.0, 1.0, 1.5), progress=False)
    return tmp_path / "pre"


def test_the_config_records_the_caches_target_spacing_and_axis_order(cache: Path):
    for overrides in ((), ("data.target_spacing=[1, 1, 1.5]",)):
        data = with_cache_grid(build_config("tiny", overrides), cache).data
        assert data.target_spacing == (1.0, 1.0, 1.5) and data.axis_order == "RAS"
        assert data.preprocessed == str(cache.resolve())


def test_another_target_spacing_than_the_caches_is_an_error(cache: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"preprocess with --target-spacing 1 1 1"):
        with_cache_grid(build_config("tiny", ["data.target_spacing=[1, 1, 1]"]), cache)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--set", "data.target_spacing=[1, 1, 1]"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists()
    assert errors[0].startswith("error: data.target_spacing: [1.0, 1.0, 1.0] differs from the [1.0, 1.0, 1.5]")


def test_the_run_takes_the_caches_label_scheme_and_another_one_is_an_error(tmp_path: Path):
    write_case(tmp_path / "raw")
    add_cavities(tmp_path / "raw")
    cache = tmp_path / "pre"
    preprocess_dataset(tmp_path / "raw", cache, target_spacing=(1.0, 1.0, 1.5), labels="brats-mets-2025",
                       progress=False)
    assert cache_defaults(cache) == ["data.labels=brats-mets-2025"] and cache_defaults(tmp_path / "none") == []
    config = build_config("tiny", [*cache_defaults(cache), "data.labels=brats-mets-2025"])
    assert with_cache_grid(config, cache).data.labels == "brats-mets-2025"
    with pytest.raises(ConfigError, match=r"data\.labels: brats-mets-2023 differs from the brats-mets-2025 of"):
        with_cache_grid(build_config("tiny"), cache)
    result = CliRunner().invoke(cli, ["train", str(cache), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--set", "data.labels=brats-mets-2023"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and not (tmp_path / "run").exists()
    assert errors[0].startswith(f"error: data.labels: brats-mets-2023 differs from the brats-mets-2025 of {cache}")
