"""Run the ``qwen3-rag`` command with a fault injected from the test side.

The product code has no test hooks: this wrapper patches chromadb's ``Collection.upsert`` and
``Collection.delete`` in a child process, then runs the real command::

    python -m tests.cli.faults --kill-after-upserts 2 -- index docs --db db
    python -m tests.cli.faults --kill-after-writes 5 -- index docs --db db
    python -m tests.cli.faults --pause-after-upserts 1 --ready R --release G -- index docs

``--kill-after-upserts N`` SIGKILLs the process right after its N-th upsert returns (a batch
durably written, nothing after it); ``--kill-after-writes N`` after its N-th upsert or delete;
``--pause-after-upserts N`` touches the ``--ready`` file after the N-th upsert and waits (at
most two minutes) until the ``--release`` file exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tests.cli.faults")
    parser.add_argument("--kill-after-upserts", type=int, default=0)
    parser.add_argument("--kill-after-writes", type=int, default=0)
    parser.add_argument("--pause-after-upserts", type=int, default=0)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--release", type=Path)
    args = parser.parse_args(argv[:split])

    from chromadb.api.models.Collection import Collection

    counts = {"upsert": 0, "write": 0}
    upsert, delete = Collection.upsert, Collection.delete

    def after(kind: str) -> None:
        counts[kind] += 1
        if kind == "upsert":
            counts["write"] += 1
        if counts["upsert"] == args.kill_after_upserts and kind == "upsert":
            os.kill(os.getpid(), signal.SIGKILL)
        if counts["write"] == args.kill_after_writes:
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "upsert" and counts["upsert"] == args.pause_after_upserts:
            args.ready.touch()
            deadline = time.monotonic() + 120
            while not args.release.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    def patched_upsert(self: Any, *a: Any, **k: Any) -> Any:
        result = upsert(self, *a, **k)
        after("upsert")
        return result

    def patched_delete(self: Any, *a: Any, **k: Any) -> Any:
        result = delete(self, *a, **k)
        after("write")
        return result

    Collection.upsert = patched_upsert  # type: ignore[method-assign]
    Collection.delete = patched_delete  # type: ignore[method-assign]

    from qwen3_rag.cli import main as cli_main

    return cli_main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
