"""The environment failing (full disk, refused folder) and files in the way: one `error:` line naming the real file."""

import errno
import os
import tempfile
from pathlib import Path

from click.testing import CliRunner

from tests.evaluation.test_files_and_cli import lesion_labels, save
from tests.factories import dead_pid, temporary, write_case, write_run
from transunet3d.cli.main import cli
from transunet3d.errors import EXIT_ENVIRONMENT, EXIT_USER_ERROR

CASE = "BraTS-MET-00001-000"


def invoke(*args: object):
    return CliRunner().invoke(cli, list(map(str, args)))


def evaluation_folders(root: Path) -> tuple[Path, Path]:
    save(root / "ref" / f"{CASE}-seg.nii.gz", lesion_labels())
    save(root / "pred" / f"{CASE}.nii.gz", lesion_labels())
    return root / "pred", root / "ref"


def test_full_disk_in_preprocess_says_so_and_names_the_output(tmp_path: Path, monkeypatch):
    write_case(tmp_path / "raw")
    make_temporary = tempfile.mkstemp

    def on_full_disk(dir, prefix, suffix):  # every temporary is /dev/full: writes fail with ENOSPC
        fd, path = make_temporary(dir=dir, prefix=prefix, suffix=suffix)
        os.close(fd)
        os.unlink(path)
        os.symlink("/dev/full", path)
        return os.open(path, os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", on_full_disk)
    result = invoke("preprocess", tmp_path / "raw", tmp_path / "pre")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert result.stderr.splitlines()[-1] == f"error: {tmp_path / 'pre' / CASE}.npy: no space left on device"
    assert list((tmp_path / "pre").iterdir()) == []


def test_refused_output_folder_names_the_output_not_its_temporary(tmp_path: Path, monkeypatch):
    pred, ref = evaluation_folders(tmp_path)

    def refuse(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, f"{prefix}abcd{suffix}"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = invoke("evaluate", pred, ref, "--out", tmp_path / "m.csv")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert result.stderr.splitlines()[-1] == f"error: {tmp_path / 'm.csv'}: permission denied"


def test_output_whose_folder_is_a_file_stops_evaluate_before_it_works(tmp_path: Path):
    pred, ref = evaluation_folders(tmp_path)
    blocker = tmp_path / "x"
    blocker.write_text("")
    result = invoke("evaluate", pred, ref, "--out", blocker / "m.csv")
    assert result.exit_code == EXIT_USER_ERROR
    assert result.stderr.strip() == f"error: {blocker}: exists and is not a folder"
    assert result.stdout == ""  # nothing evaluated


def test_predict_into_a_file_stops_before_it_loads_the_models(tmp_path: Path):
    """The models' and settings' notes came first, then the error (a refused command prints only its error)."""
    write_case(tmp_path / "raw")
    write_run(tmp_path / "run" / "fold_0", preset="tiny-unet")
    blocker = tmp_path / "x"
    blocker.write_text("")
    result = invoke("predict", tmp_path / "raw", blocker, "--model", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == EXIT_USER_ERROR
    assert result.stderr.strip() == f"error: {blocker}: exists and is not a folder" and "models:" not in result.stdout


def test_evaluate_ignores_and_removes_temporaries_that_a_killed_run_left(tmp_path: Path):
    pred, ref = evaluation_folders(tmp_path)
    (pred / f".{CASE}.nii.gz.k2j3h4.tmp.nii.gz").write_bytes(b"")  # left by a predict killed mid-write
    stale_summary = temporary(tmp_path, "summary.json", dead_pid())
    result = invoke("evaluate", pred, ref, "--out", tmp_path / "m.csv", "--summary", tmp_path / "summary.json")
    assert result.exit_code == 0, result.stderr
    assert "1 cases scored" in result.stdout
    assert not stale_summary.exists()


def test_running_out_of_memory_is_one_line_naming_the_settings_that_size_it(tmp_path: Path, monkeypatch):
    """`train --set train.patch_size=[1024,1024,1024]` (in range) ended in numpy's MemoryError traceback."""
    import transunet3d.data.phantom.generate as generate

    too_large = MemoryError("Unable to allocate 32.0 GiB for an array with shape (2, 4, 1024, 1024, 1024) and data "
                            "type float32")
    for raised, shown in ((too_large, str(too_large)),
                          (RuntimeError("[enforce fail at alloc_cpu.cpp:124] data. DefaultCPUAllocator: can't "
                                        "allocate memory: you tried to allocate 34359738368 bytes."),
                           "data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 34359738368 "
                           "bytes.")):
        def run_out(*args, error=raised, **kwargs):
            raise error

        monkeypatch.setattr(generate, "generate_phantom", run_out)
        result = invoke("phantom", tmp_path / "out", "--cases", "1")
        assert result.exit_code == EXIT_ENVIRONMENT
        assert result.stderr.splitlines()[-1] == (
            f"error: out of memory ({shown}): choose a smaller patch (train.patch_size), batch (loop.batch_size), "
            "window batch (--batch-windows) or grid, or a machine with more memory")
    monkeypatch.setattr(generate, "generate_phantom", lambda *args: (_ for _ in ()).throw(RuntimeError("a bug")))
    assert isinstance(invoke("phantom", tmp_path / "other", "--cases", "1").exception, RuntimeError)  # not hidden
