"""Names a package re-exports, imported from their module when first asked for (adapters
layer): a package's ``__getattr__`` (PEP 562), so that a command that names the package but
uses little of it does not load the rest (issue 22: the CLI starts fast)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def module_getattr(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: a name of ``where`` (name -> its module, relative to
    the package) imported at its first use and kept in ``namespace`` (the package's globals),
    so that the next use finds it there."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
