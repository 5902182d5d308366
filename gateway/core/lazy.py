"""Re-exports that load on first use (PEP 562), for the ``__init__`` of a package whose
modules are costly to import: importing one light module of it stays light."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, where: Mapping[str, str], name: str) -> object:
    """``name`` of ``package``, imported from its submodule ``where[name]``."""
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{package}.{module}"), name)
