"""The ONNX Runtime path predicts what the torch path predicts, for every model variant."""

from pathlib import Path

import numpy as np
import pytest

from tests.deploy.conftest import SMALL
from tests.factories import write_run
from transunet3d.config import InferConfig
from transunet3d.data.layout import discover_cases
from transunet3d.data.validate import load_case
from transunet3d.deploy.export import export_run
from transunet3d.deploy.onnx_backend import load_exported_models
from transunet3d.inference.predictor import Predictor
from transunet3d.inference.trained import load_models

# The both variant as trained by default: plain cross-attention in the query decoder and the ViT of the encoder
# variant (whose graph is the U-Net's and the ViT's, so it gets no export of its own: 18 s). The U-Net is the exported
# fold 0 of the shared cross-validation run. The decoder variant with masked attention (its mask ops: resize,
# threshold, boolean attention mask) gets no export here (35 s on 2 cores): `export` compares every network it writes
# with torch (`max_difference_to_torch`) and refuses one that differs, so such a regression is loud, not silent.
VARIANTS = {"both": ("tiny-both", ())}


def predictions(torch_models: list, onnx_models: list, case_folder: Path, tta: str):
    case = load_case(discover_cases(case_folder)[0])
    options = InferConfig(tta=tta, batch_windows=8)  # with flips: 8 views of a window in one dynamic batch
    return (Predictor(torch_models, options).predict(case, keep_probabilities=True),
            Predictor(onnx_models, options).predict(case, keep_probabilities=True))


def assert_same(expected, found) -> None:
    assert found.probabilities.shape == expected.probabilities.shape == (3, 40, 48, 40)
    assert np.abs(found.probabilities - expected.probabilities).max() < 1e-4
    assert (found.labels != expected.labels).mean() < 1e-4  # only where a probability sits at its threshold


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_runtime_gives_the_probabilities_and_labels_of_torch(variant: str, phantoms: Path, tmp_path: Path):
    preset, extra = VARIANTS[variant]
    run = write_run(tmp_path / "run", preset=preset, seed=11, overrides=(*SMALL, *extra))
    record = export_run(run, tmp_path / "exported")
    assert record["models"][0]["variant"] == variant and record["models"][0]["max_difference_to_torch"] < 1e-4
    assert_same(*predictions(load_models([run]), load_exported_models([tmp_path / "exported"]), phantoms, "none"))


def test_onnx_runtime_gives_the_probabilities_of_torch_for_the_unet_with_flips(cv_run: Path, exported: Path,
                                                                                phantoms: Path):
    torch_models, onnx_models = load_models([cv_run], fold="0"), load_exported_models([exported], fold="0")
    assert_same(*predictions(torch_models, onnx_models, phantoms, "flip"))
