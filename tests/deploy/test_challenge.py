"""`transunet3d challenge-entry` on phantom folders, as a BraTS orchestrator runs the container, without Docker."""

import errno
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.deploy.conftest import CASES, error_lines, invoke
from tests.factories import dead_pid, temporary, write_volume
from tests.inference.test_trained_and_ensemble import poison_weights
from transunet3d.data.layout import discover_cases
from transunet3d.deploy.challenge import EntrySettings, check_outputs, read_parameters, run_challenge
from transunet3d.errors import EXIT_ENVIRONMENT, EXIT_INCOMPLETE, EXIT_USER_ERROR, UserError


def assert_one_output_per_case_in_its_geometry(phantoms: Path, out: Path) -> None:
    assert sorted(path.name for path in out.iterdir()) == [f"{case}.nii.gz" for case in CASES]
    for case in CASES:
        source, written = nib.load(phantoms / case / f"{case}-t1n.nii.gz"), nib.load(out / f"{case}.nii.gz")
        assert written.shape == source.shape and written.get_data_dtype() == np.uint8
        np.testing.assert_allclose(written.affine, source.affine, atol=1e-6)
        assert np.asanyarray(written.dataobj).any()


def test_the_mlcube_call_on_an_export_writes_one_label_map_per_case_without_network(
        exported: Path, phantoms: Path, tmp_path: Path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("challenge-entry tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("tta: none\nfold: 0\n")
    out = tmp_path / "predictions"
    result = invoke("challenge-entry", "infer", f"--data_path={phantoms}", f"--output_path={out}",
                    f"--parameters_file={parameters}", "--model", exported)
    assert result.exit_code == 0, result.output
    assert f"challenge-entry: 2 case(s), onnxruntime on cpu: wrote 2, passed the checks 2 -> {out}" in result.output
    assert_one_output_per_case_in_its_geometry(phantoms, out)


def test_two_processes_share_the_cases_of_a_run(cv_run: Path, phantoms: Path, tmp_path: Path):
    """As on a machine with two GPUs: one process per device, each with every other case."""
    report = run_challenge(phantoms, tmp_path / "out", cv_run, EntrySettings(tta="none", fold="0"),
                           devices=["cpu", "cpu"], progress=False)
    assert (report.backend, report.written, report.failed) == ("torch", list(CASES), {})
    assert_one_output_per_case_in_its_geometry(phantoms, tmp_path / "out")


def test_a_rerun_leaves_no_stale_label_map_of_a_case_that_fails_now(cv_run: Path, phantoms: Path, tmp_path: Path):
    """An earlier run's label map of a case that now fails stayed in the output and was counted as written; a killed
    run's hidden temporary stayed beside the outputs."""
    out, inputs = tmp_path / "out", tmp_path / "in"
    shutil.copytree(phantoms, inputs)
    settings = EntrySettings(tta="none", fold="0")
    assert run_challenge(inputs, out, cv_run, settings, devices=["cpu"], progress=False).written == list(CASES)
    broken = inputs / CASES[1] / f"{CASES[1]}-t2w.nii.gz"
    broken.write_bytes(broken.read_bytes()[:3000])
    temporary(out, f"{CASES[0]}.nii.gz", dead_pid())
    report = run_challenge(inputs, out, cv_run, settings, devices=["cpu"], progress=False)
    assert report.written == [CASES[0]] and list(report.failed) == [CASES[1]]
    assert sorted(path.name for path in out.iterdir()) == [f"{CASES[0]}.nii.gz"]


def test_outputs_that_the_orchestrator_would_refuse_are_reported(phantoms: Path, tmp_path: Path):
    cases = discover_cases(phantoms)
    source = nib.load(phantoms / CASES[0] / f"{CASES[0]}-t1n.nii.gz")
    write_volume(tmp_path / f"{CASES[0]}.nii.gz", np.zeros(source.shape, np.uint8), source.affine)
    assert check_outputs(cases, tmp_path) == {
        CASES[0]: f"{CASES[0]}: {CASES[0]}.nii.gz: all zero (the challenge refuses empty label maps)",
        CASES[1]: f"{CASES[1]}: no output {CASES[1]}.nii.gz"}
    write_volume(tmp_path / f"{CASES[1]}.nii.gz", np.ones((4, 4, 4), np.uint8), source.affine)
    assert "shape (4, 4, 4) differs from the input's" in check_outputs(cases, tmp_path)[CASES[1]]
    write_volume(tmp_path / "BraTS-MET-00099-000.nii.gz", np.ones((4, 4, 4), np.uint8), source.affine)
    assert check_outputs(cases, tmp_path)["BraTS-MET-00099-000.nii.gz"] == \
        "BraTS-MET-00099-000.nii.gz: a label map of no input case"  # one output more than the inputs


def test_label_maps_of_other_cases_in_the_output_folder_are_refused_before_any_work(exported: Path, phantoms: Path,
                                                                                      tmp_path: Path):
    """An earlier batch's outputs passed the "one per input case" check: 3 label maps for 1 input, exit 0."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "BraTS-MET-00099-000.nii.gz").write_bytes(b"an earlier batch's")
    (out / "notes.txt").write_text("kept\n")
    result = invoke("challenge-entry", "--data_path", phantoms, "--output_path", out, "--model", exported)
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert error_lines(result) == [f"error: {out}: holds label maps of cases not in {phantoms} "
                                   "(BraTS-MET-00099-000.nii.gz); the challenge refuses more outputs than inputs: "
                                   "remove them or choose an empty folder"]
    assert sorted(path.name for path in out.iterdir()) == ["BraTS-MET-00099-000.nii.gz", "notes.txt"]


def test_a_failing_check_makes_the_exit_code_say_so(exported: Path, phantoms: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("transunet3d.deploy.challenge._output_problem",
                        lambda case, path: "all zero" if case.case_id == CASES[1] else None)
    result = invoke("challenge-entry", "--data_path", phantoms, "--output_path", tmp_path / "out", "--model",
                    exported, "--parameters_file", write_parameters(tmp_path, "tta: none\nfold: 1\n"))
    assert result.exit_code == EXIT_INCOMPLETE
    assert error_lines(result) == [f"error: {CASES[1]}: {CASES[1]}.nii.gz: all zero"]
    assert result.stderr.splitlines()[-1] == f"failed cases (1): {CASES[1]}"


def write_parameters(folder: Path, text: str) -> Path:
    path = folder / "parameters.yaml"
    path.write_text(text)
    return path


def test_mistakes_are_one_error_line_and_write_nothing(exported: Path, cv_run: Path, phantoms: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    fold_5 = write_parameters(tmp_path, "fold: 5\n")  # the models lack it: the output folder was made, empty
    poisoned = tmp_path / "poisoned"  # weights holding NaN: refused in a shard, after the output folder was made
    shutil.copytree(cv_run, poisoned)
    weights = poison_weights(poisoned / "fold_1")
    other_scheme = tmp_path / "other_scheme"  # tuned for the 2025 regions: refused in a shard, the folder left empty
    shutil.copytree(cv_run, other_scheme)
    tuned = {"settings": {"thresholds": {"WT": 0.5, "TC": 0.5, "ET": 0.5, "RC": 0.5},
                          "min_lesion_mm3": {"WT": 0, "TC": 0, "ET": 0, "RC": 0}, "require_core": False}}
    (other_scheme / "postprocessing.json").write_text(json.dumps(tuned))
    cases = [("--data_path", empty, "--model", exported), ("--data_path", phantoms, "--model", tmp_path / "none"),
             ("--data_path", phantoms, "--model", phantoms),
             ("--data_path", phantoms, "--model", exported, "--parameters_file", tmp_path / "missing.yaml"),
             ("--data_path", phantoms, "--model", exported, "--parameters_file", fold_5),
             ("--data_path", phantoms, "--model", cv_run, "--parameters_file", fold_5),
             ("--data_path", phantoms, "--model", poisoned), ("--data_path", phantoms, "--model", other_scheme)]
    expected = [f"error: {empty}: no BraTS cases found", f"error: {tmp_path / 'none'}: model folder does not exist",
                f"error: {phantoms}: neither a training run nor an exported model folder",
                f"error: {tmp_path / 'missing.yaml'}: parameters file does not exist",
                f"error: {exported}: no fold '5'; it has folds 0, 1",
                f"error: {cv_run}: no fold '5'; it has folds 0, 1", f"error: {weights}: 2 of ",
                f"error: {other_scheme / 'postprocessing.json'}: postprocessing settings: thresholds must give "
                "exactly the regions WT, TC, ET"]
    for args, message in zip(cases, expected):
        result = invoke("challenge-entry", *args, "--output_path", out)
        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert len(error_lines(result)) == 1 and error_lines(result)[0].startswith(message)
    assert not out.exists()
    before = sorted(phantoms.rglob("*"))
    inside = invoke("challenge-entry", "--data_path", phantoms, "--model", exported, "--output_path", phantoms)
    assert inside.exit_code == EXIT_USER_ERROR and error_lines(inside) == [
        f"error: {phantoms}: is the input folder {phantoms}, which is read only; write into another folder"]
    assert sorted(phantoms.rglob("*")) == before


def test_an_output_folder_that_cannot_be_written_is_the_environments_error(exported: Path, phantoms: Path,
                                                                            tmp_path: Path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()

    def read_only(dir=None, prefix=None, suffix=None):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}x{suffix}"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = invoke("challenge-entry", "--data_path", phantoms, "--output_path", out, "--model", exported)
    assert result.exit_code == EXIT_ENVIRONMENT
    assert error_lines(result) == [f"error: {out}: read-only file system"]


def test_parameters_files_are_checked():
    assert read_parameters(None) == EntrySettings()
    with tempfile.TemporaryDirectory() as folder:
        assert read_parameters(write_parameters(Path(folder), "# nothing set\n")) == EntrySettings()
        assert read_parameters(write_parameters(Path(folder), "fold: 3\nstep: 0.25\ncheckpoint: best\n")) == \
            EntrySettings(fold="3", step=0.25, checkpoint="best")
        for text, message in (("tta: all\n", "tta must be none or flip or flip+rot, not 'all'"),
                              ("steps: 1\n", "unknown setting(s) steps"), ("- 1\n", "must be a mapping"),
                              ("batch_windows: 0\n", "batch_windows must be a whole number >= 1"),
                              ("step: 0.000001\n", "step must be a number in [0.05, 1], not 1e-06"),
                              ("fold: 0\nfold: 1\n", "the key 'fold' appears twice (line 2)"),
                              ("batch_windows: 0x2\n", "batch_windows must be a whole number >= 1, not '0x2'"),
                              ("fold: 0,0\n", "fold: '0,0' names a fold twice")):
            with pytest.raises(UserError, match=re.escape(message)):
                read_parameters(write_parameters(Path(folder), text))
