"""The dataset's target spacing, planned from the headers of mixed cases in the canonical axis order."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.factories import MODALITIES, write_case, write_volume
from transunet3d.data.layout import discover_cases
from transunet3d.data.plan import brain_shape, header_grid, plan_target_spacing
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.errors import UserError

# The third case stores its axes as (S, L, A) with voxel sizes 3, 0.8, 0.9: in RAS order 0.8 x 0.9 x 3.
SLA = np.array([[0, -0.8, 0, 0], [0, 0, 0.9, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
AFFINES = {"BraTS-MET-00001-000": np.eye(4), "BraTS-MET-00002-000": np.diag([0.5, 0.5, 1.0, 1.0]),
           "BraTS-MET-00003-000": SLA}


def _mixed(root: Path) -> Path:
    for index, (case_id, affine) in enumerate(AFFINES.items()):
        write_case(root, case_id, seed=index, affine=affine)
    return root


def test_headers_give_canonical_spacing_and_shape(tmp_path: Path):
    cases = discover_cases(_mixed(tmp_path / "raw"))
    spacing, shape = header_grid(cases[2])
    np.testing.assert_allclose(spacing, (0.8, 0.9, 3.0))
    assert shape == (14, 10, 12)  # the stored (12, 14, 10) as (L, A, S) -> (R, A, S) axes: file axes 1, 2, 0


def test_the_plan_is_the_per_axis_median_and_is_stored_with_the_cache(tmp_path: Path):
    raw = _mixed(tmp_path / "raw")
    np.testing.assert_allclose(plan_target_spacing(discover_cases(raw)), (0.8, 0.9, 1.0))
    report = preprocess_dataset(raw, tmp_path / "pre", progress=False)
    dataset = json.loads((tmp_path / "pre" / "dataset.json").read_text())
    np.testing.assert_allclose(dataset["target_spacing"], (0.8, 0.9, 1.0))
    assert dataset["axis_order"] == "RAS" and dataset["cases"] == sorted(AFFINES) and report.written == sorted(AFFINES)


def test_a_case_whose_affine_spans_no_volume_is_left_to_its_case_pass(tmp_path: Path):
    """The plan reads only headers, unchecked: an sform with a zero column (and no qform) has no axis order, which
    stopped the whole preprocessing with a traceback."""
    raw = _mixed(tmp_path / "raw")
    flat_case = "BraTS-MET-00004-000"
    write_case(raw, flat_case, seed=4)
    for path in (raw / flat_case).iterdir():
        image = nib.load(path)
        flat = np.eye(4)
        flat[2, 2] = 0.0
        image.header.set_qform(None, code=0)
        image.header.set_sform(flat, code=1)
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), None, header=image.header), path)
    np.testing.assert_allclose(plan_target_spacing(discover_cases(raw)), (0.8, 0.9, 1.0))  # the other three's
    report = preprocess_dataset(raw, tmp_path / "pre", progress=False)
    assert report.written == sorted(AFFINES) and list(report.failed) == [flat_case]
    assert "the affine's 3x3 part is singular" in report.failed[flat_case]


def test_without_a_case_to_plan_from_the_first_case_s_problem_is_named(tmp_path: Path):
    case = write_case(tmp_path / "raw")
    (case / f"{case.name}-t2f.nii.gz").unlink()
    with pytest.raises(UserError, match=f"no case to plan the target spacing from \\(the first: {case.name}: "
                                        f"{case.name}-t2f.nii.gz: missing modality t2f\\)$"):
        preprocess_dataset(tmp_path / "raw", tmp_path / "pre", progress=False)
    assert not (tmp_path / "pre").exists()


def _thick_slices_with_wide_background(root: Path) -> Path:
    """5 cases of 120 x 120 x 30 voxels of 1 x 1 x 3.5-5 mm whose head fills only 48 x 48 voxels in-plane."""
    rng = np.random.default_rng(0)
    for index, thickness in enumerate((3.5, 4.0, 4.0, 4.5, 5.0)):
        case_id = f"BraTS-MET-0000{index + 1}-000"
        head = np.zeros((120, 120, 30), dtype=np.float32)
        head[36:84, 36:84, :] = rng.uniform(1, 2, (48, 48, 30))
        for modality in MODALITIES:
            write_volume(root / case_id / f"{case_id}-{modality}.nii.gz", head, np.diag([1.0, 1.0, thickness, 1.0]))
    return root


def test_a_thick_slice_dataset_is_planned_on_its_brains_shapes_as_by_nnunet(tmp_path: Path):
    """Whole volumes of 120 x 120 x 30 voxels make the slices few (30 x 3 < 120), and the thick axis would take the
    10th percentile of the thicknesses (3.7 mm); nnU-Net plans on the brain crops, 48 x 48 x 30, which are not
    (90 > 48): the median, 4 mm, as nnU-Net v2 2.8.1 plans this dataset."""
    cases = discover_cases(_thick_slices_with_wide_background(tmp_path / "raw"))
    assert [header_grid(case)[1] for case in cases] == [(120, 120, 30)] * 5
    assert [brain_shape(case) for case in cases] == [(48, 48, 30)] * 5
    np.testing.assert_allclose(plan_target_spacing(cases), (1.0, 1.0, 4.0))
