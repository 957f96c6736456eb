"""The fast lesion-wise Dice gives exactly `score_region`'s, on random, hand-made and real masks."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.evaluation import region_mask, score_region
from transunet3d.evaluation.lesionwise import lesionwise_dice
from transunet3d.postprocessing.rules import PostprocessSettings

ONE_MM = (1.0, 1.0, 1.0)


def blobs(rng: np.random.Generator, shape: tuple[int, int, int], fraction: float) -> np.ndarray:
    """Random lesion-like blobs of all sizes, single voxels included, covering about `fraction` of the volume."""
    smooth = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 2.0))
    return smooth > np.quantile(smooth, 1 - fraction)


@pytest.mark.parametrize("seed", range(12))
def test_random_masks(seed: int):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(8, 28, size=3))
    gt = blobs(rng, shape, rng.uniform(0.01, 0.3))
    pred = gt.copy() if seed % 3 == 0 else blobs(rng, shape, rng.uniform(0.0, 0.3))
    pred ^= rng.random(shape) < 0.01  # scattered single-voxel errors
    spacing = tuple(float(s) for s in rng.choice([0.5, 0.8, 1.0, 1.5], size=3))
    assert lesionwise_dice(pred, gt, spacing) == score_region(pred, gt, spacing).lesionwise_dice


def box(*boxes, shape=(24, 24, 24)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for (x0, x1), (y0, y1), (z0, z1) in boxes:
        mask[x0:x1, y0:y1, z0:z1] = True
    return mask


CUBE_A, CUBE_B = ((4, 7), (4, 7), (4, 7)), ((14, 17), (14, 17), (14, 17))
TINY = ((15, 17), (15, 16), (15, 16))  # 2 voxels


@pytest.mark.parametrize("pred, gt, spacing, expected", [
    (box(), box(), ONE_MM, 1.0),  # nothing to score
    (box(CUBE_A, CUBE_B), box(), ONE_MM, 0.0),  # false positives only
    (box(), box(CUBE_A, CUBE_B), ONE_MM, 0.0),  # misses only
    (box(((7, 10), (4, 7), (4, 7))), box(CUBE_A), ONE_MM, 0.0),  # touching without overlap: matched, Dice 0
    (box(((4, 6), (4, 9), (4, 9)), ((8, 10), (4, 9), (4, 9))), box(((4, 10), (4, 9), (4, 9))), ONE_MM, 0.8),
    (box(((4, 14), (4, 7), (4, 7))), box(CUBE_A, ((11, 14), (4, 7), (4, 7))), ONE_MM, 2 * 27 / (27 + 90)),
    (box(CUBE_A), box(CUBE_A, TINY), ONE_MM, 1.0),  # a missed lesion of 2 mm^3 is ignored
    (box(CUBE_A), box(CUBE_A, TINY), (1.0, 1.0, 1.5), 0.5),  # ... but at 3 mm^3 it counts
    (box(CUBE_A, TINY), box(CUBE_A), ONE_MM, 0.5),  # a predicted speck is a false positive, whatever its size
])
def test_hand_made_masks(pred, gt, spacing, expected):
    assert lesionwise_dice(pred, gt, spacing) == pytest.approx(expected)
    assert lesionwise_dice(pred, gt, spacing) == score_region(pred, gt, spacing).lesionwise_dice


def cropped_pair(labelmaps: Path, case: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """The case's prediction and reference cut to what either labels, as the evaluator cuts them."""
    pred_image = nib.load(labelmaps / "pred" / f"BraTS-MET-{case}.nii.gz")
    pred = np.asanyarray(pred_image.dataobj)
    ref = np.asanyarray(nib.load(labelmaps / "ref" / f"BraTS-MET-{case}-seg.nii.gz").dataobj)
    box = tuple(slice(lo, hi) for lo, hi in union_bounds(mask_bounds(pred), mask_bounds(ref)))
    return pred[box], ref[box], tuple(float(z) for z in pred_image.header.get_zooms()[:3])


@pytest.mark.parametrize("case", ["00132-000", "00217-000", "00630-001", "01325-000"])
def test_real_label_maps(labelmaps: Path, case: str):
    pred, ref, spacing = cropped_pair(labelmaps, case)
    for region in ("WT", "TC", "ET"):
        pred_mask, ref_mask = region_mask(pred, region), region_mask(ref, region)
        fast = lesionwise_dice(pred_mask, ref_mask, spacing)
        assert fast == score_region(pred_mask, ref_mask, spacing).lesionwise_dice, region
        assert lesionwise_dice(ref_mask, pred_mask, spacing) == score_region(ref_mask, pred_mask,
                                                                             spacing).lesionwise_dice, region


def test_real_label_maps_after_removing_small_components(labelmaps: Path):
    pred, ref, spacing = cropped_pair(labelmaps, "00217-000")  # 23 to 34 predicted components per region
    regions = np.stack([region_mask(pred, region) for region in ("WT", "TC", "ET")]).astype(np.float32)
    labels = PostprocessSettings((0.5, 0.5, 0.5), (20.0, 10.0, 5.0), True).labels(regions, spacing)
    for region in ("WT", "TC", "ET"):
        pred_mask, ref_mask = region_mask(labels, region), region_mask(ref, region)
        assert lesionwise_dice(pred_mask, ref_mask, spacing) == score_region(pred_mask, ref_mask,
                                                                             spacing).lesionwise_dice
