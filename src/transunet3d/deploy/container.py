"""A Docker build context for a BraTS challenge container from a run: Dockerfile, pinned requirements, the
package's source, the model (the run's configs and checkpoints, or its ONNX export) and MLCube's files.

The image's entry point is `transunet3d challenge-entry` (deploy/challenge.py): it reads `/input` (or MLCube's
`--data_path`), writes `/output` (or `--output_path`), uses every GPU it is given and needs no network.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import transunet3d
from transunet3d import __version__
from transunet3d.deploy.challenge import MODEL_IN_IMAGE, check_models, model_backend
from transunet3d.deploy.export import export_run
from transunet3d.deploy.folders import building_folder, check_new_folder
from transunet3d.deploy.layout import BuildContext
from transunet3d.deploy.requirements import TORCH_CPU_INDEX, pinned_requirements
from transunet3d.errors import UserError
from transunet3d.inference.trained import checkpoint_folder, fold_folders
from transunet3d.runs.layout import ModelFolder, RunFolder
from transunet3d.training.checkpoint import STATE, WEIGHTS

DEVICES = ("cpu", "cuda")
FORMATS = ("torch", "onnx")
SOURCE_IN_IMAGE = Path("/opt/transunet3d/src")


def write_build_context(run_dir: str | Path, out_dir: str | Path, device: str = "cpu", model_format: str | None = None,
                        fold: str | None = None, which: str | None = None, wheels: str | Path | None = None,
                        tag: str | None = None, on_step: Callable[[str], None] | None = None) -> dict:
    """Write the build context of a challenge container for the models of `run_dir` into `out_dir` (new or empty).

    Args:
        run_dir: a training run or model folder, or a folder written by `transunet3d export`.
        device: "cpu" or "cuda": which torch (and ONNX Runtime) build the image installs.
        model_format: "torch" (the run's checkpoints) or "onnx" (exported networks run by ONNX Runtime);
            None: "onnx" for an exported folder, else "torch".
        fold, which: the folds and checkpoint ("latest" or "best"), as for `predict`; None: "latest", or for an
            exported folder the checkpoint it was exported from (another one is refused).
        wheels: a folder of wheels that pip takes before its index (a local torch build, an offline build).
        tag: the image name the README and mlcube.yaml use.
        on_step: told each step, for progress lines.

    Returns:
        What was written: image tag, device, format, requirements; and warnings (`warning:` lines) for models
        whose training had not finished.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    exported = model_backend(run_dir) == "onnxruntime"
    model_format = model_format or ("onnx" if exported else "torch")
    _check_choices(run_dir, device, model_format, exported, fold, wheels, tag)
    which = which if exported else which or "latest"
    warnings = check_models(run_dir, "onnxruntime" if exported else "torch", fold, which)
    check_new_folder(out_dir, "build context")
    requirements = pinned_requirements(device, onnx=model_format == "onnx")
    tag = tag or image_tag(run_dir)
    tell = on_step or (lambda _: None)
    with building_folder(out_dir) as building:
        context = BuildContext(building)
        tell("model")
        if exported:
            shutil.copytree(run_dir, context.model, ignore=shutil.ignore_patterns(".*"))
        elif model_format == "onnx":
            export_run(run_dir, context.model, fold, which, on_model=lambda name: tell(f"export {name}"))
        else:
            copy_models(run_dir, context.model, fold, which)
        tell("source and requirements")
        shutil.copytree(Path(transunet3d.__file__).parent, context.source / "transunet3d",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        context.wheels.mkdir()
        for wheel in sorted(Path(wheels).glob("*.whl")) if wheels else []:
            shutil.copyfile(wheel, context.wheels / wheel.name)
        context.requirements.write_text(_requirements_text(requirements))
        context.dockerfile.write_text(dockerfile(device))
        context.dockerignore.write_text("mlcube/\nREADME.md\n")
        context.readme.write_text(readme(tag, device, model_format))
        context.parameters.parent.mkdir(parents=True)
        context.mlcube.write_text(mlcube_yaml(tag, device))
        context.parameters.write_text(PARAMETERS_TEMPLATE)
    return {"tag": tag, "device": device, "format": model_format, "requirements": requirements, "warnings": warnings}


def copy_models(run_dir: Path, target: Path, fold: str | None, which: str) -> None:
    """What prediction reads of the models of `run_dir`: each model's config.yaml, its `which` checkpoint (and
    the pointer to it), and the run's tuned post-processing; in the run's own layout."""
    folders = fold_folders(run_dir, fold)
    single = ModelFolder(run_dir).is_model()
    for folder in folders:
        checkpoint, _ = checkpoint_folder(folder, which)
        copy = ModelFolder(target) if single else RunFolder(target).fold(folder.fold)
        copy.checkpoints.mkdir(parents=True)
        shutil.copyfile(folder.config, copy.config)
        (copy.checkpoints / checkpoint.name).mkdir()
        for name in (WEIGHTS, STATE):  # not a temporary that a killed save left beside them
            shutil.copyfile(checkpoint / name, copy.checkpoints / checkpoint.name / name)
        if which == "latest":
            shutil.copyfile(folder.latest_pointer, copy.latest_pointer)
    tuned = RunFolder(run_dir).postprocessing
    if tuned.is_file():
        shutil.copyfile(tuned, RunFolder(target).postprocessing)


def image_tag(run_dir: Path) -> str:
    """A Docker image name from the run's folder name: `transunet3d-<run>:<version>`."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(run_dir).resolve().name.lower()).strip("-") or "model"
    return f"transunet3d-{name}:{__version__}"


# Docker's image reference: [host[:port]/]path components of lower-case letters and digits joined by . _ __ or
# dashes, then an optional :tag. Docker refuses anything else only when it builds; the README prints the name in
# a command line, where a space or a ; would be another command.
IMAGE_NAME = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                        r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def _check_choices(run_dir: Path, device: str, model_format: str, exported: bool, fold: str | None,
                   wheels: str | Path | None, tag: str | None) -> None:
    if tag is not None and not IMAGE_NAME.match(tag):
        raise UserError(f"--tag {tag!r}: not a Docker image name (lower-case letters and digits joined by . _ or -, "
                        "optionally REGISTRY/ before and :TAG after)")
    if device not in DEVICES:
        raise UserError(f"--device {device}: choose {' or '.join(DEVICES)}")
    if model_format not in FORMATS:
        raise UserError(f"--format {model_format}: choose {' or '.join(FORMATS)}")
    if exported and model_format == "torch":
        raise UserError(f"{run_dir}: an exported folder holds ONNX networks only; use --format onnx")
    if exported and fold is not None:
        raise UserError(f"{run_dir}: an exported folder keeps the folds it was exported with; leave out --fold")
    if wheels is not None and not Path(wheels).is_dir():
        problem = "not a folder" if Path(wheels).exists() else "does not exist"
        raise UserError(f"{wheels}: --wheels: {problem} (a folder of .whl files)")


def _requirements_text(lines: list[str]) -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    header = (f"# Pinned by `transunet3d container` (transunet3d {__version__}) from the environment that wrote it:\n"
              f"# Python {python}, the versions its tests ran with.\n")
    return header + "\n".join(lines) + "\n"


def dockerfile(device: str) -> str:
    """The Dockerfile: a slim Python base, the pinned requirements, the source and the model, the entry point."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    index = f" --extra-index-url {TORCH_CPU_INDEX}" if device == "cpu" else ""
    return f"""\
# A BraTS challenge container written by `transunet3d container` (transunet3d {__version__}, {device}).
# Build: docker build -t IMAGE .     Run: see README.md
FROM python:{python}-slim AS install
COPY requirements.txt /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
RUN python -m venv /opt/venv \\
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --find-links /tmp/wheels{index} \\
        -r /tmp/requirements.txt

FROM python:{python}-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH={SOURCE_IN_IMAGE} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \\
    HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
COPY --from=install /opt/venv /opt/venv
COPY src/ {SOURCE_IN_IMAGE}/
COPY model/ {MODEL_IN_IMAGE}/
RUN python -m transunet3d challenge-entry --help > /dev/null

# /input -> /output by default; MLCube: infer --data_path=... --output_path=... --parameters_file=...
ENTRYPOINT ["python", "-m", "transunet3d", "challenge-entry"]
"""


def readme(tag: str, device: str, model_format: str) -> str:
    gpus = " --gpus all" if device == "cuda" else ""
    return f"""\
# {tag}

A BraTS challenge container of transunet3d {__version__} ({model_format} model, {device}).

    docker build -t {tag} .
    docker run --rm --network none{gpus} -v /path/to/cases:/input:ro -v /path/to/output:/output {tag}

The cases are read in the BraTS layout (a folder per case with -t1n, -t1c, -t2w, -t2f files); one
`<case-id>.nii.gz` per case is written in the input's geometry, on every GPU given. The entry point checks its
outputs (one per input case, the input's geometry, none all zero) and exits non-zero when one fails.

MLCube/MedPerf: `mlcube/mlcube.yaml` runs the task `infer` with `--data_path`, `--output_path` and
`--parameters_file` (mlcube/workspace/parameters.yaml, which may set fold, checkpoint, tta, step, batch_windows,
postprocessing).
"""


def mlcube_yaml(tag: str, device: str) -> str:
    gpus = "\n  gpu_args: --gpus=all" if device == "cuda" else ""
    return f"""\
name: {tag.split(":")[0]}
description: 3D-TransUNet brain metastasis segmentation (transunet3d {__version__}), BraTS challenge model
platform:
  accelerator_count: {1 if device == "cuda" else 0}
docker:
  image: {tag}
  build_context: ".."
  build_file: "Dockerfile"{gpus}
tasks:
  infer:
    parameters:
      inputs:
        data_path: {{type: directory, default: data}}
        parameters_file: {{type: file, default: parameters.yaml}}
      outputs:
        output_path: {{type: directory, default: predictions}}
"""


PARAMETERS_TEMPLATE = """\
# Settings of `transunet3d challenge-entry`; every one may be left out (the model's own is used).
# fold: 0,2          # folds of a cross-validation run, as predict --fold
# checkpoint: latest # latest or best
# tta: flip+rot      # none, flip or flip+rot
# step: 0.5          # window stride as a fraction of the patch
# batch_windows: 1   # network inputs per forward pass (default: sized from the memory there is)
# postprocessing: run  # run (the tuned one) or none (the config's)
"""
