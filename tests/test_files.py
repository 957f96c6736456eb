"""Atomic writes: temporaries are never data, stale ones are removed safely, failures name the real output."""

import errno
import os
import re
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.factories import dead_pid, temporary
from transunet3d.errors import UserError, describe_os_error
from transunet3d.files import (
    atomic_folder,
    atomic_path,
    check_output_path,
    exclusive_folder,
    is_temporary,
    output_folder,
    prepare_output_files,
    read_json,
    remove_stale_temporaries,
    scratch_folder,
)
from transunet3d.parallel import map_cases


def test_the_temporary_keeps_the_suffix_and_is_recognised(tmp_path: Path):
    with atomic_path(tmp_path / "BraTS-MET-00001-000.nii.gz") as tmp:
        assert tmp.name.endswith(".tmp.nii.gz") and tmp.name.startswith(".BraTS-MET-00001-000.nii.gz.")
        assert is_temporary(tmp)
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["BraTS-MET-00001-000.nii.gz"]
    for name in ("BraTS-MET-00001-000.nii.gz", "a.npy", "summary.json", ".hidden", "x.tmp.json"):
        assert not is_temporary(tmp_path / name)
    assert is_temporary(tmp_path / ".summary.json.k2j3h4.tmp.json")  # the names of earlier versions too


def test_only_temporaries_of_ended_processes_of_this_host_are_removed(tmp_path: Path):
    stale = temporary(tmp_path, "a.nii.gz", dead_pid())
    running = temporary(tmp_path, "b.nii.gz", os.getpid())
    elsewhere = temporary(tmp_path, "c.nii.gz", dead_pid(), host="other-host")
    nested = temporary(output_folder(tmp_path / "sub"), "d.npy", dead_pid())
    data = tmp_path / "a.nii.gz"
    data.write_bytes(b"data")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert running.exists() and elsewhere.exists() and nested.exists() and data.exists()
    assert remove_stale_temporaries(tmp_path, recursive=True) == [nested]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path: Path):
    """A phantom case killed before its label map was written read as an unlabelled case."""
    from transunet3d.data.layout import discover_cases

    case = tmp_path / "BraTS-MET-00001-000"
    case.mkdir()
    (case / "old.txt").write_text("earlier version")
    with pytest.raises(KeyboardInterrupt), atomic_folder(case) as folder:
        (folder / "BraTS-MET-00001-000-t1n.nii.gz").write_bytes(b"half")
        assert is_temporary(folder) and discover_cases(tmp_path)[0].case_id == "BraTS-MET-00001-000"
        assert not (case / "BraTS-MET-00001-000-t1n.nii.gz").exists()
        raise KeyboardInterrupt
    assert sorted(path.name for path in tmp_path.iterdir()) == [case.name]  # the earlier version, untouched
    assert [path.name for path in case.iterdir()] == ["old.txt"]
    with atomic_folder(case) as folder:
        (folder / "new.txt").write_text("this version")
    assert [path.name for path in case.iterdir()] == ["new.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [case.name]


def test_a_folder_a_killed_writer_left_is_removed_and_never_read_as_a_case(tmp_path: Path):
    from transunet3d.data.layout import discover_cases

    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    killed = tmp_path / f".BraTS-MET-00002-000.{dead_pid()}@{host}.x1.tmp"
    killed.mkdir()
    (killed / "BraTS-MET-00002-000-t1n.nii.gz").write_bytes(b"half")
    (tmp_path / "BraTS-MET-00001-000").mkdir()
    assert [case.case_id for case in discover_cases(tmp_path)] == ["BraTS-MET-00001-000"]
    assert remove_stale_temporaries(tmp_path) == [killed] and not killed.exists()


def test_a_scratch_folder_goes_away_and_removes_those_that_killed_runs_left(tmp_path: Path, monkeypatch):
    """challenge-entry's scratch folder of a killed run (its predictions) stayed in $TMPDIR for good."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())
    killed = tmp_path / f"job.{dead_pid()}@{host}.abcd1234.tmp"
    running = tmp_path / f"job.{os.getpid()}@{host}.efgh5678.tmp"
    elsewhere = tmp_path / f"job.{dead_pid()}@other-host.ijkl9012.tmp"
    for folder in (killed, running, elsewhere):
        (folder / "sub").mkdir(parents=True)
    with scratch_folder("job") as scratch:
        assert scratch.parent == tmp_path and scratch.is_dir() and not killed.exists()
        (scratch / "prediction.nii.gz").write_bytes(b"x")
    assert sorted(tmp_path.iterdir()) == sorted([running, elsewhere])


def test_writing_a_file_removes_what_killed_writes_of_it_left(tmp_path: Path):
    """`splits` or the demo's evaluation, killed while writing, left a temporary that their complete rerun kept."""
    stale = temporary(tmp_path, "summary.json", dead_pid())
    running = temporary(tmp_path, "summary.json", os.getpid())
    other = temporary(tmp_path, "summary.json.bak", dead_pid())  # another file's: left to whoever writes that one
    with atomic_path(tmp_path / "summary.json") as tmp:
        tmp.write_text("{}")
    assert not stale.exists() and running.exists() and other.exists()


def test_a_failed_write_names_the_output_and_leaves_nothing(tmp_path: Path):
    target = tmp_path / "metrics.csv"
    with pytest.raises(OSError) as raised, atomic_path(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / ".metrics.csv.x.tmp.csv"))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert describe_os_error(raised.value) == f"{target}: no space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_refuses_the_temporary_names_the_output(tmp_path: Path, monkeypatch):
    def refuse(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "x" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as raised, atomic_path(tmp_path / "summary.json"):
        pass
    assert describe_os_error(raised.value) == f"{tmp_path / 'summary.json'}: permission denied"


def test_a_short_write_without_errno_still_names_the_output(tmp_path: Path):
    with pytest.raises(OSError, match=f"^{tmp_path / 'a.npy'}: could not be written"), atomic_path(tmp_path / "a.npy"):
        raise OSError("473088 requested and 7136 written")


def test_a_file_in_the_way_of_an_output_folder_is_a_user_error(tmp_path: Path):
    blocker = tmp_path / "x"
    blocker.write_text("")
    for output in (blocker / "m.csv", blocker / "deeper" / "m.csv"):
        with pytest.raises(UserError, match=f"^{blocker}: exists and is not a folder$"):
            check_output_path(output)
    with pytest.raises(UserError, match=f"^{blocker}: exists and is not a folder$"):
        output_folder(blocker / "deeper")
    with pytest.raises(UserError, match=f"^{blocker}: exists and is not a folder$"):
        prepare_output_files(tmp_path / "m.csv", None, blocker / "lesions.csv")
    assert sorted(tmp_path.iterdir()) == [blocker]


def test_one_path_for_two_outputs_or_a_folder_for_a_file_is_a_user_error(tmp_path: Path):
    """`evaluate --out m.csv --summary m.csv` wrote the summary over the per-case table; `--out FOLDER` failed
    only when the table was written."""
    again = tmp_path / "sub" / ".." / "m.csv"
    with pytest.raises(UserError, match=f"^{re.escape(str(again))}: given for two outputs; each needs its own file$"):
        prepare_output_files(tmp_path / "m.csv", again)
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match=f"^{tmp_path / 'd'}: is a folder; expected the path of a file to write$"):
        prepare_output_files(tmp_path / "m.csv", None, tmp_path / "d")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "d"]


def test_an_unwritable_output_folder_stops_the_command_before_any_output(tmp_path: Path, monkeypatch):
    """`evaluate --summary` into a folder it cannot write: one error line, exit code 2, and no per-case CSV
    (written first otherwise). This machine runs as root, which may write anywhere, so the folder's permission
    is simulated; `os.access` answers as the kernel would for another user."""
    from click.testing import CliRunner

    from transunet3d.cli.main import cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(UserError, match=f"^{locked}: folder is not writable$"):
        check_output_path(locked / "sub" / "summary.json")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "m.csv"),
                                      "--summary", str(locked / "summary.json")])
    assert result.exit_code == 2 and result.stderr == f"error: {locked}: folder is not writable\n"
    assert sorted(tmp_path.iterdir()) == [locked] and not any(locked.iterdir())


def _fail_to_read(path: Path) -> None:
    path.read_bytes()


def test_an_os_error_in_a_worker_process_keeps_its_file_name(tmp_path: Path):
    missing = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    with pytest.raises(OSError, match=f"^{missing[0]}: no such file or directory$"):
        list(map_cases(_fail_to_read, missing, workers=2, desc="read", progress=False))


def test_npy_files_are_those_of_np_save(tmp_path: Path):
    from transunet3d.data.cache import _save_npy

    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1)
    _save_npy(tmp_path / "a.npy", array)
    np.save(tmp_path / "b.npy", np.ascontiguousarray(array))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


def test_json_that_names_a_key_twice_is_damaged(tmp_path: Path):
    """`json` kept the last of two values (a postprocessing.json with two "settings" applied the second)."""
    path = tmp_path / "postprocessing.json"
    path.write_text('{"settings": {"a": 1}, "settings": {"a": 2}}')
    with pytest.raises(UserError, match=re.escape(f"{path}: damaged, not valid JSON (the key 'settings' appears "
                                                  "twice in one object)")):
        read_json(path)


def test_a_held_folder_refuses_a_second_writer_and_is_not_left_empty(tmp_path: Path):
    """Two trainings into one fold (a resume started while a killed torchrun's workers still trained) wrote the
    same log, checkpoints and pointer at once."""
    import subprocess
    import sys

    run = tmp_path / "run" / "fold_0"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from transunet3d.files import exclusive_folder\n"
        f"with exclusive_folder({str(run)!r}, 'training'):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (pytest.raises(UserError, match=re.escape(f"{run}: another process is training into it")),
              exclusive_folder(run, "training")):
            pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_folder(run, "training") as folder:  # free once its holder ended, however it ended
        (folder / "log.csv").write_text("epoch\n")
    assert (run / "log.csv").is_file()
    with pytest.raises(ValueError), exclusive_folder(tmp_path / "new" / "fold_0", "training"):
        raise ValueError("stopped before its first file")
    assert not (tmp_path / "new").exists()
