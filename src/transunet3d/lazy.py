"""Names a package exports from its modules, each module imported when one of its names is first used (PEP 562):
`import transunet3d.data` or `transunet3d.models` then costs nothing, and a torch-free module of either package
does not pull torch in through the package's `__init__`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """(`__getattr__`, `__all__`) for `package`'s `__init__`.

    Args:
        package: the package's `__name__`.
        modules: each exported name -> the module of the package that defines it ("create_model": "network").
    """

    def exported(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)

    return exported, sorted(modules)
