"""docs/ARCHITECTURE.md names every module as built, and the core imports no framework."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("qwen3_rag", "langchain_qwen3", "llamaindex_qwen3")
FRAMEWORKS = (
    "langchain",
    "langchain_core",
    "langchain_classic",
    "llama_index",
    "pydantic",
    "langchain_qwen3",
    "llamaindex_qwen3",
)


def _modules() -> set[str]:
    return {
        p.relative_to(REPO).as_posix()
        for pkg in (*PACKAGES, "benchmarks")
        for p in (REPO / pkg).rglob("*.py")
    }


def test_every_module_has_its_line_and_every_line_a_module() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    described = set(re.findall(r"^- `([\w/]+\.py)`:", text, flags=re.M))
    modules = _modules()
    assert modules - described == set(), "modules missing from docs/ARCHITECTURE.md"
    assert described - modules == set(), "docs/ARCHITECTURE.md names modules that do not exist"


def test_the_core_imports_no_framework() -> None:
    """Frameworks (and pydantic) enter only the adapters and ``qwen3_rag.fields``."""
    offenders = []
    for path in sorted((REPO / "qwen3_rag").rglob("*.py")):
        if path.name == "fields.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [
                f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS
            ]
    assert offenders == []
