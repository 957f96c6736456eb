"""The optional packages of deployment (the `onnx` extra), imported where they are needed."""

from __future__ import annotations

import importlib
from types import ModuleType

from transunet3d.errors import MissingPackage

INSTALL = "pip install 'transunet3d[onnx]'"


def require(module: str, purpose: str) -> ModuleType:
    """`module` imported, or MissingPackage naming it, what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"onnxruntime": "onnxruntime (or onnxruntime-gpu for CUDA)"}.get(module, module)
        raise MissingPackage(package, purpose, INSTALL) from None
