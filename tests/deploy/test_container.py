"""`transunet3d container`: a Docker build context whose model and source run as the image would run them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from tests.deploy.conftest import CASES, error_lines, invoke
from tests.factories import write_run
from tests.inference.test_trained_and_ensemble import poison_weights
from transunet3d.config import load_config
from transunet3d.errors import EXIT_USER_ERROR
from transunet3d.runs.layout import ModelFolder

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
TORCH = torch.__version__.split("+")[0]


def test_a_cpu_context_of_a_run_holds_its_checkpoints_and_predicts_from_them(cv_run: Path, phantoms: Path,
                                                                             tmp_path: Path):
    context = tmp_path / "context"
    result = invoke("container", cv_run, context, "--fold", "1", "--tag", "team/mets:1")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in context.iterdir()) == [
        ".dockerignore", "Dockerfile", "README.md", "mlcube", "model", "requirements.txt", "src", "wheels"]
    dockerfile = (context / "Dockerfile").read_text()
    assert f"FROM python:{PYTHON}-slim AS install" in dockerfile and "whl/cpu" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "transunet3d", "challenge-entry"]' in dockerfile
    pins = [line for line in (context / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert pins[0] == f"torch=={TORCH}+cpu" and all("==" in line for line in pins)
    assert {"numpy", "nibabel", "connected-components-3d"} <= {line.split("==")[0] for line in pins}
    assert not any(line.startswith("onnxruntime") for line in pins)
    model = context / "model"
    assert sorted(path.name for path in model.iterdir()) == ["fold_1", "postprocessing.json"]
    assert sorted(path.name for path in (model / "fold_1" / "checkpoints").iterdir()) == ["epoch_0020", "latest.json"]
    mlcube = yaml.safe_load((context / "mlcube" / "mlcube.yaml").read_text())
    assert mlcube["docker"]["image"] == "team/mets:1" and mlcube["platform"]["accelerator_count"] == 0
    assert set(mlcube["tasks"]["infer"]["parameters"]["inputs"]) == {"data_path", "parameters_file"}
    assert (context / "src" / "transunet3d" / "deploy" / "challenge.py").is_file()
    entry = invoke("challenge-entry", "--data_path", phantoms / CASES[0], "--output_path", tmp_path / "out",
                   "--model", model)
    assert entry.exit_code == 0, entry.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == [f"{CASES[0]}.nii.gz"]


def test_a_cuda_context_of_an_export_installs_the_gpu_builds_and_its_source_runs_alone(exported: Path,
                                                                                        tmp_path: Path):
    context = tmp_path / "context"
    result = invoke("container", exported, context, "--device", "cuda")
    assert result.exit_code == 0, result.output
    pins = [line for line in (context / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert pins[0] == f"torch=={TORCH}" and pins[1].startswith("onnxruntime-gpu==")
    assert "whl/cpu" not in (context / "Dockerfile").read_text()
    assert sorted(path.name for path in (context / "model").iterdir()) == sorted(
        path.name for path in exported.iterdir())
    mlcube = yaml.safe_load((context / "mlcube" / "mlcube.yaml").read_text())
    assert mlcube["docker"]["gpu_args"] == "--gpus=all" and mlcube["platform"]["accelerator_count"] == 1
    environment = {**os.environ, "PYTHONPATH": str(context / "src")}
    shown = subprocess.run([sys.executable, "-c", "import transunet3d; print(transunet3d.__file__)"],
                           env=environment, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == str(context / "src" / "transunet3d" / "__init__.py")


def test_container_mistakes_are_one_error_line_and_write_nothing(cv_run: Path, exported: Path, phantoms: Path,
                                                                 tmp_path: Path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "Dockerfile").write_text("FROM scratch\n")
    calls = [((phantoms, tmp_path / "a"), f"error: {phantoms}: neither a training run nor an exported model folder"),
             ((exported, tmp_path / "b", "--format", "torch"), f"error: {exported}: an exported folder holds ONNX"),
             ((cv_run, used), f"error: {used}: exists and is not an empty folder"),
             ((cv_run, tmp_path / "c", "--wheels", tmp_path / "none"),
              f"error: {tmp_path / 'none'}: --wheels: does not exist (a folder of .whl files)"),
             ((cv_run, tmp_path / "c", "--wheels", used / "Dockerfile"),
              f"error: {used / 'Dockerfile'}: --wheels: not a folder (a folder of .whl files)"),
             # the image held the latest weights of an export made from them, exit 0
             ((exported, tmp_path / "d", "--checkpoint", "best"), f"error: {exported}: exported from the latest"),
             # printed in `docker build -t Bad Tag!;rm -rf / OUT`
             ((cv_run, tmp_path / "e", "--tag", "Bad Tag!;rm -rf /"), "error: --tag 'Bad Tag!;rm -rf /': not a Docker")]
    for args, message in calls:
        result = invoke("container", *args)
        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert len(error_lines(result)) == 1 and error_lines(result)[0].startswith(message)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["used"]


def test_a_damaged_run_or_export_is_refused_before_anything_is_written(cv_run: Path, exported: Path, tmp_path: Path):
    """Packaged with exit 0, such a run failed only inside the image; the checks are prediction's."""
    poisoned = tmp_path / "poisoned"
    shutil.copytree(cv_run, poisoned)
    weights = poison_weights(poisoned / "fold_1")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(cv_run, incomplete)
    (ModelFolder(incomplete / "fold_0").latest_checkpoint() / "weights.safetensors").unlink()
    swapped = tmp_path / "swapped"
    shutil.copytree(exported, swapped)
    shutil.copy(swapped / "fold_1.onnx", swapped / "fold_0.onnx")
    calls = [(poisoned, f"error: {weights}: 2 of "),
             (incomplete, f"error: {ModelFolder(incomplete / 'fold_0').latest_checkpoint()}: checkpoint is missing"),
             (swapped, f"error: {swapped / 'fold_0.onnx'}: not the network export.json records")]
    for run, message in calls:
        result = invoke("container", run, tmp_path / "context")
        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert len(error_lines(result)) == 1 and error_lines(result)[0].startswith(message), result.stderr
    assert not (tmp_path / "context").exists()


def test_a_run_whose_training_had_not_finished_is_packaged_and_run_with_a_warning(phantoms: Path, tmp_path: Path):
    """challenge-entry said nothing about it (the image's own entry point)."""
    run = tmp_path / "run"
    write_run(run / "fold_0", preset="tiny-unet", epoch=3)
    checkpoint = ModelFolder(run / "fold_0").latest_checkpoint()
    epochs = load_config(run / "fold_0" / "config.yaml").loop.epochs
    for command in (("container", run, tmp_path / "context"),
                    ("challenge-entry", "--data_path", phantoms / CASES[0], "--output_path", tmp_path / "out",
                     "--model", run)):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
            f"warning: {checkpoint}: trained for 3 of {epochs} epochs"]


def test_only_the_checkpoint_files_go_into_the_image(cv_run: Path, tmp_path: Path):
    """A temporary that a killed checkpoint save left beside the weights (safetensors wrote its own `.tmpXXXXXX`)
    was copied into the build context, a full-size weights file in the image."""
    run = shutil.copytree(cv_run, tmp_path / "run")
    checkpoint = run / "fold_0" / "checkpoints" / "epoch_0020"
    (checkpoint / ".tmpqhb5W3").write_bytes(b"\0" * 64)
    result = invoke("container", run, tmp_path / "context", "--fold", "0")
    assert result.exit_code == 0, result.output
    copied = tmp_path / "context" / "model" / "fold_0" / "checkpoints" / "epoch_0020"
    assert sorted(path.name for path in copied.iterdir()) == ["state.pt", "weights.safetensors"]
