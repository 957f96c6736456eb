"""The bad-input catalogue: each mistake gives one line naming case, file and problem, and exit code 2."""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from tests.factories import brain_case_arrays, set_pixdim, write_case, write_run, write_volume
from transunet3d.cli.main import cli
from transunet3d.errors import EXIT_INCOMPLETE

CASE = "BraTS-MET-00001-000"


def _replace(root: Path, kind: str, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    write_volume(root / CASE / f"{CASE}-{kind}.nii.gz", data, affine)


def _missing_modality(root):
    (root / CASE / f"{CASE}-t2f.nii.gz").unlink()


def _shape_mismatch(root):
    _replace(root, "t1c", np.ones((12, 14, 11), dtype=np.float32))


def _affine_mismatch(root):
    affine = np.eye(4)
    affine[0, 3] = 0.01
    _replace(root, "t2w", brain_case_arrays()[0][2], affine)


def _nan_voxels(root):
    image = brain_case_arrays()[0][1]
    image[3, 4, 2:5] = np.nan
    _replace(root, "t1c", image)


def _label_four(root):
    seg = brain_case_arrays()[1]
    seg[0, 0, 0] = 4
    _replace(root, "seg", seg)


def _non_integer_label(root):
    _replace(root, "seg", brain_case_arrays()[1].astype(np.float32) * 0.5)


def _four_d(root):
    _replace(root, "t1n", np.ones((12, 14, 10, 2), dtype=np.float32))


def _nan_affine(root):
    affine = np.eye(4)
    affine[1, 3] = np.nan
    _replace(root, "t1c", brain_case_arrays()[0][1], affine)


def _voxel_size(size: float):
    def wrong_units(root):  # every file, so that they agree with each other
        image, seg = brain_case_arrays()
        for index, kind in enumerate(("t1n", "t1c", "t2w", "t2f")):
            _replace(root, kind, image[index], np.diag([size, size, size, 1.0]))
        _replace(root, "seg", seg, np.diag([size, size, size, 1.0]))
    wrong_units.__name__ = f"_voxel_size_{size:g}"
    return wrong_units


def _qform_flipped(root):
    """A qform that mirrors the sform: ITK and nibabel would read different images."""
    path = root / CASE / f"{CASE}-t2f.nii.gz"
    image = nib.load(path)
    flipped = image.affine.copy()
    flipped[0, 0], flipped[0, 3] = -1.0, 11.0
    image.set_qform(flipped, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, path)


def _units_in_metres(root):
    """Voxel sizes declared in metres: ITK-based tools read the 1 mm voxels as 1000 mm, nibabel as 1 mm."""
    path = root / CASE / f"{CASE}-t1c.nii.gz"
    image = nib.load(path)
    image.header.set_xyzt_units("meter")
    nib.save(image, path)


def _single_slice(root):
    image, seg = brain_case_arrays()
    for index, kind in enumerate(("t1n", "t1c", "t2w", "t2f")):
        _replace(root, kind, image[index][:, :, 4:5])
    _replace(root, "seg", seg[:, :, 4:5])


def _blank_modality(root):
    _replace(root, "t2w", np.zeros((12, 14, 10), dtype=np.float32))


def _brain_mask_as_modality(root):
    """A mask saved as t2w: 1 wherever the brain is, so z-scoring over the brain left a channel of zeros."""
    _replace(root, "t2w", (brain_case_arrays()[0][0] != 0).astype(np.uint8))


def _outlier_voxel(root):
    """One voxel of 1e30 in a scan of hundreds: z-scored, every other voxel became one value (a blank t2w)."""
    image = brain_case_arrays()[0][2]
    image[6, 7, 5] = 1e30
    _replace(root, "t2w", image)


def _sheared(root):
    """An sform whose y axis leans into x: voxel volumes and distances taken from its column lengths were wrong."""
    affine = np.eye(4)
    affine[0, 1] = 0.5
    _replace(root, "t1n", brain_case_arrays()[0][0], affine)


def _complex_voxels(root):
    _replace(root, "t1c", brain_case_arrays()[0][1].astype(np.complex64))


def _rgb_voxels(root):
    _replace(root, "t2w", np.zeros((12, 14, 10), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]))


def _without_orientation(root):
    _without_orientation_file(root / CASE / f"{CASE}-t2f.nii.gz")


def _without_orientation_file(path: Path) -> None:
    """qform and sform codes 0: nibabel's stand-in affine, from pixdim alone, says nothing of where voxels lie."""
    image = nib.load(path)
    image.header.set_qform(None, code=0)
    image.header.set_sform(None, code=0)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), None, header=image.header), path)


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _not_nifti(path: Path) -> None:
    path.write_bytes(b"this is not a nifti file" * 20)


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _gzip_header_only(path: Path) -> None:
    """The first 10 bytes of the gzip file: its gzip header and nothing else."""
    path.write_bytes(path.read_bytes()[:10])


def _nifti_header_cut(path: Path) -> None:
    """A valid gzip stream holding only the first 100 bytes of the 348-byte NIfTI header."""
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:100]))


# Damage to the bytes of one file, and the problem reported for it.
FILE_DAMAGE = [
    (_cut_in_half, "image data cannot be read"),
    (_not_nifti, "cannot be read as NIfTI"),
    (_zero_bytes, "cannot be read as NIfTI (the file is empty)"),
    (_gzip_header_only, "image data cannot be read (the compressed file ends early)"),
    (_nifti_header_cut, "cannot be read as NIfTI (the header ends after 100 of 348 bytes)"),
]


def _truncated(root):
    _cut_in_half(root / CASE / f"{CASE}-t2w.nii.gz")


def _corrupt(root):
    _not_nifti(root / CASE / f"{CASE}-t1n.nii.gz")


def _empty(root):
    _zero_bytes(root / CASE / f"{CASE}-t1c.nii.gz")


def _gzip_head(root):
    _gzip_header_only(root / CASE / f"{CASE}-t2f.nii.gz")


def _short_header(root):
    _nifti_header_cut(root / CASE / f"{CASE}-t1n.nii.gz")


CATALOGUE = [
    (_missing_modality, f"{CASE}: {CASE}-t2f.nii.gz: missing modality t2f"),
    (_shape_mismatch, f"{CASE}: {CASE}-t1c.nii.gz: shape (12, 14, 11) differs from {CASE}-t1n.nii.gz (12, 14, 10)"),
    (_affine_mismatch, f"{CASE}: {CASE}-t2w.nii.gz: affine differs from {CASE}-t1n.nii.gz by more than 0.0001"),
    (_nan_voxels, f"{CASE}: {CASE}-t1c.nii.gz: 3 voxels are NaN or infinite"),
    (_label_four, f"{CASE}: {CASE}-seg.nii.gz: labels must be in {{0,1,2,3}}, found 4"),
    (_non_integer_label, f"{CASE}: {CASE}-seg.nii.gz: label map has non-integer values"),
    (_four_d, f"{CASE}: {CASE}-t1n.nii.gz: expected a 3D image, got shape (12, 14, 10, 2)"),
    (_nan_affine, f"{CASE}: {CASE}-t1c.nii.gz: the affine (sform, else qform) holds NaN or infinite values"),
    (_voxel_size(1e-6), f"{CASE}: {CASE}-t1n.nii.gz: voxel size 1e-06 x 1e-06 x 1e-06 mm is outside 0.01-100 mm"),
    (_voxel_size(1e4), f"{CASE}: {CASE}-t1n.nii.gz: voxel size 10000 x 10000 x 10000 mm is outside 0.01-100 mm"),
    (_qform_flipped, f"{CASE}: {CASE}-t2f.nii.gz: qform and sform place the voxels up to 11 mm apart"),
    (_units_in_metres, f"{CASE}: {CASE}-t1c.nii.gz: its voxel sizes are declared in meters (the header's "
                       "xyzt_units): ITK-based tools scale them to mm and nibabel does not; write the header in mm"),
    (_single_slice, f"{CASE}: {CASE}-t1n.nii.gz: expected a 3D image, got a single slice (shape (12, 14, 1))"),
    (_blank_modality, f"{CASE}: {CASE}-t2w.nii.gz: every voxel is 0: a blank image"),
    (_brain_mask_as_modality, f"{CASE}: {CASE}-t2w.nii.gz: every brain voxel (nonzero in some modality) is 1: a "
                              "mask or a blank sequence, not an image"),
    (_outlier_voxel, f"{CASE}: {CASE}-t2w.nii.gz: 1 of its "),
    (_sheared, f"{CASE}: {CASE}-t1n.nii.gz: the affine's voxel axes are not perpendicular (sheared by 27 degrees)"),
    (_complex_voxels, f"{CASE}: {CASE}-t1c.nii.gz: voxels of type complex64: an image must hold one integer"),
    (_rgb_voxels, f"{CASE}: {CASE}-t2w.nii.gz: voxels of type RGB: an image must hold one integer"),
    (_without_orientation, f"{CASE}: {CASE}-t2f.nii.gz: has no orientation (qform and sform codes 0), so whether "
                           f"its voxels are those of {CASE}-t1n.nii.gz (the same shape) cannot be told: write it with "
                           f"{CASE}-t1n.nii.gz's header"),
    (_truncated, f"{CASE}: {CASE}-t2w.nii.gz: image data cannot be read"),
    (_corrupt, f"{CASE}: {CASE}-t1n.nii.gz: cannot be read as NIfTI"),
    (_empty, f"{CASE}: {CASE}-t1c.nii.gz: cannot be read as NIfTI (the file is empty)"),
    (_gzip_head, f"{CASE}: {CASE}-t2f.nii.gz: image data cannot be read (the compressed file ends early)"),
    (_short_header, f"{CASE}: {CASE}-t1n.nii.gz: cannot be read as NIfTI (the header ends after 100 of 348 bytes)"),
]


def _one_error_line(result) -> str:
    """The single error line on stderr (progress bars, also on stderr, are ignored)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


@pytest.mark.parametrize("corrupt, expected", CATALOGUE, ids=[c.__name__.strip("_") for c, _ in CATALOGUE])
@pytest.mark.parametrize("command", ["validate", "preprocess", "preprocess --workers 2"])
def test_bad_case_is_one_line_and_the_batch_is_incomplete(tmp_path: Path, corrupt, expected, command):
    raw = tmp_path / "raw"
    write_case(raw)
    write_case(raw, "BraTS-MET-00002-000", seed=1)  # a good case alongside is still processed
    corrupt(raw)
    command, *options = command.split()
    args = [command, str(raw)] + ([str(tmp_path / "out")] if command == "preprocess" else []) + options
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_INCOMPLETE
    assert _one_error_line(result).startswith(f"error: {expected}")
    assert result.stderr.splitlines()[-1] == f"failed cases (1): {CASE}"
    if command == "preprocess":
        assert (tmp_path / "out" / "BraTS-MET-00002-000.json").exists()
        assert not (tmp_path / "out" / f"{CASE}.json").exists()
        assert "preprocessed 1, already done 0, failed 1" in result.stdout


def test_the_2025_scheme_accepts_the_cavity_label_and_no_other(tmp_path: Path):
    raw = tmp_path / "raw"
    write_case(raw)
    _label_four(raw)
    result = CliRunner().invoke(cli, ["validate", str(raw), "--labels", "brats-mets-2025"])
    assert result.exit_code == 0 and result.stdout.strip() == "1 of 1 cases are valid"
    seg = brain_case_arrays()[1]
    seg[0, 0, 0] = 5
    _replace(raw, "seg", seg)
    result = CliRunner().invoke(cli, ["validate", str(raw), "--labels", "brats-mets-2025"])
    assert result.exit_code == EXIT_INCOMPLETE
    assert _one_error_line(result) == f"error: {CASE}: {CASE}-seg.nii.gz: labels must be in {{0,1,2,3,4}}, found 5"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("run") / "tiny")


IMAGE_MISTAKES = [(corrupt, expected) for corrupt, expected in CATALOGUE if "-seg." not in expected]


@pytest.mark.parametrize("corrupt, expected", IMAGE_MISTAKES, ids=[c.__name__.strip("_") for c, _ in IMAGE_MISTAKES])
def test_predict_reports_a_bad_case_and_writes_the_others(tmp_path: Path, run: Path, corrupt, expected):
    raw = tmp_path / "raw"
    write_case(raw)
    write_case(raw, "BraTS-MET-00002-000", seed=1)
    corrupt(raw)
    result = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "out"), "--model", str(run),
                                      "--tta", "none"])
    assert result.exit_code == EXIT_INCOMPLETE
    assert _one_error_line(result).startswith(f"error: {expected}")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["BraTS-MET-00002-000.nii.gz", "ensemble.json"]


@pytest.mark.parametrize("damage, problem", FILE_DAMAGE, ids=[d.__name__.strip("_") for d, _ in FILE_DAMAGE])
@pytest.mark.parametrize("side", ["prediction", "reference"])
def test_evaluate_reports_an_unreadable_file_and_scores_the_others(tmp_path: Path, damage, problem, side):
    ref, pred, other = tmp_path / "ref", tmp_path / "pred", "BraTS-MET-00002-000"
    for case_id in (CASE, other):
        write_volume(pred / f"{case_id}.nii.gz", brain_case_arrays()[1])
        write_volume(ref / f"{case_id}-seg.nii.gz", brain_case_arrays()[1])
    damaged = pred / f"{CASE}.nii.gz" if side == "prediction" else ref / f"{CASE}-seg.nii.gz"
    damage(damaged)
    result = CliRunner().invoke(cli, ["evaluate", str(pred), str(ref), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_INCOMPLETE
    assert _one_error_line(result).startswith(f"error: 00001-000: {damaged.name}: {problem}")
    assert {row.split(",")[0] for row in (tmp_path / "m.csv").read_text().splitlines()[1:]} == {"00002-000"}


def test_predict_writes_the_voxel_size_of_the_input_affine(tmp_path: Path, run: Path):
    """Inputs whose pixdim is 0 but whose sform gives 3.23 mm: the submission's zooms match its affine."""
    raw = tmp_path / "raw"
    write_case(raw, affine=np.diag([3.23, 3.23, 3.23, 1.0]))
    for path in (raw / CASE).iterdir():
        set_pixdim(path, (0.0, 0.0, 0.0))
    result = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "out"), "--model", str(run),
                                      "--tta", "none"])
    assert result.exit_code == 0, result.output
    written = nib.load(tmp_path / "out" / f"{CASE}.nii.gz")
    assert written.header.get_zooms() == pytest.approx(np.linalg.norm(written.affine[:3, :3], axis=0))
    assert written.header.get_zooms() == pytest.approx((3.23, 3.23, 3.23))
    assert "pixdim[1,2,3]" not in result.stderr  # nibabel's own text, replaced by one warning line per file


def test_predict_ignores_the_labels_of_its_input(tmp_path: Path, run: Path):
    raw = tmp_path / "raw"
    write_case(raw)
    _label_four(raw)
    result = CliRunner().invoke(cli, ["predict", str(raw), str(tmp_path / "out"), "--model", str(run),
                                      "--tta", "none"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("make, expected", [
    (lambda p: p / "nowhere", "path does not exist"),
    (lambda p: p, "no BraTS cases found"),
])
@pytest.mark.parametrize("command", ["validate", "preprocess"])
def test_bad_folder_is_one_line_and_exit_2(tmp_path: Path, make, expected, command):
    target = make(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    args = [command, str(target)] + ([str(tmp_path / "out")] if command == "preprocess" else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line == f"error: {target}: {expected}" or line.startswith(f"error: {target}: {expected}")


@pytest.mark.parametrize("command", ["validate", "preprocess"])
def test_a_negative_pixdim_fails_its_case_naming_the_file(tmp_path: Path, command):
    """ITK-based tools read a negative voxel size as a mirrored axis, nibabel as its absolute value (it was a
    warning, and the prediction was written for one of two mirror images)."""
    raw = tmp_path / "raw"
    write_case(raw, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    set_pixdim(raw / CASE / f"{CASE}-t1n.nii.gz", (-2.0, -2.0, -2.0))
    args = [command, str(raw)] + ([str(tmp_path / "out")] if command == "preprocess" else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {CASE}: {CASE}-t1n.nii.gz: the header's voxel size (pixdim) is -2 x -2 x -2 mm: negative sizes are "
        "read as mirrored axes by some tools (ITK) and not by others (nibabel); write the header with positive pixdim"]


def test_evaluate_refuses_a_prediction_without_orientation(tmp_path: Path):
    """With its grid centred on the origin, nibabel's stand-in affine is the reference's grid mirrored in x: read as
    another axis order, the prediction was scored mirrored (Dice 0) without a word."""
    seg = brain_case_arrays()[1]
    centred = np.eye(4)
    centred[:3, 3] = -(np.array(seg.shape) - 1) / 2
    write_volume(tmp_path / "ref" / f"{CASE}-seg.nii.gz", seg, centred)
    _without_orientation_file(write_volume(tmp_path / "pred" / f"{CASE}.nii.gz", seg, centred))
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"),
                                      "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_INCOMPLETE
    assert _one_error_line(result).startswith(f"error: 00001-000: {CASE}.nii.gz: has no orientation")


def test_valid_folder_passes_validation(case_root: Path):
    result = CliRunner().invoke(cli, ["validate", str(case_root)])
    assert result.exit_code == 0, result.output
    assert "1 of 1 cases are valid" in result.stdout


def test_truncated_file_is_really_truncated(tmp_path: Path):
    """Guard for the catalogue: the truncated file must still have a readable header."""
    write_case(tmp_path)
    _truncated(tmp_path)
    assert nib.load(tmp_path / CASE / f"{CASE}-t2w.nii.gz").shape == (12, 14, 10)
