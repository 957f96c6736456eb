from pathlib import Path

import pytest

from tests.factories import write_case, write_volume
from transunet3d.data.layout import discover_cases, patient_id
from transunet3d.errors import InputError


def test_discovers_case_folders_in_channel_order(tmp_path: Path):
    write_case(tmp_path, "BraTS-MET-00002-000")
    write_case(tmp_path, "BraTS-MET-00001-001", with_seg=False)
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS-MET-00001-001", "BraTS-MET-00002-000"]
    assert [p.name for p in cases[1].image_paths()] == [
        f"BraTS-MET-00002-000-{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f")
    ]
    assert cases[0].seg is None and cases[1].seg.name == "BraTS-MET-00002-000-seg.nii.gz"


def test_linked_case_folders_are_found_once_and_a_link_loop_ends(tmp_path: Path):
    """`ln -s /data/BraTS-MET-* input/` assembles a dataset; `Path.rglob` skipped every linked folder."""
    write_case(tmp_path / "data", "BraTS-MET-00001-000")
    write_case(tmp_path / "data", "BraTS-MET-00002-000")
    (tmp_path / "input").mkdir()
    for case in ("BraTS-MET-00001-000", "BraTS-MET-00002-000"):
        (tmp_path / "input" / case).symlink_to(tmp_path / "data" / case)
    (tmp_path / "input" / "loop").symlink_to(tmp_path / "input")
    (tmp_path / "input" / "BraTS-MET-00001-000" / "BraTS-MET-00001-000-t2f.nii.gz").unlink()
    (tmp_path / "input" / "BraTS-MET-00001-000" / "BraTS-MET-00001-000-t2f.nii.gz").symlink_to(tmp_path / "gone")
    cases = discover_cases(tmp_path / "input")
    assert [case.case_id for case in cases] == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
    assert cases[1].images["t1c"] == tmp_path / "input" / "BraTS-MET-00002-000" / "BraTS-MET-00002-000-t1c.nii.gz"
    assert cases[0].images["t2f"].name == "BraTS-MET-00001-000-t2f.nii.gz"  # dangling: its reader names it


def test_discovers_flat_folder_and_plain_nii(tmp_path: Path):
    write_case(tmp_path, "BraTS-MET-00003-000", folder=False)
    (tmp_path / "notes.txt").write_text("ignored")
    plain = tmp_path / "BraTS-MET-00003-000-t1n.nii.gz"
    plain.rename(tmp_path / "BraTS-MET-00003-000-t1n.nii")
    [case] = discover_cases(tmp_path)
    assert case.images["t1n"].name == "BraTS-MET-00003-000-t1n.nii"
    assert case.seg is not None


def test_duplicate_file_is_an_error(tmp_path: Path):
    write_case(tmp_path, "BraTS-MET-00003-000", folder=False)
    write_volume(tmp_path / "BraTS-MET-00003-000-t1n.nii", __import__("numpy").zeros((2, 2, 2)))
    with pytest.raises(InputError, match="duplicate"):
        discover_cases(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "path does not exist"),
    (lambda p: p, "no BraTS cases found"),
])
def test_bad_roots(tmp_path: Path, make, message):
    with pytest.raises(InputError, match=message):
        discover_cases(make(tmp_path))


def test_patient_id_groups_time_points():
    assert patient_id("BraTS-MET-00132-000") == patient_id("BraTS-MET-00132-001") == "BraTS-MET-00132"


def test_an_empty_case_folder_is_a_case_missing_every_modality(tmp_path: Path):
    write_case(tmp_path, "BraTS-MET-00001-000")
    (tmp_path / "BraTS-MET-00002-000").mkdir()
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
    with pytest.raises(InputError) as error:
        cases[1].image_paths()
    assert str(error.value) == "BraTS-MET-00002-000: BraTS-MET-00002-000-t1n.nii.gz: missing modality t1n"


def test_a_file_in_the_folder_of_another_case_is_an_error(tmp_path: Path):
    write_case(tmp_path / "BraTS-MET-00001-000", "BraTS-MET-00009-000", folder=False)
    with pytest.raises(InputError) as error:
        discover_cases(tmp_path)
    assert str(error.value) == ("BraTS-MET-00009-000: BraTS-MET-00009-000-seg.nii.gz: lies in the folder of case "
                                "BraTS-MET-00001-000")  # the first file in sorted order


def test_nifti_files_of_no_case_are_named_in_one_warning(tmp_path: Path, capsys):
    """A case folder `case2` of `case2-*.nii.gz` files (or `.NII.GZ` names) was left out without a word: validate,
    preprocess and predict went on with the other cases."""
    write_case(tmp_path, "BraTS-MET-00001-000")
    write_case(tmp_path, "BraTS-MET-00002-000")
    for path in sorted((tmp_path / "BraTS-MET-00002-000").iterdir()):
        path.rename(path.with_name(path.name.replace("BraTS-MET-00002-000", "case2")))
    (tmp_path / "BraTS-MET-00002-000").rename(tmp_path / "case2")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._BraTS-MET-00001-000-t1n.nii.gz").write_bytes(b"macOS metadata")  # hidden: not reported
    assert [case.case_id for case in discover_cases(tmp_path)] == ["BraTS-MET-00001-000"]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {tmp_path}: 5 NIfTI file(s) not named as a BraTS case's (CASE-{{t1n,t1c,t2w,t2f,seg}}.nii.gz, "
        "CASE like BraTS-MET-00001-000) are ignored: case2/case2-seg.nii.gz, case2/case2-t1c.nii.gz, "
        "case2/case2-t1n.nii.gz, ..."]
    discover_cases(tmp_path / "BraTS-MET-00001-000")
    assert capsys.readouterr().err == ""
