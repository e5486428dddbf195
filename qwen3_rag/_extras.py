"""Optional dependencies, imported when first needed, with the install line when missing.

The base install is torch + transformers + tokenizers; everything else is an extra
(``pip install "qwen3-rag[chroma]"`` ...). :func:`require` is the one place that imports an
extra's module and, when it is missing, raises an ``ImportError`` that names the extra.

Example:
    >>> require("json", "chroma", "reading JSON").__name__
    'json'
    >>> require("no_such_module_here", "eval", "the metrics")
    Traceback (most recent call last):
    ...
    ImportError: the metrics needs no_such_module_here: pip install "qwen3-rag[eval]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["install_hint", "require"]


def install_hint(extra: str) -> str:
    """The install line of an extra, e.g. ``pip install "qwen3-rag[chroma]"``."""
    return f'pip install "qwen3-rag[{extra}]"'


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` (a dotted name), or say which extra brings it.

    Args:
        module: The module to import (``"chromadb"``, ``"ray.data"`` ...).
        extra: The qwen3-rag extra that installs it.
        what: What needs it, for the message (``"the Chroma store"``).

    Returns:
        The imported module.

    Raises:
        ImportError: If it is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {module.split('.')[0]}: {install_hint(extra)}") from exc
