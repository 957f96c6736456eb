"""The installed `transunet3d` command on tiny phantoms (phantom -> validate -> preprocess -> splits), and the
command line's help, seeds and mistakes in this process."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner, Result

from transunet3d.cli.main import cli

EXE = shutil.which("transunet3d", path=str(Path(sys.executable).parent)) or "transunet3d"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


def test_pipeline_from_phantoms_to_splits(tmp_path: Path):
    raw, pre = tmp_path / "raw", tmp_path / "pre"
    made = run("phantom", str(raw), "--cases", "3", "--seed", "5", "--shape", "64", "72", "56",
               "--lesions", "2", "4", "--workers", "2")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == [f"BraTS-MET-0000{i}-000" for i in (1, 2, 3)]
    first = run("preprocess", str(raw), str(pre), "--workers", "2")
    assert first.returncode == 0, first.stderr
    assert "preprocessed 3, already done 0, failed 0" in first.stdout
    assert "preprocess: 100%" in first.stderr  # progress bar
    # the next steps in this process (each installed command starts in 1-5 s)
    again = here("preprocess", str(raw), str(pre))
    assert "preprocessed 0, already done 3, failed 0" in again.stdout
    # validate and splits run without importing torch, in a fresh interpreter
    script = ("import sys\nfrom click.testing import CliRunner\nfrom transunet3d.cli.main import cli\n"
              f"print(CliRunner().invoke(cli, ['validate', {str(raw)!r}]).stdout.strip())\n"
              f"print(CliRunner().invoke(cli, ['splits', {str(pre)!r}, '--folds', '3']).stdout.strip())\n"
              "assert 'torch' not in sys.modules, 'torch imported'")
    checked = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == ["3 of 3 cases are valid", f"wrote 3 folds to {pre / 'splits.json'}"]
    folds = json.loads((pre / "splits.json").read_text())
    assert sorted(c for fold in folds for c in fold["val"]) == [f"BraTS-MET-0000{i}-000" for i in (1, 2, 3)]
    image = np.load(pre / "BraTS-MET-00001-000.npy", mmap_mode="r")
    assert image.shape[0] == 4 and image.dtype == np.float32


def here(*args: str) -> Result:
    """`transunet3d ARGS` in this process."""
    return CliRunner().invoke(cli, list(args), prog_name="transunet3d")


def test_same_seed_gives_identical_files(tmp_path: Path):
    for name in ("a", "b"):
        assert here("phantom", str(tmp_path / name), "--cases", "1", "--seed", "9", "--shape", "40", "48", "40",
                    "--workers", "1").exit_code == 0
    case = "BraTS-MET-00001-000"
    for kind in ("t1c", "seg"):
        file = f"{case}/{case}-{kind}.nii.gz"
        a, b = nib.load(tmp_path / "a" / file), nib.load(tmp_path / "b" / file)
        np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())


COMMANDS = ["challenge-entry", "config", "container", "crossval", "demo", "evaluate", "export", "model-info",
            "phantom", "predict", "preprocess", "pretrain", "report", "splits", "train", "tune", "validate"]


def test_the_command_lists_every_command():
    result = here("--help")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:\n")[1].splitlines() if line[2:3] != " "]
    assert listed == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str):
    result = here(command, "--help")
    assert result.exit_code == 0 and result.output.startswith(f"Usage: transunet3d {command} ")  # nothing else


def test_starting_the_command_and_evaluating_do_not_import_torch():
    """`--version`, `evaluate` and `config` start in about a second: torch (3-5 s to import) loads only with the
    commands that run networks or resample (and their `--help`); `validate` and `splits` are held to it by the
    pipeline test."""
    script = ("import sys; import transunet3d.cli.main, transunet3d.cli.evaluate_cmd, transunet3d.cli.config_cmd; "
              "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_user_mistakes_exit_2_without_traceback(tmp_path: Path):
    result = here("preprocess", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing'}: path does not exist"
    bad_option = here("phantom", str(tmp_path), "--cases", "0")
    assert bad_option.exit_code == 2 and "Traceback" not in bad_option.stderr


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "transunet3d", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "transunet3d" in result.stdout


def test_output_path_that_is_a_file_is_a_user_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = here("phantom", str(blocker), "--cases", "1", "--shape", "32", "32", "32")
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {blocker}: exists and is not a folder"


@pytest.mark.parametrize(("args", "line"), [
    (["--lesions", "3", "1"], "error: --lesions 3 1: give MIN MAX with MIN <= MAX"),
    (["--lesions", "1", "100000"], "error: Invalid value for '--lesions': 100000 is not in the range 0<=x<=1000. "
                                   "(see `transunet3d phantom --help`)"),
    (["--workers", "0"], "error: Invalid value for '--workers': 0 is not in the range x>=1. "
                         "(see `transunet3d phantom --help`)"),
    (["--no-such-option"], "error: No such option '--no-such-option'. (see `transunet3d phantom --help`)"),
])
def test_a_bad_option_is_one_error_line(tmp_path: Path, args: list[str], line: str):
    result = here("phantom", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and result.stderr.splitlines() == [line] and not (tmp_path / "out").exists()
