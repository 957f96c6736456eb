"""Two real BraTS-METS cases whose every number the official BraTS 2023 code published: reproduce all of them."""

import json

import nibabel as nib
import numpy as np
import pytest

from transunet3d.evaluation import region_mask, score_region

FIELDS = {
    "Num_TP": "num_tp", "Num_FP": "num_fp", "Num_FN": "num_fn", "Sensitivity": "sensitivity",
    "Specificity": "specificity", "Legacy_Dice": "legacy_dice", "Legacy_HD95": "legacy_hd95",
    "GT_Complete_Volume": "gt_volume", "LesionWise_Score_Dice": "lesionwise_dice",
    "LesionWise_Score_HD95": "lesionwise_hd95",
}


@pytest.mark.parametrize("case", ["00132-000", "00630-001"])
@pytest.mark.parametrize("region", ["WT", "TC", "ET"])
def test_every_official_number_is_reproduced(case, region, labelmaps):
    """Needs ../shared/data/labelmaps: without it the test fails (the `labelmaps` fixture), it does not skip."""
    pred = nib.load(labelmaps / "pred" / f"BraTS-MET-{case}.nii.gz")
    ref = nib.load(labelmaps / "ref" / f"BraTS-MET-{case}-seg.nii.gz")
    scores = score_region(region_mask(np.asanyarray(pred.dataobj), region),
                          region_mask(np.asanyarray(ref.dataobj), region), pred.header.get_zooms()[:3])
    reference = json.loads((labelmaps / "reference_brats2023.json").read_text())
    for name, expected in reference[case][region].items():
        ours = getattr(scores, FIELDS[name])
        if name.startswith("Num_"):
            assert ours == expected, name
        elif "HD95" in name:
            assert ours == pytest.approx(expected, abs=1e-3), name
        else:
            assert ours == pytest.approx(expected, abs=1e-6), name
