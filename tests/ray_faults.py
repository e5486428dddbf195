"""A fault for Ray actors, injected from the test side (the product code has no test hooks).

The Ray session of ``tests/core/test_ray.py`` runs :func:`install` in every worker process
(Ray's ``worker_process_setup_hook``). When the folder named by ``QWEN3_RAG_RAY_FAULTS``
holds a ``die_at`` file (a number N) as the worker starts, the worker's embedding actor
appends a line to ``calls`` before each batch and exits the process (``os._exit``: a crash,
no cleanup) at the N-th batch counted over all actors, once: it removes ``die_at`` first, so
an actor Ray restarts afterwards runs normally.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FAULTS_ENV = "QWEN3_RAG_RAY_FAULTS"


def arm(folder: Path, die_at: int) -> None:
    (folder / "calls").write_text("")
    (folder / "die_at").write_text(str(die_at))


def disarm(folder: Path) -> None:
    (folder / "die_at").unlink(missing_ok=True)


def calls(folder: Path) -> int:
    path = folder / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def install() -> None:
    folder = os.environ.get(FAULTS_ENV)
    if not folder or not (Path(folder) / "die_at").exists():
        return  # unarmed: import nothing heavy into Ray's workers
    from qwen3_rag.distributed import _EmbedActor

    original = _EmbedActor.__call__

    def call(self: Any, batch: Any) -> Any:
        die_at = Path(folder) / "die_at"
        if die_at.exists():
            with (Path(folder) / "calls").open("a") as f:
                f.write("batch\n")
            if calls(Path(folder)) >= int(die_at.read_text()):
                die_at.unlink()  # once: a restarted actor runs normally
                os._exit(1)
        return original(self, batch)

    _EmbedActor.__call__ = call  # type: ignore[method-assign]
