"""Tiny runs, their exports and phantom cases shared by the deployment tests (exports take seconds each)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.test_predict_cmd import oblique_affine, reorient_case
from tests.factories import write_run
from transunet3d.cli.main import cli
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.files import write_json

# fp32 (the export is float32; bf16 autocast would make the torch path differ by itself) and a target spacing
# other than the phantoms' so that both resampling steps run
SMALL = ("loop.precision=fp32", "data.target_spacing=[2.5, 2.5, 2.5]", "data.axis_order=RAS", "infer.tta=flip",
         "infer.batch_windows=8")
CASES = ("BraTS-MET-00001-000", "BraTS-MET-00002-000")
TUNED = {"settings": {"thresholds": {"WT": 0.45, "TC": 0.5, "ET": 0.55},
                      "min_lesion_mm3": {"WT": 0.0, "TC": 10.0, "ET": 0.0}, "require_core": False}}


def invoke(*args: object, **kwargs):
    return CliRunner().invoke(cli, [str(arg) for arg in args], **kwargs)


def error_lines(result) -> list[str]:
    """The `error:` lines a command wrote on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> Path:
    """Two small phantoms at 2 mm with an oblique, anisotropic geometry (BraTS layout, a folder per case)."""
    root = tmp_path_factory.mktemp("deploy-phantoms") / "raw"
    write_phantoms(root, cases=2, seed=5, spec=PhantomSpec(shape=(40, 48, 40), spacing=(2.0, 2.0, 2.0),
                                                           lesions=(2, 3), diameter_mm=(6.0, 16.0)), progress=False)
    for case in CASES:
        reorient_case(root / case, oblique_affine())
    return root


@pytest.fixture(scope="session")
def cv_run(tmp_path_factory) -> Path:
    """A cross-validation run of two tiny U-Net folds (the quickest to export) with a tuned post-processing."""
    run = tmp_path_factory.mktemp("deploy-run") / "run"
    for fold in (0, 1):
        write_run(run / f"fold_{fold}", preset="tiny-unet", seed=fold + 3, overrides=SMALL)
    write_json(run / "postprocessing.json", TUNED)
    return run


@pytest.fixture(scope="session")
def exported(cv_run: Path, tmp_path_factory) -> Path:
    """`transunet3d export` of the cross-validation run."""
    out = tmp_path_factory.mktemp("deploy-export") / "exported"
    result = invoke("export", cv_run, out)
    assert result.exit_code == 0, result.output
    return out
