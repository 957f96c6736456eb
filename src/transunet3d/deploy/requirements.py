"""The pinned requirements of a container: every package that transunet3d needs at run time, at the version
installed here, with its own requirements, so that the image runs what was tested here."""

from __future__ import annotations

import importlib.metadata as metadata
import re

from packaging.requirements import Requirement

from transunet3d.errors import UserError

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def installed_closure(roots: list[str]) -> dict[str, str]:
    """{distribution name: installed version} of `roots` and everything they require here (extras left out),
    in a stable order. Requirements whose markers do not hold here, or that are not installed, are skipped."""
    found: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = _canonical(pending.pop(0))
        if name in found:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return dict(sorted(found.items()))


def package_requirements() -> list[str]:
    """The run-time requirements of the installed transunet3d (its extras left out), by name."""
    try:
        texts = metadata.requires("transunet3d") or []
    except metadata.PackageNotFoundError:
        raise UserError("transunet3d is not installed as a package (pip install -e .), so its requirements "
                        "cannot be pinned") from None
    return [Requirement(text).name for text in texts
            if Requirement(text).marker is None or Requirement(text).marker.evaluate({"extra": ""})]


def pinned_requirements(device: str, onnx: bool) -> list[str]:
    """requirements.txt lines: the torch build for `device` ("cpu" or "cuda"), ONNX Runtime (its GPU build for
    cuda) when `onnx`, and the rest of the closure at the versions installed here."""
    roots = package_requirements() + (["onnxruntime"] if onnx else [])
    closure = installed_closure(roots)
    torch_version = closure.pop("torch", None)
    if torch_version is None:
        raise UserError("torch is not installed, so its version cannot be pinned")
    release = torch_version.split("+")[0]
    lines = [f"torch=={release}+cpu" if device == "cpu" else f"torch=={release}"]
    if onnx:
        runtime = closure.pop("onnxruntime", None)
        if runtime is None:
            raise UserError("onnxruntime is not installed, so its version cannot be pinned")
        lines.append(f"onnxruntime=={runtime}" if device == "cpu" else f"onnxruntime-gpu=={runtime}")
    lines += [f"{name}=={version}" for name, version in closure.items()]
    return lines


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
