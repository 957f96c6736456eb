"""Loading trained runs (single fold or cross-validation) and averaging an ensemble."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.factories import brain_case_arrays, write_run
from transunet3d.config import InferConfig
from transunet3d.data.nifti import Geometry
from transunet3d.data.validate import LoadedCase
from transunet3d.errors import UserError
from transunet3d.inference import predictor as predictor_module
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import fold_folders, load_models, load_trained_model
from transunet3d.runs.layout import ModelFolder

NO_TTA = InferConfig(tta="none")


def poison_weights(model: Path) -> Path:
    """Put NaN into one tensor and inf into another of `model`'s latest weights, as a diverged training leaves
    them; returns the weights file."""
    path = ModelFolder(model).latest_checkpoint() / "weights.safetensors"
    weights = load_file(str(path))
    first, second = [name for name, tensor in weights.items() if tensor.is_floating_point()][:2]
    weights[first].view(-1)[0] = float("nan")
    weights[second].view(-1)[-1] = float("inf")
    save_file(weights, str(path))
    return path


@pytest.fixture(scope="module")
def cross_validation(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cv")
    for fold in (0, 2):
        write_run(root / f"fold_{fold}", seed=fold)
    return root


def test_fold_folders_of_a_cross_validation_run(cross_validation: Path):
    assert fold_folders(cross_validation) == [ModelFolder(cross_validation / "fold_0"),
                                              ModelFolder(cross_validation / "fold_2")]
    assert fold_folders(cross_validation, "all") == fold_folders(cross_validation)
    assert fold_folders(cross_validation, "2") == [ModelFolder(cross_validation / "fold_2")]
    with pytest.raises(UserError, match="no fold '1'; it has folds 0, 2"):
        fold_folders(cross_validation, "1")


def test_an_ensemble_that_names_a_model_twice_is_refused(cross_validation: Path, tmp_path: Path):
    """`--model RUN --model RUN/fold_0` gave fold 0 two thirds of the weight, with exit 0."""
    (tmp_path / "link").symlink_to(cross_validation / "fold_2")
    fold_0, fold_2 = cross_validation / "fold_0", cross_validation / "fold_2"
    for runs, repeated, first in (([cross_validation, fold_0], fold_0, fold_0), ([fold_2, tmp_path / "link"],
                                                                                tmp_path / "link", fold_2)):
        with pytest.raises(UserError, match=f"^{repeated}: the same model as {first}; an ensemble that names it"):
            load_models(runs)


def test_fold_folders_of_a_single_run_and_of_something_else(cross_validation: Path, tmp_path: Path):
    single = cross_validation / "fold_0"
    assert fold_folders(single) == [ModelFolder(single)]
    with pytest.raises(UserError, match="holds one trained model"):
        fold_folders(single, "0")
    with pytest.raises(UserError, match="not a training run"):
        fold_folders(tmp_path)


def test_loaded_weights_are_the_checkpoints_bitwise(cross_validation: Path):
    model = load_trained_model(cross_validation / "fold_2")
    saved = load_file(str(model.checkpoint / "weights.safetensors"))
    loaded = model.network.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)
    assert not model.network.training and model.finished and model.epoch == model.config.loop.epochs


def test_fold_folders_say_when_the_run_does_not_exist(tmp_path: Path):
    with pytest.raises(UserError) as raised:
        fold_folders(tmp_path / "nowhere")
    assert str(raised.value) == f"{tmp_path / 'nowhere'}: training run does not exist"


def test_weights_that_hold_nan_or_inf_are_refused(tmp_path: Path):
    path = poison_weights(write_run(tmp_path / "diverged"))
    with pytest.raises(UserError) as raised:
        load_trained_model(tmp_path / "diverged")
    total = len(load_file(str(path)))
    assert str(raised.value) == f"{path}: 2 of {total} tensors hold NaN or infinite values (the training diverged)"


def test_unfinished_and_missing_and_mismatched_checkpoints(tmp_path: Path):
    assert not load_trained_model(write_run(tmp_path / "early", epoch=3)).finished
    with pytest.raises(UserError, match="checkpoint is missing"):
        load_trained_model(tmp_path / "early", "best")
    mismatched = write_run(tmp_path / "mismatched", preset="tiny-unet")
    (mismatched / "config.yaml").write_text((tmp_path / "early" / "config.yaml").read_text())
    with pytest.raises(UserError, match=r"does not fit the model of config\.yaml"):
        load_trained_model(mismatched)


def test_the_ensemble_averages_the_probabilities_of_its_models(cross_validation: Path):
    models = load_models([cross_validation])
    image = brain_case_arrays((64, 64, 64))[0]
    together = Predictor(models, NO_TTA).probabilities(image)
    alone = [Predictor([model], NO_TTA).probabilities(image) for model in models]
    assert together.shape == (3, 64, 64, 64)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # two different models
    np.testing.assert_allclose(together, (alone[0] + alone[1]) / 2, atol=1e-6)


def test_prediction_is_pasted_back_into_the_full_volume(cross_validation: Path):
    image, _ = brain_case_arrays((30, 36, 24))
    eye = tuple(tuple(row) for row in np.eye(4))
    geometry = Geometry(shape=(30, 36, 24), affine=eye, qform=eye, qform_code=1, sform=eye, sform_code=1,
                        zooms=(1.0, 1.0, 1.0))
    case = LoadedCase("BraTS-MET-00001-000", image, None, geometry)
    predictor = Predictor(load_models([cross_validation / "fold_0"]), replace(NO_TTA, threshold=1e-6))
    prediction = predictor.predict(case, keep_probabilities=True)
    assert prediction.labels.shape == (30, 36, 24) and prediction.probabilities.shape == (3, 30, 36, 24)
    brain = np.zeros((30, 36, 24), dtype=bool)
    brain[2:10, 3:12, 1:8] = True  # the brain box of brain_case_arrays: everything is predicted inside it
    assert (prediction.labels > 0).sum() == brain.sum() and (prediction.labels[~brain] == 0).all()
    assert (prediction.probabilities[:, ~brain] == 0).all()


def test_a_2025_model_predicts_four_regions_and_cannot_join_a_2023_ensemble(cross_validation: Path, tmp_path: Path):
    cavity = load_trained_model(write_run(tmp_path / "2025", overrides=("data.labels=brats-mets-2025",)))
    assert cavity.network.spec.num_regions == 4 and cavity.scheme.region_names == ("WT", "TC", "ET", "RC")
    image, _ = brain_case_arrays()
    eye = tuple(tuple(row) for row in np.eye(4))
    geometry = Geometry(shape=image.shape[1:], affine=eye, qform=eye, qform_code=1, sform=eye, sform_code=1,
                        zooms=(1.0, 1.0, 1.0))
    prediction = Predictor([cavity], NO_TTA).predict(LoadedCase("case", image, None, geometry), True)
    assert prediction.probabilities.shape == (4, *image.shape[1:]) and prediction.regions == cavity.scheme.region_names
    assert set(np.unique(prediction.labels)) <= {0, 1, 2, 3, 4}
    with pytest.raises(UserError, match="an ensemble needs models of one label scheme"):
        Predictor([load_trained_model(cross_validation / "fold_0"), cavity], NO_TTA)


def _first_convolution_weight(model) -> torch.Tensor:
    return next(p for p in model.network.parameters() if p.dim() == 5)


def test_fp32_runs_channels_last_on_the_cpu_with_the_contiguous_probabilities(tmp_path: Path, monkeypatch):
    image = brain_case_arrays((64, 64, 64))[0]
    fp32 = load_trained_model(write_run(tmp_path / "fp32", overrides=("loop.precision=fp32",)))
    fast = Predictor([fp32], NO_TTA).probabilities(image)
    assert _first_convolution_weight(fp32).is_contiguous(memory_format=torch.channels_last_3d)
    monkeypatch.setattr(predictor_module, "network_layout", lambda device, precision: torch.contiguous_format)
    contiguous = Predictor([fp32], NO_TTA).probabilities(image)
    assert _first_convolution_weight(fp32).is_contiguous()
    np.testing.assert_allclose(fast, contiguous, atol=1e-5)


def test_bf16_stays_contiguous_on_the_cpu(tmp_path: Path):
    bf16 = load_trained_model(write_run(tmp_path / "bf16", overrides=("loop.precision=bf16",)))
    Predictor([bf16], NO_TTA)
    assert _first_convolution_weight(bf16).is_contiguous()


def test_library_mistakes_are_exceptions_that_say_what_is_wrong(cross_validation: Path):
    """Built in a notebook, not through the command line's checks: one NaN voxel gave an empty label map, a
    threshold of 7 too, a float64 or int16 image a torch RuntimeError, a run's path as a string "d: training run
    does not exist"."""
    models = load_models([cross_validation / "fold_0"])
    image, _ = brain_case_arrays((30, 36, 24))
    eye = tuple(tuple(row) for row in np.eye(4))
    geometry = Geometry((30, 36, 24), eye, eye, 1, eye, 1, (1.0, 1.0, 1.0))
    image[1, 5, 6, 3] = np.nan
    with pytest.raises(ValueError, match=r"^BraTS-MET-00001-000: image: 1 NaN or infinite value"):
        Predictor(models, NO_TTA).predict(LoadedCase("BraTS-MET-00001-000", image, None, geometry))
    predictor = Predictor(models, NO_TTA)
    for bad, problem in ((image, "image: 1 NaN or infinite value"),
                         (np.zeros((4, 64, 64, 64), np.int16), "not int16; Predictor.predict preprocesses"),
                         (np.zeros((64, 64, 64), np.float32), r"not one of shape \(64, 64, 64\)"),
                         (np.zeros((3, 64, 64, 64), np.float32), r"not one of shape \(3, 64, 64, 64\)")):
        with pytest.raises(ValueError, match=problem):
            predictor.probabilities(bad)
    as_float64 = brain_case_arrays((64, 64, 64))[0]
    np.testing.assert_array_equal(predictor.probabilities(as_float64.astype(np.float64)),
                                  predictor.probabilities(as_float64))  # numpy's default dtype works
    with pytest.raises(UserError, match=r"^infer.threshold: must be in \(0, 1\), not 7.0"):
        InferConfig(threshold=7)
    with pytest.raises(UserError, match=r"^infer.tta: must be one of none, flip, flip\+rot, not 'all'"):
        replace(NO_TTA, tta="all")
    with pytest.raises(TypeError, match="a list of run folders, not one str"):
        load_models(str(cross_validation))
    with pytest.raises(ValueError, match="no run folder given"):
        load_models([])


@pytest.mark.parametrize(("override", "problem"), [
    ("train.patch_size=[64, 96, 64]", "its axial patch is not square (64 x 96 voxels)"),
    ("data.target_spacing=[1, 1.5, 1]", "its voxels are not square in the axial plane (1 x 1.5 mm)"),
])
def test_flip_rot_is_refused_for_a_model_that_cannot_take_quarter_turns(override: str, problem: str,
                                                                        tmp_path: Path):
    """`predict --tta flip+rot` with such a model died in the sliding window (non-square patch) or showed the
    network stretched images in 8 of its 16 views; the same model still predicts with flips."""
    models = load_models([write_run(tmp_path / "run", overrides=(override,))])
    expected = f"{tmp_path / 'run'}: flip+rot turns the axial plane by quarter turns, but {problem}; use --tta flip"
    with pytest.raises(UserError, match=f"^{re.escape(expected)}$"):
        Predictor(models, InferConfig(tta="flip+rot"))
    assert len(Predictor(models, InferConfig(tta="flip")).views) == 8
