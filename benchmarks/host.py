"""The machine a benchmark figure was measured on: its CPU, speed-relevant flags and load.

A CPU speed claim holds for the instruction set it was measured on (bf16 and int8 matmuls
are fast only with AVX-512 VNNI/BF16 or AMX), so every report names them: :func:`machine`.

Example:
    >>> "usable cores" in machine()
    True
"""

from __future__ import annotations

import platform
from pathlib import Path


def machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "n/a"
    from qwen3_rag.cpu import cpu_features
    from qwen3_rag.loading import cpu_threads

    flags = cpu_features().summary().split(": ", 1)[1]
    return f"{cpu} ({flags}), {cpu_threads()} usable cores, load average at the end {load}"


def write_section(path: Path, text: str, heading: str) -> None:
    """Replace the section of ``path`` that starts with ``heading`` by ``text`` (or append it).

    The section ends where the next ``## `` heading starts.
    """
    from qwen3_rag._files import write_text

    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start = old.find(heading + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text if old else text
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + (old[end + 1 :] if end >= 0 else "")
    write_text(path, new)
