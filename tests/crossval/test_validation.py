"""Out-of-fold validation scores against the label map on the input's own grid, not the resampled one."""

from pathlib import Path

import nibabel as nib
import numpy as np

from tests.factories import write_run
from transunet3d.config import InferConfig
from transunet3d.crossval.validation import _validate_case
from transunet3d.data.layout import discover_cases
from transunet3d.data.nifti import Geometry
from transunet3d.data.preprocess import preprocess_dataset
from transunet3d.inference.cases import submission_path
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import load_trained_model
from transunet3d.runs.layout import ValidationFolder


def test_the_reference_is_the_original_label_map_and_the_prediction_is_on_its_grid(phantom_variants,
                                                                                    tmp_path: Path):
    raw = phantom_variants["thick"]  # 2x2x6 mm, cached at 2 mm
    preprocess_dataset(raw, tmp_path / "pre", target_spacing=(2.0, 2.0, 2.0), progress=False)
    model = load_trained_model(write_run(tmp_path / "run", overrides=("data.target_spacing=[2, 2, 2]",)))
    target = ValidationFolder(tmp_path / "validation")
    target.predictions.mkdir(parents=True)
    case = discover_cases(raw)[0]
    _validate_case(Predictor([model], InferConfig(tta="none")), tmp_path / "pre", case.case_id, target)
    source = nib.load(case.seg)
    reference = nib.load(target.reference(case.case_id))
    np.testing.assert_array_equal(np.asarray(reference.dataobj), np.asarray(source.dataobj))
    prediction = nib.load(submission_path(target.predictions, case.case_id))
    assert Geometry.of(reference) == Geometry.of(source) == Geometry.of(prediction)
