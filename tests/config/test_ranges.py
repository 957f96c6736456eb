"""Every setting is checked against its range when the config is built: one `error:` line naming the field, exit 2,
and nothing written."""

from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.factories import write_two_case_cache
from transunet3d.cli.main import cli
from transunet3d.config import PRESETS, build_config, config_to_dict, load_config
from transunet3d.config.io import validate_config
from transunet3d.config.schema import ExperimentConfig, Range
from transunet3d.errors import ConfigError

# The settings of issue 15, then one of each remaining kind of range.
BAD_SETTINGS = [
    "infer.threshold=7",
    "loop.epochs=-1",
    "train.patch_size=[96, 96, 80]",
    "train.patch_size=[65, 64, 64]",
    "train.patch_size=[0, 0, 0]",
    "train.patch_size=[32, 32, 32]",  # a one-voxel bottleneck: torch's instance norm refuses it, ours made zeros
    "loop.batch_size=0",
    "loop.val_every=0",
    "loop.checkpoint_every=0",
    "train.lr=-1",
    "loop.num_workers=-1",
    "model.vit_dropout=1.5",
    "infer.step=1.5",
    "infer.batch_windows=0",
    "infer.threshold=0",  # open end of (0, 1)
    "infer.step=0",
    "infer.step=0.01",  # below 1/20 of a patch: only repeated windows (a 1e-6 step never ended)
    "augment.mirror_p=1.5",  # probability
    "augment.scale_range=[1.4, 0.7]",  # (low, high) pair out of order
    "augment.noise_variance=[-0.1, 0.1]",  # a value of a pair out of range
    "augment.rotation_degrees=200",  # closed range
    "train.momentum=1",  # fraction open at 1
    "train.weight_decay=-1e-5",  # non-negative
    "loop.seed=-1",
    "loop.iterations_per_epoch=-1",
    "loop.iterations_per_epoch=99999999999999999999",  # overflowed torch's index type in a traceback
    "train.patch_size=[64, 64, 99999999999999]",
    "data.num_folds=1",
    "data.target_spacing=[1, 0, 1]",  # optional triple
    "model.vit_depth=0",  # optional count
    "pretrain.mask_ratio=1",
    "pretrain.betas=[0.9, 1.5]",
    "pretrain.patch_size=[64, 60, 64]",  # not a whole number of tokens
    "pretrain.decoder_dim=50",  # not a multiple of the decoder's heads
    # infinity passes every range without an upper end unless it is refused as such
    "train.lr=inf",
    "train.weight_decay=inf",
    "train.poly_power=inf",
    "pretrain.base_lr=inf",
    "infer.gaussian_sigma_scale=inf",
    "infer.max_memory_gb=inf",
    "augment.bias_strength=inf",
    "augment.noise_variance=[0, inf]",
    "data.target_spacing=[inf, 1, 1]",
    "train.lr=nan",
]


def _field(setting: str) -> str:
    return setting.partition("=")[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_two_case_cache(tmp_path_factory.mktemp("ranges"))


@pytest.mark.parametrize("setting", BAD_SETTINGS)
def test_a_bad_setting_stops_train_before_it_writes(setting, cache: Path, tmp_path: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(cache), "--out", str(run), "--device", "cpu", "--set", setting])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {_field(setting)}: "), result.stderr
    assert "Traceback" not in result.output
    assert not run.exists()


@pytest.mark.parametrize(("patch", "spacing", "problem"), [
    ([64, 96, 64], (1, 1, 1), "its axial patch is not square (64 x 96 voxels)"),
    ([64, 64, 64], (1, 1.5, 1), "its voxels are not square in the axial plane (1 x 1.5 mm)"),
])
def test_flip_rot_that_the_model_cannot_take_stops_train_before_it_writes(patch, spacing, problem: str,
                                                                          tmp_path: Path):
    """Validation after training died with a traceback on a non-square axial patch; on voxels of another size along
    x than y, 8 of the 16 views showed the network images stretched 1.5x, without a word."""
    from tests.factories import write_case
    from transunet3d.data.preprocess import preprocess_dataset

    for number in (1, 2):
        write_case(tmp_path / "raw", f"BraTS-MET-0000{number}-000", seed=number)
    preprocess_dataset(tmp_path / "raw", tmp_path / "pre", target_spacing=spacing, progress=False)
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "pre"), "--out", str(tmp_path / "run"), "--device",
                                      "cpu", "--set", "infer.validation_tta=flip+rot",
                                      "--set", f"train.patch_size={patch}"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (f"error: infer.validation_tta: flip+rot turns the axial plane by "
                                              f"quarter turns, but {problem}; use flip")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", ["loop.epochs=0", "pretrain.mask_ratio=0", "pretrain.token_side=0"])
def test_a_bad_setting_stops_pretrain_before_it_writes(setting, cache: Path, tmp_path: Path):
    run = tmp_path / "mae"
    result = CliRunner().invoke(cli, ["pretrain", str(cache), "--out", str(run), "--device", "cpu",
                                      "--set", setting])
    assert result.exit_code == 2 and f"\nerror: {_field(setting)}: " in f"\n{result.stderr}", result.output
    assert not run.exists()


def test_a_bad_setting_stops_config_before_it_writes(tmp_path: Path):
    out = tmp_path / "config.yaml"
    result = CliRunner().invoke(cli, ["config", "--set", "infer.threshold=7", "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr == "error: infer.threshold: must be in (0, 1), not 7.0\n"
    assert not out.exists()


@pytest.mark.parametrize("setting, line", [
    ("train.lr=inf", "error: train.lr: must be a finite number > 0, not inf"),
    ("train.weight_decay=-inf", "error: train.weight_decay: must be a finite number >= 0, not -inf"),
    ("infer.max_memory_gb=.inf", "error: infer.max_memory_gb: must be a finite number > 0, not inf"),
    ("augment.noise_variance=[0, inf]",
     "error: augment.noise_variance: must be each a finite number >= 0, not [0.0, inf]"),
    ("data.target_spacing=[inf, 1, 1]",
     "error: data.target_spacing: must be each a finite number > 0, not [inf, 1.0, 1.0]"),
    ("data.axis_order=XYZ", "error: data.axis_order: must be one of RAS, or empty, not 'XYZ'"),
])
def test_the_config_command_refuses_infinity_and_names_the_real_choices(setting: str, line: str, tmp_path: Path):
    out = tmp_path / "config.yaml"
    result = CliRunner().invoke(cli, ["config", "--preset", "tiny-unet", "--set", setting, "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr == f"{line}\n"
    assert not out.exists()


def test_more_folds_than_patients_names_the_fold_setting(cache: Path, tmp_path: Path):
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(cache), "--out", str(run), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == ("error: data.num_folds: cannot make 5 folds from 2 patients "
                                              "(each fold needs a patient of its own)")
    assert "Traceback" not in result.output
    assert not run.exists()


def test_a_bad_value_in_a_config_file_names_the_file_and_the_field(tmp_path: Path):
    data = config_to_dict(build_config("tiny"))
    data["loop"]["batch_size"] = 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"config.yaml: loop.batch_size: must be >= 1, not 0"):
        load_config(path)


def test_the_patch_sizes_a_model_takes_come_from_its_spec():
    assert build_config("tiny", ["train.patch_size=[32, 64, 96]"]).train.patch_size == (32, 64, 96)
    with pytest.raises(ConfigError, match=r"train.patch_size: every side must be a positive multiple of 32"):
        build_config("paper-encoder", ["train.patch_size=[128, 128, 112]"])


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_in_range(name):
    assert validate_config(build_config(name)) == build_config(name)


def test_every_number_of_the_config_has_a_range():
    numbers = (int, float, "int", "float", "int | None", "tuple[int, int, int]", "tuple[float, float]")
    for section in fields(ExperimentConfig):
        if section.name == "preset":
            continue
        for item in fields(section.default_factory):
            if item.type in numbers:
                assert isinstance(item.metadata.get("range"), Range), f"{section.name}.{item.name}"


@pytest.mark.parametrize("rule, value, problem", [
    (Range(0, 1), 1.5, "must be in [0, 1], not 1.5"),
    (Range(0, 1, low_open=True, high_open=True), 0.0, "must be in (0, 1), not 0.0"),
    (Range(1), 0, "must be >= 1, not 0"),
    (Range(0, low_open=True), (1.0, -1.0), "must be each > 0, not [1.0, -1.0]"),
    (Range(0, ordered=True), (2.0, 1.0), "must be a (low, high) pair with low <= high, not [2.0, 1.0]"),
    (Range(0, low_open=True), float("inf"), "must be a finite number > 0, not inf"),
    (Range(0, 1), float("nan"), "must be a finite number in [0, 1], not nan"),
    (Range(0, ordered=True), (0.0, float("inf")), "must be each a finite number >= 0, not [0.0, inf]"),
    (Range(1), None, None),
    (Range(0, 1), 0.5, None),
])
def test_range_problems_say_what_is_accepted(rule: Range, value, problem):
    assert rule.problem(value) == problem
