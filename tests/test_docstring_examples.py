"""Every docstring example that can run offline runs (the hub ones are marked +SKIP).

Every module of the three packages is collected, so a new module's examples run without
being listed here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("qwen3_rag", "langchain_qwen3", "llamaindex_qwen3")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules()


def test_every_package_is_collected() -> None:
    assert {"qwen3_rag", "qwen3_rag.embedder", "langchain_qwen3.embeddings"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
