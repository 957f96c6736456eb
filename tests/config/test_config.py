from pathlib import Path

import pytest
from click.testing import CliRunner

from transunet3d.cli.main import cli
from transunet3d.config import PRESETS, build_config, config_to_dict, load_config, save_config
from transunet3d.errors import ConfigError

PAPER = ["paper-encoder", "paper-decoder", "paper-both", "unet"]
TRANSUNET = ["paper-encoder", "paper-decoder", "paper-both"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_presets_share_the_paper_setup(name):
    config = build_config(name)
    assert config.model.width == "full"
    assert config.train.patch_size == (128, 128, 128)
    assert (config.loop.batch_size, config.train.poly_power, config.loop.iterations_per_epoch) == (2, 0.9, 250)
    assert (config.train.mask_loss_weight, config.train.class_loss_weight) == (0.7, 0.3)
    assert config.model.deep_supervision


@pytest.mark.parametrize("name", TRANSUNET)
def test_transunet_presets_train_with_the_papers_adamw(name):
    config = build_config(name)
    assert (config.train.optimizer, config.train.lr, config.loop.epochs) == ("adamw", 2e-3, 600)


def test_the_unet_preset_is_the_papers_nnunet_baseline():
    config = build_config("unet")
    train = config.train
    assert (train.optimizer, train.lr, train.momentum, train.weight_decay) == ("sgd", 1e-2, 0.99, 3e-5)
    assert (train.poly_power, config.loop.epochs, config.loop.iterations_per_epoch) == (0.9, 1000, 250)


def test_query_presets_show_the_official_set_loss_settings():
    result = CliRunner().invoke(cli, ["config", "--preset", "paper-decoder"])
    assert result.exit_code == 0
    assert "no_object_weight: 1.0" in result.stdout and "decoder_attention_fp32: true" in result.stdout


def test_preset_names_pick_the_variant():
    assert {n: build_config(n).model.name for n in PAPER} == {
        "paper-encoder": "encoder", "paper-decoder": "decoder", "paper-both": "both", "unet": "unet"}
    assert build_config("tiny").model.name == "encoder" and build_config("tiny").model.width == "tiny"
    assert build_config("tiny-both").model.name == "both"
    assert build_config("mae-paper").pretrain.mask_ratio == 0.75


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_yaml(name, tmp_path: Path):
    config = build_config(name, ["train.lr=1e-3", "train.patch_size=[32, 64, 96]"])
    save_config(config, tmp_path / "config.yaml")
    loaded = load_config(tmp_path / "config.yaml")
    assert loaded == config
    assert loaded.preset == name


def test_overrides_are_typed():
    config = build_config("tiny", ["train.lr=1e-3", "loop.epochs=7", "model.deep_supervision=false",
                                   "augment.scale_range=[0.8, 1.2]", "infer.tta=none", "train.optimizer=sgd"])
    assert config.train.lr == 1e-3 and isinstance(config.train.lr, float)
    assert config.loop.epochs == 7
    assert config.model.deep_supervision is False
    assert config.augment.scale_range == (0.8, 1.2)
    assert (config.infer.tta, config.train.optimizer) == ("none", "sgd")
    assert isinstance(config_to_dict(config)["train"]["patch_size"], list)


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown config field 'train.lrr'"),
    ("trainer.lr=1", "unknown config section 'trainer'"),
    ("loop.epochs=1.5", "loop.epochs: must be of type int"),
    ("train.patch_size=[64, 64]", "must have 3 values"),
    ("model.name=resnet", "model.name: must be one of unet, encoder, decoder, both"),
    ("data.axis_order=XYZ", "data.axis_order: must be one of RAS, or empty, not 'XYZ'"),
    ("model.deep_supervision=maybe", "must be of type bool"),
    ("train.lr", "not of the form section.field=value"),
    ("loop.epochs=0x10", "loop.epochs: must be of type int, not '0x10'"),  # YAML 1.1: hexadecimal 16
    ("loop.seed=1:30", "loop.seed: must be of type int, not '1:30'"),  # YAML 1.1: base 60, 90
    ("loop.seed=99999999999999999999", "loop.seed: must be in [0, 4294967295], not 99999999999999999999"),
])
def test_bad_overrides_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        build_config("tiny", [override])


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("paper-everything")


def test_config_cli_prints_and_saves(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "--preset", "tiny-unet", "--set", "loop.epochs=3"])
    assert result.exit_code == 0 and "epochs: 3" in result.stdout and "name: unet" in result.stdout
    result = runner.invoke(cli, ["config", "--preset", "tiny", "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0 and load_config(tmp_path / "c.yaml") == build_config("tiny")
    result = runner.invoke(cli, ["config", "--set", "train.nope=1"])
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown config field")
    result = runner.invoke(cli, ["config", "--preset", "tiny", "--out", str(tmp_path)])  # was exit 1
    assert result.exit_code == 2 and result.stderr == f"error: {tmp_path}: is a folder; expected the path of a file " \
                                                      "to write\n"
    result = runner.invoke(cli, ["config", "--preset", "tiny", "--out", f"{tmp_path / 'new'}/"])  # a file "new"
    assert result.exit_code == 2 and "ends in a folder separator; give a file name" in result.stderr
    assert not (tmp_path / "new").exists()


def test_the_label_scheme_field_offers_exactly_the_known_schemes():
    import typing

    from transunet3d.config import DataConfig
    from transunet3d.data.labels import DEFAULT_SCHEME, SCHEMES

    assert typing.get_args(typing.get_type_hints(DataConfig)["labels"]) == tuple(SCHEMES)
    assert build_config("tiny").data.labels == DEFAULT_SCHEME
    assert build_config("tiny", ["data.labels=brats-mets-2025"]).data.labels == "brats-mets-2025"
    with pytest.raises(ConfigError, match=r"data\.labels: must be one of brats-mets-2023, brats-mets-2025, not"):
        build_config("tiny", ["data.labels=brats-gli-2024"])


def test_a_config_saved_before_label_schemes_loads_as_2023(tmp_path: Path):
    path = tmp_path / "config.yaml"
    save_config(build_config("tiny", ["data.labels=brats-mets-2025"]), path)
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.strip().startswith("labels:")))
    assert load_config(path).data.labels == "brats-mets-2023"


def test_integers_are_decimal_whatever_yaml_1_1_says():
    """`010` was octal 8 and `[064, 064, 064]` was 52 each, with exit 0."""
    config = build_config("tiny", ["loop.epochs=010", "train.patch_size=[064, 064, 064]", "train.lr=1e-3"])
    assert (config.loop.epochs, config.train.patch_size, config.train.lr) == (10, (64, 64, 64), 1e-3)


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda text: text.replace("infer:\n", "infer:\n  tta: none\n", 1), "not valid YAML (the key 'tta' appears twice "
                                                                          "(line "),
    (lambda text: text[:text.index("infer:")] + text[text.index("pretrain:"):],
     "has no infer section(s); a saved config holds every section"),
    (lambda text: "\x00\xff\xfe" + text, None),
    (lambda text: text.replace("preset: tiny", "preset: bogus", 1), "preset: 'bogus' is not a preset ("),
])
def test_a_saved_config_that_cannot_be_read_as_written_is_refused(edit, problem, tmp_path: Path):
    """A key given twice was read as its last value; a missing section as the defaults (flip+rot instead of the
    run's TTA, no target spacing); a file that is not text was a UnicodeDecodeError traceback."""
    path = tmp_path / "config.yaml"
    save_config(build_config("tiny"), path)
    text = edit(path.read_text())
    if problem is None:
        path.write_bytes(text.encode("latin-1"))
        problem = "not a text file (a config is YAML text)"
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: {problem}")


@pytest.mark.parametrize("command", [["config"], ["train", "pre", "--out", "run"], ["pretrain", "pre", "--out", "run"]])
def test_a_set_key_given_twice_or_of_an_unknown_section_is_one_error_line(command, tmp_path: Path):
    """The last of two values won without a word; an unknown section was named by a wrong warning ("recorded in
    config.yaml") before its error."""
    for given, message in ((["train.lr=1e-3", "train.lr=2e-3"], "--set train.lr is given twice (1e-3, then 2e-3); "
                                                                "give each setting once"),
                           (["nosuch.field=1"], "unknown config section 'nosuch' in 'nosuch.field'; sections: data, "
                                                "model, augment, loop, train, infer, pretrain")):
        arguments = [argument if argument not in ("pre", "run") else str(tmp_path / argument) for argument in command]
        result = CliRunner().invoke(cli, [*arguments, *(part for item in given for part in ("--set", item))])
        assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {message}"]
        assert not (tmp_path / "run").exists()


def test_out_of_fold_validation_uses_the_views_of_predict_unless_set():
    """The tuned post-processing is chosen on the out-of-fold probabilities: they were made with 8 flip views by
    default while predict used the config's 16 flip+rot views."""
    from transunet3d.config.schema import InferConfig

    assert InferConfig().out_of_fold_tta == "flip+rot"
    assert InferConfig(tta="none").out_of_fold_tta == "none"
    assert InferConfig(tta="flip+rot", validation_tta="flip").out_of_fold_tta == "flip"
    assert build_config("tiny").infer.out_of_fold_tta == "flip"
