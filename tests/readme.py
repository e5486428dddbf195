"""Helpers for the tests that run README.md's snippets as written."""

from __future__ import annotations

import re
from pathlib import Path

from tests.models import REPO_ROOT


def readme_section(heading: str) -> str:
    """The README text from ``heading`` (e.g. ``"## LangChain"``) to the next ``## `` heading."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n{heading}\n") + 1
    end = readme.find("\n## ", start + len(heading))
    return readme[start : end if end > 0 else None]


def python_block(heading: str) -> str:
    """The first ```` ```python ```` block of a README section."""
    match = re.search(r"```python\n(.*?)```", readme_section(heading), re.DOTALL)
    assert match, f"no python block in the README's {heading!r} section"
    return match.group(1)


def python_blocks(heading: str) -> list[str]:
    """Every ```` ```python ```` block of a README section, in order."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section(heading), re.DOTALL)
    assert blocks, f"no python block in the README's {heading!r} section"
    return blocks


def link_models(folder: Path, embedding: Path | None = None, reranker: Path | None = None) -> None:
    """Put model folders where the README snippets expect them: ``folder/models/Qwen3-*-0.6B``."""
    (folder / "models").mkdir(exist_ok=True)
    if embedding is not None:
        (folder / "models" / "Qwen3-Embedding-0.6B").symlink_to(embedding)
    if reranker is not None:
        (folder / "models" / "Qwen3-Reranker-0.6B").symlink_to(reranker)
