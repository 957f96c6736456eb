"""Prediction at the run's target spacing and axis order: exact where nothing changes, invariant to the axis
order, and written on each input's own grid with its lesions in place."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from tests.factories import write_run
from transunet3d.config import InferConfig
from transunet3d.data.cache import open_case
from transunet3d.data.labels import label_scheme
from transunet3d.data.layout import discover_cases
from transunet3d.data.nifti import Geometry
from transunet3d.data.orientation import AxisOrder
from transunet3d.data.preprocess import preprocess_dataset, preprocess_loaded
from transunet3d.data.resample import nearest_sources
from transunet3d.data.validate import load_case
from transunet3d.errors import UserError
from transunet3d.inference.cases import predict_folder, submission_path
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import load_trained_model
from transunet3d.postprocessing.rules import PostprocessSettings

SCHEME = label_scheme("brats-mets-2023")

NO_TTA = InferConfig(tta="none")
AT_2MM = ("data.target_spacing=[2.0, 2.0, 2.0]", "data.axis_order=RAS")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same random weights recorded at a 2 mm target spacing, and without one (a run from before)."""
    root = tmp_path_factory.mktemp("runs")
    return {"2mm": write_run(root / "2mm", overrides=AT_2MM), "native": write_run(root / "native")}


def _case(folder: Path):
    return load_case(discover_cases(folder)[0])


def test_at_its_own_spacing_a_ras_case_is_predicted_exactly_as_on_its_native_grid(phantom_variants, runs):
    case = _case(phantom_variants["ras"])
    resampled, native = preprocess_loaded(case, (2.0, 2.0, 2.0), 10), preprocess_loaded(case, None, 10)
    np.testing.assert_array_equal(resampled.image, native.image)
    np.testing.assert_array_equal(resampled.seg, native.seg)
    assert resampled.original_seg is None
    predictions = [Predictor([load_trained_model(runs[name])], NO_TTA).predict(case, keep_probabilities=True)
                   for name in ("2mm", "native")]
    np.testing.assert_array_equal(predictions[0].probabilities, predictions[1].probabilities)
    np.testing.assert_array_equal(predictions[0].labels, predictions[1].labels)


@pytest.mark.parametrize("name", ["lps", "psr"])
def test_an_axis_order_variant_is_predicted_as_the_variant_of_the_ras_prediction(phantom_variants, runs, name):
    predictor = Predictor([load_trained_model(runs["2mm"])], InferConfig(tta="flip", threshold=0.7))
    ras = predictor.predict(_case(phantom_variants["ras"]), keep_probabilities=True)
    variant_case = _case(phantom_variants[name])
    variant = predictor.predict(variant_case, keep_probabilities=True)
    order = AxisOrder.of(np.array(variant_case.geometry.affine))
    assert order.codes == name.upper()
    np.testing.assert_array_equal(variant.probabilities, order.undo(ras.probabilities))
    np.testing.assert_array_equal(variant.labels, order.undo(ras.labels))
    assert 0 < (ras.labels > 0).sum() < ras.labels.size  # a non-trivial map


@pytest.mark.parametrize("name", ["fine", "thick"])
def test_another_voxel_size_is_predicted_on_its_own_grid_with_its_lesions_in_place(phantom_variants, runs, name,
                                                                                   tmp_path: Path, monkeypatch):
    """An oracle model that answers the training-grid reference: what comes back on the input's grid must be the
    input's own label map, up to what the resampling there and back loses."""
    preprocess_dataset(phantom_variants[name], tmp_path / "pre", target_spacing=(2.0, 2.0, 2.0), progress=False)
    cached = open_case(tmp_path / "pre", discover_cases(phantom_variants[name])[0].case_id)

    def oracle(self, models, image):
        assert image.shape == cached.image.shape  # prediction brings the input to the training grid
        return torch.from_numpy(SCHEME.labels_to_regions(np.asarray(cached.seg)).astype(np.float32))

    monkeypatch.setattr(Predictor, "_summed", oracle)
    predictor = Predictor([load_trained_model(runs["2mm"])], NO_TTA)
    predict_folder(phantom_variants[name], tmp_path / "out", predictor, progress=False)
    case_id = cached.case_id
    written = nib.load(submission_path(tmp_path / "out", case_id))
    source = nib.load(discover_cases(phantom_variants[name])[0].seg)
    assert Geometry.of(written) == Geometry.of(source)
    predicted, reference = np.asarray(written.dataobj), np.asarray(source.dataobj)
    pairs = zip(SCHEME.labels_to_regions(predicted), SCHEME.labels_to_regions(reference))
    for index, (mine, truth) in enumerate(pairs):
        dice = 2 * (mine & truth).sum() / (mine.sum() + truth.sum())
        assert dice > (0.99 if name == "thick" else 0.8), (index, dice)
        lesions, count = ndimage.label(truth, np.ones((3, 3, 3)))
        assert set(np.unique(lesions[mine])) - {0} == set(range(1, count + 1))  # every lesion is found


def test_a_lesion_just_above_its_threshold_on_the_training_grid_is_kept_on_a_finer_input(phantom_variants, runs,
                                                                                         tmp_path: Path, monkeypatch):
    """An oracle that answers the training-grid reference at 0.65, plus a one-voxel metastasis, under thresholds
    of 0.6: on the 1x1x2 mm input trilinear interpolation alone spreads that voxel to about 0.4, and the
    lesion vanished."""
    preprocess_dataset(phantom_variants["fine"], tmp_path / "pre", target_spacing=(2.0, 2.0, 2.0), progress=False)
    cached = open_case(tmp_path / "pre", discover_cases(phantom_variants["fine"])[0].case_id)
    regions = SCHEME.labels_to_regions(np.asarray(cached.seg))
    far = np.argwhere(ndimage.distance_transform_edt(~regions[0]) > 6)
    speck = tuple(far[len(far) // 2])  # a training voxel at least 12 mm from every lesion
    regions[(slice(None), *speck)] = True

    def oracle(self, models, image):
        return torch.from_numpy(np.where(regions, 0.65, 0.05).astype(np.float32))

    monkeypatch.setattr(Predictor, "_summed", oracle)
    tuned = PostprocessSettings((0.6, 0.6, 0.6), (0.0, 0.0, 0.0), False, SCHEME)
    case = _case(phantom_variants["fine"])
    prediction = Predictor([load_trained_model(runs["2mm"])], NO_TTA, postprocessing=tuned).predict(
        case, keep_probabilities=True)
    properties = preprocess_loaded(case, (2.0, 2.0, 2.0), 0).properties
    box = [lo for lo, _ in properties["crop_box"]]
    sources = [nearest_sources(m, n) for m, n in zip(regions.shape[1:], properties["cropped_shape"])]
    fine_voxels = np.ix_(*(np.flatnonzero(taken == at) + lo for taken, at, lo in zip(sources, speck, box)))
    assert (prediction.labels[fine_voxels] == 3).all()  # the input's voxels nearest to it: all ET, as predicted
    assert prediction.probabilities[(slice(None), *fine_voxels)].max() == pytest.approx(0.65)  # its own value
    reference = nib.load(discover_cases(phantom_variants["fine"])[0].seg)
    for mine, truth in zip(SCHEME.labels_to_regions(prediction.labels),
                           SCHEME.labels_to_regions(np.asarray(reference.dataobj))):
        lesions, count = ndimage.label(truth, np.ones((3, 3, 3)))
        assert set(np.unique(lesions[mine])) - {0} == set(range(1, count + 1))  # and every real one


def test_runs_from_before_target_spacings_are_not_mixed_with_later_ones(runs):
    with pytest.raises(UserError, match="trained before target spacings"):
        Predictor([load_trained_model(runs["2mm"]), load_trained_model(runs["native"])], NO_TTA)
