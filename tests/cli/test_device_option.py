"""`--device`: every command checks it before it writes anything; a bad one is one `error:` line and exit code 2."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.factories import write_run, write_two_case_cache
from transunet3d.cli.main import cli
from transunet3d.devices import parse_device
from transunet3d.errors import UserError

NO_CUDA = "CUDA is not available on this machine (or torch was installed without it)"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """raw/ (two cases), pre/ (their cache) and run/fold_0 (a trained model)."""
    root = tmp_path_factory.mktemp("devices")
    write_two_case_cache(root)
    write_run(root / "run" / "fold_0")
    return root


def _gpus(monkeypatch, count: int) -> None:
    """Make this machine look as if it had `count` GPUs (0: torch without CUDA)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_parse_device_reads_what_torch_reads_and_defaults_as_before(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    _gpus(monkeypatch, 0)
    assert parse_device("cpu") == torch.device("cpu")
    assert parse_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert parse_device("cuda:1") == torch.device("cuda:1")
    assert parse_device(None) == torch.device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun's second process on this node
    assert parse_device(None) == torch.device("cuda:1")


@pytest.mark.parametrize("name, gpus, problem", [
    ("bogus", 0, "not a device; give cpu, cuda, cuda:N or mps"),
    ("cuda:x", 2, "not a device; give cpu, cuda, cuda:N or mps"),
    ("meta", 0, "not a device the commands run on; give cpu, cuda, cuda:N or mps"),
    ("cuda", 0, NO_CUDA),
    ("cuda:7", 0, NO_CUDA),
    ("cuda:2", 2, "no such GPU; this machine has 2 (cuda:0 to cuda:1)"),
    ("cpu:7", 0, "cpu has one device: cpu (or cpu:0)"),  # torch took it and used the CPU
])
def test_parse_device_names_the_option_and_the_problem(monkeypatch, name: str, gpus: int, problem: str):
    _gpus(monkeypatch, gpus)
    with pytest.raises(UserError) as raised:
        parse_device(name)
    assert str(raised.value) == f"--device {name}: {problem}"


def _commands(root: Path, out: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", str(root / "pre"), "--out", str(out)],
        "pretrain": ["pretrain", str(root / "pre"), "--out", str(out)],
        "predict": ["predict", str(root / "raw"), str(out), "--model", str(root / "run")],
        "crossval": ["crossval", str(root / "run"), "--preprocessed", str(root / "pre")],
        "demo": ["demo", str(out)],
    }


@pytest.mark.parametrize("command", ["train", "pretrain", "predict", "crossval", "demo"])
@pytest.mark.parametrize("name, gpus, problem", [
    ("bogus", 0, "not a device; give cpu, cuda, cuda:N or mps"),
    ("cuda:7", 0, NO_CUDA),
    ("cuda:7", 1, "no such GPU; this machine has 1 (cuda:0 to cuda:0)"),
])
def test_every_command_checks_the_device_before_it_writes(inputs: Path, tmp_path: Path, monkeypatch, command: str,
                                                           name: str, gpus: int, problem: str):
    _gpus(monkeypatch, gpus)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*_commands(inputs, out)[command], "--device", name])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"error: --device {name}: {problem}"
    assert "Traceback" not in result.output
    assert not out.exists()
    assert sorted(path.name for path in (inputs / "run").iterdir()) == ["fold_0"]
    assert sorted(path.name for path in (inputs / "run" / "fold_0").iterdir()) == ["checkpoints", "config.yaml"]
    assert not (inputs / "pre" / "splits.json").exists()


@pytest.mark.parametrize(("variables", "message"), [
    ({"RANK": "abc"}, "RANK='abc': not a whole number >= 0"),
    ({"RANK": "1.0", "WORLD_SIZE": "2"}, "RANK='1.0': not a whole number >= 0"),
    ({"WORLD_SIZE": "0"}, "RANK=0, WORLD_SIZE=0: a process's RANK must lie in 0 to WORLD_SIZE - 1"),
    ({"RANK": "1"}, "RANK=1, WORLD_SIZE=1: a process's RANK must lie in 0 to WORLD_SIZE - 1"),
    ({"RANK": "3", "WORLD_SIZE": "2"}, "RANK=3, WORLD_SIZE=2: a process's RANK must lie in 0 to WORLD_SIZE - 1"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 without RANK: which of the processes this is is not set"),
])
def test_launcher_variables_out_of_place_are_one_error_line(variables: dict, message: str, inputs: Path,
                                                          tmp_path: Path, monkeypatch):
    """`predict` skipped cases or predicted none with exit 0 (RANK=1 alone, RANK=3 of 2), a traceback for `abc`;
    `train` waited for a process group that never formed."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    commands = [["predict", str(inputs / "raw"), str(tmp_path / "out"), "--model", str(inputs / "run"),
                 "--device", "cpu"],
                ["train", str(inputs / "pre"), "--preset", "tiny", "--fold", "0", "--out", str(tmp_path / "run"),
                 "--device", "cpu"]]
    for command in commands:
        result = CliRunner().invoke(cli, command)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}"), result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("variables", "message"), [
    ({"MASTER_PORT": "29500"}, "WORLD_SIZE=2 without MASTER_ADDR: the processes have nowhere to meet (torchrun sets "
                               "them; unset WORLD_SIZE to run one process)"),
    ({}, "WORLD_SIZE=2 without MASTER_ADDR and MASTER_PORT: the processes have nowhere to meet"),
    ({"MASTER_ADDR": "localhost", "MASTER_PORT": "port"}, "MASTER_PORT='port': not a port number (1 to 65535)"),
])
def test_training_processes_without_a_meeting_point_are_one_error_line(variables: dict, message: str, inputs: Path,
                                                                       tmp_path: Path, monkeypatch):
    """WORLD_SIZE=2 RANK=0 without torchrun's MASTER_ADDR or MASTER_PORT: torch's traceback, exit 1."""
    for name in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", **variables}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["train", str(inputs / "pre"), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--device", "cpu"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}"), result.output
    assert list(tmp_path.iterdir()) == []


def test_a_process_that_never_comes_is_announced_and_ends_in_one_error_line(inputs: Path, tmp_path: Path,
                                                                           monkeypatch):
    """WORLD_SIZE=2 left in the environment with a valid meeting point: the first process waited silently for
    torch's 30 minutes (here the wait is cut to 2 s)."""
    import socket
    from datetime import timedelta

    from transunet3d.training import distributed

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(distributed, "PROCESS_GROUP_TIMEOUT", timedelta(seconds=2))
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    result = CliRunner().invoke(cli, ["train", str(inputs / "pre"), "--preset", "tiny", "--fold", "0", "--out",
                                      str(tmp_path / "run"), "--device", "cpu"])
    assert f"processes: waiting for the 2 of WORLD_SIZE at 127.0.0.1:{port} (at most 0.0333333 min)" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert errors[0].startswith(f"error: WORLD_SIZE=2: the processes did not all meet at 127.0.0.1:{port} (")
    assert errors[0].endswith("); start every process, or unset WORLD_SIZE to run one")
    assert list(tmp_path.iterdir()) == []
