"""One grid per case: files that store the same voxels in another axis order are read onto the first modality's
order exactly; files whose voxels lie elsewhere are refused."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.factories import SHAPE as GRID_SHAPE
from tests.factories import write_case
from transunet3d.data.layout import discover_cases
from transunet3d.data.validate import NO_ORIENTATION, load_case
from transunet3d.errors import InputError

CASE = "BraTS-MET-00001-000"


def _store_in(path: Path, codes: str) -> None:
    """Rewrite `path` with its voxels in the axis order `codes` (the same grid: the affine changes with them)."""
    image = nib.load(path)
    transform = nib.orientations.ornt_transform(nib.io_orientation(image.affine), nib.orientations.axcodes2ornt(codes))
    nib.save(image.as_reoriented(transform), path)


@pytest.mark.parametrize(("kind", "codes"), [("seg", "PIL"), ("t2w", "LPS"), ("seg", "SRA")])
def test_a_file_in_another_axis_order_is_read_onto_the_case_s_grid(tmp_path: Path, kind: str, codes: str):
    expected = load_case(discover_cases(write_case(tmp_path / "ras").parent)[0])
    _store_in(write_case(tmp_path / "mixed").parent / CASE / f"{CASE}-{kind}.nii.gz", codes)
    found = load_case(discover_cases(tmp_path / "mixed")[0])
    assert np.array_equal(found.image, expected.image) and np.array_equal(found.seg, expected.seg)
    assert found.geometry == expected.geometry


def test_the_same_array_with_a_mirrored_affine_is_refused(tmp_path: Path):
    root = write_case(tmp_path / "raw").parent
    path = root / CASE / f"{CASE}-seg.nii.gz"
    image = nib.load(path)
    mirrored = image.affine.copy()
    mirrored[0, 0] = -1  # the same voxels at x from -11 to 0 mm instead of 0 to 11
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), mirrored), path)
    with pytest.raises(InputError, match=f"{CASE}-seg.nii.gz: affine differs from {CASE}-t1n.nii.gz"):
        load_case(discover_cases(root)[0])


def _without_orientation(path: Path) -> None:
    """`path` with qform and sform codes 0: nibabel then stands in an affine from pixdim alone, x mirrored."""
    image = nib.load(path)
    image.header.set_qform(None, code=0)
    image.header.set_sform(None, code=0)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), None, header=image.header), path)


@pytest.mark.parametrize("kind", ["t2w", "seg"])
def test_a_file_without_orientation_beside_oriented_ones_is_refused(tmp_path: Path, kind: str):
    """Its stand-in affine is the case's grid mirrored (here centred on the origin): taken for another axis order,
    it was read mirrored without a word."""
    root = write_case(tmp_path / "raw", affine=_centred()).parent
    _without_orientation(root / CASE / f"{CASE}-{kind}.nii.gz")
    with pytest.raises(InputError, match=f"{CASE}-{kind}.nii.gz: has no orientation \\(qform and sform codes 0\\), "
                                         f"so whether its voxels are those of {CASE}-t1n.nii.gz \\(the same shape\\)"):
        load_case(discover_cases(root)[0])


def test_a_file_without_orientation_and_of_another_shape_is_refused(tmp_path: Path):
    root = write_case(tmp_path / "raw", affine=_centred()).parent
    path = root / CASE / f"{CASE}-t2w.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj)[1:], image.affine), path)
    _without_orientation(path)
    with pytest.raises(InputError, match=f"{CASE}-t2w.nii.gz: has no orientation \\(qform and sform codes 0\\) and "
                                         f"another grid than {CASE}-t1n.nii.gz: where its voxels lie"):
        load_case(discover_cases(root)[0])


def test_files_all_without_orientation_share_their_grid_with_a_word(tmp_path: Path, capsys):
    """They are read as they are stored; that nibabel's stand-in order is a guess is said once for the case."""
    expected = load_case(discover_cases(write_case(tmp_path / "oriented", affine=_centred()).parent)[0])
    assert "warning" not in capsys.readouterr().err
    root = write_case(tmp_path / "raw", affine=_centred()).parent
    for path in (root / CASE).iterdir():
        _without_orientation(path)
    found = load_case(discover_cases(root)[0])
    assert np.array_equal(found.image, expected.image) and np.array_equal(found.seg, expected.seg)
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [f"warning: {CASE}: {CASE}-t1n.nii.gz: {NO_ORIENTATION}"]


def _centred(spacing: float = 1.0) -> np.ndarray:
    """An affine that puts the origin at the grid's centre, as nibabel's stand-in for a file without orientation
    does (with x mirrored)."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (np.array(GRID_SHAPE) - 1) / 2
    return affine


def _turned(degrees: float) -> np.ndarray:
    """An affine of 1.2 mm voxels turned by `degrees` about z."""
    turn = np.radians(degrees)
    affine = np.eye(4)
    affine[:3, :3] = 1.2 * np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    affine[:3, 3] = (-10.0, 5.0, 3.0)
    return affine


@pytest.mark.parametrize("degrees", [25.0, 45.0])
def test_the_same_oblique_grid_transposed_is_read_onto_the_case_s_grid(tmp_path: Path, degrees: float):
    """At 45 degrees each voxel axis is as close to two world axes, and the file and its transposed copy were
    given axis orders that did not match (RAS and LAS): a valid case was refused as another grid."""
    expected = load_case(discover_cases(write_case(tmp_path / "ras", affine=_turned(degrees)).parent)[0])
    path = write_case(tmp_path / "mixed", affine=_turned(degrees)).parent / CASE / f"{CASE}-t1c.nii.gz"
    image = nib.load(path)
    swapped = image.affine.copy()
    swapped[:3, [0, 1]] = image.affine[:3, [1, 0]]
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj).transpose(1, 0, 2), swapped), path)
    found = load_case(discover_cases(tmp_path / "mixed")[0])
    assert np.array_equal(found.image, expected.image) and np.array_equal(found.seg, expected.seg)
    assert found.geometry == expected.geometry
