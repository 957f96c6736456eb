"""The layouts of what `deploy` writes: the only place that spells the names of their files and folders.

An exported model folder (`transunet3d export RUN OUT`):

    OUT/export.json          what prediction needs (patch, regions, label scheme, preprocessing, TTA,
                             post-processing) and where each network came from
    OUT/<name>.onnx          one network per model of the run: fold_0.onnx, ..., fold_all.onnx (all-data), or
                             model.onnx for a run folder that holds one model
    OUT/<name>.yaml          that model's config.yaml, as the run saved it
    OUT/postprocessing.json  the run's tuned post-processing, when it has one (the run's own file name, so that
                             `predict --postprocessing run` finds it in either)

A container build context (`transunet3d container RUN OUT_DIR`):

    OUT_DIR/Dockerfile, OUT_DIR/requirements.txt, OUT_DIR/README.md, OUT_DIR/.dockerignore
    OUT_DIR/model/           the run's models (configs and checkpoints only) or an exported folder
    OUT_DIR/src/transunet3d/ the package's source
    OUT_DIR/wheels/          wheels to install instead of downloading them (e.g. a local torch build)
    OUT_DIR/mlcube/          mlcube.yaml and workspace/parameters.yaml, for MedPerf/MLCube
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transunet3d.runs.folds import ALL_DATA, Fold
from transunet3d.runs.layout import RunFolder

EXPORT_FILE = "export.json"
SINGLE_MODEL = "model"  # the name of the one network of a run folder that is a single model


def network_name(fold: Fold | None) -> str:
    """How an exported folder names the network of `fold` (None: a single-model run folder)."""
    if fold is None:
        return SINGLE_MODEL
    return "fold_all" if fold == ALL_DATA else f"fold_{fold}"


@dataclass(frozen=True)
class ExportedNetwork:
    """One network file of an exported folder and the fold it was trained on: what `ModelFolder` is for a run."""

    path: Path
    fold: Fold | None


@dataclass(frozen=True)
class ExportFolder:
    """A folder written by `transunet3d export`."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # str paths too

    @property
    def record(self) -> Path:
        return self.path / EXPORT_FILE

    @property
    def postprocessing(self) -> Path:
        return RunFolder(self.path).postprocessing

    def network(self, name: str) -> Path:
        return self.path / f"{name}.onnx"

    def config(self, name: str) -> Path:
        return self.path / f"{name}.yaml"

    def is_export(self) -> bool:
        return self.record.is_file()


@dataclass(frozen=True)
class BuildContext:
    """A Docker build context written by `transunet3d container`."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # str paths too

    dockerfile = property(lambda self: self.path / "Dockerfile")
    requirements = property(lambda self: self.path / "requirements.txt")
    readme = property(lambda self: self.path / "README.md")
    dockerignore = property(lambda self: self.path / ".dockerignore")
    model = property(lambda self: self.path / "model")
    source = property(lambda self: self.path / "src")
    wheels = property(lambda self: self.path / "wheels")
    mlcube = property(lambda self: self.path / "mlcube" / "mlcube.yaml")
    parameters = property(lambda self: self.path / "mlcube" / "workspace" / "parameters.yaml")
