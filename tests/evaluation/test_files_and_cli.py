"""Evaluation from files: pairing by case id, per-case errors, missing predictions, the CLI and its tables."""

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from tests.factories import set_pixdim
from transunet3d.cli.main import cli
from transunet3d.errors import EXIT_INCOMPLETE, InputError
from transunet3d.evaluation import region_mask, score_region
from transunet3d.evaluation.case import MISSING_PREDICTION, evaluate_labels, evaluate_pair
from transunet3d.evaluation.pairing import CasePair, pair_cases
from transunet3d.evaluation.report import METRIC_COLUMNS


def save(path: Path, labels: np.ndarray, zooms=(1.0, 1.0, 1.0), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(labels.astype(dtype), np.diag([*zooms, 1.0]))
    nib.save(image, path)
    return path


def lesion_labels(shape=(20, 20, 20)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    labels[3:8, 3:8, 3:8] = 2
    labels[4:7, 4:7, 4:7] = 3
    labels[5, 5, 5] = 1
    labels[12:16, 12:16, 12:16] = 3
    return labels


def test_pairing_by_case_id(tmp_path: Path):
    save(tmp_path / "ref" / "BraTS-MET-00001-000" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "ref" / "BraTS-MET-00002-000-seg.nii", lesion_labels())
    save(tmp_path / "pred" / "model_A_00001-000_final.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "BraTS-MET-00009-000.nii.gz", lesion_labels())
    pairing = pair_cases(tmp_path / "pred", tmp_path / "ref")
    assert [(p.case, p.prediction.name if p.prediction else None) for p in pairing.pairs] == [
        ("00001-000", "model_A_00001-000_final.nii.gz"), ("00002-000", None)]
    assert [(path.name, reason) for path, reason in pairing.ignored] == [
        ("BraTS-MET-00009-000.nii.gz", "no reference for this prediction")]


def test_a_prediction_under_another_brats_prefix_is_scored_with_a_warning(tmp_path: Path):
    """A glioma prediction BraTS-GLI-00001-000 was scored against BraTS-MET-00001-000 without a word."""
    save(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "ref" / "BraTS-MET-00002-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "BraTS-GLI-00001-000.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "brats-met-00002-000.nii.gz", lesion_labels())  # the same prefix in other letters
    save(tmp_path / "other" / "model_00001-000.nii.gz", lesion_labels())  # no prefix: nothing to compare
    assert pair_cases(tmp_path / "other", tmp_path / "ref").other_prefix == []
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--out",
                                      str(tmp_path / "metrics.csv")])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert result.exit_code == 0 and warnings == [
        f"warning: {tmp_path / 'pred' / 'BraTS-GLI-00001-000.nii.gz'}: scored against BraTS-MET-00001-000-seg.nii.gz, "
        "a case of the same number under another BraTS prefix"]


def test_pairing_follows_linked_case_folders_and_reads_only_whole_case_ids(tmp_path: Path):
    """Linked case folders were skipped (the mean over the cases left, exit 0); BraTS-MET-100001-000 was taken for
    case 00001-000."""
    for case in ("00001-000", "00002-000"):
        save(tmp_path / "data" / f"BraTS-MET-{case}" / f"BraTS-MET-{case}-seg.nii.gz", lesion_labels())
        (tmp_path / "ref").mkdir(exist_ok=True)
        (tmp_path / "ref" / f"BraTS-MET-{case}").symlink_to(tmp_path / "data" / f"BraTS-MET-{case}")
    (tmp_path / "ref" / "loop").symlink_to(tmp_path / "ref")
    (tmp_path / "ref" / "again").symlink_to(tmp_path / "data" / "BraTS-MET-00001-000")
    save(tmp_path / "elsewhere" / "BraTS-MET-00002-000.nii.gz", lesion_labels())
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "linked").symlink_to(tmp_path / "elsewhere")
    save(tmp_path / "pred" / "BraTS-MET-100001-000.nii.gz", lesion_labels())
    pairing = pair_cases(tmp_path / "pred", tmp_path / "ref")
    assert [(p.case, p.prediction and p.prediction.relative_to(tmp_path)) for p in pairing.pairs] == [
        ("00001-000", None), ("00002-000", Path("pred/linked/BraTS-MET-00002-000.nii.gz"))]
    assert pairing.ignored == [(tmp_path / "pred" / "BraTS-MET-100001-000.nii.gz",
                                "no case id (like 00132-000) in its name")]


def test_a_prediction_that_is_not_a_readable_file_fails_its_case(tmp_path: Path):
    """A dangling link or a folder under a prediction's name was left out: the case scored as an empty prediction
    with exit 0. An upper-case suffix is read (it stopped the batch with a traceback)."""
    for number in (1, 2, 3):
        save(tmp_path / "ref" / f"BraTS-MET-0000{number}-000-seg.nii.gz", lesion_labels())
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    (tmp_path / "pred" / "BraTS-MET-00002-000.nii.gz").mkdir()
    save(tmp_path / "pred" / "BraTS-MET-00003-000.NII.GZ", lesion_labels())
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"),
                                      "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: 00001-000: BraTS-MET-00001-000.nii.gz: cannot be read as NIfTI ([Errno 2] No such file or "
        f"directory: '{tmp_path / 'pred' / 'BraTS-MET-00001-000.nii.gz'}')",
        f"error: 00002-000: BraTS-MET-00002-000.nii.gz: cannot be read as NIfTI ([Errno 21] Is a directory: "
        f"'{tmp_path / 'pred' / 'BraTS-MET-00002-000.nii.gz'}')"]
    assert "1 cases scored" in result.stdout and "lesion-wise Dice 1.0000" in result.stdout


@pytest.mark.parametrize("setup, message", [
    (lambda t: (t / "nope", t / "ref"), "prediction folder does not exist"),
    (lambda t: (t / "pred", t / "pred"), "no reference segmentations"),
])
def test_pairing_errors(tmp_path: Path, setup, message):
    save(tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz", lesion_labels())
    save(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    with pytest.raises(InputError, match=message):
        pair_cases(*setup(tmp_path))


def test_two_predictions_for_one_case_is_an_error(tmp_path: Path):
    save(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "old" / "BraTS-MET-00001-000.nii.gz", lesion_labels())
    with pytest.raises(InputError, match="second file for this case"):
        pair_cases(tmp_path / "pred", tmp_path / "ref")


def test_missing_prediction_scores_as_empty_and_is_flagged(tmp_path: Path):
    ref = save(tmp_path / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    result = evaluate_pair(CasePair("00001-000", ref, None))
    assert result.flags == [MISSING_PREDICTION]
    assert [(s.num_tp, s.num_fn, s.lesionwise_dice, s.lesionwise_hd95) for s in result.regions.values()] == [
        (0, 2, 0.0, 374.0), (0, 2, 0.0, 374.0), (0, 2, 0.0, 374.0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint16, np.int32])
@pytest.mark.parametrize("rules", ["brats2023", "brats2025"])
def test_a_label_map_of_any_stored_type_scores_like_its_uint8_twin(tmp_path: Path, dtype, rules):
    """Evaluation reads the labels as stored and converts only the crop around the lesions, on either side."""
    ref_labels, pred_labels = lesion_labels(), np.roll(lesion_labels(), 1, axis=0)
    expected = evaluate_pair(CasePair("00001-000", save(tmp_path / "ref-seg.nii.gz", ref_labels),
                                      save(tmp_path / "pred.nii.gz", pred_labels)), rules=rules)
    for typed in ("reference", "prediction"):
        ref = save(tmp_path / typed / "ref-seg.nii.gz", ref_labels, dtype=dtype if typed == "reference" else np.uint8)
        pred = save(tmp_path / typed / "pred.nii.gz", pred_labels, dtype=dtype if typed == "prediction" else np.uint8)
        scored = evaluate_pair(CasePair("00001-000", ref, pred), rules=rules)
        assert scored.error is None and scored.regions == expected.regions


@pytest.mark.parametrize("stray, problem", [
    (4, "labels must be in {0,1,2,3}, found 4"),
    (1.5, "label map has non-integer values"),
    (np.nan, "1 voxels are NaN or infinite"),
    (-1, "labels must be in {0,1,2,3}, found -1"),
    (1e6, "labels must be in {0,1,2,3}, found 1e+06"),
])
@pytest.mark.parametrize("side", ["prediction", "reference"])
def test_a_label_outside_the_scheme_fails_its_case_and_the_others_are_scored(tmp_path: Path, stray, problem, side):
    """A label that no region holds would otherwise be scored as background, a silent wrong number."""
    for case in ("00001-000", "00002-000"):
        save(tmp_path / "ref" / f"BraTS-MET-{case}-seg.nii.gz", lesion_labels(), dtype=np.float32)
        save(tmp_path / "pred" / f"BraTS-MET-{case}.nii.gz", lesion_labels(), dtype=np.float32)
    strayed = lesion_labels().astype(np.float32)
    strayed[18, 18, 18] = stray
    bad = tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz" if side == "prediction" else \
        tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz"
    save(bad, strayed, dtype=np.float32)
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"),
                                      "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_INCOMPLETE
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 00001-000: {bad.name}: {problem}"]
    assert {row["case"] for row in csv.DictReader((tmp_path / "m.csv").open())} == {"00002-000"}


def _reoriented(path: Path, codes: str) -> nib.Nifti1Image:
    """The image of `path` stored in the axis order `codes`: the same voxels at the same places."""
    image = nib.load(path)
    return image.as_reoriented(nib.orientations.ornt_transform(nib.io_orientation(image.affine),
                                                               nib.orientations.axcodes2ornt(codes)))


def test_a_prediction_in_another_axis_order_scores_as_in_the_reference_s(tmp_path: Path):
    labels = lesion_labels((20, 22, 18))
    labels[0:2, 15:20, 10:14] = 2  # not symmetric: any mistaken flip or transpose changes the scores
    ref = save(tmp_path / "ref-seg.nii.gz", labels, zooms=(1.0, 1.2, 1.5))
    pred = tmp_path / "pred.nii.gz"
    nib.save(_reoriented(ref, "PIL"), pred)
    assert nib.load(pred).shape == (22, 18, 20)
    result = evaluate_pair(CasePair("00001-000", ref, pred), with_lesions=True)
    same = evaluate_pair(CasePair("00001-000", ref, ref), with_lesions=True)
    assert result.error is None and result.regions == same.regions and result.lesions == same.lesions
    assert result.regions["WT"].lesionwise_dice == 1.0


@pytest.mark.parametrize("change", ["shift 20 mm", "mirrored about x = 0", "voxel size", "shape"])
def test_a_prediction_on_another_grid_fails_its_case_instead_of_being_scored(tmp_path: Path, change: str):
    """The voxels of a prediction that lies elsewhere are not compared one to one with the reference's: the
    official code would score the same array with any affine as a perfect prediction."""
    ref = save(tmp_path / "ref-seg.nii.gz", lesion_labels())
    affine, labels = np.eye(4), lesion_labels()
    if change == "shift 20 mm":
        affine[0, 3] = 20
    elif change == "mirrored about x = 0":  # x from -19 to 0 mm instead of 0 to 19
        affine[0, 0] = -1
    elif change == "voxel size":
        affine[2, 2] = 1.5
    else:
        labels = lesion_labels((20, 20, 21))
    pred = tmp_path / "pred.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), pred)
    result = evaluate_pair(CasePair("00001-000", ref, pred))
    assert result.regions == {}
    expected = ("shape (20, 20, 21) differs from ref-seg.nii.gz (20, 20, 20)" if change == "shape"
                else "affine differs from ref-seg.nii.gz by more than 0.0001")
    assert result.error == f"00001-000: pred.nii.gz: {expected}"


def test_a_prediction_within_the_grid_tolerance_but_of_other_voxel_sizes_fails_its_case(tmp_path: Path):
    """At 1.00009 mm on a 1 mm reference the official 2023 code measures with the prediction's size (a 2-voxel
    lesion then counts as missed), the 2025 package refuses the pair. Beyond 1e-5 the prediction was written for
    another grid: refused under both rule sets."""
    ref = save(tmp_path / "ref-seg.nii.gz", lesion_labels())
    pred = save(tmp_path / "pred.nii.gz", lesion_labels(), zooms=(1.00009, 1.00009, 1.00009))
    result = evaluate_pair(CasePair("00001-000", ref, pred))
    assert result.regions == {} and result.error == (
        "00001-000: pred.nii.gz: voxel size 1.00009 x 1.00009 x 1.00009 mm differs from ref-seg.nii.gz 1 x 1 x 1 mm: "
        "write the prediction with the reference's header")
    exact = save(tmp_path / "exact.nii.gz", lesion_labels())
    assert evaluate_pair(CasePair("00001-000", ref, exact)).error is None


def _two_voxel_lesion_missed(tmp_path: Path, pred_size: float, ref_size: float) -> CasePair:
    """A perfect prediction of two lesions that misses a 2-voxel one, the two files' voxels of the given sizes."""
    ref = lesion_labels()
    ref[1, 17, 17:19] = 3
    return CasePair("00001-000", save(tmp_path / "ref-seg.nii.gz", ref, zooms=(ref_size,) * 3),
                    save(tmp_path / "pred.nii.gz", lesion_labels(), zooms=(pred_size,) * 3))


@pytest.mark.parametrize(("pred_size", "ref_size", "missed"), [(1.000005, 1.0, 1), (1.0, 1.000005, 0)])
def test_the_2023_rules_measure_with_the_prediction_s_voxel_size(tmp_path: Path, pred_size, ref_size, missed):
    """The official 2023 code reads the prediction's pixdim: at 1.000005 mm the 2-voxel lesion is over its 2 mm^3
    threshold, so it is a missed lesion (ET: two lesions found, one missed, Dice 2/3); at 1 mm it is left out."""
    pair = _two_voxel_lesion_missed(tmp_path, pred_size, ref_size)
    et = evaluate_pair(pair).regions["ET"]
    assert (et.num_tp, et.num_fn) == (2, missed)
    assert et.lesionwise_dice == pytest.approx(2 / (2 + missed))
    voxel_mm3 = float(np.float32(pred_size)) ** 3  # as the header stores it
    assert et.gt_volume == pytest.approx(np.count_nonzero(nib.load(pair.reference).get_fdata() == 3) * voxel_mm3,
                                         rel=1e-12)


def test_the_2025_rules_refuse_a_prediction_whose_pixdim_differs_at_all(tmp_path: Path):
    """The 2025 package compares the two headers' pixdim as they are: one float32 step apart, it refuses the pair."""
    step = float(np.nextafter(np.float32(1), np.float32(2)))
    pair = _two_voxel_lesion_missed(tmp_path, step, 1.0)
    result = evaluate_pair(pair, rules="brats2025")
    assert result.regions == {} and result.error == (
        "00001-000: pred.nii.gz: pixdim 1.00000012 x 1.00000012 x 1.00000012 mm differs from ref-seg.nii.gz 1 x 1 x 1 "
        "mm (the BraTS 2025 evaluation takes only the same pixdim): write the prediction with the reference's header")
    assert evaluate_pair(pair).error is None  # the 2023 code measures with it
    exact = CasePair(pair.case, pair.reference, save(tmp_path / "exact.nii.gz", lesion_labels()))
    assert evaluate_pair(exact, rules="brats2025").error is None


@pytest.mark.parametrize("rules", ["brats2023", "brats2025"])
def test_a_45_degree_oblique_prediction_a_rounding_apart_from_its_reference_is_scored(tmp_path: Path, rules: str):
    """At 45 degrees two affines a rounding apart name other axis orders: the voxels were compared as they are
    (one grid) while their sizes were reordered, 1 x 1 x 3 mm against 3 x 1 x 1, and the case was refused."""
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[5:10, 5:10, 3:6] = 3

    def oblique(name: str, degrees: float) -> Path:
        turn = np.radians(degrees)
        affine = np.eye(4)
        affine[:3, :3] = np.array([[np.cos(turn), 0, np.sin(turn)], [0, 1, 0], [-np.sin(turn), 0, np.cos(turn)]]) \
            @ np.diag([1.0, 1.0, 3.0])
        image = nib.Nifti1Image(labels, affine)
        image.header.set_qform(affine, 1)
        nib.save(image, tmp_path / name)
        return tmp_path / name

    ref, pred = oblique("ref-seg.nii.gz", 45 - 1e-4), oblique("pred.nii.gz", 45 + 1e-4)
    assert nib.aff2axcodes(nib.load(ref).affine) != nib.aff2axcodes(nib.load(pred).affine)
    result = evaluate_pair(CasePair("00001-000", ref, pred), rules=rules)
    assert result.error is None and result.regions
    if rules == "brats2023":
        assert result.regions["ET"].gt_volume == pytest.approx(75 * 3.0)


def test_a_reference_stored_transposed_on_a_45_degree_grid_is_scored_as_stored_alike(tmp_path: Path):
    """The reference with its first two axes swapped (its affine changed with them) on a grid turned 45 degrees
    about z: the two files' own closest world axes did not match, and the case was refused as another grid."""
    labels = np.zeros((20, 16, 10), np.uint8)
    labels[5:10, 4:8, 3:6] = 3
    labels[12:15, 10:13, 2:4] = 1
    turn = np.radians(45.0)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]]) \
        @ np.diag([1.0, 2.0, 3.0])
    swapped = affine.copy()
    swapped[:3, [0, 1]] = affine[:3, [1, 0]]

    def save_oriented(name: str, array: np.ndarray, matrix: np.ndarray) -> Path:
        image = nib.Nifti1Image(array, matrix)
        image.header.set_qform(matrix, 1)
        nib.save(image, tmp_path / name)
        return tmp_path / name

    pred = save_oriented("pred.nii.gz", labels, affine)
    as_stored = evaluate_pair(CasePair("00001-000", save_oriented("ref-seg.nii.gz", labels, affine), pred))
    transposed = evaluate_pair(CasePair("00001-000", save_oriented("t-seg.nii.gz", labels.transpose(1, 0, 2),
                                                                   swapped), pred))
    assert transposed.error is None
    assert transposed.regions == as_stored.regions
    assert transposed.regions["ET"].gt_volume == pytest.approx(20 * 3 * 6.0)


def test_voxel_size_is_the_affine_s_when_the_header_says_zero(tmp_path: Path):
    """A zero pixdim is read by nibabel as 1 mm; the file's sform (here 3.23 mm) is what the file means."""
    ref = save(tmp_path / "ref-seg.nii.gz", lesion_labels(), zooms=(3.23, 3.23, 3.23))
    pred = set_pixdim(save(tmp_path / "pred.nii.gz", lesion_labels(), zooms=(3.23, 3.23, 3.23)), (0.0, 0.0, 0.0))
    result = evaluate_pair(CasePair("00001-000", ref, pred))
    assert result.regions["ET"].gt_volume == pytest.approx((27 - 1 + 64) * 3.23**3, rel=1e-5)


def test_crop_does_not_change_any_number():
    rng = np.random.default_rng(3)
    pred, ref = np.zeros((40, 44, 36), np.uint8), np.zeros((40, 44, 36), np.uint8)
    for labels in (pred, ref):
        for _ in range(6):
            x, y, z = rng.integers(2, 30, size=3)
            labels[x:x + rng.integers(1, 6), y:y + rng.integers(1, 6), z:z + rng.integers(1, 6)] = rng.integers(1, 4)
    cropped, offset = evaluate_labels(pred, ref, (1.0, 0.9, 1.5))
    assert offset != (0, 0, 0)
    for region, scores in cropped.items():
        whole = score_region(region_mask(pred, region), region_mask(ref, region), (1.0, 0.9, 1.5))
        for name in ("lesionwise_dice", "lesionwise_hd95", "legacy_dice", "legacy_hd95", "sensitivity",
                     "specificity", "num_tp", "num_fp", "num_fn", "gt_volume"):
            assert getattr(scores, name) == getattr(whole, name), (region, name)


def test_lesion_report_by_hand(tmp_path: Path):
    ref_labels = np.zeros((20, 20, 10), np.uint8)
    ref_labels[2:7, 3:8, 2:4] = 3  # 5 x 5 x 2 voxels
    pred_labels = ref_labels.copy()
    pred_labels[15, 15, 5] = 3  # a one-voxel false positive
    zooms = (1.0, 1.0, 2.0)
    ref = save(tmp_path / "r-seg.nii.gz", ref_labels, zooms)
    pred = save(tmp_path / "p.nii.gz", pred_labels, zooms)
    rows = [r for r in evaluate_pair(CasePair("00001-000", ref, pred), with_lesions=True).lesions
            if r.region == "ET"]
    reference, component, false_positive = rows
    assert (reference.source, reference.volume_mm3, reference.matched, reference.lesion_dice) == ("ref", 100.0,
                                                                                                  True, 1.0)
    assert reference.centroid_voxel == (4.0, 5.0, 2.5)
    assert reference.centroid_mm == (4.0, 5.0, 5.0)
    assert reference.longest_axial_diameter_mm == pytest.approx(np.hypot(4, 4), abs=1e-3)
    assert (component.source, component.matched, component.lesion_dice) == ("pred", True, 1.0)
    assert (false_positive.matched, false_positive.lesion_dice, false_positive.volume_mm3) == (False, 0.0, 2.0)
    assert false_positive.centroid_voxel == (15.0, 15.0, 5.0) and false_positive.longest_axial_diameter_mm == 0.0


def test_shape_mismatch_fails_that_case_only(tmp_path: Path):
    save(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "ref" / "BraTS-MET-00002-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz", lesion_labels((20, 20, 21)))
    save(tmp_path / "pred" / "BraTS-MET-00002-000.nii.gz", lesion_labels())
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"),
                                      "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == EXIT_INCOMPLETE
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: 00001-000: BraTS-MET-00001-000.nii.gz: shape (20, 20, 21) differs from "
                      "BraTS-MET-00001-000-seg.nii.gz (20, 20, 20)"]
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [(r["case"], r["region"]) for r in rows] == [("00002-000", "WT"), ("00002-000", "TC"),
                                                        ("00002-000", "ET")]


def test_cli_on_the_shared_cases_writes_the_official_numbers(tmp_path: Path, labelmaps: Path):
    out, summary, lesions = tmp_path / "m.csv", tmp_path / "s.json", tmp_path / "l.csv"
    result = CliRunner().invoke(cli, ["evaluate", str(labelmaps / "pred"), str(labelmaps / "ref"), "--out",
                                      str(out), "--summary", str(summary), "--lesions", str(lesions),
                                      "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == ",".join(METRIC_COLUMNS)
    rows = {(r["case"], r["region"]): r for r in csv.DictReader(out.open())}
    assert len(rows) == 12
    official = json.loads((labelmaps / "reference_brats2023.json").read_text())
    for case in ("00132-000", "00630-001"):
        for region, numbers in official[case].items():
            row = rows[(case, region)]
            assert float(row["lesionwise_dice"]) == pytest.approx(numbers["LesionWise_Score_Dice"], abs=1e-6)
            assert float(row["lesionwise_hd95"]) == pytest.approx(numbers["LesionWise_Score_HD95"], abs=1e-3)
            assert int(row["num_fp"]) == numbers["Num_FP"]
    report = json.loads(summary.read_text())
    wt = [float(rows[(c, "WT")]["lesionwise_dice"]) for c in ("00132-000", "00217-000", "00630-001", "01325-000")]
    assert report["regions"]["WT"]["mean_lesionwise_dice"] == pytest.approx(np.mean(wt))
    lesion_rows = list(csv.DictReader(lesions.open()))
    ref_rows = [r for r in lesion_rows if r["case"] == "00132-000" and r["region"] == "WT" and r["source"] == "ref"]
    counted = [r for r in ref_rows if r["counted"] == "True"]
    assert sum(r["matched"] == "True" for r in counted) == official["00132-000"]["WT"]["Num_TP"]
    pred_rows = [r for r in lesion_rows if r["case"] == "00132-000" and r["region"] == "WT" and r["source"] == "pred"]
    assert sum(r["matched"] == "False" for r in pred_rows) == official["00132-000"]["WT"]["Num_FP"]


def test_a_table_is_never_written_over_a_label_map(tmp_path: Path):
    """`--out REF/…-seg.nii.gz` replaced the reference with the CSV, exit 0; every later run failed to read it."""
    reference = save(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", lesion_labels())
    save(tmp_path / "pred" / "BraTS-MET-00001-000.nii.gz", lesion_labels())
    content = reference.read_bytes()
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"),
                                      "--out", str(tmp_path / "m.csv"), "--summary", str(reference)])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: --summary {reference}: names a NIfTI file, which the table would replace (a label map to score, "
        "perhaps); give a .csv or .json path")
    assert reference.read_bytes() == content and not (tmp_path / "m.csv").exists()
