from click.testing import CliRunner

from transunet3d.cli.main import cli


def test_model_info_prints_the_official_sizes():
    result = CliRunner().invoke(cli, ["model-info", "decoder"])
    assert result.exit_code == 0, result.output
    expected = "decoder (full): 34.08M parameters, 1112.8 GFLOP per forward pass of a 4x128^3 patch"
    assert result.stdout.strip() == expected


def test_model_info_rejects_patches_the_network_cannot_take():
    result = CliRunner().invoke(cli, ["model-info", "unet", "--patch", "100"])
    assert result.exit_code == 2 and "multiple of 32" in result.output
    huge = CliRunner().invoke(cli, ["model-info", "encoder", "--patch", "100000"])  # was an overflow traceback
    assert huge.exit_code == 2 and "100000 is not in the range 64<=x<=1024" in huge.stderr, huge.output
    assert CliRunner().invoke(cli, ["model-info", "resnet"]).exit_code == 2
